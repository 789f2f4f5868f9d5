"""The fixed-norm optimisation loop's settings, shared by diverse sets and textures.

Cadena et al. (2018) optimise images ``channel_mean + p`` with ``||p||`` held fixed, from white
noise, with the gradient preconditioned by ``1 / sqrt(f)``. :class:`LoopRecipe` holds those
settings; :func:`loop_settings` turns one into the keyword arguments of
:func:`artiphys.synthesis.optimize.optimize`; :func:`white_noise_param` is the seeded start.
:func:`auto_batches` sizes the optimisation batch to the memory available.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from artiphys.errors import ArtiphysError
from artiphys.models.spec import ModelSpec, as_spec, module_device
from artiphys.recording.hooks import forward_to_layers
from artiphys.synthesis.param import ImageParam
from artiphys.synthesis.transforms import fourier_preconditioner

PAPER_LR = 0.1 / 255
"""Adam learning rate 0.1 on the 0-255 pixel scale, expressed on the [0, 1] scale."""

OPTIMIZERS = ("normalized_sgd", "adam")


def _check_optimizer(name: str) -> None:
    if name not in OPTIMIZERS:
        raise ArtiphysError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {name!r}")


@dataclass(frozen=True)
class LoopRecipe:
    """Optimisation-loop settings shared by diverse sets and textures (see
    :func:`loop_settings`): at most ``steps`` steps, early stop after ``patience`` steps
    without a rise, the optimiser and its step sizes, the 1/f^exponent gradient
    preconditioning, the seed, and the channels-last layout."""

    steps: int = 1000
    lr: float = PAPER_LR
    patience: int | None = 100
    precondition_exponent: float = 0.5
    optimizer: str = "normalized_sgd"
    step_fraction: float = 0.1
    final_step_fraction: float = 0.005
    seed: int = 0
    channels_last: bool = True

    def __post_init__(self):
        _check_optimizer(self.optimizer)


def loop_settings(recipe, norm: float, group_size: int = 1,
                  param: torch.Tensor | None = None) -> dict:
    """``optimize`` keyword arguments (optimizer, lr, preconditioner, channels_last) for a recipe.

    ``"adam"``: Adam with ``recipe.lr`` on the preconditioned gradient (the paper).
    ``"normalized_sgd"``: projected gradient ascent on the spheres ``||x - mean|| = norm``.
    The gradient ``g`` becomes ``T P T g``: ``T`` removes the component along the image
    ``param`` (the radial part, which the norm projection would undo anyway, so every step
    moves the image *on* the sphere), ``P`` is the preconditioner. Projecting *before* ``P``
    too makes the fixed points the true constrained optima (``T g = 0``); with ``T P g``
    alone they are the images with ``P g`` along ``x``, e.g. a Gabor cell's optimum blurred
    by ``P`` (98.9% instead of 100% of the energy in the cell's Gabor pair, and less as a
    diversity force adds tangential gradient). The step is then divided by the
    root-mean-square gradient norm of the image's group
    (``group_size`` consecutive images: one diverse set, whose images keep their relative
    step sizes); steps have length ``step_fraction x norm`` at step 0 decaying geometrically to
    ``final_step_fraction x norm`` at the last step (the min-distance term otherwise keeps
    swapping its closest pair at a fixed step length).
    """
    base = (fourier_preconditioner(recipe.precondition_exponent)
            if recipe.precondition_exponent else None)
    layout = {"channels_last": bool(recipe.channels_last)}
    if recipe.optimizer == "adam":
        return {"optimizer": "adam", "lr": float(recipe.lr), "preconditioner": base, **layout}

    decay = (float(recipe.final_step_fraction) / float(recipe.step_fraction)) ** (
        1.0 / max(1, int(recipe.steps) - 1))

    def tangential(grad):
        if param is None or param.shape != grad.shape:
            return grad
        x = param.detach().flatten(1)
        g = grad.flatten(1)
        coef = (g * x).sum(1, keepdim=True) / x.pow(2).sum(1, keepdim=True).clamp_min(1e-30)
        return (g - coef * x).view_as(grad)

    def normalised(grad, step=0):
        if base is not None:
            grad = tangential(base(tangential(grad), step))
        else:
            grad = tangential(grad)
        sq = grad.flatten(1).pow(2).sum(1).view(-1, group_size).mean(1)
        scale = sq.sqrt().clamp_min(1e-30).repeat_interleave(group_size) / decay ** step
        return grad / scale.view(-1, *([1] * (grad.ndim - 1)))

    return {"optimizer": "sgd", "lr": float(recipe.step_fraction) * float(norm),
            "preconditioner": normalised, **layout}


def channel_mean(spec: ModelSpec) -> torch.Tensor:
    """The model's preprocessing mean as RGB ``(1, 3, 1, 1)`` (the image's "zero")."""
    mean = torch.tensor(spec.preprocessing.mean, dtype=torch.float32).view(1, 3, 1, 1)
    return mean.flip(1) if spec.preprocessing.channel_order == "BGR" else mean


def white_noise_param(b: int, size: int, norm: float, mean: torch.Tensor, seed: int,
                      device) -> ImageParam:
    """``b`` images ``mean + p``, ``p`` white noise (seeded) scaled to L2 norm ``norm``."""
    g = torch.Generator().manual_seed(int(seed))
    p = torch.randn(b, 3, size, size, generator=g)
    p = p * (norm / p.flatten(1).norm(dim=1).clamp_min(1e-12)).view(-1, 1, 1, 1)
    p = p.to(device).requires_grad_(True)
    m = mean.to(device)

    def image_fn():
        return m + p

    return ImageParam([p], image_fn, b, size, {"kind": "pixel", "init": "white_noise",
                                                "norm": float(norm), "seed": int(seed),
                                                "zero": "channel_mean", "clip": False})


# ---- batch sizing ---------------------------------------------------------------------------

TRAINING_MEMORY_FACTOR = 4
"""Bytes of an optimisation step per byte of forward activations (saved activations, their
gradients, the optimiser's and the loop's copies): a deliberately generous estimate."""


def activation_bytes_per_image(model: ModelSpec | torch.nn.Module, layers: Sequence,
                               size_px: int) -> int:
    """Bytes of every module output computed for one ``size_px`` image up to ``layers``."""
    spec = as_spec(model)
    dev = module_device(spec.module)
    total = 0

    def hook(_module, _inputs, output):
        nonlocal total
        if torch.is_tensor(output):
            total += output.numel() * output.element_size()

    leaves = [m for m in spec.module.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            x = spec.preprocessing.normalise(
                channel_mean(spec).expand(1, 3, size_px, size_px).to(dev))
            forward_to_layers(spec, x, list(layers))
    finally:
        for h in handles:
            h.remove()
    return int(total)


def _free_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0]) // 2
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")) // 4
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def auto_batches(spec, layers: Sequence, size: int, images_per_group: int, n_units: int,
                 n_lambdas: int, budget: int | None) -> tuple[int, int]:
    """``(batch_units, lambda_batch)``: the whole sweep of ``n_units x n_lambdas`` groups of
    ``images_per_group`` images if it fits ``budget`` bytes (default: half the free GPU
    memory, a quarter of the available RAM on CPU), else units, then lambdas, split."""
    n = images_per_group
    per_image = TRAINING_MEMORY_FACTOR * activation_bytes_per_image(spec, layers, size)
    budget = int(budget if budget is not None
                 else _free_memory_bytes(module_device(spec.module)))
    images = max(1, budget // max(1, per_image))
    if images >= n_units * n_lambdas * n:
        return n_units, n_lambdas
    if images >= n_lambdas * n:
        return images // (n_lambdas * n), n_lambdas
    return 1, max(1, images // n)


__all__ = ["PAPER_LR", "OPTIMIZERS", "LoopRecipe", "loop_settings", "channel_mean",
           "white_noise_param", "TRAINING_MEMORY_FACTOR", "activation_bytes_per_image",
           "auto_batches"]
