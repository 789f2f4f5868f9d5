"""Which units of a layer to record: ``"center"``, ``"all"`` or an explicit list.

A layer's output is read as ``(n, C, H, W)``; a 1-D layer's ``(n, C)`` output is treated as
a 1 x 1 map, so its units have ``y = x = 0``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from artiphys.errors import ResponseError, UnknownUnitError
from artiphys.models.units import map_center

UNIT_MODES = ("center", "all")
_NUMPY_DTYPES = (torch.float32, torch.float64, torch.float16)


def output_shape(output, label: str) -> tuple[int, int, int]:
    """``(C, H, W)`` of a layer output ``(n, C, H, W)`` or ``(n, C)`` (as ``(C, 1, 1)``).

    Raises
    ------
    ResponseError
        For outputs that are not a tensor of 2 or 4 dimensions (tuples, sequences).
    """
    if not torch.is_tensor(output):
        raise ResponseError(
            f"layer {label!r} returns a {type(output).__name__}, not a tensor; record a "
            "layer that outputs one tensor (e.g. the submodule that produces it)")
    if output.ndim == 4:
        return tuple(int(s) for s in output.shape[1:])
    if output.ndim == 2:
        return (int(output.shape[1]), 1, 1)
    raise ResponseError(
        f"layer {label!r} outputs shape {tuple(output.shape)}; recording reads (n, C, H, W) or "
        "(n, C) outputs; choose a convolutional or fully connected layer")


def units_mode(units) -> str:
    """``"center"``, ``"all"`` or ``"explicit"`` for a units argument."""
    return units if isinstance(units, str) else "explicit"


def units_to_json(units):
    """JSON-able form of a units argument (for manifests)."""
    if isinstance(units, str):
        return units
    if isinstance(units, Mapping):
        return {str(k): units_to_json(v) for k, v in units.items()}
    return [list(map(int, u)) if isinstance(u, (tuple, list, np.ndarray)) else int(u)
            for u in units]


class UnitSelector:
    """The units of one layer, resolved against its output shape ``(C, H, W)``.

    Attributes
    ----------
    mode : str
        ``"center"``, ``"all"`` or ``"explicit"``.
    shape : tuple of int
        ``(C, H, W)`` of the layer output (``(C, 1, 1)`` for 1-D layers).
    channel, y, x : numpy.ndarray of int64
        One entry per recorded unit, in the order of :meth:`take`'s columns.
    """

    def __init__(self, units, shape: tuple[int, int, int], label: str, spatial: bool):
        self.shape = shape
        self.spatial = spatial
        self.label = label
        C, H, W = shape
        cy, cx = map_center(H, W)
        if isinstance(units, str):
            if units not in UNIT_MODES:
                raise UnknownUnitError(
                    f"units {units!r} not understood; use 'center', 'all', a list of channels "
                    "(at the map centre) or a list of (channel, y, x)")
            self.mode = units
            if units == "center":
                channel, y, x = np.arange(C), np.full(C, cy), np.full(C, cx)
            else:
                channel, y, x = (a.ravel() for a in np.meshgrid(
                    np.arange(C), np.arange(H), np.arange(W), indexing="ij"))
        else:
            self.mode = "explicit"
            channel, y, x = self._explicit(units, cy, cx)
        self.channel = np.asarray(channel, dtype=np.int64)
        self.y = np.asarray(y, dtype=np.int64)
        self.x = np.asarray(x, dtype=np.int64)
        self._index: dict[torch.device, tuple[torch.Tensor, ...]] = {}

    def _explicit(self, units, cy: int, cx: int):
        C, H, W = self.shape
        try:
            items = list(units)
        except TypeError:
            raise UnknownUnitError(f"units {units!r} not understood; use 'center', 'all', a "
                                   "list of channels or a list of (channel, y, x)") from None
        if not items:
            raise UnknownUnitError("the units list is empty; give at least one unit")
        if all(isinstance(u, (int, np.integer)) for u in items):
            table = np.array([(int(c), cy, cx) for c in items], dtype=np.int64)
        elif all(isinstance(u, (tuple, list, np.ndarray)) and len(u) == 3 for u in items):
            table = np.array([tuple(int(v) for v in u) for u in items], dtype=np.int64)
        else:
            raise UnknownUnitError(
                "units must all be channels (ints) or all (channel, y, x) triples; got "
                f"{items[:3]!r}...")
        bad = ((table < 0) | (table >= np.array([C, H, W]))).any(axis=1)
        if bad.any():
            c, y, x = table[bad.argmax()]
            raise UnknownUnitError(
                f"unit (channel={c}, y={y}, x={x}) is outside layer {self.label!r}, whose output "
                f"has C={C}, H={H}, W={W}; choose channel < {C}, y < {H}, x < {W}")
        return table[:, 0], table[:, 1], table[:, 2]

    def __len__(self) -> int:
        return len(self.channel)

    def take(self, output: torch.Tensor) -> torch.Tensor:
        """The selected units of ``output`` as a new tensor ``(n, units)``, never a view, so
        a later in-place op on ``output`` (``ReLU(inplace=True)``) cannot change it.

        Only the selected units are copied. On the CPU the copy is done by numpy: a
        single-threaded memcpy, where torch's parallel copy of the same small slice waits
        for a second thread (milliseconds per layer on a busy machine).
        """
        if output.device.type == "cpu" and output.dtype in _NUMPY_DTYPES:
            return torch.from_numpy(self._take_numpy(output.detach().numpy()))
        n = output.shape[0]
        C, H, W = self.shape
        if not self.spatial:  # (n, C)
            if self.mode == "explicit":
                return output.index_select(1, self._tensors(output.device)[0])
            return output.clone()
        if self.mode == "center":
            cy, cx = map_center(H, W)
            return output[:, :, cy, cx].clone()
        if self.mode == "all":
            return output.reshape(n, C * H * W).clone()
        c, y, x = self._tensors(output.device)
        return output[:, c, y, x]  # advanced indexing copies

    def _take_numpy(self, a: np.ndarray) -> np.ndarray:
        n = a.shape[0]
        C, H, W = self.shape
        if not self.spatial:
            return a[:, self.channel] if self.mode == "explicit" else np.array(a, order="C")
        if self.mode == "center":
            cy, cx = map_center(H, W)
            return np.array(a[:, :, cy, cx], order="C")
        if self.mode == "all":
            return np.array(a.reshape(n, C * H * W), order="C")
        return a[:, self.channel, self.y, self.x]  # fancy indexing copies

    def _tensors(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        if device not in self._index:
            self._index[device] = tuple(torch.as_tensor(a, device=device)
                                        for a in (self.channel, self.y, self.x))
        return self._index[device]


def units_for_layer(units, ref_keys: Sequence[str]):
    """Pick the units argument that applies to a layer from a per-layer mapping.

    ``ref_keys`` are the names the layer goes by (label, module path, alias).
    """
    if not isinstance(units, Mapping):
        return units
    for key in ref_keys:
        if key in units:
            return units[key]
    raise UnknownUnitError(
        f"no units given for layer {ref_keys[0]!r}; the units mapping has "
        f"{', '.join(map(str, units))}. Add an entry for every recorded layer")


def check_units_mapping(units, layer_keys: Sequence[Sequence[str]]) -> None:
    """Refuse a per-layer units mapping with entries for layers that are not recorded.

    ``layer_keys`` holds, per recorded layer, the names it goes by.
    """
    if isinstance(units, Mapping):
        known = {k for keys in layer_keys for k in keys if k}
        extra = [k for k in units if k not in known]
        if extra:
            raise UnknownUnitError(
                f"units given for {', '.join(map(repr, extra))}, which is not a recorded "
                "layer; add it to the layers or remove it from the units mapping")
