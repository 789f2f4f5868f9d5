"""Receptive-field geometry of a layer, as synthesis needs it.

Prefers ``artiphys.models.receptive_field.layer_geometry`` (analytic, shared); until that
is available (or for modules it cannot analyse) it is measured from gradient support:
the input pixels with a non-zero gradient of the centre unit (summed over channels, over
eight random images) give the RF box; the shift of that box for the unit one step to the
right and below gives the stride.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from artiphys.models.spec import ModelSpec, as_spec
from artiphys.synthesis.hooks import forward_to_layers


@dataclass(frozen=True)
class UnitGeometry:
    """Where the units of a layer look, in input pixels.

    Unit ``(y, x)`` sees the square with top-left corner
    ``(top0_px + stride_px * y, left0_px + stride_px * x)`` and side ``rf_size_px``
    (parts of it may lie outside the image). ``out_hw`` is the map size;
    ``is_spatial`` is False for ``(n, C)`` layers (the RF is then the whole image).
    """

    rf_size_px: int
    stride_px: int
    top0_px: float
    left0_px: float
    out_hw: tuple[int, int]
    is_spatial: bool
    input_size_px: int

    def box(self, y: int, x: int) -> tuple[int, int, int]:
        """``(top, left, size)`` of unit ``(y, x)``'s RF in input pixels."""
        if not self.is_spatial:
            return 0, 0, self.input_size_px
        return (int(round(self.top0_px + self.stride_px * y)),
                int(round(self.left0_px + self.stride_px * x)), self.rf_size_px)


def _support_box(grad: torch.Tensor) -> tuple[int, int, int, int] | None:
    support = grad.abs().sum((0, 1)) > 0
    rows = torch.nonzero(support.any(1)).flatten()
    cols = torch.nonzero(support.any(0)).flatten()
    if rows.numel() == 0:
        return None
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def unit_geometry(model: ModelSpec | torch.nn.Module, layer, input_size_px: int | None = None,
                  seed: int = 0) -> UnitGeometry:
    """RF size, stride and position of the units of ``layer`` (see module doc)."""
    spec = as_spec(model)
    size = int(input_size_px or spec.preprocessing.input_size_px)
    try:
        from artiphys.models.receptive_field import layer_geometry
    except ImportError:
        layer_geometry = None
    if layer_geometry is not None:
        try:
            geo = layer_geometry(spec, layer, input_size_px=size)
            rf = int(np.max(geo.rf_size_px))
            stride = int(np.max(geo.stride_px))
            off = np.broadcast_to(np.asarray(geo.offset_px, dtype=float), (2,))
            return UnitGeometry(rf, stride, off[0] - (rf - 1) / 2, off[1] - (rf - 1) / 2,
                                tuple(geo.out_shape[-2:]), bool(geo.is_spatial), size)
        except (NotImplementedError, AttributeError, TypeError):
            pass
    g = torch.Generator().manual_seed(seed)
    dev = next((p.device for p in spec.module.parameters()), torch.device("cpu"))
    x = torch.rand(8, 3, size, size, generator=g).to(dev).requires_grad_(True)
    out = forward_to_layers(spec, spec.preprocessing.normalise(x), [layer])[layer]
    if out.ndim != 4:
        return UnitGeometry(size, size, 0.0, 0.0, (1, 1), False, size)
    h, w = out.shape[-2:]
    cy, cx = (h - 1) // 2, (w - 1) // 2
    (grad,) = torch.autograd.grad(out[:, :, cy, cx].sum(), x, retain_graph=True)
    box = _support_box(grad)
    if box is None:
        return UnitGeometry(size, size, 0.0, 0.0, (h, w), True, size)
    r0, r1, c0, c1 = box
    rf = max(r1 - r0 + 1, c1 - c0 + 1)
    stride = 1
    if cy + 1 < h and cx + 1 < w:
        (g2,) = torch.autograd.grad(out[:, :, cy + 1, cx + 1].sum(), x)
        b2 = _support_box(g2)
        if b2 is not None:
            stride = max(1, round(((b2[0] + b2[1]) - (r0 + r1)) / 2))
    # centre of the centre unit's box, extended to a square of side rf
    top = (r0 + r1) / 2 - (rf - 1) / 2
    left = (c0 + c1) / 2 - (rf - 1) / 2
    return UnitGeometry(int(min(rf, 4 * size)), int(stride), top - stride * cy,
                        left - stride * cx, (h, w), True, size)
