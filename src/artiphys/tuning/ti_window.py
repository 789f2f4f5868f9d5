"""Which positions of a TI sweep count: those where the whole stimulus lies inside the RF.

Pospisil, Pasupathy & Bair (2018, Fig. 6E and Methods) measure translation invariance over
"the region ... where all stimuli are wholly within the CRF". Here a unit's RF along the
sweep axis comes from the network's geometry (:func:`unit_rf_bounds_px`: the analytic
receptive field of :func:`artiphys.models.receptive_field.layer_geometry`, checked against
the empirical gradient support), clipped to the image (a stimulus shifted past the image
border is cut off), and the stimulus extent from the rendered images
(:func:`stimulus_extent_px`: every column, or row, where any image of the set differs from
the background) or from the shape boundaries
(:func:`artiphys.stimuli.shapes.shapes_extent_px`).

Conventions
-----------
Extents are *edges* in px along the sweep axis: pixel ``i`` spans ``[i - 0.5, i + 0.5]``,
so an RF covering pixels ``a..b`` (inclusive) is ``(a - 0.5, b + 0.5)`` and is ``b - a + 1``
px wide. RF and stimulus extents are given in one frame (e.g. the image columns); the
stimulus at sweep position ``d`` spans ``stimulus_extent + d``. Position ``d`` is in the RF
when ``rf_lo <= s_lo + d`` and ``s_hi + d <= rf_hi``; for an RF of width ``R`` centred on a
stimulus of width ``w`` these are the ``|d| <= (R - w) / 2``.

The extent of a *set* is the union over its stimuli (the widest reach left and right of
the shapes' common centre), so at an in-RF position every stimulus of the set lies wholly
in the RF. For the 362 standard shapes at 32 px (big-circle diameter) it is about 43 px.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from artiphys.errors import ArtiphysError, ResponseError
from artiphys.tuning._arrays import FLAG_CONSTANT, FLAG_EXCLUDED, FLAG_NONFINITE

# Flag bits of TI results beyond the shared ones in tuning/_arrays.py.
FLAG_RF_SMALLER = 8  # the RF (within the image) is narrower than the stimulus: no position
FLAG_FEW_POSITIONS = 16  # the stimulus fits the RF at fewer than 3 sweep positions
TI_FLAG_MEANINGS = {
    FLAG_CONSTANT: "constant_response",
    FLAG_NONFINITE: "nonfinite_response",
    FLAG_EXCLUDED: "excluded_by_filter",
    FLAG_RF_SMALLER: "rf_smaller_than_stimulus",
    FLAG_FEW_POSITIONS: "fewer_than_3_in_rf_positions",
}
TI_FLAG_ATTRS = {
    "flag_masks": list(TI_FLAG_MEANINGS),
    "flag_meanings": " ".join(TI_FLAG_MEANINGS.values()),
    "long_name": "why a unit's TI is NaN (bit mask; 0 = analysed)",
}
_EPS_PX = 1e-6  # edges that touch count as inside


def in_rf_mask(positions_px, rf_bounds_px, stimulus_extent_px) -> np.ndarray:
    """Mask ``(n_positions, n_units)``: the whole stimulus lies inside each unit's RF.

    Parameters
    ----------
    positions_px : array ``(P,)``
        Sweep offsets of the stimulus, px.
    rf_bounds_px : array ``(2,)`` or ``(U, 2)``
        ``(lo, hi)`` edges of each unit's RF along the sweep axis (see module doc).
    stimulus_extent_px : array ``(2,)``
        ``(lo, hi)`` edges of the stimulus at position 0, in the same frame.
    """
    pos = np.asarray(positions_px, float)[:, None]
    rf = np.atleast_2d(np.asarray(rf_bounds_px, float))
    s_lo, s_hi = (float(v) for v in np.asarray(stimulus_extent_px, float))
    return (rf[None, :, 0] <= s_lo + pos + _EPS_PX) & (s_hi + pos <= rf[None, :, 1] + _EPS_PX)


def rf_smaller_than_stimulus(rf_bounds_px, stimulus_extent_px) -> np.ndarray:
    """Per unit: the RF is narrower than the stimulus, so no position can hold it."""
    rf = np.atleast_2d(np.asarray(rf_bounds_px, float))
    s = np.asarray(stimulus_extent_px, float)
    return (rf[:, 1] - rf[:, 0]) < (s[1] - s[0]) - _EPS_PX


def responsive_mask(profile_sq: np.ndarray, positions_px, stimulus_width_px: float,
                    tol: float = 0.0) -> np.ndarray:
    """The older, response-based window (an explicit option only: ``window="responsive"``).

    A position counts when every tested position within one stimulus width of it has a
    summed squared blank-subtracted response ``profile_sq > tol`` and it is not an end of
    the sweep. Units respond weakly far outside their RF (about 1e-4 of their peak), so
    with ``tol=0`` this keeps almost the whole sweep; prefer the geometric window.
    """
    pos = np.asarray(positions_px, float)
    responsive = profile_sq > tol
    near = np.abs(pos[:, None] - pos[None, :]) <= stimulus_width_px  # (i, j)
    unresponsive_near = near.astype(float) @ (~responsive).astype(float)  # (i, unit)
    mask = unresponsive_near == 0
    order = np.argsort(pos)
    mask[order[0]] = False
    mask[order[-1]] = False
    return mask


def stimulus_extent_px(images: torch.Tensor, axis: str = "x",
                       fill: torch.Tensor | None = None) -> tuple[float, float]:
    """Edges ``(lo, hi)`` of the columns (``axis="x"``) or rows where any image differs
    from its background ``fill`` (``(n or 1, 3, 1, 1)``; default each image's corner pixel).

    Raises
    ------
    ResponseError
        When no image differs from its background anywhere.
    """
    imgs = torch.as_tensor(images)
    if fill is None:
        fill = imgs[:, :, :1, :1]
    differs = (imgs != fill).any(dim=1).any(dim=0)  # (H, W)
    line = differs.any(dim=0 if axis == "x" else 1)
    idx = torch.nonzero(line).flatten()
    if idx.numel() == 0:
        raise ResponseError("the stimuli show nothing on their background (every image is "
                            "uniform); sweep images that contain a stimulus")
    return float(idx.min()) - 0.5, float(idx.max()) + 0.5


@dataclass(frozen=True)
class RFWindow:
    """Per-unit RF edges along a sweep axis, clipped to the image, and where they came from.

    Attributes
    ----------
    bounds_px : numpy.ndarray ``(U, 2)``
        ``(lo, hi)`` edges per unit (see module doc), within ``(-0.5, size - 0.5)``.
    source : str
        ``"analytic"``, ``"analytic, checked"`` (the gradient support agrees),
        ``"gradient support"`` (the analytic geometry disagreed or was unknown; why in
        ``note``).
    note : str
    """

    bounds_px: np.ndarray
    source: str
    note: str = ""


def rf_edges_px(lo, hi, size: int) -> np.ndarray:
    """Inclusive pixel bounds ``lo..hi`` -> edges ``(..., 2)`` clipped to a ``size`` px image."""
    lo = np.maximum(np.asarray(lo, float) - 0.5, -0.5)
    hi = np.minimum(np.asarray(hi, float) + 0.5, size - 0.5)
    return np.stack([lo, hi], axis=-1)


def unit_rf_bounds_px(model, layer, yx: tuple[int, int] | None, axis: str, size: int,
                      n_units: int, *, check: bool = True) -> RFWindow | None:
    """RF edges along ``axis`` of the channels of the unit at ``yx`` (or of a 1-D layer).

    From :func:`~artiphys.models.receptive_field.layer_geometry` at input size ``size``;
    with ``check``, each distinct RF among the channels is compared (both axes) with
    :func:`~artiphys.models.receptive_field.gradient_support_px` of its first channel, and
    the measured support replaces the analytic one where they differ. Returns None when the
    analytic geometry is unknown or does not match the layer's ``n_units`` channels.
    """
    from artiphys.models.receptive_field import (
        clip_bounds,
        gradient_support_px,
        layer_geometry,
    )

    try:
        geo = layer_geometry(model, layer, input_size_px=size)
    except ArtiphysError:
        return None
    if not geo.known or geo.chw[0] != n_units or (geo.is_spatial and yx is None):
        return None
    y, x = yx if geo.is_spatial else (0, 0)
    geo.unit_bounds_px(y, x, 0)  # raises UnknownUnitError for a unit outside the map
    boxes = np.asarray(geo.bounds_px, dtype=np.int64).copy()  # (C, 4) of unit (0, 0)
    if geo.is_spatial:
        sy, sx = (geo.stride_px, geo.stride_px) if np.ndim(geo.stride_px) == 0 else geo.stride_px
        boxes[:, :2] += int(sy) * int(y)
        boxes[:, 2:] += int(sx) * int(x)
    source, note = "analytic", ""
    if check:
        source, note = "analytic, checked", ""
        uniq, first, group = np.unique(boxes, axis=0, return_index=True, return_inverse=True)
        measured = boxes.copy()
        for g, (box, c) in enumerate(zip(uniq, first)):
            want = clip_bounds(tuple(int(v) for v in box), size)
            try:
                got = gradient_support_px(model, layer, int(c), *(
                    (int(y), int(x)) if geo.is_spatial else (None, None)), input_size_px=size)
            except ArtiphysError as exc:
                source, note = "analytic", f"not checked: {exc}"
                break
            if tuple(got) != tuple(want):
                measured[np.ravel(group) == g] = got
                source = "gradient support"
                note = (f"analytic RF {want} (y0, y1, x0, x1) of channel {c} differs from the "
                        f"gradient support {tuple(got)}; used the gradient support")
        else:
            boxes = measured
    cols = (2, 3) if axis == "x" else (0, 1)
    return RFWindow(rf_edges_px(boxes[:, cols[0]], boxes[:, cols[1]], size), source, note)


def margin_rf_bounds_px(margin_px: int, size: int, n_units: int) -> RFWindow:
    """Fallback RF edges ``(margin, size - 1 - margin)`` for every unit: the model's own
    gradient support over all channels (no analytic geometry)."""
    b = rf_edges_px(np.full(n_units, margin_px), np.full(n_units, size - 1 - margin_px), size)
    return RFWindow(b, "gradient support",
                    "no analytic geometry: the support of the unit's gradient in the model "
                    "(union over channels, symmetric about the image centre)")
