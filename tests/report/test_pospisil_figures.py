"""Pospisil et al. (2018) report figures, drawn from a small synthetic run store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from artiphys.report import figures, pospisil_figures as pf, pospisil_units as pu
from artiphys.stimuli.shapes import shapes
from artiphys.store import RunDir, Step
from artiphys.tuning.apc import apc_unit_responses
from artiphys.tuning.sparsity import (natural_to_shape_max_ratio, response_histograms,
                                      sparsity, top_bottom_stimuli)

LAYERS = ["L1", "L2"]
CONDITIONS = ["trained", "untrained", "untrained_seed1"]
SIZE_PX, CANVAS_PX = 16, 48
#: APC parameters of the synthetic units (channel 0 is a pure APC unit, 1 a noisy one)
PARAMS = {"mu_a_deg": [90.0, 225.0, 0.0], "sigma_a_deg": [44.0, 30.0, 60.0],
          "mu_c": [0.9, -0.1, 0.3], "sigma_c": [0.3, 0.2, 0.5]}


def _shape_responses(seed: int) -> xr.DataArray:
    """Responses of three units to the 362 shapes: APC models plus noise (coords as the
    battery stores them)."""
    from artiphys.stimuli.apc_features import apc_features

    stim = shapes(size_px=SIZE_PX, canvas_px=CANVAS_PX)
    p = stim.params
    clean = apc_unit_responses(apc_features(stim), PARAMS)
    noise = np.random.default_rng(seed).normal(0, [0.0, 0.2, 0.5], clean.shape)
    coords = {c: ("stimulus", p[c].to_numpy()) for c in
              ("shape_id", "rotation", "x_px", "y_px", "size_px", "canvas_px", "intensity")}
    coords.update(stimulus=np.arange(len(p)), layer=("unit", ["L"] * 3),
                  channel=("unit", [0, 1, 2]), y=("unit", [24] * 3), x=("unit", [24] * 3))
    return xr.DataArray(clean + noise, dims=("stimulus", "unit"), coords=coords)


def _fit(resp: xr.DataArray, seed: int) -> xr.Dataset:
    """An APC result on the units of ``resp`` with the synthetic parameters (unit 2: no
    fit, as a constant unit)."""
    r = np.array([np.corrcoef(apc_unit_responses(
        pu._features(tuple(zip(resp.shape_id.values.tolist(), resp.rotation.values.tolist()))),
        {k: [v[u]] for k, v in PARAMS.items()})[:, 0], resp.values[:, u])[0, 1]
        for u in range(3)])
    r[2] = np.nan
    data = {"r": ("unit", r), **{k: ("unit", np.asarray(v) + 0 * seed) for k, v in PARAMS.items()}}
    return xr.Dataset(data, coords={"channel": ("unit", [0, 1, 2])}, attrs={"analysis": "apc"})


class _Store:
    def __init__(self, path: Path):
        self.run = RunDir.open_or_create(path)
        self.run.begin("characterize", "", config_digest="x")
        self.used = []

    def save(self, condition, layer, name, value, **meta):
        tag = meta.get("set", "")
        step = Step(name, 1, {"c": condition, "l": layer, "s": tag}, {},
                    f"{condition}/{layer}/{name}{tag}",
                    {"experiment": "characterize", "condition": condition, "layer": layer,
                     "result": name, **meta})
        self.run.steps.save(step, value)
        self.used.append(step.digest)

    def close(self, summary: dict):
        self.run.end("characterize", steps=self.used)
        (self.run.path / "summary.json").write_text(json.dumps(summary))


def _summary(ref_csv: Path | None) -> dict:
    rows = {la: {"trained": {"natural_shape_ratio_top_mean": 0.5 + i,
                             "natural_shape_ratio_top_sd": 0.1,
                             "natural_shape_ratio_top_n_used": 2,
                             "natural_shape_ratio_top_n_excluded": 1}}
            for i, la in enumerate(LAYERS)}
    return {"tests": ["apc", "ti", "sparsity", "natural"], "layers": rows,
            "conditions": CONDITIONS, "layer_order": LAYERS,
            "control_seeds": {"untrained": CONDITIONS[1:]},
            "layer_paths": {"L1": "features.1", "L2": "features.4"},
            "shape_sizes": {la: {"size_px": SIZE_PX, "input_px": CANVAS_PX} for la in LAYERS},
            "reference_fits": str(ref_csv) if ref_csv else None}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run with every input of the makers: two layers, a control with two seeds and the
    shuffle control, example units and a V4 reference table."""
    path = tmp_path_factory.mktemp("run")
    store, data = _Store(path), {}
    ref = path / "v4.csv"
    ref.write_text("cell,r\n" + "\n".join(f"c{i},{v}" for i, v in enumerate([0.2, 0.5, 0.7])))
    for k, cond in enumerate(CONDITIONS):
        for i, la in enumerate(LAYERS):
            resp = _shape_responses(10 * k + i).assign_coords(layer=("unit", [la] * 3))
            natural = resp.isel(stimulus=slice(0, 20)) * 0.5
            store.save(cond, la, "responses", resp.to_dataset(name="responses"), set="shapes")
            hist = response_histograms({"shapes": resp, "natural": natural}, bins=10)
            fit = _fit(resp, k)
            for name, value in (("histograms", hist), ("sparsity", sparsity(resp)),
                                ("top_bottom", top_bottom_stimuli(resp, 8)), ("apc", fit),
                                ("natural_ratio", natural_to_shape_max_ratio(natural, resp))):
                store.save(cond, la, name, value)
                data[cond, la, name] = value
            data[cond, la, "responses"] = resp
            if k == 0:
                ti = xr.Dataset({"ti": ("unit", [0.9, 0.4, np.nan])},
                                coords={"channel": ("unit", [0, 1, 2])}, attrs={"analysis": "ti"})
                store.save(cond, la, "ti", ti)
                data[cond, la, "ti"] = ti
                shuffled = fit.assign(r=("unit", [0.05, -0.02, np.nan]))
                store.save("shuffle", la, "apc_shuffle", shuffled)
                data["shuffle", la, "apc"] = shuffled
    examples = {"layers": {la: [{"channel": 0, "reason": "highest APC r"},
                                {"channel": 1, "reason": "median APC r (typical)"}]
                           for la in LAYERS}}
    store.save("trained", "all", "examples", examples)
    summary = _summary(ref)
    store.close(summary)
    return path, summary, data


