"""The centre unit of a layer's output map: one convention for every stage.

Recording (``units="center"``), translation invariance, synthesis objectives, top patches,
diverse sets and the empirical receptive-field measurement all read "the centre unit" of a
map through :func:`map_center`, so that on an even-sized map (VGG-16 at 224 px: 14 x 14,
28 x 28, ...) they all mean the same unit.
"""

from __future__ import annotations

__all__ = ["map_center"]


def map_center(h: int, w: int) -> tuple[int, int]:
    """Map position ``(y, x)`` of the centre unit of an ``h x w`` map: ``(h // 2, w // 2)``.

    On an odd side this is the middle unit; on an even side the lower/right of the two
    middle units (for a 14 x 14 map, unit ``(7, 7)``). A 1-D layer is a 1 x 1 map: ``(0, 0)``.

    Parameters
    ----------
    h, w : int
        Height and width of the map (units), at least 1.

    Returns
    -------
    (y, x) : tuple of int
    """
    return int(h) // 2, int(w) // 2
