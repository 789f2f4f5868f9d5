"""Diverse feature visualisations (Cadena et al. 2018).

For one unit (channel ``c`` of ``layer`` read at the map position centred on an image of the
unit's receptive-field size), a batch of ``n`` images is optimised to maximise

    L = sum_i a_i + alpha sum_i log P(x_i) + lambda min_{i != j} d*(x_i, x_j)       (eq. 1)

where ``a_i`` is the unit's activation to image ``i`` and ``d*`` the *seen* distance: the
Euclidean distance between the images' activations in the layer feeding the unit's own
convolution (eq. 2, at the positions that convolution reads) or, with ``distance="pixel"``,
between the images themselves, weighted by how well the unit sees the less-seen image of
the pair (:mod:`artiphys.synthesis.diverse_measures`; ``distance_weight="none"`` gives the
paper's plain ``d``). A whole sweep (units x lambdas x images) runs as *one* batch of the
shared optimisation loop (:func:`artiphys.synthesis.optimize.optimize`): image ``i`` of
group ``g`` (one unit, one lambda) gets the score
``a_i + alpha log P(x_i) + (lambda_g / n) min_{j != k in g} d*_jk``, which sums to eq. 1 per
group, and groups do not interact.

Settings of the paper (and where we differ):

* images are ``channel_mean + p`` ("zero = channel mean"), ``p`` initialised as white
  noise (seeded by ``recipe.seed``) and held at a fixed L2 norm (default half the mean norm
  of natural-image patches of the same size,
  :func:`artiphys.stimuli.patch_norm.natural_patch_norm`); not clipped while optimising;
* gradients preconditioned by ``1 / max(1, |f|^0.5)`` (cycles per image) normalised to mean
  1 (:func:`artiphys.synthesis.transforms.fourier_preconditioner`);
* optimiser: the paper used Adam (learning rate 0.1 on the 0-255 pixel scale of their VGG,
  i.e. ``0.1 / 255`` here, :data:`PAPER_LR`; ``optimizer="adam"``). Under a fixed-norm
  projection Adam's per-pixel step normalisation fills the image with a sign pattern of
  the gradient: on the energy cell it ends on a full-field square-wave grating reaching
  ~22% of the best attainable response (0.10 vs 0.45). The default is therefore
  ``"normalized_sgd"``: projected gradient ascent on the norm sphere
  (:func:`artiphys.synthesis.loop.loop_settings`), which reaches the optimum (0.45).
  Up to ``steps`` (1000) or until the objective stops rising (``Stopper(patience)``);
* lambda in ``0, 0.02, 0.04, ..., 20.48`` (:data:`PAPER_LAMBDAS`); per unit the largest
  lambda such that the mean activation at it *and every smaller lambda* stays
  ``>= threshold x`` the mean activation at lambda = 0 (0.9 for networks, 0.8 for toy
  complex cells);
* the lambda = 0 set is the reference every ratio divides by: it is restarted from the
  sweep's most driving images (:func:`restart_reference`), so no lambda's set drives the
  unit harder; ``reference_excess`` (max over lambdas of the mean activation / the
  reference's, minus 1) records that it holds (0);
* diversity gain = min seen distance at the chosen lambda / at lambda = 0, the latter
  floored at ``gain_floor`` (5%) of the feature norm (finite when the lambda = 0 images
  coincide; ``lambda0_collapsed`` marks those units);
* alpha = 0 by default: the paper's PixelCNN++ prior is not available here (see
  :mod:`artiphys.synthesis.priors` for a 1/f^2 Gaussian prior and user priors).

The "preceding layer" is the input of the unit's own convolution
(:func:`artiphys.models.graph.preceding_layer`; for VGG conv3_1 pool2, for a SqueezeNet
expand conv the fire module's squeeze activation). When the convolution reads the image
itself, or the graph cannot be traced, pixel distance is used. By default
(``feature_window="unit"``) only the positions of that map the unit's own convolution reads
at the unit are compared (:func:`artiphys.models.graph.feature_window`; the whole 3x3
squeeze map of a SqueezeNet expand3x3 unit at its RF size, the centre only for the 1x1
pooling of the toy cells); ``"full"`` compares the whole map as the paper did, which also
rewards differences at positions the unit never reads. Pixel distance is a poor default for
luminance cells: images can move apart in colour, which the cell ignores.

The invariance indices (section 4.4-4.5) are in :mod:`artiphys.synthesis.invariance`, the
loop settings in :mod:`artiphys.synthesis.loop`, saving in :mod:`artiphys.synthesis.save`;
this module re-exports their public names.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import xarray as xr

from artiphys.errors import ArtiphysError, UnknownUnitError
from artiphys.models.graph import feature_window, pre_rectifier_layer, preceding_layer
from artiphys.models.layers import resolve_layer
from artiphys.models.receptive_field import GeometryError, layer_geometry
from artiphys.models.spec import ModelSpec, as_spec, module_device
from artiphys.models.units import map_center
from artiphys.recording.hooks import forward_to_layers
from artiphys.stimuli.patch_norm import default_natural_folder, natural_patch_norm
from artiphys.synthesis.diverse_measures import (
    SetMeasures,
    choose_lambda,
    measure_sets,
    min_pairwise_distance,
    seen_weights,
    sets_dataset,
)
from artiphys.synthesis.invariance import (
    TEXTURE_WINDOW_RATIO,
    TextureRecipe,
    chosen_templates,
    invariance_indices,
    linear_combination_index,
    phase_invariance_index,
    texture_window,
    unit_activation,
)
from artiphys.synthesis.loop import (
    OPTIMIZERS,
    PAPER_LR,
    TRAINING_MEMORY_FACTOR,
    LoopRecipe,
    activation_bytes_per_image,
    auto_batches,
    channel_mean,
    loop_settings,
    white_noise_param,
)
from artiphys.synthesis.objectives import Objective
from artiphys.synthesis.optimize import Stopper, optimize
from artiphys.synthesis.param import ImageParam
from artiphys.synthesis.priors import prior_name
from artiphys.synthesis.save import save_diverse
from artiphys.synthesis.transforms import norm_constraint

PAPER_LAMBDAS = (0.0,) + tuple(round(0.02 * 2 ** k, 2) for k in range(11))
"""0 and 0.02 * 2^k up to 20.48 (Cadena et al. 2018, section 3.2)."""

DISTANCE_WEIGHTS = ("activation", "none")


@dataclass(frozen=True)
class DiverseRecipe(LoopRecipe):
    """How to optimise a diverse set (defaults: Cadena et al. 2018, see module doc).

    Attributes
    ----------
    n_images : int
        Images per set.
    lambdas : tuple of float
        Diversity weights swept in one batch; must contain 0.
    threshold : float
        Fraction of the lambda = 0 mean activation the chosen lambda must keep.
    alpha : float
        Weight of the image prior (needs ``prior``).
    distance : {"features", "pixel"}
        Distance in the preceding layer's activations or between the images.
    feature_window : {"unit", "full"}
        Preceding-layer positions the distance uses: those the unit's own convolution reads
        at the unit (:func:`feature_window`; default), or the whole map (the paper's
        "flattened over space", which also rewards differences the unit never sees).
    steps, lr, patience : int, float, int or None
        Adam steps (at most), learning rate ([0, 1] pixel scale), early-stop patience.
    precondition_exponent : float
        Gradient spectrum multiplied by ``1 / max(1, |f|^exponent)``; 0 switches it off.
    seed : int
        Seeds the white-noise initialisation (different seeds, different starts and sets).
    channels_last : bool
        Run the loop's convolutions in channels-last memory format (faster on CPU; see
        :func:`artiphys.synthesis.optimize.optimize`).
    distance_weight : {"activation", "none"}
        ``"activation"``: a pair's distance counts as far as the unit sees the less-seen
        image of the pair (:func:`~artiphys.synthesis.diverse_measures.seen_weights`, with
        ``threshold``); ``"none"``: the paper's plain distance.
    reference_restart : bool
        Restart the lambda = 0 set from the ``n_images`` most driving images of the whole
        sweep and optimise it at lambda = 0 (:func:`restart_reference`), so that no lambda's
        mean activation exceeds the reference's.
    reference_step_fraction : float
        First step of that restart as a fraction of the norm (decaying to
        ``final_step_fraction``): small, so the images polish their optimum, not leave it.
    gain_floor : float
        The diversity gain divides by ``max(d(0), gain_floor x rms(0))``: lambda = 0 min
        distances under this fraction of the feature norm count as coincident images.
    """

    n_images: int = 6
    lambdas: tuple = PAPER_LAMBDAS
    threshold: float = 0.9
    alpha: float = 0.0
    distance: str = "features"
    feature_window: str = "unit"
    distance_weight: str = "activation"
    reference_restart: bool = True
    reference_step_fraction: float = 0.02
    gain_floor: float = 0.05

    def __post_init__(self):
        super().__post_init__()
        if self.n_images < 2:
            raise ArtiphysError(f"a diverse set needs n_images >= 2, got {self.n_images}")
        lams = tuple(float(v) for v in self.lambdas)
        if not lams or 0.0 not in lams or min(lams) < 0:
            raise ArtiphysError("lambdas must be >= 0 and include 0 (activations and distances "
                                "are normalised by their value at lambda = 0)")
        object.__setattr__(self, "lambdas", tuple(sorted(set(lams))))
        if self.feature_window not in ("unit", "full"):
            raise ArtiphysError(f"feature_window must be 'unit' or 'full', not "
                                f"{self.feature_window!r}")
        if self.distance not in ("features", "pixel"):
            raise ArtiphysError(f"distance must be 'features' or 'pixel', not {self.distance!r}")
        if not 0.0 < self.threshold <= 1.0:
            raise ArtiphysError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.distance_weight not in DISTANCE_WEIGHTS:
            raise ArtiphysError(f"distance_weight must be one of {', '.join(DISTANCE_WEIGHTS)}, "
                                f"not {self.distance_weight!r}")
        if not 0.0 < self.gain_floor < 1.0:
            raise ArtiphysError(f"gain_floor must be in (0, 1), got {self.gain_floor}")
        if not 0.0 < self.reference_step_fraction <= self.step_fraction:
            raise ArtiphysError(f"reference_step_fraction must be in (0, step_fraction = "
                                f"{self.step_fraction}], got {self.reference_step_fraction}")

    @property
    def weight_threshold(self) -> float | None:
        """The threshold of :func:`seen_weights`, or None for unweighted distances."""
        return self.threshold if self.distance_weight == "activation" else None

    def to_dict(self) -> dict:
        return asdict(self)



def unit_rf_size_px(model: ModelSpec | torch.nn.Module, layer) -> int:
    """Receptive-field side of ``layer``'s units (the image side of a diverse set)."""
    from artiphys.synthesis.render import rf_size_px

    return int(rf_size_px(model, layer))


