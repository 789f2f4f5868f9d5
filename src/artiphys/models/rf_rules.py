"""Per-node receptive-field rules: how each operation of a traced graph maps the RF of its
inputs to the RF of its output (Araujo, Norris & Sim 2019; see
:mod:`artiphys.models.receptive_field` for the conventions)."""

from __future__ import annotations

import operator
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from artiphys.models.rf_geometry import _pair


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
    if node.op == "call_module":
        return _module_geo(modules[node.target], first, shape, tensor_inputs)
    return _function_geo(node, ins, first, shape, tensor_inputs)


def _module_geo(mod: nn.Module, first: _Geo, shape, tensor_inputs) -> _Geo:
    """Geometry of a leaf module's output from its (first) input's geometry."""
    spatial = len(shape) == 3
    hw = shape[1:] if spatial else None
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


def _function_geo(node: fx.Node, ins: list[_Geo], first: _Geo, shape, tensor_inputs) -> _Geo:
    """Geometry of a function or method call's output (``torch.cat``, ``x + y``, ...)."""
    hw = shape[1:] if len(shape) == 3 else None
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

