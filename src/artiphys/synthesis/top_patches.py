"""Top natural-image patches and their deconvolved features (Pospisil et al. 2018, Figs. 9-12).

:func:`top_patches` streams a set of images through the model once, keeping for each unit
(channel of a layer) the ``k`` most excitatory and ``k`` most suppressive images together
with the spatial position of the unit that responded (the maximum / minimum over the map,
or the centre unit). The running selection is a bounded top-k per unit (a merge of the
kept ``k`` with each batch), so memory does not grow with the number of images.

Afterwards, for each kept image it crops the unit's receptive field (zero-padded where
the RF leaves the image, as in the paper: padded regions are what the network's zero
padding shows the unit, i.e. the normalisation mean) and computes the unit's guided
feature: by default the Zeiler & Fergus (2014) deconvolution used by Pospisil et al.
(transposed filters, unpooling with the max-pool switches, rectified backward signal at
every ``nn.ReLU``), or guided backpropagation (Springenberg et al. 2015: also the forward
ReLU mask), cropped to the same box.

On a rectified layer (a ReLU, a SqueezeNet fire module) nearly every image drives some
unit of the map to exactly 0, so the "most suppressive" list is a tie at 0. Read the
layer's linear sublayer instead for suppression, as Pospisil et al. do for conv
sublayers (e.g. ``features.7.expand1x1`` for channels 0-63 of SqueezeNet's fire5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from artiphys.errors import ArtiphysError
from artiphys.models.layers import resolve_layer
from artiphys.models.spec import ModelSpec, as_spec, module_device
from artiphys.models.units import map_center
from artiphys.stimuli.base import StimulusSet, to_model_input
from artiphys.stimuli.natural import images as natural_images
from artiphys.synthesis.geometry import UnitGeometry, unit_geometry
from artiphys.recording.hooks import forward_to_layers

SIGNS = ("excitatory", "suppressive")


# ---- result -----------------------------------------------------------------------------

@dataclass
class TopPatches:
    """Top-k images per unit and sign, with RF crops and guided-backprop features.

    Attributes
    ----------
    table : DataFrame
        One row per (unit, sign, rank): ``unit, sign, rank, stimulus, response, y, x,
        top_px, left_px, crop_px`` (the RF box, input pixels) and every stimulus
        parameter (e.g. ``path``).
    patches : ndarray ``(units, 2, k, 3, rf, rf)`` float32
        RF crops in [0, 1] (padding = the normalisation mean); sign 0 excitatory.
    features : ndarray ``(units, 2, k, 3, rf, rf)`` float32
        Deconvnet (default) or guided-backprop signal of the unit, cropped like the patches (0 outside image).
    units : list of int
    layer : str
    geometry : UnitGeometry
    settings : dict
    """

    table: pd.DataFrame
    patches: np.ndarray
    features: np.ndarray
    units: list
    layer: str
    geometry: UnitGeometry
    settings: dict = field(default_factory=dict)


# ---- streaming selection ---------------------------------------------------------------

def _merge_topk(vals, idx, pos, new_vals, new_idx, new_pos, k, largest):
    """Keep the ``k`` largest (or smallest) of the kept and new candidates per unit."""
    v = torch.cat([vals, new_vals], 1)
    i = torch.cat([idx, new_idx], 1)
    p = torch.cat([pos, new_pos], 1)
    kk = min(k, v.shape[1])
    top = torch.topk(v, kk, dim=1, largest=largest, sorted=True).indices
    return v.gather(1, top), i.gather(1, top), p.gather(1, top[..., None].expand(-1, -1, 2))


def _map_of(acts: dict, layer, ch: torch.Tensor) -> torch.Tensor:
    a = acts[layer].float().cpu()
    if a.ndim == 2:
        a = a[:, :, None, None]
    if int(ch.max()) >= a.shape[1] or int(ch.min()) < 0:
        raise ArtiphysError(f"units must be channels 0-{a.shape[1] - 1} of this layer")
    return a[:, ch]  # (b, U, H, W)


def _extremes(a: torch.Tensor, largest: bool, position: str):
    """Per image and unit, the extreme (or centre) value over the map and its flat index."""
    b, n_units, h, w = a.shape
    flat = a.reshape(b, n_units, h * w)
    if position == "center":
        cy, cx = map_center(h, w)
        j = torch.full((b, n_units), cy * w + cx)
        return flat.gather(2, j[..., None])[..., 0], j, w
    v, j = (flat.max(2) if largest else flat.min(2))
    return v, j, w


def stream_top_k(model: ModelSpec | nn.Module, stimuli: StimulusSet, layer,
                 units: Sequence[int], k: int = 5, *, position: str = "max",
                 batch_size: int = 32, progress: bool = False, suppressive_layer=None):
    """One pass over ``stimuli``: per unit, the ``k`` highest and lowest responses.

    Returns ``(values, stimulus_index, positions)`` each with a leading ``(2, units, k)``
    (sign 0: largest, 1: smallest); positions are ``(y, x)`` map indices. ``position``:
    ``"max"`` takes the extreme over the map (arg-max for excitatory, arg-min for
    suppressive), ``"center"`` reads the centre unit. The smallest responses are read on
    ``suppressive_layer`` when given (e.g. ``<layer>:linear``), else on ``layer``.
    """
    from tqdm.auto import tqdm

    spec = as_spec(model)
    if position not in ("max", "center"):
        raise ArtiphysError(f"position must be 'max' or 'center', got {position!r}")
    if k < 1:
        raise ArtiphysError(f"k must be >= 1, got {k}")
    ch = torch.as_tensor([int(u) for u in units])
    n_units = len(ch)
    layers = [layer] + ([suppressive_layer] if suppressive_layer is not None else [])
    kept = [(torch.empty(n_units, 0), torch.empty(n_units, 0, dtype=torch.long),
             torch.empty(n_units, 0, 2, dtype=torch.long)) for _ in SIGNS]
    dev = module_device(spec.module)
    with torch.no_grad():
        for sl, images in tqdm(stimuli.batches(batch_size), disable=not progress, leave=False,
                               total=-(-len(stimuli) // batch_size), desc="top patches"):
            x = to_model_input(images, spec.preprocessing).to(dev)
            acts = forward_to_layers(spec, x, layers)
            stim = torch.arange(sl.start, sl.stop).expand(n_units, -1)
            for s, largest in enumerate((True, False)):
                v, j, w = _extremes(_map_of(acts, layers[min(s, len(layers) - 1)], ch),
                                    largest, position)
                pos = torch.stack([j // w, j % w], -1).transpose(0, 1)  # (U, b, 2)
                kept[s] = _merge_topk(*kept[s], v.T, stim, pos, k, largest)
    vals = torch.stack([kv[0] for kv in kept])
    idx = torch.stack([kv[1] for kv in kept])
    pos = torch.stack([kv[2] for kv in kept])
    return vals, idx, pos


def tied(values: torch.Tensor, k: int) -> np.ndarray:
    """``(2, units, k)`` bool: a kept response equal to another kept one or to the first
    one left out (``values`` holds ``k + 1`` per unit when there were more images): the
    choice among those images is arbitrary (e.g. many images at 0 on a ReLU)."""
    v = values.numpy()
    eq = v[..., :, None] == v[..., None, :]
    out = eq.sum(-1) > 1
    return out[..., :k]


# ---- crops and guided backprop -----------------------------------------------------------

def crop_box(images: torch.Tensor, top: int, left: int, size: int,
             fill: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Crop ``(n, C, H, W)`` to the square box, padding with ``fill`` where it leaves the image."""
    n, c, h, w = images.shape
    out = torch.empty(n, c, size, size, dtype=images.dtype)
    out[:] = torch.as_tensor(fill, dtype=images.dtype).view(1, -1, 1, 1) if torch.is_tensor(fill) \
        else fill
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + size, h), min(left + size, w)
    if y1 > y0 and x1 > x0:
        out[:, :, y0 - top:y1 - top, x0 - left:x1 - left] = images[:, :, y0:y1, x0:x1]
    return out