def centre_unit(model: ModelSpec | torch.nn.Module, layer, size_px: int) -> tuple[int, int]:
    """Map position ``(y, x)`` of the unit of ``layer`` centred on a ``size_px`` image.

    From the analytic geometry (``offset + stride * (y, x)`` closest to the image centre)
    where known, else the map's centre unit (:func:`~artiphys.models.units.map_center`); a
    model whose geometry cannot be
    traced gets the map centre with a warning saying why.
    """
    spec = as_spec(model)
    dev = module_device(spec.module)
    with torch.no_grad():
        x = spec.preprocessing.normalise(channel_mean(spec).expand(1, 3, size_px, size_px).to(dev))
        out = forward_to_layers(spec, x, [layer])[layer]
    if out.ndim != 4:
        return 0, 0
    h, w = out.shape[-2:]
    try:
        geo = layer_geometry(spec, layer)  # offset and stride do not depend on the input size
    except GeometryError as exc:
        centre = map_center(h, w)
        warnings.warn(f"centre unit of {resolve_layer(spec, layer).label}: no receptive-field "
                      f"geometry ({exc}); using the map centre {centre}", stacklevel=2)
        return centre
    if geo.offset_px is None or geo.stride_px is None:
        return map_center(h, w)
    off = np.asarray(geo.offset_px, dtype=float).reshape(-1, 2)[0]
    stride = np.broadcast_to(np.asarray(geo.stride_px, dtype=float), (2,))
    c = (size_px - 1) / 2
    y = int(np.clip(round((c - off[0]) / stride[0]), 0, h - 1))
    xx = int(np.clip(round((c - off[1]) / stride[1]), 0, w - 1))
    return y, xx


