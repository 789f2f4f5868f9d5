"""Two writers on one --out (issue 14 case 8): while one `characterize` holds the run, a second
`characterize` (or `record`) on the same --out refuses in one line and changes nothing."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from artiphys.cli import main
from artiphys.store.rundir import RunDir


@pytest.mark.parametrize("argv", [
    ["characterize", "v1bank", "--layers", "simple.relu", "--tests", "sparsity", "-q"],
    ["record", "v1bank", "--layers", "simple.relu", "--stimuli", "noise:n=4", "-q"],
], ids=["characterize", "record"])
def test_second_writer_refuses_while_the_run_is_locked(tmp_path, argv):
    out = tmp_path / "run"
    run = RunDir.open_or_create(out)
    with run.lock():  # the first writer, still running
        before = sorted(p.relative_to(out) for p in out.rglob("*"))
        manifest = (out / "manifest.json").read_text()
        res = CliRunner().invoke(main, [*argv, "--out", str(out)])
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert line.startswith("artiphys: error: another process is writing to"), line
    assert "\n" not in line and "--out" in line
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert (out / "manifest.json").read_text() == manifest
