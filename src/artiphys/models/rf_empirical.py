"""Empirical receptive fields: the input-gradient support of a unit.

See :func:`gradient_support_px`.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import fx, nn

from artiphys.models.rf_geometry import GeometryError, _pair
from artiphys.models.rf_rules import _shape
from artiphys.models.rf_trace import _first_in_channels, trace_geometry
from artiphys.models.spec import ModelSpec, module_device


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
