"""Receptive-field geometry of a layer, as synthesis needs it.

Uses ``artiphys.models.receptive_field.layer_geometry`` (analytic, shared); for layers it
cannot analyse, it is measured from gradient support:
the input pixels with a non-zero gradient of the centre unit (summed over channels, over
eight random images) give the RF box; the shift of that box for the unit one step to the
right and below gives the stride.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from artiphys.models.spec import ModelSpec, as_spec, module_device
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


def _support_box(grad: torch.Tensor) -> tuple[int, int, int, int] | None:
    support = grad.abs().sum((0, 1)) > 0
    rows = torch.nonzero(support.any(1)).flatten()
    cols = torch.nonzero(support.any(0)).flatten()
    if rows.numel() == 0:
        return None
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def _from_shared(spec, layer, size) -> UnitGeometry | None:
    """Geometry from ``artiphys.models.receptive_field`` when it knows the layer."""
    try:
        from artiphys.models.receptive_field import layer_geometry
    except ImportError:
        return None
    try:
        geo = layer_geometry(spec, layer, input_size_px=size)
    except NotImplementedError:
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
    """The geometry measured from gradient support (any differentiable model)."""
    spec = as_spec(model)
    size = int(input_size_px or spec.preprocessing.input_size_px)
    g = torch.Generator().manual_seed(seed)
    dev = module_device(spec.module)
    x = torch.rand(8, 3, size, size, generator=g).to(dev).requires_grad_(True)
    out = forward_to_layers(spec, spec.preprocessing.normalise(x), [layer])[layer]
    if out.ndim != 4:
        return UnitGeometry(size, size, np.zeros((1, 2)), (1, 1), False, size)
    h, w = out.shape[-2:]
    cy, cx = (h - 1) // 2, (w - 1) // 2
    (grad,) = torch.autograd.grad(out[:, :, cy, cx].sum(), x, retain_graph=True)
    box = _support_box(grad)
    if box is None:
        return UnitGeometry(size, size, np.full((1, 2), (size - 1) / 2), (h, w), True, size)
    r0, r1, c0, c1 = box
    rf = max(r1 - r0 + 1, c1 - c0 + 1)
    stride = 1
    if cy + 1 < h and cx + 1 < w:
        (g2,) = torch.autograd.grad(out[:, :, cy + 1, cx + 1].sum(), x)
        b2 = _support_box(g2)
        if b2 is not None:
            stride = max(1, round(((b2[0] + b2[1]) - (r0 + r1)) / 2))
    center = np.array([[(r0 + r1) / 2 - stride * cy, (c0 + c1) / 2 - stride * cx]])
    return UnitGeometry(int(rf), int(stride), center, (h, w), True, size)
