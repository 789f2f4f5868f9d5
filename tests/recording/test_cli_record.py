"""`artiphys record`: writes a run; bad input exits 2 with one line that says what to do.

Until ``artiphys.models.load_model`` lands, the model is loaded by the stand-in
``_recording_fakes.load_fake_model`` (models ``tiny`` and ``slowtiny``).
"""

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
from _recording_fakes import load_fake_model
from click.testing import CliRunner

import artiphys.models
from artiphys.cli import main
from artiphys.recording import load_run_responses

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


@pytest.fixture(autouse=True)
def fake_models(monkeypatch):
    monkeypatch.setattr(artiphys.models, "load_model", load_fake_model, raising=False)


def run_cli(*args):
    return CliRunner().invoke(main, list(args))


def test_record_writes_a_run(tmp_path):
    out = tmp_path / "run"
    res = run_cli("record", "tiny", "--stimuli", "noise:n=6,size_px=16", "--layers",
                  "features.0,classifier.1", "--out", str(out), "--chunk-size", "4")
    assert res.exit_code == 0, res.output
    assert "recorded 6 stimuli x 2 layer(s) of tiny" in res.output
    m = json.loads((out / "manifest.json").read_text())
    assert m["stimuli_arg"] == "noise:n=6,size_px=16" and m["stimuli"]["name"] == "noise"
    da = load_run_responses(out)["features.0"]
    assert da.shape == (6, 4) and list(da.seed.values) == list(range(6))


def test_units_option(tmp_path):
    res = run_cli("record", "tiny", "--stimuli", "noise:n=2,size_px=16", "--layers", "features.0",
                  "--out", str(tmp_path / "a"), "--units", "1:0:0,3:15:15")
    assert res.exit_code == 0, res.output
    da = load_run_responses(tmp_path / "a")["features.0"]
    assert list(da.channel.values) == [1, 3] and list(da.y.values) == [0, 15]


def test_user_images_from_npy(tmp_path):
    f = tmp_path / "imgs.npy"
    np.save(f, np.random.default_rng(0).random((3, 3, 20, 20), dtype=np.float32))
    res = run_cli("record", "tiny", "--stimuli", str(f), "--layers", "features.0",
                  "--out", str(tmp_path / "run"))
    assert res.exit_code == 0, res.output


def _bad_npy(tmp_path, array):
    f = tmp_path / "bad.npy"
    np.save(f, array)
    return str(f)


BAD = {
    "unknown model": (["record", "nosuchnet"], "unknown model"),
    "unknown layer": (["--layers", "features.9"], "has no layer 'features.9'"),
    "unknown unit": (["--units", "7"], "choose channel < 4"),
    "unreadable units": (["--units", "middle"], "use center, all"),
    "unknown stimulus set": (["--stimuli", "nois:n=2"], "Did you mean: noise"),
    "wrong image shape": (["--stimuli", lambda p: _bad_npy(p, np.zeros((2, 16, 16, 3)))],
                          "shape (n, 3, H, H)"),
    "8-bit images": (["--stimuli", lambda p: _bad_npy(p, np.full((2, 3, 8, 8), 200, np.uint8))],
                     "divide 8-bit images by 255"),
    "missing image file": (["--stimuli", "nothere.npy"], "file not found"),
    "bad chunk size": (["--chunk-size", "0"], "chunk_size must be a positive"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_line(case, tmp_path):
    change, message = BAD[case]
    args = {"cmd": ["record", "tiny"], "--stimuli": "noise:n=2,size_px=16",
            "--layers": "features.0", "--out": str(tmp_path / "run")}
    if change[0] == "record":
        args["cmd"] = change
    else:
        value = change[1](tmp_path) if callable(change[1]) else change[1]
        args[change[0]] = value
    argv = args.pop("cmd") + [x for kv in args.items() for x in kv]
    res = run_cli(*argv)
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("artiphys: error: "), res.output
    assert message in lines[0]


def test_existing_run_needs_resume(tmp_path):
    argv = ["record", "tiny", "--stimuli", "noise:n=2,size_px=16", "--layers", "features.0",
            "--out", str(tmp_path)]
    assert run_cli(*argv).exit_code == 0
    res = run_cli(*argv)
    assert res.exit_code == 2 and "pass --resume" in res.output
    assert run_cli(*argv, "--resume").exit_code == 0
    res = run_cli(*argv[:-3], "features.1", "--out", str(tmp_path), "--resume")
    assert res.exit_code == 2 and "choose a new --out" in res.output


# ---- killed, then resumed ------------------------------------------------------------------
def _cli_process(out: Path, *extra: str) -> list[str]:
    return [sys.executable, str(HERE / "_recording_fakes.py"), "record", "slowtiny",
            "--stimuli", "noise:n=48,size_px=16", "--layers", "features.0,features.1,classifier.1",
            "--out", str(out), "--chunk-size", "8", "--batch-size", "4", *extra]


def test_killed_then_resumed_run_is_identical(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    whole = run_cli(*_cli_process(tmp_path / "whole")[2:])  # uninterrupted, in this process
    assert whole.exit_code == 0, whole.output

    out = tmp_path / "killed"
    proc = subprocess.Popen(_cli_process(out), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        first = out / "responses" / "classifier.1" / "chunk-00000.nc"
        deadline = time.monotonic() + 120
        while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    finished = [f for f in out.rglob("*.nc") if not f.name.startswith(".")]
    assert 0 < len(finished) < 18
    for f in finished:  # every visible file is complete
        with xr.open_dataset(f) as ds:
            ds.load()

    resumed = subprocess.run(_cli_process(out, "--resume"), env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert not [f for f in out.rglob("*") if ".tmp-" in f.name]
    a, b = load_run_responses(tmp_path / "whole"), load_run_responses(out)
    assert list(a) == list(b) == ["features.0", "features.1", "classifier.1"]
    for layer in a:
        xr.testing.assert_identical(a[layer], b[layer])
        assert a[layer].shape[0] == 48