def _target_norm(spec, size, norm, natural_folder) -> float:
    if norm is not None:
        if norm <= 0:
            raise ArtiphysError(f"norm must be > 0, got {norm}")
        return float(norm)
    folder = natural_folder or default_natural_folder()
    if folder is None:
        raise ArtiphysError("the image norm is half the mean norm of natural patches: pass "
                            "norm=... or natural_folder=... (a folder of JPEG/PNG images), or set "
                            "ARTIPHYS_NATURAL_IMAGES")
    return natural_patch_norm(folder, size, mean=tuple(channel_mean(spec).flatten().tolist()))



# ---- the grouped objective ---------------------------------------------------------------

def diverse_objective(layer, channels: torch.Tensor, y: int, x: int, lambdas: torch.Tensor,
                      n_images: int, *, feature_layer=None, pixels: torch.Tensor | None = None,
                      window: tuple[slice, slice] | None = None, prior=None,
                      alpha: float = 0.0, weight_threshold: float | None = None) -> Objective:
    """Per-image scores of a batch of groups (one group = one unit and one lambda).

    Image ``b`` belongs to group ``b // n_images``; ``channels`` and ``lambdas`` give each
    group's channel and lambda (shape ``(G,)``). Score
    ``a_b + alpha log P(x_b) + lambda_g / n * min_{i != j in g} w_ij d_ij`` with ``d`` in
    ``feature_layer``'s activations, or in ``pixels`` (the image parameter ``x - mean``,
    read directly, for ``distance="pixel"``), restricted to map positions ``window`` (rows,
    columns) when given; ``prior`` is read on ``pixels`` too. ``w_ij = min(s_i, s_j)`` with
    the :func:`seen_weights` of the group's activations at ``weight_threshold`` (1 when None).
    """
    if feature_layer is None and pixels is None:
        raise ArtiphysError("diverse_objective needs a feature_layer or the pixel parameter")
    layers = (layer,) if feature_layer is None else (layer, feature_layer)
    n = int(n_images)

    def fn(acts):
        a = acts[layer]
        groups = a.shape[0] // n
        if a.ndim != 4:
            raise ArtiphysError("diverse sets need a spatial (n, C, H, W) layer")
        if not 0 <= int(channels.max()) < a.shape[1]:
            raise UnknownUnitError(f"channel {int(channels.max())} is outside the layer's "
                                   f"{a.shape[1]} channels")
        ch = channels.to(a.device).repeat_interleave(n)
        act = a[torch.arange(a.shape[0], device=a.device), ch, y, x]
        feats = acts[feature_layer] if feature_layer is not None else pixels
        if window is not None and feature_layer is not None:
            feats = feats[:, :, window[0], window[1]]
        w = None if weight_threshold is None else seen_weights(act.view(groups, n),
                                                               weight_threshold)
        d = min_pairwise_distance(feats.reshape(groups, n, -1), w)
        score = act + (lambdas.to(a.device, a.dtype) / n * d).repeat_interleave(n)
        if prior is not None and alpha:
            score = score + alpha * prior(pixels)
        return score

    return Objective(fn, layers, f"diverse({getattr(layer, 'label', layer)}, n={n}, "
                                 f"{len(lambdas)} groups)")



