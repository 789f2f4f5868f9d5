"""Receptive-field geometry of every layer of a network, analytic and empirical.

The analytic geometry is propagated through the model's ``torch.fx`` graph, so functional
operations in ``forward`` (``x + identity`` in ResNet, ``torch.cat`` in SqueezeNet fire and
Inception modules, ``torch.flatten``) are accounted for, and channels of one concatenated
output keep their own receptive fields.

Conventions
-----------
Input pixel ``i`` has its centre at coordinate ``i`` (0-based, rows ``y`` then columns
``x``). Along one axis a unit ``j`` of a layer sees input pixels
``start + stride * j ... end + stride * j`` (inclusive), where ``start``/``end`` belong to
unit 0 and may lie outside the image (negative for padded convolutions). For one layer of
kernel ``k``, stride ``s``, padding ``p`` and dilation ``d`` applied to a map whose
cumulative stride is ``S`` (Araujo, Norris & Sim 2019, *Distill*, "Computing receptive
fields of convolutional neural networks")::

    start' = start - S * p
    end'   = end   + S * (d * (k - 1) - p)
    S'     = S * s

so the RF size ``r = end - start + 1`` grows as ``r' = r + S * d * (k - 1)``. A layer that
mixes channels takes, per output channel, the union over the input channels it reads.
Reported sizes are the full theoretical extent: truncation by zero padding at the image
border is ignored (for AlexNet conv1..pool5 this gives 11, 19, 51, 67, 99, 131, 163,
195 px; Pospisil, Pasupathy & Bair 2018, *eLife*).

:func:`gradient_support_px` measures the same thing empirically: the bounding box of the
non-zero input gradient of one unit in a copy of the network whose weights are all
positive (so no gradient cancels) and whose max-pools are average-pools of the same
geometry (so every position of a window passes gradient).
"""

from __future__ import annotations

import copy
import operator
import weakref
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from artiphys.errors import ArtiphysError, UnknownUnitError
from artiphys.models.spec import ModelSpec, as_spec, module_device

__all__ = [
    "RFGeometry",
    "GeometryError",
    "UntraceableModelError",
    "layer_geometry",
    "unit_center_px",
    "gradient_support_px",
]


class GeometryError(ArtiphysError):
    """The model's graph cannot be traced, or a layer's geometry cannot be computed."""


class UntraceableModelError(GeometryError):
    """torch.fx cannot trace the model's forward (data-dependent control flow)."""


# ---- public result ----------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class RFGeometry:
    """Receptive-field geometry of one layer's output.

    Attributes
    ----------
    out_shape : tuple of int
        Output shape without the batch dimension: ``(C, H, W)``, or ``(C,)`` for 1-D layers.
    rf_size_px : int, tuple, numpy.ndarray or None
        Full theoretical RF side in input pixels (padding truncation ignored). An ``int`` when
        square and equal for every channel; an int array of shape ``(C,)`` when it differs by
        channel (concatenated branches); ``(size_y, size_x)`` / an array ``(C, 2)`` when not
        square. For non-spatial layers (``is_spatial`` False) the extent of input that every
        unit depends on. None when unknown (see ``note``).
    stride_px : int, tuple or None
        Cumulative stride in input pixels between neighbouring units (``(sy, sx)`` when the two
        axes differ); None for non-spatial layers.
    offset_px : tuple of float, numpy.ndarray or None
        Input-pixel centre ``(cy, cx)`` of unit ``(0, 0)``; unit ``(y, x)`` is centred at
        ``offset_px + stride_px * (y, x)``. An array ``(C, 2)`` when it differs by channel.
        May be negative for padded convolutions.
    is_spatial : bool
        False for 1-D (fully connected) and globally pooled layers, whose units have no
        position.
    bounds_px : numpy.ndarray or None
        Per channel, ``(y_start, y_end, x_start, x_end)`` input pixels (inclusive) seen by unit
        ``(0, 0)``; shape ``(C, 4)``.
    note : str
        Why the geometry is unknown, else ``""``.
    channels_last : bool
        True when the layer's tensor is laid out ``(H, W, C)`` (inside ConvNeXt blocks);
        ``out_shape`` is then ``(H, W, C)``.
    """

    out_shape: tuple[int, ...]
    rf_size_px: int | tuple[int, int] | np.ndarray | None
    stride_px: int | tuple[int, int] | None
    offset_px: tuple[float, float] | np.ndarray | None
    is_spatial: bool
    bounds_px: np.ndarray | None = None
    note: str = ""
    channels_last: bool = False

    @property
    def chw(self) -> tuple[int, ...]:
        """``out_shape`` as ``(C, H, W)`` (or ``(C,)``) whatever the layout."""
        s = self.out_shape
        return (s[2], s[0], s[1]) if self.channels_last and len(s) == 3 else s

    @property
    def known(self) -> bool:
        return self.bounds_px is not None

    def unit_bounds_px(self, y: int = 0, x: int = 0, channel: int = 0) -> tuple[int, int, int, int]:
        """Input pixels ``(y_start, y_end, x_start, x_end)`` (inclusive, may lie outside the
        image) seen by unit ``(channel, y, x)``."""
        if not self.known:
            raise GeometryError(f"receptive field unknown: {self.note}")
        _check_unit(self, y, x, channel)
        y0, y1, x0, x1 = (int(v) for v in self.bounds_px[channel])
        if self.is_spatial:
            sy, sx = _pair(self.stride_px)
            y0, y1, x0, x1 = y0 + sy * y, y1 + sy * y, x0 + sx * x, x1 + sx * x
        return y0, y1, x0, x1


