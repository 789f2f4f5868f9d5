"""Forward hooks that capture layer outputs and stop the forward pass early.

:func:`forward_to_layers` is the one primitive every stage uses to read whole layer
outputs (with gradients, for synthesis and geometry); :class:`Capture` copies only the
requested units for batched recording (the entry points are in
:mod:`artiphys.recording.record`). Hooks are registered in ``try`` and removed in
``finally``, whatever happens (captum's ``_utils/gradient.py`` pattern).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch
from torch import nn

from artiphys.errors import ArtiphysError, ResponseError, UnknownLayerError
from artiphys.models.layers import LayerRef, resolve_layer
from artiphys.models.spec import ModelSpec, as_spec
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


def forward_to_layers(model: ModelSpec | nn.Module, inputs: torch.Tensor, layers: Sequence,
                      *, stop: bool = True) -> dict:
    """Run ``model`` on ``inputs`` (already normalised) and return ``{key: output}``.

    Parameters
    ----------
    model : ModelSpec or nn.Module
    inputs : Tensor ``(n, 3, H, W)``
        Model input (gradients flow through when it requires grad).
    layers : sequence
        Layer keys (module path, alias, LayerRef or module); the returned dict uses them.
    stop : bool
        Stop the forward pass as soon as every layer has been captured.

    Notes
    -----
    Outputs are cloned when the forward pass goes on past them, so later in-place
    operations cannot change what was captured. A module called more than once in a forward pass (a shared ``nn.ReLU``) is captured at
    its first call; address the call you mean through a module that is not shared.

    Raises
    ------
    UnknownLayerError
        When a layer does not exist, or exists but was not called by the forward pass.
    """
    spec = as_spec(model)
    keys = list(dict.fromkeys(layers))
    by_module: dict[nn.Module, list] = {}
    for key in keys:
        by_module.setdefault(resolve_layer(spec, key).module, []).append(key)
    captured: dict = {}
    done: set[int] = set()
    handles = []

    def make_hook(module_keys):
        def hook(module, _inp, out):
            if id(module) in done:  # a shared module called again: keep its first output
                return None
            done.add(id(module))
            if isinstance(out, (tuple, list)):
                out = out[0]
            last = stop and len(done) == len(by_module)
            # A later in-place op (torchvision's ReLU(inplace=True)) would overwrite a kept
            # reference; clone unless the forward pass ends right here. Differentiable.
            kept = out if last else out.clone()
            for k in module_keys:
                captured[k] = kept
            if last:
                raise _StopForward
            return None
        return hook

    try:
        for module, module_keys in by_module.items():
            handles.append(module.register_forward_hook(make_hook(module_keys)))
        try:
            spec.module(inputs)
        except _StopForward:
            pass
    finally:
        for h in handles:
            h.remove()
    missing = [k for k in keys if k not in captured]
    if missing:
        raise UnknownLayerError(
            f"layer(s) {', '.join(map(str, missing))} produced no output in the forward pass; "
            "pick a module the model actually calls (see `artiphys layers MODEL`)")
    return captured
