"""Unit dossier pages, the index's Units, Model and Stimuli sections, on small hand-built
runs whose every value is known."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from artiphys.report import build_report
from artiphys.report.dossier import dossier_href, dossier_units, layer_standing
from artiphys.report.page import Page
from artiphys.store import RunDir, Step

LAYERS = {"conv": "conv", "relu": "relu"}          # label -> module path (neuromatch_conv)
N = 6


def _values(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    ti = rng.uniform(0, 1, N)
    ti[0] = np.nan                                   # a unit without a TI
    return {"r": rng.uniform(0, 1, N), "ti": ti, "lifetime_sparseness": rng.uniform(0, 1, N)}


def _save(run, used, condition, layer, result, ds, **meta):
    step = Step(result, 1, {"layer": layer, "condition": condition}, {},
                f"{condition}/{layer}/{result}",
                {"experiment": "characterize", "condition": condition, "layer": layer,
                 "result": result, **meta})
    run.steps.save(step, ds)
    used.append(step.digest)


def _unit_ds(var, values, layer, analysis, **extra):
    coords = {"layer": ("unit", [layer] * N), "channel": ("unit", np.arange(N)),
              "y": ("unit", [3] * N), "x": ("unit", [4] * N)}
    data = {var: ("unit", values), **{k: ("unit", v) for k, v in extra.items()}}
    return xr.Dataset(data, coords=coords, attrs={"analysis": analysis})


def make_run(path: Path, *, model: str | None = "neuromatch_conv", visualised=None) -> dict:
    """A characterize-like run: apc, ti, sparsity of two layers for the model and an
    untrained control, example units, summary.json and config.toml."""
    run = RunDir.open_or_create(path)
    run.begin("characterize", "", config_digest="x")
    used, values, layers = [], {}, {}
    for i, layer in enumerate(LAYERS):
        layers[layer] = {}
        for condition, seed in (("analytic", i), ("untrained", 10 + i)):
            v = _values(seed)
            values[condition, layer] = v
            _save(run, used, condition, layer, "apc", _unit_ds(
                "r", v["r"], layer, "apc", mu_a_deg=np.zeros(N), mu_c=np.zeros(N)))
            _save(run, used, condition, layer, "ti", _unit_ds("ti", v["ti"], layer, "ti"))
            _save(run, used, condition, layer, "sparsity", _unit_ds(
                "lifetime_sparseness", v["lifetime_sparseness"], layer, "sparsity"))
            layers[layer][condition] = {
                "apc_r_median": float(np.median(v["r"])) + 0.001,   # summary, not recomputed
                "ti_median": float(np.nanmedian(v["ti"])),
                "sparsity_median": float(np.median(v["lifetime_sparseness"]))}
    examples = {"layers": {"conv": [{"channel": 1, "reason": "highest APC r"},
                                    {"channel": 3, "reason": "unit of interest"}],
                           "relu": [{"channel": 2, "reason": "highest TI"}]}}
    step = Step("examples", 1, {}, {}, "analytic/all/examples",
                {"experiment": "characterize", "condition": "analytic", "layer": "all"})
    run.steps.save(step, examples)
    used.append(step.digest)
    for layer, units in (visualised or {}).items():
        ds = xr.Dataset({"score": ("unit", np.zeros(len(units)))}, attrs={"analysis": "synthesis"})
        _save(run, used, "analytic", layer, "maximal_images", ds,
              unit=",".join(map(str, units)))
    run.end("characterize", steps=used)
    summary = {"tests": ["apc", "ti", "sparsity"], "conditions": ["analytic", "untrained"],
               "layer_order": list(LAYERS), "layer_paths": dict(LAYERS), "layers": layers,
               "model": {"input_size_px": 33},
               "shape_sizes": {la: {"size_px": 12.0} for la in LAYERS}}
    (path / "summary.json").write_text(json.dumps(summary))
    if model:
        (path / "config.toml").write_text(
            f'experiment = "characterize"\ntests = ["apc", "ti", "sparsity"]\n'
            f'shape_size = "12"\n\n[model]\nname = "{model}"\ninput_size_px = 33\n')
    return {"values": values, "summary": summary}


def _table_row(page: str, first: str) -> dict:
    """``{column: cell}`` of the first HTML table's row starting with ``first``."""
    table = page[page.index("<table"):page.index("</table>")]
    head = re.findall(r"<th>(.*?)</th>", table)
    for row in re.findall(r"<tr>(.*?)</tr>", table, re.S):
        cells = re.findall(r"<td>(.*?)</td>", row, re.S)
        if cells and cells[0] == first:
            return dict(zip(head, cells))
    raise AssertionError(f"no row {first!r}")