# ---- the sweep ------------------------------------------------------------------------------

def _sweep_geometry(spec, layer, recipe, size_px, norm, natural_folder, feature_layer) -> dict:
    """Image side, centre unit, image norm and where distances are measured (``distance``,
    ``feature_layer``, ``window``) for a sweep."""
    size = int(size_px or unit_rf_size_px(spec, layer))
    unit_yx = centre_unit(spec, layer, size)
    target = _target_norm(spec, size, norm, natural_folder)
    if recipe.distance == "features" and feature_layer is None:
        feature_layer = preceding_layer(spec, layer)
    distance = recipe.distance if feature_layer is not None else "pixel"
    if distance == "pixel":
        feature_layer = None
    window = None
    if feature_layer is not None and recipe.feature_window == "unit":
        window = feature_window(spec, layer, unit_yx)
    return {"size_px": size, "unit_yx": unit_yx, "norm": target, "distance": distance,
            "feature_layer": feature_layer, "window": window}


def _optimise_sweep(spec, layer, units, recipe, geometry: dict, batches: tuple[int, int],
                    prior, progress) -> tuple[torch.Tensor, list, float]:
    """Images ``(U, L, n, 3, S, S)`` of every (unit, lambda) group, steps run per batch and
    seconds; ``geometry`` holds size, unit_yx, norm, distance, feature_layer and window."""
    size, (cy, cx), target = geometry["size_px"], geometry["unit_yx"], geometry["norm"]
    mean, dev = channel_mean(spec), module_device(spec.module)
    lams = torch.tensor(recipe.lambdas, dtype=torch.float32)
    n, L = recipe.n_images, len(recipe.lambdas)
    batch_units, lambda_batch = batches
    per_unit, steps_run, seconds = [], [], 0.0
    for b0 in range(0, len(units), batch_units):
        chunk = units[b0:b0 + batch_units]
        parts = []
        for l0 in range(0, L, lambda_batch):
            lam_chunk = lams[l0:l0 + lambda_batch]
            prm = white_noise_param(len(chunk) * len(lam_chunk) * n, size, target, mean,
                                    recipe.seed + 1000 * b0 + l0, dev)
            chans = torch.tensor(chunk).repeat_interleave(len(lam_chunk))
            pixels = prm.params[0] if (geometry["distance"] == "pixel" or recipe.alpha) else None
            obj = diverse_objective(layer, chans, cy, cx, lam_chunk.repeat(len(chunk)), n,
                                    feature_layer=geometry["feature_layer"], pixels=pixels,
                                    window=geometry["window"], prior=prior, alpha=recipe.alpha,
                                    weight_threshold=recipe.weight_threshold)
            res = optimize(spec, obj, prm, steps=recipe.steps,
                           **loop_settings(recipe, target, n, prm.params[0]),
                           projection=norm_constraint(target),
                           stopper=Stopper(patience=recipe.patience), seed=recipe.seed + b0,
                           progress=progress)
            parts.append(res.images.view(len(chunk), len(lam_chunk), n, 3, size, size))
            steps_run.append(res.steps_run)
            seconds += res.seconds
        per_unit.append(torch.cat(parts, dim=1))
    return torch.cat(per_unit), steps_run, seconds


