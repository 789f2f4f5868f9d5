"""Per-unit APC figures of Pospisil, Pasupathy & Bair (2018), Fig. 5A-D.

For one unit: the APC model's prediction (recomputed from the stored best-fit parameters
and the shapes' APC features) against the unit's responses to the shapes, the fit in the
title, and the unit's eight most and eight least effective shapes (the stored
``top_bottom`` step), rendered at the size the layer was tested with and cropped around
the shapes' centre. Registered as a unit figure (a unit's dossier page) and, for the
example units of every layer, as a run figure.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from artiphys.report.figures import plt, run_figure, unit_figure
from artiphys.report.pospisil_figures import (layer_names, load, primary_condition,
                                              result_index)

_FIT = ("r", "mu_a_deg", "sigma_a_deg", "mu_c", "sigma_c")
#: Half side of the shown crop, in units of the shape size (the union of the 362 shapes
#: reaches about 0.66 of the size from their centre).
CROP_HALF = 0.75


@dataclass(frozen=True)
class UnitAPC:
    """What Fig. 5A-D shows of one unit.

    ``prediction`` and ``response`` are over the shapes in the responses' order;
    ``top`` / ``bottom``: images ``(8, h, w)`` of the most / least effective shapes
    (rank 0 first), with their responses; empty when the run has no ``top_bottom`` step.
    """

    layer: str
    channel: int
    fit: dict
    prediction: np.ndarray
    response: np.ndarray
    r_recomputed: float
    top: np.ndarray
    top_response: np.ndarray
    bottom: np.ndarray
    bottom_response: np.ndarray
    size_px: float


@functools.lru_cache(maxsize=4)
def _features(pairs: tuple) -> list:
    from artiphys.stimuli.apc_features import apc_features

    return apc_features(pd.DataFrame(list(pairs), columns=["shape_id", "rotation"]))


def apc_prediction(shape_ids, rotations, fit: dict) -> np.ndarray:
    """The APC model ``fit`` (``mu_a_deg, sigma_a_deg, mu_c, sigma_c``) evaluated on the
    shapes ``(shape_id, rotation)``: max over each shape's curvature extrema of the von
    Mises x Gaussian (:func:`artiphys.tuning.apc.apc_unit_responses`, peak 1)."""
    from artiphys.tuning.apc import apc_unit_responses

    feats = _features(tuple(zip(np.asarray(shape_ids).tolist(), np.asarray(rotations).tolist())))
    params = {k: [float(fit[k])] for k in ("mu_a_deg", "sigma_a_deg", "mu_c", "sigma_c")}
    return apc_unit_responses(feats, params)[:, 0]


@functools.lru_cache(maxsize=4)
def _shape_set(size_px: float, canvas_px: int, intensity: float):
    from artiphys.stimuli.shapes import shapes

    return shapes(size_px=size_px, canvas_px=canvas_px, intensity=intensity)


def shape_images(pairs, size_px: float, canvas_px: int, intensity: float = 255,
                 centre_px=None) -> np.ndarray:
    """Gray images ``(n, h, w)`` of the shapes ``(shape_id, rotation)``, rendered as the
    battery drew them and cropped to ``± CROP_HALF * size_px`` around ``centre_px``
    (``(y, x)``, default the canvas centre)."""
    stim = _shape_set(float(size_px), int(canvas_px), float(intensity))
    rows = {(int(a), int(b)): i for i, (a, b) in
            enumerate(zip(stim.params["shape_id"], stim.params["rotation"]))}
    keep = [rows[(int(a), int(b))] for a, b in pairs]
    imgs = stim.subset(keep).images().numpy().mean(axis=1) if keep else np.zeros((0, 1, 1))
    cy, cx = centre_px if centre_px is not None else ((canvas_px - 1) / 2,) * 2
    half = int(np.ceil(CROP_HALF * size_px))
    y0, x0 = max(0, int(round(cy)) - half), max(0, int(round(cx)) - half)
    return imgs[:, y0:int(round(cy)) + half + 1, x0:int(round(cx)) + half + 1]


def _first(da, name, default):
    return da[name].values[0] if name in da.coords else default


def unit_apc(run_dir, summary: dict, layer: str, channel: int) -> UnitAPC | None:
    """The data of Fig. 5A-D for unit ``channel`` of ``layer`` (primary condition), or
    None when the run lacks its APC fit, its shape responses, or the unit has no fit."""
    index, primary = result_index(run_dir), primary_condition(summary)
    fits = load(index, primary, layer, "apc")
    resp = load(index, primary, layer, "responses", set_name="shapes")
    if fits is None or resp is None or "channel" not in fits.coords \
            or not {"shape_id", "rotation", "channel"} <= set(resp.coords):
        return None
    at = np.flatnonzero(np.asarray(fits["channel"].values) == int(channel))
    ru = np.flatnonzero(np.asarray(resp["channel"].values) == int(channel))
    if not (at.size and ru.size) or not np.isfinite(float(fits["r"].values[at[0]])):
        return None
    fit = {k: float(fits[k].values[at[0]]) for k in _FIT}
    da = resp["responses"]
    response = np.asarray(da.isel(unit=int(ru[0])).values, float)
    prediction = apc_prediction(da["shape_id"].values, da["rotation"].values, fit)
    sizes = (summary.get("shape_sizes") or {}).get(layer, {})
    size = float(_first(da, "size_px", sizes.get("size_px", 32)))
    canvas = int(_first(da, "canvas_px", sizes.get("input_px", 227)))
    mid = (canvas - 1) / 2
    centre = (float(_first(da, "y_px", mid)), float(_first(da, "x_px", mid)))
    imgs = {}
    tb = load(index, primary, layer, "top_bottom", "top_bottom_stimuli")
    tu = np.flatnonzero(np.asarray(tb["channel"].values) == int(channel)) \
        if tb is not None and "channel" in tb.coords else np.array([], int)
    where = {s: i for i, s in enumerate(np.asarray(da["stimulus"].values).tolist())}
    for side in ("top", "bottom"):
        stim = tb[f"{side}_stimulus"].values[tu[0]].tolist() if tu.size else []
        pos = [where[s] for s in stim if s in where]
        pairs = [(da["shape_id"].values[p], da["rotation"].values[p]) for p in pos]
        imgs[side] = shape_images(pairs, size, canvas, float(_first(da, "intensity", 255)),
                                  centre)
        imgs[side + "_response"] = response[pos]
    return UnitAPC(layer, int(channel), fit, prediction, response,
                   float(np.corrcoef(prediction, response)[0, 1]), imgs["top"],
                   imgs["top_response"], imgs["bottom"], imgs["bottom_response"], size)


def fit_title(u: UnitAPC) -> str:
    f = u.fit
    return (f"{u.layer}:{u.channel}  r = {f['r']:.2f}\n$\\mu_a$ = {f['mu_a_deg']:.0f}°, "
            f"$\\sigma_a$ = {f['sigma_a_deg']:.0f}°, $\\mu_c$ = {f['mu_c']:.2f}, "
            f"$\\sigma_c$ = {f['sigma_c']:.2f}")


def draw_unit(fig, cell, u: UnitAPC) -> None:
    """Scatter of prediction vs response and the 2 x 8 shapes, in gridspec ``cell``."""
    n = max(len(u.top), len(u.bottom))
    inner = cell.subgridspec(2, 1 + max(n, 1), width_ratios=[4] + [1] * max(n, 1),
                             wspace=0.05, hspace=0.1)
    ax = fig.add_subplot(inner[:, 0])
    ax.plot(u.prediction, u.response, ".", color="0.2", ms=3)
    ax.set_xlabel("APC model prediction (peak 1)", fontsize=7)
    ax.set_ylabel("response (layer's units)", fontsize=7)
    ax.set_title(fit_title(u), fontsize=7)
    ax.tick_params(labelsize=6)
    # the least effective shape at lower right, as in the paper
    rows = (("top", u.top, u.top_response, "tab:purple"),
            ("bottom", u.bottom[::-1], u.bottom_response[::-1], "c"))
    for r, (_, imgs, resp, colour) in enumerate(rows):
        for k in range(n):
            a = fig.add_subplot(inner[r, 1 + k])
            a.set_xticks([])
            a.set_yticks([])
            if k < len(imgs):
                a.imshow(imgs[k], cmap="gray", vmin=0, vmax=1)
                a.set_title(f"{resp[k]:.2g}", fontsize=5, pad=1)
                a.spines[:].set_color(colour)
                a.spines[:].set_linewidth(1.5)
            else:
                a.axis("off")


def _caption(units: list[UnitAPC]) -> str:
    u = units[0]
    agree = max(abs(v.r_recomputed - v.fit["r"]) for v in units)
    check = ("the recomputed prediction's r matches the stored fit" if agree < 0.01 else
             f"the recomputed prediction's r differs from the stored fit by up to {agree:.2f} "
             "(the fit used other APC features)")
    shapes = (f"Right: the {len(u.top)} most effective shapes (purple, best at upper left) and "
              f"the {len(u.bottom)} least effective (cyan, worst at lower right), drawn at "
              f"{u.size_px:g} px and cropped to ±{int(np.ceil(CROP_HALF * u.size_px))} px "
              "around their centre; above each, its response." if len(u.top) else
              "The run has no top/bottom shapes step (the sparsity test), so no shapes shown.")
    return (f"Left: the APC model's prediction from the unit's best-fit parameters vs the "
            f"unit's response, one dot per shape (n = {u.response.size}); {check}. "
            f"{shapes} Compare Pospisil et al. (2018) Fig. 5A-D.")


@unit_figure
def apc_unit_figures(run_dir: Path, summary: dict, layer: str, channel: int):
    """Fig. 5A-D for one unit."""
    u = unit_apc(run_dir, summary, layer, channel)
    if u is None:
        return []
    fig = plt.figure(figsize=(10, 2.8), constrained_layout=True)
    draw_unit(fig, fig.add_gridspec(1, 1)[0], u)
    return [(f"APC fit and preferred shapes: {layer}:{channel}", _caption([u]), fig)]


@run_figure
def apc_example_figures(run_dir: Path, summary: dict):
    """Fig. 5A-D for the example units of each layer, one figure per layer."""
    from artiphys.report.results import example_units

    chosen = example_units(run_dir)
    figs = []
    for la in layer_names(summary, chosen):
        units = [(e, unit_apc(run_dir, summary, la, int(e["channel"])))
                 for e in chosen.get(la, [])]
        units = [(e, u) for e, u in units if u is not None]
        if not units:
            continue
        fig = plt.figure(figsize=(10, 2.8 * len(units)), constrained_layout=True)
        grid = fig.add_gridspec(len(units), 1)
        for k, (_, u) in enumerate(units):
            draw_unit(fig, grid[k], u)
        reasons = "; ".join(f"{u.channel}: {e.get('reason', '')}" for e, u in units)
        figs.append((f"APC fits of the example units of {la} (Fig. 5A-D)",
                     f"One row per example unit (channel: why chosen: {reasons}). "
                     + _caption([u for _, u in units]), fig))
    return figs


__all__ = ["UnitAPC", "apc_prediction", "draw_unit", "shape_images", "unit_apc"]
