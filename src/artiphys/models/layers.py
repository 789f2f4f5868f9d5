"""Layer addressing and the layer table.

``resolve_layer`` turns a module path (``"features.3"``), paper alias (``"conv2"``) or
module into a :class:`LayerRef`; ``list_layers`` lists every module output in execution
order with its shape and receptive-field geometry (see ``receptive_field.py``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from artiphys.errors import UnknownLayerError, close_matches
from artiphys.models.spec import ModelSpec, as_spec


@dataclass(frozen=True)
class LayerRef:
    """A resolved layer: its module path (stable name), optional alias, and module."""

    name: str
    module: nn.Module
    alias: str | None = None

    @property
    def label(self) -> str:
        """The alias when there is one, else the module path (used as the ``layer`` coord)."""
        return self.alias or self.name


def resolve_layer(model: ModelSpec | nn.Module, layer: str | LayerRef | nn.Module) -> LayerRef:
    """Resolve a module path (``"features.3"``), alias (``"conv2"``) or module to a LayerRef.

    Raises
    ------
    UnknownLayerError
        With the closest names listed, when the layer does not exist.
    """
    spec = as_spec(model)
    if isinstance(layer, LayerRef):
        return layer
    modules = dict(spec.module.named_modules())
    reverse = {path: alias for alias, path in spec.aliases.items()}
    if isinstance(layer, nn.Module):
        for path, mod in modules.items():
            if mod is layer:
                return LayerRef(path, mod, reverse.get(path))
        raise UnknownLayerError("the given module is not part of this model")
    if layer in spec.aliases:
        path = spec.aliases[layer]
        return LayerRef(path, modules[path], layer)
    if layer in modules and layer != "":
        return LayerRef(layer, modules[layer], reverse.get(layer))
    names = [n for n in modules if n] + list(spec.aliases)
    raise UnknownLayerError(
        f"model {spec.name!r} has no layer {layer!r}.{close_matches(layer, names)} "
        f"Run `artiphys layers {spec.name}` to list its layers.")


def spec_with_aliases(model: ModelSpec | nn.Module) -> ModelSpec:
    """``as_spec(model)``, with :func:`default_aliases` filled in when it has none."""
    spec = as_spec(model)
    if not spec.aliases:
        aliases = default_aliases(spec.module)
        if aliases:
            spec = replace(spec, aliases=aliases)
    return spec


_PLAIN_FEATURES = (nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.LocalResponseNorm,
                   nn.BatchNorm2d, nn.Dropout)
_PLAIN_CLASSIFIER = (nn.Linear, nn.ReLU, nn.Dropout, nn.Softmax, nn.Flatten)


def default_aliases(module: nn.Module) -> dict[str, str]:
    """Paper-style aliases mapped to module paths; ``{}`` when none apply.

    For AlexNet-like nets (a plain ``features`` Sequential of convs, ReLUs, pools and
    norms, and a ``classifier`` Sequential of linear layers) the Caffe names of Krizhevsky
    et al. 2012 as used by Pospisil et al. 2018: ``conv1, relu1, norm1, pool1, ..., conv5,
    relu5, pool5, fc6, relu6, fc7, relu7, fc8`` and ``prob`` for an explicit ``nn.Softmax``.
    A layer takes the number of the last conv / fc before it; dropouts and batch norms are
    not aliased. torchvision's AlexNet has no LRN layers, so it has no ``norm1``/``norm2``;
    its softmax is not part of the model, so it has no ``prob``.

    For torchvision's ``VGG`` the Caffe VGG names (Simonyan & Zisserman 2015): ``conv1_1,
    relu1_1, conv1_2, relu1_2, pool1, ..., conv5_4, relu5_4, pool5, fc6, relu6, fc7, relu7,
    fc8``.
    """
    features = getattr(module, "features", None)
    classifier = getattr(module, "classifier", None)
    if not (isinstance(features, nn.Sequential) and isinstance(classifier, nn.Sequential)):
        return {}
    if not all(isinstance(m, _PLAIN_FEATURES) for m in features):
        return {}
    if not all(isinstance(m, _PLAIN_CLASSIFIER) for m in classifier):
        return {}
    vgg = type(module).__name__ == "VGG"
    aliases: dict[str, str] = {}

    def put(alias: str, path: str) -> None:
        aliases.setdefault(alias, path)

    conv = block = within = 0
    block = 1
    for i, m in enumerate(features):
        path = f"features.{i}"
        tag = f"{block}_{within}" if vgg else str(conv)
        if isinstance(m, nn.Conv2d):
            conv += 1
            within += 1
            put(f"conv{block}_{within}" if vgg else f"conv{conv}", path)
        elif isinstance(m, nn.ReLU) and conv:
            put(f"relu{tag}", path)
        elif isinstance(m, nn.LocalResponseNorm) and conv:
            put(f"norm{block if vgg else conv}", path)
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) and conv:
            put(f"pool{block if vgg else conv}", path)
            if vgg:
                block += 1
                within = 0
    fc = 5 if vgg else conv
    seen_fc = False
    for i, m in enumerate(classifier):
        path = f"classifier.{i}"
        if isinstance(m, nn.Linear):
            fc += 1
            seen_fc = True
            put(f"fc{fc}", path)
        elif isinstance(m, nn.ReLU) and seen_fc:
            put(f"relu{fc}", path)
        elif isinstance(m, nn.Softmax):
            put("prob", path)
    return aliases


# ---- the layer table --------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class LayerInfo:
    """One row of the layer table: a module's output and its receptive-field geometry.

    Attributes
    ----------
    name : str
        Module path (stable name, resolvable with :func:`resolve_layer`). For a container
        (a fire module, an Inception block, a ResNet block) the row is its returned tensor.
    alias : str or None
        Paper alias (``"conv1"``) where one applies.
    kind : str
        ``conv, relu, pool, norm, linear, softmax, dropout, flatten, concat, block, ...``.
    shape : tuple of int
        Output shape without batch: ``(C, H, W)`` or ``(C,)`` (``(H, W, C)`` for the
        channels-last tensors inside ConvNeXt blocks).
    units : int
        Number of unique units (channels).
    rf_size_px, stride_px, offset_px, is_spatial
        As in :class:`artiphys.models.receptive_field.RFGeometry`.
    call : int or None
        For a module that runs several times per forward pass (a ResNet block's ``relu``),
        which run this row is (0-based); None for modules that run once.
    same_as : tuple of str
        Other module paths whose output is this same tensor (``features`` for AlexNet's
        ``features.12``; a ResNet block's last ``relu`` for the block).
    note : str
        Why the geometry is unknown, else ``""``.
    """

    name: str
    alias: str | None
    kind: str
    shape: tuple[int, ...]
    units: int
    rf_size_px: int | tuple[int, int] | np.ndarray | None
    stride_px: int | tuple[int, int] | None
    offset_px: tuple[float, float] | np.ndarray | None
    is_spatial: bool
    call: int | None = None
    same_as: tuple[str, ...] = ()
    note: str = ""

    @property
    def label(self) -> str:
        return self.alias or self.name

    @property
    def rf_size_range_px(self) -> tuple[int, int] | None:
        """Smallest and largest RF side over channels (and axes)."""
        if self.rf_size_px is None:
            return None
        values = np.asarray(self.rf_size_px)
        return int(values.min()), int(values.max())

    def to_dict(self) -> dict:
        """JSON-able row: ``name, alias, kind, shape, units, rf_size, rf_size_min,
        rf_size_max, stride, offset, is_spatial, call, same_as, note``; per-channel values as
        lists. The per-feature centres of a flattened vector (one per unit of the map it was
        flattened from) are left out (``offset`` None); ``layer_geometry`` has them."""
        rng = self.rf_size_range_px
        offset = self.offset_px
        note = self.note
        if isinstance(offset, np.ndarray) and not self.is_spatial:
            offset = None
            note = note or "RF centres differ by feature (a flattened map); see layer_geometry"
        return {
            "name": self.name,
            "alias": self.alias,
            "kind": self.kind,
            "shape": list(self.shape),
            "units": self.units,
            "rf_size": _jsonable(self.rf_size_px),
            "rf_size_min": rng[0] if rng else None,
            "rf_size_max": rng[1] if rng else None,
            "stride": _jsonable(self.stride_px),
            "offset": _jsonable(offset),
            "is_spatial": self.is_spatial,
            "call": self.call,
            "same_as": list(self.same_as),
            "note": note,
        }


def _jsonable(v):
    if v is None:
        return None
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.integer, int)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return float(v)
    return v


def list_layers(model: ModelSpec | nn.Module, input_size_px: int | None = None) -> list[LayerInfo]:
    """Every module output of the model in execution order, with its RF geometry.

    Rows are the outputs of module calls found by tracing ``forward`` with torch.fx: every
    leaf module (convs, ReLUs, pools, norms, linear, softmax, dropout, ...) and every
    container whose output is made by a functional operation (the ``torch.cat`` of a fire
    or Inception module, the ``relu(x + identity)`` of a ResNet block). Functional
    operations themselves have no module path, so they get no row, but their effect on the
    geometry is included.

    Parameters
    ----------
    model : ModelSpec or nn.Module
    input_size_px : int, optional
        Side of the square input; default the model's preprocessing input size.

    A model that torch.fx cannot trace (data-dependent control flow in ``forward``) is
    listed by running it once with forward hooks on its leaf modules: names, kinds and
    shapes, with the receptive fields left unknown (``None``, reason in ``note``).

    Raises
    ------
    GeometryError
        When the model does not run on an input of that size.
    """
    from artiphys.models.receptive_field import (
        UntraceableModelError,
        _kind_of_module,
        _kind_of_node,
        geometry_of_node,
        trace_geometry,
    )

    spec = spec_with_aliases(model)
    try:
        traced = trace_geometry(spec, input_size_px)
    except UntraceableModelError as exc:
        return _list_layers_by_hooks(spec, input_size_px, str(exc))
    reverse = {path: alias for alias, path in spec.aliases.items()}
    modules = dict(spec.module.named_modules())
    gm_modules = dict(traced.graph_module.named_modules())

    counts = Counter(path for path, _ in traced.calls)
    seen_index: Counter = Counter()
    by_node: dict = {}
    for path, node in traced.calls:
        index = seen_index[path]
        seen_index[path] += 1
        if path:
            by_node.setdefault(node, []).append((path, index))

    rows = []
    for node in traced.graph_module.graph.nodes:
        if node not in by_node:
            continue
        candidates = by_node[node]
        once = [c for c in candidates if counts[c[0]] == 1]
        path, index = once[0] if once else candidates[0]
        alias = reverse.get(path) or next((reverse[p] for p, _ in candidates if p in reverse), None)
        geom = geometry_of_node(traced, node)
        if not geom.out_shape:
            continue
        kind = _kind_of_node(node, gm_modules)
        traced_through = not (node.op == "call_module" and node.target == path)
        if traced_through and kind not in ("concat", "add", "mul"):
            # a container (ResNet block) or a custom module (ConvNeXt's LayerNorm2d)
            kind = "block" if list(modules[path].children()) else _kind_of_module(modules[path])
        rows.append(LayerInfo(
            name=path, alias=alias, kind=kind, shape=geom.out_shape, units=geom.chw[0],
            rf_size_px=geom.rf_size_px, stride_px=geom.stride_px, offset_px=geom.offset_px,
            is_spatial=geom.is_spatial, call=index if counts[path] > 1 else None,
            same_as=tuple(dict.fromkeys(p for p, _ in candidates if p != path)), note=geom.note))
    return rows


def _list_layers_by_hooks(spec: ModelSpec, input_size_px: int | None, reason: str
                          ) -> list[LayerInfo]:
    """Fallback listing from one forward pass with hooks on leaf modules (no geometry)."""
    from artiphys.models.receptive_field import _first_in_channels, _kind_of_module
    from artiphys.models.spec import module_device

    size = int(input_size_px or spec.preprocessing.input_size_px)
    calls: list[tuple[str, nn.Module, tuple[int, ...]]] = []
    handles = []

    def recorder(path):
        def hook(module, inputs, output):
            if isinstance(output, torch.Tensor):
                calls.append((path, module, tuple(output.shape[1:])))
        return hook

    device = module_device(spec.module)
    try:
        for path, module in spec.module.named_modules():
            if path and not list(module.children()):
                handles.append(module.register_forward_hook(recorder(path)))
        with torch.no_grad():
            spec.module(torch.zeros(1, _first_in_channels(spec.module), size, size, device=device))
    finally:
        for handle in handles:
            handle.remove()
    reverse = {path: alias for alias, path in spec.aliases.items()}
    counts = Counter(path for path, _, _ in calls)
    seen: Counter = Counter()
    rows = []
    for path, module, shape in calls:
        index = seen[path]
        seen[path] += 1
        rows.append(LayerInfo(
            name=path, alias=reverse.get(path), kind=_kind_of_module(module), shape=shape,
            units=shape[0] if shape else 1, rf_size_px=None, stride_px=None, offset_px=None,
            is_spatial=len(shape) == 3, call=index if counts[path] > 1 else None,
            note=f"receptive field unknown: {reason}"))
    return rows


def closest_rf_layer(model: ModelSpec | nn.Module, rf_px: int, *,
                     kinds: tuple[str, ...] = ("conv",),
                     rows: list[LayerInfo] | None = None) -> LayerInfo:
    """The spatial layer of ``kinds`` whose receptive field (largest side over channels) is
    closest to ``rf_px``; the earliest on ties.

    For comparing architectures at matching receptive-field size (Cadena et al. 2018: VGG-19
    conv3_1, RF 24 px, vs ResNet-50 layers of comparable RF). ``rows``: a precomputed
    :func:`list_layers` table of ``model``.
    """
    rows = rows if rows is not None else list_layers(model)
    found = [r for r in rows if r.kind in kinds and r.is_spatial and r.rf_size_px is not None
             and r.call in (None, 0)]
    if not found:
        raise UnknownLayerError(f"no spatial layer of kind {', '.join(kinds)} with a known "
                                "receptive field; see `artiphys layers MODEL`")
    return min(found, key=lambda r: abs(r.rf_size_range_px[1] - int(rf_px)))


def select_layer_rows(model: ModelSpec | nn.Module, rows: list[LayerInfo], layer: str
                      ) -> list[LayerInfo]:
    """The rows of ``layer`` (module path or alias; several when the module runs more than
    once). Raises UnknownLayerError, with close matches, for names the model does not have."""
    ref = resolve_layer(spec_with_aliases(model), layer)
    found = [r for r in rows if r.name == ref.name or ref.name in r.same_as]
    if not found:
        raise UnknownLayerError(f"layer {layer!r} ({ref.name}) produces no output of its own "
                                "in the layer table; pick one of the listed layers")
    return found


def format_layer_table(rows: list[LayerInfo]) -> str:
    """The layer table as aligned text (per-channel RF sizes shown as their distinct values)."""
    header = ("name", "alias", "kind", "shape", "units", "rf_px", "stride_px", "centre0_px")
    lines = [header]
    for r in rows:
        name = r.name if r.call is None else f"{r.name} (run {r.call + 1})"
        lines.append((name, r.alias or "", r.kind, "x".join(map(str, r.shape)), str(r.units),
                      _fmt_size(r.rf_size_px), _fmt_plain(r.stride_px) if r.is_spatial else "-",
                      _fmt_offset(r.offset_px)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
                     for line in lines)


def _fmt_plain(v) -> str:
    if v is None:
        return "?"
    if isinstance(v, tuple):
        return "x".join(str(int(x)) for x in v)
    return str(int(v))


def _fmt_size(v) -> str:
    if isinstance(v, np.ndarray):
        if v.ndim == 1:
            return "/".join(str(int(x)) for x in np.unique(v))
        return "/".join(f"{a}x{b}" for a, b in np.unique(v, axis=0))
    return _fmt_plain(v)


def _fmt_offset(v) -> str:
    if v is None:
        return "?"
    if isinstance(v, np.ndarray):
        return "per-channel"
    return f"({v[0]:g}, {v[1]:g})"
