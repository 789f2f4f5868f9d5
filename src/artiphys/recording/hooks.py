"""Forward hooks that copy the requested units of each layer and stop the forward early.

Internal: the public entry points are in :mod:`artiphys.recording.record`. Hooks are
registered when a :class:`Capture` is entered and removed when it exits, whatever happens
(captum's ``_utils/gradient.py`` pattern).
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn

from artiphys.errors import ArtiphysError, ResponseError
from artiphys.models.layers import LayerRef
from artiphys.recording.units import UnitSelector, output_shape, units_for_layer


class _StopForward(BaseException):
    """Raised from the hook of the last layer to fire, to skip the rest of the forward.

    A BaseException so that a model's own ``except Exception`` cannot swallow it.
    """


class Capture:
    """Hooks on ``layers`` that copy the selected units of each layer's output.

    Use as a context manager; :meth:`run` does one forward pass and returns, per layer
    label, a tensor ``(n, units)`` on the model's device.

    The first forward runs to the end and notes the order in which the layers fire (and
    how often: a module called several times per forward is recorded at its last call);
    later forwards stop right after the last requested layer has fired.
    """

    def __init__(self, module: nn.Module, layers: list[LayerRef], units, *,
                 stop_early: bool = True):
        self.module = module
        self.layers = layers
        self.units = units
        self.stop_early = stop_early
        self.selectors: dict[str, UnitSelector] = {}
        self._cache: dict[tuple[str, tuple], UnitSelector | ArtiphysError] = {}
        self._handles: list = []
        self._captured: dict[str, torch.Tensor | ArtiphysError] = {}
        self._calls: Counter = Counter()
        self._stop: tuple[str, int] | None = None
        self._last: tuple[str, int] | None = None

    # -- hooks --------------------------------------------------------------------------
    def __enter__(self) -> Capture:
        try:
            for ref in self.layers:
                self._handles.append(ref.module.register_forward_hook(self._make_hook(ref)))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook this capture registered (idempotent)."""
        while self._handles:
            self._handles.pop().remove()

    def _make_hook(self, ref: LayerRef):
        label = ref.label
        keys = [k for k in (ref.label, ref.name, ref.alias) if k]

        def hook(module, inputs, output):
            self._calls[label] += 1
            call = (label, self._calls[label])
            self._last = call
            try:
                shape = output_shape(output, label)
                sel = self._cache.get((label, shape))
                if sel is None:
                    try:
                        sel = UnitSelector(units_for_layer(self.units, keys), shape, label,
                                           spatial=output.ndim == 4)
                    except ArtiphysError as exc:
                        sel = exc
                    self._cache[(label, shape)] = sel
                if isinstance(sel, ArtiphysError):
                    raise sel
                self._captured[label] = sel.take(output)
                self.selectors[label] = sel
            except ArtiphysError as exc:  # kept: a later call of the same module may fit
                self._captured[label] = exc
            if call == self._stop:
                raise _StopForward

        return hook

    # -- forward ------------------------------------------------------------------------
    def run(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """One forward pass on model input ``x``; per layer label a tensor ``(n, units)``.

        Raises
        ------
        ResponseError
            When a requested layer does not run in the model's forward, or the forward
            fails (e.g. an input too small for the network).
        UnknownUnitError
            When the requested units do not exist in a layer's output.
        """
        self._captured = {}
        self._calls = Counter()
        self._last = None
        try:
            with torch.inference_mode():
                self.module(x)
        except _StopForward:
            pass
        except torch.OutOfMemoryError as exc:
            raise ResponseError(
                f"out of memory running the model on a batch of {x.shape[0]} images on "
                f"{x.device}; lower the batch size (--batch-size)") from exc
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ResponseError(
                f"the model failed on input of shape {tuple(x.shape)}: {first}; check the "
                "input size (--input-size) and the stimuli") from exc
        missing = [ref.label for ref in self.layers if ref.label not in self._captured]
        if missing:
            raise ResponseError(
                f"layer(s) {', '.join(map(repr, missing))} did not run in the model's forward "
                "pass, so nothing was recorded; choose layers that the forward uses")
        for label, value in self._captured.items():
            if isinstance(value, ArtiphysError):
                raise value
        if self._stop is None and self.stop_early:
            self._stop = self._last
        return dict(self._captured)  # type: ignore[arg-type]


def hooks_left(module: nn.Module) -> dict[str, int]:
    """Forward hooks (and pre-hooks) still registered, per module path; ``{}`` when clean."""
    out = {}
    for name, mod in module.named_modules():
        n = len(mod._forward_hooks) + len(mod._forward_pre_hooks)
        if n:
            out[name] = n
    return out

