"""Figures of maximal images, probes and top/bottom patches (report/synthesis_figures.py),
drawn from small results built with the project's own dataset builders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from matplotlib.patches import Rectangle
from torch import nn

from artiphys.report import synthesis_figures as sf
from artiphys.report.figures import figures_for, plt, unit_figures
from artiphys.synthesis.optimize import SynthesisResult
from artiphys.synthesis.probes import probe_responses
from artiphys.synthesis.save import synthesis_dataset, top_patches_dataset
from artiphys.synthesis.top_patches import SIGNS, TopPatches

LAYER = "conv"
SIZE, RF, K = 16, 6, 2


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _synthesis(units=(3, 7), color="all", seed=0) -> xr.Dataset:
    g = torch.Generator().manual_seed(seed)
    n = len(units)
    images = torch.rand(n, 3, 8, 8, generator=g)
    if color == "gray":
        images = images[:, :1].expand(-1, 3, -1, -1).clone()
    elif color == "r":
        images[:, 1:] = 0
    res = SynthesisResult(images=images, final=np.arange(1, n + 1) * 1.5,
                          trace=np.zeros((4, n)), objectives=[f"unit {u}" for u in units],
                          settings={"units": list(units), "param": {"kind": "pixel",
                                                                    "color": color},
                                    "objective_kind": "unit", "steps": 4, "size_px": 8},
                          seconds=0.1)
    ds = synthesis_dataset(res)
    ds.attrs.update(analysis="synthesis", layer=LAYER)
    return ds


def _probes(units=(3, 7)) -> xr.Dataset:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    images = torch.rand(len(units), 3, 12, 12, generator=torch.Generator().manual_seed(1))
    return probe_responses(net, "0", images, list(units), zooms=(0.5, 1.0, 2.0),
                           rotations_deg=(0.0, 90.0, 180.0))


def _image_axes(fig):
    return [ax for ax in fig.axes if ax.images]


def test_gallery_shows_each_image_with_its_label_and_the_stored_pixels():
    ds = _synthesis(units=(3, 7, 11))
    (title, caption, fig), = figures_for(ds)
    axes = _image_axes(fig)
    assert len(axes) == 3 and "all 3 units of conv" in caption
    for ax, unit, final, img in zip(axes, (3, 7, 11), (1.5, 3.0, 4.5), ds["images"].values):
        assert ax.get_xlabel().splitlines()[:2] == [f"conv:{unit}", f"final {final:.3g}"]
        np.testing.assert_allclose(ax.images[0].get_array(), img.transpose(1, 2, 0))


def test_gallery_caps_the_images_and_says_how_many(monkeypatch):
    monkeypatch.setattr(sf, "MAX_GALLERY", 2)
    (_, caption, fig), = sf.synthesis_figures(_synthesis(units=(1, 2, 3)))
    assert len(_image_axes(fig)) == 2 and "2 of 3 units" in caption


def test_gray_and_single_colour_syntheses():
    (_, _, fig), = sf.synthesis_figures(_synthesis(color="gray"))
    ax = _image_axes(fig)[0]
    assert ax.images[0].get_array().ndim == 2 and ax.images[0].get_cmap().name == "gray"
    assert "(gray)" in ax.get_xlabel()
    (_, _, fig), = sf.synthesis_figures(_synthesis(color="r"))
    ax = _image_axes(fig)[0]
    shown = np.asarray(ax.images[0].get_array())
    assert shown.shape[-1] == 3 and not shown[..., 1:].any() and "(R only)" in ax.get_xlabel()
    # without settings the colour is read from the pixels
    assert sf.image_colour(np.stack([np.ones((2, 2)), np.zeros((2, 2)), np.zeros((2, 2))])) == "r"


def _lines(ax, gid):
    return [ln for ln in ax.get_lines() if ln.get_gid() == gid]


def test_probe_lines_equal_the_stored_baselines_and_curves():
    ds = _probes()
    (title, caption, fig), = figures_for(ds)          # analysis="probes" is in the attrs
    assert "s.d. over those units" in caption and "mean over 2 units" in caption
    axes = np.array(fig.axes[:6]).reshape(2, 3)
    for row, stat in zip(axes, ("max", "mean")):
        base = ds[stat].values[:, ds["family"].values == "baseline"].mean(0)
        for ax in row:
            for name, want in zip(ds["value"].values[ds["family"].values == "baseline"], base):
                (line,) = _lines(ax, f"baseline:{name}")
                np.testing.assert_allclose(line.get_ydata(), [want, want], rtol=1e-6)
        zoom = ds[stat].values[:, ds["family"].values == "zoom"].mean(0)
        (curve,) = _lines(row[0], "probe:zoom")
        np.testing.assert_allclose(curve.get_xdata(), [0.5, 1.0, 2.0])
        np.testing.assert_allclose(curve.get_ydata(), zoom, rtol=1e-6)
        bars = [p for p in row[2].patches if p.get_gid() == "probe:color"]
        n_colour = int((ds["family"].values == "color").sum())
        assert len(bars) == 1 + n_colour
    assert "rotation (deg)" in axes[1, 1].get_xlabel()
    assert "activation units" in axes[0, 0].get_ylabel()


def test_probes_stored_without_the_analysis_attr_are_still_drawn():
    ds = _probes()
    del ds.attrs["analysis"]
    assert len(sf.probe_figures(ds)) == 1


def _top_patches(folder: Path | None) -> xr.Dataset:
    """Two units, k=2; unit 3's boxes at known places (one leaving the image)."""
    rng = np.random.default_rng(0)
    units, rows = [3, 7], []
    names = ["a.png", "b.png"]
    if folder is not None:
        from PIL import Image

        folder.mkdir(exist_ok=True)
        for i, name in enumerate(names):
            Image.fromarray(np.full((SIZE, SIZE, 3), 40 + 100 * i, np.uint8)).save(folder / name)
    for u in units:
        for s, sign in enumerate(SIGNS):
            for r in range(K):
                rows.append({"unit": u, "sign": sign, "rank": r, "stimulus": r,
                             "response": (1 - 2 * s) * (2.0 - r) + u / 10, "tied": False,
                             "y": 1, "x": 1, "top_px": 2 + r - 4 * s, "left_px": 3 * r + s,
                             "crop_px": RF, "path": names[r], "size_px": SIZE})
    shape = (2, 2, K, 3, RF, RF)
    res = TopPatches(pd.DataFrame(rows), rng.uniform(0, 1, shape).astype(np.float32),
                     rng.normal(0, 1, shape).astype(np.float32), units, LAYER, None,
                     {"layer": LAYER, "units": units, "k": K, "position": "center",
                      "stimuli": {"n": 2, "meta": {"folder": str(folder)} if folder else {}},
                      "method": "deconvnet", "suppressive_layer": f"{LAYER}:linear"})
    ds = top_patches_dataset(res)     # merged with the table as the battery stores it
    table = xr.Dataset.from_dataframe(res.table.reset_index(drop=True))
    ds = ds.merge(table.rename({"index": "row"}).rename_vars(
        {c: f"table_{c}" for c in res.table.columns}))
    ds.attrs.update(analysis="top_patches", layer=LAYER)
    return ds