def test_dossiers_are_written_linked_from_the_index_and_link_back(tmp_path):
    known = make_run(tmp_path / "run")
    index = build_report(tmp_path / "run", tmp_path / "rep", model=False)
    page = index.read_text()
    assert "<h2 id='units'>Units</h2>" in page
    for layer, channel in (("conv", 1), ("conv", 3), ("relu", 2)):
        href = dossier_href(layer, channel)
        assert f"href='{href}'" in page
        dossier = (tmp_path / "rep" / href).read_text()
        assert "href=\"../index.html\"" in dossier
        assert f"Unit {layer}:{channel}" in dossier
    conv1 = (tmp_path / "rep" / "units" / "conv_1.html").read_text()
    assert "highest APC r" in conv1 and "y = 3, x = 4" in conv1
    # the standing table: the unit's own APC r and the summary's (not recomputed) medians
    apc = _table_row(conv1.split("Where it stands")[1], "APC fit r")
    assert float(apc["this unit"]) == pytest.approx(known["values"]["analytic", "conv"]["r"][1],
                                                    abs=5e-3)
    summary = known["summary"]["layers"]["conv"]
    assert float(apc["layer median (analytic)"]) == pytest.approx(
        summary["analytic"]["apc_r_median"], abs=5e-3)
    assert float(apc["untrained median"]) == pytest.approx(
        summary["untrained"]["apc_r_median"], abs=5e-3)
    # the unit figure of unit_basics is on the page, with alt text
    assert re.search(r"<img src='conv_1_fig01.png' alt='Unit conv:1 in its layer", conv1)
    assert (tmp_path / "rep" / "units" / "conv_1_fig01.png").stat().st_size > 1000


def test_standing_percentile_and_missing_ti(tmp_path):
    known = make_run(tmp_path)
    standing, caption = layer_standing(tmp_path, known["summary"], "conv", [0, 1])
    table0 = standing[0][0].set_index("measure")
    assert np.isnan(table0.loc["translation invariance (TI)", "this unit"])   # unit 0: NaN TI
    assert table0.loc["translation invariance (TI)", "n units with a value"] == N - 1
    r = known["values"]["analytic", "conv"]["r"]
    assert table0.loc["APC fit r", "percentile in layer"] == pytest.approx(
        100 * np.mean(r < r[0]))
    assert "summary.json" in caption


def test_unit_standing_figure_plots_the_layer_and_marks_the_unit(tmp_path):
    from artiphys.report.unit_basics import unit_standing_figure

    known = make_run(tmp_path)
    [(title, caption, fig)] = unit_standing_figure(tmp_path, known["summary"], "conv", 2)
    axes = [ax for ax in fig.axes if ax.patches]
    assert len(axes) == 3                                    # APC r, TI, sparsity
    v = known["values"]["analytic", "conv"]
    heights = sum(p.get_height() for p in axes[1].patches)
    assert heights == N - 1                                  # the NaN TI is left out
    marked = axes[0].lines[0].get_xdata()[0]
    assert marked == pytest.approx(v["r"][2])
    assert f"translation invariance (TI): {N - 1}" in caption
    assert unit_standing_figure(tmp_path, known["summary"], "nope", 2) == []


