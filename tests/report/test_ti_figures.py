"""TI figures (Pospisil et al. 2018 Figs. 6-8) from synthetic stored results whose TI and
profiles are known: a unit whose shape tuning is the same at every position up to a
Gaussian gain (TI = 1, position correlation 1, RF profile = the gain), a random unit, a
constant unit (no TI: constant response) and one whose RF is narrower than the shapes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from artiphys.report.ti_figures import (V4_BEST, apc_ti_figures, ti_cdf_figures,
                                        ti_profile_figures, ti_unit_figures, ti_xy_figures)
from artiphys.tuning.ti import ti_from_sweep

POS = np.arange(-10, 11, 2)
N_SHAPES = 20
GAIN_SD_PX = 8.0
RF = [(-12.5, 12.5), (-30.5, 30.5), (-30.5, 30.5), (-2.0, 2.0)]   # edges, px
EXTENT = [-5.5, 5.5]                                              # the shapes at offset 0
LAYERS = ("conv1", "conv2")
EXAMPLES = {"conv1": [{"channel": 0, "reason": "highest TI"},
                      {"channel": 1, "reason": "median APC r (typical)"}],
            "conv2": [{"channel": 99, "reason": "not in the layer"},
                      {"channel": 3, "reason": "unit of interest"}]}
V4_MEDIAN_R = 0.46


def toy_sweep(seed: int, layer: str, axis: str = "x", rf=RF) -> xr.Dataset:
    """Sweep responses (position, shape, unit) of the four toy units."""
    rng = np.random.default_rng(seed)
    gain = np.exp(-POS**2 / (2 * GAIN_SD_PX**2))
    resp = np.empty((POS.size, N_SHAPES, 4))
    resp[:, :, 0] = gain[:, None] * rng.normal(size=N_SHAPES)[None]
    resp[:, :, 1] = rng.normal(size=(POS.size, N_SHAPES))
    resp[:, :, 2] = 1.0
    resp[:, :, 3] = gain[:, None] * rng.normal(size=N_SHAPES)[None]
    rf = np.asarray(rf, float)
    return xr.Dataset(
        {"responses": (("position", "shape", "unit"), resp), "blank": ("unit", np.zeros(4)),
         "rf_start_px": ("unit", rf[:, 0]), "rf_end_px": ("unit", rf[:, 1])},
        coords={"position_px": ("position", POS), "unit": np.arange(4),
                "channel": ("unit", np.arange(4)), "layer": ("unit", [layer] * 4)},
        attrs={"axis": axis, "stimulus_extent_px": EXTENT, "analysis": "ti_sweep"})


def _save(run, used, result, condition, layer, value):
    from artiphys.store import Step

    step = Step(result.removesuffix("_y"), 1,
                {"layer": layer, "condition": condition, "result": result}, {},
                f"{condition}/{layer}/{result}",
                {"experiment": "characterize", "condition": condition, "layer": layer,
                 "result": result})
    run.steps.save(step, value)
    used.append(step.digest)


def make_run(root: Path, *, with_ti: bool = True, apc_r=None, rf=RF) -> dict:
    """A characterize run with TI (x and y), controls, APC and example units; returns the
    stored TI results ``{(condition, layer, result): Dataset}``."""
    from artiphys.store import RunDir

    run = RunDir.open_or_create(root)
    run.begin("characterize", "", config_digest="x")
    used, stored = [], {}
    for k, la in enumerate(LAYERS):
        r = np.linspace(0.2, 0.8, 4) if apc_r is None else apc_r
        apc = xr.Dataset({"r": ("unit", r[::-1]), "mu_a_deg": ("unit", np.zeros(4)),
                          "mu_c": ("unit", np.zeros(4))},        # channels in reverse order
                         coords={"channel": ("unit", np.arange(4)[::-1])},
                         attrs={"analysis": "apc"})
        _save(run, used, "apc", "trained", la, apc)
        if not with_ti:
            continue
        for cond, seed in (("trained", 1), ("untrained", 2), ("untrained_seed1", 3)):
            sweep = toy_sweep(seed + 10 * k, la, rf=rf)
            _save(run, used, "ti_sweep", cond, la, sweep)
            stored[cond, la, "ti"] = ti_from_sweep(sweep)
            _save(run, used, "ti", cond, la, stored[cond, la, "ti"])
        sweep_y = toy_sweep(7 + k, la, axis="y", rf=rf)
        stored["trained", la, "ti_y"] = ti_from_sweep(sweep_y)
        _save(run, used, "ti_sweep_y", "trained", la, sweep_y)
        _save(run, used, "ti_y", "trained", la, stored["trained", la, "ti_y"])
        stored["shuffle", la, "ti_shuffle"] = ti_from_sweep(toy_sweep(1 + 10 * k, la, rf=rf),
                                                            shuffle_seed=0)
        _save(run, used, "ti_shuffle", "shuffle", la, stored["shuffle", la, "ti_shuffle"])
    from artiphys.store import Step

    ex = Step("examples", 1, {"n": 2}, {}, "trained/all/examples",
              {"experiment": "characterize", "condition": "trained", "layer": "all",
               "result": "examples"})
    run.steps.save(ex, {"layers": EXAMPLES})
    used.append(ex.digest)
    run.end("characterize", steps=used)
    return stored


SUMMARY = {"tests": ["apc", "ti"], "layer_order": list(LAYERS),
           "conditions": ["trained", "untrained", "untrained_seed1"],
           "control_seeds": {"untrained": ["untrained", "untrained_seed1"]},
           "layers": {la: {"trained": {"reference_r_median": V4_MEDIAN_R}} for la in LAYERS}}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tirun")
    return root, make_run(root)


def _by_gid(ax, gid):
    return [a for a in ax.get_children() if a.get_gid() == gid]


def _ax_titled(fig, start):
    return next(ax for ax in fig.axes if ax.get_title().startswith(start))


def test_known_toy_answers():
    ti = ti_from_sweep(toy_sweep(1, "conv1"))
    assert ti.ti.values[0] == pytest.approx(1.0)
    assert np.isnan(ti.ti.values[2:]).all()


def test_profile_figure_plots_the_stored_profiles_and_the_window(run):
    root, stored = run
    figs = ti_profile_figures(root, SUMMARY)
    assert len(figs) == 1
    title, caption, fig = figs[0]
    ti = stored["trained", "conv1", "ti"]
    ax = _ax_titled(fig, "conv1:0 (highest TI)")
    assert "TI = 1.00" in ax.get_title()
    corr, = _by_gid(ax, "corr")
    prof, = _by_gid(ax, "profile")
    np.testing.assert_allclose(corr.get_xdata(), POS)
    np.testing.assert_allclose(corr.get_ydata(), ti.position_correlation.values[:, 0])
    np.testing.assert_allclose(corr.get_ydata(), 1.0)
    np.testing.assert_allclose(prof.get_ydata(), np.exp(-POS**2 / (2 * GAIN_SD_PX**2)))
    window, = _by_gid(ax, "ti_window")          # the shapes (11 px) inside the 25 px RF
    np.testing.assert_allclose(window.get_xdata(), [-6, 6])
    band, = _by_gid(ax, "rf_band")
    assert (band.get_x(), band.get_x() + band.get_width()) == pytest.approx(RF[0])
    # the layer average: the constant unit has no correlation profile and is left out
    avg = _ax_titled(fig, "conv1: average of\n3 units")
    keep = [0, 1, 3]
    np.testing.assert_allclose(_by_gid(avg, "corr")[0].get_ydata(),
                               np.nanmean(ti.position_correlation.values[:, keep], 1))
    np.testing.assert_allclose(_by_gid(avg, "profile")[0].get_ydata(),
                               ti.rf_profile.values[:, keep].mean(1))
    assert "conv1: 2 example unit(s), average over 3 units" in caption
    assert "conv2: 1 example unit(s)" in caption and "px" in caption
    assert fig.axes[3].get_title().startswith("conv2:3 (unit of interest)")  # 99 skipped
    assert len([a for a in fig.axes if a.axison]) == 2 + 1 + 1 + 1   # 3 examples, 2 averages


def test_cdf_figures_by_layer_and_by_condition(run):
    root, stored = run
    figs = ti_cdf_figures(root, SUMMARY)
    assert [f[0] for f in figs] == ["Cumulative distributions of TI by layer",
                                    "TI distributions: trained vs controls, per layer"]
    _, caption, fig = figs[0]
    assert [a.get_title() for a in fig.axes if a.axison] == ["trained", "untrained", "shuffle"]
    line = next(ln for ln in fig.axes[0].get_lines() if ln.get_label() == "conv1")
    ti = stored["trained", "conv1", "ti"].ti.values
    np.testing.assert_allclose(np.unique(line.get_xdata()), np.sort(ti[np.isfinite(ti)]))
    assert line.get_ydata()[-1] == 1.0
    assert "conv1: trained 2/4 (1 constant response, 1 rf smaller than stimulus)" in caption
    assert "shuffle 2/4" in caption and "untrained_seed1 2/4" in caption
    _, caption2, fig2 = figs[1]
    ax = _ax_titled(fig2, "conv2")
    widths = sorted(ln.get_linewidth() for ln in ax.get_lines())
    assert len(widths) == 4 and widths[0] < widths[1]      # the seed is the thin line
    assert "Thin lines: further seeds (untrained_seed1)" in caption2


def test_xy_scatter_pairs_the_units(run):
    root, stored = run
    (title, caption, fig), = ti_xy_figures(root, SUMMARY)
    ax = _ax_titled(fig, "conv1")
    pts = _by_gid(ax, "units")[0].get_offsets()
    np.testing.assert_allclose(pts[:, 0], stored["trained", "conv1", "ti"].ti.values[:2])
    np.testing.assert_allclose(pts[:, 1], stored["trained", "conv1", "ti_y"].ti.values[:2])
    assert "n = 2" in ax.get_title() and "conv1 2, conv2 2" in caption
    stars = _by_gid(ax, "examples")[0].get_offsets()
    assert len(stars) == 2


def test_apc_ti_scatter_matches_channels_and_marks_v4(run):
    root, stored = run
    (title, caption, fig), = apc_ti_figures(root, SUMMARY)
    ax = _ax_titled(fig, "conv1")
    pts = _by_gid(ax, "units")[0].get_offsets()
    ti = stored["trained", "conv1", "ti"].ti.values
    r = np.linspace(0.2, 0.8, 4)                  # channel c's r (stored in reverse order)
    np.testing.assert_allclose(pts, np.c_[ti[:2], r[:2]])
    v4, = _by_gid(ax, "v4_best")
    assert (v4.get_xdata()[0], v4.get_ydata()[0]) == V4_BEST
    median, = _by_gid(ax, "v4_median_r")
    assert median.get_ydata()[0] == V4_MEDIAN_R
    stars = _by_gid(ax, "examples")[0].get_offsets()
    np.testing.assert_allclose(stars, np.c_[ti[:2], r[:2]])
    assert sorted(t.get_text() for t in ax.texts if t.get_text() in ("0", "1")) == ["0", "1"]
    assert "conv1 2, conv2 2" in caption and "El-Shamayleh" in caption


def test_unit_figure_shows_both_axes_and_the_cloud(run):
    root, stored = run
    (title, caption, fig), = ti_unit_figures(root, SUMMARY, "conv1", 1)
    assert title == "Translation invariance of conv1:1"
    assert len(fig.axes) == 3
    y_ax = _ax_titled(fig, "conv1:1, along y")
    np.testing.assert_allclose(_by_gid(y_ax, "corr")[0].get_ydata(),
                               stored["trained", "conv1", "ti_y"].position_correlation.values[:, 1])
    star = _by_gid(fig.axes[2], "examples")[0].get_offsets()
    np.testing.assert_allclose(star, [[stored["trained", "conv1", "ti"].ti.values[1], 0.4]])
    assert "n = 2" in caption and "11 in-RF positions" in caption
    (_, caption3, _), = ti_unit_figures(root, SUMMARY, "conv1", 2)
    assert "constant response" in caption3 and "lacks a TI" in caption3
    assert ti_unit_figures(root, SUMMARY, "conv1", 99) == []
    assert ti_unit_figures(root, SUMMARY, "fc9", 0) == []


def test_makers_return_nothing_for_a_run_without_ti(tmp_path):
    make_run(tmp_path, with_ti=False)
    for maker in (ti_profile_figures, ti_cdf_figures, ti_xy_figures, apc_ti_figures):
        assert maker(tmp_path, SUMMARY) == []
        assert maker(tmp_path, {}) == []
    assert ti_unit_figures(tmp_path, SUMMARY, "conv1", 0) == []
    assert ti_profile_figures(tmp_path / "missing", {}) == []


def test_a_run_whose_units_all_lack_a_ti_says_so(tmp_path):
    make_run(tmp_path, rf=[(-2.0, 2.0)] * 4)          # every RF narrower than the shapes
    (_, caption, fig), _ = ti_cdf_figures(tmp_path, SUMMARY)
    assert "conv1: trained 0/4 (4 rf smaller than stimulus)" in caption
    assert all(_by_gid(ax, "empty") for ax in fig.axes if ax.axison)
    assert apc_ti_figures(tmp_path, SUMMARY) == []
    assert ti_xy_figures(tmp_path, SUMMARY) == []
    (_, caption, fig), = ti_profile_figures(tmp_path, SUMMARY)   # profiles need no TI
    assert "TI undefined" in _ax_titled(fig, "conv1:0").get_title()
    (_, caption, fig), = ti_unit_figures(tmp_path, SUMMARY, "conv1", 0)
    assert "rf smaller than stimulus" in caption and _by_gid(fig.axes[-1], "empty")


def test_a_run_swept_along_y_only_gets_its_figures(tmp_path):
    from artiphys.store import RunDir

    run = RunDir.open_or_create(tmp_path)
    run.begin("characterize", "", config_digest="x")
    used = []
    sweep = toy_sweep(1, "conv1", axis="y")
    _save(run, used, "ti_sweep_y", "trained", "conv1", sweep)
    _save(run, used, "ti_y", "trained", "conv1", ti_from_sweep(sweep))
    run.end("characterize", steps=used)
    (_, caption, fig), = ti_profile_figures(tmp_path, SUMMARY)
    assert "shifted along y" in caption
    assert _by_gid(_ax_titled(fig, "conv1: average"), "rf_band")    # the y sweep's RF
    (_, caption, _), = ti_cdf_figures(tmp_path, SUMMARY)
    assert "along y" in caption and "conv1: trained 2/4" in caption
    assert ti_xy_figures(tmp_path, SUMMARY) == []


@pytest.mark.parametrize("name", ["demo", "sq"])
def test_reference_run_gets_its_ti_figures(name):
    root = Path("/work/runs") / name
    if not (root / "summary.json").is_file():
        pytest.skip(f"the {name} reference run is not there (or not finished)")
    summary = json.loads((root / "summary.json").read_text())
    (_, caption, fig), *_ = ti_profile_figures(root, summary)
    layers = [la for la in summary["layer_order"] if la in caption]
    assert layers and all(f"{la}: " in caption for la in layers)
    cdf = ti_cdf_figures(root, summary)
    assert cdf and "Units with a defined TI / all units" in cdf[0][1]
    for title, caption, _ in apc_ti_figures(root, summary):
        assert "n = units with both defined" in caption
