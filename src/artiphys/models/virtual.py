"""Virtual layers: tensors of a network that no module returns, addressable by name.

``<layer>:linear`` is the *linear output* of a layer: its output with the layer's own final
rectifiers taken away (Pospisil et al. 2018 read every major layer at its linear
sublayer, before the rectifier). Found on the torch.fx graph by :func:`linear_parts`:

* a rectifier's output -> the tensor it rectifies (``relu(out + identity)`` of a ResNet
  block -> ``out + identity``; ``F.relu(bn(x))`` of an Inception ``BasicConv2d`` -> the
  batch norm's output);
* a channel concatenation -> the concatenation of its inputs' linear outputs (a SqueezeNet
  fire module -> ``cat(expand1x1, expand3x3)`` before their ReLUs; an Inception block ->
  the branches' batch-norm outputs; a pooling branch stays as it is);
* a no-op in eval mode (dropout, identity) -> its input's linear output;
* anything else is already linear: ``<layer>:linear`` is the layer itself (MobileNetV2's
  inverted residual blocks end without a rectifier).

A virtual layer is computed during the real forward pass (forward hooks, so recording,
synthesis and gradients work on it as on any layer) from *sources*: module calls whose
output (or the model input) is hooked, and the functional operations of ``forward`` that
lie between them and the virtual tensor, replayed out of place from the traced graph.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import fx, nn

from artiphys.errors import UnknownLayerError
from artiphys.models.rf_geometry import GeometryError, RFGeometry
from artiphys.models.rf_rules import _arg, _concat, _shape
from artiphys.models.rf_trace import _Traced, geometry_of_geo, geometry_of_node
from artiphys.models.stages import node_stage, tensor_args

__all__ = ["VIEWS", "LayerProgram", "Source", "linear_parts", "linear_program", "view_geometry"]

VIEWS = ("linear",)
"""The views a layer name can end with (``features.3:linear``)."""


@dataclass(frozen=True)
class Source:
    """A hooked tensor: call ``call`` (0-based) of the module at ``path``, its ``output``;
    or, for ``path == ""`` and ``role == "input"``, the model's input."""

    path: str
    call: int
    role: str = "output"


def _is_channel_cat(node: fx.Node) -> bool:
    if node.op not in ("call_function", "call_method") or not (
            node.target is torch.cat or node.target == "cat"):
        return False
    shape = _shape(node)
    dim = _arg(node, 1, "dim", 0)
    return shape is not None and dim in (1, -len(shape))


def linear_parts(node: fx.Node, modules: dict[str, nn.Module]) -> list[fx.Node]:
    """The nodes whose channel concatenation is ``node``'s linear output (see module doc);
    ``[node]`` when ``node`` is already linear."""
    parts, changed = _linear_parts(node, modules)
    return parts if changed else [node]


def _linear_parts(node: fx.Node, modules) -> tuple[list[fx.Node], bool]:
    stage = node_stage(node, modules)
    args = tensor_args(node)
    if stage == "rectifier" and args:
        return [args[0]], True
    if stage == "identity" and len(args) == 1:
        parts, changed = _linear_parts(args[0], modules)
        return (parts, True) if changed else ([node], False)
    if _is_channel_cat(node):
        parts, changed = [], False
        for a in node.args[0] if node.args else node.kwargs.get("tensors", ()):
            sub, c = _linear_parts(a, modules)
            parts += sub
            changed |= c
        return (parts, True) if changed else ([node], False)
    return [node], False


# ---- computing a virtual layer from hooked sources -----------------------------------------

_OUT_OF_PLACE = {operator.iadd: operator.add, operator.isub: operator.sub,
                 operator.imul: operator.mul, operator.itruediv: operator.truediv}