def test_fig4_panels_draw_the_stored_counts_on_log_axes(run):
    path, summary, data = run
    [(title, caption, fig), (_, scaption, sfig)] = pf.response_distribution_figures(path,
                                                                                   summary)
    axes = [a for a in fig.axes if a.patches]
    assert [a.get_title() for a in axes] == LAYERS
    for ax, la in zip(axes, LAYERS):
        hist = data["trained", la, "histograms"]
        drawn = [p.get_data().values for p in ax.patches]
        assert len(drawn) == 2
        np.testing.assert_array_equal(drawn[0], hist["count"].sel(set="shapes").values)
        np.testing.assert_array_equal(drawn[1], hist["count"].sel(set="natural").values)
        assert ax.get_yscale() == "log"
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels == [f"standard shapes (n={362 * 3})", f"natural images (n={20 * 3})"]
    assert "Fig. 4" in title and "log-scaled" in caption
    # sparseness: the model and the first seed of the control, constant-free units counted
    sp = data["trained", "L1", "sparsity"]["lifetime_sparseness"].values
    assert f"L1: trained {np.isfinite(sp).sum()} of 3, untrained 3 of 3" in scaption
    assert len([a for a in sfig.axes if a.patches]) == 2


def test_fig5gh_cdfs_match_the_fits_controls_and_reference(run):
    path, summary, data = run
    (gtitle, gcap, gfig), (htitle, hcap, hfig) = pf.apc_cdf_figures(path, summary)
    assert "Cumulative distributions of APC fit r" in gtitle
    lines = gfig.axes[0].lines
    assert [ln.get_label() for ln in lines] == LAYERS + ["V4 (v4.csv)"]
    r = data["trained", "L1", "apc"]["r"].values
    np.testing.assert_allclose(lines[0].get_xdata()[1:], np.sort(r[np.isfinite(r)]))
    np.testing.assert_allclose(lines[0].get_ydata()[-1], 1.0)
    np.testing.assert_allclose(lines[-1].get_xdata()[1:], [0.2, 0.5, 0.7])
    assert "units with a fit: L1 2, L2 2" in gcap and "n = 3" in gcap
    panels = [a for a in hfig.axes if a.lines]
    assert [a.get_title() for a in panels] == LAYERS
    # trained, 2 untrained seeds, shuffle, V4
    assert len(panels[1].lines) == 5
    shuffle = [ln for ln in panels[1].lines if ln.get_label() == "shuffle"][0]
    np.testing.assert_allclose(shuffle.get_xdata()[1:], [-0.02, 0.05])
    labels = [ln.get_label() for ln in panels[0].lines]
    assert "untrained (2 seeds)" in labels
    assert "L2 trained 2; L2 untrained 2; L2 shuffle 2" in hcap
    assert "No kurtosis filter" in hcap and "No kurtosis filter" in gcap
    assert "trained (black), untrained (blue), shuffle (green)" in hcap


