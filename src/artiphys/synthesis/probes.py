"""Probes of synthesised images (Bandi & Kinley, Figs. 3-8).

For each image (synthesised for one channel, or for a whole layer) measure the maximum and
the mean activation of that channel's map (or of the whole layer) to:

* the image itself;
* the image zoomed by several factors at a fixed image size (zoom out pads with mid-gray);
* the image rotated about its centre (corners filled with mid-gray);
* colour variants: each channel isolated (others set to 0), every channel permutation
  (swaps), and grayscale (ITU-R 601 luma copied to R, G, B);
* baselines shared by all units: Gaussian noise around mid-gray, all white, all mid-gray.

The image transforms are those of :mod:`artiphys.stimuli.probes`.

:func:`probe_images` returns the variants with a parameter table, :func:`probe_responses`
an ``xarray.Dataset`` with dims ``("unit", "probe")`` (data ``max`` and ``mean``; probe
coords ``family`` and ``value``), :func:`probe_table` a long pandas table, and
:func:`plot_probes` the figure.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import xarray as xr

from artiphys.errors import StimulusError
from artiphys.models.layers import resolve_layer
from artiphys.models.spec import ModelSpec, as_spec, module_device
from artiphys.stimuli import probes as sp
from artiphys.stimuli.probes import baseline_images
from artiphys.recording.hooks import forward_to_layers

ZOOMS = (0.5, 0.75, 1.0, 1.5, 2.0)
ROTATIONS_DEG = (0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0)
FILL = 0.5  # mid-gray where zoom-out or rotation brings in area from outside the image


def baselines(size_px: int, seed: int = 0) -> tuple[torch.Tensor, list]:
    """Noise, white and mid-gray images (:func:`artiphys.stimuli.probes.baseline_images`)."""
    names = ["noise", "white", "gray"]
    return torch.cat([baseline_images(k, 1, size_px, seed) for k in names]), names


def probe_variants(image: torch.Tensor, zooms: Sequence[float] = ZOOMS,
                   rotations_deg: Sequence[float] = ROTATIONS_DEG,
                   colors: bool = True) -> tuple[torch.Tensor, pd.DataFrame]:
    """All probe variants of one or more images ``(n, 3, H, W)`` -> ``(n, m, 3, H, W)``."""
    if image.ndim != 4 or image.shape[1] != 3:
        raise StimulusError(f"expected images (n, 3, H, W), got {tuple(image.shape)}")
    out, rows = [image.clone()], [("original", "1")]
    for z in zooms:
        out.append(image.clone() if float(z) == 1.0 else sp.zoom(image, float(z), fill=FILL))
        rows.append(("zoom", f"{float(z):g}"))
    for a in rotations_deg:
        out.append(image.clone() if float(a) % 360 == 0 else sp.rotate(image, float(a), fill=FILL))
        rows.append(("rotation", f"{float(a):g}"))
    if colors:
        for name in "rgb":
            out.append(sp.keep_channel(image, name))
            rows.append(("color", f"only_{name}"))
        for perm in itertools.permutations("rgb"):
            if perm == ("r", "g", "b"):
                continue
            out.append(sp.permute_channels(image, "".join(perm)))
            rows.append(("color", "swap_" + "".join(perm)))
        out.append(sp.grayscale(image))
        rows.append(("color", "gray"))
    table = pd.DataFrame(rows, columns=["family", "value"])
    return torch.stack(out, dim=1), table


def _stats(act: torch.Tensor, channels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Max and mean over a channel's map (per image), or over the whole layer."""
    if channels is not None:
        a = act[torch.arange(act.shape[0]), channels]
    else:
        a = act
    a = a.reshape(a.shape[0], -1)
    return a.max(1).values, a.mean(1)