def test_patches_draw_the_rf_square_where_the_table_says(tmp_path):
    ds = _top_patches(tmp_path / "images")
    figs = figures_for(ds)
    assert [t for t, _, _ in figs] == [f"Top and bottom natural-image patches, unit {u}"
                                       for u in (3, 7)]
    _, caption, fig = figs[0]
    assert "not found" not in caption
    axes = np.array(fig.axes).reshape(3 * len(SIGNS), K)
    table = sf.patch_table(ds)
    for s, sign in enumerate(SIGNS):            # excitatory block on top
        for r in range(K):
            row = table[(table.unit == 3) & (table.sign == sign) & (table["rank"] == r)].iloc[0]
            ax = axes[3 * s, r]
            (box,) = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_gid() == "rf"]
            assert box.get_xy() == (row.left_px - 0.5, row.top_px - 0.5)
            assert box.get_width() == box.get_height() == RF
            assert ax.get_title().startswith(f"#{r + 1}: {row.response:.3g}")
            assert ax.images[0].get_array().shape[:2] == (SIZE, SIZE)
            assert float(np.asarray(ax.images[0].get_array()).mean()) == pytest.approx(
                (40 + 100 * r) / 255, abs=1e-3)                     # the image file
            np.testing.assert_allclose(axes[3 * s + 1, r].images[0].get_array(),
                                       ds.patches.sel(unit=3, sign=sign).values[r]
                                       .transpose(1, 2, 0))
        assert axes[3 * s, 0].get_ylabel().startswith(sign[:5])
    assert axes[3, 0].get_ylim()[1] == -2 - 0.5       # top_px -2: the box leaves the image


