"""Diverse feature visualisations and invariance indices (Cadena et al. 2018).

For one unit (channel ``c`` of ``layer`` read at the map position centred on an image of the
unit's receptive-field size), a batch of ``n`` images is optimised to maximise

    L = sum_i a_i + alpha sum_i log P(x_i) + lambda min_{i != j} d(x_i, x_j)        (eq. 1)

where ``a_i`` is the unit's activation to image ``i`` and ``d`` is the Euclidean distance
between the images' activations in the layer feeding the unit's own convolution
(flattened over space and channels; eq. 2) or, with ``distance="pixel"``, between the
images themselves. A whole sweep (units x lambdas x images) runs as *one* batch of the
shared optimisation loop (:func:`artiphys.synthesis.optimize.optimize`): image ``i`` of
group ``g`` (one unit, one lambda) gets the score
``a_i + alpha log P(x_i) + (lambda_g / n) min_{j != k in g} d_jk``, which sums to eq. 1 per
group, and groups do not interact.

Settings of the paper (and where we differ):

* images are ``channel_mean + p`` ("zero = channel mean"), ``p`` initialised as white
  noise (seeded) and held at a fixed L2 norm (default half the mean norm of natural-image
  patches of the same size, :func:`natural_patch_norm`); not clipped while optimising;
* gradients preconditioned by ``1 / max(1, |f|^0.5)`` (cycles per image) normalised to mean
  1 (:func:`artiphys.synthesis.transforms.fourier_preconditioner`);
* optimiser: the paper used Adam (learning rate 0.1 on the 0-255 pixel scale of their VGG,
  i.e. ``0.1 / 255`` here, :data:`PAPER_LR`; ``optimizer="adam"``). Under a fixed-norm
  projection Adam's per-pixel step normalisation fills the image with a sign pattern of
  the gradient: on the energy cell it ends on a full-field square-wave grating reaching
  ~22% of the best attainable response (0.10 vs 0.45). The default is therefore
  ``"normalized_sgd"``: projected gradient ascent on the norm sphere, steps along the
  tangential part of the preconditioned gradient scaled per diverse set, of length 10%
  of the norm decaying to 0.5% (:func:`loop_settings`), which reaches the optimum (0.45).
  Up to ``steps`` (1000) or until the objective stops rising (``Stopper(patience)``);
* lambda in ``0, 0.02, 0.04, ..., 20.48`` (:data:`PAPER_LAMBDAS`); per unit the largest
  lambda such that the mean activation at it *and every smaller lambda* stays
  ``>= threshold x`` the mean activation at lambda = 0 (0.9 for networks, 0.8 for toy
  complex cells); diversity gain = min pairwise distance there / at lambda = 0;
* alpha = 0 by default: the paper's PixelCNN++ prior is not available here (see
  :mod:`artiphys.synthesis.priors` for a 1/f^2 Gaussian prior and user priors).

The "preceding layer" is the input of the unit's own convolution, found by walking back the
model's torch.fx graph from ``layer`` through non-convolution modules (ReLU, pooling,
normalisation) to the first convolution and taking the module that produced its input
(for VGG conv3_1 that is pool2; for a SqueezeNet expand conv it is the fire module's squeeze
activation). In branching nets this is the one branch that feeds that convolution. When the
convolution reads the image itself, or the graph cannot be traced, pixel distance is used.
By default (``feature_window="unit"``) only the positions of that map the unit's own
convolution reads at the unit are compared (:func:`feature_window`; the whole 3x3 squeeze
map of a SqueezeNet expand3x3 unit at its RF size, the centre only for 1x1 pooling of the toy
cells); ``"full"`` compares the whole map as the paper did, which also rewards differences at
positions the unit never reads (on the toy cells the sets then diversify there and the
activation falls without the phases spreading). Pixel distance is a poor default for
luminance cells: images can move apart in colour, which the cell ignores.

The diversity gain divides by the min distance at lambda = 0, which is ~0 for a cell whose
images all converge to one optimum (simple and Hubel-Wiesel cells): gains of 1e4-1e6 then
mean "collapsed at lambda = 0", not "very invariant". ``min_distance_scaled`` (min distance
/ RMS feature-vector norm) is the scale-free alternative stored alongside.

Invariance indices (section 4.4-4.5): :func:`phase_invariance_index` optimises one texture
of side ``2 RF - 1`` whose windowed crops (window ``exp(-(r / sigma)^4)``,
``sigma = RF / 2.4``) all drive the unit; :func:`linear_combination_index` averages pairs of
templates.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr

from artiphys.errors import ArtiphysError, UnknownUnitError
from artiphys.models.layers import resolve_layer
from artiphys.models.spec import ModelSpec, as_spec, module_device
from artiphys.models.units import map_center
from artiphys.recording.hooks import forward_to_layers
from artiphys.synthesis.objectives import Objective
from artiphys.synthesis.optimize import Stopper, optimize
from artiphys.synthesis.param import ImageParam
from artiphys.synthesis.priors import prior_name
from artiphys.synthesis.transforms import fourier_preconditioner, norm_constraint

PAPER_LAMBDAS = (0.0,) + tuple(round(0.02 * 2 ** k, 2) for k in range(11))
"""0 and 0.02 * 2^k up to 20.48 (Cadena et al. 2018, section 3.2)."""

PAPER_LR = 0.1 / 255
"""Adam learning rate 0.1 on the 0-255 pixel scale, expressed on the [0, 1] scale."""

TEXTURE_WINDOW_RATIO = 2.4
"""Receptive field / sigma of the texture-crop window (the original code's value)."""


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
        Seeds the white-noise initialisation.
    channels_last : bool
        Run the loop's convolutions in channels-last memory format (faster on CPU; see
        :func:`artiphys.synthesis.optimize.optimize`).
    """

    n_images: int = 6
    lambdas: tuple = PAPER_LAMBDAS
    threshold: float = 0.9
    alpha: float = 0.0
    distance: str = "features"
    feature_window: str = "unit"

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

    def to_dict(self) -> dict:
        return asdict(self)


OPTIMIZERS = ("normalized_sgd", "adam")


def _check_optimizer(name: str) -> None:
    if name not in OPTIMIZERS:
        raise ArtiphysError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {name!r}")


def loop_settings(recipe, norm: float, group_size: int = 1,
                  param: torch.Tensor | None = None) -> dict:
    """``optimize`` keyword arguments (optimizer, lr, preconditioner, channels_last) for a recipe.

    ``"adam"``: Adam with ``recipe.lr`` on the preconditioned gradient (the paper).
    ``"normalized_sgd"``: projected gradient ascent on the spheres ``||x - mean|| = norm``.
    The preconditioned gradient loses its component along the image ``param`` (the radial
    part, which the norm projection would undo anyway, so every step moves the image *on*
    the sphere) and is divided by the root-mean-square gradient norm of the image's group
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

    def normalised(grad, step=0):
        if base is not None:
            grad = base(grad, step)
        if param is not None and param.shape == grad.shape:
            x = param.detach().flatten(1)
            g = grad.flatten(1)
            coef = (g * x).sum(1, keepdim=True) / x.pow(2).sum(1, keepdim=True).clamp_min(1e-30)
            grad = (g - coef * x).view_as(grad)
        sq = grad.flatten(1).pow(2).sum(1).view(-1, group_size).mean(1)
        scale = sq.sqrt().clamp_min(1e-30).repeat_interleave(group_size) / decay ** step
        return grad / scale.view(-1, *([1] * (grad.ndim - 1)))

    return {"optimizer": "sgd", "lr": float(recipe.step_fraction) * float(norm),
            "preconditioner": normalised, **layout}