def unit_center_px(geometry: RFGeometry, y: int, x: int, channel: int | None = None
                   ) -> tuple[float, float]:
    """Input-pixel centre ``(cy, cx)`` of unit ``(y, x)``: ``offset_px + stride_px * (y, x)``.

    Parameters
    ----------
    geometry : RFGeometry
    y, x : int
        Unit position in the layer's output map (``int(H / 2)`` is the centre unit).
    channel : int, optional
        Needed only where the offset differs by channel.

    Raises
    ------
    UnknownUnitError
        When ``(y, x)`` (or ``channel``) is outside the layer's output.
    """
    if not geometry.known:
        raise GeometryError(f"receptive field unknown: {geometry.note}")
    _check_unit(geometry, y, x, channel or 0)
    offset = geometry.offset_px
    if isinstance(offset, np.ndarray):
        if channel is None:
            raise ArtiphysError("the RF centre of this layer differs by channel; pass channel=")
        offset = tuple(float(v) for v in offset[channel])
    if not geometry.is_spatial:
        return float(offset[0]), float(offset[1])
    sy, sx = _pair(geometry.stride_px)
    return float(offset[0] + sy * y), float(offset[1] + sx * x)


def _check_unit(geometry: RFGeometry, y: int, x: int, channel: int) -> None:
    shape = geometry.chw
    if not 0 <= channel < shape[0]:
        raise UnknownUnitError(f"channel {channel} is outside 0..{shape[0] - 1}")
    h, w = (shape[1], shape[2]) if len(shape) == 3 else (1, 1)
    if not (0 <= y < h and 0 <= x < w):
        raise UnknownUnitError(f"unit (y={y}, x={x}) is outside the {h}x{w} output map")


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


