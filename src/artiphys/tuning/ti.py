"""Translation invariance (TI) of units (Pospisil et al. 2018, Eq. 3 and Figs. 6-8).

Shapes are shown at a sweep of positions along one axis (default every 2 px over +-50 px
around the unit's RF centre) plus a blank. For position ``i``, ``r_i`` is the vector of
the unit's responses across shapes minus the blank response, *centred across shapes*
(minus its mean over shapes), and

    TI = sum_{i<j} <r_i, r_j> / sum_{i<j} |r_i| |r_j|

over the positions where every stimulus lies wholly within the unit's RF (the paper's
window): the RF from the network's geometry, clipped to the image, and the extent of the
union of the shapes from the rendered images (:mod:`artiphys.tuning.ti_window`). Units
whose RF is narrower than the stimulus, that hold it at fewer than 3 positions, or that
respond identically to every shape get NaN and a flag saying which
(:mod:`artiphys.tuning.ti_metric`; :func:`ti_summary` counts them per layer). TI is 1 for a
unit whose shape preferences are the same, up to a gain, at every position, and near 0
when they are unrelated. The older response-based window stays available as
``window="responsive"``.

Responses to the sweep (:func:`sweep_responses`) come from one forward pass per position
(``method="brute"``) or, for convolutional layers, from one pass per *stride phase*
(``method="equivariant"``): a conv layer is translation-equivariant, so the centre unit's
response to a stimulus shifted by ``k * stride + phase`` px is the response of the unit
``k`` places over to the stimulus shifted by ``phase``, exactly, on a canvas wide enough
that the image borders do not enter the units' receptive fields. ``method="auto"`` checks
equivariance on the layer first and falls back to brute force where it does not hold
(fully connected layers, global or adaptive pooling). Several layers of one model share
one set of passes in :func:`artiphys.tuning.ti_layers.sweep_layers`.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from artiphys.errors import ResponseError
from artiphys.models.receptive_field import (GeometryError, equivariant_stride,
                                             gradient_support_px)
from artiphys.models.units import map_center
from artiphys.recording.hooks import forward_to_layers
from artiphys.stimuli.base import resize_to_input
from artiphys.tuning.ti_metric import (
    WINDOWS,
    position_sweep,
    ti_agreement,
    ti_metric,
    ti_summary,
)
from artiphys.tuning.ti_window import (
    FLAG_FEW_POSITIONS,
    FLAG_RF_SMALLER,
    TI_FLAG_MEANINGS,
    in_rf_mask,
    margin_rf_bounds_px,
    responsive_mask,
    rf_edges_px,
    stimulus_extent_px,
    unit_rf_bounds_px,
)

__all__ = ["FLAG_FEW_POSITIONS", "FLAG_RF_SMALLER", "TI_FLAG_MEANINGS", "WINDOWS", "in_rf_mask",
           "position_sweep", "responsive_mask", "stimulus_extent_px", "sweep_responses",
           "ti_agreement", "ti_from_recorded", "ti_from_sweep", "ti_metric", "ti_summary",
           "translation_invariance"]


# ---- responses to the sweep ------------------------------------------------------------

class _OutOfMap(Exception):
    """A unit to read lies this many units outside the layer's output map."""


def _layer_output(module, layer, x: torch.Tensor) -> torch.Tensor:
    """Output of ``layer`` (a LayerRef: ``@call`` / ``:linear`` kept) of ``module`` (a ModelSpec
    or module) for input ``x``; the forward pass stops there. Hook removed."""
    with torch.no_grad():
        return forward_to_layers(module, x, [layer])[layer].detach()


def _shift(images: torch.Tensor, d: int, axis: str, fill: torch.Tensor) -> torch.Tensor:
    """Translate images by ``d`` px (right / down positive), exposing ``fill``."""
    dim = 3 if axis == "x" else 2
    out = torch.roll(images, int(d), dims=dim)
    if d == 0:
        return out
    idx = [slice(None)] * 4
    idx[dim] = slice(0, d) if d > 0 else slice(images.shape[dim] + d, None)
    out[tuple(idx)] = fill.expand_as(out[tuple(idx)])
    return out