# ---- geometry helpers ------------------------------------------------------------------------



def channel_mean(spec: ModelSpec) -> torch.Tensor:
    """The model's preprocessing mean as RGB ``(1, 3, 1, 1)`` (the image's "zero")."""
    mean = torch.tensor(spec.preprocessing.mean, dtype=torch.float32).view(1, 3, 1, 1)
    return mean.flip(1) if spec.preprocessing.channel_order == "BGR" else mean


def unit_rf_size_px(model: ModelSpec | torch.nn.Module, layer) -> int:
    """Receptive-field side of ``layer``'s units (the image side of a diverse set)."""
    from artiphys.synthesis.render import rf_size_px

    return int(rf_size_px(model, layer))


def centre_unit(model: ModelSpec | torch.nn.Module, layer, size_px: int) -> tuple[int, int]:
    """Map position ``(y, x)`` of the unit of ``layer`` centred on a ``size_px`` image.

    From the analytic geometry (``offset + stride * (y, x)`` closest to the image centre)
    where known, else the map's centre unit (:func:`artiphys.models.units.map_center`).
    """
    spec = as_spec(model)
    dev = module_device(spec.module)
    with torch.no_grad():
        x = spec.preprocessing.normalise(channel_mean(spec).expand(1, 3, size_px, size_px).to(dev))
        out = forward_to_layers(spec, x, [layer])[layer]
    if out.ndim != 4:
        return 0, 0
    h, w = out.shape[-2:]
    y, xx = map_center(h, w)
    try:
        from artiphys.models.receptive_field import layer_geometry

        geo = layer_geometry(spec, layer)  # offset and stride do not depend on the input size
        if geo.offset_px is not None and geo.stride_px is not None:
            off = np.asarray(geo.offset_px, dtype=float).reshape(-1, 2)[0]
            stride = np.broadcast_to(np.asarray(geo.stride_px, dtype=float), (2,))
            c = (size_px - 1) / 2
            y = int(np.clip(round((c - off[0]) / stride[0]), 0, h - 1))
            xx = int(np.clip(round((c - off[1]) / stride[1]), 0, w - 1))
    except Exception:  # noqa: BLE001 - geometry is a refinement; the map centre is the fallback
        pass
    return y, xx


_POINTWISE_KINDS = ("relu", "pool", "norm", "dropout", "activation", "contiguous")


