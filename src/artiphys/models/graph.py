"""Walking a model's graph from a layer to the convolution it belongs to and what feeds it.

Used by diverse feature visualisations (Cadena et al. 2018, eq. 2: distances "in the feature
space of the preceding convolutional layer") and by anything else that needs to know which
module's output a layer's own convolution reads, or which convolution a rectifier follows.

The walk uses the torch.fx trace of :func:`artiphys.models.receptive_field.trace_geometry`:
from ``layer`` back through non-convolution nodes (ReLU, pooling, normalisation) to the first
``nn.Conv2d``, then on to the module that produced that convolution's input. For VGG conv3_1
that is pool2; for a SqueezeNet expand convolution the fire module's squeeze activation. In
branching nets it is the one branch that feeds that convolution. When that input is a later
call of a shared module (torchvision ResNets call one ``relu`` two or three times per block)
the block it ends is used (``layer1.1.conv1`` reads ``layer1.0``), else the call itself
(a bottleneck's ``conv3`` reads ``layer1.1.relu@1``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from artiphys.models.layers import layer_name, resolve_layer, spec_with_aliases
from artiphys.models.receptive_field import GeometryError, trace_geometry
from artiphys.models.spec import ModelSpec


@dataclass(frozen=True)
class OwnConv:
    """A layer's own convolution: its module path (None when none was found), the module
    path whose output it reads (None for the model input or an untraceable graph), and
    whether the walk from the layer to the convolution crossed a pooling module (map
    positions then no longer correspond one to one)."""

    conv_path: str | None
    input_path: str | None
    crossed_pool: bool


def _call_tables(traced) -> tuple[dict, dict]:
    """``(path_of, paths_of)``: a node's (first) module path and every module path that
    returns the node."""
    path_of: dict = {}
    paths_of: dict = {}
    for path, node in traced.calls:
        if path:
            path_of.setdefault(node, path)
            paths_of.setdefault(node, []).append(path)
    return path_of, paths_of


def _readable_path(traced, paths_of, n) -> str | None:
    """The layer name that reads node ``n``: a module path whose last call returns it (a
    plain name means the last call; ResNet's block-ending ``relu`` reads as the block), else
    ``path@k`` for call ``k`` of a shared module."""
    named, once = [], []
    for q in paths_of.get(n, ()):
        calls = traced.calls_of(q)
        named.append(q if calls[-1] is n else layer_name(q, calls.index(n)))
        if len(calls) == 1:
            once.append(q)
    return next(iter(once), None) or next((q for q in named if "@" not in q),
                                           named[0] if named else None)


def _tensor_input(node):
    """The first argument of ``node`` that is itself a graph node (its tensor input)."""
    return next((a for a in node.args if hasattr(a, "op")), None)


def own_conv(model: ModelSpec | torch.nn.Module, layer) -> OwnConv:
    """The convolution ``layer`` belongs to and the module feeding it (see module doc).

    Walks back the torch.fx graph from ``layer`` through non-convolution nodes to the first
    ``nn.Conv2d`` module. Its input is named by the layer-name rule of
    :mod:`artiphys.models.layers`: a plain path means a module's last call (a block-ending
    call of ResNet's shared ``relu`` reads as the block), ``path@k`` another call (inside a
    torchvision bottleneck, ``conv3`` reads ``relu@1``). An untraceable model gives
    ``OwnConv(None, None, False)``.
    """
    spec = spec_with_aliases(model)
    ref = resolve_layer(spec, layer)
    try:
        traced = trace_geometry(spec)
    except GeometryError:
        return OwnConv(None, None, False)
    path_of, paths_of = _call_tables(traced)
    modules = dict(spec.module.named_modules())
    node = traced.node_of_call(ref.path, ref.call)
    if node is None:
        return OwnConv(None, None, False)

    def is_conv(n) -> bool:
        p = path_of.get(n)
        return p is not None and isinstance(modules.get(p), torch.nn.Conv2d)

    crossed, seen = False, 0
    while node is not None and not is_conv(node) and seen < 1000:
        p = path_of.get(node)
        if p is not None and "pool" in type(modules.get(p)).__name__.lower():
            crossed = True
        node, seen = _tensor_input(node), seen + 1
    if node is None or not is_conv(node):
        return OwnConv(None, None, crossed)
    conv_path = path_of[node]
    # the conv's own graph may be traced through (e.g. FFT convolutions): step to the first
    # node outside the conv's module path that a module's first call returns
    node = _tensor_input(node)
    while node is not None and node.op != "placeholder":
        p = _readable_path(traced, paths_of, node)
        if p is not None and p != conv_path and not p.startswith(conv_path + "."):
            return OwnConv(conv_path, p, crossed)
        node = _tensor_input(node)
    return OwnConv(conv_path, None, crossed)


def preceding_layer(model: ModelSpec | torch.nn.Module, layer) -> str | None:
    """Module path whose output feeds ``layer``'s own convolution (see module doc).

    None when that convolution reads the model input or the graph cannot be traced.
    """
    return own_conv(model, layer).input_path


def pre_rectifier_layer(model: ModelSpec | torch.nn.Module, layer) -> str | None:
    """The convolution whose output ``layer`` rectifies, when ``layer`` is a pointwise stage
    after it (ReLU, batch norm; no pooling in between); None otherwise.

    A rectified unit that is silent for every white-noise start gets no gradient and stays
    silent; its convolution's output (pre-activation) has the same maximising images
    wherever the maximum is positive and always has a gradient.
    """
    spec = spec_with_aliases(model)
    found = own_conv(spec, layer)
    if found.conv_path is None or found.crossed_pool or \
            found.conv_path == resolve_layer(spec, layer).name:
        return None
    return found.conv_path


def _same_padding(conv: torch.nn.Conv2d) -> tuple[int, ...]:
    """Numeric padding of ``conv`` (``"same"`` / ``"valid"`` strings resolved)."""
    if not isinstance(conv.padding, str):
        return tuple(conv.padding)
    if conv.padding == "valid":
        return (0, 0)
    return tuple((k - 1) * d // 2 for k, d in zip(conv.kernel_size, conv.dilation))


def feature_window(model: ModelSpec | torch.nn.Module, layer, unit_yx: tuple[int, int]
                   ) -> tuple[slice, slice] | None:
    """Rows and columns of the preceding layer's map that unit ``unit_yx`` of ``layer`` reads.

    The footprint of ``layer``'s own convolution (kernel ``k``, stride ``s``, padding ``p``,
    dilation ``d``) at the unit's position: rows ``y s - p, ..., y s - p + (k - 1) d`` in steps
    of ``d`` (clipped at 0); None (use the whole map) when it cannot be worked out (no conv,
    or a pooling stage between the conv and ``layer``).
    """
    spec = spec_with_aliases(model)
    found = own_conv(spec, layer)
    if found.conv_path is None or found.input_path is None or found.crossed_pool:
        return None
    conv = dict(spec.module.named_modules())[found.conv_path]
    out = []
    for pos, k, s, p, d in zip(unit_yx, conv.kernel_size, conv.stride, _same_padding(conv),
                               conv.dilation):
        start = pos * s - p
        stop = start + (k - 1) * d + 1
        out.append(slice(max(0, start), stop, d) if start >= 0 else
                   slice(start % d, stop, d))
    return out[0], out[1]


__all__ = ["OwnConv", "own_conv", "preceding_layer", "pre_rectifier_layer", "feature_window"]