def test_unit_figure_scatters_the_recomputed_prediction_against_responses(run):
    path, summary, data = run
    [(title, caption, fig)] = pu.apc_unit_figures(path, summary, "L2", 1)
    assert title.endswith("L2:1")
    scatter = fig.axes[0]
    resp = data["trained", "L2", "responses"]
    expected = apc_unit_responses(pu._features(tuple(zip(resp.shape_id.values.tolist(),
                                                         resp.rotation.values.tolist()))),
                                  {k: [v[1]] for k, v in PARAMS.items()})[:, 0]
    np.testing.assert_allclose(scatter.lines[0].get_xdata(), expected)
    np.testing.assert_allclose(scatter.lines[0].get_ydata(), resp.values[:, 1])
    fit_r = data["trained", "L2", "apc"]["r"].values[1]
    assert f"r = {fit_r:.2f}" in scatter.get_title() and "225°" in scatter.get_title()
    assert "matches the stored fit" in caption and "n = 362" in caption
    thumbs = [a for a in fig.axes if a.images]
    assert len(thumbs) == 16
    tb = data["trained", "L2", "top_bottom"]
    best = int(tb["top_stimulus"].values[1, 0])
    pair = [(resp.shape_id.values[best], resp.rotation.values[best])]
    np.testing.assert_array_equal(thumbs[0].images[0].get_array(),
                                  pu.shape_images(pair, SIZE_PX, CANVAS_PX)[0])
    assert thumbs[0].get_title() == f"{tb['top_response'].values[1, 0]:.2g}"
    # the least effective shape is the last thumbnail (lower right)
    worst = int(tb["bottom_stimulus"].values[1, 0])
    pair = [(resp.shape_id.values[worst], resp.rotation.values[worst])]
    np.testing.assert_array_equal(thumbs[-1].images[0].get_array(),
                                  pu.shape_images(pair, SIZE_PX, CANVAS_PX)[0])
    # known answer: channel 0 *is* its APC model, so its prediction equals its responses
    [(_, caption0, fig0)] = pu.apc_unit_figures(path, summary, "L1", 0)
    np.testing.assert_allclose(fig0.axes[0].lines[0].get_xdata(),
                               fig0.axes[0].lines[0].get_ydata(), atol=1e-12)
    assert "r = 1.00" in fig0.axes[0].get_title()
    assert pu.apc_unit_figures(path, summary, "L2", 2) == []     # no fit (constant unit)
    assert pu.apc_unit_figures(path, summary, "L2", 99) == []    # no such channel


def test_example_figures_one_per_layer_one_row_per_unit(run):
    path, summary, _ = run
    figs = pu.apc_example_figures(path, summary)
    assert [t for t, _, _ in figs] == [f"APC fits of the example units of {la} (Fig. 5A-D)"
                                       for la in LAYERS]
    assert len([a for a in figs[0][2].axes if a.images]) == 2 * 16
    assert "0: highest APC r; 1: median APC r (typical)" in figs[0][1]