def test_visualised_units_get_dossiers_with_both_reasons(tmp_path):
    known = make_run(tmp_path, visualised={"conv": [1, 5]})
    units = dossier_units(tmp_path, known["summary"])
    assert list(units) == ["conv", "relu"]                   # the layers' order
    assert units["conv"][1] == ["highest APC r", "visualised: maximal image"]
    assert units["conv"][5] == ["visualised: maximal image"]
    assert sorted(units["conv"]) == [1, 3, 5]


def test_table_cells_of_units_with_a_dossier_link_to_it(tmp_path):
    page = Page(tmp_path, links={("conv", 1): "units/conv_1.html"})
    table = pd.DataFrame({"layer": ["conv", "conv"], "channel": [1.0, 2.0],
                          "r": [0.51234, np.nan], "note": ["a<b", "x"]})
    out = page.table_html(table)
    assert out.count("<a href='units/conv_1.html'>") == 2      # layer and channel cells
    assert "units/conv_2.html" not in out                      # no dossier, no link
    assert "0.512" in out and "a&lt;b" in out and ">-<" in out
    plain = Page(tmp_path).table_html(table)
    assert "<a " not in plain


def test_model_section_of_an_analytic_model(tmp_path):
    from artiphys.report.model_section import model_section, run_config
    from artiphys.report.stimuli_section import stimuli_section

    known = make_run(tmp_path / "run")
    (tmp_path / "rep").mkdir()
    page = Page(tmp_path / "rep")
    model_section(tmp_path / "run", known["summary"], page, {})
    text = "\n".join(page.parts)
    assert "<h2 id='model'>Model</h2>" in text and "neuromatch_conv" in text
    rows = pd.read_csv(tmp_path / "rep" / "model_layers.csv")
    conv = rows.set_index("layer").loc["conv"]
    assert (conv["units"], str(conv["RF (px)"]), conv["map (px)"]) == (6, "7", "33x33")
    assert conv["analysed"] == "yes"
    assert "First-layer kernels (conv)" in text and "Activation maps to a grating" in text
    stimuli = stimuli_section(tmp_path / "rep", known["summary"], run_config(tmp_path / "run"))
    assert "<h2 id='stimuli'>Stimuli</h2>" in stimuli and "alt='All 362 shapes" in stimuli
    assert (tmp_path / "rep" / "stimuli_shapes_12.png").is_file()
    assert (tmp_path / "rep" / "stimuli_shapes_dim_12.pdf").is_file()


def test_kernels_and_grating_maps_show_the_model_itself():
    import torch

    from artiphys.models import load_model
    from artiphys.report.model_section import _map_of, grating_maps, kernel_figure
    from artiphys.stimuli.gratings import gratings

    spec = load_model("neuromatch_conv")
    [(title, caption, fig)] = kernel_figure(spec)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    w = spec.module.conv.weight.detach().numpy()
    assert len(images) == len(w) == 6 and "6 of 6 kernels" in caption
    assert np.allclose(images[2].get_array(), w[2].sum(0) / np.abs(w[2].sum(0)).max())
    summary = {"layer_order": ["conv"], "layer_paths": {"conv": "conv"}}
    [(_, caption, fig)] = grating_maps(spec, summary, {"conv": [{"channel": 4}]})
    assert "channel 4" in [ax.get_title() for ax in fig.axes]
    # the drawn map is the layer's output for that grating
    from artiphys.recording.record import record

    stim = gratings(orientation_deg=0.0, sf_cycles_per_px=0.125, size_px=65)
    da = next(iter(record(spec, stim, ["conv"], units="all", device="cpu").values()))
    x = (stim.images(0, 1) - 0.5) / 0.5
    with torch.no_grad():
        direct = spec.module.conv(spec.module.luminance(x))[0, 4].numpy()
    assert np.allclose(_map_of(da, 4), direct, atol=1e-5)


