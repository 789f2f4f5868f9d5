"""Reading the tensor a layer name means during a real forward pass: one rule for all.

:class:`LayerTaps` registers the forward hooks that deliver, for each :class:`LayerRef`,
the tensor its name means (see :mod:`artiphys.models.layers`): the module's **last** call
for a plain name, call ``k`` for ``name@k``, and for ``name:linear`` the virtual tensor
computed from its hooked sources (:mod:`artiphys.models.virtual`). Recording's
``Capture`` and :func:`forward_to_layers` (synthesis, TI, geometry) are both built on it,
so every stage reads the same tensor for the same name.

Knowing which call is the last needs the number of calls of each module per forward
pass. It is learnt from the first forward pass that runs to the end (cached per model,
module and input shape; a count learnt at one input shape serves other shapes until a
full pass at that shape is seen): until then every call of the module is delivered
provisionally (later calls replace earlier ones) and the pass is not stopped early;
afterwards only the last call is delivered and the pass stops as soon as every requested
layer is final. A pass that fails *after* every requested layer has been delivered (a
fully connected head run on a canvas wider than the model's input, during that first
pass) gives those layers, as a stopped pass would; its call counts are not learnt.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence

import torch
from torch import nn

from artiphys.errors import UnknownLayerError
from artiphys.models.layers import LayerRef, resolve_layer
from artiphys.models.spec import ModelSpec, as_spec

__all__ = ["LayerTaps", "StopForward", "forward_to_layers"]

Deliver = Callable[[int, torch.Tensor, bool, bool], None]

# root module -> {module path: {input shape without batch: calls per forward pass}}
_CALL_COUNTS: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


class StopForward(BaseException):
    """Raised from a hook once every requested layer is final, to skip the rest of the
    forward. A BaseException so that a model's own ``except Exception`` cannot swallow it."""


class _Tap:
    """One layer: its sources (module, call, role) and how to make its tensor from them."""

    def __init__(self, index: int, ref: LayerRef, spec: ModelSpec):
        self.index = index
        self.ref = ref
        self.program = None
        if ref.view is None:
            self.sources = [(ref.path, ref.call, "output")]
        else:
            from artiphys.models.receptive_field import trace_geometry
            from artiphys.models.virtual import linear_program

            traced = trace_geometry(spec)
            self.program = linear_program(traced, spec.module, ref.path, ref.call, ref.label)
            self.sources = [(s.path, s.call, s.role) for s in self.program.sources]
        self.values: list = [None] * len(self.sources)
        self.final = False
        self.delivered = False