def _own_conv(spec: ModelSpec, layer) -> tuple[str | None, str | None, bool]:
    """``(conv_path, input_path, crossed_pool)`` for ``layer``'s own convolution.

    Walks back the torch.fx graph from ``layer`` through non-convolution nodes to the first
    ``nn.Conv2d`` module; ``input_path`` is the module that produced that convolution's
    input (None for the model input), ``crossed_pool`` whether the walk passed a pooling
    module (positions then no longer map one to one). When that input is a call of a shared
    module other than its last, it is named ``path@k`` (inside a torchvision bottleneck,
    ``conv3`` reads ``relu@1``); a block-ending last call reads as the block (ResNet).
    """
    from artiphys.models.layers import layer_name
    from artiphys.models.receptive_field import GeometryError, trace_geometry

    ref = resolve_layer(spec, layer)
    try:
        traced = trace_geometry(spec)
    except GeometryError:
        return None, None, False
    path_of: dict = {}
    paths_of: dict = {}
    for path, node in traced.calls:
        if path:
            path_of.setdefault(node, path)
            paths_of.setdefault(node, []).append(path)

    def readable_path(n) -> str | None:
        """The layer name that reads node ``n``: a module path whose last call returns it
        (a plain name means the last call; ResNet's block-ending ``relu`` reads as the
        block), else ``path@k`` for call ``k`` of a shared module."""
        named, once = [], []
        for q in paths_of.get(n, ()):
            calls = traced.calls_of(q)
            named.append(q if calls[-1] is n else layer_name(q, calls.index(n)))
            if len(calls) == 1:
                once.append(q)
        return next(iter(once), None) or next((q for q in named if "@" not in q),
                                               named[0] if named else None)
    modules = dict(spec.module.named_modules())
    start = traced.node_of_call(ref.path, ref.call)
    if start is None:
        return None, None, False

    def is_conv(n) -> bool:
        p = path_of.get(n)
        return p is not None and isinstance(modules.get(p), torch.nn.Conv2d)

    def tensor_input(n):
        for a in n.args:
            if hasattr(a, "op"):
                return a
        return None

    node, crossed, seen = start, False, 0
    while node is not None and not is_conv(node) and seen < 1000:
        p = path_of.get(node)
        if p is not None and "pool" in type(modules.get(p)).__name__.lower():
            crossed = True
        node, seen = tensor_input(node), seen + 1
    if node is None or not is_conv(node):
        return None, None, crossed
    conv_path = path_of[node]
    # the conv's own graph may be traced through (e.g. FFT convolutions): step to the first
    # node outside the conv's module path
    node = tensor_input(node)
    while node is not None and node.op != "placeholder":
        p = readable_path(node)
        if p is not None and p != conv_path and not p.startswith(conv_path + "."):
            return conv_path, p, crossed
        node = tensor_input(node)
    return conv_path, None, crossed


def preceding_layer(model: ModelSpec | torch.nn.Module, layer) -> str | None:
    """Module path whose output feeds ``layer``'s own convolution (see module doc).

    None when that convolution reads the model input or the graph cannot be traced.
    """
    from artiphys.models.layers import spec_with_aliases

    return _own_conv(spec_with_aliases(model), layer)[1]


def pre_rectifier_layer(model: ModelSpec | torch.nn.Module, layer) -> str | None:
    """The convolution whose output ``layer`` rectifies, when ``layer`` is a pointwise stage
    after it (ReLU, batch norm; no pooling in between); None otherwise.

    A rectified unit that is silent for every white-noise start gets no gradient and stays
    silent (``responsive`` False); its convolution's output (pre-activation) has the same
    maximising images wherever the maximum is positive and always has a gradient.
    """
    from artiphys.models.layers import spec_with_aliases

    spec = spec_with_aliases(model)
    conv, _, crossed = _own_conv(spec, layer)
    if conv is None or crossed or conv == resolve_layer(spec, layer).name:
        return None
    return conv