def test_model_that_cannot_load_is_said_and_the_report_still_written(tmp_path):
    make_run(tmp_path / "run", model="nope_net")
    page = build_report(tmp_path / "run", tmp_path / "rep").read_text()
    assert "The model could not be loaded" in page and "nope_net" in page
    # the model and the stimuli open the page, before the units and the results
    order = [page.index(f"<h2 id='{i}'>") for i in ("model", "stimuli", "units", "summary")]
    assert order == sorted(order)
    assert "<nav><a href='#model'>Model</a>" in page


def test_missing_natural_image_folder_is_said(tmp_path):
    from artiphys.report.stimuli_section import stimuli_section

    summary = {"model": {"input_size_px": 33}, "shape_sizes": {"a": {"size_px": 10}}}
    config = {"tests": ["apc", "natural"], "images_dir": str(tmp_path / "gone"), "n_images": 3}
    out = stimuli_section(tmp_path, summary, config)
    assert "cannot be shown here" in out and "stimuli_shapes_10.png" in out
    assert "shapes_large" not in out                       # no sparsity test: no large set
    assert stimuli_section(tmp_path, {}, {}) == ""          # nothing known: no section


@pytest.mark.skipif(not Path("/work/runs/demo/summary.json").is_file(),
                    reason="the reference demo run is not here")
def test_reference_demo_run_units():
    run = Path("/work/runs/demo")
    summary = json.loads((run / "summary.json").read_text())
    units = dossier_units(run, summary)
    assert units and set(units) <= set(summary["layer_order"])
    layer, channels = next(iter(units.items()))
    standing, _ = layer_standing(run, summary, layer, list(channels))
    table = next(iter(standing.values()))[0]
    assert "APC fit r" in set(table["measure"])


def test_stimuli_of_an_unfinished_run_come_from_its_config(tmp_path):
    from artiphys.report.stimuli_section import stimuli_section

    config = {"model": {"name": "v1bank"}, "shape_size": "10", "tests": ["apc"]}
    assert stimuli_section(tmp_path, {}, config) == ""                  # no input size known
    out = stimuli_section(tmp_path, {}, config, canvas_px=33)           # the loaded model's
    assert "at 10 px (big-circle diameter) on its 33 px canvas" in out
    assert stimuli_section(tmp_path, {}, {**config, "shape_size": "rf:0.5"}, 33) == ""


def test_dossiers_are_capped_chosen_units_first(tmp_path):
    from artiphys.report.dossier import capped, units_section

    units = {"conv": {0: ["visualised: maximal image"], 1: ["highest APC r"],
                      2: ["visualised: maximal image"]},
             "relu": {5: ["highest TI", "visualised: maximal image"]}}
    kept, left = capped(units, 3)
    assert kept == {"conv": {0: ["visualised: maximal image"], 1: ["highest APC r"]},
                    "relu": {5: ["highest TI", "visualised: maximal image"]}}
    assert left == {"conv": {2: ["visualised: maximal image"]}}
    text = units_section(kept, {}, left)
    assert "1 more visualised unit(s) have no page" in text and "conv: 2" in text
    assert "units/conv_2.html" not in text and "units/conv_0.html" in text
    assert capped(units, 0)[0] == {}


def test_table_links_cells_of_integer_columns():
    """An int64 channel column (as the example-unit table has) gets its links too."""
    import pandas as pd

    from artiphys.report.page import Page

    page = Page.__new__(Page)
    page.links = {("conv1", 3): "units/conv1_3.html"}
    table = pd.DataFrame({"layer": ["conv1", "conv1"], "channel": [3, 4], "r": [0.5, float("nan")]})
    out = page.table_html(table)
    assert "<a href='units/conv1_3.html'>3</a>" in out and ">4<" in out and "-" in out