def test_table1_rows_hold_each_example_units_fit_and_ti(run):
    path, summary, data = run
    [(stem, caption, table)] = pf.example_unit_table([path])
    assert stem == "example_units" and "4 example units" in caption
    assert list(table["layer"]) == ["L1", "L1", "L2", "L2"]
    assert list(table["channel"]) == [0, 1, 0, 1]
    assert list(table["module_path"][:1]) == ["features.1"]
    row = table.iloc[3]
    fit = data["trained", "L2", "apc"]
    assert row["apc_r"] == pytest.approx(fit["r"].values[1])
    assert row["mu_a_deg"] == 225.0 and row["mu_c"] == -0.1
    assert row["ti"] == pytest.approx(0.4)
    assert row["distance_to_ideal"] == pytest.approx(np.hypot(0.6, 1 - fit["r"].values[1]))
    [(_, _, two)] = pf.example_unit_table([path, path])
    assert list(two.columns[:2]) == ["run", "layer"] and len(two) == 8


def test_fig13_bars_are_the_summary_and_dots_every_unit(run):
    path, summary, data = run
    [(title, caption, fig)] = pf.natural_ratio_figures(path, summary)
    ax = fig.axes[0]
    bars = [p.get_height() for p in ax.patches]
    assert bars == pytest.approx([0.5, 1.5])
    dots = [ln for ln in ax.lines if ln.get_marker() == "."]
    shown = np.sort(np.concatenate([ln.get_ydata() for ln in dots]))
    expected = np.concatenate([data["trained", la, "natural_ratio"]["ratio"].values
                               for la in LAYERS])
    expected = np.sort(expected[np.isfinite(expected)])
    n_beyond = expected.size - shown.size
    assert set(shown) <= set(expected)
    assert ("beyond the axis" in caption) == (n_beyond > 0)
    assert "L1 1, L2 1" in caption and "(n=2)" in ax.get_xticklabels()[0].get_text()
    n_l1 = int(np.isfinite(data["trained", "L1", "natural_ratio"]["ratio"].values).sum())
    assert f"every unit with a defined ratio (L1 {n_l1}; L2" in caption


def test_fig13_units_far_off_the_scale_are_drawn_at_its_edge():
    fig, ax = figures.plt.subplots()
    values = np.r_[np.linspace(0.2, 1.2, 99), 7e6]
    assert pf._unit_strip(ax, {0: values}, [0.8]) == 1
    lo, hi = ax.get_ylim()
    assert hi < 10
    [dots, up, down] = ax.lines
    assert dots.get_ydata().size == 99 and list(up.get_ydata()) == [hi]
    assert down.get_ydata().size == 0


def test_makers_return_nothing_for_a_run_without_their_inputs(tmp_path):
    store = _Store(tmp_path)
    store.close({"conditions": ["trained"], "layer_order": ["L1"], "layers": {}})
    summary = json.loads((tmp_path / "summary.json").read_text())
    for maker in (pf.response_distribution_figures, pf.apc_cdf_figures,
                  pf.natural_ratio_figures, pu.apc_example_figures):
        assert maker(tmp_path, summary) == []
    assert pu.apc_unit_figures(tmp_path, summary, "L1", 0) == []
    assert pf.example_unit_table([tmp_path]) == []
    assert pf.example_unit_table([tmp_path / "missing"]) == []


def test_makers_are_registered():
    assert pf.apc_cdf_figures in figures._RUN_MAKERS
    assert pu.apc_unit_figures in figures._UNIT_MAKERS
    assert pf.example_unit_table in figures._TABLE_MAKERS


DEMO = Path("/work/runs/demo")


@pytest.mark.skipif(not (DEMO / "summary.json").is_file(), reason="no finished reference run")
def test_reference_run_example_units_recompute_their_stored_fit():
    """On the demo run: each example unit's prediction, recomputed from its stored fit and
    the shapes' APC features, correlates with its responses as the stored r says."""
    summary = pf.read_summary(DEMO)
    figs = pu.apc_example_figures(DEMO, summary)
    assert figs and all("matches the stored fit" in cap for _, cap, _ in figs)
    assert len(pf.response_distribution_figures(DEMO, summary)) == 2
    assert len(pf.apc_cdf_figures(DEMO, summary)) == 2
    rows = pf.example_rows(DEMO, summary)
    assert rows and all(np.isfinite(r["apc_r"]) for r in rows)
