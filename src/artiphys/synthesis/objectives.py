"""Objectives: small composable values that score each image of a batch.

An :class:`Objective` wraps ``fn(activations) -> Tensor (n,)`` (one score per image, to be
*maximised*) and declares the layers it reads, so that the optimisation loop hooks only
those and stops the forward pass once they have all been computed.

``activations`` is a dict from the layer key an objective was built with (a module path,
an alias, a :class:`~artiphys.models.layers.LayerRef` or a module) to that layer's output.

Objectives compose: ``a + b``, ``a - b``, ``2.0 * a``, ``-a`` (the most suppressive image)
return new objectives. :func:`per_image` gives each batch element its own objective, so
64 units are optimised in one batch::

    obj = per_image([channel("features.7", c) for c in range(64)])

References
----------
Olah, Mordvintsev & Schubert (2017), Feature Visualization, Distill (objectives as
composable values; "neuron", "channel", "layer" and "direction" objectives).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from artiphys.errors import ArtiphysError, UnknownUnitError
from artiphys.models.units import map_center

Activations = dict  # layer key -> Tensor (n, C, H, W) or (n, C)
ScoreFn = Callable[[Activations], torch.Tensor]


@dataclass(frozen=True, eq=False)
class Objective:
    """A per-image score to maximise.

    Attributes
    ----------
    fn : callable
        ``fn(activations) -> Tensor (n,)``; ``activations`` maps each key of ``layers`` to
        that layer's output for the whole batch.
    layers : tuple
        The layer keys ``fn`` reads (only these are hooked).
    name : str
        Human-readable description, stored with results.
    """

    fn: ScoreFn
    layers: tuple
    name: str

    def __call__(self, activations: Activations) -> torch.Tensor:
        return self.fn(activations)

    # -- algebra --------------------------------------------------------------------------
    def __add__(self, other):
        if isinstance(other, (int, float)):
            if other == 0:
                return self
            return Objective(lambda a: self.fn(a) + other, self.layers, f"({self.name} + {other})")
        if not isinstance(other, Objective):
            return NotImplemented
        return Objective(lambda a: self.fn(a) + other.fn(a), _union(self.layers, other.layers),
                         f"({self.name} + {other.name})")

    __radd__ = __add__  # so that sum([...]) works (it starts from 0)

    def __neg__(self):
        if hasattr(self, "parts"):  # keep one objective per image
            return per_image([-p for p in self.parts])
        return Objective(lambda a: -self.fn(a), self.layers, f"-{self.name}")

    def __sub__(self, other):
        return self + (-other)

    def __mul__(self, weight):
        if not isinstance(weight, (int, float)):
            return NotImplemented
        w = float(weight)
        if hasattr(self, "parts"):
            return per_image([w * p for p in self.parts])
        return Objective(lambda a: w * self.fn(a), self.layers, f"{w:g}*{self.name}")

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return f"Objective({self.name})"


def _union(a: tuple, b: tuple) -> tuple:
    out = list(a)
    for key in b:
        if not any(key is k or (isinstance(k, str) and k == key) for k in out):
            out.append(key)
    return tuple(out)


def _key_name(layer) -> str:
    if isinstance(layer, str):
        return layer
    return getattr(layer, "label", None) or type(layer).__name__


def _center(size: int) -> int:
    """Centre index along one side of a map (:func:`artiphys.models.units.map_center`)."""
    return map_center(size, 1)[0]


def _check_channel(act: torch.Tensor, layer, c: int) -> None:
    if not 0 <= c < act.shape[1]:
        raise UnknownUnitError(f"channel {c} is outside layer {_key_name(layer)!r}, which has "
                               f"{act.shape[1]} channels (0-{act.shape[1] - 1})")


def _tagged(obj: Objective, gather: tuple) -> Objective:
    """Mark a single-channel objective so :func:`per_image` can batch it as one gather."""
    object.__setattr__(obj, "gather", gather)
    return obj


def _gathered(objectives: list[Objective]):
    """One vectorised fn for per-image unit/channel objectives on one layer, else None.

    Scoring image i by slicing ``acts[i:i+1]`` costs a full-size gradient buffer per
    slice in the backward pass (64 slices of a 64-image activation = 64x its memory);
    a single gather of the channel each image needs has none of that.
    """
    specs = [getattr(o, "gather", None) for o in objectives]
    if any(s is None for s in specs):
        return None
    kind, layer_key = specs[0][0], specs[0][1]
    if any(s[0] != kind or s[1] is not layer_key and s[1] != layer_key for s in specs):
        return None
    if kind == "unit" and any(s[3:] != specs[0][3:] for s in specs):
        return None
    channels = torch.tensor([s[2] for s in specs])
    y, x = specs[0][3], specs[0][4]

    def fn(acts):
        a = acts[layer_key]
        if a.ndim != 4:
            return None
        _check_channel(a, layer_key, int(channels.max()))
        idx = torch.arange(a.shape[0], device=a.device)
        sel = a[idx, channels.to(a.device)]  # (n, H, W)
        if kind == "channel":
            return sel.reshape(a.shape[0], -1).mean(1)
        h, w = sel.shape[-2:]
        yy = _center(h) if y is None else int(y)
        xx = _center(w) if x is None else int(x)
        if not (0 <= yy < h and 0 <= xx < w):
            return None  # let the per-unit path raise its message
        return sel[:, yy, xx]

    return fn


def unit(layer, channel: int, y: int | None = None, x: int | None = None) -> Objective:
    """Activation of one unit: channel ``channel`` at map position ``(y, x)``.

    ``y``/``x`` default to the centre unit of the map, ``map_center(H, W) = (H // 2, W // 2)``
    (the unit ``record(..., units="center")`` records), read on
    the map the image actually produces (so it stays the centre unit after jitter crops).
    For non-spatial layers ``(n, C)`` position is ignored.
    """
    c = int(channel)

    def fn(acts):
        a = acts[layer]
        _check_channel(a, layer, c)
        if a.ndim == 2:
            return a[:, c]
        if a.ndim != 4:
            return a.flatten(2)[:, c].mean(-1)
        h, w = a.shape[-2:]
        yy = _center(h) if y is None else int(y)
        xx = _center(w) if x is None else int(x)
        if not (0 <= yy < h and 0 <= xx < w):
            raise UnknownUnitError(f"position (y={yy}, x={xx}) is outside the {h}x{w} map of "
                                   f"layer {_key_name(layer)!r}; pick a position inside it")
        return a[:, c, yy, xx]

    where = "centre" if y is None and x is None else f"{y},{x}"
    return _tagged(Objective(fn, (layer,), f"unit({_key_name(layer)}, {c}, {where})"),
                   ("unit", layer, c, y, x))


def channel(layer, c: int) -> Objective:
    """Mean activation of channel ``c`` over the whole map."""
    c = int(c)

    def fn(acts):
        a = acts[layer]
        _check_channel(a, layer, c)
        return a[:, c].reshape(a.shape[0], -1).mean(1)

    return _tagged(Objective(fn, (layer,), f"channel({_key_name(layer)}, {c})"),
                   ("channel", layer, c, None, None))


def layer(layer) -> Objective:  # noqa: A001 - name mirrors the paper's "layer objective"
    """Mean activation of the whole layer (Bandi & Kinley's layer maximal image)."""

    def fn(acts):
        a = acts[layer]
        return a.reshape(a.shape[0], -1).mean(1)

    return Objective(fn, (layer,), f"layer({_key_name(layer)})")


def direction(layer, vector, y: int | None = None, x: int | None = None) -> Objective:
    """Projection of the activation on a direction in channel space.

    Mean over positions of ``<a[:, :, y, x], v>`` (or at one position when ``y``/``x`` are
    given); ``vector`` is used as given (normalise it first for a unit direction).
    """
    v = torch.as_tensor(vector, dtype=torch.float32).flatten()

    def fn(acts):
        a = acts[layer]
        if a.shape[1] != v.numel():
            raise ArtiphysError(f"direction has {v.numel()} entries but layer "
                                f"{_key_name(layer)!r} has {a.shape[1]} channels")
        vv = v.to(a.device, a.dtype)
        if a.ndim == 2:
            return a @ vv
        if y is not None or x is not None:
            h, w = a.shape[-2:]
            a = a[:, :, _center(h) if y is None else y, _center(w) if x is None else x]
            return a @ vv
        return torch.einsum("nc...,c->n...", a, vv).reshape(a.shape[0], -1).mean(1)

    return Objective(fn, (layer,), f"direction({_key_name(layer)}, {v.numel()}-d)")


def per_image(objectives: Sequence[Objective]) -> Objective:
    """One objective per batch element: image ``i`` is scored by ``objectives[i]`` only.

    The batch size of the optimisation must equal ``len(objectives)``.
    """
    objectives = list(objectives)
    if not objectives:
        raise ArtiphysError("per_image needs at least one objective")
    layers: tuple = ()
    for o in objectives:
        layers = _union(layers, o.layers)
    n = len(objectives)
    fast = _gathered(objectives) if n > 1 else None

    def fn(acts):
        size = next(iter(acts.values())).shape[0]
        if size != n:
            raise ArtiphysError(f"{n} per-image objectives but a batch of {size} images; "
                                f"make the parameterisation with n={n}")
        if fast is not None:
            out = fast(acts)
            if out is not None:
                return out
        return torch.cat([o.fn({k: v[i:i + 1] for k, v in acts.items()})
                          for i, o in enumerate(objectives)])

    names = [o.name for o in objectives]
    label = names[0] if n == 1 else f"per_image[{names[0]}, ..., {names[-1]}] ({n})"
    out = Objective(fn, layers, label)
    object.__setattr__(out, "parts", tuple(objectives))
    return out


def parts(objective: Objective) -> tuple[Objective, ...]:
    """The per-image objectives of a :func:`per_image` objective, else ``(objective,)``."""
    return getattr(objective, "parts", (objective,))


OBJECTIVE_KINDS = {"unit": unit, "channel": channel, "layer": layer}


def for_units(layer_key, units: Sequence[int], kind: str = "channel") -> Objective:
    """``per_image`` objective of kind ``"unit"`` (centre unit), ``"channel"`` or ``"layer"``
    for each channel in ``units``; the parser-facing way the CLI builds objectives."""
    if kind not in OBJECTIVE_KINDS:
        raise ArtiphysError(f"unknown objective kind {kind!r}; use one of {sorted(OBJECTIVE_KINDS)}")
    if kind == "layer":
        return per_image([layer(layer_key) for _ in units])
    make = OBJECTIVE_KINDS[kind]
    return per_image([make(layer_key, int(u)) for u in units])
