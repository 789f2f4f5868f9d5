"""Control models: an untrained twin and a weight-shuffled twin of a model.

Both return a new :class:`~artiphys.models.spec.ModelSpec` (same name, preprocessing and
aliases, a new module) and never change the model they are given.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import replace

import torch
from torch import nn

from artiphys.models.spec import ModelSpec, as_spec


def reinitialize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Re-draw ``module``'s parameters in place with each submodule's ``reset_parameters()``,
    under ``torch.manual_seed(seed)`` (the global generator's state is restored after).

    Warns, naming them, about parameters no submodule resets (they keep their values).
    """
    reset: set[int] = set()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(int(seed))
        for sub in module.modules():
            fn = getattr(sub, "reset_parameters", None)
            if callable(fn):
                fn()
                reset.update(id(p) for p in sub.parameters(recurse=False))
    kept = [n for n, p in module.named_parameters() if id(p) not in reset]
    if kept:
        shown = ", ".join(kept[:5]) + (f", ... ({len(kept)} in all)" if len(kept) > 5 else "")
        warnings.warn(f"re-initialisation left parameters without reset_parameters() unchanged: "
                      f"{shown}", stacklevel=2)
    return module


def untrained_twin(model: ModelSpec | nn.Module, seed: int = 0) -> ModelSpec:
    """The same architecture with random initial weights drawn under ``seed``.

    Models loaded by name are rebuilt by the registry with ``pretrained=False`` (so each
    architecture gets its own initialisation scheme, e.g. torchvision's); other modules
    are copied and re-initialised with :func:`reinitialize`. Condition ``"untrained"``.
    """
    from artiphys.models.registry import load_model

    spec = as_spec(model)
    if spec.name != "custom":
        twin = load_model(spec.name, pretrained=False, seed=seed)
        return replace(twin, preprocessing=spec.preprocessing, aliases=dict(spec.aliases))
    module = reinitialize(copy.deepcopy(spec.module), seed).eval()
    return replace(spec, module=module, condition="untrained", weights_path=None,
                   weights_sha256=None, seed=seed, aliases=dict(spec.aliases))


def weight_shuffled_twin(model: ModelSpec | nn.Module, seed: int = 0) -> ModelSpec:
    """A copy whose every parameter tensor (each layer's weight and bias) has its elements
    randomly permuted, with permutations drawn from a generator seeded with ``seed``.

    Each tensor keeps its shape and exact multiset of values, so per-layer weight
    statistics are preserved while learned structure is destroyed. Buffers (batch-norm
    running statistics) are left as they are. Condition ``"weight-shuffled"``; the
    provenance keeps the source weights file.
    """
    spec = as_spec(model)
    module = copy.deepcopy(spec.module)
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for _, p in module.named_parameters():
            flat = p.reshape(-1)
            perm = torch.randperm(flat.numel(), generator=gen).to(p.device)
            p.copy_(flat[perm].view_as(p))
    return replace(spec, module=module.eval(), condition="weight-shuffled", seed=seed,
                   aliases=dict(spec.aliases))


TWINS = {"untrained": untrained_twin, "weight-shuffle": weight_shuffled_twin}
"""Control name (as on the command line) -> twin maker ``f(model, seed)``; the twins'
conditions are ``"untrained"`` and ``"weight-shuffled"``."""