class _GuidedReLUGrad(torch.autograd.Function):
    """Identity forward; backward lets only positive gradients through."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp(min=0)


class _DeconvReLU(torch.autograd.Function):
    """``max(x, 0)`` forward; backward rectifies the signal, ignoring the forward mask
    (Zeiler & Fergus 2014: the deconvnet's ReLU)."""

    @staticmethod
    def forward(ctx, x):
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp(min=0)


def _guided_hook(_m, _i, out):
    return _GuidedReLUGrad.apply(out)


def _deconv_hook(_m, inputs, _out):
    return _DeconvReLU.apply(inputs[0])


METHODS = {"guided": "guided-backprop", "deconv": "deconvnet"}


def unit_features(model: ModelSpec | nn.Module, images: torch.Tensor, layer,
                  channels: Sequence[int], positions: Sequence[tuple[int, int]],
                  method: str = "deconv") -> torch.Tensor:
    """Deconvnet or guided-backprop feature of one unit per image (model input space).

    Image ``i`` (RGB in [0, 1], at the model's input size) gets the backward signal of
    the activation of ``channels[i]`` at map position ``positions[i]``. Convolutions pass
    it back through their transposed filters and max-pools unpool it to the forward pass's
    switches (the ordinary gradient); ``nn.ReLU`` modules either rectify the signal only
    (``"deconv"``, Zeiler & Fergus 2014) or also keep the forward mask (``"guided"``,
    Springenberg et al. 2015). Hooks are removed and ``inplace`` flags restored in
    ``finally``. Functional relus are not seen.
    """
    if method not in METHODS:
        raise ArtiphysError(f"unknown method {method!r}; use 'deconv' or 'guided'")
    spec = as_spec(model)
    dev = module_device(spec.module)
    x = to_model_input(images, spec.preprocessing).to(dev).detach().requires_grad_(True)
    relus = [m for m in spec.module.modules() if isinstance(m, nn.ReLU)]
    inplace = [m.inplace for m in relus]
    handles = []
    try:
        for m in relus:
            if method == "deconv":
                m.inplace = False
            handles.append(m.register_forward_hook(
                _deconv_hook if method == "deconv" else _guided_hook))
        a = forward_to_layers(spec, x, [layer])[layer]
        if a.ndim == 2:
            a = a[:, :, None, None]
        ys = torch.as_tensor([int(p[0]) for p in positions])
        xs = torch.as_tensor([int(p[1]) for p in positions])
        sel = a[torch.arange(a.shape[0]), torch.as_tensor(list(channels)), ys, xs]
        (grad,) = torch.autograd.grad(sel.sum(), x)
    finally:
        for h in handles:
            h.remove()
        for m, flag in zip(relus, inplace):
            m.inplace = flag
    return grad.detach().cpu()


def guided_backprop(model: ModelSpec | nn.Module, images: torch.Tensor, layer,
                    channels: Sequence[int], positions: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Guided-backprop gradient of one unit per image (:func:`unit_features`)."""
    return unit_features(model, images, layer, channels, positions, method="guided")


def deconvnet(model: ModelSpec | nn.Module, images: torch.Tensor, layer,
              channels: Sequence[int], positions: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Zeiler & Fergus deconvolution of one unit per image (:func:`unit_features`)."""
    return unit_features(model, images, layer, channels, positions, method="deconv")


def suppressive_layer(model: ModelSpec | nn.Module, layer, suppressive: str = "linear") -> str:
    """The layer the most suppressive responses are read on: ``<layer>:linear`` (the
    output before the layer's rectifiers; the layer itself where it has none) for
    ``"linear"``, the layer itself for ``"same"``."""
    if suppressive not in ("linear", "same"):
        raise ArtiphysError(f"unknown suppressive reading {suppressive!r}; use 'linear' "
                            "(the layer before its rectifier) or 'same'")
    ref = resolve_layer(model, layer)
    if suppressive == "same" or ref.view == "linear":
        return ref.name
    return resolve_layer(model, f"{ref.name}:linear").name


def _unit_rows(spec, stimuli, layers, geo, c, vals, idx, pos, flags, method, mean):
    """RF crops, features and table rows of one unit's kept images (both signs)."""
    size = spec.preprocessing.input_size_px
    kk = vals.shape[-1]
    patches, features, rows = [], [], []
    for s in range(2):
        imgs = torch.cat([stimuli.images(int(i), int(i) + 1) for i in idx[s]])
        if imgs.shape[-1] != size:
            imgs = torch.nn.functional.interpolate(imgs, size=(size, size), mode="bilinear",
                                                   align_corners=False, antialias=True)
        grads = unit_features(spec, imgs, layers[s], [c] * kk,
                              [tuple(p.tolist()) for p in pos[s]], method=method)
        for r in range(kk):
            y, x = (int(v) for v in pos[s, r])
            top, left, side = geo.box(y, x, c)
            patches.append(crop_box(imgs[r:r + 1], top, left, side, fill=mean)[0].numpy())
            features.append(crop_box(grads[r:r + 1], top, left, side, fill=0.0)[0].numpy())
            rows.append({"unit": c, "sign": SIGNS[s], "rank": r, "stimulus": int(idx[s, r]),
                         "response": float(vals[s, r]), "read_on": layers[s],
                         "tied": bool(flags[s, r]), "y": y, "x": x, "top_px": top,
                         "left_px": left, "crop_px": side})
    return patches, features, rows


def top_patches(model: ModelSpec | nn.Module, stimuli: StimulusSet | str | Path, layer,
                units: Sequence[int], k: int = 5, *, position: str = "max",
                batch_size: int = 32, progress: bool = False,
                method: str = "deconv", suppressive: str = "linear") -> TopPatches:
    """Top-``k`` excitatory and suppressive images of each unit, RF crops and features.

    Parameters
    ----------
    stimuli : StimulusSet or folder path
        A folder is read with :func:`artiphys.stimuli.natural.images` at the model's
        input size (shorter side resized, centre crop).
    layer : str, LayerRef or module
    units : sequence of int
        Channels of ``layer``.
    position : {"max", "center"}
        Where on the map the unit is (see :func:`stream_top_k`).
    method : {"deconv", "guided"}
        Features by Zeiler & Fergus deconvolution (the paper's Figs. 9-12) or guided
        backpropagation (:func:`unit_features`).
    suppressive : {"linear", "same"}
        Read the most suppressive images on the layer's linear sublayer (default; on a
        rectified layer the minimum is a tie at 0) or on the layer itself. Either way the
        table's ``read_on`` column names the layer read and ``tied`` flags responses the
        choice among which is arbitrary (counted in ``settings["tied"]``, with a warning).
    """
    import warnings

    if method not in METHODS:
        raise ArtiphysError(f"unknown method {method!r}; use 'deconv' or 'guided'")
    spec = as_spec(model)
    ref = resolve_layer(spec, layer)
    layers = (ref.name, suppressive_layer(spec, layer, suppressive))
    size = spec.preprocessing.input_size_px
    if not isinstance(stimuli, StimulusSet):
        stimuli = natural_images(stimuli, size_px=size)
    units = [int(u) for u in units]
    vals, idx, pos = stream_top_k(spec, stimuli, layers[0], units, k + 1, position=position,
                                  batch_size=batch_size, progress=progress,
                                  suppressive_layer=layers[1])
    kk = min(k, vals.shape[-1])
    flags = tied(vals, kk)
    vals, idx, pos = vals[..., :kk], idx[..., :kk], pos[..., :kk, :]
    geo = unit_geometry(spec, layer, size)
    rf = geo.rf_size_px if geo.is_spatial else size
    mean = torch.tensor(spec.preprocessing.mean)
    out = [_unit_rows(spec, stimuli, layers, geo, c, vals[:, u], idx[:, u], pos[:, u],
                      flags[:, u], method, mean) for u, c in enumerate(units)]
    patches = np.stack([np.stack(o[0]) for o in out]).reshape(len(units), 2, kk, 3, rf, rf)
    features = np.stack([np.stack(o[1]) for o in out]).reshape(patches.shape)
    table = pd.DataFrame(sum((o[2] for o in out), [])).join(stimuli.params, on="stimulus")
    n_tied = {sg: int(flags[s].any(-1).sum()) for s, sg in enumerate(SIGNS)}
    if any(n_tied.values()):
        warnings.warn(f"{ref.label}: tied responses among the kept images of "
                      f"{n_tied['excitatory']} units (excitatory) and "
                      f"{n_tied['suppressive']} (suppressive, read on {layers[1]}); "
                      "see the table's 'tied' column", stacklevel=2)
    settings = {"layer": ref.label, "units": units, "k": k, "position": position,
                "stimuli": stimuli.describe(), "model": spec.provenance(),
                "rf_size_px": rf, "stride_px": geo.stride_px, "method": METHODS[method],
                "suppressive": suppressive, "suppressive_layer": layers[1], "tied": n_tied}
    return TopPatches(table, patches.astype(np.float32), features.astype(np.float32), units,
                      ref.label, geo, settings)


def feature_to_rgb(feature: np.ndarray) -> np.ndarray:
    """Display a gradient feature ``(3, h, w)``: centre at 0.5, scale by the max |value|."""
    m = float(np.abs(feature).max())
    return np.clip(0.5 + 0.5 * feature / m, 0, 1) if m > 0 else np.full_like(feature, 0.5)


def plot_top_patches(result: TopPatches, unit: int, scale: int = 3):
    """Figure in the format of Pospisil et al. Fig. 9: rows = excitatory patches, their
    features, suppressive patches, their features; ranks from left to right."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if unit not in result.units:
        raise ArtiphysError(f"unit {unit} is not among the units of this result "
                            f"({result.units[:5]}...)")
    u = result.units.index(unit)
    k = result.patches.shape[2]
    fig, axes = plt.subplots(4, k, figsize=(1.3 * k, 5.6), squeeze=False)
    for s in range(2):
        for r in range(k):
            axes[2 * s, r].imshow(result.patches[u, s, r].transpose(1, 2, 0).clip(0, 1))
            axes[2 * s + 1, r].imshow(feature_to_rgb(result.features[u, s, r]).transpose(1, 2, 0))
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for s, name in enumerate(SIGNS):
        axes[2 * s, 0].set_ylabel(f"{name[:4]}.\npatch", fontsize=8)
        axes[2 * s + 1, 0].set_ylabel("feature", fontsize=8)
    fig.suptitle(f"{result.layer} unit {unit}", fontsize=10)
    fig.tight_layout()
    return fig
