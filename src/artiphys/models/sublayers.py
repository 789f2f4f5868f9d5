"""Major layers and their sublayers, as Pospisil, Pasupathy & Bair (2018) split AlexNet.

Their Fig. 2C lists AlexNet's 21 sublayers; the eight *major layers* (bold) each begin
with a linear kernel: ``conv1, relu1, norm1, pool1 | conv2, relu2, norm2, pool2 | conv3,
relu3 | conv4, relu4 | conv5, relu5, pool5 | fc6, relu6 | fc7, relu7 | fc8, prob8``. Their
per-layer curves (Figs. 5G, 7A) use the *first* sublayer of each major layer, the linear
convolution before the rectifier, and they report that the other sublayers have lower APC
r. torchvision's AlexNet (the one-tower variant of Krizhevsky 2014) has 18 of them: it has
no ``norm1``/``norm2`` (local response normalisation) and no ``prob8`` (the softmax is not
part of the model), and its extra ``avgpool`` is an identity at 224 px (not a sublayer).

The same split for any network, on its torch.fx graph (:func:`mark_sublayers`, through
``list_layers``):

* A **major layer** begins at a linear kernel (convolution or fully connected layer) and
  runs to the next. Its name (``LayerInfo.major``) is the outermost module that holds that
  kernel and no other one (GoogLeNet's ``conv1`` for ``conv1.conv``; AlexNet's
  ``features.0``).
* A **branching block** - a module whose own ``forward`` concatenates or adds paths
  (SqueezeNet's Fire, Inception blocks, ResNet's BasicBlock/Bottleneck; MobileNetV2's
  InvertedResidual, since some of its instances add a residual), and every other instance
  of its class - is one major layer named by its path; the modules inside it are not
  sublayers of their own.
* Sublayers (``LayerInfo.sublayer``): ``linear`` - the kernel's output, or its batch norm's
  when one follows (per-channel affine, so APC and TI are unchanged), and for a block its
  output before its final rectifiers: the virtual ``<block>:linear`` row (see
  :mod:`artiphys.models.virtual`), or the block itself when it ends without one
  (MobileNetV2); ``rectified``; ``normalised`` (LRN, group/layer norm); ``pooled``;
  ``softmax``.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
from torch import fx, nn

from artiphys.models.layer_table import LayerInfo, list_layers
from artiphys.models.spec import ModelSpec
from artiphys.models.stages import module_stage, node_stage

__all__ = ["ALEXNET_MISSING_SUBLAYERS", "SUBLAYER_KINDS", "find_blocks", "first_sublayers",
           "mark_module_sublayers", "mark_sublayers", "paper_sublayers"]

SUBLAYER_KINDS = ("linear", "rectified", "normalised", "pooled", "softmax")

ALEXNET_MISSING_SUBLAYERS = ("norm1", "norm2", "prob8")
"""Sublayers of Pospisil et al.'s Caffe AlexNet (Fig. 2C) that torchvision's AlexNet lacks."""

_CALL = re.compile(r"@\d+$")


def paper_sublayers(model: ModelSpec | nn.Module, input_size_px: int | None = None
                    ) -> list[LayerInfo]:
    """Every paper sublayer of every major layer, in execution order: the layers a battery
    records (``[r.name for r in paper_sublayers(model)]``; names resolve with
    ``resolve_layer``, virtual ``<block>:linear`` ones included)."""
    return [r for r in list_layers(model, input_size_px) if r.sublayer is not None]


def first_sublayers(model: ModelSpec | nn.Module, input_size_px: int | None = None
                    ) -> list[LayerInfo]:
    """The linear sublayer of each major layer, in execution order: what summaries and
    per-layer curves use, as Pospisil et al. (2018, Figs. 5G and 7A) do."""
    return [r for r in list_layers(model, input_size_px) if r.sublayer == "linear"]


# ---- blocks -------------------------------------------------------------------------------

def find_blocks(traced, root: nn.Module) -> dict[str, fx.Node]:
    """Branching blocks (see module doc) that run in the forward pass: path -> the output
    node of the block's last call. Outermost blocks only."""
    modules = dict(root.named_modules())
    gm_modules = dict(traced.graph_module.named_modules())
    merging: set[str] = set()
    for node in traced.graph_module.graph.nodes:
        if node.op in ("call_function", "call_method") and node_stage(node, gm_modules) == "merge":
            stack = list(node.meta.get("nn_module_stack", {}))
            path = _CALL.sub("", stack[-1]) if stack else ""
            if path and list(getattr(modules.get(path), "children", list)()):
                merging.add(path)
    classes = {type(modules[p]) for p in merging}
    blocks: dict[str, fx.Node] = {}
    for path in sorted((p for p, m in modules.items() if p and type(m) in classes),
                       key=lambda p: p.count(".")):
        if any(path.startswith(b + ".") for b in blocks):
            continue
        node = traced.node_of_call(path)
        if node is not None:
            blocks[path] = node
    return blocks


def _block_of(row: LayerInfo, blocks) -> str | None:
    for name in (row.name, *row.same_as):
        path = _CALL.sub("", name)
        for b in blocks:
            if path == b or path.startswith(b + "."):
                return b
    return None


def _major_name(path: str, modules: dict[str, nn.Module]) -> str:
    """The outermost module above ``path`` (or ``path`` itself) holding one kernel only."""
    parts = path.split(".")
    for i in range(1, len(parts) + 1):
        candidate = ".".join(parts[:i])
        mod = modules.get(candidate)
        if mod is not None and sum(module_stage(m) == "kernel" for m in mod.modules()) == 1:
            return candidate
    return path