def feature_window(model: ModelSpec | torch.nn.Module, layer, unit_yx: tuple[int, int]
                   ) -> tuple[slice, slice] | None:
    """Rows and columns of the preceding layer's map that unit ``unit_yx`` of ``layer`` reads.

    The footprint of ``layer``'s own convolution (kernel, stride, padding, dilation) at the
    unit's position; None (use the whole map) when it cannot be worked out (no conv, or a
    pooling stage between the conv and ``layer``).
    """
    from artiphys.models.layers import spec_with_aliases

    spec = spec_with_aliases(model)
    conv_path, input_path, crossed = _own_conv(spec, layer)
    if conv_path is None or input_path is None or crossed:
        return None
    conv = dict(spec.module.named_modules())[conv_path]
    if isinstance(conv.padding, str):
        pads = tuple((k - 1) * d // 2 for k, d in zip(conv.kernel_size, conv.dilation))
        if conv.padding == "valid":
            pads = (0, 0)
    else:
        pads = conv.padding
    out = []
    for pos, k, s, p, d in zip(unit_yx, conv.kernel_size, conv.stride, pads, conv.dilation):
        start = pos * s - p
        stop = start + (k - 1) * d + 1
        out.append(slice(max(0, start), stop, d) if start >= 0 else
                   slice(start % d, stop, d))
    return out[0], out[1]


def natural_patch_norm(folder: str | os.PathLike, size_px: int, *, mean=(0.485, 0.456, 0.406),
                       n_images: int = 64, patches_per_image: int = 8, image_size_px: int = 224,
                       seed: int = 0) -> float:
    """Half the mean L2 norm of random ``size_px`` patches of natural images (Cadena et al.).

    Images from ``folder`` (RGB in [0, 1], shorter side resized to ``image_size_px`` and
    centre-cropped; :func:`artiphys.stimuli.natural.images`), ``patches_per_image`` random
    patches each, minus the channel ``mean`` ("zero = channel mean").
    """
    from artiphys.stimuli.natural import images

    size_px = int(size_px)
    stim = images(folder, n=n_images, seed=seed, size_px=max(int(image_size_px), size_px))
    imgs = stim.images()
    g = torch.Generator().manual_seed(int(seed))
    hi = imgs.shape[-1] - size_px + 1
    m = torch.as_tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    norms = []
    for k in range(patches_per_image):
        ys = torch.randint(0, hi, (len(imgs),), generator=g)
        xs = torch.randint(0, hi, (len(imgs),), generator=g)
        patches = torch.stack([im[:, y:y + size_px, x:x + size_px]
                               for im, y, x in zip(imgs, ys, xs)])
        norms.append((patches - m).flatten(1).norm(dim=1))
    return 0.5 * float(torch.cat(norms).mean())


def default_natural_folder() -> Path | None:
    """``$ARTIPHYS_NATURAL_IMAGES``, else ``$ARTIPHYS_SHARED/data/imagenet-sample-256`` if it
    exists, else None."""
    env = os.environ.get("ARTIPHYS_NATURAL_IMAGES")
    if env:
        return Path(env)
    shared = os.environ.get("ARTIPHYS_SHARED")
    if shared and (Path(shared) / "data" / "imagenet-sample-256").is_dir():
        return Path(shared) / "data" / "imagenet-sample-256"
    return None


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

def min_pairwise_distance(features: torch.Tensor) -> torch.Tensor:
    """``min_{i < j} ||f_i - f_j||`` per group: ``features (G, n, D) -> (G,)``."""
    n = features.shape[1]
    if n < 2:
        return features.new_zeros(features.shape[0])
    i, j = torch.triu_indices(n, n, offset=1, device=features.device)
    sq = (features[:, i] - features[:, j]).pow(2).sum(-1)
    return sq.clamp_min(1e-20).sqrt().min(dim=1).values


def diverse_objective(layer, channels: torch.Tensor, y: int, x: int, lambdas: torch.Tensor,
                      n_images: int, *, feature_layer=None, pixels: torch.Tensor | None = None,
                      window: tuple[slice, slice] | None = None, prior=None,
                      alpha: float = 0.0) -> Objective:
    """Per-image scores of a batch of groups (one group = one unit and one lambda).

    Image ``b`` belongs to group ``b // n_images``; ``channels`` and ``lambdas`` give each
    group's channel and lambda (shape ``(G,)``). Score
    ``a_b + alpha log P(x_b) + lambda_g / n * min_{i != j in g} d_ij`` with ``d`` in
    ``feature_layer``'s activations, or in ``pixels`` (the image parameter ``x - mean``,
    read directly, for ``distance="pixel"``), restricted to map positions ``window`` (rows,
    columns) when given; ``prior`` is read on ``pixels`` too.
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
        d = min_pairwise_distance(feats.reshape(groups, n, -1))
        score = act + (lambdas.to(a.device, a.dtype) / n * d).repeat_interleave(n)
        if prior is not None and alpha:
            score = score + alpha * prior(pixels)
        return score

    return Objective(fn, layers, f"diverse({getattr(layer, 'label', layer)}, n={n}, "
                                 f"{len(lambdas)} groups)")


def _white_noise_param(b: int, size: int, norm: float, mean: torch.Tensor, seed: int,
                       device) -> ImageParam:
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


# ---- the sweep ------------------------------------------------------------------------------

def choose_lambda(lambdas: Sequence[float], mean_activation: np.ndarray, threshold: float
                  ) -> np.ndarray:
    """Index of the chosen lambda per unit (``mean_activation`` is ``(unit, lambda)``).

    The largest lambda such that it and every smaller lambda keep ``mean_activation >=
    threshold x mean_activation(lambda = 0)``.
    """
    lams = np.asarray(lambdas, dtype=float)
    order = np.argsort(lams)
    act = np.asarray(mean_activation, dtype=float)[:, order]
    ref = act[:, :1]
    ok = act >= threshold * ref - 1e-12
    ok[:, 0] = True
    run = np.cumprod(ok, axis=1).astype(bool)
    last = run.sum(axis=1) - 1
    return order[last]


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
    batch_units : int, optional
        Units per optimisation batch (each batch holds ``units x lambdas x n_images``
        images); default all at once.
    lambda_batch : int, optional
        Lambdas per optimisation batch; default all (the sweep in one batch). Each batch is
        its own optimisation, so only memory and speed change.
    memory_budget : int, optional
        Bytes the optimisation may use when neither batch size is given; default half the
        free GPU memory, or a quarter of the available RAM on CPU. The whole sweep runs in
        one batch when it fits, else units (then lambdas) are split
        (:func:`activation_bytes_per_image`; ``attrs["settings"]`` records the split).

    Returns
    -------
    xr.Dataset
        Dims ``unit, lambda, image`` (+ ``rgb, row, col`` for images). Variables:
        ``images`` (RGB, channel mean added, not clipped), ``activation``;
        per ``(unit, lambda)``: ``mean_activation``, ``min_distance`` and their values
        relative to lambda = 0 (``*_rel``), and ``min_distance_scaled`` = min distance / RMS
        norm of the images' feature vectors (scale-free; unlike the gain it stays finite
        when all images coincide at lambda = 0); per unit: ``chosen_lambda``,
        ``diversity_gain`` (``min_distance_rel`` at the chosen lambda; NaN, with the chosen
        lambda 0, for units that no image drives at lambda = 0: ``responsive`` False).
        ``attrs["analysis"] == "diverse"``; settings as JSON in ``attrs["settings"]``.
    """
    spec = as_spec(model)
    recipe = recipe or DiverseRecipe()
    ref = resolve_layer(spec, layer)
    units = [int(u) for u in units]
    if not units:
        raise ArtiphysError("no units given; e.g. units=range(32)")
    if recipe.alpha and prior is None:
        raise ArtiphysError("alpha > 0 needs a prior (e.g. priors.SpectralGaussianPrior())")
    size = int(size_px or unit_rf_size_px(spec, layer))
    cy, cx = centre_unit(spec, layer, size)
    target = _target_norm(spec, size, norm, natural_folder)
    if recipe.distance == "features" and feature_layer is None:
        feature_layer = preceding_layer(spec, layer)
    distance = recipe.distance if feature_layer is not None else "pixel"
    if distance == "pixel":
        feature_layer = None
    window = None
    if feature_layer is not None and recipe.feature_window == "unit":
        window = feature_window(spec, layer, (cy, cx))
    mean = channel_mean(spec)
    dev = module_device(spec.module)
    lams = torch.tensor(recipe.lambdas, dtype=torch.float32)
    n, L = recipe.n_images, len(recipe.lambdas)
    if batch_units is None and lambda_batch is None:
        batch_units, lambda_batch = _auto_batches(spec, layer, feature_layer, size, n,
                                                  len(units), L, memory_budget)
    batch_units = int(batch_units or len(units))
    lambda_batch = int(lambda_batch or L)
    per_unit, steps_run, seconds = [], [], 0.0
    for b0 in range(0, len(units), batch_units):
        chunk = units[b0:b0 + batch_units]
        parts = []
        for l0 in range(0, L, lambda_batch):
            lam_chunk = lams[l0:l0 + lambda_batch]
            prm = _white_noise_param(len(chunk) * len(lam_chunk) * n, size, target, mean,
                                     recipe.seed + 1000 * b0 + l0, dev)
            chans = torch.tensor(chunk).repeat_interleave(len(lam_chunk))
            group_lams = lam_chunk.repeat(len(chunk))
            pixels = prm.params[0] if (distance == "pixel" or recipe.alpha) else None
            obj = diverse_objective(layer, chans, cy, cx, group_lams, n,
                                    feature_layer=feature_layer, pixels=pixels, window=window,
                                    prior=prior, alpha=recipe.alpha)
            res = optimize(spec, obj, prm, steps=recipe.steps,
                           **loop_settings(recipe, target, n, prm.params[0]),
                           projection=norm_constraint(target),
                           stopper=Stopper(patience=recipe.patience), seed=recipe.seed + b0,
                           progress=progress)
            parts.append(res.images.view(len(chunk), len(lam_chunk), n, 3, size, size))
            steps_run.append(res.steps_run)
            seconds += res.seconds
        per_unit.append(torch.cat(parts, dim=1))
    images = per_unit
    imgs = torch.cat(images)
    act, dist, rms = measure_sets(spec, layer, units, imgs, (cy, cx), feature_layer,
                                  window=window)
    settings = {"recipe": recipe.to_dict(), "layer": ref.label, "feature_layer":
                None if feature_layer is None else resolve_layer(spec, feature_layer).label,
                "distance": distance, "size_px": size, "feature_window":
                None if window is None else [[w.start, w.stop, w.step] for w in window],
                "norm": target, "unit_yx": [cy, cx],
                "prior": prior_name(prior), "batch_units": batch_units,
                "lambda_batch": lambda_batch,
                "steps_run": steps_run, "seconds": seconds, "model": spec.provenance()}
    return _sets_dataset(imgs, act, dist, rms, units, recipe, settings)


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


def _auto_batches(spec, layer, feature_layer, size, n, n_units, n_lambdas, budget
                  ) -> tuple[int, int]:
    """``(batch_units, lambda_batch)``: the whole sweep if it fits ``budget`` bytes."""
    layers = [layer] + ([feature_layer] if feature_layer is not None else [])
    per_image = TRAINING_MEMORY_FACTOR * activation_bytes_per_image(spec, layers, size)
    budget = int(budget if budget is not None
                 else _free_memory_bytes(module_device(spec.module)))
    images = max(1, budget // max(1, per_image))
    if images >= n_units * n_lambdas * n:
        return n_units, n_lambdas
    if images >= n_lambdas * n:
        return images // (n_lambdas * n), n_lambdas
    return 1, max(1, images // n)


def measure_sets(model, layer, units: Sequence[int], images: torch.Tensor, unit_yx,
                 feature_layer=None, *, window: tuple[slice, slice] | None = None,
                 batch_size: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Activations ``(U, L, n)``, min pairwise distances ``(U, L)`` and root-mean-square
    feature-vector norms ``(U, L)`` of stored sets.

    ``images`` is ``(U, L, n, 3, S, S)`` (channel mean added); distances are in
    ``feature_layer`` at map positions ``window`` (pixels, ``image - mean``, when None).
    """
    spec = as_spec(model)
    U, L, n = images.shape[:3]
    flat = images.reshape(U * L * n, *images.shape[3:])
    chans = torch.tensor([int(u) for u in units]).repeat_interleave(L * n)
    dev = module_device(spec.module)
    layers = [layer] + ([feature_layer] if feature_layer is not None else [])
    acts, feats = [], []
    y, x = unit_yx
    with torch.no_grad():
        for lo in range(0, len(flat), batch_size):
            batch = flat[lo:lo + batch_size].to(dev)
            out = forward_to_layers(spec, spec.preprocessing.normalise(batch), layers)
            a = out[layer]
            c = chans[lo:lo + batch_size].to(dev)
            acts.append(a[torch.arange(len(batch), device=dev), c, y, x].cpu())
            if feature_layer is not None:
                f = out[feature_layer]
                if window is not None:
                    f = f[:, :, window[0], window[1]]
            else:
                f = batch - channel_mean(spec).to(dev)
            feats.append(f.flatten(1).cpu())
        act = torch.cat(acts).view(U, L, n)
        f = torch.cat(feats).view(U * L, n, -1)
        d = min_pairwise_distance(f).view(U, L)
        rms = f.pow(2).sum(-1).mean(-1).sqrt().view(U, L)
    return act.numpy(), d.numpy(), rms.numpy()


def _sets_dataset(imgs, act, dist, rms, units, recipe, settings) -> xr.Dataset:
    lams = np.asarray(recipe.lambdas, dtype=float)
    mean_act = act.mean(axis=2)
    i0 = int(np.argmin(lams))
    with np.errstate(divide="ignore", invalid="ignore"):
        act_rel = mean_act / mean_act[:, i0:i0 + 1]
        dist_rel = dist / dist[:, i0:i0 + 1]
    chosen = choose_lambda(lams, mean_act, recipe.threshold)
    gain = dist_rel[np.arange(len(units)), chosen]
    # a unit no image drives at lambda = 0 has no activation to keep: no chosen lambda
    responsive = mean_act[:, i0] > 0
    chosen = np.where(responsive, chosen, i0)
    gain = np.where(responsive, gain, np.nan)
    size = imgs.shape[-1]
    ds = xr.Dataset(
        {
            "images": (("unit", "lambda", "image", "rgb", "row", "col"),
                       imgs.numpy().astype(np.float32)),
            "activation": (("unit", "lambda", "image"), act.astype(np.float32)),
            "mean_activation": (("unit", "lambda"), mean_act.astype(np.float32)),
            "min_distance": (("unit", "lambda"), dist.astype(np.float32)),
            "mean_activation_rel": (("unit", "lambda"), act_rel.astype(np.float32)),
            "min_distance_rel": (("unit", "lambda"), dist_rel.astype(np.float32)),
            "min_distance_scaled": (("unit", "lambda"),
                                    (dist / np.maximum(rms, 1e-30)).astype(np.float32)),
            "chosen_lambda": (("unit",), lams[chosen]),
            "chosen_index": (("unit",), chosen.astype(np.int64)),
            "diversity_gain": (("unit",), gain.astype(np.float32)),
            "responsive": (("unit",), responsive),
        },
        coords={"unit": np.arange(len(units)),
                "channel": ("unit", np.asarray(units, dtype=np.int64)),
                "layer": ("unit", np.array([settings["layer"]] * len(units))),
                "lambda": lams, "image": np.arange(imgs.shape[2]), "rgb": ["R", "G", "B"],
                "row": np.arange(size), "col": np.arange(size)},
        attrs={"analysis": "diverse", "layer": settings["layer"], "threshold": recipe.threshold,
               "model": str(settings.get("model", {}).get("model", "")),
               "condition": str(settings.get("model", {}).get("condition", "")),
               "n_images": recipe.n_images, "size_px": size, "norm": settings["norm"],
               "distance": settings["distance"],
               "feature_layer": settings["feature_layer"] or "",
               "unit_y": settings["unit_yx"][0], "unit_x": settings["unit_yx"][1],
               "settings": json.dumps(settings, default=str)},
    )
    return ds


def chosen_templates(ds: xr.Dataset) -> torch.Tensor:
    """Each unit's images at its chosen lambda, ``(U, n, 3, S, S)`` (channel mean added)."""
    idx = xr.DataArray(ds["chosen_index"].values, dims="unit")
    return torch.from_numpy(ds["images"].isel(**{"lambda": idx}).values.copy())


# ---- invariance indices --------------------------------------------------------------------

def texture_window(size_px: int, ratio: float = TEXTURE_WINDOW_RATIO) -> torch.Tensor:
    """``exp(-(r / sigma)^4)`` with ``sigma = size_px / ratio``, r from the centre, ``(S, S)``."""
    c = (size_px - 1) / 2
    idx = torch.arange(size_px, dtype=torch.float32) - c
    r = torch.sqrt(idx[:, None] ** 2 + idx[None, :] ** 2)
    return torch.exp(-(r / (size_px / ratio)) ** 4)


def _unit_activation(spec, layer, images, chans, yx, batch_size=512) -> torch.Tensor:
    dev = module_device(spec.module)
    out = []
    with torch.no_grad():
        for lo in range(0, len(images), batch_size):
            b = images[lo:lo + batch_size].to(dev)
            a = forward_to_layers(spec, spec.preprocessing.normalise(b), [layer])[layer]
            c = chans[lo:lo + batch_size].to(dev)
            out.append(a[torch.arange(len(b), device=dev), c, yx[0], yx[1]].cpu())
    return torch.cat(out)


def linear_combination_index(model, ds: xr.Dataset) -> xr.Dataset:
    """Mean activation of pairwise template averages / mean activation of the templates.

    Templates = each unit's diverse set at its chosen lambda; all ``n (n - 1) / 2`` pairs are
    averaged in pixel space (relative to the channel mean) and rescaled to the templates'
    mean norm (Cadena et al. 2018, section 4.5).
    """
    spec = as_spec(model)
    layer = ds.attrs["layer"]
    yx = (int(ds.attrs["unit_y"]), int(ds.attrs["unit_x"]))
    mean = channel_mean(spec)
    t = chosen_templates(ds) - mean.unsqueeze(0)
    U, n = t.shape[:2]
    i, j = torch.triu_indices(n, n, offset=1)
    pairs = 0.5 * (t[:, i] + t[:, j])
    target = t.flatten(2).norm(dim=2).mean(1)
    pairs = pairs * (target.view(U, 1) / pairs.flatten(2).norm(dim=2).clamp_min(1e-12)).view(
        U, -1, 1, 1, 1)
    chans = torch.as_tensor(ds["channel"].values)
    a_t = _unit_activation(spec, layer, (t + mean.unsqueeze(0)).flatten(0, 1),
                           chans.repeat_interleave(n), yx).view(U, n)
    a_p = _unit_activation(spec, layer, (pairs + mean.unsqueeze(0)).flatten(0, 1),
                           chans.repeat_interleave(len(i)), yx).view(U, len(i))
    index = a_p.mean(1) / a_t.mean(1)
    return xr.Dataset({"linear_combination_index": ("unit", index.numpy()),
                       "template_activation": ("unit", a_t.mean(1).numpy()),
                       "pair_activation": (("unit", "pair"), a_p.numpy())},
                      coords={"unit": ds["unit"].values, "pair": np.arange(len(i))})


@dataclass(frozen=True)
class TextureRecipe(LoopRecipe):
    """Texture optimisation for the phase-invariance index.

    ``crops_per_step`` random crop offsets per step (the same for every unit); the index is
    evaluated on all offsets on a grid of step ``eval_stride_px`` (default ``max(1, RF // 8)``).
    """

    crops_per_step: int = 16
    eval_stride_px: int | None = None


def _crop_norm_projection(window: torch.Tensor, target: float):
    """Scale each texture so that its windowed crops have mean L2 norm ``target``."""
    w2 = (window ** 2)[None, None]

    def p(x, step=0):
        sq = F.conv2d(x.pow(2).sum(1, keepdim=True), w2.to(x.device, x.dtype))
        mean_norm = sq.clamp_min(0).sqrt().flatten(1).mean(1).clamp_min(1e-12)
        return x.mul_((target / mean_norm).view(-1, 1, 1, 1))

    return p


def phase_invariance_index(model, ds: xr.Dataset, *, recipe: TextureRecipe | None = None,
                           progress: bool = False) -> xr.Dataset:
    """Shift (phase) invariance: windowed crops of an optimised texture vs the templates.

    For each unit one texture of side ``2 S - 1`` (``S`` = the sets' image side, the RF) is
    optimised so that the mean activation over RF-sized crops, each multiplied by
    :func:`texture_window` (``exp(-(r / sigma)^4)``, ``sigma = S / 2.4``) around the channel
    mean, is maximal; each step uses ``crops_per_step`` random offsets. Norm: the texture is
    rescaled after every step so that its windowed crops have, on average over all offsets,
    the templates' norm -- each crop the unit sees then carries as much contrast energy as a
    template (matching the texture's per-pixel RMS instead would leave each windowed crop
    with about 0.6 of it). Index = mean activation over the crops on a grid of offsets /
    mean activation of the unit's templates (its diverse set at the chosen lambda).
    """
    spec = as_spec(model)
    recipe = recipe or TextureRecipe()
    layer = ds.attrs["layer"]
    yx = (int(ds.attrs["unit_y"]), int(ds.attrs["unit_x"]))
    S = int(ds.attrs["size_px"])
    T = 2 * S - 1
    mean = channel_mean(spec)
    dev = module_device(spec.module)
    templates = chosen_templates(ds)
    U, n = templates.shape[:2]
    target = float((templates - mean.unsqueeze(0)).flatten(2).norm(dim=2).mean())
    chans = torch.as_tensor(ds["channel"].values)
    a_t = _unit_activation(spec, layer, templates.flatten(0, 1), chans.repeat_interleave(n),
                           yx).view(U, n).mean(1)
    window = texture_window(S).to(dev)
    m = mean.to(dev)
    K = int(recipe.crops_per_step)

    def crops(tex, offsets):
        parts = [tex[:, :, dy:dy + S, dx:dx + S] for dy, dx in offsets]
        c = torch.stack(parts, dim=1)  # (U, K, 3, S, S)
        return (m + window * (c - m)).flatten(0, 1)

    def transform(images, step=0):
        offs = torch.randint(0, S, (K, 2))
        return crops(images, [(int(a), int(b)) for a, b in offs])

    ch_rep = chans.repeat_interleave(K)

    def fn(acts):
        a = acts[layer]
        if a.shape[0] != U * K:  # the loop's final check on the whole textures: map centre
            cy, cx = map_center(*a.shape[-2:])
            return a[torch.arange(U, device=a.device), chans.to(a.device), cy, cx]
        act = a[torch.arange(a.shape[0], device=a.device), ch_rep.to(a.device), yx[0], yx[1]]
        return act.view(U, K).mean(1)

    obj = Objective(fn, (layer,), f"texture_crops({layer}, {K} crops)")
    g = torch.Generator().manual_seed(int(recipe.seed))
    p = torch.randn(U, 3, T, T, generator=g).to(dev)
    proj = _crop_norm_projection(window, target)
    proj(p)
    p.requires_grad_(True)
    prm = ImageParam([p], lambda: m + p, U, T, {"kind": "pixel", "init": "white_noise"})
    res = optimize(spec, obj, prm, steps=recipe.steps, transform=transform,
                   **loop_settings(recipe, target * T / S, 1, p), projection=proj,
                   stopper=Stopper(patience=recipe.patience), seed=recipe.seed,
                   progress=progress)
    stride = int(recipe.eval_stride_px or max(1, S // 8))
    grid = [(dy, dx) for dy in range(0, S, stride) for dx in range(0, S, stride)]
    tex = res.images.to(dev)
    acts = []
    for lo in range(0, len(grid), 64):
        part = grid[lo:lo + 64]
        c = crops(tex, part)
        acts.append(_unit_activation(spec, layer, c, chans.repeat_interleave(len(part)),
                                     yx).view(U, len(part)))
    a_c = torch.cat(acts, dim=1)
    index = a_c.mean(1) / a_t
    return xr.Dataset({"phase_invariance_index": ("unit", index.numpy()),
                       "crop_activation": ("unit", a_c.mean(1).numpy()),
                       "template_activation": ("unit", a_t.numpy()),
                       "texture": (("unit", "rgb", "trow", "tcol"), res.images.numpy())},
                      coords={"unit": ds["unit"].values, "rgb": ["R", "G", "B"]},
                      attrs={"texture_steps_run": res.steps_run, "eval_offsets": len(grid),
                             "texture_norm_rule": "mean windowed-crop norm = template norm"})


def invariance_indices(model, ds: xr.Dataset, *, texture: TextureRecipe | None = None,
                       progress: bool = False) -> xr.Dataset:
    """Both indices per unit with ``ds``'s unit coordinates; ``analysis="diverse_indices"``."""
    lc = linear_combination_index(model, ds)
    ph = phase_invariance_index(model, ds, recipe=texture, progress=progress)
    out = xr.merge([lc.drop_vars("template_activation"), ph], compat="override")
    out = out.assign_coords(channel=("unit", ds["channel"].values),
                            layer=("unit", ds["layer"].values))
    out.attrs.update(ph.attrs)   # texture steps run, offsets evaluated, norm rule
    out.attrs.update({"analysis": "diverse_indices", "layer": ds.attrs["layer"],
                      "size_px": ds.attrs["size_px"], "model": ds.attrs.get("model", ""),
                      "condition": ds.attrs.get("condition", ""),
                      "texture": json.dumps(asdict(texture or TextureRecipe()))})
    return out


def save_diverse(out_dir: str | os.PathLike, sets: xr.Dataset,
                 indices: xr.Dataset | None = None, name: str | None = None) -> list[Path]:
    """Write ``diverse_<name>.nc`` (and ``diverse_indices_<name>.nc``) atomically in ``out_dir``."""
    from artiphys.store.atomic import atomic_write_netcdf

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tag = (name or str(sets.attrs["layer"])).replace("/", "_")
    paths = [atomic_write_netcdf(out / f"diverse_{tag}.nc", sets)]
    if indices is not None:
        paths.append(atomic_write_netcdf(out / f"diverse_indices_{tag}.nc", indices))
    return paths


__all__ = ["DiverseRecipe", "TextureRecipe", "LoopRecipe", "PAPER_LAMBDAS", "PAPER_LR",
           "diverse_sets", "diverse_objective", "choose_lambda", "measure_sets", "natural_patch_norm",
           "preceding_layer", "pre_rectifier_layer", "feature_window", "centre_unit",
           "channel_mean", "unit_rf_size_px", "min_pairwise_distance", "chosen_templates",
           "activation_bytes_per_image", "texture_window", "linear_combination_index",
           "phase_invariance_index", "invariance_indices", "save_diverse",
           "default_natural_folder"]
