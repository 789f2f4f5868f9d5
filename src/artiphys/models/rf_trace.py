"""Tracing a model with torch.fx and propagating shapes and RF geometry to every node."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import fx, nn

from artiphys.models.rf_geometry import GeometryError, RFGeometry, UntraceableModelError
from artiphys.models.rf_rules import _Geo, _input_geo, _node_geo, _shape
from artiphys.models.spec import ModelSpec, as_spec, module_device


class _RecordingTracer(fx.Tracer):
    """fx tracer that also records the output node of every module call (leaf or not)."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, fx.Node]] = []

    def is_leaf_module(self, m, qualname) -> bool:
        from artiphys.models.fft_conv import FFTConv2d

        return isinstance(m, FFTConv2d) or super().is_leaf_module(m, qualname)

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
    programs: dict = field(default_factory=dict)  # virtual-layer programs, built on demand

    def nodes_of(self, path: str) -> list[fx.Node]:
        """Distinct output nodes of ``path``'s calls, in call order."""
        out = []
        for p, n in self.calls:
            if p == path and n not in out:
                out.append(n)
        return out

    def calls_of(self, path: str) -> list[fx.Node]:
        """The output node of each call of ``path``: entry ``k`` is call ``k`` (0-based), the
        numbering of forward hooks firing at run time and of ``path@k`` layer names."""
        return [n for p, n in self.calls if p == path]

    def node_of_call(self, path: str, call: int | None = None) -> fx.Node | None:
        """Output node of call ``call`` of ``path`` (None: its last call); None if none."""
        nodes = self.calls_of(path)
        if not nodes:
            return None
        if call is None:
            return nodes[-1]
        return nodes[call] if 0 <= call < len(nodes) else None


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
    return geometry_of_geo(_shape(node) or (), traced.geos.get(node))


def geometry_of_geo(shape: tuple[int, ...], g: _Geo | None) -> RFGeometry:
    """Public RFGeometry of a tensor of ``shape`` (no batch) whose internal geometry is ``g``."""
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

