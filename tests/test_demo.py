"""The main job of `make demo` recovers the known answers of the built-in V1 model."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from artiphys.cli import main


@pytest.mark.slow
def test_demo_recovers_designed_tuning_and_writes_report(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "demo_summary.json").read_text())
    layers = summary["layers"]
    assert layers["simple"]["frac_simple"] == 1.0
    assert layers["complex_energy"]["frac_simple"] == 0.0
    assert layers["complex_energy"]["f1_f0_median"] < 1e-3      # exactly phase-invariant
    for name in ("simple", "complex_energy", "complex_hw"):
        assert layers[name]["orientation_error_deg_max"] < 0.5
        assert 0 < layers[name]["apc_r_median"] < 1
    assert (out / "report" / "index.html").exists()
    # the battery ran into the same run: APC, TI, controls and example units' maximal images
    manifest = json.loads((out / "manifest.json").read_text())
    assert {k: v["status"] for k, v in manifest["experiments"].items()} == {
        "characterize": "finished", "demo": "finished"}
    battery = json.loads((out / "summary.json").read_text())
    layers = battery["layers"]
    assert "complex_energy.pool" in layers and "simple.linear" in layers
    assert (out / "configs" / "characterize.toml").is_file()
    again = CliRunner().invoke(main, ["demo", "--out", str(out), "--resume"])
    assert again.exit_code == 0, again.output
    log = (out / "run.log").read_text().split("demo: finished")[1]   # the resumed runs
    assert "characterize: resumed" in log and "demo: resumed" in log
    assert "computed" not in log and "reused" in log      # a resumed demo recomputes nothing
    assert "report:" in result.output and str(out) in result.output
