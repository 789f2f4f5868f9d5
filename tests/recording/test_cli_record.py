"""`artiphys record`: writes a run with provenance; bad input exits 2 with one line that
says what to do; a killed run resumes to identical results.

Real models through ``artiphys.models.load_model`` (squeezenet1_0 with the real weights in
``ARTIPHYS_WEIGHTS_DIR``, run at a small input size to stay fast). The quick kill test uses
``_recording_fakes.py`` (a tiny net that sleeps per batch, so the kill lands mid-run).
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
from click.testing import CliRunner

from artiphys.cli import main
from artiphys.experiments.record import load_run_responses

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
SQUEEZENET_SHA256 = "5f23fefb1629153a92b8098aef7bd574e5110dc8eb754d975a77bac347b05e24"
SQ = ["squeezenet1_0", "--input-size", "64"]

# squeezenet1_0's real weights come from ARTIPHYS_WEIGHTS_DIR, set by tests/conftest.py from
# ../shared (or ARTIPHYS_SHARED): without it these tests fail saying so, not on a download
pytestmark = pytest.mark.usefixtures("weights_dir")


def run_cli(*args):
    return CliRunner().invoke(main, list(args))


def base_args(tmp_path, **change):
    args = {"--stimuli": "noise:n=2,size_px=64", "--layers": "features.0",
            "--out": str(tmp_path / "run")}
    args.update(change)
    return ["record", *SQ] + [x for kv in args.items() for x in kv]


def test_record_squeezenet_with_real_weights(tmp_path, weights_dir):
    out = tmp_path / "run"
    res = run_cli("record", *SQ, "--stimuli", "noise:n=6,size_px=64", "--layers",
                  "features.0,features.3,classifier.1", "--out", str(out), "--chunk-size", "4")
    assert res.exit_code == 0, res.output
    assert "recorded 6 stimuli x 3 layer(s) of squeezenet1_0" in res.output
    m = json.loads((out / "manifest.json").read_text())["experiments"]["record"]
    assert m["model"]["weights_sha256"] == SQUEEZENET_SHA256
    assert m["model"]["input_size_px"] == 64 and m["stimuli"]["meta"]["seed"] == 0
    assert m["command"][0] == "artiphys" and m["status"] == "finished"
    assert 'stimuli = "noise:n=6,size_px=64"' in (out / "config.toml").read_text()
    da = load_run_responses(out)
    assert da["features.0"].shape == (6, 96) and da["features.3"].shape == (6, 128)
    assert da["classifier.1"].shape == (6, 1000)
    assert list(da["features.0"].seed.values) == list(range(6))


def test_units_option(tmp_path):
    res = run_cli(*base_args(tmp_path, **{"--units": "1:0:0,3:28:28"}))
    assert res.exit_code == 0, res.output
    da = load_run_responses(tmp_path / "run")["features.0"]
    assert list(da.channel.values) == [1, 3] and list(da.y.values) == [0, 28]


def test_user_images_from_npy(tmp_path):
    f = tmp_path / "imgs.npy"
    np.save(f, np.random.default_rng(0).random((3, 3, 20, 20), dtype=np.float32))
    res = run_cli(*base_args(tmp_path, **{"--stimuli": str(f)}))
    assert res.exit_code == 0, res.output
    assert load_run_responses(tmp_path / "run")["features.0"].shape == (3, 96)


def _npy(tmp_path, array):
    f = tmp_path / "bad.npy"
    np.save(f, array)
    return str(f)


BAD = {
    "unknown model": ({}, "unknown model 'nosuchnet'"),
    "unknown layer": ({"--layers": "features.99"}, "has no layer 'features.99'"),
    "unknown unit": ({"--units": "96"}, "choose channel < 96"),
    "unreadable units": ({"--units": "middle"}, "use center, all"),
    "unknown stimulus set": ({"--stimuli": "nois:n=2"}, "Did you mean: noise"),
    "wrong image shape": ({"--stimuli": lambda p: _npy(p, np.zeros((2, 16, 16, 3)))},
                          "shape (n, 3, H, H)"),
    "8-bit images": ({"--stimuli": lambda p: _npy(p, np.full((2, 3, 8, 8), 200, np.uint8))},
                     "divide 8-bit images by 255"),
    "missing image file": ({"--stimuli": "nothere.npy"}, "file not found"),
    "bad chunk size": ({"--chunk-size": "0"}, "chunk_size: must be a positive"),
    "input too small": ({"--input-size": "16", "--layers": "classifier.1"}, "--input-size"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_line(case, tmp_path):
    change, message = BAD[case]
    change = {k: (v(tmp_path) if callable(v) else v) for k, v in change.items()}
    argv = base_args(tmp_path, **change)
    if case == "unknown model":
        argv[1] = "nosuchnet"
    res = run_cli(*argv)
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("artiphys: error: "), res.output
    assert message in lines[0] and "Traceback" not in res.output
    assert not (tmp_path / "run").exists()  # nothing left that would need --resume


def test_existing_run_needs_resume(tmp_path):
    argv = base_args(tmp_path)
    assert run_cli(*argv).exit_code == 0
    res = run_cli(*argv)
    assert res.exit_code == 2 and "pass --resume" in res.output
    assert run_cli(*argv, "--resume").exit_code == 0
    # resume with other settings: the steps they change are computed, the rest reused
    res = run_cli(*base_args(tmp_path, **{"--layers": "features.0,features.1"}), "--resume")
    assert res.exit_code == 0, res.output
    assert list(load_run_responses(tmp_path / "run")) == ["features.0", "features.1"]
    assert "reused responses/features.0" in (tmp_path / "run" / "run.log").read_text()
    res = run_cli(*argv, "--restart")
    assert res.exit_code == 0 and list(load_run_responses(tmp_path / "run")) == ["features.0"]


# ---- killed, then resumed ------------------------------------------------------------------
def _kill_after_first_chunk(cmd: list[str], out: Path, first: str, env: dict) -> None:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob(first)) and proc.poll() is None and \
                time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    finished = [f for f in out.rglob("*.nc") if not f.name.startswith(".")]
    assert finished
    for f in finished:  # every visible file is complete
        with xr.open_dataset(f) as ds:
            ds.load()


def _check_resume(cmd: list[str], out: Path, whole: Path, env: dict, layers: list[str]) -> None:
    resumed = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert not [f for f in out.rglob("*") if ".tmp-" in f.name]
    a, b = load_run_responses(whole), load_run_responses(out)
    assert list(a) == list(b) == layers
    for layer in layers:
        xr.testing.assert_identical(a[layer], b[layer])


def test_killed_then_resumed_run_is_identical(tmp_path):
    """Quick version: a tiny net that sleeps 50 ms per batch, 6 chunks."""
    layers = ["features.0", "features.1", "classifier.1"]

    def cmd(out):
        return [sys.executable, str(HERE / "_recording_fakes.py"), "record", "slowtiny",
                "--stimuli", "noise:n=48,size_px=16", "--layers", ",".join(layers),
                "--out", str(out), "--chunk-size", "8", "--batch-size", "4"]

    env = {**os.environ, "PYTHONPATH": str(SRC)}
    from _recording_fakes import load_fake_model

    import artiphys.models
    real = artiphys.models.load_model
    artiphys.models.load_model = load_fake_model
    try:  # the uninterrupted run, in this process
        whole = run_cli(*cmd(tmp_path / "whole")[2:])
    finally:
        artiphys.models.load_model = real
    assert whole.exit_code == 0, whole.output
    out = tmp_path / "killed"
    _kill_after_first_chunk(cmd(out), out, "responses/classifier.1/chunk-00000.*.nc", env)
    _check_resume(cmd(out), out, tmp_path / "whole", env, layers)


@pytest.mark.slow
def test_killed_squeezenet_run_resumes_identically(tmp_path, weights_dir):
    """`python -m artiphys record` on SqueezeNet with the real weights, SIGKILLed after its
    first chunk, resumed with --resume: identical to an uninterrupted run."""
    layers = ["features.0", "features.12.expand3x3_activation", "classifier.1"]

    def cmd(out):
        return [sys.executable, "-m", "artiphys", "record", "squeezenet1_0", "--input-size", "128",
                "--stimuli", "noise:n=160,size_px=128", "--layers", ",".join(layers),
                "--out", str(out), "--chunk-size", "16", "--batch-size", "8"]

    env = {**os.environ, "PYTHONPATH": str(SRC), "ARTIPHYS_WEIGHTS_DIR": str(weights_dir)}
    whole = subprocess.run(cmd(tmp_path / "whole"), env=env, capture_output=True, text=True,
                           timeout=600)
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "killed"
    _kill_after_first_chunk(cmd(out), out, "responses/classifier.1/chunk-00000.*.nc", env)
    _check_resume(cmd(out), out, tmp_path / "whole", env, layers)