def _best_images(imgs: torch.Tensor, activation: np.ndarray, n: int) -> torch.Tensor:
    """Each unit's ``n`` most driving images over every lambda, ``(U, n, 3, S, S)``."""
    U = imgs.shape[0]
    top = np.argsort(-activation.reshape(U, -1), axis=1, kind="stable")[:, :n]
    flat = imgs.reshape(U, -1, *imgs.shape[3:])
    return torch.stack([flat[u, torch.from_numpy(top[u].copy())] for u in range(U)])


def restart_reference(spec, layer, units: Sequence[int], imgs: torch.Tensor,
                      activation: np.ndarray, recipe: DiverseRecipe, geometry: dict, *,
                      prior=None, progress: bool = False) -> tuple[torch.Tensor, int]:
    """The lambda = 0 reference set, restarted from the best images of the whole sweep.

    Every lambda's set is optimised from its own white noise, and a unit with several local
    maxima (a jittered Hubel-Wiesel cell) sends the lambda = 0 images to whichever maxima
    their starts lead to: another lambda's set can then drive the unit harder than the
    reference every ratio divides by. Here each unit's ``n`` most driving images over all
    lambdas (``imgs (U, L, n, 3, S, S)``, ``activation (U, L, n)``) start a second lambda = 0
    optimisation (first step ``reference_step_fraction`` x the norm, ``recipe.steps``
    steps), and each image keeps the better of its start and its end, so the reference's
    mean activation is at least that of every lambda's set (the better is judged by the
    activation alone, without the prior term). Returns ``(U, n, 3, S, S)`` and the steps
    run.
    """
    size, (cy, cx), target = geometry["size_px"], geometry["unit_yx"], geometry["norm"]
    n = recipe.n_images
    start = _best_images(imgs, activation, n)
    mean, dev = channel_mean(spec), module_device(spec.module)
    p = (start.flatten(0, 1) - mean).to(dev).requires_grad_(True)
    m = mean.to(dev)
    prm = ImageParam([p], lambda: m + p, len(p), size, {"kind": "pixel", "init": "best_of_sweep",
                                                         "norm": float(target)})
    chans = torch.tensor([int(u) for u in units])
    obj = diverse_objective(layer, chans, cy, cx, torch.zeros(len(units)), n, pixels=p,
                            prior=prior, alpha=recipe.alpha)
    polish = replace(recipe, step_fraction=recipe.reference_step_fraction)
    res = optimize(spec, obj, prm, steps=recipe.steps, **loop_settings(polish, target, n, p),
                   projection=norm_constraint(target), stopper=Stopper(patience=recipe.patience),
                   seed=recipe.seed, progress=progress)
    chans_per_image = chans.repeat_interleave(n)
    before = unit_activation(spec, layer, start.flatten(0, 1), chans_per_image, (cy, cx))
    after = unit_activation(spec, layer, res.images, chans_per_image, (cy, cx))
    keep = (after >= before).view(-1, 1, 1, 1)
    best = torch.where(keep, res.images, start.flatten(0, 1))
    return best.view_as(start), res.steps_run


