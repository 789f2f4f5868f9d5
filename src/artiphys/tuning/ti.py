"""Translation invariance (TI) of units (Pospisil et al. 2018, Eq. 3 and Figs. 6-8).

Shapes are shown at a sweep of positions along one axis (default every 2 px over +-50 px
around the unit's RF centre) plus a blank. For position ``i``, ``r_i`` is the vector of
the unit's responses across shapes minus the blank response, minus its mean over shapes.

    TI = sum_{i<j} <r_i, r_j> / sum_{i<j} |r_i| |r_j|

over the positions where the stimulus lies wholly within the RF: a position counts when
every tested position within one stimulus width of it is responsive (non-zero summed
squared blank-subtracted response) and it is not an end of the sweep. Fewer than three
such positions give NaN (flagged). TI is 1 for a unit whose shape preferences are the
same, up to a gain, at every position, and near 0 when they are unrelated.

Responses to the sweep (:func:`sweep_responses`) come from one forward pass per position
(``method="brute"``) or, for convolutional layers, from one pass per *stride phase*
(``method="equivariant"``): a conv layer is translation-equivariant, so the centre unit's
response to a stimulus shifted by ``k * stride + phase`` px is the response of the unit
``k`` places over to the stimulus shifted by ``phase``, exactly, on a canvas wide enough
that the image borders do not enter the units' receptive fields. ``method="auto"`` checks
equivariance on the layer first and falls back to brute force where it does not hold
(fully connected layers, global or adaptive pooling).
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
from artiphys.tuning._arrays import FLAG_ATTRS, FLAG_CONSTANT, FLAG_NONFINITE

FLAG_FEW_POSITIONS = FLAG_CONSTANT  # TI undefined: fewer than 3 in-RF positions


def position_sweep(step_px: int = 2, extent_px: int = 50) -> np.ndarray:
    """Offsets ``-extent..+extent`` px in ``step_px`` steps (the paper: 2 px, +-50 px)."""
    if step_px <= 0 or extent_px < 0:
        raise ValueError("step_px must be > 0 and extent_px >= 0")
    n = int(extent_px // step_px)
    return np.arange(-n, n + 1) * int(step_px)


# ---- the metric ------------------------------------------------------------------------

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


def in_rf_positions(profile_sq: np.ndarray, positions_px, stimulus_width_px: float,
                    tol: float = 0.0) -> np.ndarray:
    """Mask ``(n_positions, n_units)`` of positions where the stimulus is wholly in the RF.

    ``profile_sq`` is the summed squared (blank-subtracted) response per position. A
    position counts when every tested position within one stimulus width of it has
    ``profile_sq > tol`` and it is not the first or last position of the sweep.
    """
    pos = np.asarray(positions_px, float)
    responsive = profile_sq > tol
    near = np.abs(pos[:, None] - pos[None, :]) <= stimulus_width_px  # (i, j)
    # i counts if all j near it are responsive: no near j is unresponsive
    unresponsive_near = near.astype(float) @ (~responsive).astype(float)  # (i, unit)
    mask = unresponsive_near == 0
    order = np.argsort(pos)
    mask[order[0]] = False
    mask[order[-1]] = False
    return mask


def ti_metric(responses, positions_px, *, blank=0.0, stimulus_width_px: float,
              center_px: float = 0.0, tol: float = 0.0) -> xr.Dataset:
    """TI, RF profile and position-correlation function from sweep responses.

    Parameters
    ----------
    responses : DataArray ``("position", "shape", "unit")`` or array of that shape
    positions_px : offsets of the positions from the RF centre, px
    blank : the response to the blank stimulus (scalar or one per unit)
    stimulus_width_px : width of the stimuli along the sweep axis, px
    center_px : the position taken as the RF centre for the correlation function
    tol : summed squared response at or below which a position counts as unresponsive

    Returns
    -------
    Dataset on ``unit`` (and ``position``): ``ti``, ``n_in_rf``, ``flags``;
    ``rf_profile`` (root of summed squared blank-subtracted responses, over the unit's
    maximum), ``position_correlation`` (r of each position's shape responses with the
    centre's), ``in_rf`` (the positions TI used).
    """
    da = _as_sweep(responses)
    pos = np.asarray(positions_px, float)
    if len(pos) != da.sizes["position"]:
        raise ResponseError(f"{len(pos)} positions but responses have {da.sizes['position']}")
    x = np.asarray(da.values, float)  # (P, S, U)
    flags = np.where(np.isfinite(x).all(axis=(0, 1)), 0, FLAG_NONFINITE).astype(np.int8)
    x = np.where(np.isfinite(x), x, 0.0) - np.broadcast_to(np.asarray(blank, float), x.shape[2:])
    prof_sq = (x**2).sum(1)  # (P, U)
    r = x - x.mean(1, keepdims=True)
    norms = np.sqrt((r**2).sum(1))  # (P, U)
    mask = in_rf_positions(prof_sq, pos, stimulus_width_px, tol)
    n_in = mask.sum(0)
    rm = r * mask[:, None, :]
    nm = norms * mask
    total = rm.sum(0)  # (S, U)
    sum_sq = (nm**2).sum(0)
    num = ((total**2).sum(0) - sum_sq) / 2
    den = (nm.sum(0) ** 2 - sum_sq) / 2
    ok = (n_in >= 3) & (den > 0) & (flags == 0)
    flags[(flags == 0) & ~ok] |= FLAG_FEW_POSITIONS
    ti = np.where(ok, num / np.where(ok, den, 1), np.nan)
    prof = np.sqrt(prof_sq)
    peak = prof.max(0)
    rf_profile = np.where(peak > 0, prof / np.where(peak > 0, peak, 1), np.nan)
    c = int(np.argmin(np.abs(pos - center_px)))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (r * r[c][None]).sum(1) / (norms * norms[c][None])
    corr = np.where((norms > 0) & (norms[c][None] > 0), corr, np.nan)
    coords = {k: ("unit", v.values) for k, v in da.coords.items() if v.dims == ("unit",)}
    coords["position_px"] = ("position", pos)
    flag_attrs = {**FLAG_ATTRS, "flag_meanings": "fewer_than_3_in_rf_positions_or_constant "
                  "nonfinite_response excluded_by_filter"}
    return xr.Dataset(
        {"ti": ("unit", ti, {"long_name": "translation invariance (Pospisil et al. 2018 Eq. 3)"}),
         "n_in_rf": ("unit", n_in), "flags": ("unit", flags, flag_attrs),
         "rf_profile": (("position", "unit"), rf_profile),
         "position_correlation": (("position", "unit"), corr),
         "in_rf": (("position", "unit"), mask)},
        coords=coords, attrs={"analysis": "ti", "stimulus_width_px": float(stimulus_width_px)})


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
                    rf_size_px=None) -> xr.Dataset:
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

    Returns
    -------
    Dataset: ``responses (position, shape, unit)``, ``blank (unit)``; unit coords
    ``layer, channel, y, x``; attrs ``method``, ``stride_px``.
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
                      batch_size, rf_size_px)
    finally:
        spec.module.to(home)  # leave the model where it was


def _sweep(spec, ref, dev, images, positions_px, axis, method, unit_yx, background, batch_size,
           rf_size_px) -> xr.Dataset:
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
    if used == "brute":
        resp = []
        for d in pos:
            rows = [pick(run(_shift(imgs[i:i + batch_size], int(d), axis, fill[i:i + batch_size])))
                    for i in range(0, n_shapes, batch_size)]
            resp.append(torch.cat(rows).cpu())
        resp_t = torch.stack(resp)  # (P, S, U)
    else:
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
        # self-check at the sweep's ends on a few shapes against brute force; redo on a
        # full, conservatively widened canvas if they differ
        few = slice(0, min(2, n_shapes))
        self_check = "passed"
        for i in (int(np.argmin(pos)), int(np.argmax(pos))):
            ref_resp = pick(run(_shift(imgs[few], int(pos[i]), axis, fill[few]))).cpu()
            scale = max(float(ref_resp.abs().max()), 1.0)
            if float((ref_resp - resp_t[i, few]).abs().max()) > 1e-4 * scale:
                resp_t, pad = _equivariant_sweep(run, pick, imgs, fill, pos, stride, axis,
                                                 batch_size, 0)
                crop = 0
                self_check = "failed; redone on a full canvas"
                break
        chunks.append(pad)
        crop_px = crop
    blank_img = fill[:1].expand(1, 3, size, size).clone()
    blank = pick(run(blank_img))[0].cpu()
    n_units = resp_t.shape[2]
    if spatial:
        coords = {"layer": ("unit", [ref.label] * n_units), "channel": ("unit", np.arange(n_units)),
                  "y": ("unit", [yx[0]] * n_units), "x": ("unit", [yx[1]] * n_units)}
    else:
        coords = {"layer": ("unit", [ref.label] * n_units), "channel": ("unit", np.arange(n_units))}
    return xr.Dataset(
        {"responses": (("position", "shape", "unit"), resp_t.double().numpy()),
         "blank": ("unit", blank.double().numpy())},
        coords={**coords, "position_px": ("position", pos), "unit": np.arange(n_units)},
        attrs={"method": used, "stride_px": int(stride or 0), "axis": axis,
               "canvas_px": list(chunks[0]) if chunks else [0, 0], "crop_px": int(crop_px),
               "self_check": self_check})


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


def translation_invariance(model, images, layer, positions_px=None, *, stimulus_width_px: float,
                           axis: str = "x", method: str = "auto", **kwargs) -> xr.Dataset:
    """TI (and RF profile, position correlation) of a layer's centre units along ``axis``.

    ``stimulus_width_px``: the shapes' extent along the axis at the model's input size
    (the paper's 32 px standard shapes). Other arguments as :func:`sweep_responses`.
    """
    sweep = sweep_responses(model, images, layer, positions_px, axis=axis, method=method, **kwargs)
    return ti_from_sweep(sweep, stimulus_width_px=stimulus_width_px)


def ti_from_sweep(sweep: xr.Dataset, *, stimulus_width_px: float,
                  shuffle_seed: int | None = None) -> xr.Dataset:
    """:func:`ti_metric` of a :func:`sweep_responses` result.

    ``shuffle_seed``: the shuffle control - each unit's responses are permuted across
    shapes independently at every position (seeded), which keeps the RF profile and
    destroys the consistency of shape preference across positions (TI near 0).
    """
    resp = sweep["responses"].drop_vars("position_px")
    if shuffle_seed is not None:
        rng = np.random.default_rng(shuffle_seed)
        resp = resp.copy(data=rng.permuted(np.asarray(resp.values), axis=1))
    out = ti_metric(resp, sweep.position_px.values, blank=sweep.blank.values,
                    stimulus_width_px=stimulus_width_px)
    out.attrs.update(sweep.attrs)
    if shuffle_seed is not None:
        out.attrs.update(control="shuffle", shuffled_seed=int(shuffle_seed))
    return out


def ti_from_recorded(responses: xr.DataArray, *, axis: str = "x",
                     stimulus_width_px: float | None = None) -> xr.Dataset:
    """TI from recorded responses to a position-sweep shape set (``shapes_sweep``).

    Stimuli are matched by coordinates: ``shape_id`` and ``rotation`` name the shape,
    ``dx_px`` (``axis="x"``) or ``dy_px`` its offset, ``shape_id == -1`` the blank (response
    0 when absent). ``stimulus_width_px`` defaults to the ``size_px`` coord.
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
    if stimulus_width_px is None:
        if "size_px" not in da.coords:
            raise ResponseError("no size_px coord: pass stimulus_width_px")
        stimulus_width_px = float(np.nanmax(np.asarray(da["size_px"].values, float)))
    sweep = xr.DataArray(np.stack(blocks), dims=("position", "shape", "unit"),
                         coords={k: v for k, v in da.coords.items() if v.dims == ("unit",)})
    out = ti_metric(sweep, positions, blank=blank, stimulus_width_px=stimulus_width_px)
    out.attrs.update(axis=axis)
    return out
