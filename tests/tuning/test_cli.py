"""The characterize / apc / ti commands, end to end on a small built-in model."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from artiphys.cli import main
from artiphys.report.results import run_results


def one(out, **meta):
    found = run_results(out, **meta)
    assert len(found) == 1, (meta, found)
    return found[0].load()
from artiphys.experiments.record import load_responses
from artiphys.tuning.apc import fit_apc


def test_characterize_writes_summary_and_resumes(tmp_path, reference_dir):
    out = tmp_path / "char"
    args = ["characterize", "neuromatch_conv", "--synthesis", "none", "--control-seeds", "1", "--layers", "conv,relu",
            "--tests", "apc,ti,sparsity",
            "--controls", "shuffle,untrained", "--ti-extent", "8", "--ti-axes", "x,y",
            "--reference", str(reference_dir / "v4_apc_fits_pc2001_109cells.csv"),
            "--out", str(out)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    rows = summary["layers"]["relu"]
    assert set(rows) == {"analytic", "shuffle", "untrained"}
    for key in ("n_units", "apc_r_median", "apc_r_frac_gt_0.5", "ti_median", "sparsity_median",
                "n_ti_defined"):
        assert key in rows["analytic"] and key in rows["untrained"]
    assert rows["analytic"]["n_units"] == 6 and "apc_r_median" in rows["shuffle"]
    assert "ti_y_median" in rows["analytic"] and "ti_xy_r" in rows["analytic"]
    # the 32 px shapes never fit the 7 px RF of neuromatch_conv: TI is undefined (the
    # stimulus-in-RF window, issue 12), and the summary says why
    assert rows["analytic"]["ti_median"] is None and rows["shuffle"]["ti_median"] is None
    assert rows["analytic"]["n_ti_defined"] == 0
    assert 0 <= rows["analytic"]["ks_vs_reference"] <= 1
    # both layers were fit in one stacked call and split back with their own unit coords
    conv = one(out, condition="analytic", layer="conv", result="apc")
    assert conv.layer.values.tolist() == ["conv"] * 6
    assert conv.channel.values.tolist() == list(range(6))
    assert conv.attrs["model"] == "neuromatch_conv" and conv.attrs["layer"] == "conv"
    assert summary["layers"]["conv"]["analytic"]["n_units"] == 6
    assert rows["analytic"]["distance_to_ideal_median"] is None  # needs TI (see above)
    apc = one(out, condition="analytic", layer="relu", result="apc")
    assert set(apc.data_vars) >= {"r", "mu_a_deg", "sigma_a_deg", "mu_c", "sigma_c", "flags"}
    ti_file = run_results(out, condition="analytic", layer="relu", result="ti")[0].path
    stamp = ti_file.stat().st_mtime_ns
    res = CliRunner().invoke(main, args + ["--resume"])
    assert res.exit_code == 0, res.output
    assert ti_file.stat().st_mtime_ns == stamp
    assert "[1/" in res.output and "left" in res.output  # numbered steps with an ETA


def test_resume_after_a_changed_setting_recomputes_only_its_steps(tmp_path):
    out = tmp_path / "char"
    args = ["characterize", "neuromatch_conv", "--synthesis", "none", "--control-seeds", "1", "--layers", "relu", "--tests", "apc,ti",
            "--controls", "shuffle", "--ti-extent", "8", "--out", str(out)]
    assert CliRunner().invoke(main, args).exit_code == 0
    log_before = (out / "run.log").read_text()
    res = CliRunner().invoke(main, args + ["--ti-step", "4", "--resume"])
    assert res.exit_code == 0, res.output
    new = (out / "run.log").read_text()[len(log_before):]
    actions = Counter(tuple(line.split()[1:3]) for line in new.splitlines()
                      if line.split()[1] in ("reused", "computed"))
    assert actions[("reused", "analytic/relu/responses")] == 1
    assert actions[("reused", "analytic/relu/apc")] == 1
    assert actions[("computed", "analytic/relu/ti_sweep")] == 1
    assert actions[("computed", "analytic/relu/ti")] == 1
    assert not any(a == "computed" and "apc" in p for a, p in actions)
    # the report and summary draw the current TI only, not the old one still on disk
    assert len(run_results(out, condition="analytic", layer="relu", result="ti")) == 1
    ti = one(out, condition="analytic", layer="relu", result="ti")
    assert list(ti.position_px.values[:2]) == [-8.0, -4.0]
    assert 'ti_step_px = 4' in (out / "config.toml").read_text()


def test_dump_config_then_config_reproduces_the_run(tmp_path):
    args = ["characterize", "neuromatch_conv", "--synthesis", "none", "--control-seeds", "1", "--layers", "relu", "--tests", "apc,sparsity",
            "--controls", "shuffle"]
    dumped = CliRunner().invoke(main, args + ["--dump-config"])
    assert dumped.exit_code == 0 and 'experiment = "characterize"' in dumped.output
    toml = tmp_path / "run.toml"
    toml.write_text(dumped.output)
    a = CliRunner().invoke(main, args + ["--out", str(tmp_path / "a")])
    b = CliRunner().invoke(main, ["characterize", "--config", str(toml), "--out",
                                  str(tmp_path / "b")])
    assert a.exit_code == 0 and b.exit_code == 0, b.output
    sa = json.loads((tmp_path / "a" / "summary.json").read_text())
    sb = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert sa["layers"] == sb["layers"]
    assert (tmp_path / "a" / "config.toml").read_text() == toml.read_text()


@pytest.mark.parametrize("bad, message", [
    (["--tests", "apc,colour"], "unknown value 'colour'"),
    (["--ti-step", "0"], "ti_step_px: must be a positive"),
    (["--ti-extent", "-5"], "ti_extent_px: must be at least"),
    (["--cv-folds", "1"], "cv_folds: must be 0 (off) or at least 2"),
    (["--tests", ""], "name at least one analysis"),
    (["--kurtosis-filter", "abc"], "kurtosis-filter"),
])
def test_characterize_bad_settings_are_one_line_errors(tmp_path, bad, message):
    res = CliRunner().invoke(main, ["characterize", "neuromatch_conv", "--synthesis", "none", "--control-seeds", "1", "--layers", "relu",
                                    *bad, "--out", str(tmp_path / "x")])
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x").exists()


def test_unknown_config_key_is_named(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('experiment = "characterize"\nti_stpe_px = 3\n[model]\nname = "v1bank"\n')
    res = CliRunner().invoke(main, ["characterize", "--config", str(toml), "--out",
                                    str(tmp_path / "o")])
    assert res.exit_code == 2 and "unknown setting 'ti_stpe_px'" in res.output
    assert "Did you mean: ti_step_px" in res.output
    toml.write_text('experiment = "characterize"\nti_step_px = "two"\n')
    res = CliRunner().invoke(main, ["characterize", "--config", str(toml), "--out",
                                    str(tmp_path / "o")])
    assert res.exit_code == 2 and "ti_step_px: expected int, got 'two'" in res.output


def test_natural_without_images_is_skipped_and_said(tmp_path, monkeypatch):
    monkeypatch.delenv("ARTIPHYS_NATURAL_IMAGES", raising=False)
    res = CliRunner().invoke(main, ["characterize", "neuromatch_conv", "--synthesis", "none", "--control-seeds", "1", "--layers", "relu",
                                    "--tests", "apc,natural", "--controls", "",
                                    "--out", str(tmp_path / "n")])
    assert res.exit_code == 0, res.output
    assert "skipped natural" in res.output and "--images" in res.output
    summary = json.loads((tmp_path / "n" / "summary.json").read_text())
    assert summary["skipped"] and "natural" not in summary["tests"]


@pytest.mark.slow
def test_apc_and_ti_commands_on_recorded_runs(tmp_path):
    runner = CliRunner()
    rec = tmp_path / "rec"
    res = runner.invoke(main, ["record", "neuromatch_conv", "--stimuli", "shapes:canvas_px=65",
                               "--layers", "relu", "--out", str(rec)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["apc", str(rec), "--out", str(tmp_path / "a"), "--cv-folds", "3",
                               "--shuffle", "2", "--quiet"])
    assert res.exit_code == 0, res.output
    row = json.loads(res.output)["relu"]
    assert row["n_units"] == 6 and row["shuffle_r_median"] < row["apc_r_median"]
    sweep = tmp_path / "sweep"
    res = runner.invoke(main, ["record", "neuromatch_conv", "--stimuli",
                               "shapes_sweep:axis=x,extent_px=8,canvas_px=65", "--layers", "relu",
                               "--out", str(sweep)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["ti", str(sweep), "--out", str(tmp_path / "a"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["relu"]["n_units"] == 6
    res = runner.invoke(main, ["ti", str(rec), "--out", str(tmp_path / "b"), "--quiet"])
    assert res.exit_code == 2 and "sweep" in res.output
    # the analyses can live in the recorded run itself (one study)
    res = runner.invoke(main, ["apc", str(rec), "--out", str(rec), "--quiet"])
    assert res.exit_code == 0, res.output
    assert set(json.loads((rec / "manifest.json").read_text())["experiments"]) == {"record",
                                                                                  "apc"}


@pytest.mark.slow
def test_apc_features_csv_is_joined_by_stimulus_identity(tmp_path, reference_dir):
    """`apc --features` with the authors' 370-row table fits the 362 recorded shapes by
    index_370: the same fit as the package given features looked up stimulus by stimulus."""
    runner = CliRunner()
    rec = tmp_path / "rec"
    res = runner.invoke(main, ["record", "neuromatch_conv", "--stimuli", "shapes:canvas_px=65",
                               "--layers", "relu", "--out", str(rec)])
    assert res.exit_code == 0, res.output
    csv = reference_dir / "pc2001_370_apc_features.csv"
    res = runner.invoke(main, ["apc", str(rec), "--out", str(tmp_path / "a"), "--features",
                               str(csv), "--quiet"])
    assert res.exit_code == 0, res.output
    got = one(tmp_path / "a", layer="relu", result="apc")
    da = load_responses(rec, "relu")
    raw = pd.read_csv(csv)
    by_hand = [raw.loc[raw.stimulus_index == k, ["angular_position_rad", "curvature"]].to_numpy()
               for k in da["index_370"].values]
    want = fit_apc(da.values, by_hand, device="cpu")  # a plain array: no coordinate to join by
    assert got.model_index.values.tolist() == want.model_index.values.tolist()
    assert np.allclose(got.r.values, want.r.values, atol=1e-9)
    assert len(set(want.model_index.values.tolist())) > 1
    unjoinable = tmp_path / "positional.csv"
    raw[raw.stimulus_index < 361].to_csv(unjoinable, index=False)
    res = runner.invoke(main, ["apc", str(rec), "--out", str(tmp_path / "b"), "--features",
                               str(unjoinable), "--quiet"])
    assert res.exit_code != 0 and "no rows for index_370 = 361" in res.output
    assert "Traceback" not in res.output


def test_battery_controls_over_seeds_rf_sized_shapes_and_confounds(tmp_path):
    out = tmp_path / "b"
    res = CliRunner().invoke(main, [
        "characterize", "neuromatch_conv", "--synthesis", "none", "--layers", "conv,relu",
        "--tests", "apc,ti", "--controls", "shuffle,untrained", "--control-seeds", "2",
        "--shape-size", "rf:0.5", "--ti-step", "1", "--ti-extent", "6", "--quiet",
        "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["control_seeds"] == {"untrained": ["untrained", "untrained_seed1"]}
    rows = summary["layers"]["relu"]
    assert set(rows) == {"analytic", "shuffle", "untrained", "untrained_seed1"}
    size = summary["shape_sizes"]["relu"]
    assert size["spec"] == "rf:0.5" and size["size_px"] == 0.5 * size["rf_size_px"][1]
    assert rows["analytic"]["n_ti_defined"] > 0  # shapes sized to the RF fit inside it
    for key in ("area_r_median", "apc_r_partial_area_median", "frac_apc_beats_area"):
        assert key in rows["analytic"]
    versus = summary["seed_statistics"]["relu"]["apc_r"]["versus"]["untrained"]
    assert 0 <= versus["p_value"] <= 1
    per_seed = summary["seed_statistics"]["relu"]["apc_r"]["conditions"]["untrained"]
    assert per_seed["n_seeds"] == 2 and len(per_seed["median_per_seed"]) == 2
    assert summary["first_sublayers"] == ["conv"]
