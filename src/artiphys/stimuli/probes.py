"""Probe transforms and baseline images (Bandi & Kinley).

Transforms take float images ``(n, 3, H, W)`` RGB in [0, 1] and return new images of the
same shape: zoom at fixed image size, rotation, keeping one colour channel, permuting or
swapping channels, grayscale. :func:`probe_set` applies a transform at several values to
every stimulus of a set (parameter columns ``probe``, ``probe_value`` added).
Baselines: Gaussian noise, all-white and all-gray images (:func:`baseline_images`).

Geometry: zoom and rotation are about the image centre, sampled bilinearly; pixels that
come from outside the source image are ``fill`` (default each image's mean border colour). ``angle_deg`` turns
the picture counter-clockwise as seen on screen.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from artiphys.errors import StimulusError
from artiphys.stimuli import _validate as V
from artiphys.stimuli._options import as_list
from artiphys.stimuli.base import StimulusSet
from artiphys.stimuli.registry import make_stimuli, register_set

CHANNELS = "rgb"
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601


def _check_images(images: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(images) or images.ndim != 4 or images.shape[1] != 3:
        raise StimulusError("expected images as a float tensor (n, 3, H, W) in [0, 1]")
    return images.float()


def _fill_value(images: torch.Tensor, fill: float | None) -> torch.Tensor | float:
    """``fill``, or (None) each image's mean border colour, shape (n, 3, 1, 1)."""
    if fill is not None:
        return float(fill)
    border = torch.cat([images[..., 0, :], images[..., -1, :], images[..., :, 0], images[..., :, -1]], -1)
    return border.mean(-1)[..., None, None]


def _affine(images: torch.Tensor, matrix: torch.Tensor, fill) -> torch.Tensor:
    """Sample ``images`` at ``matrix @ (x, y)`` (normalised coordinates, x right, y down)."""
    n = images.shape[0]
    theta = torch.cat([matrix, torch.zeros(2, 1)], 1).unsqueeze(0).expand(n, -1, -1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (out + fill).clamp(0, 1)


def zoom(images: torch.Tensor, factor: float, fill: float | None = None) -> torch.Tensor:
    """Magnify by ``factor`` about the centre at fixed image size (factor < 1 shrinks).

    Area outside the source is ``fill`` (default: each image's mean border colour, so
    shapes on black stay on black and gratings on gray on gray).
    """
    images = _check_images(images)
    fill = _fill_value(images, fill)
    if factor <= 0:
        raise StimulusError(f"zoom factor must be positive, got {factor}")
    if factor < 1:  # shrinking: antialias first so fine patterns do not alias
        h = images.shape[-1]
        small = max(1, h - 2 * round((h - h * factor) / 2))  # same parity: centre stays put
        shrunk = F.interpolate(images, size=(small, small), mode="bilinear", antialias=True,
                               align_corners=False)
        out = torch.zeros_like(images) + fill
        o = (h - small) // 2
        out[..., o:o + small, o:o + small] = shrunk
        return out
    return _affine(images, torch.eye(2) / float(factor), fill)


def rotate(images: torch.Tensor, angle_deg: float, fill: float | None = None) -> torch.Tensor:
    """Rotate counter-clockwise (as seen on screen) by ``angle_deg`` about the centre.

    Corners brought in from outside the source are ``fill`` (default: mean border colour).
    """
    images = _check_images(images)
    fill = _fill_value(images, fill)
    a = math.radians(angle_deg)
    # output pixel p (x right, y down) samples the input at p rotated by -a on screen,
    # which in y-down coordinates is the matrix [[cos a, -sin a], [sin a, cos a]]
    m = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float32)
    return _affine(images, m, fill)


def _channel_index(c) -> int:
    if isinstance(c, str) and c.lower() in CHANNELS and len(c) == 1:
        return CHANNELS.index(c.lower())
    if isinstance(c, (int, np.integer)) and 0 <= int(c) < 3:
        return int(c)
    raise StimulusError(f"unknown colour channel {c!r}: use r, g, b or 0, 1, 2")


def keep_channel(images: torch.Tensor, channel) -> torch.Tensor:
    """Keep one colour channel (``"r"``, ``"g"``, ``"b"`` or 0-2), the other two set to 0."""
    images = _check_images(images)
    out = torch.zeros_like(images)
    k = _channel_index(channel)
    out[:, k] = images[:, k]
    return out


def permute_channels(images: torch.Tensor, order) -> torch.Tensor:
    """Reorder channels: ``order="brg"`` (or ``(2, 0, 1)``) makes output channel i = input ``order[i]``."""
    images = _check_images(images)
    idx = [_channel_index(c) for c in order]
    if sorted(idx) != [0, 1, 2]:
        raise StimulusError(f"channel order {order!r} must be a permutation of rgb")
    return images[:, idx].clone()


def swap_channels(images: torch.Tensor, a, b) -> torch.Tensor:
    """Swap two colour channels (e.g. ``"r", "g"``); with one channel active, this moves it."""
    order = list(range(3))
    i, j = _channel_index(a), _channel_index(b)
    order[i], order[j] = j, i
    return permute_channels(images, order)


def grayscale(images: torch.Tensor, weights=LUMA_WEIGHTS) -> torch.Tensor:
    """Luma ``sum(w_c * channel_c)`` (BT.601 weights) replicated over the three channels."""
    images = _check_images(images)
    w = torch.tensor(weights, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * w).sum(1, keepdim=True).expand(-1, 3, -1, -1).clone()


TRANSFORMS = {
    "zoom": (zoom, float),
    "rotate": (rotate, float),
    "keep_channel": (keep_channel, str),
    "permute_channels": (permute_channels, str),
    "swap_channels": (lambda im, v: swap_channels(im, v[0], v[1]), str),
    "grayscale": (lambda im, v=None: grayscale(im), str),
}


