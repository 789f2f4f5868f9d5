"""The layer table: every tensor a forward pass produces, with its receptive field and
its place among the paper's sublayers (see :mod:`artiphys.models.sublayers`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from artiphys.errors import UnknownLayerError
from artiphys.models.layers import layer_name, resolve_layer, spec_with_aliases
from artiphys.models.spec import ModelSpec


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
        which run this row is (0-based); None for modules that run once. A plain module
        path names its last call, so the rows of its earlier calls are named ``path@k``.
    same_as : tuple of str
        Other layer names whose output is this same tensor (``features`` for AlexNet's
        ``features.12``; a ResNet block's last ``relu`` for the block).
    note : str
        Why the geometry is unknown, else ``""``.
    major : str or None
        The major layer this row belongs to (Pospisil et al. 2018, Fig. 2C: each begins
        with a linear kernel): a branching block's path (``"features.3"``, ``"layer1.0"``),
        else the path of the module holding the kernel (``"features.0"``, GoogLeNet's
        ``"conv1"``); None before the first kernel.
    sublayer : str or None
        The row's paper sublayer in its major layer: ``"linear"`` (the linear output, before
        the rectifier: after batch norm where there is one; for a branching block the
        virtual ``<block>:linear`` row), ``"rectified"``, ``"normalised"``, ``"pooled"`` or
        ``"softmax"``; None for rows that are not sublayers (the convolution before its
        batch norm, layers inside a block, dropout, identity pooling, reshapes).
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
    major: str | None = None
    sublayer: str | None = None

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
        rf_size_max, stride, offset, is_spatial, call, same_as, note, major, sublayer``; per-channel values as
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
            "major": self.major,
            "sublayer": self.sublayer,
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
    from artiphys.models.receptive_field import UntraceableModelError, trace_geometry
    from artiphys.models.sublayers import (
        find_blocks,
        mark_module_sublayers,
        mark_sublayers,
    )

    spec = spec_with_aliases(model)
    try:
        traced = trace_geometry(spec, input_size_px)
    except UntraceableModelError as exc:
        return mark_module_sublayers(spec, _list_layers_by_hooks(spec, input_size_px, str(exc)))
    blocks = find_blocks(traced, spec.module)
    return mark_sublayers(spec, traced, _traced_rows(spec, traced, blocks), blocks)


def _traced_rows(spec: ModelSpec, traced, blocks) -> list[tuple[LayerInfo, object]]:
    """One row per tensor that a module call returns, with its fx node, in graph order.

    A tensor returned by several module calls (a block and its last ReLU) is named by the
    block when one of them is a major block, else by a module called once, else by a
    module's last call (its plain path), else ``path@k``; the other names go to
    ``same_as``.
    """
    from artiphys.models.receptive_field import (
        _kind_of_module,
        _kind_of_node,
        geometry_of_node,
    )

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

    def named(p: str, k: int) -> str:
        return p if k == counts[p] - 1 else layer_name(p, k)

    rows = []
    for node in traced.graph_module.graph.nodes:
        if node not in by_node:
            continue
        candidates = by_node[node]
        path, index = next((c for c in candidates if c[0] in blocks), None) or next(
            (c for c in candidates if counts[c[0]] == 1), None) or next(
            (c for c in candidates if c[1] == counts[c[0]] - 1), candidates[0])
        name = named(path, index)
        geom = geometry_of_node(traced, node)
        if not geom.out_shape:
            continue
        alias = next((reverse[p] for p, k in [(path, index)] + candidates
                      if p in reverse and named(p, k) == p), None)
        kind = _kind_of_node(node, gm_modules)
        traced_through = not (node.op == "call_module" and node.target == path)
        if traced_through and kind not in ("concat", "add", "mul"):
            # a container (ResNet block) or a custom module (ConvNeXt's LayerNorm2d)
            kind = "block" if list(modules[path].children()) else _kind_of_module(modules[path])
        rows.append((LayerInfo(
            name=name, alias=alias, kind=kind, shape=geom.out_shape, units=geom.chw[0],
            rf_size_px=geom.rf_size_px, stride_px=geom.stride_px, offset_px=geom.offset_px,
            is_spatial=geom.is_spatial, call=index if counts[path] > 1 else None,
            same_as=tuple(dict.fromkeys(named(p, k) for p, k in candidates
                                        if named(p, k) != name)),
            note=geom.note), node))
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
        last = index == counts[path] - 1
        rows.append(LayerInfo(
            name=path if last else layer_name(path, index),
            alias=reverse.get(path) if last else None, kind=_kind_of_module(module), shape=shape,
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
    """The row of ``layer`` (a layer name: module path or alias, ``@call``, ``:linear``):
    the tensor that name reads. Raises UnknownLayerError, with close matches, for names the
    model does not have."""
    ref = resolve_layer(spec_with_aliases(model), layer)
    found = [r for r in rows if r.name == ref.name or ref.name in r.same_as]
    if not found:
        raise UnknownLayerError(f"layer {layer!r} ({ref.name}) produces no output of its own "
                                "in the layer table; pick one of the listed layers")
    return found


def format_layer_table(rows: list[LayerInfo]) -> str:
    """The layer table as aligned text (per-channel RF sizes shown as their distinct values)."""
    header = ("name", "alias", "kind", "sublayer", "shape", "units", "rf_px", "stride_px",
              "centre0_px")
    lines = [header]
    for r in rows:
        lines.append((r.name, r.alias or "", r.kind, r.sublayer or "",
                      "x".join(map(str, r.shape)), str(r.units), _fmt_size(r.rf_size_px),
                      _fmt_plain(r.stride_px) if r.is_spatial else "-", _fmt_offset(r.offset_px)))
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
