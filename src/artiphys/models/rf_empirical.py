"""Empirical receptive fields, measured on the network: the one measurement every stage uses.

:func:`gradient_support_px` is the input-gradient support of a unit (its RF box);
:func:`equivariant_stride` the stride at which the layer is translation-equivariant. The
analytic geometry (:func:`artiphys.models.receptive_field.layer_geometry`) is checked
against the first (``weights="positive"``) and used wherever the graph is known;
synthesis (``synthesis.geometry.measured_geometry``) and TI (canvas margins and the
equivariant sweep) measure layers the analysis cannot trace with these two.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import fx, nn

from artiphys.models.rf_geometry import GeometryError, _pair
from artiphys.models.rf_trace import _first_in_channels, trace_geometry
from artiphys.models.spec import ModelSpec, as_spec, module_device
from artiphys.models.units import map_center


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


def gradient_support_px(model: ModelSpec | nn.Module, layer, channel: int | None = 0,
                        y: int | None = None, x: int | None = None,
                        input_size_px: int | None = None, seed: int = 0, *,
                        n_images: int = 4, weights: str = "model"
                        ) -> tuple[int, int, int, int]:
    """Empirical receptive field: bounding box of the non-zero input gradient of one unit.

    ``weights="model"`` (default): the gradient of ``|unit|`` of the model as it is, summed
    over ``n_images`` standard-normal inputs (model input, i.e. after normalisation), so
    that a path closed by a rectifier or a max-pool for one image is open for another.
    Works for any model (forward hooks; torch.fx not needed). Pixels that reach the unit
    only through paths closed for every image (dead units, max-pool corners) can be
    missed, so the box can be smaller than the analytic one, never larger.

    ``weights="positive"``: the exact support. The model is copied (the original is not
    modified), truncated after ``layer``, given positive weights (about ``1/fan_in``),
    identity batch norms and average-pools in place of (undilated) max-pools, including
    ``F.max_pool2d`` calls in ``forward``, and run on positive random images, so every
    input pixel the unit depends on gets a non-zero gradient (needs torch.fx). Dilated
    max-pools stay max-pools and may make the measured box smaller.

    Parameters
    ----------
    model, layer
        As in :func:`~artiphys.models.receptive_field.layer_geometry` (any layer name,
        ``@call`` and ``:linear`` included).
    channel : int or None
        The unit's channel; None for the union over all channels at ``(y, x)``.
    y, x : int
        The unit; default the centre unit :func:`artiphys.models.units.map_center`.
    input_size_px : int, optional
        Side of the square input (default the model's input size). Choose it larger than the
        RF so that the unit's field is not cut by the image border.
    seed : int
    n_images : int
        Random inputs pooled (``weights="model"``).
    weights : ``"model"`` or ``"positive"``

    Returns
    -------
    (y_start, y_end, x_start, x_end) : tuple of int
        Inclusive pixel bounds of the support, clipped to the image by construction.

    Raises
    ------
    GeometryError
        When the gradient is zero everywhere, or ``weights`` is not one of the two.
    """
    box, _ = _support(model, layer, channel, y, x, input_size_px, seed, n_images, weights)
    return box


def _support(model, layer, channel, y, x, input_size_px, seed, n_images, weights):
    """``(box, out_shape)``: the support box and the layer's output shape ``(C, H, W)`` /
    ``(C,)``."""
    from artiphys.models.layers import resolve_layer, spec_with_aliases

    spec = spec_with_aliases(model)
    ref = resolve_layer(spec, layer)
    size = int(input_size_px or spec.preprocessing.input_size_px)
    if weights == "positive":
        image, out = _positive_forward(spec, ref, size, seed)
    elif weights == "model":
        from artiphys.models.taps import forward_to_layers

        gen = torch.Generator().manual_seed(seed)
        image = torch.randn(max(1, int(n_images)), _first_in_channels(spec.module), size, size,
                            generator=gen).to(module_device(spec.module)).requires_grad_(True)
        with torch.enable_grad():
            out = forward_to_layers(spec, image, [ref])[ref]
    else:
        raise GeometryError(f"weights must be 'model' or 'positive', got {weights!r}")
    shape = tuple(out.shape[1:])
    with torch.enable_grad():
        if out.ndim == 4:
            cy, cx = map_center(out.shape[2], out.shape[3])
            at = out[:, :, cy if y is None else y, cx if x is None else x]
        else:
            at = out.reshape(out.shape[0], -1)
        unit = at if channel is None else at[:, channel]
        if not unit.requires_grad:
            raise GeometryError(f"layer {ref.label!r} does not depend on the input image (no "
                                "gradient reaches it: a constant layer?); choose a layer "
                                "that the image drives")
        (grad,) = torch.autograd.grad(unit.abs().sum(), image)
    support = grad.abs().sum((0, 1)) > 0
    rows = torch.nonzero(support.any(1)).flatten()
    cols = torch.nonzero(support.any(0)).flatten()
    if len(rows) == 0:
        raise GeometryError(f"the gradient of layer {ref.label!r}'s unit is zero everywhere "
                            "(a unit silent for every random input); pick another unit")
    return (int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])), shape


def _positive_forward(spec: ModelSpec, ref, size: int, seed: int):
    """``(image, output)`` of the positive copy truncated after ``ref`` (NCHW output)."""
    from artiphys.models.virtual import linear_parts

    traced = trace_geometry(spec, size)
    node = traced.node_of_call(ref.path, ref.call)
    if node is None:
        raise GeometryError(f"layer {ref.label!r} does not run in the model's forward pass")
    parts = [node] if ref.view is None else linear_parts(
        node, dict(traced.graph_module.named_modules()))
    graph = fx.Graph()
    copied: dict = {}
    graph.graph_copy(traced.graph_module.graph, copied)
    outs = [copied[p] for p in parts]
    graph.output(outs[0] if len(outs) == 1 else graph.call_function(torch.cat, (outs, 1)))
    truncated = fx.GraphModule(traced.graph_module, graph)  # shares the model's modules
    truncated.graph.eliminate_dead_code()
    truncated.delete_all_unused_submodules()
    truncated.recompile()
    gm = _positive_copy(truncated, seed)
    gen = torch.Generator().manual_seed(seed)
    image = 0.5 + 0.5 * torch.rand(1, _first_in_channels(spec.module), size, size, generator=gen)
    image = image.to(module_device(spec.module)).requires_grad_(True)
    with torch.enable_grad():
        out = gm(image)
    geo = traced.geos.get(node)
    if ref.view is None and geo is not None and geo.channels_last and out.ndim == 4:
        out = out.permute(0, 3, 1, 2)
    return image, out


def equivariant_stride(model: ModelSpec | nn.Module, layer, *, axis: str = "x",
                       input_size_px: int | None = None, seed: int = 0) -> int | None:
    """The layer's cumulative stride along ``axis`` if it is translation-equivariant, else None.

    Measured on the model as it is: the output map grows by ``delta / stride`` units when
    the input grows by ``delta`` px (96, else 480 px: multiples of the strides of common
    networks), and shifting a random input by one stride shifts the central units of the
    output by one unit (within 1e-4 of the output's scale). None for 1-D, globally or
    adaptively pooled layers, and strides over half the input side.

    Parameters
    ----------
    model, layer
        As in :func:`gradient_support_px`.
    axis : ``"x"`` (columns) or ``"y"`` (rows)
    input_size_px : int, optional
        Side of the square input (default the model's input size).
    seed : int
    """
    from artiphys.models.taps import forward_to_layers

    if axis not in ("x", "y"):
        raise GeometryError(f"axis must be 'x' or 'y', got {axis!r}")
    spec = as_spec(model)
    size = int(input_size_px or spec.preprocessing.input_size_px)
    device = module_device(spec.module)
    channels = _first_in_channels(spec.module)

    def run(t: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return forward_to_layers(spec, t.to(device), [layer])[layer].detach()

    g = torch.Generator().manual_seed(seed)
    out = run(torch.randn((1, channels, size, size), generator=g))
    if out.ndim != 4:
        return None
    dim = 3 if axis == "x" else 2
    for delta in (96, 480):  # 96 = 2^5 * 3; 480 adds strides of 5, 10, 15...
        wide = torch.randn((1, channels, size, size + delta) if axis == "x"
                           else (1, channels, size + delta, size), generator=g)
        out_wide = run(wide)
        grow = out_wide.shape[dim] - out.shape[dim] if out_wide.ndim == 4 else 0
        if grow > 0 and delta % grow == 0:
            break
    else:
        return None
    stride = delta // grow
    if stride > size // 2:
        return None
    shifted = run(torch.roll(wide, stride, dims=dim))
    # compare central units only: RFs of units near the ends reach the borders, and the
    # rolled-in columns
    n = out_wide.shape[dim]
    width = max(1, n // 8)
    a = out_wide.narrow(dim, n // 2 - width, 2 * width)
    b = shifted.narrow(dim, n // 2 - width + 1, 2 * width)
    scale = float(a.abs().max()) or 1.0
    if float((a - b).abs().max()) > 1e-4 * scale:
        return None
    return stride
