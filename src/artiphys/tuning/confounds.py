"""Confound controls of the APC fit: how much of a unit's shape tuning is just shape size.

A unit whose response is each shape's area gets APC r = 0.70 on the standard set (issue
12, item 7): the APC grid holds models whose predictions grow with the number and
spread of boundary features, which tracks size. Beside the shuffle null, every unit is
therefore fit by one-parameter size models and by the APC model with area partialled out:

* :func:`shape_descriptors` - area, perimeter and maximum extent of every stimulus of a
  shape set, from the boundaries of :mod:`artiphys.stimuli.shapes`, in pixels at the
  set's scale (``px_per_unit``).
* :func:`apc_confounds` - per unit ``r_area``, ``r_perimeter``, ``r_size`` (Pearson r of
  the responses with each descriptor: the fit of a linear one-parameter model), the APC r,
  the APC r with area partialled out, and the criterion ``apc_beats_area``.

APC r with area partialled out
------------------------------
``apc_r_partial_area = max_m  r(y, p_m | a)``, the best partial correlation over the grid's
models of the responses ``y`` with the model's prediction ``p_m``, controlling for area
``a``:

    r(y, p | a) = r(y_res, p_res),   y_res = y - proj_a(y),  p_res = p - proj_a(p)

(residuals after least-squares regression on ``[1, a]``; Frisch-Waugh-Lovell). It is the
APC refit on what area cannot explain, with each model's own area component removed too,
so a model cannot score by tracking area, and the model is chosen for the residual
(partialling the area out of the all-stimuli winner instead would keep a winner chosen
for its area). It is a maximum over the grid, like the APC r, so both carry the same
selection optimism; the shuffle null below measures it. Where area explains the response
entirely (residual norm below ``1e-9`` of the centred response's) nothing is left to fit
and the partial r is 0.

APC beats area
--------------
``apc_beats_area = (apc_r > |r_area|) & (apc_r_partial_area > null_partial_r95)``: the APC
model fits better than area alone, *and* explains the part of the response area cannot
better than chance, where chance is the 95th percentile (pooled over units) of the same
partial fit on ``n_null`` seeded shuffles of each unit's area residual. Shuffling the
residual keeps its distribution and destroys any relation to the shapes, so a unit passes
only if its area-free response is shape tuned.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import xarray as xr

from artiphys.errors import ResponseError, StimulusError
from artiphys.tuning._arrays import (
    FLAG_ATTRS,
    as_responses,
    response_flags,
    unit_dataset,
)

_RESIDUAL_TOL = 1e-9
NULL_QUANTILE = 0.95


def _polygon_descriptors(xy: np.ndarray) -> tuple[float, float, float]:
    """Area (shoelace), perimeter and diameter (largest pairwise distance) of a polygon."""
    x, y = xy[:, 0], xy[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)))
    perimeter = float(np.linalg.norm(np.roll(xy, -1, axis=0) - xy, axis=1).sum())
    diffs = xy[:, None, :] - xy[None, :, :]
    extent = float(np.sqrt((diffs**2).sum(-1)).max())
    return area, perimeter, extent


def shape_descriptors(stimuli=None) -> pd.DataFrame:
    """Area, perimeter and maximum extent of every stimulus of a shape set, in pixels.

    Parameters
    ----------
    stimuli : StimulusSet or DataFrame of a shape set, or None
        Rows with ``shape_id``, ``rotation`` and (for the scale) ``px_per_unit``; None
        means the 362 unique standard shapes at 32 px (big-circle diameter).

    Returns
    -------
    DataFrame, one row per stimulus in row order: ``shape_id``, ``rotation``,
    ``area_px2`` (area of the boundary polygon: 50 spline samples per segment, so within
    0.1% of the spline's area; the rendered pixel count up to rasterisation),
    ``perimeter_px`` (length of the boundary) and ``max_extent_px`` (largest distance
    between two boundary points). All three are rotation invariant. Blank rows
    (``shape_id < 0``) get 0.
    """
    from artiphys.stimuli.shapes import (
        SAMPLES_PER_SEGMENT,
        px_per_shape_unit,
        shape_boundary,
        shapes,
    )

    if stimuli is None:
        stimuli = shapes()
    params = stimuli if isinstance(stimuli, pd.DataFrame) else getattr(stimuli, "params", None)
    if params is None or not {"shape_id", "rotation"} <= set(params.columns):
        raise StimulusError("shape descriptors need a shape set (StimulusSet or its parameter "
                            "table with shape_id and rotation columns)")
    ppu = (params["px_per_unit"].to_numpy(float) if "px_per_unit" in params.columns
           else np.full(len(params), px_per_shape_unit(32)))
    cache: dict[int, tuple[float, float, float]] = {}
    rows = []
    for sid, rot, s in zip(params["shape_id"].astype(int), params["rotation"].astype(int), ppu):
        if sid < 0:
            rows.append((sid, rot, 0.0, 0.0, 0.0))
            continue
        if sid not in cache:  # rotation changes none of the three
            cache[sid] = _polygon_descriptors(shape_boundary(
                sid, 0, samples_per_segment=SAMPLES_PER_SEGMENT, closed=False))
        area, perimeter, extent = cache[sid]
        rows.append((sid, rot, area * s**2, perimeter * s, extent * s))
    return pd.DataFrame(rows, columns=["shape_id", "rotation", "area_px2", "perimeter_px",
                                       "max_extent_px"])


def _descriptors_for(da: xr.DataArray, stimuli) -> pd.DataFrame:
    """Descriptors of ``da``'s stimuli: from ``stimuli`` (same rows) or the stimulus coords."""
    if stimuli is not None:
        desc = shape_descriptors(stimuli)
    elif {"shape_id", "rotation"} <= set(da.coords):
        cols = {c: da[c].values for c in ("shape_id", "rotation", "px_per_unit") if c in da.coords}
        desc = shape_descriptors(pd.DataFrame(cols))
    else:
        raise StimulusError("responses have no shape_id / rotation stimulus coords; pass the "
                            "shape set they were recorded with as stimuli=")
    if len(desc) != da.sizes["stimulus"]:
        raise StimulusError(f"{len(desc)} stimuli have shape descriptors but the responses have "
                            f"{da.sizes['stimulus']}; pass the set the responses were recorded with")
    return desc


def _centred_unit(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre along ``axis`` and scale to unit norm; returns (unit vectors, norms)."""
    xc = x - x.mean(axis=axis, keepdims=True)
    norm = np.sqrt((xc**2).sum(axis=axis, keepdims=True))
    return xc / np.where(norm > 0, norm, 1.0), norm


def area_residual_predictions(predictions, area) -> torch.Tensor:
    """APC predictions ``(n_models, S)`` with their least-squares fit on ``[1, area]`` removed.

    Computed in float64, returned float32 (as :func:`~artiphys.tuning.apc.apc_predictions`);
    rows that area explains entirely (residual below ``1e-6`` of the centred row) become 0,
    so rounding noise is never fit. Compute once per stimulus set and pass to
    :func:`apc_confounds` to reuse.
    """
    preds = torch.as_tensor(predictions)
    a, _ = _centred_unit(np.asarray(area, float), axis=0)
    a_t = torch.as_tensor(a, dtype=torch.float64, device=preds.device)
    out = torch.empty(preds.shape, dtype=torch.float32, device=preds.device)
    for lo in range(0, preds.shape[0], 8192):
        p = preds[lo:lo + 8192].double()
        p = p - p.mean(1, keepdim=True)
        res = p - (p @ a_t)[:, None] * a_t[None, :]
        gone = res.norm(dim=1) <= 1e-6 * p.norm(dim=1)
        out[lo:lo + 8192] = torch.where(gone[:, None], 0.0, res).to(torch.float32)
    return out


def _partial_fit(res: np.ndarray, partial_preds, grid, method, device) -> np.ndarray:
    """Best APC r of area residuals ``res`` ``(S, U)`` (0 where nothing is left to fit)."""
    from artiphys.tuning.apc import fit_apc

    r = np.zeros(res.shape[1])
    live = ~np.all(np.abs(res) <= 0, axis=0)
    if live.any():
        fit = fit_apc(res[:, live], grid=grid, predictions=partial_preds, method=method,
                      device=device)
        r[live] = np.nan_to_num(fit.r.values, nan=0.0)
    return r


def _descriptor_r(values: np.ndarray, desc: pd.DataFrame) -> dict[str, np.ndarray]:
    """Pearson r of each unit ``values`` ``(S, U)`` with area, perimeter and size."""
    y, _ = _centred_unit(values, axis=0)
    out = {}
    for name, col in (("r_area", "area_px2"), ("r_perimeter", "perimeter_px"),
                      ("r_size", "max_extent_px")):
        d, norm = _centred_unit(desc[col].to_numpy(float), axis=0)
        out[name] = d @ y if norm > 0 else np.full(values.shape[1], np.nan)
    return out


def _area_residuals(values: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Responses minus their least-squares fit on ``[1, area]``; exactly 0 where the fit
    leaves less than ``1e-9`` of the centred response."""
    a, _ = _centred_unit(area, axis=0)
    yc = values - values.mean(0)
    res = yc - np.outer(a, a @ yc)
    gone = np.sqrt((res**2).sum(0)) <= _RESIDUAL_TOL * np.sqrt((yc**2).sum(0))
    res[:, gone] = 0.0
    return res


def apc_confounds(responses, predictions=None, features=None, grid=None, *, stimuli=None,
                  apc_fit: xr.Dataset | None = None, partial_predictions=None, n_null: int = 1,
                  seed: int = 0, method: str = "auto", device=None) -> xr.Dataset:
    """Size confounds of every unit's APC fit (definitions in the module doc).

    Parameters
    ----------
    responses : DataArray ``("stimulus", "unit")`` (or array) of responses to a shape set
    predictions : APC predictions of the same stimuli (:func:`~artiphys.tuning.apc.apc_predictions`),
        or ``features`` to compute them from; ``grid`` their grid (default published)
    stimuli : the shape set the responses were recorded with (default: the responses'
        ``shape_id`` / ``rotation`` / ``px_per_unit`` stimulus coords)
    apc_fit : the units' :func:`~artiphys.tuning.apc.fit_apc` result, if already computed
    partial_predictions : :func:`area_residual_predictions` of ``predictions`` (reuse)
    n_null : shuffles of each unit's area residual for the null of the partial r
    seed : seed of those shuffles
    method : APC fit method (``"auto"``, ``"full"``, ``"screened"``)

    Returns
    -------
    xr.Dataset on ``unit`` (``analysis="apc_confounds"``): ``r_area``, ``r_perimeter``,
    ``r_size``, ``apc_r``, ``apc_r_partial_area``, ``apc_beats_area`` (bool), ``flags``;
    attrs ``null_partial_r95`` and the definitions.
    """
    from artiphys.tuning.apc import APCGrid, apc_predictions, fit_apc

    da = as_responses(responses)
    grid = grid or APCGrid.published()
    desc = _descriptors_for(da, stimuli)
    if predictions is None:
        if features is None:
            raise StimulusError("pass the APC predictions (or features) of the responses' stimuli")
        predictions = apc_predictions(features, grid, device=device)
    values = np.asarray(da.values, dtype=np.float64)
    flags = response_flags(values)
    ok = flags == 0
    if apc_fit is None:
        apc_fit = fit_apc(da, grid=grid, predictions=predictions, method=method, device=device)
    if apc_fit.sizes.get("unit") != da.sizes["unit"]:
        raise ResponseError(f"apc_fit has {apc_fit.sizes.get('unit')} units, the responses "
                            f"{da.sizes['unit']}; pass the fit of these responses")
    area = desc["area_px2"].to_numpy(float)
    if partial_predictions is None:
        partial_predictions = area_residual_predictions(predictions, area)
    n = values.shape[1]
    out = {k: np.full(n, np.nan) for k in ("r_area", "r_perimeter", "r_size", "apc_r_partial_area")}
    null95 = np.nan
    if ok.any():
        for k, v in _descriptor_r(values[:, ok], desc).items():
            out[k][ok] = v
        res = _area_residuals(values[:, ok], area)
        out["apc_r_partial_area"][ok] = _partial_fit(res, partial_predictions, grid, method, device)
        null95 = _null_r95(res, partial_predictions, grid, method, device, n_null, seed)
    apc_r = np.asarray(apc_fit["r"].values, float)
    with np.errstate(invalid="ignore"):
        beats = ok & (apc_r > np.abs(out["r_area"])) & (out["apc_r_partial_area"] > null95)
    return unit_dataset(da, {
        "r_area": ("unit", out["r_area"], {"long_name": "Pearson r with shape area"}),
        "r_perimeter": ("unit", out["r_perimeter"], {"long_name": "Pearson r with perimeter"}),
        "r_size": ("unit", out["r_size"], {"long_name": "Pearson r with maximum extent"}),
        "apc_r": ("unit", apc_r, {"long_name": "Pearson r of the best APC model"}),
        "apc_r_partial_area": ("unit", out["apc_r_partial_area"],
                               {"long_name": "max over APC models of r(response, model | area)"}),
        "apc_beats_area": ("unit", beats, {"long_name": "apc_r > |r_area| and partial r > "
                                                        "95th percentile of its shuffle null"}),
        "flags": ("unit", flags, FLAG_ATTRS),
    }, {"analysis": "apc_confounds", "null_partial_r95": float(null95), "n_null": int(n_null),
        "seed": int(seed), "descriptor_units": "px at the set's scale (area px^2)",
        "partial_definition": "max_m r(y_res, p_m,res), residuals on [1, area]"})


def _null_r95(res: np.ndarray, partial_preds, grid, method, device, n_null: int,
              seed: int) -> float:
    """95th percentile of the partial APC r of seeded shuffles of the area residuals."""
    live = ~np.all(res == 0, axis=0)
    if n_null < 1 or not live.any():
        return np.nan
    rng = np.random.default_rng(seed)
    shuffled = np.concatenate([rng.permuted(res[:, live], axis=0) for _ in range(n_null)], axis=1)
    return float(np.quantile(_partial_fit(shuffled, partial_preds, grid, method, device),
                             NULL_QUANTILE))


__all__ = ["apc_confounds", "area_residual_predictions", "shape_descriptors"]
