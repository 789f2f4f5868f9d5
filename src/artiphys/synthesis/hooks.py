"""Run a model only as far as the layers an objective needs, with hooks that cannot leak.

Forward hooks are registered inside ``try`` and removed in ``finally`` (captum's
``_utils/gradient.py`` pattern). Once every requested layer has produced its output the
last hook raises a private sentinel exception, so the rest of the network is never run
(a layer3 objective on resnet18 skips layer4 and the classifier).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from artiphys.errors import UnknownLayerError
from artiphys.models.layers import resolve_layer
from artiphys.models.spec import ModelSpec, as_spec


class _StopForward(Exception):
    """Raised by the last hook once every requested activation has been captured."""


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
    A module called more than once in a forward pass (a shared ``nn.ReLU``) is captured at
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
            for k in module_keys:
                captured[k] = out
            if stop and len(done) == len(by_module):
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
