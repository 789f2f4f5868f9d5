"""Invariance indices of a unit's diverse set (Cadena et al. 2018, sections 4.4-4.5).

The templates of a unit are its diverse set at the chosen lambda
(:func:`artiphys.synthesis.diverse.diverse_sets`).

* :func:`phase_invariance_index` (shift invariance): one texture of side ``2 RF - 1`` is
  optimised so that its windowed RF-sized crops (window ``exp(-(r / sigma)^4)``,
  ``sigma = RF / 2.4``, :func:`texture_window`) drive the unit on average; index = mean crop
  activation (over a grid of offsets) / mean template activation.
* :func:`linear_combination_index`: every pair of templates averaged in pixel space and
  rescaled to the templates' norm; index = mean activation of the averages / of the
  templates.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr

from artiphys.models.units import map_center
from artiphys.models.spec import as_spec, module_device
from artiphys.recording.hooks import forward_to_layers
from artiphys.synthesis.loop import LoopRecipe, channel_mean, loop_settings
from artiphys.synthesis.objectives import Objective
from artiphys.synthesis.optimize import Stopper, optimize
from artiphys.synthesis.param import ImageParam

TEXTURE_WINDOW_RATIO = 2.4
"""Receptive field / sigma of the texture-crop window (the original code's value)."""


@dataclass(frozen=True)
class TextureRecipe(LoopRecipe):
    """Texture optimisation for the phase-invariance index.

    ``crops_per_step`` random crop offsets per step (the same for every unit); the index is
    evaluated on all offsets on a grid of step ``eval_stride_px`` (default ``max(1, RF // 8)``).
    """

    crops_per_step: int = 16
    eval_stride_px: int | None = None


def chosen_templates(ds: xr.Dataset) -> torch.Tensor:
    """Each unit's images at its chosen lambda, ``(U, n, 3, S, S)`` (channel mean added)."""
    idx = xr.DataArray(ds["chosen_index"].values, dims="unit")
    return torch.from_numpy(ds["images"].isel(**{"lambda": idx}).values.copy())


def texture_window(size_px: int, ratio: float = TEXTURE_WINDOW_RATIO) -> torch.Tensor:
    """``exp(-(r / sigma)^4)`` with ``sigma = size_px / ratio``, r from the centre, ``(S, S)``."""
    c = (size_px - 1) / 2
    idx = torch.arange(size_px, dtype=torch.float32) - c
    r = torch.sqrt(idx[:, None] ** 2 + idx[None, :] ** 2)
    return torch.exp(-(r / (size_px / ratio)) ** 4)


def unit_activation(spec, layer, images: torch.Tensor, chans: torch.Tensor, yx,
                    batch_size: int = 512) -> torch.Tensor:
    """Activation of channel ``chans[i]`` at map position ``yx`` for image ``i`` (RGB in [0, 1],
    channel mean added), on CPU, ``(len(images),)``."""
    dev = module_device(spec.module)
    out = []
    with torch.no_grad():
        for lo in range(0, len(images), batch_size):
            b = images[lo:lo + batch_size].to(dev)
            a = forward_to_layers(spec, spec.preprocessing.normalise(b), [layer])[layer]
            c = chans[lo:lo + batch_size].to(dev)
            out.append(a[torch.arange(len(b), device=dev), c, yx[0], yx[1]].cpu())
    return torch.cat(out)


def _unit_of(ds: xr.Dataset) -> tuple[str, tuple[int, int], torch.Tensor]:
    return (ds.attrs["layer"], (int(ds.attrs["unit_y"]), int(ds.attrs["unit_x"])),
            torch.as_tensor(ds["channel"].values))


def linear_combination_index(model, ds: xr.Dataset) -> xr.Dataset:
    """Mean activation of pairwise template averages / mean activation of the templates.

    Templates = each unit's diverse set at its chosen lambda; all ``n (n - 1) / 2`` pairs are
    averaged in pixel space (relative to the channel mean) and rescaled to the templates'
    mean norm (Cadena et al. 2018, section 4.5).
    """
    spec = as_spec(model)
    layer, yx, chans = _unit_of(ds)
    mean = channel_mean(spec)
    t = chosen_templates(ds) - mean.unsqueeze(0)
    U, n = t.shape[:2]
    i, j = torch.triu_indices(n, n, offset=1)
    pairs = 0.5 * (t[:, i] + t[:, j])
    target = t.flatten(2).norm(dim=2).mean(1)
    pairs = pairs * (target.view(U, 1) / pairs.flatten(2).norm(dim=2).clamp_min(1e-12)).view(
        U, -1, 1, 1, 1)
    a_t = unit_activation(spec, layer, (t + mean.unsqueeze(0)).flatten(0, 1),
                          chans.repeat_interleave(n), yx).view(U, n)
    a_p = unit_activation(spec, layer, (pairs + mean.unsqueeze(0)).flatten(0, 1),
                          chans.repeat_interleave(len(i)), yx).view(U, len(i))
    index = a_p.mean(1) / a_t.mean(1)
    return xr.Dataset({"linear_combination_index": ("unit", index.numpy()),
                       "template_activation": ("unit", a_t.mean(1).numpy()),
                       "pair_activation": (("unit", "pair"), a_p.numpy())},
                      coords={"unit": ds["unit"].values, "pair": np.arange(len(i))})


def _crop_norm_projection(window: torch.Tensor, target: float):
    """Scale each texture so that its windowed crops have mean L2 norm ``target``."""
    w2 = (window ** 2)[None, None]

    def p(x, step=0):
        sq = F.conv2d(x.pow(2).sum(1, keepdim=True), w2.to(x.device, x.dtype))
        mean_norm = sq.clamp_min(0).sqrt().flatten(1).mean(1).clamp_min(1e-12)
        return x.mul_((target / mean_norm).view(-1, 1, 1, 1))

    return p


def _windowed_crops(tex: torch.Tensor, offsets, size: int, window: torch.Tensor,
                    mean: torch.Tensor) -> torch.Tensor:
    """``(U * K, 3, S, S)``: the ``K`` crops at ``offsets`` of each texture, windowed around
    the channel mean (``mean + window * (crop - mean)``), unit slowest."""
    c = torch.stack([tex[:, :, dy:dy + size, dx:dx + size] for dy, dx in offsets], dim=1)
    return (mean + window * (c - mean)).flatten(0, 1)


def _texture_objective(layer, chans: torch.Tensor, yx, n_units: int, crops: int) -> Objective:
    """Mean activation over each texture's ``crops`` windowed crops (unit slowest)."""
    ch_rep = chans.repeat_interleave(crops)

    def fn(acts):
        a = acts[layer]
        if a.shape[0] != n_units * crops:  # the loop's final check on whole textures: centre
            cy, cx = map_center(*a.shape[-2:])
            return a[torch.arange(n_units, device=a.device), chans.to(a.device), cy, cx]
        act = a[torch.arange(a.shape[0], device=a.device), ch_rep.to(a.device), yx[0], yx[1]]
        return act.view(n_units, crops).mean(1)

    return Objective(fn, (layer,), f"texture_crops({layer}, {crops} crops)")


def _optimise_textures(spec, ds: xr.Dataset, recipe: TextureRecipe, target: float,
                       progress: bool):
    """The optimised textures ``(U, 3, 2 S - 1, 2 S - 1)`` (see :func:`phase_invariance_index`)
    and the loop's result."""
    layer, yx, chans = _unit_of(ds)
    S = int(ds.attrs["size_px"])
    T = 2 * S - 1
    U = len(chans)
    dev = module_device(spec.module)
    window = texture_window(S).to(dev)
    m = channel_mean(spec).to(dev)
    K = int(recipe.crops_per_step)

    def transform(images, step=0):
        offs = torch.randint(0, S, (K, 2))
        return _windowed_crops(images, [(int(a), int(b)) for a, b in offs], S, window, m)

    g = torch.Generator().manual_seed(int(recipe.seed))
    p = torch.randn(U, 3, T, T, generator=g).to(dev)
    proj = _crop_norm_projection(window, target)
    proj(p)
    p.requires_grad_(True)
    prm = ImageParam([p], lambda: m + p, U, T, {"kind": "pixel", "init": "white_noise"})
    return optimize(spec, _texture_objective(layer, chans, yx, U, K), prm, steps=recipe.steps,
                    transform=transform, **loop_settings(recipe, target * T / S, 1, p),
                    projection=proj, stopper=Stopper(patience=recipe.patience),
                    seed=recipe.seed, progress=progress)


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
    layer, yx, chans = _unit_of(ds)
    S = int(ds.attrs["size_px"])
    mean = channel_mean(spec)
    dev = module_device(spec.module)
    templates = chosen_templates(ds)
    U, n = templates.shape[:2]
    target = float((templates - mean.unsqueeze(0)).flatten(2).norm(dim=2).mean())
    a_t = unit_activation(spec, layer, templates.flatten(0, 1), chans.repeat_interleave(n),
                          yx).view(U, n).mean(1)
    res = _optimise_textures(spec, ds, recipe, target, progress)
    stride = int(recipe.eval_stride_px or max(1, S // 8))
    grid = [(dy, dx) for dy in range(0, S, stride) for dx in range(0, S, stride)]
    tex, window, m = res.images.to(dev), texture_window(S).to(dev), mean.to(dev)
    acts = []
    for lo in range(0, len(grid), 64):
        part = grid[lo:lo + 64]
        c = _windowed_crops(tex, part, S, window, m)
        acts.append(unit_activation(spec, layer, c, chans.repeat_interleave(len(part)),
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


__all__ = ["TEXTURE_WINDOW_RATIO", "TextureRecipe", "chosen_templates", "texture_window",
           "unit_activation", "linear_combination_index", "phase_invariance_index",
           "invariance_indices"]