class LayerProgram:
    """How to compute a virtual layer from hooked :class:`Source` tensors.

    ``program(values)`` takes one tensor per entry of ``sources`` (in that order) and
    returns the virtual tensor (the channel concatenation of ``parts``), replaying the
    graph's functional operations between them out of place (``x += y`` as ``x + y``,
    ``inplace=True`` as False), so gradients flow and the sources are not modified.
    """

    def __init__(self, parts: Sequence[fx.Node], traced: _Traced, root: nn.Module):
        self.parts = tuple(parts)
        self.root = root
        hooks = _hookable(traced)
        self._node_source: dict[fx.Node, int] = {}
        sources: list[Source] = []
        for node in _dependencies(self.parts, hooks):
            self._node_source[node] = len(sources)
            sources.append(hooks[node])
        self.sources = tuple(sources)

    def __call__(self, values: Sequence[torch.Tensor]) -> torch.Tensor:
        env = {node: values[i] for node, i in self._node_source.items()}
        outs = [self._eval(p, env) for p in self.parts]
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)

    def _eval(self, node: fx.Node, env: dict):
        if node in env:
            return env[node]
        if node.op == "get_attr":
            value = self.root
            for part in node.target.split("."):
                value = getattr(value, part)
        else:
            args = fx.node.map_arg(node.args, lambda n: self._eval(n, env))
            kwargs = dict(fx.node.map_arg(node.kwargs, lambda n: self._eval(n, env)))
            if kwargs.get("inplace"):
                kwargs["inplace"] = False
            target = node.target
            if node.op == "call_function":
                target = _OUT_OF_PLACE.get(target, target)
                name = getattr(target, "__name__", "")
                if name.endswith("_") and not name.startswith("_") and hasattr(torch, name[:-1]):
                    target = getattr(torch, name[:-1])
                value = target(*args, **kwargs)
            elif node.op == "call_method":
                name = target[:-1] if target.endswith("_") and not target.startswith("_") \
                    else target
                value = getattr(args[0], name)(*args[1:], **kwargs)
            else:  # call_module / placeholder nodes are always hooked sources
                raise GeometryError(f"cannot replay graph node {node.name} ({node.op})")
        env[node] = value
        return value


def _hookable(traced: _Traced) -> dict[fx.Node, Source]:
    """Every node a forward hook can read: per node the leaf module call that returns it
    (else the first container call), and the model input."""
    out: dict[fx.Node, Source] = {}
    index: dict[str, int] = {}
    for path, node in traced.calls:
        k = index.get(path, 0)
        index[path] = k + 1
        leaf = node.op == "call_module" and node.target == path
        if node not in out or leaf:
            out[node] = Source(path, k)
    for node in traced.graph_module.graph.nodes:
        if node.op == "placeholder":
            out[node] = Source("", 0, "input")
    return out


def _dependencies(parts: Sequence[fx.Node], hooks: dict) -> list[fx.Node]:
    """The hookable nodes ``parts`` are computed from (walking back through functional
    operations only), in graph order."""
    found: dict[fx.Node, None] = {}
    stack = list(parts)
    seen = set()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node in hooks:
            found[node] = None
        elif node.op in ("call_function", "call_method"):
            stack.extend(node.all_input_nodes)
        elif node.op != "get_attr":
            raise GeometryError(f"graph node {node.name} ({node.op}) cannot be read by a hook")
    order = {n: i for i, n in enumerate(parts[0].graph.nodes)} if parts else {}
    return sorted(found, key=order.__getitem__)


def _view_node(traced: _Traced, path: str, call: int | None, label: str) -> fx.Node:
    node = traced.node_of_call(path, call)
    if node is None:
        n = len(traced.calls_of(path))
        raise UnknownLayerError(
            f"layer {label!r} does not run in the model's forward pass" if n == 0 else
            f"layer {label!r}: module {path!r} runs {n} time(s) per forward pass; number its "
            f"calls @0..@{n - 1}")
    return node


def linear_program(traced: _Traced, root: nn.Module, path: str, call: int | None,
                   label: str) -> LayerProgram:
    """The :class:`LayerProgram` of ``<path>[@call]:linear`` (cached on ``traced``)."""
    key = ("linear", path, call)
    if key not in traced.programs:
        modules = dict(traced.graph_module.named_modules())
        node = _view_node(traced, path, call, label)
        traced.programs[key] = LayerProgram(linear_parts(node, modules), traced, root)
    return traced.programs[key]


def view_geometry(traced: _Traced, path: str, call: int | None, view: str | None,
                  label: str) -> RFGeometry:
    """RF geometry of ``<path>[@call][:view]``: for a concatenation, each channel keeps the
    RF of the part it comes from."""
    node = _view_node(traced, path, call, label)
    if view is None:
        return geometry_of_node(traced, node)
    modules = dict(traced.graph_module.named_modules())
    parts = linear_parts(node, modules)
    if len(parts) == 1:
        return geometry_of_node(traced, parts[0])
    shapes = [_shape(p) for p in parts]
    if any(s is None or len(s) != len(shapes[0]) for s in shapes):
        raise GeometryError(f"layer {label!r} concatenates tensors of different ranks")
    shape = (sum(s[0] for s in shapes),) + tuple(shapes[0][1:])
    geos = [traced.geos.get(p) for p in parts]
    g = None if any(x is None for x in geos) else _concat(geos)
    return geometry_of_geo(shape, g)
