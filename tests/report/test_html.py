"""The report is built from stored results only."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from artiphys.errors import RunStoreError
from artiphys.report import build_report
from artiphys.tuning.orientation import grating_tuning


def _stored_tuning(run_dir):
    oris, sfs, phases = np.arange(0, 180, 30.0), np.array([0.1, 0.2]), np.arange(0, 360, 90.0)
    o, s, p = (a.ravel() for a in np.meshgrid(oris, sfs, phases, indexing="ij"))
    r = np.stack([np.cos(np.deg2rad(o - 60)) ** 2 * (1 + np.cos(np.deg2rad(p))), np.ones_like(o)], 1)
    resp = xr.DataArray(r, dims=("stimulus", "unit"),
                        coords={"orientation_deg": ("stimulus", o), "sf_cycles_per_px": ("stimulus", s),
                                "phase_deg": ("stimulus", p), "layer": ("unit", ["simple", "simple"]),
                                "channel": ("unit", [0, 1])})
    ds = grating_tuning(resp)
    ds["cell_class"] = ds["cell_class"].astype(str)
    (run_dir / "results").mkdir(parents=True)
    ds.to_netcdf(run_dir / "results" / "tuning.nc", engine="h5netcdf")
    (run_dir / "manifest.json").write_text(json.dumps({"model": "toy"}))


def test_report_draws_each_known_result_with_png_and_pdf(tmp_path):
    _stored_tuning(tmp_path)
    index = build_report(tmp_path)
    page = index.read_text()
    assert "Orientation tuning" in page and "&quot;model&quot;: &quot;toy&quot;" in page
    assert (index.parent / "fig01.png").stat().st_size > 1000
    assert (index.parent / "fig01.pdf").exists()
    assert page.count("<figure>") == 2


def test_report_of_missing_run_says_what_to_pass(tmp_path):
    with pytest.raises(RunStoreError, match="--out"):
        build_report(tmp_path / "nope")


def test_characterize_run_gets_overview_figures_and_capped_per_file_figures(tmp_path):
    from artiphys.store import RunDir, Step

    rng = np.random.default_rng(0)
    layers = {}
    run = RunDir.open_or_create(tmp_path)
    run.begin("characterize", "", config_digest="x")
    used = []
    for i, name in enumerate(["conv1", "conv2", "fc6"]):
        layers[name] = {c: {"n_units": 5, "apc_r_median": 0.2 + 0.1 * i, "ti_median": 0.3 + 0.2 * i,
                            "sparsity_median": 0.4} for c in ("trained", "untrained")}
        ds = xr.Dataset({"r": ("unit", rng.uniform(0, 1, 5)), "mu_a_deg": ("unit", np.zeros(5)),
                         "mu_c": ("unit", np.zeros(5))}, attrs={"analysis": "apc"})
        ti = xr.Dataset({"ti": ("unit", rng.uniform(0, 1, 5))}, attrs={"analysis": "ti"})
        for result, value in (("apc", ds), ("ti", ti)):
            step = Step(result, 1, {"layer": name}, {}, f"trained/{name}/{result}",
                        {"experiment": "characterize", "condition": "trained", "layer": name,
                         "result": result})
            run.steps.save(step, value)
            used.append(step.digest)
    run.end("characterize", steps=used)
    (tmp_path / "summary.json").write_text(json.dumps({"tests": ["apc", "ti"], "layers": layers,
                                                       "conditions": ["trained"]}))
    page = build_report(tmp_path, max_per_kind=2).read_text()
    assert "Overview" in page
    assert "across layers" in page and "Cumulative distributions of APC fit r" in page
    assert "Cumulative distributions of TI" in page
    assert page.count("Angular position x curvature (APC) fits.</b>") == 2   # capped at 2 of 3
    assert page.count("alt='Angular position x curvature (APC) fits'") == 2   # alt text
    # sections in the layers' order, titled by layer and analysis, not by file path
    assert page.index("<h2>conv1: apc, trained</h2>") < page.index("<h2>conv2: apc, trained</h2>")
    assert "1 apc results" in page
    assert used[0] not in page                                   # counts, not digests
    assert "&quot;steps&quot;: &quot;6 steps&quot;" in page


def test_unfinished_run_gets_a_banner_and_what_was_not_run(tmp_path):
    from artiphys.store import RunDir

    run = RunDir.open_or_create(tmp_path)
    run.begin("characterize", "", config_digest="x")          # never ended: still running
    (tmp_path / "summary.json").write_text(json.dumps(
        {"tests": ["apc"], "layers": {}, "skipped": ["natural: no image folder"]}))
    page = build_report(tmp_path).read_text()
    assert "This run is unfinished" in page and "characterize is running" in page
    assert "<h2>Not run</h2>" in page and "natural: no image folder" in page