def _equivariant_stride(module, layer, size: int, axis: str, device) -> int | None:
    """The layer's cumulative stride along ``axis`` if it is translation-equivariant, else None
    (:func:`artiphys.models.receptive_field.equivariant_stride`; ``module`` is on ``device``)."""
    return equivariant_stride(module, layer, axis=axis, input_size_px=size)


def _rf_margins_px(module, layer, size: int, yx, device) -> tuple[int, int]:
    """Pixels between the image borders and the RF of the units at ``yx``: ``(y, x)``.

    From the models' empirical RF (:func:`artiphys.models.receptive_field.gradient_support_px`:
    every channel's gradient support, pooled over three random images, since max pooling
    routes each gradient through one input); 0 when the units are silent for all three.
    """
    try:
        y0, y1, x0, x1 = gradient_support_px(module, layer, None, yx[0], yx[1],
                                             input_size_px=size, seed=1, n_images=3)
    except GeometryError:
        return 0, 0
    return min(y0, size - 1 - y1), min(x0, size - 1 - x1)


def _prepare_images(images, preprocessing) -> torch.Tensor:
    if hasattr(images, "images") and callable(images.images):
        images = images.images()
    return resize_to_input(torch.as_tensor(images, dtype=torch.float32), preprocessing)


def sweep_responses(model, images, layer, positions_px=None, *, axis: str = "x",
                    method: str = "auto", unit_yx: tuple[int, int] | None = None,
                    background=None, batch_size: int = 32, device=None,
                    rf_size_px=None, check_rf: bool = True) -> xr.Dataset:
    """Responses of a layer's centre units to shapes at a sweep of positions, and a blank.

    Parameters
    ----------
    model : ModelSpec or nn.Module
    images : StimulusSet or tensor ``(n, 3, H, W)`` in [0, 1], shapes centred on the unit's
        RF (resized to the model's input size if needed)
    layer : layer name, alias, LayerRef or module
    positions_px : offsets along ``axis`` (default :func:`position_sweep`)
    axis : ``"x"`` (horizontal) or ``"y"`` (vertical)
    method : ``"equivariant"``, ``"brute"`` or ``"auto"`` (equivariant when it holds)
    unit_yx : spatial position of the recorded units (default the centre of the map);
        every channel there is a unit
    background : RGB fill of exposed image regions (default each image's corner pixel)
    rf_size_px : the units' RF size (sets how little the canvas must be widened for the
        equivariant method); default measured from gradient support
    check_rf : check the analytic RF that sets the TI window against the gradient support
        (one backward pass per distinct RF among the channels)

    Returns
    -------
    Dataset: ``responses (position, shape, unit)``, ``blank (unit)``, the TI window's
    ``rf_start_px, rf_end_px (unit)`` (RF edges along ``axis``, image px, clipped to the
    image); unit coords ``layer, channel, y, x``; attrs ``method``, ``stride_px``,
    ``stimulus_extent_px`` (edges of the union of the stimuli at position 0, from the
    images), ``rf_source``, ``rf_note``, ``self_check``.
    """
    from artiphys.models.layers import resolve_layer
    from artiphys.models.spec import as_spec, default_device

    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    if method not in ("auto", "equivariant", "brute"):
        raise ValueError(f"method must be 'auto', 'equivariant' or 'brute', got {method!r}")
    spec = as_spec(model)
    ref = resolve_layer(spec, layer)
    dev = default_device(device)
    first = next(spec.module.parameters(), None)
    home = first.device if first is not None else torch.device("cpu")
    try:
        return _sweep(spec, ref, dev, images, positions_px, axis, method, unit_yx, background,
                      batch_size, rf_size_px, check_rf)
    finally:
        spec.module.to(home)  # leave the model where it was