def test_missing_image_files_fall_back_to_the_patch_on_gray(tmp_path):
    ds = _top_patches(None)
    _, caption, fig = sf.top_patches_figures(ds)[0]
    assert "4 image file(s) not found" in caption
    whole = np.asarray(fig.axes[0].images[0].get_array())
    top, left = 2, 0                                          # unit 3, excitatory, rank 0
    np.testing.assert_allclose(whole[top:top + RF, left:left + RF],
                               ds.patches.sel(unit=3, sign="excitatory").values[0]
                               .transpose(1, 2, 0)[:, :RF - left])
    assert whole[0, 0, 0] == 0.5


def test_makers_return_nothing_for_results_they_cannot_draw():
    empty = xr.Dataset()
    assert sf.synthesis_figures(empty) == [] and sf.probe_figures(empty) == []
    assert sf.top_patches_figures(empty) == []


def _store(run_dir: Path, condition="trained"):
    from artiphys.store import RunDir, Step

    run = RunDir.open_or_create(run_dir)
    run.begin("characterize", "", config_digest="x")
    used = []
    values = {"maximal_images": _synthesis(), "probes": _probes(),
              "top_patches": _top_patches(run_dir.parent / "images")}
    for name, value in values.items():
        step = Step(name, 1, {"layer": LAYER, "condition": condition}, {},
                    f"{condition}/{LAYER}/{name}",
                    {"experiment": "characterize", "condition": condition, "layer": LAYER,
                     "result": name, "unit": "3,7"})
        run.steps.save(step, value)
        used.append(step.digest)
    run.end("characterize", steps=used)
    (run_dir / "summary.json").write_text(json.dumps({"conditions": [condition]}))
    return values


def test_unit_figures_draw_that_units_image_probes_and_patches(tmp_path):
    values = _store(tmp_path / "run")
    figs = sf.synthesis_unit_figures(tmp_path / "run", {"conditions": ["trained"]}, LAYER, 7)
    assert [t for t, _, _ in figs] == ["Maximal image of conv:7",
                                       "Probes of the maximal image of conv:7",
                                       "Top and bottom natural-image patches of conv:7"]
    gallery = figs[0][2]
    (ax,) = _image_axes(gallery)
    best = sf.best_natural(values["top_patches"])[7]
    assert ax.get_xlabel().splitlines() == ["conv:7", "final 3", f"natural {best:.3g}"]
    probes = values["probes"].sel(unit=7)
    white = float(probes["max"].values[(probes["family"].values == "baseline")
                                       & (probes["value"].values == "white")][0])
    (line,) = _lines(figs[1][2].axes[0], "baseline:white")
    assert line.get_ydata()[0] == pytest.approx(white)
    assert "no error bars" in figs[1][1]
    # the registry's view, and units, layers and runs without these results
    assert len(unit_figures(tmp_path / "run", {"conditions": ["trained"]}, LAYER, 7)) >= 3
    assert sf.synthesis_unit_figures(tmp_path / "run", {}, LAYER, 5) == []
    assert sf.synthesis_unit_figures(tmp_path / "run", {}, "other", 7) == []
    (tmp_path / "bare").mkdir()
    assert sf.synthesis_unit_figures(tmp_path / "bare", {}, LAYER, 7) == []


def test_reference_demo_run_unit_page():
    run = Path("/work/runs/demo")
    from artiphys.report.results import example_units

    examples = example_units(run) if (run / "manifest.json").is_file() else {}
    layer = next((la for la in examples if sf.unit_datasets(run, {}, "synthesis", la,
                                                           examples[la][0]["channel"])), None)
    if layer is None:
        pytest.skip("no reference run with maximal images")
    summary = json.loads((run / "summary.json").read_text()) \
        if (run / "summary.json").is_file() else {}
    channel = examples[layer][0]["channel"]
    titles = [t for t, _, _ in sf.synthesis_unit_figures(run, summary, layer, channel)]
    assert titles[0] == f"Maximal image of {layer}:{channel}"
    assert any(t.startswith("Probes") for t in titles)