def probe_responses(model: ModelSpec | torch.nn.Module, layer, images: torch.Tensor,
                    units: Sequence[int] | None = None, *, zooms: Sequence[float] = ZOOMS,
                    rotations_deg: Sequence[float] = ROTATIONS_DEG, colors: bool = True,
                    seed: int = 0, batch_size: int = 64) -> xr.Dataset:
    """Max and mean activation of each unit's channel to the probes of its image.

    Parameters
    ----------
    images : Tensor ``(n, 3, H, W)`` in [0, 1]
        One synthesised image per unit.
    units : sequence of int, optional
        The channel each image was made for; ``None`` measures the whole layer (Bandi &
        Kinley's layer maximal images).

    Returns
    -------
    xarray.Dataset
        ``max`` and ``mean`` with dims ``("unit", "probe")``; coords ``unit`` (channel, or
        image index when ``units`` is None), ``family``/``value`` on ``probe``; attrs with
        ``analysis="probes"`` (the report's figure kind), the layer and settings.
    """
    spec = as_spec(model)
    ref = resolve_layer(spec, layer)
    n = images.shape[0]
    if units is not None and len(units) != n:
        raise StimulusError(f"{n} images but {len(units)} units; give one unit per image")
    variants, table = probe_variants(images, zooms, rotations_deg, colors)
    base, base_names = baselines(images.shape[-1], seed)
    m = variants.shape[1]
    dev = module_device(spec.module)
    flat = torch.cat([variants.reshape(n * m, *images.shape[1:]),
                      base.repeat(n, 1, 1, 1)])  # baselines once per unit
    ch = None if units is None else torch.as_tensor(list(units))
    unit_of = torch.cat([torch.arange(n).repeat_interleave(m), torch.arange(n).repeat_interleave(3)])
    maxs, means = [], []
    with torch.no_grad():
        for lo in range(0, flat.shape[0], batch_size):
            x = flat[lo:lo + batch_size].to(dev)
            act = forward_to_layers(spec, spec.preprocessing.normalise(x), [layer])[layer].cpu()
            mx, mn = _stats(act, None if ch is None else ch[unit_of[lo:lo + batch_size]])
            maxs.append(mx)
            means.append(mn)
    mx, mn = torch.cat(maxs).numpy(), torch.cat(means).numpy()
    k = n * m
    mx = np.concatenate([mx[:k].reshape(n, m), mx[k:].reshape(n, 3)], axis=1)
    mn = np.concatenate([mn[:k].reshape(n, m), mn[k:].reshape(n, 3)], axis=1)
    families = list(table["family"]) + ["baseline"] * 3
    values = list(table["value"]) + base_names
    unit_coord = np.arange(n) if units is None else np.asarray(list(units))
    return xr.Dataset(
        {"max": (("unit", "probe"), mx.astype(np.float32)),
         "mean": (("unit", "probe"), mn.astype(np.float32))},
        coords={"unit": unit_coord, "probe": np.arange(len(families)),
                "family": ("probe", families), "value": ("probe", values)},
        attrs={"analysis": "probes", "layer": ref.label,
               "scope": "layer" if units is None else "channel",
               "zooms": list(map(float, zooms)), "rotations_deg": list(map(float, rotations_deg)),
               "noise_seed": seed})


def probe_table(ds: xr.Dataset) -> pd.DataFrame:
    """Long table: one row per (unit, probe) with family, value, max, mean."""
    df = ds[["max", "mean"]].to_dataframe().reset_index()
    return df[["unit", "family", "value", "max", "mean"]]


def plot_probes(ds: xr.Dataset, unit: int | None = None, title: str | None = None):
    """Figure in the style of Bandi & Kinley Figs. 3-6: responses to the image and its
    colour variants and baselines (bars, max and mean), to zoom and to rotation (lines).

    ``unit=None`` averages over units (with the s.d. as error bars). Returns the
    matplotlib Figure.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    sel = ds if unit is None else ds.sel(unit=[unit])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), gridspec_kw={"width_ratios": [2.2, 1, 1]})

    def stat(name, family):
        idx = np.flatnonzero(sel["family"].values == family) if isinstance(family, str) else family
        v = sel[name].values[:, idx]
        return v.mean(0), v.std(0), sel["value"].values[idx]

    idx_bar = np.flatnonzero(np.isin(sel["family"].values, ["original", "color", "baseline"]))
    mx, sx, labels = stat("max", idx_bar)
    mn, sn, _ = stat("mean", idx_bar)
    fams = sel["family"].values[idx_bar]
    labels = ["image" if f == "original" else f"{lab} (baseline)" if f == "baseline" else lab
              for f, lab in zip(fams, labels)]
    xs = np.arange(len(idx_bar))
    axes[0].bar(xs - 0.2, mx, 0.4, yerr=sx if unit is None else None, label="max")
    axes[0].bar(xs + 0.2, mn, 0.4, yerr=sn if unit is None else None, label="mean")
    axes[0].set_xticks(xs, labels, rotation=60, ha="right", fontsize=8)
    axes[0].set_ylabel("activation")
    axes[0].legend(fontsize=8)
    for ax, family, xlabel in [(axes[1], "zoom", "zoom factor"),
                               (axes[2], "rotation", "rotation (deg)")]:
        m, s, vals = stat("max", family)
        a, sa, _ = stat("mean", family)
        xv = vals.astype(float)
        ax.errorbar(xv, m, yerr=s if unit is None else None, marker="o", label="max")
        ax.errorbar(xv, a, yerr=sa if unit is None else None, marker="s", label="mean")
        ax.set_xlabel(xlabel)
    scope = f"unit {unit}" if unit is not None else f"mean of {sel.sizes['unit']} units"
    fig.suptitle(title or f"{ds.attrs.get('layer', '')}: {scope}")
    fig.tight_layout()
    return fig