def _batches(spec, layer, geometry, recipe, n_units, batch_units, lambda_batch,
             memory_budget) -> tuple[int, int]:
    """``(units, lambdas)`` per optimisation batch: as given, else what fits the budget."""
    if batch_units is None and lambda_batch is None:
        feature_layer = geometry["feature_layer"]
        layers = [layer] + ([feature_layer] if feature_layer is not None else [])
        batch_units, lambda_batch = auto_batches(spec, layers, geometry["size_px"],
                                                 recipe.n_images, n_units, len(recipe.lambdas),
                                                 memory_budget)
    return int(batch_units or n_units), int(lambda_batch or len(recipe.lambdas))


def _with_reference(spec, layer, units, imgs: torch.Tensor, recipe: DiverseRecipe,
                    geometry: dict, batches: tuple[int, int], prior, progress
                    ) -> tuple[torch.Tensor, SetMeasures, int | None]:
    """The sweep's images with the lambda = 0 set restarted (when ``recipe.reference_restart``;
    ``batches[0] x batches[1]`` units at a time), their measures, and the restart's most
    steps run (None without a restart)."""

    def measure(images):
        return measure_sets(spec, layer, units, images, geometry["unit_yx"],
                            geometry["feature_layer"], window=geometry["window"],
                            weight_threshold=recipe.weight_threshold)

    measured = measure(imgs)
    if not recipe.reference_restart:
        return imgs, measured, None
    i0 = recipe.lambdas.index(0.0)
    imgs = imgs.clone()
    per_batch = max(1, batches[0] * batches[1])  # as many images as a sweep batch held
    steps = 0
    for u0 in range(0, len(units), per_batch):
        sl = slice(u0, u0 + per_batch)
        imgs[sl, i0], ran = restart_reference(spec, layer, units[sl], imgs[sl],
                                              measured.activation[sl], recipe, geometry,
                                              prior=prior, progress=progress)
        steps = max(steps, ran)
    return imgs, measure(imgs), steps