_VALUE_CHECKS = {"zoom": V.positive, "rotate": V.finite}
_VALUE_EXAMPLES = {"zoom": "0.5;1;2", "rotate": "0;90;180"}


def apply_probe(images: torch.Tensor, transform: str, value=None) -> torch.Tensor:
    """Apply the transform named ``transform`` (a key of ``TRANSFORMS``) with ``value``."""
    if transform not in TRANSFORMS:
        raise StimulusError(f"unknown probe {transform!r}: use one of {', '.join(TRANSFORMS)}")
    fn, _ = TRANSFORMS[transform]
    return fn(images, value)


def probe_set(base: StimulusSet, transform: str, values=None) -> StimulusSet:
    """Every stimulus of ``base`` under ``transform`` at each of ``values`` (values outer).

    Columns: the base set's columns, plus ``base_index`` (row in ``base``), ``probe``
    and ``probe_value``. ``values`` for the transforms: ``zoom`` factors, ``rotate``
    angles in degrees, ``keep_channel`` ``"r"``/``"g"``/``"b"``, ``permute_channels``
    orders such as ``"brg"``, ``swap_channels`` pairs such as ``"rg"``; ``grayscale``
    takes none.
    """
    if transform not in TRANSFORMS:
        raise StimulusError(f"unknown probe {transform!r}: use one of {', '.join(TRANSFORMS)}")
    cast = TRANSFORMS[transform][1]
    vals = ["luma"] if transform == "grayscale" else as_list(values, cast)
    if vals == [None] or not vals:
        raise StimulusError(f"probe {transform!r} needs values (e.g. values=0.5;1;2)")
    if transform in _VALUE_CHECKS:
        vals = [_VALUE_CHECKS[transform]("values", v, _VALUE_EXAMPLES[transform]) for v in vals]
    blocks = []
    for v in vals:
        b = base.params.copy()
        b["base_index"] = np.arange(len(base))
        b["probe"], b["probe_value"] = transform, v
        blocks.append(b)
    params = pd.concat(blocks, ignore_index=True)

    def render(rows: pd.DataFrame) -> torch.Tensor:
        out = torch.empty(len(rows), 3, base.size_px, base.size_px)
        pos = np.arange(len(rows))
        for v in pd.unique(rows["probe_value"]):
            sel = pos[(rows["probe_value"] == v).to_numpy()]
            idx = rows["base_index"].to_numpy()[sel]
            imgs = base._render(base.params.iloc[idx])
            out[torch.as_tensor(sel)] = apply_probe(imgs, transform, None if transform == "grayscale" else v)
        return out

    return StimulusSet(f"{base.name}+{transform}", params, render, base.size_px,
                       {"base": base.describe(), "probe": transform})


@register_set("probe")
def probe(base: str = "shapes", transform: str = "zoom", values=None, **base_options) -> StimulusSet:
    """A registered set under a probe transform: ``probe:base=shapes,transform=zoom,values=0.5;1;2``.

    Options other than ``base``, ``transform`` and ``values`` go to the base set.
    """
    if base == "probe":
        raise StimulusError("a probe set cannot be its own base")
    return probe_set(make_stimuli(base, **base_options), transform, values)


def baseline_images(kind: str, n: int = 1, size_px: int = 224, seed: int = 0, mean: float = 0.5,
                    sigma: float = 0.2) -> torch.Tensor:
    """Baseline images ``(n, 3, size_px, size_px)``: ``"noise"``, ``"white"`` or ``"gray"``.

    ``noise``: independent Gaussian pixels (per channel) of ``mean`` and ``sigma``, clipped
    to [0, 1], image i seeded with ``seed + i``; ``white``: all 1; ``gray``: all ``mean``.
    """
    if kind == "white":
        return torch.ones(n, 3, size_px, size_px)
    if kind == "gray":
        return torch.full((n, 3, size_px, size_px), float(mean))
    if kind == "noise":
        out = torch.empty(n, 3, size_px, size_px)
        for i in range(n):
            g = torch.Generator().manual_seed(int(seed) + i)
            out[i] = (mean + sigma * torch.randn(3, size_px, size_px, generator=g)).clamp(0, 1)
        return out
    raise StimulusError(f"unknown baseline {kind!r}: use noise, white or gray")


@register_set("baselines")
def baselines(kind="noise;white;gray", n: int = 1, size_px: int = 224, seed: int = 0,
              mean: float = 0.5, sigma: float = 0.2) -> StimulusSet:
    """Baseline images: ``n`` of each ``kind`` (list or ``"noise;white;gray"``)."""
    kinds = V.sweep("kind", kind, "noise;white;gray", cast=str)
    n, size_px = V.count("n", n, 1), V.count("size_px", size_px, 224)
    mean, sigma = V.number("mean", mean, 0.5, low=0, high=1), V.nonnegative("sigma", sigma, 0.2)
    seed = V.count("seed", seed, 0, minimum=0)
    for k in kinds:
        if k not in ("noise", "white", "gray"):
            raise StimulusError(f"unknown baseline {k!r}: use noise, white or gray")
    params = pd.DataFrame([(k, seed + i if k == "noise" else -1) for k in kinds for i in range(int(n))],
                          columns=["kind", "seed"])
    params["size_px"], params["mean"], params["sigma"] = int(size_px), float(mean), float(sigma)

    def render(rows: pd.DataFrame) -> torch.Tensor:
        return torch.cat([baseline_images(r.kind, 1, int(size_px), max(int(r.seed), 0), mean, sigma)
                          for r in rows.itertuples()]) if len(rows) else torch.zeros(0, 3, size_px, size_px)

    return StimulusSet("baselines", params, render, int(size_px), {})