class LayerTaps:
    """Forward hooks delivering, per LayerRef, the tensor its name means (see module doc).

    ``deliver(i, tensor, final, stopping)`` is called for layer ``i``: ``final`` False for a
    provisional value (a later call of the module may replace it), ``stopping`` True when
    the forward stops right after (so the tensor cannot be changed by a later in-place op).
    Use as a context manager around one or more forward passes, each inside
    :meth:`forward`.
    """

    def __init__(self, model: ModelSpec | nn.Module, refs: Sequence[LayerRef], deliver: Deliver,
                 *, stop: bool = True):
        self.spec = as_spec(model)
        self.root = self.spec.module
        self.taps = [_Tap(i, ref, self.spec) for i, ref in enumerate(refs)]
        self.deliver = deliver
        self.stop = stop
        self._handles: list = []
        self._calls: dict[str, int] = {}
        self._shape: tuple = ()
        self._by_module: dict[str, list[tuple[_Tap, int]]] = {}
        for tap in self.taps:
            for j, (path, _, role) in enumerate(tap.sources):
                self._by_module.setdefault(path if role == "output" else "<input>", []).append(
                    (tap, j))

    # -- hooks --------------------------------------------------------------------------
    def __enter__(self) -> LayerTaps:
        try:
            for key in self._by_module:
                if key == "<input>":
                    self._handles.append(self.root.register_forward_pre_hook(self._input_hook))
                else:
                    module = self.root.get_submodule(key) if key else self.root
                    self._handles.append(module.register_forward_hook(self._make_hook(key)))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook (idempotent)."""
        while self._handles:
            self._handles.pop().remove()

    def _known_calls(self, path: str) -> int | None:
        by_shape = _CALL_COUNTS.get(self.root, {}).get(path, {})
        if self._shape in by_shape:
            return by_shape[self._shape]
        seen = set(by_shape.values())
        return seen.pop() if len(seen) == 1 else None

    def _make_hook(self, path: str):
        def hook(module, inputs, output):
            k = self._calls.get(path, 0)
            self._calls[path] = k + 1
            self._receive(path, k, output)

        return hook

    def _input_hook(self, module, inputs):
        if self._calls.get("<input>", 0) == 0:  # the model's own call, not a nested one
            self._calls["<input>"] = 1
            self._receive("<input>", 0, inputs[0])

    def _receive(self, key: str, k: int, value) -> None:
        if isinstance(value, (tuple, list)):
            value = value[0]
        known = self._known_calls(key)
        for tap, j in self._by_module[key]:
            _, call, _ = tap.sources[j]
            if call is None:  # the last call
                if known is not None and k != known - 1:
                    continue
                final = known is not None
            elif call != k:
                continue
            else:
                final = True
            if tap.program is None:
                tap.final = final
                tap.delivered = True
                stopping = self.stop and all(t.final for t in self.taps)
                self.deliver(tap.index, value, final, stopping)
            else:
                tap.values[j] = value.clone()
                if all(v is not None for v in tap.values):
                    tap.final = tap.delivered = True
                    stopping = self.stop and all(t.final for t in self.taps)
                    self.deliver(tap.index, tap.program(tap.values), True, stopping)
        if self.stop and self.taps and all(t.final for t in self.taps):
            raise StopForward

    # -- one forward pass ---------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> bool:
        """Run the model on ``x``; True when it ran to the end (call counts learnt)."""
        self._calls = {}
        self._shape = tuple(x.shape[1:])
        for tap in self.taps:
            tap.values = [None] * len(tap.sources)
            tap.final = tap.delivered = False
        try:
            self.root(x)
        except StopForward:
            return False
        except Exception:
            if self.taps and all(t.delivered for t in self.taps):
                return False  # failed past every requested layer: as if stopped there
            raise
        counts = _CALL_COUNTS.setdefault(self.root, {})
        for key in self._by_module:
            counts.setdefault(key, {})[self._shape] = self._calls.get(key, 0)
        return True

    def missing(self) -> list[int]:
        """Layers that got nothing in the last forward pass."""
        return [t.index for t in self.taps if not t.delivered]

    def why_missing(self, i: int) -> str:
        """Why layer ``i`` got nothing: it does not run, or not that many times."""
        tap = self.taps[i]
        path, call, _ = tap.sources[0] if tap.program is None else (tap.ref.path, None, "")
        n = self._calls.get(path, 0)
        if tap.program is None and call is not None and n:
            return (f"layer {tap.ref.label!r}: module {path!r} runs {n} time(s) per forward "
                    f"pass; number its calls @0..@{n - 1}")
        return (f"layer {tap.ref.label!r} did not run in the model's forward pass (it produced "
                "no output)")


def forward_to_layers(model: ModelSpec | nn.Module, inputs: torch.Tensor, layers: Sequence,
                      *, stop: bool = True) -> dict:
    """Run ``model`` on ``inputs`` (already normalised) and return ``{key: output}``.

    Parameters
    ----------
    model : ModelSpec or nn.Module
    inputs : Tensor ``(n, 3, H, W)``
        Model input (gradients flow through when it requires grad).
    layers : sequence
        Layer keys (layer name - module path or alias, with ``@call`` / ``:linear`` -,
        LayerRef or module); the returned dict uses them.
    stop : bool
        Stop the forward pass as soon as every layer has been captured (from the second
        pass on for a model and input shape, see :mod:`artiphys.models.taps`).

    Notes
    -----
    A module called several times (a shared ``nn.ReLU``) is read at its last call, as
    recording reads it; ``name@k`` reads call ``k``. Outputs are cloned when the forward
    pass goes on past them, so later in-place operations cannot change what was captured.
    Differentiable.

    Raises
    ------
    UnknownLayerError
        When a layer does not exist, or exists but was not called by the forward pass.
    """
    spec = as_spec(model)
    keys = list(dict.fromkeys(layers))
    refs = [resolve_layer(spec, key) for key in keys]
    captured: dict = {}

    def deliver(i, value, final, stopping):
        # a later in-place op (torchvision's ReLU(inplace=True)) would overwrite a kept
        # reference: clone unless the forward pass ends right here
        captured[keys[i]] = value if stopping or refs[i].view is not None else value.clone()

    with LayerTaps(spec, refs, deliver, stop=stop) as taps:
        taps.forward(inputs)
        missing = taps.missing()
        if missing:
            raise UnknownLayerError(
                "; ".join(taps.why_missing(i) for i in missing)
                + "; pick a module the model actually calls (see `artiphys layers MODEL`)")
    return captured