# ---- marking the table --------------------------------------------------------------------

class _Marker:
    """Walks the rows in execution order, tracking the current major layer and whether its
    linear stage (kernel, then batch norms) is still running."""

    def __init__(self, modules: dict[str, nn.Module]):
        self.modules = modules
        self.out: list[LayerInfo] = []
        self.major: str | None = None
        self.linear_at: int | None = None  # index in out of the current linear row

    def add(self, row: LayerInfo, stage: str, identity_pool: bool = False) -> None:
        sublayer = None
        if stage == "kernel":
            self.major = _major_name(_CALL.sub("", row.name), self.modules)
            sublayer = "linear"
        elif self.major is None:
            pass
        elif stage == "affine" and self.linear_at is not None:
            prev = self.out[self.linear_at]
            self.out[self.linear_at] = replace(prev, sublayer=None)
            sublayer = "linear"
        elif stage == "rectifier":
            sublayer = "rectified"
        elif stage == "pool" and not identity_pool:
            sublayer = "pooled"
        elif stage in ("norm", "affine"):
            sublayer = "normalised"
        elif stage == "softmax":
            sublayer = "softmax"
        if stage not in ("identity", "reshape") and not (stage == "pool" and identity_pool):
            self.linear_at = len(self.out) if sublayer == "linear" else None
        self.out.append(replace(row, major=self.major, sublayer=sublayer))

    def add_block_row(self, row: LayerInfo, block: str, sublayer: str | None) -> None:
        self.major = block
        self.linear_at = len(self.out) if sublayer == "linear" else None
        self.out.append(replace(row, major=block, sublayer=sublayer))


def mark_sublayers(spec: ModelSpec, traced, rows: list[tuple[LayerInfo, fx.Node]],
                   blocks: dict[str, fx.Node]) -> list[LayerInfo]:
    """``rows`` (table rows with their fx nodes) with ``major`` and ``sublayer`` set, and a
    virtual ``<block>:linear`` row before each branching block whose linear output is no
    row of its own."""
    gm_modules = dict(traced.graph_module.named_modules())
    marker = _Marker(dict(spec.module.named_modules()))
    index_of_node = {}
    for row, node in rows:
        block = _block_of(row, blocks)
        if block is None:
            marker.add(row, node_stage(node, gm_modules), _identity_pool(traced, node))
        elif blocks[block] is not node:
            marker.out.append(replace(row, major=block, sublayer=None))
        else:
            _add_block(marker, spec, traced, row, node, block, index_of_node, gm_modules)
        index_of_node[node] = len(marker.out) - 1
    return marker.out


def _add_block(marker: _Marker, spec, traced, row, node, block, index_of_node, gm_modules):
    """The block's output row, after its linear sublayer (an earlier row or a virtual one)."""
    from artiphys.models.layers import layer_name
    from artiphys.models.rf_rules import _kind_of_node
    from artiphys.models.virtual import linear_parts, view_geometry

    parts = linear_parts(node, gm_modules)
    if parts == [node]:
        marker.add_block_row(row, block, "linear")
        return
    virtual = layer_name(block, view="linear")
    if len(parts) == 1 and parts[0] in index_of_node:
        i = index_of_node[parts[0]]
        earlier = marker.out[i]
        marker.out[i] = replace(earlier, sublayer="linear",
                                same_as=tuple(dict.fromkeys((*earlier.same_as, virtual))))
    else:
        geom = view_geometry(traced, block, None, "linear", virtual)
        kind = "concat" if len(parts) > 1 else _kind_of_node(parts[0], gm_modules)
        marker.out.append(LayerInfo(
            name=virtual, alias=f"{row.alias}:linear" if row.alias else None, kind=kind,
            shape=geom.out_shape, units=geom.chw[0], rf_size_px=geom.rf_size_px,
            stride_px=geom.stride_px, offset_px=geom.offset_px, is_spatial=geom.is_spatial,
            note=geom.note, major=block, sublayer="linear"))
    marker.add_block_row(row, block, "rectified")


def _identity_pool(traced, node: fx.Node) -> bool:
    """A pooling whose output has its input's shape and receptive field (AlexNet's
    ``avgpool`` at 224 px): an identity, not a sublayer."""
    args = [a for a in node.all_input_nodes if a.op != "get_attr"]
    if len(args) != 1:
        return False
    a, b = traced.geos.get(node), traced.geos.get(args[0])
    if a is None or b is None or a.kind != b.kind or a.kind == "unknown":
        return False
    same_shape = node.meta.get("tensor_meta") is not None and \
        tuple(node.meta["tensor_meta"].shape) == tuple(args[0].meta["tensor_meta"].shape)
    return same_shape and np.array_equal(a.lo, b.lo) and np.array_equal(a.hi, b.hi) \
        and a.stride == b.stride


def mark_module_sublayers(spec: ModelSpec, rows: list[LayerInfo]) -> list[LayerInfo]:
    """Sublayers of a model torch.fx cannot trace, from its leaf modules alone (no blocks,
    no virtual rows)."""
    modules = dict(spec.module.named_modules())
    marker = _Marker(modules)
    for row in rows:
        marker.add(row, module_stage(modules[_CALL.sub("", row.name)]))
    return marker.out
