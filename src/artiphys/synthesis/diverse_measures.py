"""What a diverse set is measured by: activations, seen distances, the chosen lambda, the gain.

Used while optimising (:func:`min_pairwise_distance`, :func:`seen_weights`) and on the
finished sets (:func:`measure_sets`, :func:`choose_lambda`, :func:`sets_dataset`) of
:func:`artiphys.synthesis.diverse.diverse_sets`.

Seen distance. The distance between images ``i`` and ``j`` of a set is the Euclidean distance
``d_ij`` of their features (the preceding layer at the positions the unit reads), weighted by
how well the unit sees the less-seen of the two::

    d*_ij = min(s_i, s_j) d_ij,   s_i = clip(a_i / (threshold * mean_k a_k), 0, 1)

An image driving the unit at least ``threshold`` x its set's mean counts fully; an image the
unit does not see counts nothing. Without the weight (``distance_weight="none"``, the paper's
eq. 2) an image can leave the unit's view altogether and still count as "far": in the
features of a Hubel-Wiesel cell a blank image lies at the full feature norm from every
driving image, farther than two phases 60 deg apart (chord 0.88 of the norm), so at large
lambda one image of six went blank (activation ~0, ~0% of its energy in the cell's Gabor
pair) and the others spread over five phases.

Diversity gain. ``min_distance_rel = d*(lambda) / d_ref`` with
``d_ref = max(d*(0), gain_floor x rms(0))`` (``rms(0)``: root-mean-square norm of the
lambda = 0 images' feature vectors); ``diversity_gain`` is its value at the chosen lambda.
When the lambda = 0 images coincide (``d*(0) ~ 0``, as for cells with one best image) the
paper's ratio ``d*(lambda) / d*(0)`` is unbounded (1e8 and more, set by rounding);
the floor keeps it finite: it then reads "min distance in units of ``gain_floor`` x the
feature norm" and ``lambda0_collapsed`` says so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from artiphys.models.spec import as_spec, module_device
from artiphys.recording.hooks import forward_to_layers
from artiphys.synthesis.loop import channel_mean


def seen_weights(activation: torch.Tensor, threshold: float) -> torch.Tensor:
    """``s_i = clip(a_i / (threshold * mean_k a_k), 0, 1)`` per group, ``(G, n) -> (G, n)``.

    The group mean is treated as a constant (no gradient through it); a group whose mean is
    not positive gets ``s_i = 1`` for driving images and 0 for the others.
    """
    ref = (float(threshold) * activation.detach().mean(1, keepdim=True)).clamp_min(1e-30)
    return (activation / ref).clamp(0.0, 1.0)


def min_pairwise_distance(features: torch.Tensor, weights: torch.Tensor | None = None
                          ) -> torch.Tensor:
    """``min_{i < j} w_ij ||f_i - f_j||`` per group: ``features (G, n, D) -> (G,)``, with
    ``w_ij = min(weights_i, weights_j)`` (``weights (G, n)``; 1 when None)."""
    n = features.shape[1]
    if n < 2:
        return features.new_zeros(features.shape[0])
    i, j = torch.triu_indices(n, n, offset=1, device=features.device)
    d = (features[:, i] - features[:, j]).pow(2).sum(-1).clamp_min(1e-20).sqrt()
    if weights is not None:
        d = d * torch.minimum(weights[:, i], weights[:, j])
    return d.min(dim=1).values


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


@dataclass(frozen=True)
class SetMeasures:
    """Measures of stored sets: ``activation (U, L, n)``; per ``(U, L)``: ``min_distance``
    (seen, see module doc), ``min_distance_unweighted`` (the paper's) and ``feature_rms``
    (root-mean-square norm of the images' feature vectors)."""

    activation: np.ndarray
    min_distance: np.ndarray
    min_distance_unweighted: np.ndarray
    feature_rms: np.ndarray


def _features_and_activations(spec, layer, units, flat, per_unit, unit_yx, feature_layer,
                              window, batch_size) -> tuple[torch.Tensor, torch.Tensor]:
    """Activations ``(N,)`` and flattened features ``(N, D)`` of images ``flat``."""
    chans = torch.tensor([int(u) for u in units]).repeat_interleave(per_unit)
    dev = module_device(spec.module)
    layers = [layer] + ([feature_layer] if feature_layer is not None else [])
    acts, feats = [], []
    y, x = unit_yx
    with torch.no_grad():
        for lo in range(0, len(flat), batch_size):
            batch = flat[lo:lo + batch_size].to(dev)
            out = forward_to_layers(spec, spec.preprocessing.normalise(batch), layers)
            c = chans[lo:lo + batch_size].to(dev)
            acts.append(out[layer][torch.arange(len(batch), device=dev), c, y, x].cpu())
            if feature_layer is not None:
                f = out[feature_layer]
                if window is not None:
                    f = f[:, :, window[0], window[1]]
            else:
                f = batch - channel_mean(spec).to(dev)
            feats.append(f.flatten(1).cpu())
    return torch.cat(acts), torch.cat(feats)


def measure_sets(model, layer, units: Sequence[int], images: torch.Tensor, unit_yx,
                 feature_layer=None, *, window: tuple[slice, slice] | None = None,
                 weight_threshold: float | None = None, batch_size: int = 512) -> SetMeasures:
    """Activations, min pairwise distances and feature norms of stored sets.

    ``images`` is ``(U, L, n, 3, S, S)`` (channel mean added); distances are in
    ``feature_layer`` at map positions ``window`` (pixels, ``image - mean``, when None),
    weighted by :func:`seen_weights` with ``weight_threshold`` (unweighted when None).
    """
    spec = as_spec(model)
    U, L, n = images.shape[:3]
    flat = images.reshape(U * L * n, *images.shape[3:])
    act, f = _features_and_activations(spec, layer, units, flat, L * n, unit_yx,
                                       feature_layer, window, batch_size)
    act, f = act.view(U * L, n), f.view(U * L, n, -1)
    plain = min_pairwise_distance(f).view(U, L)
    seen = plain if weight_threshold is None else min_pairwise_distance(
        f, seen_weights(act, weight_threshold)).view(U, L)
    rms = f.pow(2).sum(-1).mean(-1).sqrt().view(U, L)
    return SetMeasures(act.view(U, L, n).numpy(), seen.numpy(), plain.numpy(), rms.numpy())


def _relative(m: SetMeasures, i0: int, gain_floor: float):
    """``(mean_act, act_rel, reference_distance, dist_rel, collapsed)`` (see module doc)."""
    mean_act = m.activation.mean(axis=2)
    d0 = m.min_distance[:, i0]
    floor = float(gain_floor) * m.feature_rms[:, i0]
    d_ref = np.maximum(d0, floor)
    with np.errstate(divide="ignore", invalid="ignore"):
        act_rel = mean_act / mean_act[:, i0:i0 + 1]
        dist_rel = m.min_distance / d_ref[:, None]
    return mean_act, act_rel, d_ref, dist_rel, d0 < floor


def sets_dataset(imgs: torch.Tensor, m: SetMeasures, units, recipe, settings) -> xr.Dataset:
    """The dataset :func:`artiphys.synthesis.diverse.diverse_sets` returns (see there)."""
    lams = np.asarray(recipe.lambdas, dtype=float)
    i0 = int(np.argmin(lams))
    mean_act, act_rel, d_ref, dist_rel, collapsed = _relative(m, i0, recipe.gain_floor)
    chosen = choose_lambda(lams, mean_act, recipe.threshold)
    gain = dist_rel[np.arange(len(units)), chosen]
    # a unit no image drives at lambda = 0 has no activation to keep: no chosen lambda
    responsive = mean_act[:, i0] > 0
    chosen = np.where(responsive, chosen, i0)
    gain = np.where(responsive, gain, np.nan)
    excess = mean_act.max(axis=1) / np.where(responsive, mean_act[:, i0], np.nan) - 1
    per_ul = ("unit", "lambda")
    f32 = np.float32
    size = imgs.shape[-1]
    return xr.Dataset(
        {"images": (per_ul + ("image", "rgb", "row", "col"), imgs.numpy().astype(f32)),
         "activation": (per_ul + ("image",), m.activation.astype(f32)),
         "mean_activation": (per_ul, mean_act.astype(f32)),
         "min_distance": (per_ul, m.min_distance.astype(f32)),
         "min_distance_unweighted": (per_ul, m.min_distance_unweighted.astype(f32)),
         "mean_activation_rel": (per_ul, act_rel.astype(f32)),
         "min_distance_rel": (per_ul, dist_rel.astype(f32)),
         "min_distance_scaled": (per_ul, (m.min_distance / np.maximum(m.feature_rms, 1e-30)
                                          ).astype(f32)),
         "reference_distance": (("unit",), d_ref.astype(f32)),
         "lambda0_collapsed": (("unit",), collapsed),
         "reference_excess": (("unit",), excess.astype(f32)),
         "chosen_lambda": (("unit",), lams[chosen]),
         "chosen_index": (("unit",), chosen.astype(np.int64)),
         "diversity_gain": (("unit",), gain.astype(f32)),
         "responsive": (("unit",), responsive)},
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
               "distance_weight": recipe.distance_weight, "gain_floor": recipe.gain_floor,
               "feature_layer": settings["feature_layer"] or "",
               "unit_y": settings["unit_yx"][0], "unit_x": settings["unit_yx"][1],
               "settings": json.dumps(settings, default=str)})


__all__ = ["seen_weights", "min_pairwise_distance", "choose_lambda", "SetMeasures",
           "measure_sets", "sets_dataset"]