# ---- internal per-node geometry ---------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _Geo:
    """Geometry of one tensor in the graph.

    ``kind`` is ``"spatial"`` (unit j sees ``lo + S*j .. hi + S*j`` per axis), ``"global"``
    (every unit of a channel sees the fixed extent ``lo .. hi``) or ``"unknown"``.
    ``lo``/``hi`` are int arrays ``(C, 2)`` (y, x) for unit (0, 0). ``channels_last`` marks
    a tensor permuted to ``(N, H, W, C)`` (ConvNeXt blocks run their MLP that way).
    """

    kind: str
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None
    stride: tuple[int, int] | None = None
    hw: tuple[int, int] | None = None
    note: str = ""
    channels_last: bool = False

    @property
    def channels(self) -> int:
        return self.lo.shape[0]

    def extent(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel extent ``(lo, hi)`` covered by all units of each channel."""
        if self.kind == "global":
            return self.lo, self.hi
        reach = np.array(self.stride) * (np.array(self.hw) - 1)
        return self.lo, self.hi + reach


def _unknown(note: str) -> _Geo:
    return _Geo("unknown", note=note)


def _input_geo(channels: int, hw: tuple[int, int]) -> _Geo:
    zeros = np.zeros((channels, 2), dtype=np.int64)
    return _Geo("spatial", zeros, zeros.copy(), (1, 1), hw)


def _window(g: _Geo, k, s, p, d, hw_out) -> _Geo:
    """Channel-wise sliding window (pool, depthwise part of a conv)."""
    if g.kind == "global":
        return g
    S = np.array(g.stride)
    k, s, p, d = (np.array(v) for v in (k, s, p, d))
    lo = g.lo - S * p
    hi = g.hi + S * (d * (k - 1) - p)
    return _Geo("spatial", lo, hi, tuple(int(v) for v in S * s), hw_out)


def _mix_groups(g: _Geo, groups: int, out_channels: int) -> _Geo:
    """Union over the input channels of each group, broadcast to that group's outputs."""
    cin = g.channels
    if cin % groups or out_channels % groups:
        return _unknown("channel groups do not divide the channels")
    lo = g.lo.reshape(groups, cin // groups, 2).min(axis=1)
    hi = g.hi.reshape(groups, cin // groups, 2).max(axis=1)
    rep = out_channels // groups
    return _Geo(g.kind, np.repeat(lo, rep, axis=0), np.repeat(hi, rep, axis=0), g.stride, g.hw)


def _to_global(g: _Geo) -> _Geo:
    lo, hi = g.extent()
    return _Geo("global", lo.copy(), hi.copy())


def _union_all(g: _Geo, out_channels: int) -> _Geo:
    """Every output depends on every input (fully connected, softmax over features)."""
    lo, hi = g.extent()
    lo = np.repeat(lo.min(axis=0, keepdims=True), out_channels, axis=0)
    hi = np.repeat(hi.max(axis=0, keepdims=True), out_channels, axis=0)
    return _Geo("global", lo, hi)


def _flatten(g: _Geo, shape: tuple[int, ...]) -> _Geo:
    """``(C, H, W) -> (C*H*W,)``, C-major; each feature keeps its own unit's RF."""
    if g.kind == "global":
        h = w = 1
        if len(shape) == 3:
            h, w = shape[1], shape[2]
        return _Geo("global", np.repeat(g.lo, h * w, axis=0), np.repeat(g.hi, h * w, axis=0))
    h, w = g.hw
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    shift = np.stack([ys.ravel() * g.stride[0], xs.ravel() * g.stride[1]], axis=1)  # (HW, 2)
    lo = (g.lo[:, None, :] + shift[None]).reshape(-1, 2)
    hi = (g.hi[:, None, :] + shift[None]).reshape(-1, 2)
    return _Geo("global", lo, hi)


def _elementwise(geos: list[_Geo], channels: int) -> _Geo:
    """Union of broadcast operands (``x + identity``, ``x * gate``)."""
    for g in geos:
        if g.kind == "unknown":
            return g
    expanded = []
    for g in geos:
        if g.channels == channels:
            expanded.append(g)
        elif g.channels == 1:
            expanded.append(_Geo(g.kind, np.repeat(g.lo, channels, 0), np.repeat(g.hi, channels, 0),
                                 g.stride, g.hw))
        else:
            return _unknown("operands with different channel counts")
    if all(g.kind == "spatial" for g in expanded):
        if len({(g.stride, g.hw) for g in expanded}) > 1:
            spatial = [g for g in expanded if g.hw != (1, 1)]
            if len({(g.stride, g.hw) for g in spatial}) > 1:
                return _unknown("operands with different strides or sizes")
            # 1x1 maps broadcast over the others: every unit sees their whole extent
            expanded = [g if g.hw != (1, 1) else _to_global(g) for g in expanded]
        else:
            lo = np.min([g.lo for g in expanded], axis=0)
            hi = np.max([g.hi for g in expanded], axis=0)
            return _Geo("spatial", lo, hi, expanded[0].stride, expanded[0].hw)
    ext = [g.extent() for g in expanded]
    return _Geo("global", np.min([e[0] for e in ext], axis=0), np.max([e[1] for e in ext], axis=0))


def _concat(geos: list[_Geo]) -> _Geo:
    for g in geos:
        if g.kind == "unknown":
            return g
    if all(g.kind == "spatial" for g in geos):
        if len({(g.stride, g.hw) for g in geos}) > 1:
            return _unknown("concatenated branches with different strides or sizes")
        return _Geo("spatial", np.concatenate([g.lo for g in geos]),
                    np.concatenate([g.hi for g in geos]), geos[0].stride, geos[0].hw)
    if all(g.kind == "global" for g in geos):
        return _Geo("global", np.concatenate([g.lo for g in geos]), np.concatenate([g.hi for g in geos]))
    return _unknown("concatenation of spatial and non-spatial tensors")


def _channel_window(g: _Geo, size: int) -> _Geo:
    """Local response normalisation: channel c reads channels c - size//2 .. c + (size-1)//2."""
    if g.kind == "unknown":
        return g
    c = g.channels
    lo = np.empty_like(g.lo)
    hi = np.empty_like(g.hi)
    for i in range(c):
        a, b = max(0, i - size // 2), min(c, i + (size - 1) // 2 + 1)
        lo[i] = g.lo[a:b].min(axis=0)
        hi[i] = g.hi[a:b].max(axis=0)
    return _Geo(g.kind, lo, hi, g.stride, g.hw)


def _pad_amount(padding, kernel, dilation) -> tuple[int, int] | None:
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0)
        if padding == "same":  # torch pads total d*(k-1), the smaller half first
            return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
        return None
    return _pair(padding)


def _adaptive(g: _Geo, out_hw, in_hw) -> _Geo:
    if g.kind == "global":
        return g
    out_hw = tuple(in_hw[i] if o is None else int(o) for i, o in enumerate(_pair_or_none(out_hw)))
    if out_hw == (1, 1):
        return _to_global(g)
    if all(n % o == 0 for n, o in zip(in_hw, out_hw)):
        k = tuple(n // o for n, o in zip(in_hw, out_hw))
        return _window(g, k, k, (0, 0), (1, 1), out_hw)
    return _unknown(f"adaptive pooling from {in_hw} to {out_hw} has unequal windows; run the "
                    "model at an input size where the map divides evenly")


def _pair_or_none(v):
    if v is None or isinstance(v, int):
        return (v, v)
    return tuple(v)


_ELEMENTWISE_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Softplus,
    nn.Dropout, nn.Dropout2d, nn.AlphaDropout, nn.Identity,
    nn.BatchNorm2d, nn.BatchNorm1d,  # per-channel affine in eval mode
)
_ELEMENTWISE_NAMES = {
    "relu", "relu_", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "mish", "sigmoid",
    "tanh", "hardswish", "hardsigmoid", "hardtanh", "softplus", "dropout", "dropout2d",
    "contiguous", "clone", "float", "double", "half", "to", "type", "detach", "neg", "abs",
    "exp", "log", "sqrt", "pow", "square", "clamp", "clamp_min", "sigmoid_", "batch_norm",
    "stochastic_depth", "drop_path",
}
# identity in eval mode (torchvision.ops.StochasticDepth, timm DropPath)
_IDENTITY_IN_EVAL = {"StochasticDepth", "DropPath", "DropBlock2d"}
_BINARY = {operator.add, operator.sub, operator.mul, operator.truediv, operator.iadd,
           operator.imul, torch.add, torch.sub, torch.mul, torch.div}
_BINARY_METHODS = {"add", "add_", "sub", "mul", "mul_", "div", "expand_as"}


def _kind_of_module(mod: nn.Module) -> str:
    if isinstance(mod, nn.modules.conv._ConvNd):
        return "conv"
    if isinstance(mod, (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
                        nn.modules.pooling._AdaptiveAvgPoolNd,
                        nn.modules.pooling._AdaptiveMaxPoolNd)):
        return "pool"
    if isinstance(mod, (nn.LocalResponseNorm, nn.modules.batchnorm._NormBase, nn.GroupNorm,
                        nn.LayerNorm)):
        return "norm"
    if isinstance(mod, nn.Linear):
        return "linear"
    if isinstance(mod, (nn.Softmax, nn.LogSoftmax)):
        return "softmax"
    if isinstance(mod, nn.modules.dropout._DropoutNd):
        return "dropout"
    if isinstance(mod, nn.ReLU):
        return "relu"
    if isinstance(mod, nn.Flatten):
        return "flatten"
    return type(mod).__name__.lower()


def _kind_of_node(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        return _kind_of_module(modules[node.target])
    target = node.target
    if target is torch.cat or target == "cat":
        return "concat"
    if target in _BINARY or target in _BINARY_METHODS:
        return {operator.add: "add", torch.add: "add", operator.iadd: "add", "add": "add",
                "add_": "add", operator.mul: "mul", torch.mul: "mul", "mul": "mul"}.get(target, "op")
    return getattr(target, "__name__", str(target)).strip("_")


def _shape(node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta") if isinstance(node, fx.Node) else None
    if meta is None or not hasattr(meta, "shape"):
        return None
    return tuple(int(v) for v in meta.shape[1:])


def _arg(node: fx.Node, index: int, name: str, default=None):
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _node_geo(node: fx.Node, geos: dict, modules: dict[str, nn.Module]) -> _Geo | None:
    shape = _shape(node)
    if shape is None:  # not a tensor (sizes, tuples)
        return None
    # parameters and buffers (get_attr) are constants: they carry no receptive field
    tensor_inputs = [a for a in node.all_input_nodes
                     if _shape(a) is not None and a.op != "get_attr"]
    ins = [geos.get(a) for a in tensor_inputs]
    if any(g is None for g in ins):
        return _unknown("an input of this operation has no geometry")
    if not ins:
        what = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
        return _unknown(f"no receptive-field rule for {what or node.target} of a non-tensor value")
    first = ins[0] if ins else None
    if first is not None and first.kind == "unknown" and not (
            node.op == "call_function" and node.target is torch.cat):
        return first
    if any(g.channels_last for g in ins):
        return _channels_last_geo(node, ins, shape, modules)
    if _permute_dims(node) == (0, 2, 3, 1) and first.kind != "unknown":
        return replace(first, channels_last=True)
    spatial = len(shape) == 3
    hw = shape[1:] if spatial else None

    if node.op == "call_module":
        mod = modules[node.target]
        if isinstance(mod, nn.Conv2d):
            k, s, d = _pair(mod.kernel_size), _pair(mod.stride), _pair(mod.dilation)
            p = _pad_amount(mod.padding, k, d)
            if p is None:
                return _unknown(f"padding {mod.padding!r}")
            mixed = _mix_groups(first, mod.groups, shape[0])
            return _window(mixed, k, s, p, d, hw) if mixed.kind == "spatial" else mixed
        if isinstance(mod, (nn.MaxPool2d, nn.AvgPool2d)):
            k, s = _pair(mod.kernel_size), _pair(mod.stride or mod.kernel_size)
            d = _pair(getattr(mod, "dilation", 1))
            return _window(first, k, s, _pair(mod.padding), d, hw)
        if isinstance(mod, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            return _adaptive(first, mod.output_size, _shape(tensor_inputs[0])[1:])
        if isinstance(mod, nn.LocalResponseNorm):
            return _channel_window(first, mod.size)
        if isinstance(mod, _ELEMENTWISE_MODULES) or type(mod).__name__ in _IDENTITY_IN_EVAL:
            return first
        if isinstance(mod, (nn.GroupNorm, nn.InstanceNorm2d)) and spatial:
            return _to_global(first)  # statistics over the whole map
        if isinstance(mod, nn.Linear) and len(shape) == 1:
            return _union_all(first, shape[0])
        if isinstance(mod, nn.Flatten):
            return _flatten_node(first, _shape(tensor_inputs[0]), shape, mod.start_dim)
        if isinstance(mod, (nn.Softmax, nn.LogSoftmax)):
            return _softmax(first, shape, mod.dim)
        return _unknown(f"no receptive-field rule for {type(mod).__name__}")

    target = node.target
    name = target if isinstance(target, str) else getattr(target, "__name__", "")
    if node.op == "call_function" and target is torch.cat or name == "cat":
        dim = _arg(node, 1, "dim", 0)
        if dim not in (1, -len(shape)):
            return _unknown(f"concatenation along dim {dim}")
        return _concat(ins)
    if target in _BINARY or (node.op == "call_method" and name in _BINARY_METHODS):
        if name == "expand_as":
            return first
        return _elementwise(ins, shape[0])
    if target is torch.flatten or name in ("flatten", "view", "reshape"):
        if name == "flatten" or target is torch.flatten:
            start = _arg(node, 1, "start_dim", 0)
        else:
            start = 1 if len(shape) == 1 else None
        return _flatten_node(first, _shape(tensor_inputs[0]), shape, start)
    if target in (F.max_pool2d, F.avg_pool2d) or name in ("max_pool2d", "avg_pool2d"):
        k = _pair(_arg(node, 1, "kernel_size"))
        s = _pair(_arg(node, 2, "stride", None) or k)
        p = _pair(_arg(node, 3, "padding", 0))
        d = _pair(_arg(node, 4, "dilation", 1)) if target is F.max_pool2d else (1, 1)
        return _window(first, k, s, p, d, hw)
    if target in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d) or name.startswith("adaptive_"):
        return _adaptive(first, _arg(node, 1, "output_size"), _shape(tensor_inputs[0])[1:])
    if name in ("mean", "amax", "sum", "max") and len(ins) == 1:
        dims = _arg(node, 1, "dim", None)
        dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
        if {2, 3} <= {d % 4 for d in dims}:
            return _to_global(first)
        return _unknown(f"{name} over dims {dims}")
    if name in ("softmax", "log_softmax"):
        return _softmax(first, shape, _arg(node, 1, "dim", None))
    if name in _ELEMENTWISE_NAMES and len(ins) == 1:
        return first
    return _unknown(f"no receptive-field rule for {name or target}")


def _permute_dims(node: fx.Node) -> tuple[int, ...] | None:
    name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
    if name != "permute":
        return None
    dims = node.args[1:] if node.op == "call_method" else node.args[1:2]
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = dims[0]
    if not dims:
        dims = node.kwargs.get("dims", ())
    return tuple(int(d) % 4 for d in dims)


def _channels_last_geo(node: fx.Node, ins: list[_Geo], shape, modules) -> _Geo:
    """Operations on ``(N, H, W, C)`` tensors: per-position channel mixing only."""
    first = ins[0]
    channels = shape[-1]
    name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
    if _permute_dims(node) == (0, 3, 1, 2):
        return replace(first, channels_last=False)
    mod = modules.get(node.target) if node.op == "call_module" else None
    if mod is not None:
        if isinstance(mod, nn.Linear) or (isinstance(mod, nn.LayerNorm)
                                          and len(mod.normalized_shape) == 1):
            return replace(_mix_groups(first, 1, channels), channels_last=True)
        if isinstance(mod, _ELEMENTWISE_MODULES) or type(mod).__name__ in _IDENTITY_IN_EVAL:
            return first
        return _unknown(f"no channels-last rule for {type(mod).__name__}")
    if name in ("layer_norm", "linear"):
        return replace(_mix_groups(first, 1, channels), channels_last=True)
    if node.target in _BINARY or (node.op == "call_method" and name in _BINARY_METHODS):
        if not all(g.channels_last for g in ins):
            return _unknown("operands in different memory layouts")
        out = _elementwise(ins, channels)
        return replace(out, channels_last=True) if out.kind != "unknown" else out
    if name in _ELEMENTWISE_NAMES and len(ins) == 1:
        return first
    return _unknown(f"no channels-last rule for {name or node.target}")


def _flatten_node(g: _Geo, in_shape, out_shape, start_dim) -> _Geo:
    if tuple(out_shape) == tuple(in_shape):
        return g
    if start_dim in (1, -3) and len(in_shape) == 3 and len(out_shape) == 1:
        return _flatten(g, in_shape)
    return _unknown(f"reshape from {in_shape} to {out_shape}")


def _softmax(g: _Geo, shape, dim) -> _Geo:
    if len(shape) == 1 and dim in (1, -1):
        return _union_all(g, shape[0])
    if len(shape) == 3 and dim in (1, -3):
        return _mix_groups(g, 1, shape[0])
    return _unknown(f"softmax over dim {dim}")


# ---- tracing ----------------------------------------------------------------------------

class _RecordingTracer(fx.Tracer):
    """fx tracer that also records the output node of every module call (leaf or not)."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, fx.Node]] = []

    def call_module(self, m, forward, args, kwargs):
        out = super().call_module(m, forward, args, kwargs)
        if isinstance(out, fx.Proxy):
            self.calls.append((self.path_of_module(m), out.node))
        return out


@dataclass(eq=False)
class _Traced:
    graph_module: fx.GraphModule
    calls: list[tuple[str, fx.Node]]  # (module path, output node), in completion order
    geos: dict  # node -> _Geo or None
    input_size_px: int

    def nodes_of(self, path: str) -> list[fx.Node]:
        out = []
        for p, n in self.calls:
            if p == path and n not in out:
                out.append(n)
        return out


_CACHE: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def _structure_key(module: nn.Module) -> tuple:
    return tuple((name, type(m).__name__, repr(m) if not list(m.children()) else "")
                 for name, m in module.named_modules())


def trace_geometry(model: ModelSpec | nn.Module, input_size_px: int | None = None) -> _Traced:
    """Trace ``model`` with torch.fx and propagate shapes and RF geometry to every node.

    Cached per module, input size and module structure.
    """
    spec = as_spec(model)
    size = int(input_size_px or spec.preprocessing.input_size_px)
    module = spec.module
    key = (size, _structure_key(module))
    per_module = _CACHE.setdefault(module, {})
    if key in per_module:
        return per_module[key]

    tracer = _RecordingTracer()
    try:
        graph = tracer.trace(module)
    except Exception as exc:  # fx raises many types; all mean "not traceable"
        raise UntraceableModelError(
            f"cannot trace {type(module).__name__} with torch.fx ({type(exc).__name__}: {exc}); "
            "receptive fields need the model's graph: remove data-dependent control flow "
            "from forward() or wrap the model in an nn.Sequential") from None
    gm = fx.GraphModule(module, graph)
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise GeometryError("receptive fields need a model with exactly one input tensor")
    in_channels = _first_in_channels(module)
    example = torch.zeros(1, in_channels, size, size, device=module_device(module))
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.passes.shape_prop import ShapeProp

    try:
        ShapeProp(gm, fake_mode=FakeTensorMode(allow_non_fake_inputs=True)).propagate(example)
    except Exception as exc:
        raise GeometryError(f"the model does not run on a {in_channels}x{size}x{size} input "
                            f"({type(exc).__name__}: {exc}); pass another input size") from None

    modules = dict(gm.named_modules())
    geos: dict = {}
    for node in graph.nodes:
        if node.op == "placeholder":
            geos[node] = _input_geo(in_channels, (size, size))
        elif node.op in ("call_module", "call_function", "call_method"):
            geos[node] = _node_geo(node, geos, modules)
        elif node.op == "get_attr":
            geos[node] = None
    traced = _Traced(gm, tracer.calls, geos, size)
    per_module.clear()
    per_module[key] = traced
    return traced




def _first_in_channels(module: nn.Module) -> int:
    for m in module.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            return int(m.in_channels)
        if isinstance(m, nn.Linear):
            break
    return 3


def geometry_of_node(traced: _Traced, node: fx.Node) -> RFGeometry:
    """Public RFGeometry of one traced node."""
    shape = _shape(node) or ()
    g = traced.geos.get(node)
    if g is None or g.kind == "unknown":
        note = g.note if g is not None else "not a tensor"
        return RFGeometry(shape, None, None, None, len(shape) == 3, None, note)
    lo, hi = g.lo, g.hi
    size = hi - lo + 1  # (C, 2)
    centre = (lo + hi) / 2.0
    if np.all(size[:, 0] == size[:, 1]):
        sizes = size[:, 0]
        rf = int(sizes[0]) if np.all(sizes == sizes[0]) else sizes.astype(np.int64)
    else:
        rf = (int(size[0, 0]), int(size[0, 1])) if np.all(size == size[0]) else size.astype(np.int64)
    offset = (float(centre[0, 0]), float(centre[0, 1])) if np.all(centre == centre[0]) else centre
    bounds = np.stack([lo[:, 0], hi[:, 0], lo[:, 1], hi[:, 1]], axis=1).astype(np.int64)
    if g.kind == "spatial":
        stride = g.stride[0] if g.stride[0] == g.stride[1] else tuple(g.stride)
        return RFGeometry(shape, rf, int(stride) if isinstance(stride, (int, np.integer)) else stride,
                          offset, True, bounds, channels_last=g.channels_last)
    return RFGeometry(shape, rf, None, offset, False, bounds, channels_last=g.channels_last)


def layer_geometry(model: ModelSpec | nn.Module, layer, input_size_px: int | None = None
                   ) -> RFGeometry:
    """Receptive-field geometry of one layer's output.

    Parameters
    ----------
    model : ModelSpec or nn.Module
    layer : str, LayerRef or nn.Module
        Module path (``"features.3"``), alias (``"conv2"``) or module. A container module
        (a ResNet block, a SqueezeNet fire module) gives the geometry of what it returns.
    input_size_px : int, optional
        Side of the square input; default the model's preprocessing input size. RF sizes do
        not depend on it; output shapes (and layers after adaptive pooling) do.

    Returns
    -------
    RFGeometry

    Raises
    ------
    UnknownLayerError
        When the layer does not exist (closest names listed).
    GeometryError
        When the model cannot be traced, the layer never runs in ``forward``, or it runs
        several times with different geometry (use the enclosing block's path instead).
    """
    from artiphys.models.layers import resolve_layer, spec_with_aliases

    spec = spec_with_aliases(model)
    ref = resolve_layer(spec, layer)
    traced = trace_geometry(spec, input_size_px)
    nodes = traced.nodes_of(ref.name)
    if not nodes:
        raise GeometryError(f"layer {ref.label!r} does not run in the model's forward pass")
    geoms = [geometry_of_node(traced, n) for n in nodes]
    if len(geoms) > 1 and len({_geom_key(g) for g in geoms}) > 1:
        raise GeometryError(
            f"module {ref.name!r} runs {len(geoms)} times per forward pass with different "
            "receptive fields; address the output you want by its enclosing block "
            f"(see `artiphys layers {spec.name}`)")
    return geoms[0]


def _geom_key(g: RFGeometry) -> tuple:
    b = None if g.bounds_px is None else g.bounds_px.tobytes()
    return (g.out_shape, b, str(g.stride_px), g.is_spatial)


# ---- empirical check --------------------------------------------------------------------

def _positive_copy(gm: fx.GraphModule, seed: int = 0) -> fx.GraphModule:
    """A copy in which no gradient can cancel: conv/linear weights positive (uniform in
    ``[0.5, 1.5] / fan_in``, random so that normalisations over channels do not cancel) and
    zero biases, batch norms reset to identity, max-pools replaced by average-pools of the
    same geometry, nothing requiring grad."""
    gm = copy.deepcopy(gm)
    gen = torch.Generator().manual_seed(seed)
    for path, mod in list(gm.named_modules()):
        new = None
        if isinstance(mod, nn.MaxPool2d) and _pair(mod.dilation) == (1, 1):
            new = nn.AvgPool2d(mod.kernel_size, mod.stride, mod.padding, mod.ceil_mode)
        elif isinstance(mod, nn.AdaptiveMaxPool2d):
            new = nn.AdaptiveAvgPool2d(mod.output_size)
        elif isinstance(mod, (nn.modules.conv._ConvNd, nn.Linear)):
            with torch.no_grad():
                w = 0.5 + torch.rand(mod.weight.shape, generator=gen, dtype=mod.weight.dtype)
                mod.weight.copy_(w / mod.weight[0].numel())
                if mod.bias is not None:
                    mod.bias.zero_()
        elif isinstance(mod, nn.modules.batchnorm._NormBase):
            mod.reset_running_stats()
            if mod.affine:
                with torch.no_grad():
                    mod.weight.fill_(1.0)
                    mod.bias.zero_()
        if new is not None:
            parent, _, child = path.rpartition(".")
            setattr(gm.get_submodule(parent) if parent else gm, child, new)
    for node in gm.graph.nodes:  # max-pools called as functions in forward()
        if node.op == "call_function" and node.target is F.max_pool2d:
            node.target = _avg_pool_like_max
    gm.recompile()
    for p in gm.parameters():
        p.requires_grad_(False)
    return gm.eval()


def _avg_pool_like_max(input, kernel_size, stride=None, padding=0, dilation=1,
                       ceil_mode=False, return_indices=False):
    """``F.max_pool2d``'s signature, averaging instead (undilated windows only)."""
    if _pair(dilation) != (1, 1) or return_indices:
        return F.max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
    return F.avg_pool2d(input, kernel_size, stride if stride else kernel_size, padding, ceil_mode)


def gradient_support_px(model: ModelSpec | nn.Module, layer, channel: int = 0,
                        y: int | None = None, x: int | None = None,
                        input_size_px: int | None = None, seed: int = 0
                        ) -> tuple[int, int, int, int]:
    """Empirical receptive field: bounding box of the non-zero input gradient of one unit.

    The model is copied (the original is not modified), truncated after ``layer``, given
    positive weights (about ``1/fan_in``), identity batch norms and average-pools in place of
    (undilated) max-pools, including ``F.max_pool2d`` calls in ``forward``, and run on a
    positive random image, so every input pixel the unit depends on gets a non-zero
    gradient. Dilated max-pools stay max-pools and may make the measured box smaller.

    Parameters
    ----------
    model, layer
        As in :func:`layer_geometry`.
    channel, y, x : int
        The unit; ``y``/``x`` default to the centre unit ``int(H / 2)``, ``int(W / 2)``.
    input_size_px : int, optional
        Side of the square input (default the model's input size). Choose it larger than the
        RF so that the unit's field is not cut by the image border.
    seed : int

    Returns
    -------
    (y_start, y_end, x_start, x_end) : tuple of int
        Inclusive pixel bounds of the support, clipped to the image by construction.
    """
    from artiphys.models.layers import resolve_layer, spec_with_aliases

    spec = spec_with_aliases(model)
    ref = resolve_layer(spec, layer)
    traced = trace_geometry(spec, input_size_px)
    nodes = traced.nodes_of(ref.name)
    if len(nodes) != 1:
        raise GeometryError(f"layer {ref.label!r} runs {len(nodes)} times; pick a block output")
    target = nodes[0]
    graph = fx.Graph()
    copied: dict = {}
    graph.graph_copy(traced.graph_module.graph, copied)
    graph.output(copied[target])
    truncated = fx.GraphModule(traced.graph_module, graph)  # shares the model's modules
    truncated.graph.eliminate_dead_code()
    truncated.delete_all_unused_submodules()
    truncated.recompile()
    gm = _positive_copy(truncated, seed)

    size = traced.input_size_px
    shape = _shape(target)
    gen = torch.Generator().manual_seed(seed)
    image = 0.5 + 0.5 * torch.rand(1, _first_in_channels(spec.module), size, size, generator=gen)
    image = image.to(module_device(spec.module))
    image.requires_grad_(True)
    out = gm(image)[0]
    if traced.geos[target] is not None and traced.geos[target].channels_last:
        out = out.permute(2, 0, 1)
        shape = (shape[2], shape[0], shape[1])
    if len(shape) == 3:
        y = shape[1] // 2 if y is None else y
        x = shape[2] // 2 if x is None else x
        unit = out[channel, y, x]
    else:
        unit = out[channel]
    unit.backward()
    support = image.grad[0].abs().sum(0) > 0
    rows = torch.nonzero(support.any(1)).flatten()
    cols = torch.nonzero(support.any(0)).flatten()
    if len(rows) == 0:
        raise GeometryError("the unit's gradient is zero everywhere")
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def clip_bounds(bounds: tuple[int, int, int, int], input_size_px: int) -> tuple[int, int, int, int]:
    """Clip inclusive ``(y0, y1, x0, x1)`` bounds to a square image of side ``input_size_px``."""
    y0, y1, x0, x1 = bounds
    n = int(input_size_px) - 1
    return max(0, y0), min(n, y1), max(0, x0), min(n, x1)
