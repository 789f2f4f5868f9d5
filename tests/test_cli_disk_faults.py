"""Disk full and unwritable paths met by whole commands (issue 14, item 2): the command ends
with exit 2 and one line naming what could not be written, every result it finished stays
whole (its size and sha256 match its index entry), no temporary file is left, and
``--resume`` afterwards completes with the results of an undisturbed run."""

from __future__ import annotations

import errno
import json
import os

import pytest
import xarray as xr
from click.testing import CliRunner

from artiphys.cli import main
from artiphys.store.atomic import is_temp_file, sha256_file

COMMANDS = {
    "record": ["record", "v1bank", "--layers", "simple.relu,dog.relu",
               "--stimuli", "noise:n=6", "--chunk-size", "2"],
    "characterize": ["characterize", "v1bank", "--layers", "simple.relu,dog.relu",
                     "--tests", "apc,sparsity", "--controls", "shuffle",
                     "--synthesis", "none", "-q"],
}


def _fail_at(monkeypatch, name, nth, code):
    """Make the ``nth`` call of ``os.<name>`` (and every later one) raise ``code``."""
    real, calls = getattr(os, name), [0]

    def failing(*args, **kwargs):
        calls[0] += 1
        if calls[0] >= nth:
            raise OSError(code, os.strerror(code))
        return real(*args, **kwargs)

    monkeypatch.setattr(os, name, failing)


def _finished_results(run):
    """``{file: sha256}`` of the indexed results, after checking each against its entry."""
    out = {}
    for path in sorted((run / ".steps").glob("*.json")):
        entry = json.loads(path.read_text())
        f = run / entry["file"]
        assert f.is_file() and f.stat().st_size == entry["bytes"], entry["file"]
        assert sha256_file(f) == entry["sha256"], entry["file"]
        out[entry["file"]] = entry["sha256"]
    return out


def _values(run):
    out = {}
    for path in sorted(run.rglob("*.nc")):
        with xr.open_dataset(path) as ds:
            out[str(path.relative_to(run))] = ds.load().drop_attrs()
    return out


@pytest.fixture(scope="module")
def clean_values(tmp_path_factory):
    """The results of each command run undisturbed (computed once per command)."""
    cache = {}

    def get(command):
        if command not in cache:
            out = tmp_path_factory.mktemp("clean") / "run"
            res = CliRunner().invoke(main, [*COMMANDS[command], "--out", str(out)])
            assert res.exit_code == 0, res.output[-800:]
            cache[command] = _values(out)
        return cache[command]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("call,nth,code,words", [
    ("write", 6, errno.ENOSPC, "no space left"),
    ("replace", 4, errno.EACCES, "permission denied")])
def test_fault_at_a_write_is_one_line_and_resume_completes(command, call, nth, code, words,
                                                          clean_values, tmp_path,
                                                          monkeypatch):
    argv, run = COMMANDS[command], tmp_path / "run"

    with monkeypatch.context() as m:
        _fail_at(m, call, nth, code)
        res = CliRunner().invoke(main, [*argv, "--out", str(run)])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2, res.output[-800:]
    assert "Traceback" not in res.output and lines[-1].startswith("artiphys: error: ")
    assert words in lines[-1] and str(run) in lines[-1], lines[-1]
    assert not [p for p in run.rglob("*") if is_temp_file(p)]
    kept = _finished_results(run)

    res = CliRunner().invoke(main, [*argv, "--out", str(run), "--resume"])
    assert res.exit_code == 0, res.output[-800:]
    after = _finished_results(run)
    assert all(after.get(f) == digest for f, digest in kept.items())  # finished work kept
    got, want = _values(run), clean_values(command)
    assert set(got) == set(want)
    for name, ds in want.items():
        xr.testing.assert_identical(got[name], ds)
