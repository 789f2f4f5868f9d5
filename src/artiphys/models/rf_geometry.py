"""Receptive-field geometry of one layer's output: the public result and its errors.

See :mod:`artiphys.models.receptive_field` for the conventions (pixel centres, unit ``j``
of a layer seeing ``start + stride * j ... end + stride * j``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from artiphys.errors import ArtiphysError, UnknownUnitError


class GeometryError(ArtiphysError):
    """The model's graph cannot be traced, or a layer's geometry cannot be computed."""


class UntraceableModelError(GeometryError):
    """torch.fx cannot trace the model's forward (data-dependent control flow)."""


@dataclass(frozen=True, eq=False)
class RFGeometry:
    """Receptive-field geometry of one layer's output.

    Attributes
    ----------
    out_shape : tuple of int
        Output shape without the batch dimension: ``(C, H, W)``, or ``(C,)`` for 1-D layers.
    rf_size_px : int, tuple, numpy.ndarray or None
        Full theoretical RF side in input pixels (padding truncation ignored). An ``int`` when
        square and equal for every channel; an int array of shape ``(C,)`` when it differs by
        channel (concatenated branches); ``(size_y, size_x)`` / an array ``(C, 2)`` when not
        square. For non-spatial layers (``is_spatial`` False) the extent of input that every
        unit depends on. None when unknown (see ``note``).
    stride_px : int, tuple or None
        Cumulative stride in input pixels between neighbouring units (``(sy, sx)`` when the two
        axes differ); None for non-spatial layers.
    offset_px : tuple of float, numpy.ndarray or None
        Input-pixel centre ``(cy, cx)`` of unit ``(0, 0)``; unit ``(y, x)`` is centred at
        ``offset_px + stride_px * (y, x)``. An array ``(C, 2)`` when it differs by channel.
        May be negative for padded convolutions.
    is_spatial : bool
        False for 1-D (fully connected) and globally pooled layers, whose units have no
        position.
    bounds_px : numpy.ndarray or None
        Per channel, ``(y_start, y_end, x_start, x_end)`` input pixels (inclusive) seen by unit
        ``(0, 0)``; shape ``(C, 4)``.
    note : str
        Why the geometry is unknown, else ``""``.
    channels_last : bool
        True when the layer's tensor is laid out ``(H, W, C)`` (inside ConvNeXt blocks);
        ``out_shape`` is then ``(H, W, C)``.
    """

    out_shape: tuple[int, ...]
    rf_size_px: int | tuple[int, int] | np.ndarray | None
    stride_px: int | tuple[int, int] | None
    offset_px: tuple[float, float] | np.ndarray | None
    is_spatial: bool
    bounds_px: np.ndarray | None = None
    note: str = ""
    channels_last: bool = False

    @property
    def chw(self) -> tuple[int, ...]:
        """``out_shape`` as ``(C, H, W)`` (or ``(C,)``) whatever the layout."""
        s = self.out_shape
        return (s[2], s[0], s[1]) if self.channels_last and len(s) == 3 else s

    @property
    def known(self) -> bool:
        return self.bounds_px is not None

    def unit_bounds_px(self, y: int = 0, x: int = 0, channel: int = 0) -> tuple[int, int, int, int]:
        """Input pixels ``(y_start, y_end, x_start, x_end)`` (inclusive, may lie outside the
        image) seen by unit ``(channel, y, x)``."""
        if not self.known:
            raise GeometryError(f"receptive field unknown: {self.note}")
        _check_unit(self, y, x, channel)
        y0, y1, x0, x1 = (int(v) for v in self.bounds_px[channel])
        if self.is_spatial:
            sy, sx = _pair(self.stride_px)
            y0, y1, x0, x1 = y0 + sy * y, y1 + sy * y, x0 + sx * x, x1 + sx * x
        return y0, y1, x0, x1


def unit_center_px(geometry: RFGeometry, y: int, x: int, channel: int | None = None
                   ) -> tuple[float, float]:
    """Input-pixel centre ``(cy, cx)`` of unit ``(y, x)``: ``offset_px + stride_px * (y, x)``.

    Parameters
    ----------
    geometry : RFGeometry
    y, x : int
        Unit position in the layer's output map (``int(H / 2)`` is the centre unit).
    channel : int, optional
        Needed only where the offset differs by channel.

    Raises
    ------
    UnknownUnitError
        When ``(y, x)`` (or ``channel``) is outside the layer's output.
    """
    if not geometry.known:
        raise GeometryError(f"receptive field unknown: {geometry.note}")
    _check_unit(geometry, y, x, channel or 0)
    offset = geometry.offset_px
    if isinstance(offset, np.ndarray):
        if channel is None:
            raise ArtiphysError("the RF centre of this layer differs by channel; pass channel=")
        offset = tuple(float(v) for v in offset[channel])
    if not geometry.is_spatial:
        return float(offset[0]), float(offset[1])
    sy, sx = _pair(geometry.stride_px)
    return float(offset[0] + sy * y), float(offset[1] + sx * x)


def _check_unit(geometry: RFGeometry, y: int, x: int, channel: int) -> None:
    shape = geometry.chw
    if not 0 <= channel < shape[0]:
        raise UnknownUnitError(f"channel {channel} is outside 0..{shape[0] - 1}")
    h, w = (shape[1], shape[2]) if len(shape) == 3 else (1, 1)
    if not (0 <= y < h and 0 <= x < w):
        raise UnknownUnitError(f"unit (y={y}, x={x}) is outside the {h}x{w} output map")


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))



def clip_bounds(bounds: tuple[int, int, int, int], input_size_px: int) -> tuple[int, int, int, int]:
    """Clip inclusive ``(y0, y1, x0, x1)`` bounds to a square image of side ``input_size_px``."""
    y0, y1, x0, x1 = bounds
    n = int(input_size_px) - 1
    return max(0, y0), min(n, y1), max(0, x0), min(n, x1)
