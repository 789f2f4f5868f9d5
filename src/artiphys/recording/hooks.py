"""Forward hooks that capture layer outputs and stop the forward pass early.

Both readers here go through :class:`artiphys.models.taps.LayerTaps`, so a layer name
means the same tensor everywhere (a shared module's last call; ``name@k``; the virtual
``name:linear``): :func:`forward_to_layers` (defined in :mod:`artiphys.models.taps`) is the
one primitive every stage uses to read whole layer outputs (with gradients, for synthesis
and geometry); :class:`Capture` copies only the requested units for batched recording (the
entry points are in :mod:`artiphys.recording.record`). Hooks are registered in ``try`` and
removed in ``finally``, whatever happens (captum's ``_utils/gradient.py`` pattern).
"""

from __future__ import annotations

import torch
from torch import nn

from artiphys.errors import ArtiphysError, ResponseError
from artiphys.models.layers import LayerRef
from artiphys.models.taps import LayerTaps, forward_to_layers
from artiphys.recording.units import UnitSelector, output_shape, units_for_layer

__all__ = ["Capture", "forward_to_layers", "hooks_left"]


class Capture:
    """Hooks on ``layers`` that copy the selected units of each layer's output.

    Use as a context manager; :meth:`run` does one forward pass and returns, per layer
    label, a tensor ``(n, units)`` on the model's device.

    A module called several times per forward is recorded at its last call (``name@k``:
    call ``k``). The first forward runs to the end and learns how often each module runs;
    later forwards stop right after the last requested layer is final.
    """

    def __init__(self, module: nn.Module, layers: list[LayerRef], units, *,
                 stop_early: bool = True, model=None):
        self.module = module
        self.layers = layers
        self.units = units
        self.stop_early = stop_early
        self.selectors: dict[str, UnitSelector] = {}
        self._cache: dict[tuple[str, tuple], UnitSelector | ArtiphysError] = {}
        self._captured: dict[str, torch.Tensor | ArtiphysError] = {}
        self._taps = LayerTaps(model if model is not None else module, layers, self._take,
                               stop=stop_early)

    # -- hooks --------------------------------------------------------------------------
    def __enter__(self) -> Capture:
        self._taps.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook this capture registered (idempotent)."""
        self._taps.remove()

    def _take(self, i: int, output: torch.Tensor, final: bool, stopping: bool) -> None:
        ref = self.layers[i]
        label = ref.label
        keys = [k for k in (ref.label, ref.name, ref.alias) if k]
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
        try:
            with torch.inference_mode():
                self._taps.forward(x)
        except torch.OutOfMemoryError as exc:
            raise ResponseError(
                f"out of memory running the model on a batch of {x.shape[0]} images on "
                f"{x.device}; lower the batch size (--batch-size)") from exc
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ResponseError(
                f"the model failed on input of shape {tuple(x.shape)}: {first}; check the "
                "input size (--input-size) and the stimuli") from exc
        missing = self._taps.missing()
        if missing:
            raise ResponseError(
                "; ".join(self._taps.why_missing(i) for i in missing)
                + ", so nothing was recorded; choose layers that the forward uses")
        for label, value in self._captured.items():
            if isinstance(value, ArtiphysError):
                raise value
        return dict(self._captured)  # type: ignore[arg-type]


def hooks_left(module: nn.Module) -> dict[str, int]:
    """Forward hooks (and pre-hooks) still registered, per module path; ``{}`` when clean."""
    out = {}
    for name, mod in module.named_modules():
        n = len(mod._forward_hooks) + len(mod._forward_pre_hooks)
        if n:
            out[name] = n
    return out