def _equivariant_checked(spec, ref, dev, run, pick, make_pick, brute, imgs, fill, pos,
                         stride, axis, yx, batch_size, rf_size_px):
    """The equivariant sweep of :func:`_sweep`, self-checked against brute force at the
    sweep's ends; ``(responses, method, stride, canvas pad, crop px, self_check)``."""
    size, n_shapes = imgs.shape[-1], len(imgs)
    # the RF's distance from the borders: along the sweep it saves widening the
    # canvas; across it, rows (columns) outside the RF are cropped away, in whole strides
    if rf_size_px is not None:
        m_y = m_x = max(0, (size - int(np.max(rf_size_px))) // 2)
    else:
        m_y, m_x = _rf_margins_px(spec, ref, size, yx, dev)
    other = "y" if axis == "x" else "x"
    stride_o = _equivariant_stride(spec, ref, size, other, dev)
    margin_o = m_y if axis == "x" else m_x
    crop = (max(0, margin_o - stride_o) // stride_o) * stride_o if stride_o else 0
    moved = crop // stride_o if crop else 0  # the unit's index on the cropped map
    pick_crop = (make_pick(yx[0] - moved, yx[1]) if axis == "x"
                 else make_pick(yx[0], yx[1] - moved))
    imgs_c = _crop(imgs, crop, other)
    margin = m_x if axis == "x" else m_y
    resp_t, pad = _equivariant_sweep(run, pick_crop, imgs_c, fill, pos, stride, axis,
                                     batch_size, margin)
    # self-check at the sweep's ends on a few shapes against brute force; brute force
    # if they differ (e.g. an RF that reaches the zero padding past the image border,
    # which no canvas of the background reproduces)
    few = slice(0, min(2, n_shapes))
    for i in (int(np.argmin(pos)), int(np.argmax(pos))):
        ref_resp = pick(run(_shift(imgs[few], int(pos[i]), axis, fill[few]))).cpu()
        scale = max(float(ref_resp.abs().max()), 1.0)
        if float((ref_resp - resp_t[i, few]).abs().max()) > 1e-4 * scale:
            return brute(), "brute", None, (0, 0), 0, "failed; brute force"
    return resp_t, "equivariant", stride, pad, crop, "passed"


def _sweep(spec, ref, dev, images, positions_px, axis, method, unit_yx, background, batch_size,
           rf_size_px, check_rf) -> xr.Dataset:
    spec.module.to(dev).eval()
    pos = np.asarray(position_sweep() if positions_px is None else positions_px, int)
    imgs = _prepare_images(images, spec.preprocessing)
    size = imgs.shape[-1]
    fill = (imgs[:, :, :1, :1].clone() if background is None else
            torch.as_tensor(background, dtype=torch.float32).view(1, 3, 1, 1)
            .expand(len(imgs), 3, 1, 1))

    def run(batch):
        return _layer_output(spec, ref, spec.preprocessing.normalise(batch.to(dev)))

    probe = run(imgs[:1])
    spatial = probe.ndim == 4
    if spatial:
        yx = unit_yx or map_center(probe.shape[2], probe.shape[3])
    else:
        yx = None
    stride = _equivariant_stride(spec, ref, size, axis, dev) if method != "brute" else None
    if method == "equivariant" and stride is None:
        raise ResponseError(f"layer {ref.label!r} is not translation-equivariant along {axis} "
                            "(fully connected or global pooling); use method='brute' or 'auto'")
    used = "equivariant" if stride is not None else "brute"

    def make_pick(y, x):
        """Read every channel at (y, x), ``offset_units`` along the sweep axis."""

        def pick(out, offset_units=0):
            if not spatial:
                return out.reshape(out.shape[0], -1)
            dim = 3 if axis == "x" else 2
            at = (x if axis == "x" else y) + offset_units
            if not 0 <= at < out.shape[dim]:
                raise _OutOfMap(at - out.shape[dim] + 1 if at >= 0 else -at)
            return out[:, :, y, at] if axis == "x" else out[:, :, at, x]

        return pick

    pick = make_pick(*yx) if spatial else make_pick(0, 0)

    n_shapes = len(imgs)
    chunks = []
    crop_px = 0
    self_check = "not needed"

    def brute():
        resp = []
        for d in pos:
            rows = [pick(run(_shift(imgs[i:i + batch_size], int(d), axis, fill[i:i + batch_size])))
                    for i in range(0, n_shapes, batch_size)]
            resp.append(torch.cat(rows).cpu())
        return torch.stack(resp)  # (P, S, U)

    if used == "brute":
        resp_t = brute()
    else:
        resp_t, used, stride, pad, crop_px, self_check = _equivariant_checked(
            spec, ref, dev, run, pick, make_pick, brute, imgs, fill, pos, stride, axis, yx,
            batch_size, rf_size_px)
        chunks.append(pad)
    blank = pick(run(fill[:1].expand(1, 3, size, size).clone()))[0].cpu()
    attrs = {"method": used, "stride_px": int(stride or 0), "axis": axis,
             "canvas_px": list(chunks[0]) if chunks else [0, 0], "crop_px": int(crop_px),
             "self_check": self_check}
    window = sweep_window(spec, ref, imgs, fill, yx, axis, resp_t.shape[2], check=check_rf,
                          margins=lambda: _rf_margins_px(spec, ref, size, yx, dev))
    return sweep_dataset(ref.label, resp_t, blank, pos, yx, window, attrs)


def sweep_window(spec, ref, imgs, fill, yx, axis, n_units, *, check=True, margins=None,
                 shift_px: int = 0, extent_px=None) -> dict:
    """The TI window's geometry for a sweep: per-unit RF edges and the stimulus extent.

    ``margins`` (a callable returning the model's gradient-support margins ``(y, x)``) is
    the fallback where the analytic geometry is unknown; ``extent_px`` the stimulus extent
    if already measured from ``imgs``; ``shift_px`` moves it (images that the sweep reads
    shifted along ``axis``).
    """
    size = imgs.shape[-1]
    win = unit_rf_bounds_px(spec, ref, yx, axis, size, n_units, check=check)
    if win is None:
        margin = 0
        if yx is not None and margins is not None:
            m_y, m_x = margins()
            margin = m_x if axis == "x" else m_y
        win = margin_rf_bounds_px(margin, size, n_units)
    lo, hi = stimulus_extent_px(imgs, axis, fill) if extent_px is None else extent_px
    return {"rf_bounds": win.bounds_px, "rf_source": win.source, "rf_note": win.note,
            "stimulus_extent_px": [lo + shift_px, hi + shift_px]}


def sweep_dataset(label, resp_t, blank, pos, yx, window, attrs) -> xr.Dataset:
    """The Dataset :func:`sweep_responses` returns (see there)."""
    n_units = resp_t.shape[2]
    coords = {"layer": ("unit", [label] * n_units), "channel": ("unit", np.arange(n_units))}
    if yx is not None:
        coords.update(y=("unit", [yx[0]] * n_units), x=("unit", [yx[1]] * n_units))
    rf = np.asarray(window["rf_bounds"], float)
    edge = {"units": "px", "long_name": "RF edge along the sweep axis, clipped to the image"}
    return xr.Dataset(
        {"responses": (("position", "shape", "unit"), resp_t.double().numpy()),
         "blank": ("unit", blank.double().numpy()),
         "rf_start_px": ("unit", rf[:, 0], edge), "rf_end_px": ("unit", rf[:, 1], edge)},
        coords={**coords, "position_px": ("position", pos), "unit": np.arange(n_units)},
        attrs={**attrs, "rf_source": window["rf_source"], "rf_note": window["rf_note"],
               "stimulus_extent_px": [float(v) for v in window["stimulus_extent_px"]]})


def _crop(images: torch.Tensor, crop: int, axis: str) -> torch.Tensor:
    """Remove ``crop`` px from both ends of ``axis`` ("y": rows, "x": columns)."""
    if crop <= 0:
        return images
    return images[..., crop:-crop, :] if axis == "y" else images[..., crop:-crop]


def _window(images: torch.Tensor, start: int, end: int, axis: str,
            fill: torch.Tensor) -> torch.Tensor:
    """The image columns (``axis="x"``) or rows ``start:end``, background beyond the image."""
    dim = 3 if axis == "x" else 2
    size = images.shape[dim]
    lo, hi = max(start, 0), min(end, size)
    core = images.narrow(dim, lo, hi - lo)
    shape = list(images.shape)
    shape[dim] = end - start
    out = fill.expand(shape).clone()
    out.narrow(dim, lo - start, hi - lo).copy_(core)
    return out


def _equivariant_sweep(run, pick, imgs, fill, pos, stride, axis, batch_size, margin_px):
    """Responses ``(P, S, U)`` from one pass per stride phase on a fitted canvas.

    Position ``d = k * stride + phase`` is read from the unit ``k`` strides over on the
    image shifted by ``phase``. Its RF is the centre unit's RF (``margin_px`` from the
    borders) moved by ``-k * stride``; the canvas spans just those RFs (widened with the
    background or cropped), starting at a whole number of strides so unit indices map.
    """
    size = imgs.shape[3 if axis == "x" else 2]
    ks = [(int(d) - int(d) % stride) // stride for d in pos]
    left, right = int(margin_px), size - 1 - int(margin_px)
    start = int(np.floor((left - max(ks) * stride) / stride)) * stride
    end = max(right + 1 - min(ks) * stride, start + stride)
    while True:
        try:
            resp = _phase_passes(run, pick, imgs, fill, pos, stride, axis, batch_size, start, end)
            return resp, (start, end)
        except _OutOfMap as exc:  # the map is too small to hold the shifted units: widen
            grow = stride * (int(exc.args[0]) + 1)
            start, end = start - grow, end + grow


def _phase_passes(run, pick, imgs, fill, pos, stride, axis, batch_size, start, end):
    canvas = _window(imgs, start, end, axis, fill)
    base = -start // stride  # the centre unit's index on the canvas's map
    resp_t = None
    for phase in sorted({int(d) % stride for d in pos}):
        ds = [int(d) for d in pos if int(d) % stride == phase]
        ks = [(d - phase) // stride for d in ds]
        parts = []
        for i in range(0, len(imgs), batch_size):
            out = run(_shift(canvas[i:i + batch_size], phase, axis, fill[i:i + batch_size]))
            parts.append(torch.stack([pick(out, base - k) for k in ks]).cpu())
        block = torch.cat(parts, dim=1)  # (len(ds), S, U)
        if resp_t is None:
            resp_t = torch.empty((len(pos),) + block.shape[1:], dtype=block.dtype)
        for j, d in enumerate(ds):
            resp_t[np.flatnonzero(pos == d)] = block[j]
    return resp_t


def translation_invariance(model, images, layer, positions_px=None, *, axis: str = "x",
                           method: str = "auto", window: str = "rf",
                           stimulus_width_px: float | None = None, **kwargs) -> xr.Dataset:
    """TI (and RF profile, position correlation) of a layer's centre units along ``axis``.

    :func:`sweep_responses` then :func:`ti_from_sweep` (``window``, ``stimulus_width_px``
    as there); other arguments as :func:`sweep_responses`.
    """
    sweep = sweep_responses(model, images, layer, positions_px, axis=axis, method=method, **kwargs)
    return ti_from_sweep(sweep, window=window, stimulus_width_px=stimulus_width_px)


def ti_from_sweep(sweep: xr.Dataset, *, window: str = "rf", stimulus_width_px: float | None = None,
                  stimulus_extent_px=None, shuffle_seed: int | None = None) -> xr.Dataset:
    """:func:`ti_metric` of a :func:`sweep_responses` result.

    Parameters
    ----------
    sweep : Dataset from :func:`sweep_responses` or :func:`~artiphys.tuning.ti_layers.sweep_layers`
    window : ``"rf"`` (default: positions where the stimulus lies wholly inside each unit's
        RF, from the sweep's ``rf_start_px``/``rf_end_px`` and ``stimulus_extent_px``) or
        ``"responsive"`` (the older response-based rule)
    stimulus_width_px : a stimulus width to use instead of the sweep's measured extent (the
        union of the shapes), centred where that extent is; e.g. the big-circle diameter
    stimulus_extent_px : ``(lo, hi)`` edges in image px, instead of the measured extent
    shuffle_seed : the shuffle control - each unit's responses are permuted across shapes
        independently at every position (seeded), which keeps the RF profile and destroys
        the consistency of shape preference across positions (TI near 0).
    """
    resp = sweep["responses"].drop_vars("position_px")
    if shuffle_seed is not None:
        rng = np.random.default_rng(shuffle_seed)
        resp = resp.copy(data=rng.permuted(np.asarray(resp.values), axis=1))
    extent = stimulus_extent_px
    if extent is None and "stimulus_extent_px" in sweep.attrs:
        extent = np.asarray(sweep.attrs["stimulus_extent_px"], float)
        if stimulus_width_px is not None:
            mid = float(extent.mean())
            extent = (mid - stimulus_width_px / 2, mid + stimulus_width_px / 2)
    rf = None
    if window == "rf":
        if "rf_start_px" not in sweep or extent is None:
            raise ResponseError(
                "this sweep has no RF window (rf_start_px / stimulus_extent_px: made by an "
                "older artiphys); recompute it with sweep_responses, or pass window='responsive'")
        rf = np.stack([sweep["rf_start_px"].values, sweep["rf_end_px"].values], axis=1)
    out = ti_metric(resp, sweep.position_px.values, blank=sweep.blank.values, rf_bounds_px=rf,
                    stimulus_extent_px=extent,
                    stimulus_width_px=stimulus_width_px if extent is None else None,
                    window=window)
    out.attrs.update({k: v for k, v in sweep.attrs.items() if k not in out.attrs})
    if shuffle_seed is not None:
        out.attrs.update(control="shuffle", shuffled_seed=int(shuffle_seed))
    return out


def ti_from_recorded(responses: xr.DataArray, *, axis: str = "x",
                     stimulus_width_px: float | None = None, rf_bounds_px=None, model=None,
                     window: str | None = None) -> xr.Dataset:
    """TI from recorded responses to a position-sweep shape set (``shapes_sweep``).

    Stimuli are matched by coordinates: ``shape_id`` and ``rotation`` name the shape,
    ``dx_px`` (``axis="x"``) or ``dy_px`` its offset, ``shape_id == -1`` the blank (response
    0 when absent).

    Parameters
    ----------
    responses : DataArray ``(stimulus, unit)`` as ``record`` returns it
    axis : the sweep axis
    stimulus_width_px : the stimulus width (default: the union of the recorded shapes from
        their boundaries, from the ``size_px``, ``scale``, ``center`` coords)
    rf_bounds_px : ``(2,)`` or ``(U, 2)`` RF edges along ``axis`` in image px
    model : ModelSpec or nn.Module the responses were recorded from; its geometry gives the
        RF of every unit (``layer_path`` attr or ``layer`` coord; ``channel, y, x`` coords)
    window : ``"rf"`` (needs ``rf_bounds_px`` or ``model``) or ``"responsive"``; default
        ``"rf"`` when the RF is known, else ``"responsive"``, which the result's ``window``
        attr then says
    """
    import pandas as pd

    key = "dx_px" if axis == "x" else "dy_px"
    need = ["shape_id", "rotation", key]
    missing = [c for c in need if c not in responses.coords]
    if missing:
        raise ResponseError(f"responses lack the stimulus coords {missing}; record a "
                            "shapes_sweep set (artiphys record --stimuli shapes_sweep:axis=x)")
    da = responses.transpose("stimulus", "unit")
    table = pd.DataFrame({c: np.asarray(da[c].values) for c in need})
    values = np.asarray(da.values, float)
    is_blank = table["shape_id"].to_numpy() < 0
    blank = values[is_blank].mean(0) if is_blank.any() else 0.0
    shapes_t = table[~is_blank]
    positions = np.sort(shapes_t[key].unique())
    if len(positions) < 3:
        raise ResponseError(f"the responses cover {len(positions)} {key} position(s); TI needs a "
                            "sweep (record shapes_sweep:axis=x or axis=y)")
    keys = None
    blocks = []
    for p in positions:
        rows = shapes_t[shapes_t[key] == p].sort_values(["shape_id", "rotation"])
        k = list(zip(rows["shape_id"], rows["rotation"]))
        if keys is None:
            keys = k
        elif k != keys:
            raise ResponseError(f"the shapes shown at {key}={p} differ from those at "
                                f"{key}={positions[0]}; every position needs the same shapes")
        blocks.append(values[rows.index.to_numpy()])
    sweep = xr.DataArray(np.stack(blocks), dims=("position", "shape", "unit"),
                         coords={k: v for k, v in da.coords.items() if v.dims == ("unit",)})
    origin = _recorded_origin(da, key, axis)
    extent = _recorded_extent(da, keys, axis, origin, stimulus_width_px)
    if rf_bounds_px is None and model is not None:
        rf_bounds_px = _recorded_rf_bounds(da, model, axis)
    if window is None:
        window = "rf" if rf_bounds_px is not None else "responsive"
    out = ti_metric(sweep, positions, blank=blank, rf_bounds_px=rf_bounds_px,
                    stimulus_extent_px=extent if window == "rf" else None,
                    stimulus_width_px=float(np.ptp(extent)) if window != "rf" else None,
                    window=window)
    out.attrs.update(axis=axis)
    if window == "responsive" and rf_bounds_px is None:
        out.attrs["window"] = ("responsive (the RF is unknown: pass model= or rf_bounds_px= for "
                               "the stimulus-in-RF window)")
    return out


def _recorded_origin(da, key, axis) -> float:
    """Image coordinate of the shapes' centre at offset 0 (``x_px - dx_px``)."""
    col = "x_px" if axis == "x" else "y_px"
    if col not in da.coords:
        return 0.0
    origin = np.unique(np.asarray(da[col].values, float) - np.asarray(da[key].values, float))
    return float(origin[0]) if len(origin) else 0.0


def _recorded_extent(da, keys, axis, origin, width):
    """Edges of the recorded shapes' union at offset 0, image px (from their boundaries;
    ``width`` or, without ``scale``/``center`` coords, ``size_px`` centred instead)."""
    if width is None and not {"scale", "center"} <= set(da.coords):
        if "size_px" not in da.coords:
            raise ResponseError("no size_px coord to size the shapes: pass stimulus_width_px")
        width = float(np.nanmax(np.asarray(da["size_px"].values, float)))
    if width is not None:
        return (origin - width / 2, origin + width / 2)
    from artiphys.stimuli.shapes import shapes_extent_px

    lo, hi = shapes_extent_px(float(da["size_px"].values[0]), axis,
                              scale=str(da["scale"].values[0]),
                              center=str(da["center"].values[0]),
                              stimuli=[(int(s), int(r)) for s, r in keys])
    return (origin + lo, origin + hi)


def _recorded_rf_bounds(da, model, axis) -> np.ndarray:
    """RF edges of the recorded units from the model's geometry."""
    from artiphys.models.receptive_field import layer_geometry

    size = int(da.attrs.get("input_size_px", 0)) or None
    if "canvas_px" in da.coords and size and int(da["canvas_px"].values[0]) != size:
        raise ResponseError(f"the shapes were drawn on a {int(da['canvas_px'].values[0])} px "
                            f"canvas and resized to the model's {size} px: pass rf_bounds_px "
                            "in canvas px")
    if size is None:
        from artiphys.models.spec import as_spec

        size = as_spec(model).preprocessing.input_size_px
    layer = da.attrs.get("layer_path") or str(da["layer"].values[0])
    geo = layer_geometry(model, layer, input_size_px=size)
    c = np.asarray(da["channel"].values, int)
    y = np.asarray(da["y"].values, int) if geo.is_spatial else np.zeros_like(c)
    x = np.asarray(da["x"].values, int) if geo.is_spatial else np.zeros_like(c)
    boxes = np.array([geo.unit_bounds_px(int(a), int(b), int(ch)) for a, b, ch in zip(y, x, c)])
    cols = (2, 3) if axis == "x" else (0, 1)
    return rf_edges_px(boxes[:, cols[0]], boxes[:, cols[1]], size)
