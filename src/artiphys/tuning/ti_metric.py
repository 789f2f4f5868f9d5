"""The translation-invariance metric (Pospisil, Pasupathy & Bair 2018, Eq. 3, Figs. 6-7).

Shapes are shown at positions ``d_1 .. d_P`` along one axis, and a blank. For position ``i``
let ``x_i`` be the vector of a unit's responses to the ``S`` shapes minus its blank response,
and ``r_i = x_i - mean_s(x_i)`` that vector centred across shapes. Over the in-RF positions
(the whole stimulus inside the unit's RF, :mod:`artiphys.tuning.ti_window`)

    TI = sum_{i<j} <r_i, r_j> / sum_{i<j} |r_i| |r_j|

a weighted mean of the Pearson correlations between the shape tunings at every pair of
positions, weighted by the product of their spreads. It is computed in closed form:
``sum_{i<j} <r_i, r_j> = (|sum_i r_i|^2 - sum_i |r_i|^2) / 2`` and
``sum_{i<j} |r_i||r_j| = ((sum_i |r_i|)^2 - sum_i |r_i|^2) / 2``. TI is 1 for a unit whose
shape preferences are the same up to a gain at every position, near 0 when they are
unrelated. Fewer than 3 in-RF positions, an RF narrower than the stimulus, or responses
constant across shapes give NaN, each with its own flag bit (``flags``; meanings in
:data:`artiphys.tuning.ti_window.TI_FLAG_MEANINGS`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from artiphys.errors import ResponseError
from artiphys.tuning._arrays import FLAG_CONSTANT, FLAG_NONFINITE
from artiphys.tuning.ti_window import (
    FLAG_FEW_POSITIONS,
    FLAG_RF_SMALLER,
    TI_FLAG_ATTRS,
    TI_FLAG_MEANINGS,
    in_rf_mask,
    responsive_mask,
    rf_smaller_than_stimulus,
)

WINDOWS = ("rf", "responsive")


def position_sweep(step_px: int = 2, extent_px: int = 50) -> np.ndarray:
    """Offsets ``-extent..+extent`` px in ``step_px`` steps (the paper: 2 px, +-50 px)."""
    if step_px <= 0 or extent_px < 0:
        raise ValueError("step_px must be > 0 and extent_px >= 0")
    n = int(extent_px // step_px)
    return np.arange(-n, n + 1) * int(step_px)


def _as_sweep(responses) -> xr.DataArray:
    if isinstance(responses, xr.DataArray):
        if set(responses.dims) != {"position", "shape", "unit"}:
            raise ResponseError(f"sweep responses need dims ('position', 'shape', 'unit'), got "
                                f"{responses.dims}")
        return responses.transpose("position", "shape", "unit")
    arr = np.asarray(responses, dtype=float)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3:
        raise ResponseError("sweep responses must be (n_positions, n_shapes[, n_units]), got "
                            f"shape {arr.shape}")
    return xr.DataArray(arr, dims=("position", "shape", "unit"),
                        coords={"unit": np.arange(arr.shape[2])})


def _window(window, in_rf, rf_bounds_px, stimulus_extent_px, stimulus_width_px, prof_sq, pos,
            tol, n_units):
    """``(mask (P, U), rf_too_small (U,), extent)`` for the chosen window."""
    if in_rf is not None:
        if rf_bounds_px is not None or window != "rf":
            raise ResponseError("give the window one way: in_rf, rf_bounds_px, or "
                                "window='responsive'")
        mask = np.asarray(in_rf, bool)
        mask = np.broadcast_to(mask[:, None] if mask.ndim == 1 else mask, (len(pos), n_units))
        return mask.copy(), np.zeros(n_units, bool), None
    if window == "responsive":
        if stimulus_width_px is None:
            if stimulus_extent_px is None:
                raise ResponseError("window='responsive' needs stimulus_width_px")
            stimulus_width_px = float(np.ptp(stimulus_extent_px))
        return (responsive_mask(prof_sq, pos, stimulus_width_px, tol), np.zeros(n_units, bool),
                None)
    if window != "rf":
        raise ResponseError(f"window must be one of {WINDOWS}, got {window!r}")
    if rf_bounds_px is None:
        raise ResponseError(
            "the TI window needs each unit's RF along the sweep axis (rf_bounds_px, as "
            "sweep_responses returns it), or an explicit in_rf mask, or window='responsive'")
    if stimulus_extent_px is None:
        if stimulus_width_px is None:
            raise ResponseError("give the stimulus's extent along the sweep axis "
                                "(stimulus_extent_px or stimulus_width_px)")
        stimulus_extent_px = (-stimulus_width_px / 2, stimulus_width_px / 2)
    rf = np.broadcast_to(np.atleast_2d(np.asarray(rf_bounds_px, float)), (n_units, 2))
    return (in_rf_mask(pos, rf, stimulus_extent_px), rf_smaller_than_stimulus(rf, stimulus_extent_px),
            tuple(float(v) for v in stimulus_extent_px))


def ti_metric(responses, positions_px, *, blank=0.0, rf_bounds_px=None,
              stimulus_extent_px=None, stimulus_width_px: float | None = None, in_rf=None,
              window: str = "rf", center_px: float = 0.0, tol: float = 0.0) -> xr.Dataset:
    """TI, RF profile and position-correlation function from sweep responses.

    Parameters
    ----------
    responses : DataArray ``("position", "shape", "unit")`` or array of that shape
    positions_px : offsets of the stimulus at each position, px
    blank : the response to the blank stimulus (scalar or one per unit)
    rf_bounds_px : ``(2,)`` or ``(U, 2)``
        Edges ``(lo, hi)`` of each unit's RF along the sweep axis (the default window,
        ``window="rf"``: a position counts when the stimulus lies wholly inside the RF).
    stimulus_extent_px : ``(lo, hi)``
        Edges of the stimulus (all shapes together) at position 0, in the frame of
        ``rf_bounds_px``; or ``stimulus_width_px`` for ``(-w/2, w/2)`` (the frame then
        centred on the stimulus).
    in_rf : bool array ``(P,)`` or ``(P, U)``
        An explicit window instead.
    window : ``"rf"`` (default) or ``"responsive"``
        ``"responsive"``: the older response-based rule
        (:func:`~artiphys.tuning.ti_window.responsive_mask` with ``stimulus_width_px``,
        ``tol``), which keeps positions far outside the RF.
    center_px : the position taken as the RF centre for the correlation function

    Returns
    -------
    Dataset on ``unit`` (and ``position``): ``ti``, ``n_in_rf``, ``flags``;
    ``rf_profile`` (root of summed squared blank-subtracted responses, over the unit's
    maximum), ``position_correlation`` (r of each position's shape responses with the
    centre's), ``in_rf`` (the positions TI used). Attrs ``window`` and, for ``"rf"``,
    ``stimulus_extent_px``.
    """
    da = _as_sweep(responses)
    pos = np.asarray(positions_px, float)
    if len(pos) != da.sizes["position"]:
        raise ResponseError(f"{len(pos)} positions but responses have {da.sizes['position']}")
    x = np.asarray(da.values, float)  # (P, S, U)
    n_units = x.shape[2]
    flags = np.where(np.isfinite(x).all(axis=(0, 1)), 0, FLAG_NONFINITE).astype(np.int8)
    x = np.where(np.isfinite(x), x, 0.0) - np.broadcast_to(np.asarray(blank, float), x.shape[2:])
    prof_sq = (x**2).sum(1)  # (P, U)
    r = x - x.mean(1, keepdims=True)  # centred across shapes
    norms = np.sqrt((r**2).sum(1))  # (P, U)
    mask, too_small, extent = _window(window, in_rf, rf_bounds_px, stimulus_extent_px,
                                      stimulus_width_px, prof_sq, pos, tol, n_units)
    n_in = mask.sum(0)
    ti, ok = _ti_closed_form(r, norms, mask)
    fresh = flags == 0
    flags[fresh & too_small] |= FLAG_RF_SMALLER
    flags[fresh & ~too_small & (n_in < 3)] |= FLAG_FEW_POSITIONS
    flags[fresh & (n_in >= 3) & ~ok] |= FLAG_CONSTANT
    ti = np.where(flags == 0, ti, np.nan)
    prof = np.sqrt(prof_sq)
    peak = prof.max(0)
    rf_profile = np.where(peak > 0, prof / np.where(peak > 0, peak, 1), np.nan)
    c = int(np.argmin(np.abs(pos - center_px)))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (r * r[c][None]).sum(1) / (norms * norms[c][None])
    corr = np.where((norms > 0) & (norms[c][None] > 0), corr, np.nan)
    coords = {k: ("unit", v.values) for k, v in da.coords.items() if v.dims == ("unit",)}
    coords["position_px"] = ("position", pos)
    attrs = {"analysis": "ti", "window": "in_rf mask" if in_rf is not None else window}
    if extent is not None:
        attrs["stimulus_extent_px"] = list(extent)
    if stimulus_width_px is not None:
        attrs["stimulus_width_px"] = float(stimulus_width_px)
    return xr.Dataset(
        {"ti": ("unit", ti, {"long_name": "translation invariance (Pospisil et al. 2018 Eq. 3)"}),
         "n_in_rf": ("unit", n_in), "flags": ("unit", flags, dict(TI_FLAG_ATTRS)),
         "rf_profile": (("position", "unit"), rf_profile),
         "position_correlation": (("position", "unit"), corr),
         "in_rf": (("position", "unit"), mask)},
        coords=coords, attrs=attrs)


def _ti_closed_form(r: np.ndarray, norms: np.ndarray, mask: np.ndarray):
    """Eq. 3 over the masked positions: ``(ti (U,), defined (U,))`` (``den > 0``)."""
    rm = r * mask[:, None, :]
    nm = norms * mask
    total = rm.sum(0)  # (S, U)
    sum_sq = (nm**2).sum(0)
    num = ((total**2).sum(0) - sum_sq) / 2
    den = (nm.sum(0) ** 2 - sum_sq) / 2
    # den is 0 for fewer than 2 positions with spread; rounding can leave it a hair above
    ok = den > 1e-12 * np.maximum(nm.sum(0) ** 2, np.finfo(float).tiny)
    return num / np.where(ok, den, 1.0), ok


def ti_summary(result: xr.Dataset) -> dict:
    """JSON-able per-layer summary of a TI result: how many units got a TI, and why not.

    Returns
    -------
    dict with ``n_units``, ``n_defined``, ``ti_median`` (over defined units; None when
    none), ``undefined`` (``{flag meaning: count}`` for every reason with a count, e.g.
    ``rf_smaller_than_stimulus``, ``fewer_than_3_in_rf_positions``, ``constant_response``),
    ``n_in_rf_median`` and, where known, ``window``, ``stimulus_extent_px`` and
    ``rf_source``.
    """
    ti = np.asarray(result["ti"].values, float)
    flags = np.asarray(result["flags"].values, np.int64)
    defined = np.isfinite(ti)
    undefined = {}
    for bit, meaning in TI_FLAG_MEANINGS.items():
        n = int(((flags & bit) != 0).sum())
        if n:
            undefined[meaning] = n
    other = int((~defined & (flags == 0)).sum())
    if other:
        undefined["unflagged"] = other
    out = {"n_units": int(ti.size), "n_defined": int(defined.sum()),
           "ti_median": float(np.median(ti[defined])) if defined.any() else None,
           "undefined": undefined,
           "n_in_rf_median": float(np.median(result["n_in_rf"].values)) if ti.size else None}
    for key in ("window", "rf_source"):
        if key in result.attrs:
            out[key] = str(result.attrs[key])
    if "stimulus_extent_px" in result.attrs:
        out["stimulus_extent_px"] = [float(v) for v in np.atleast_1d(
            result.attrs["stimulus_extent_px"])]
    return out


def ti_agreement(ti_x: xr.Dataset | xr.DataArray, ti_y: xr.Dataset | xr.DataArray,
                 by: str | None = "layer") -> xr.Dataset:
    """Agreement of TI_x and TI_y across units: Pearson r overall and per ``by`` group."""
    tx = ti_x["ti"] if isinstance(ti_x, xr.Dataset) else ti_x
    ty = ti_y["ti"] if isinstance(ti_y, xr.Dataset) else ti_y
    a, b = np.asarray(tx.values, float), np.asarray(ty.values, float)
    if a.shape != b.shape:
        raise ResponseError("TI_x and TI_y must be of the same units")
    labels = (np.asarray(tx[by].values).astype(str) if by and by in tx.coords
              else np.full(a.shape, "all"))
    groups = ["all"] + [g for g in dict.fromkeys(labels.tolist()) if g != "all"]
    rs, ns, mean_abs = [], [], []
    for g in groups:
        sel = (labels == g) if g != "all" else np.ones(a.shape, bool)
        sel &= np.isfinite(a) & np.isfinite(b)
        ns.append(int(sel.sum()))
        rs.append(float(np.corrcoef(a[sel], b[sel])[0, 1]) if sel.sum() > 2 else np.nan)
        mean_abs.append(float(np.abs(a[sel] - b[sel]).mean()) if sel.any() else np.nan)
    return xr.Dataset({"r": ("group", rs), "n_units": ("group", ns),
                       "mean_abs_difference": ("group", mean_abs)}, coords={"group": groups})
