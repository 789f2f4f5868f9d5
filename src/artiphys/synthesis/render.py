"""Maximal images for many units at once: recipes, image size, batching.

:func:`render_units` builds one objective per unit (``per_image``), one parameterisation
with one image per unit, and runs :func:`~artiphys.synthesis.optimize.optimize` on batches
of ``batch_size`` units. Loop settings live in a :class:`Recipe` (a frozen value), so a
call reads as "what to render" and the recipe as "how".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from artiphys.errors import ArtiphysError
from artiphys.models.layers import resolve_layer
from artiphys.models.spec import ModelSpec, as_spec, module_device
from artiphys.synthesis import transforms as T
from artiphys.synthesis.geometry import unit_geometry
from artiphys.synthesis.objectives import for_units
from artiphys.synthesis.optimize import Stopper, SynthesisResult, optimize
from artiphys.synthesis.param import make_param


@dataclass(frozen=True)
class Recipe:
    """How to optimise: loop, transforms, regularisers, projections.

    Attributes
    ----------
    steps, lr, optimizer : int, float, str
    pad_px, jitter_px : int
        Mid-gray padding, then random translation by up to ``jitter_px``.
    scales, rotations_deg : tuple of float
        Random rescaling / rotation, one value drawn per step.
    theta_decay : float
        Yosinski L2 decay ``x <- (1 - theta_decay) x`` after each step.
    blur_sigma_px, blur_every : float, int
        Gaussian blur of width ``blur_sigma_px`` every ``blur_every`` steps (pixel only).
    clip : bool
        Clip pixels to the valid range after each step (pixel only).
    norm : float or None
        Fixed L2 norm of each image's parameters.
    tv_weight : float
        Total-variation penalty weight.
    precondition : bool
        Cadena et al. gradient preconditioning ``1/max(1, |f|^0.5)`` (pixel only).
    patience : int or None
        Early stopping on the smoothed batch-mean objective.
    rescue_steps : int
        Redirected-ReLU steps at the start (:mod:`artiphys.synthesis.rescue`), so channels
        silent for the starting image still get a maximal image; 0 switches it off.
    """

    steps: int = 256
    lr: float = 0.05
    optimizer: str = "adam"
    pad_px: int = 0
    jitter_px: int = 0
    scales: tuple = (1.0,)
    rotations_deg: tuple = (0.0,)
    theta_decay: float = 0.0
    blur_sigma_px: float = 0.0
    blur_every: int = 4
    clip: bool = False
    norm: float | None = None
    tv_weight: float = 0.0
    precondition: bool = False
    patience: int | None = None
    rescue_steps: int = 16

    def transform(self):
        parts = []
        if self.pad_px:
            parts.append(T.pad(self.pad_px))
        if self.jitter_px:
            parts.append(T.jitter(self.jitter_px))
        if tuple(self.scales) != (1.0,):
            parts.append(T.scale(self.scales))
        if tuple(self.rotations_deg) != (0.0,):
            parts.append(T.rotate(self.rotations_deg))
        return T.compose(parts) if parts else None

    def projection(self):
        parts = []
        if self.theta_decay:
            parts.append(T.l2_decay(self.theta_decay))
        if self.blur_sigma_px:
            parts.append(T.blur_every(self.blur_sigma_px, self.blur_every))
        if self.clip:
            parts.append(T.clip_pixels())
        if self.norm is not None:
            parts.append(T.norm_constraint(self.norm))
        return T.compose(parts) if parts else None

    def regulariser(self):
        return T.total_variation(self.tv_weight) if self.tv_weight else None

    def preconditioner(self):
        return T.fourier_preconditioner(0.5) if self.precondition else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["scales"], d["rotations_deg"] = list(self.scales), list(self.rotations_deg)
        return d


def yosinski_recipe(**changes) -> Recipe:
    """Pixel-space recipe of Yosinski et al. (2015) as used by Bandi & Kinley: gradient
    steps with L2 decay, Gaussian blur every 4 steps, clipping, small jitter."""
    base = Recipe(lr=0.05, jitter_px=2, theta_decay=0.002, blur_sigma_px=0.5, blur_every=4,
                  clip=True)
    return replace(base, **changes)


def fourier_recipe(**changes) -> Recipe:
    """Fourier/decorrelated recipe with transformation robustness (Olah et al. 2017)."""
    base = Recipe(lr=0.05, pad_px=4, jitter_px=4, scales=(0.95, 1.0, 1.05),
                  rotations_deg=(-5.0, 0.0, 5.0))
    return replace(base, **changes)


def default_recipe(param_kind: str, **changes) -> Recipe:
    return yosinski_recipe(**changes) if param_kind == "pixel" else fourier_recipe(**changes)


def rf_size_px(model: ModelSpec | torch.nn.Module, layer, input_size_px: int | None = None,
               seed: int = 0) -> int:
    """Side (px) of the receptive field of the centre unit of ``layer`` (capped at the
    model's input size; the input size for non-spatial layers). See
    :func:`artiphys.synthesis.geometry.unit_geometry`."""
    spec = as_spec(model)
    size = int(input_size_px or spec.preprocessing.input_size_px)
    geo = unit_geometry(spec, layer, size, seed=seed)
    return int(min(size, geo.rf_size_px)) if geo.is_spatial else size


def render_units(model: ModelSpec | torch.nn.Module, layer, units: Sequence[int], *,
                 objective: str = "channel", param: str = "fourier", color: str = "all",
                 size_px: int | str | None = None, recipe: Recipe | None = None,
                 batch_size: int = 64, seed: int = 0, progress: bool = False,
                 negate: bool = False) -> SynthesisResult:
    """Maximal (or, with ``negate``, most suppressive) images for ``units`` of ``layer``.

    Parameters
    ----------
    model : ModelSpec or nn.Module
    layer : str, LayerRef or nn.Module
    units : sequence of int
        Channels; one image per channel, ``batch_size`` channels per optimisation.
    objective : {"unit", "channel", "layer"}
        Centre unit, channel mean over the map, or layer mean.
    param : {"fourier", "pixel"}
    color : {"all", "gray", "r", "g", "b"}
    size_px : int, "rf" or None
        Image side: the model's input size (None), a number, or ``"rf"`` (the centre
        unit's receptive field, the unit read out at the centre; objective "unit" only).
    recipe : Recipe, optional
        Default :func:`default_recipe` for ``param``.
    seed : int
        Seeds each batch's initial image (``seed + batch index``) and transforms.
    """
    spec = as_spec(model)
    resolve_layer(spec, layer)
    units = [int(u) for u in units]
    if not units:
        raise ArtiphysError("no units to render; give e.g. --units 0-63")
    recipe = recipe or default_recipe(param)
    if size_px is None:
        size = spec.preprocessing.input_size_px
    elif size_px == "rf":
        if objective != "unit":
            raise ArtiphysError("--size rf reads one unit at the image centre; use it with "
                                "--objective unit")
        size = rf_size_px(spec, layer)
    else:
        size = int(size_px)
    dev = module_device(spec.module)
    results = []
    for b, lo in enumerate(range(0, len(units), batch_size)):
        chunk = units[lo:lo + batch_size]
        obj = for_units(layer, chunk, objective)
        if negate:
            obj = -obj
        prm = make_param(param, len(chunk), size, color=color, seed=seed + b, device=dev)
        stopper = Stopper(patience=recipe.patience)
        results.append(optimize(
            spec, obj, prm, steps=recipe.steps, lr=recipe.lr, optimizer=recipe.optimizer,
            transform=recipe.transform(), regulariser=recipe.regulariser(),
            preconditioner=recipe.preconditioner(), projection=recipe.projection(),
            stopper=stopper, seed=seed + b, progress=progress,
            rescue_steps=recipe.rescue_steps))
    settings = dict(results[0].settings)
    settings.update({"layer": resolve_layer(spec, layer).label, "units": units,
                     "objective_kind": objective, "negate": negate, "recipe": recipe.to_dict(),
                     "batch_size": batch_size, "size_px": size})
    steps = max(r.steps_run for r in results)
    trace = np.full((steps, len(units)), np.nan, dtype=np.float32)
    col = 0
    for r in results:
        trace[:r.steps_run, col:col + r.trace.shape[1]] = r.trace
        col += r.trace.shape[1]
    return SynthesisResult(images=torch.cat([r.images for r in results]),
                           final=np.concatenate([r.final for r in results]), trace=trace,
                           objectives=sum((r.objectives for r in results), []),
                           settings=settings, seconds=sum(r.seconds for r in results))
