"""``kill -9`` of ``artiphys characterize`` at random moments, each followed by
``--resume``, gives results identical to an uninterrupted run; a truncated result file
planted in a finished run is recomputed on resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from artiphys.store import RunDir

SRC = Path(__file__).resolve().parents[2] / "src"
ARGS = ["characterize", "neuromatch_conv", "--synthesis", "none", "--control-seeds", "1", "--layers", "conv,relu", "--tests",
        "apc,ti,sparsity", "--controls", "shuffle,untrained", "--ti-extent", "8"]
VOLATILE = ("created_utc",)


def _cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "artiphys", *ARGS, "--out", str(out), "--quiet", *extra]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(SRC)}


def _results(out: Path) -> dict[str, xr.Dataset]:
    run = RunDir.open(out)
    found = {}
    for entry in run.current_entries():
        ds = run.steps.load(entry)
        if isinstance(ds, xr.Dataset):
            ds.attrs = {k: v for k, v in ds.attrs.items() if k not in VOLATILE}
        found[entry["digest"]] = ds
    return found


def _assert_same_results(a: Path, b: Path) -> None:
    ra, rb = _results(a), _results(b)
    assert sorted(ra) == sorted(rb)  # the same steps, by the digests of their inputs
    for digest, ds in ra.items():
        if isinstance(ds, xr.Dataset):
            xr.testing.assert_identical(ds, rb[digest])
        else:
            assert ds == rb[digest]
    assert json.loads((a / "summary.json").read_text()) == json.loads(
        (b / "summary.json").read_text())


@pytest.mark.slow
def test_killed_five_times_then_resumed_equals_an_uninterrupted_run(tmp_path):
    whole = tmp_path / "whole"
    t0 = time.monotonic()
    done = subprocess.run(_cmd(whole), env=_env(), capture_output=True, text=True, timeout=900)
    duration = time.monotonic() - t0
    assert done.returncode == 0, done.stderr
    out = tmp_path / "killed"
    rng = np.random.default_rng(0)
    kills = 0
    for attempt in range(5):
        extra = ("--resume",) if attempt else ()
        proc = subprocess.Popen(_cmd(out, *extra), env=_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(float(rng.uniform(0.3, 0.9)) * duration)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
    assert kills >= 3, "most runs finished before they could be killed"
    resumed = subprocess.run(_cmd(out, "--resume"), env=_env(), capture_output=True,
                             text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    assert not [f for f in out.rglob("*") if ".tmp-" in f.name]
    _assert_same_results(whole, out)


@pytest.mark.slow
def test_truncated_result_in_a_finished_run_is_recomputed(tmp_path):
    out = tmp_path / "run"
    first = subprocess.run(_cmd(out), env=_env(), capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr
    before = _results(out)
    run = RunDir.open(out)
    victim = next(e for e in run.current_entries(result="apc"))
    path = out / victim["file"]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    again = subprocess.run(_cmd(out, "--resume"), env=_env(), capture_output=True,
                           text=True, timeout=900)
    assert again.returncode == 0, again.stderr
    log = (out / "run.log").read_text().split("characterize: resumed")[-1]
    assert f"recomputed {victim['meta']['condition']}/" in log
    after = _results(out)
    xr.testing.assert_identical(before[victim["digest"]], after[victim["digest"]])
