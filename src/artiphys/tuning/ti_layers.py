"""TI sweeps of several layers of one model from one set of forward passes.

:func:`artiphys.tuning.ti.sweep_responses` sweeps one layer, so sweeping 13 layers runs
the early network 13 times. :func:`sweep_layers` shows the shapes once, at one place on
the canvas, and reads every layer from the same passes.

*Equivariant layers* (convolution and pooling, checked as in ``sweep_responses``) share
one pass per stride phase of the largest stride ``S`` among them. Layer ``L`` (stride
``s_L``, which divides ``S``) reads position ``d`` - the stimulus ``d`` px from the RF
centre of its centre unit, as in a sweep of images whose shapes sit on that RF centre -
from the unit whose RF centre is at that distance from the shapes on the phase-shifted
canvas. With the canvas starting at frame column ``a`` (a multiple of ``S``), shapes moved
by ``T_L`` onto the centre unit (rounded), and the pass shifted by phase ``p``, that is
unit ``j = j_c + (p - d - T_L - a) / s_L`` of the canvas's map, for any ``p`` with
``p = d + T_L (mod s_L)``. Layers whose unit grids nest (each coarser grid a subset of the
finer ones: AlexNet, SqueezeNet, VGG blocks, ResNets) are all served by the deepest
layer's phases; others add phases. Across the sweep axis each layer reads the row of
units centred on the shapes (after a common shift ``u`` of the images; layers whose grids
do not hold such a row get their own group of passes). The canvas spans the union of every
RF that is read, so no image border enters them; the shapes' background fills the rest.

*Brute-force layers* (fully connected, global pooling, layers whose centre unit's RF
reaches past the image border, where zero padding is part of the response, and layers
whose self-check fails) share one pass per position, with the images moved by ``T_L``
(all together when their ``T_L`` agree; ``T = 0`` for non-spatial layers).

Each layer's result equals ``sweep_responses(model, shift(images, T_L), layer)``: the
centre unit's responses to the images moved (by whole pixels) so that the shapes sit on
its RF centre, as ``characterize`` renders them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import xarray as xr

from artiphys.errors import ArtiphysError, ResponseError
from artiphys.recording.hooks import Capture
from artiphys.tuning.ti import (
    _prepare_images,
    _rf_margins_px,
    _shift,
    sweep_dataset,
    sweep_window,
)
from artiphys.tuning.ti_metric import position_sweep
from artiphys.tuning.ti_window import stimulus_extent_px

_TOL = 1e-4  # self-check tolerance, relative to max(|response|, 1), as sweep_responses


@dataclass
class _Layer:
    """What the sweep needs to know about one layer."""

    ref: object
    n_units: int
    yx: tuple[int, int] | None = None  # centre unit (spatial layers)
    shift: tuple[int, int] = (0, 0)  # T: move the shapes onto the centre unit's RF centre
    residual: tuple[float, float] = (0.0, 0.0)  # shapes minus RF centre after the move
    stride: tuple[int, int] | None = None
    box: np.ndarray | None = None  # the centre unit's RF (y0, y1, x0, x1), union of channels
    brute: str = ""  # why the layer is swept by brute force ("" = equivariant)
    self_check: str = "not needed"

    @property
    def label(self) -> str:
        return self.ref.label


@dataclass
class _Group:
    """Equivariant layers that share one set of phase passes."""

    u: int  # common shift of the images across the sweep axis
    layers: list = field(default_factory=list)
    phases: list = field(default_factory=list)
    reads: dict = field(default_factory=dict)  # label -> [(position index, phase, unit j)]
    rows: dict = field(default_factory=dict)  # label -> unit index across the sweep axis
    window: tuple = (0, 0, 0, 0)  # (a0, a1, r0, r1): along, across (frame px, end excl.)


def sweep_layers(model, images, layers, positions_px=None, *, axis: str = "x",
                 method: str = "auto", center_px=None, background=None, batch_size: int = 32,
                 device=None, check_rf: bool = True) -> dict[str, xr.Dataset]:
    """Responses of several layers' centre units to a position sweep, from shared passes.

    Parameters
    ----------
    model : ModelSpec or nn.Module
    images : StimulusSet or tensor ``(n, 3, H, W)`` in [0, 1] (resized to the model's input)
    layers : layer names, aliases, LayerRefs or modules
    positions_px : offsets along ``axis`` (default :func:`position_sweep`)
    axis : ``"x"`` or ``"y"``
    method : ``"auto"`` (equivariant where it holds), ``"equivariant"`` (refuse layers where
        it does not) or ``"brute"``
    center_px : ``(y, x)`` where the shapes are centred in the images; default the
        StimulusSet's ``x_px, y_px`` (when one for all), else the image centre. Draw them at
        :func:`sweep_center_px` so that they sit exactly on every layer's RF centres
    background : RGB fill of exposed regions (default each image's corner pixel)
    check_rf : as in :func:`~artiphys.tuning.ti.sweep_responses`

    Returns
    -------
    dict label -> Dataset as :func:`~artiphys.tuning.ti.sweep_responses` returns it, with
    extra attrs ``shift_px`` (``T_L``, ``(y, x)``), ``stimulus_offset_px`` (shapes minus RF
    centre after the move), ``canvas_across_px``, ``brute_reason`` and
    ``sweep_image_equivalents`` (every forward pass of the call - probe, equivariance
    checks, phase passes, self-check, brute force, blank - in model-input images, the same
    for every layer; the ``check_rf`` backward passes on a copy of the model not included).
    """
    from artiphys.models.layers import resolve_layer
    from artiphys.models.spec import as_spec, default_device

    if axis not in ("x", "y"):
        raise ResponseError(f"axis must be 'x' or 'y', got {axis!r}")
    if method not in ("auto", "equivariant", "brute"):
        raise ResponseError(f"method must be 'auto', 'equivariant' or 'brute', got {method!r}")
    spec = as_spec(model)
    refs = list({r.label: r for r in (resolve_layer(spec, la) for la in layers)}.values())
    if not refs:
        raise ResponseError("give at least one layer to sweep")
    dev = default_device(device)
    first = next(spec.module.parameters(), None)
    home = first.device if first is not None else torch.device("cpu")
    try:
        spec.module.to(dev).eval()
        run = _Runner(spec, dev, batch_size)
        pos = np.asarray(position_sweep() if positions_px is None else positions_px, int)
        imgs = _prepare_images(images, spec.preprocessing)
        fill = (imgs[:, :, :1, :1].clone() if background is None else
                torch.as_tensor(background, dtype=torch.float32).view(1, 3, 1, 1)
                .expand(len(imgs), 3, 1, 1))
        center = _images_center(images, imgs.shape[-1], center_px)
        probe = run.capture(refs, "center", 1, lambda i, j: imgs[i:j])  # every layer runs
        size = imgs.shape[-1]
        strides = ({} if method == "brute" else
                   {ax: _equivariant_strides(run, refs, size, ax) for ax in ("y", "x")})
        plans = [_plan_layer(spec, r, int(probe[r.label].shape[1]), size, center, axis, method,
                             strides) for r in refs]
        return _sweep_all(spec, run, plans, imgs, fill, pos, axis, check_rf)
    finally:
        spec.module.to(home)


def sweep_center_px(model, layers, input_size_px: int | None = None) -> tuple[float, float]:
    """Where to draw the shapes for :func:`sweep_layers`: ``(y, x)`` of the RF centre of the
    centre unit of the spatial layer with the largest stride.

    Where the layers' unit grids nest, every other layer has a unit centred there too, so
    every layer reads the shapes exactly on an RF centre (``stimulus_offset_px`` 0) from the
    deepest layer's phases. The image centre when no layer has a known spatial geometry.
    """
    from artiphys.models.layers import resolve_layer
    from artiphys.models.receptive_field import layer_geometry, unit_center_px
    from artiphys.models.spec import as_spec
    from artiphys.models.units import map_center

    spec = as_spec(model)
    size = int(input_size_px or spec.preprocessing.input_size_px)
    best, center = 0, ((size - 1) / 2, (size - 1) / 2)
    for layer in layers:
        try:
            geo = layer_geometry(spec, resolve_layer(spec, layer), input_size_px=size)
        except ArtiphysError:
            continue
        if geo.known and geo.is_spatial and int(np.max(geo.stride_px)) > best:
            _, h, w = geo.chw
            best, center = int(np.max(geo.stride_px)), unit_center_px(geo, *map_center(h, w), 0)
    return float(center[0]), float(center[1])


class _Runner:
    """Forward passes through hooks (:class:`~artiphys.recording.hooks.Capture`), in
    batches, counted in model-input image equivalents."""

    def __init__(self, spec, dev, batch_size: int):
        self.spec, self.dev, self.batch_size = spec, dev, max(1, int(batch_size))
        self.pixels = 0

    def capture(self, refs, units, n: int, make_batch) -> dict[str, torch.Tensor]:
        """Per label ``(n, units)``; ``make_batch(i, j)`` gives images ``i:j`` in [0, 1]."""
        parts: dict[str, list] = {r.label: [] for r in refs}
        with Capture(self.spec.module, refs, units) as cap:
            for i in range(0, n, self.batch_size):
                batch = make_batch(i, min(n, i + self.batch_size)).to(self.dev)
                self.pixels += batch.shape[0] * batch.shape[2] * batch.shape[3]
                for label, out in cap.run(self.spec.preprocessing.normalise(batch)).items():
                    parts[label].append(out.detach().cpu())
        return {k: torch.cat(v) for k, v in parts.items()}

    def image_equivalents(self) -> float:
        return self.pixels / float(self.spec.preprocessing.input_size_px) ** 2


def _images_center(images, size: int, center_px) -> tuple[float, float]:
    """``(y, x)`` of the shapes' centre in the (resized) images."""
    if center_px is not None:
        return float(center_px[0]), float(center_px[1])
    params = getattr(images, "params", None)
    if params is not None and {"x_px", "y_px"} <= set(params.columns):
        rows = params[~params["blank"]] if "blank" in params.columns else params
        xs, ys = np.unique(rows["x_px"].to_numpy(float)), np.unique(rows["y_px"].to_numpy(float))
        if len(xs) == 1 and len(ys) == 1:
            scale = size / float(getattr(images, "size_px", size) or size)
            return float((ys[0] + 0.5) * scale - 0.5), float((xs[0] + 0.5) * scale - 0.5)
    return (size - 1) / 2, (size - 1) / 2


def _plan_layer(spec, ref, n_units: int, size: int, center, axis, method, strides) -> _Layer:
    """Geometry, the move ``T`` onto the centre unit and whether the layer is equivariant."""
    from artiphys.models.receptive_field import layer_geometry, unit_center_px

    try:
        geo = layer_geometry(spec, ref, input_size_px=size)
    except ArtiphysError as exc:
        geo, why = None, f"no geometry ({exc})"
    else:
        why = "" if geo.known else f"no geometry ({geo.note})"
    if geo is not None and geo.known and geo.chw[0] != n_units:
        geo, why = None, f"geometry of {geo.chw[0]} channels for {n_units} units"
    if geo is None or not geo.known or not geo.is_spatial:
        if geo is not None and geo.known and not geo.is_spatial:
            why = "not spatial (fully connected or global pooling)"
        return _finish(ref, n_units, None, why or "no geometry", method)
    c, h, w = geo.chw
    yx = (h // 2, w // 2)
    offsets = np.asarray(geo.offset_px, float).reshape(-1, 2)
    rf_c = unit_center_px(geo, *yx, channel=0)
    shift = tuple(round(rf_c[i] - center[i]) for i in (0, 1))
    residual = tuple(float(center[i] + shift[i] - rf_c[i]) for i in (0, 1))
    stride = (geo.stride_px,) * 2 if np.ndim(geo.stride_px) == 0 else tuple(geo.stride_px)
    boxes = np.asarray(geo.bounds_px, np.int64)
    box = np.array([boxes[:, 0].min(), boxes[:, 1].max(), boxes[:, 2].min(), boxes[:, 3].max()])
    box = box + np.array([stride[0] * yx[0]] * 2 + [stride[1] * yx[1]] * 2)
    layer = _Layer(ref, int(c), yx, shift, residual, tuple(int(s) for s in stride), box)
    if method == "brute":
        layer.brute = "method='brute'"
    elif len(np.unique(offsets, axis=0)) > 1:
        layer.brute = "RF centres differ by channel"
    elif box.min() < 0 or box[1] > size - 1 or box[3] > size - 1:
        layer.brute = "the centre unit's RF reaches past the image border"
    else:
        found = (strides["y"][ref.label], strides["x"][ref.label])
        if found != tuple(stride):
            layer.brute = (f"not translation-equivariant (strides (y, x) {found}, geometry "
                           f"{tuple(stride)})")
    return _finish_spatial(layer, method)


def _equivariant_strides(run, refs, size: int, axis: str) -> dict:
    """Per label, the layer's cumulative stride along ``axis`` if it is translation-
    equivariant, else None: the test of :func:`artiphys.tuning.ti._equivariant_stride`
    for all layers from the same forward passes (one at ``size``, one or two wider, one
    shifted by each stride found).
    """
    from artiphys.recording.hooks import forward_to_layers

    def outputs(x, which):
        run.pixels += x.shape[0] * x.shape[2] * x.shape[3]
        with torch.no_grad():
            return forward_to_layers(run.spec, x.to(run.dev), [r.name for r in which])

    g = torch.Generator().manual_seed(0)
    dim = 3 if axis == "x" else 2
    base = outputs(torch.randn((1, 3, size, size), generator=g), refs)
    todo = [r for r in refs if base[r.name].ndim == 4]
    found: dict = {r.label: None for r in refs}
    wide_of: dict = {}
    for delta in (96, 480):  # 96 = 2^5 * 3; 480 adds strides of 5, 10, 15...
        if not todo:
            break
        wide = torch.randn((1, 3, size, size + delta) if axis == "x"
                           else (1, 3, size + delta, size), generator=g)
        outs = outputs(wide, todo)
        for r in list(todo):
            grow = outs[r.name].shape[dim] - base[r.name].shape[dim]
            if grow > 0 and delta % grow == 0 and delta // grow <= size // 2:
                wide_of[r.label] = (wide, outs[r.name], delta // grow)
                todo.remove(r)
    by_shift: dict = {}
    for r in refs:
        if r.label in wide_of:
            wide, _, stride = wide_of[r.label]
            by_shift.setdefault((id(wide), stride), (wide, stride, []))[2].append(r)
    for wide, stride, group in by_shift.values():
        shifted = outputs(torch.roll(wide, stride, dims=dim), group)
        for r in group:
            a = wide_of[r.label][1]
            n = a.shape[dim]
            width = max(1, n // 8)  # central units: the ends see the borders, rolled columns
            a = a.narrow(dim, n // 2 - width, 2 * width)
            b = shifted[r.name].narrow(dim, n // 2 - width + 1, 2 * width)
            scale = float(a.abs().max()) or 1.0
            if float((a - b).abs().max()) <= 1e-4 * scale:
                found[r.label] = stride
    return found


def _finish(ref, n_units, yx, why, method) -> _Layer:
    if method == "equivariant":
        raise ResponseError(f"layer {ref.label!r} cannot be swept by equivariance ({why}); "
                            "use method='brute' or 'auto'")
    return _Layer(ref, int(n_units), yx, brute=why)


def _finish_spatial(layer: _Layer, method) -> _Layer:
    if layer.brute and method == "equivariant":
        raise ResponseError(f"layer {layer.label!r} cannot be swept by equivariance "
                            f"({layer.brute}); use method='brute' or 'auto'")
    return layer


def _sweep_all(spec, run, plans, imgs, fill, pos, axis, check_rf) -> dict[str, xr.Dataset]:
    size = imgs.shape[-1]
    resp: dict[str, torch.Tensor] = {}
    meta: dict[str, dict] = {}
    for group in _groups([p for p in plans if not p.brute], pos, axis, size):
        resp.update(_phase_passes(run, group, imgs, fill, pos, axis, meta))
    for layer in plans:
        if not layer.brute:
            layer.self_check = "passed"
    failed = _self_check(run, [p for p in plans if not p.brute], imgs, fill, pos, axis, resp)
    for layer in failed:
        layer.brute = "self-check against brute force failed"
        layer.self_check = "failed; brute force"
    resp.update(_brute_passes(run, [p for p in plans if p.brute], imgs, fill, pos, axis))
    blank_img = fill[:1].expand(1, 3, size, size).clone()
    blanks = run.capture([p.ref for p in plans], "center", 1, lambda i, j: blank_img)
    cost = run.image_equivalents()
    extent = stimulus_extent_px(imgs, axis, fill)
    a = 1 if axis == "x" else 0
    out = {}
    for layer in plans:
        window = sweep_window(spec, layer.ref, imgs, fill, layer.yx, axis, layer.n_units,
                              check=check_rf, shift_px=layer.shift[a], extent_px=extent,
                              margins=lambda la=layer: _rf_margins_px(
                                  spec, la.ref, size, la.yx, run.dev))
        attrs = {"method": "brute" if layer.brute else "equivariant",
                 "stride_px": int(layer.stride[a]) if layer.stride and not layer.brute else 0,
                 "axis": axis, "self_check": layer.self_check, "brute_reason": layer.brute,
                 "shift_px": list(layer.shift), "stimulus_offset_px": list(layer.residual),
                 "sweep_layers": len(plans), "sweep_image_equivalents": float(cost),
                 **meta.get(layer.label, {"canvas_px": [0, 0], "canvas_across_px": [0, 0]})}
        out[layer.label] = sweep_dataset(layer.label, resp[layer.label],
                                         blanks[layer.label][0], pos, layer.yx, window, attrs)
    return out


def _moved(imgs, shift, fill) -> torch.Tensor:
    """Images translated by whole pixels ``shift = (y, x)``, exposing ``fill``."""
    return _shift(_shift(imgs, shift[0], "y", fill), shift[1], "x", fill)


def _groups(layers: list[_Layer], pos, axis: str, size: int) -> list[_Group]:
    """Equivariant layers grouped by the shift across the axis, with phases and reads."""
    a, o = (1, 0) if axis == "x" else (0, 1)
    groups: list[_Group] = []
    for layer in sorted(layers, key=lambda la: -la.stride[o]):
        for g in groups:
            if (layer.shift[o] - g.u) % layer.stride[o] == 0:
                g.layers.append(layer)
                break
        else:
            groups.append(_Group(layer.shift[o], [layer]))
    for g in groups:
        s_max = math.lcm(*(la.stride[a] for la in g.layers))
        phase_of = {}
        for layer in sorted(g.layers, key=lambda la: -la.stride[a]):
            s, t = layer.stride[a], layer.shift[a]
            ps = []
            for d in pos:
                p = next((q for q in g.phases if (q - int(d) - t) % s == 0), None)
                if p is None:
                    p = int((int(d) + t) % s_max)
                    g.phases.append(p)
                ps.append(p)
            phase_of[layer.label] = np.array(ps)
        _fit_window(g, phase_of, pos, a, o, s_max)
    return groups


def _fit_window(g: _Group, phase_of: dict, pos, a: int, o: int, s_max: int) -> None:
    """The canvas spans every RF read, starting at whole strides; then each read's unit.

    The unit read for position ``d`` in pass ``p`` sees the centre unit's RF moved by
    ``p - d - T`` along the axis and by ``u - T`` across it.
    """
    s_o = math.lcm(*(la.stride[o] for la in g.layers))
    lo_a, hi_a, lo_o, hi_o = [], [], [], []
    for layer in g.layers:
        move = phase_of[layer.label] - pos - layer.shift[a]
        box_a = layer.box[2:] if a == 1 else layer.box[:2]
        box_o = layer.box[:2] if o == 0 else layer.box[2:]
        lo_a.append(box_a[0] + move.min())
        hi_a.append(box_a[1] + move.max())
        lo_o.append(box_o[0] - (layer.shift[o] - g.u))
        hi_o.append(box_o[1] - (layer.shift[o] - g.u))
    a0 = (int(min(lo_a)) // s_max) * s_max
    r0 = (int(min(lo_o)) // s_o) * s_o
    g.window = (a0, int(max(hi_a)) + 1, r0, int(max(hi_o)) + 1)
    for layer in g.layers:
        s_a, s_r = layer.stride[a], layer.stride[o]
        j = layer.yx[a] + (phase_of[layer.label] - pos - layer.shift[a] - a0) // s_a
        g.reads[layer.label] = list(zip(range(len(pos)), phase_of[layer.label].tolist(),
                                        j.tolist()))
        g.rows[layer.label] = layer.yx[o] - (layer.shift[o] - g.u + r0) // s_r


def _canvas(imgs: torch.Tensor, rows: tuple[int, int], cols: tuple[int, int],
            fill: torch.Tensor) -> torch.Tensor:
    """Image rows ``rows[0]:rows[1]`` and columns ``cols[0]:cols[1]`` (may reach beyond the
    image, where ``fill`` shows)."""
    n, c, h, w = imgs.shape
    out = fill.expand(n, c, rows[1] - rows[0], cols[1] - cols[0]).clone()
    y0, y1 = max(rows[0], 0), min(rows[1], h)
    x0, x1 = max(cols[0], 0), min(cols[1], w)
    if y1 > y0 and x1 > x0:
        out[:, :, y0 - rows[0]:y1 - rows[0], x0 - cols[0]:x1 - cols[0]] = imgs[:, :, y0:y1, x0:x1]
    return out


def _phase_passes(run, g: _Group, imgs, fill, pos, axis, meta) -> dict[str, torch.Tensor]:
    """One pass per phase of the group; every layer reads its units from each."""
    a0, a1, r0, r1 = g.window
    units, cols = {}, {}
    for layer in g.layers:
        js = [j for _, _, j in g.reads[layer.label]]
        cols[layer.label] = (min(js), max(js) + 1)
        i = g.rows[layer.label]
        span = range(*cols[layer.label])
        units[layer.label] = [(c, i, j) if axis == "x" else (c, j, i)
                              for c in range(layer.n_units) for j in span]
        meta[layer.label] = {"canvas_px": [a0, a1], "canvas_across_px": [r0 - g.u, r1 - g.u]}
    refs = [la.ref for la in g.layers]
    resp = {la.label: torch.empty(len(pos), len(imgs), la.n_units) for la in g.layers}
    for p in sorted(g.phases):
        if axis == "x":
            win = ((r0 - g.u, r1 - g.u), (a0 - p, a1 - p))
        else:
            win = ((a0 - p, a1 - p), (r0 - g.u, r1 - g.u))
        got = run.capture(refs, units, len(imgs),
                          lambda i, j, w=win: _canvas(imgs[i:j], w[0], w[1], fill[i:j]))
        for layer in g.layers:
            lo, hi = cols[layer.label]
            block = got[layer.label].view(len(imgs), layer.n_units, hi - lo)
            for i, q, j in g.reads[layer.label]:
                if q == p:
                    resp[layer.label][i] = block[:, :, j - lo]
    return resp


def _self_check(run, layers: list[_Layer], imgs, fill, pos, axis, resp) -> list[_Layer]:
    """Brute force at the sweep's ends on two shapes, all layers in one pass; the layers
    whose equivariant responses differ."""
    if not layers:
        return []
    few = imgs[:min(2, len(imgs))]
    ends = (int(np.argmin(pos)), int(np.argmax(pos)))
    batch = torch.cat([_shift(_moved(few, la.shift, fill[:len(few)]), int(pos[e]), axis,
                              fill[:len(few)]) for la in layers for e in ends])
    got = run.capture([la.ref for la in layers], "center", len(batch), lambda i, j: batch[i:j])
    failed = []
    k = len(few)
    for n, layer in enumerate(layers):
        for m, e in enumerate(ends):
            start = (2 * n + m) * k
            want = got[layer.label][start:start + k]
            scale = max(float(want.abs().max()), 1.0)
            if float((want - resp[layer.label][e, :k]).abs().max()) > _TOL * scale:
                failed.append(layer)
                break
    return failed


def _brute_passes(run, layers: list[_Layer], imgs, fill, pos, axis) -> dict[str, torch.Tensor]:
    """One pass per position for each set of layers that move the images alike."""
    out = {}
    by_shift: dict[tuple, list] = {}
    for layer in layers:
        by_shift.setdefault(layer.shift, []).append(layer)
    for shift, group in by_shift.items():
        refs = [la.ref for la in group]
        rows = {la.label: [] for la in group}
        for d in pos:
            got = run.capture(refs, "center", len(imgs), lambda i, j, d=int(d), t=shift: _shift(
                _moved(imgs[i:j], t, fill[i:j]), d, axis, fill[i:j]))
            for la in group:
                rows[la.label].append(got[la.label])
        out.update({label: torch.stack(v) for label, v in rows.items()})
    return out
