"""Receptive-field geometry of a layer, as synthesis needs it.

Uses ``artiphys.models.receptive_field.layer_geometry`` (analytic, shared); for layers it
cannot analyse, it is measured with the models' one empirical measurement
(:mod:`artiphys.models.rf_empirical`): the gradient support of the centre unit (all
channels, pooled over eight random inputs) gives the RF box; the layer's equivariance
stride (else the shift of the box of the next unit) gives the stride.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from artiphys.models.receptive_field import (
    GeometryError,
    equivariant_stride,
    gradient_support_px,
    layer_geometry,
)
from artiphys.models.spec import ModelSpec, as_spec, module_device
from artiphys.models.units import map_center
from artiphys.recording.hooks import forward_to_layers


@dataclass(frozen=True)
class UnitGeometry:
    """Where the units of a layer look, in input pixels.

    Unit ``(channel, y, x)`` is centred at ``center0_px[channel] + stride_px * (y, x)``;
    crops use one square of side ``rf_size_px`` (the largest RF of the layer's channels,
    Pospisil et al.'s "maximal extent of the image available" to the layer) centred there.
    ``center0_px`` has one row per channel, or a single row when all channels agree.
    ``is_spatial`` is False for ``(n, C)`` layers (the RF is then the whole image).
    """

    rf_size_px: int
    stride_px: int
    center0_px: np.ndarray
    out_hw: tuple[int, int]
    is_spatial: bool
    input_size_px: int

    def box(self, y: int, x: int, channel: int = 0) -> tuple[int, int, int]:
        """``(top, left, size)`` of the crop around unit ``(channel, y, x)`` in input pixels."""
        if not self.is_spatial:
            return 0, 0, self.input_size_px
        c = self.center0_px[channel if len(self.center0_px) > 1 else 0]
        half = (self.rf_size_px - 1) / 2
        return (int(np.floor(c[0] + self.stride_px * y - half + 0.5)),
                int(np.floor(c[1] + self.stride_px * x - half + 0.5)), self.rf_size_px)


def _from_shared(spec, layer, size) -> UnitGeometry | None:
    """Geometry from ``artiphys.models.receptive_field`` when it knows the layer."""
    try:
        geo = layer_geometry(spec, layer, input_size_px=size)
    except GeometryError:  # the model cannot be traced: measure instead
        return None
    if not getattr(geo, "known", False):
        return None
    out_hw = tuple(geo.out_shape[1:]) if len(geo.out_shape) == 3 else (1, 1)
    if not geo.is_spatial:
        return UnitGeometry(size, size, np.zeros((1, 2)), out_hw, False, size)
    b = np.asarray(geo.bounds_px, dtype=float)  # (C, 4): y0, y1, x0, x1 of unit (0, 0)
    rf = int(max((b[:, 1] - b[:, 0]).max(), (b[:, 3] - b[:, 2]).max()) + 1)
    stride = geo.stride_px if np.isscalar(geo.stride_px) else max(geo.stride_px)
    centers = np.stack([(b[:, 0] + b[:, 1]) / 2, (b[:, 2] + b[:, 3]) / 2], 1)
    if np.all(centers == centers[:1]):
        centers = centers[:1]
    return UnitGeometry(rf, int(stride), centers, out_hw, True, size)


def unit_geometry(model: ModelSpec | torch.nn.Module, layer, input_size_px: int | None = None,
                  seed: int = 0) -> UnitGeometry:
    """RF size, stride and position of the units of ``layer`` (see module doc)."""
    spec = as_spec(model)
    size = int(input_size_px or spec.preprocessing.input_size_px)
    shared = _from_shared(spec, layer, size)
    if shared is not None:
        return shared
    return measured_geometry(spec, layer, size, seed)


def measured_geometry(model: ModelSpec | torch.nn.Module, layer, input_size_px: int | None = None,
                      seed: int = 0) -> UnitGeometry:
    """The geometry measured on the model (any differentiable model; see module doc)."""
    spec = as_spec(model)
    size = int(input_size_px or spec.preprocessing.input_size_px)
    x = torch.full((1, 3, size, size), 0.5, device=module_device(spec.module))
    with torch.no_grad():
        out = forward_to_layers(spec, spec.preprocessing.normalise(x), [layer])[layer]
    if out.ndim != 4:
        return UnitGeometry(size, size, np.zeros((1, 2)), (1, 1), False, size)
    h, w = out.shape[-2:]
    cy, cx = map_center(h, w)
    try:
        r0, r1, c0, c1 = gradient_support_px(spec, layer, None, cy, cx, input_size_px=size,
                                             seed=seed, n_images=8)
    except GeometryError:  # silent for every random input: assume the whole image
        return UnitGeometry(size, size, np.full((1, 2), (size - 1) / 2), (h, w), True, size)
    rf = max(r1 - r0 + 1, c1 - c0 + 1)
    stride = equivariant_stride(spec, layer, axis="x", input_size_px=size, seed=seed)
    if stride is None:
        stride = _neighbour_shift(spec, layer, size, seed, (h, w), (cy, cx), (r0 + r1, c0 + c1))
    center = np.array([[(r0 + r1) / 2 - stride * cy, (c0 + c1) / 2 - stride * cx]])
    return UnitGeometry(int(rf), int(stride), center, (h, w), True, size)


def _neighbour_shift(spec, layer, size, seed, hw, yx, centre2) -> int:
    """Stride from the shift of the support box between the centre unit and the next one
    diagonally (1 when the map has a single unit or the neighbour is silent)."""
    (h, w), (cy, cx) = hw, yx
    if h == 1 or w == 1:
        return 1
    ny, nx = (cy + 1 if cy + 1 < h else cy - 1), (cx + 1 if cx + 1 < w else cx - 1)
    try:
        b = gradient_support_px(spec, layer, None, ny, nx, input_size_px=size, seed=seed,
                                n_images=8)
    except GeometryError:
        return 1
    return max(1, round(abs((b[0] + b[1]) - centre2[0]) / 2))
