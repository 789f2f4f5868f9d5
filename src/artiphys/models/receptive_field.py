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

from torch import nn

from artiphys.models.rf_empirical import equivariant_stride, gradient_support_px
from artiphys.models.rf_geometry import (
    GeometryError,
    RFGeometry,
    UntraceableModelError,
    clip_bounds,
    unit_center_px,
)
# kept importable from here (layers.py and other stages import them from this module)
from artiphys.models.rf_rules import _kind_of_module, _kind_of_node, _shape  # noqa: F401
from artiphys.models.rf_trace import (  # noqa: F401
    _first_in_channels,
    _Traced,
    geometry_of_node,
    trace_geometry,
)
from artiphys.models.spec import ModelSpec

__all__ = [
    "RFGeometry",
    "GeometryError",
    "UntraceableModelError",
    "clip_bounds",
    "equivariant_stride",
    "geometry_of_node",
    "gradient_support_px",
    "layer_geometry",
    "trace_geometry",
    "unit_center_px",
]


def layer_geometry(model: ModelSpec | nn.Module, layer, input_size_px: int | None = None
                   ) -> RFGeometry:
    """Receptive-field geometry of one layer's output.

    Parameters
    ----------
    model : ModelSpec or nn.Module
    layer : str, LayerRef or nn.Module
        Layer name (module path ``"features.3"`` or alias ``"conv2"``, optionally with
        ``@call`` / ``:linear``; see :mod:`artiphys.models.layers`) or module. A container
        module (a ResNet block, a SqueezeNet fire module) gives the geometry of what it
        returns; a module that runs several times, that of its last call (``name@k``: call
        ``k``); ``name:linear`` that of the layer's linear output (per channel the RF of the
        concatenated part it comes from).
    input_size_px : int, optional
        Side of the square input; default the model's preprocessing input size. RF sizes do
        not depend on it; output shapes (and layers after adaptive pooling) do.

    Returns
    -------
    RFGeometry

    Raises
    ------
    UnknownLayerError
        When the layer does not exist (closest names listed), or does not run (that often).
    GeometryError
        When the model cannot be traced.
    """
    from artiphys.models.layers import resolve_layer, spec_with_aliases
    from artiphys.models.virtual import view_geometry

    spec = spec_with_aliases(model)
    ref = resolve_layer(spec, layer)
    traced = trace_geometry(spec, input_size_px)
    return view_geometry(traced, ref.path, ref.call, ref.view, ref.label)
