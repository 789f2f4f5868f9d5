"""Gratings, Gabor patches, centre-surround (DoG) patterns, spots and annuli.

Coordinates
-----------
Images are ``size_px`` square; pixel ``(row, col)`` has its centre at ``(col, row)``.
Patterns are computed in a frame centred on ``(x_px, y_px)`` (default the image centre
``(size_px - 1) / 2``) with **y up**: ``x = col - x_px``, ``y = y_px - row``.

Orientation
-----------
``orientation_deg`` is the direction of the grating's wave vector (the direction across
the bars), counter-clockwise from +x with y up: 0 deg = luminance varies left-right
(vertical bars), 90 deg = horizontal bars. The luminance is

    L(x, y) = mean * (1 + contrast * w(2 pi f (x cos(theta) + y sin(theta)) + phase))

with ``w = cos`` (``waveform="sine"``) or ``sign(cos)`` (``"square"``), ``f`` in cycles per
pixel, ``phase_deg`` in degrees; phase 0 puts a bright bar through (x_px, y_px) and
increasing phase moves the pattern against the wave vector (by ``phase / (360 f)`` px).
Values are clipped to [0, 1]; gray images are replicated over RGB.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import torch

from artiphys.errors import StimulusError
from artiphys.stimuli.base import StimulusSet
from artiphys.stimuli.registry import register_set
from artiphys.stimuli import _validate as V


def _frame(size_px: int, x_px: float | None, y_px: float | None):
    cx = (size_px - 1) / 2 if x_px is None else float(x_px)
    cy = (size_px - 1) / 2 if y_px is None else float(y_px)
    cols = np.arange(size_px, dtype=np.float64)
    x = (cols - cx)[None, :]
    y = (cy - cols)[:, None]
    return x, y


def _check(size_px, contrast, mean):
    if int(size_px) < 1:
        raise StimulusError(f"size_px must be >= 1, got {size_px}")
    if not 0 <= mean <= 1:
        raise StimulusError(f"mean luminance must be in [0, 1], got {mean}")
    if contrast < 0:
        raise StimulusError(f"contrast must be >= 0, got {contrast}")


def grating(size_px: int = 227, orientation_deg: float = 0.0, sf_cycles_per_px: float = 0.05,
            phase_deg: float = 0.0, contrast: float = 1.0, mean: float = 0.5,
            waveform: str = "sine", radius_px: float | None = None, x_px: float | None = None,
            y_px: float | None = None) -> np.ndarray:
    """Sinusoidal or square-wave grating, full field or in a circular aperture.

    Parameters
    ----------
    size_px : int
    orientation_deg : float
        Wave-vector direction, counter-clockwise from +x, y up (module doc).
    sf_cycles_per_px : float
        Spatial frequency in cycles per pixel (Nyquist is 0.5).
    phase_deg : float
    contrast : float
        Michelson contrast (0..1 keeps the pattern inside [0, 2 mean]).
    mean : float
        Mean luminance in [0, 1]; also the value outside the aperture.
    waveform : {"sine", "square"}
    radius_px : float or None
        Radius of a circular aperture centred at (x_px, y_px); None = full field.
    x_px, y_px : float or None
        Pattern / aperture centre in image pixels (col, row); default the image centre.

    Returns
    -------
    ndarray (size_px, size_px) float32 in [0, 1].
    """
    _check(size_px, contrast, mean)
    x, y = _frame(int(size_px), x_px, y_px)
    th = np.deg2rad(orientation_deg)
    arg = 2 * np.pi * sf_cycles_per_px * (x * np.cos(th) + y * np.sin(th)) + np.deg2rad(phase_deg)
    if waveform == "sine":
        w = np.cos(arg)
    elif waveform == "square":
        w = np.sign(np.cos(arg))
    else:
        raise StimulusError(f"unknown waveform {waveform!r}: use 'sine' or 'square'")
    img = mean * (1 + contrast * w)
    if radius_px is not None:
        img = np.where(x ** 2 + y ** 2 <= float(radius_px) ** 2, img, mean)
    return np.clip(img, 0, 1).astype(np.float32)


def gabor(size_px: int = 227, orientation_deg: float = 0.0, sf_cycles_per_px: float = 0.05,
          phase_deg: float = 0.0, sigma_px: float = 10.0, aspect_ratio: float = 1.0,
          contrast: float = 1.0, mean: float = 0.5, x_px: float | None = None,
          y_px: float | None = None) -> np.ndarray:
    """Gabor patch: a sinusoidal grating under a Gaussian envelope, on a ``mean`` background.

    ``L = mean * (1 + contrast * exp(-(u^2 + (g v)^2) / (2 sigma^2)) * cos(2 pi f u + phase))``
    with ``u`` along the wave vector, ``v`` along the bars and ``g = aspect_ratio``
    (cf. ``skimage.filters.gabor_kernel``). Conventions as :func:`grating`.
    """
    _check(size_px, contrast, mean)
    if sigma_px <= 0:
        raise StimulusError(f"sigma_px must be positive, got {sigma_px}")
    x, y = _frame(int(size_px), x_px, y_px)
    th = np.deg2rad(orientation_deg)
    u = x * np.cos(th) + y * np.sin(th)
    v = -x * np.sin(th) + y * np.cos(th)
    env = np.exp(-(u ** 2 + (aspect_ratio * v) ** 2) / (2 * sigma_px ** 2))
    img = mean * (1 + contrast * env * np.cos(2 * np.pi * sf_cycles_per_px * u + np.deg2rad(phase_deg)))
    return np.clip(img, 0, 1).astype(np.float32)


def dog_pattern(size_px: int = 227, center_sigma_px: float = 4.0, surround_sigma_px: float = 12.0,
                surround_weight: float = 1.0, contrast: float = 1.0, mean: float = 0.5,
                polarity: int = 1, x_px: float | None = None, y_px: float | None = None) -> np.ndarray:
    """Difference-of-Gaussians centre-surround luminance pattern.

    ``D = exp(-r^2 / (2 sc^2)) - w (sc / ss)^2 exp(-r^2 / (2 ss^2))`` (``sc``, ``ss`` the
    centre and surround sigmas, ``w = surround_weight``), scaled so that ``max|D| = 1``:
    ``L = mean * (1 + polarity * contrast * D)``. With ``surround_weight=1``
    the two Gaussians have equal volume (zero-mean DoG). ``polarity=+1`` is an on-centre
    (bright centre) pattern, ``-1`` off-centre.
    """
    _check(size_px, contrast, mean)
    if not 0 < center_sigma_px < surround_sigma_px:
        raise StimulusError("need 0 < center_sigma_px < surround_sigma_px")
    if polarity not in (1, -1):
        raise StimulusError(f"polarity must be 1 (on-centre) or -1 (off-centre), got {polarity}")
    x, y = _frame(int(size_px), x_px, y_px)
    r2 = x ** 2 + y ** 2
    c = np.exp(-r2 / (2 * center_sigma_px ** 2))
    s = np.exp(-r2 / (2 * surround_sigma_px ** 2)) * (center_sigma_px / surround_sigma_px) ** 2
    d = c - surround_weight * s
    d = d / np.abs(d).max()
    return np.clip(mean * (1 + polarity * contrast * d), 0, 1).astype(np.float32)


def disk(size_px: int = 227, radius_px: float = 8.0, inner_radius_px: float = 0.0,
         intensity: float = 1.0, background: float = 0.5, x_px: float | None = None,
         y_px: float | None = None, supersample: int = 4) -> np.ndarray:
    """A spot (``inner_radius_px=0``) or an annulus, uniform ``intensity`` on ``background``.

    Edges are anti-aliased by ``supersample`` x ``supersample`` sub-pixels per pixel.
    """
    if radius_px <= inner_radius_px or inner_radius_px < 0:
        raise StimulusError("need 0 <= inner_radius_px < radius_px")
    s = int(supersample)
    x, y = _frame(int(size_px) * s, None if x_px is None else (x_px + 0.5) * s - 0.5,
                  None if y_px is None else (y_px + 0.5) * s - 0.5)
    r2 = x ** 2 + y ** 2
    m = ((r2 <= (radius_px * s) ** 2) & (r2 >= (inner_radius_px * s) ** 2)).astype(np.float32)
    cov = m.reshape(size_px, s, size_px, s).mean(axis=(1, 3))
    return (background + cov * (intensity - background)).astype(np.float32)


def neuromatch_grating(angle_deg: float, sf: float = 1 / 28, res: float = 0.1, patch: bool = False) -> np.ndarray:
    """The binarised oriented grating of Neuromatch Academy W1D5 Tutorial 2, exactly.

    ``cos(xx cos(a) + yy sin(a))`` with ``xx = sf * col / res``, ``yy = sf * row / res``
    (``sf`` in radians per pixel of the 640x480 full-resolution image; ``a`` the angle
    from vertical, row index pointing down), binarised to 0/1, then minus 0.5. With
    ``patch`` the angle is offset by 0.1 rad and only a circle of radius ``640/6 * res``
    centred at (0.75 W, H/2) keeps the grating (0.5 - 0.5 = 0 elsewhere).

    Returns
    -------
    ndarray (480 res, 640 res) float32 in {-0.5, 0, 0.5}.
    """
    a = np.deg2rad(angle_deg)
    wpix, hpix = 640, 480
    xx, yy = np.meshgrid(sf * np.arange(0, wpix * res) / res, sf * np.arange(0, hpix * res) / res)
    return _binarise(xx, yy, a, patch, wpix * res, res) - 0.5


def _binarise(xx, yy, a, patch, wpix_res, res):
    if patch:
        g = np.cos(xx * np.cos(a + .1) + yy * np.sin(a + .1))
    else:
        g = np.cos(xx * np.cos(a) + yy * np.sin(a))
    g = np.where(g > 0, 1.0, 0.0)
    if patch:
        h, w = g.shape
        xxc, yyc = np.meshgrid(np.arange(w), np.arange(h))
        icirc = np.hypot(xxc - w * .75, yyc - h / 2) < wpix_res / res / 3 / 2 * res
        g[~icirc] = 0.5
    return g.astype(np.float32)


def binarised_grating(size_px: int = 64, angle_deg: float = 0.0, sf: float = 1 / 28, res: float = 0.1,
                      patch: bool = False) -> np.ndarray:
    """Square ``size_px`` version of :func:`neuromatch_grating` as an image in {0, 0.5, 1}.

    Same formula and units (``sf`` radians per full-resolution pixel, ``res`` the
    tutorial's resolution factor, ``angle_deg`` from vertical with rows pointing down),
    on a square grid, without the tutorial's final -0.5 (images live in [0, 1]: subtract
    0.5 to get the tutorial's values).
    """
    n = int(size_px)
    xx, yy = np.meshgrid(sf * np.arange(n) / res, sf * np.arange(n) / res)
    if patch:
        g = np.cos(xx * np.cos(np.deg2rad(angle_deg) + .1) + yy * np.sin(np.deg2rad(angle_deg) + .1))
        g = np.where(g > 0, 1.0, 0.0)
        xxc, yyc = np.meshgrid(np.arange(n), np.arange(n))
        g[np.hypot(xxc - n * .75, yyc - n / 2) >= 640 / 3 / 2 * res] = 0.5
        return g.astype(np.float32)
    return _binarise(xx, yy, np.deg2rad(angle_deg), False, 640 * res, res)


# ---- sets ----------------------------------------------------------------------------------

def _sweep_set(name: str, fn, size_px: int, sweep: dict, fixed: dict, meta: dict | None = None) -> StimulusSet:
    """Every combination of the ``sweep`` lists (first key outermost), ``fixed`` alongside."""
    keys = list(sweep)
    combos = list(itertools.product(*(sweep[k] for k in keys)))
    params = pd.DataFrame(combos, columns=keys)
    for k, v in fixed.items():
        params[k] = v
    params["size_px"] = int(size_px)

    def render(rows: pd.DataFrame) -> torch.Tensor:
        arg_keys = [c for c in rows.columns]
        imgs = [fn(**{k: (None if (isinstance(v, float) and np.isnan(v)) else v)
                      for k, v in zip(arg_keys, r)}) for r in rows.itertuples(index=False)]
        gray = torch.from_numpy(np.stack(imgs)) if imgs else torch.zeros(0, size_px, size_px)
        return gray[:, None].expand(-1, 3, -1, -1)

    return StimulusSet(name, params, render, int(size_px), meta or {})


def _common(size_px, mean, x_px, y_px):
    """The options every luminance pattern has, checked: size, mean level, centre."""
    return (V.count("size_px", size_px, 227), V.number("mean", mean, 0.5, low=0, high=1),
            V.optional_number("x_px", x_px, 113), V.optional_number("y_px", y_px, 113))


def _centre(size_px: int, x_px: float | None, y_px: float | None) -> tuple[float, float]:
    """Pattern centre in pixels (col, row): the given one or the image centre."""
    c = (size_px - 1) / 2
    return (c if x_px is None else x_px), (c if y_px is None else y_px)


@register_set("gratings")
def gratings(orientation_deg=(0, 45, 90, 135), sf_cycles_per_px=0.05, phase_deg=0, contrast=1.0,
             mean: float = 0.5, waveform: str = "sine", radius_px: float | None = None,
             x_px: float | None = None, y_px: float | None = None, size_px: int = 227) -> StimulusSet:
    """Sweep of gratings: every combination of orientation x SF x phase x contrast.

    Each of ``orientation_deg``, ``sf_cycles_per_px``, ``phase_deg``, ``contrast`` is a
    number, a list, or a string ``"0;45;90"``. Conventions in the module doc.
    """
    if waveform not in ("sine", "square"):
        raise StimulusError(f"unknown waveform {waveform!r}: use 'sine' or 'square'")
    size_px, mean, x_px, y_px = _common(size_px, mean, x_px, y_px)
    sweep = {"orientation_deg": V.sweep("orientation_deg", orientation_deg, "0,45,90", V.finite),
             "sf_cycles_per_px": V.sweep("sf_cycles_per_px", sf_cycles_per_px, "0.02,0.05",
                                         V.nonnegative),
             "phase_deg": V.sweep("phase_deg", phase_deg, "0,90", V.finite),
             "contrast": V.sweep("contrast", contrast, "0.5,1", V.nonnegative)}
    if radius_px is not None:
        radius_px = V.positive("radius_px", radius_px, 40)
        V.require_on_canvas("the grating's aperture", *_centre(size_px, x_px, y_px), radius_px,
                            size_px, "move x_px, y_px onto the canvas or enlarge radius_px")
    fixed = {"mean": mean, "waveform": waveform, "radius_px": radius_px, "x_px": x_px, "y_px": y_px}
    return _sweep_set("gratings", grating, size_px, sweep, fixed)


@register_set("gabors")
def gabors(orientation_deg=(0, 45, 90, 135), sf_cycles_per_px=0.05, phase_deg=0, sigma_px=10.0,
           contrast=1.0, aspect_ratio: float = 1.0, mean: float = 0.5, x_px: float | None = None,
           y_px: float | None = None, size_px: int = 227) -> StimulusSet:
    """Sweep of Gabor patches: orientation x SF x phase x sigma x contrast (lists allowed)."""
    size_px, mean, x_px, y_px = _common(size_px, mean, x_px, y_px)
    sweep = {"orientation_deg": V.sweep("orientation_deg", orientation_deg, "0,45,90", V.finite),
             "sf_cycles_per_px": V.sweep("sf_cycles_per_px", sf_cycles_per_px, "0.02,0.05",
                                         V.nonnegative),
             "phase_deg": V.sweep("phase_deg", phase_deg, "0,90", V.finite),
             "sigma_px": V.sweep("sigma_px", sigma_px, "4,8", V.positive),
             "contrast": V.sweep("contrast", contrast, "0.5,1", V.nonnegative)}
    aspect_ratio = V.nonnegative("aspect_ratio", aspect_ratio, 1)
    reach = min(sweep["sigma_px"]) * V.INVISIBLE_SIGMAS / min(aspect_ratio, 1) if aspect_ratio else np.inf
    V.require_on_canvas("the Gabor patch", *_centre(size_px, x_px, y_px), reach, size_px,
                        "move x_px, y_px onto the canvas or enlarge sigma_px")
    fixed = {"aspect_ratio": aspect_ratio, "mean": mean, "x_px": x_px, "y_px": y_px}
    return _sweep_set("gabors", gabor, size_px, sweep, fixed)


def _dog_or_disk(kind, center_sigma_px, surround_sigma_px, surround_weight, contrast, mean, polarity,
                 radius_px, inner_radius_px, intensity, x_px, y_px, size_px):
    if kind == "dog":
        return dog_pattern(size_px, center_sigma_px, surround_sigma_px, surround_weight, contrast, mean,
                           int(polarity), x_px, y_px)
    if kind == "spot":
        return disk(size_px, radius_px, 0.0, intensity, mean, x_px, y_px)
    return disk(size_px, radius_px, inner_radius_px, intensity, mean, x_px, y_px)


@register_set("dog")
def dog(kind: str = "dog", center_sigma_px=4.0, surround_sigma_px=12.0, surround_weight: float = 1.0,
        contrast=1.0, polarity=1, radius_px=8.0, inner_radius_px=4.0, intensity: float = 1.0,
        mean: float = 0.5, x_px: float | None = None, y_px: float | None = None,
        size_px: int = 227) -> StimulusSet:
    """Centre-surround stimuli: ``kind="dog"`` patterns, ``"spot"`` disks or ``"annulus"``.

    For ``dog``, ``center_sigma_px``, ``surround_sigma_px``, ``contrast`` and ``polarity``
    may be lists; for ``spot`` / ``annulus``, ``radius_px`` (and ``inner_radius_px``) may
    be lists (size-tuning and area-summation curves), drawn at ``intensity`` on ``mean``.
    """
    if kind not in ("dog", "spot", "annulus"):
        raise StimulusError(f"unknown dog kind {kind!r}: use dog, spot or annulus")
    size_px, mean, x_px, y_px = _common(size_px, mean, x_px, y_px)
    if kind == "dog":
        sweep, fixed, reach = _dog_sweep(center_sigma_px, surround_sigma_px, contrast, polarity)
    else:
        sweep, fixed, reach = _disk_sweep(kind, radius_px, inner_radius_px, intensity)
    V.require_on_canvas(f"the {kind}", *_centre(size_px, x_px, y_px), reach, size_px,
                        "move x_px, y_px onto the canvas")
    fixed.update({"kind": kind, "surround_weight": V.finite("surround_weight", surround_weight, 1),
                  "mean": mean, "x_px": x_px, "y_px": y_px})
    return _sweep_set("dog", _dog_or_disk, size_px, sweep, fixed)


def _dog_sweep(center_sigma_px, surround_sigma_px, contrast, polarity):
    sweep = {"center_sigma_px": V.sweep("center_sigma_px", center_sigma_px, "2,4", V.positive),
             "surround_sigma_px": V.sweep("surround_sigma_px", surround_sigma_px, "8,12", V.positive),
             "contrast": V.sweep("contrast", contrast, "0.5,1", V.nonnegative),
             "polarity": V.sweep("polarity", polarity, "1,-1", cast=int)}
    if max(sweep["center_sigma_px"]) >= min(sweep["surround_sigma_px"]):
        raise StimulusError("every center_sigma_px must be smaller than every surround_sigma_px, got "
                            f"{sweep['center_sigma_px']} and {sweep['surround_sigma_px']}")
    if not set(sweep["polarity"]) <= {1, -1}:
        raise StimulusError(f"polarity must be 1 (on-centre) or -1 (off-centre), got {sweep['polarity']}")
    fixed = {"radius_px": np.nan, "inner_radius_px": np.nan, "intensity": np.nan}
    return sweep, fixed, min(sweep["surround_sigma_px"]) * V.INVISIBLE_SIGMAS


def _disk_sweep(kind, radius_px, inner_radius_px, intensity):
    sweep = {"radius_px": V.sweep("radius_px", radius_px, "2,4,8", V.positive),
             "inner_radius_px": V.sweep("inner_radius_px",
                                        inner_radius_px if kind == "annulus" else 0.0, "4",
                                        V.nonnegative)}
    if max(sweep["inner_radius_px"]) >= min(sweep["radius_px"]):
        raise StimulusError("every inner_radius_px must be smaller than every radius_px, got "
                            f"{sweep['inner_radius_px']} and {sweep['radius_px']}")
    fixed = {"center_sigma_px": np.nan, "surround_sigma_px": np.nan, "contrast": np.nan,
             "polarity": 0, "intensity": V.number("intensity", intensity, 1, low=0, high=1)}
    return sweep, fixed, min(sweep["radius_px"])


@register_set("binarised_grating")
def binarised_gratings(angle_deg=(-90, -45, 0, 45, 90), sf: float = 1 / 28, res: float = 0.1,
                       patch: bool = False, size_px: int = 64) -> StimulusSet:
    """The Neuromatch W1D5 binarised oriented gratings (``angle_deg`` from vertical; list ok).

    See :func:`binarised_grating`; values 0/1 (0.5 outside a patch). The tutorial's
    48 x 64 images are :func:`neuromatch_grating`.
    """
    sweep = {"angle_deg": V.sweep("angle_deg", angle_deg, "0,45,90", V.finite)}
    fixed = {"sf": V.nonnegative("sf", sf, 0.0357), "res": V.positive("res", res, 0.1),
             "patch": bool(patch)}
    return _sweep_set("binarised_grating", binarised_grating, V.count("size_px", size_px, 64), sweep,
                      fixed)