def diverse_sets(model: ModelSpec | torch.nn.Module, layer, units: Sequence[int], *,
                 recipe: DiverseRecipe | None = None, size_px: int | None = None,
                 norm: float | None = None, natural_folder: str | os.PathLike | None = None,
                 prior=None, feature_layer=None, batch_units: int | None = None,
                 lambda_batch: int | None = None, memory_budget: int | None = None,
                 progress: bool = False) -> xr.Dataset:
    """Diverse sets of ``recipe.n_images`` images for each channel in ``units`` at every lambda.

    Parameters
    ----------
    model : ModelSpec or nn.Module
    layer : str, LayerRef or nn.Module
        Layer of the units (a spatial layer).
    units : sequence of int
        Channels; each is read at the map position centred on the image (:func:`centre_unit`).
    recipe : DiverseRecipe, optional
    size_px : int, optional
        Image side; default the units' receptive field (:func:`unit_rf_size_px`).
    norm : float, optional
        L2 norm of every ``image - channel_mean`` (``[0, 1]`` pixel scale); default
        :func:`natural_patch_norm` on ``natural_folder`` (or :func:`default_natural_folder`).
    prior : callable, optional
        ``log P`` of ``image - channel_mean`` (see :mod:`artiphys.synthesis.priors`); used with
        ``recipe.alpha``.
    feature_layer : layer key, optional
        Where distances are measured; default :func:`preceding_layer` (pixels if none).
    batch_units, lambda_batch : int, optional
        Units and lambdas per optimisation batch (each batch holds ``units x lambdas x
        n_images`` images and is its own optimisation, so only memory and speed change);
        default: the whole sweep in one batch when it fits ``memory_budget`` bytes (default
        half the free GPU memory, a quarter of the available RAM on CPU), else units, then
        lambdas, split (:func:`activation_bytes_per_image`; ``attrs["settings"]`` records
        the split).

    Returns
    -------
    xr.Dataset
        Dims ``unit, lambda, image`` (+ ``rgb, row, col`` for images). Variables:
        ``images`` (RGB, channel mean added, not clipped), ``activation``;
        per ``(unit, lambda)``: ``mean_activation``, ``min_distance`` (seen; the paper's
        plain distance is ``min_distance_unweighted``) and their values relative to
        lambda = 0 (``*_rel``; the distance divided by ``reference_distance``), and
        ``min_distance_scaled`` = min distance / RMS norm of the images' feature vectors;
        per unit: ``reference_distance`` (``max(d(0), gain_floor x rms(0))``),
        ``lambda0_collapsed`` (``d(0)`` under that floor), ``reference_excess`` (max over
        lambdas of the mean activation / lambda = 0's, minus 1; 0 after the restart),
        ``chosen_lambda``, ``diversity_gain`` (``min_distance_rel`` at the chosen lambda;
        NaN, with the chosen lambda 0, for units that no image drives at lambda = 0:
        ``responsive`` False). The lambda = 0 row holds the restarted reference set
        (:func:`restart_reference`). ``attrs["analysis"] == "diverse"``; settings as JSON in
        ``attrs["settings"]``.
    """
    spec = as_spec(model)
    recipe = recipe or DiverseRecipe()
    ref = resolve_layer(spec, layer)
    units = [int(u) for u in units]
    if not units:
        raise ArtiphysError("no units given; e.g. units=range(32)")
    if recipe.alpha and prior is None:
        raise ArtiphysError("alpha > 0 needs a prior (e.g. priors.SpectralGaussianPrior())")
    geometry = _sweep_geometry(spec, layer, recipe, size_px, norm, natural_folder,
                               feature_layer)
    size, (cy, cx), target = geometry["size_px"], geometry["unit_yx"], geometry["norm"]
    feature_layer, window = geometry["feature_layer"], geometry["window"]
    batches = _batches(spec, layer, geometry, recipe, len(units), batch_units, lambda_batch,
                       memory_budget)
    imgs, steps_run, seconds = _optimise_sweep(spec, layer, units, recipe, geometry, batches,
                                               prior, progress)
    imgs, measured, restart_steps = _with_reference(spec, layer, units, imgs, recipe, geometry,
                                                    batches, prior, progress)
    settings = {"recipe": recipe.to_dict(), "layer": ref.label, "feature_layer":
                None if feature_layer is None else resolve_layer(spec, feature_layer).label,
                "distance": geometry["distance"], "size_px": size, "feature_window":
                None if window is None else [[w.start, w.stop, w.step] for w in window],
                "norm": target, "unit_yx": [cy, cx], "prior": prior_name(prior),
                "batch_units": batches[0], "lambda_batch": batches[1], "steps_run": steps_run,
                "reference_restart_steps": restart_steps, "seconds": seconds,
                "model": spec.provenance()}
    return sets_dataset(imgs, measured, units, recipe, settings)


__all__ = ["DiverseRecipe", "TextureRecipe", "LoopRecipe", "PAPER_LAMBDAS", "PAPER_LR",
           "OPTIMIZERS", "diverse_sets", "diverse_objective", "choose_lambda", "measure_sets",
           "natural_patch_norm", "default_natural_folder", "preceding_layer",
           "pre_rectifier_layer", "feature_window", "centre_unit", "channel_mean",
           "unit_rf_size_px", "min_pairwise_distance", "chosen_templates",
           "activation_bytes_per_image", "TRAINING_MEMORY_FACTOR", "texture_window",
           "TEXTURE_WINDOW_RATIO", "linear_combination_index", "phase_invariance_index",
           "invariance_indices", "save_diverse", "loop_settings", "white_noise_param",
           "restart_reference", "seen_weights", "SetMeasures", "sets_dataset",
           "DISTANCE_WEIGHTS"]
