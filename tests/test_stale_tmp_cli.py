"""`--resume` removes the temporary files a killed run left behind (issue 14 case 8)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from artiphys.cli import main

REC = ["record", "v1bank", "--layers", "simple.relu", "--stimuli", "noise:n=4", "-q"]


@pytest.mark.slow
def test_resume_removes_stale_tmp_files(tmp_path):
    run = tmp_path / "r"
    assert CliRunner().invoke(main, [*REC, "--out", str(run)]).exit_code == 0
    (chunk,) = run.glob("responses/simple.relu/chunk-*.nc")
    stale = chunk.parent / f".{chunk.name}.tmp-99999-abcdef"  # store/atomic.py naming
    stale.write_bytes(b"half a file")
    res = CliRunner().invoke(main, [*REC, "--out", str(run), "--resume"])
    assert res.exit_code == 0, res.output
    assert not stale.exists()
    assert not list(run.rglob("*.tmp-*"))
