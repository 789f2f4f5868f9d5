"""Kernels and reference stimuli of the analytic cells (see :mod:`artiphys.models.analytic`
for the conventions: luminance contrast input, ``x`` rightwards and ``y`` upwards from the
centre pixel, orientation of the wave vector, phase at the unit's centre)."""

from __future__ import annotations

import math

import torch

from artiphys.models.units import map_center

DEFAULT_TRUNCATE_SIGMAS = 5.0
"""Kernels extend to this many envelope sigmas each side (the Gaussian is 4e-6 of its peak
there), which keeps the energy model phase-invariant to better than 1e-6 (at 4 sigmas the
truncation alone leaves a 5e-5 phase ripple)."""


# ---- kernels ------------------------------------------------------------------------------

def _centred_grid(size_px: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` offsets in px from the centre pixel ``size_px // 2``, y pointing up."""
    idx = torch.arange(size_px, dtype=torch.float64) - (size_px // 2)
    rows, cols = torch.meshgrid(idx, idx, indexing="ij")
    return cols, -rows


def sigma_from_bandwidth(sf_cycles_per_px: float, bandwidth_oct: float = 1.0) -> float:
    """Envelope sigma (px) of a Gabor with the given spatial-frequency bandwidth.

    ``sigma = sqrt(2 ln 2) / (2 pi f) * (2**b + 1) / (2**b - 1)`` for a full-width at
    half-maximum bandwidth of ``b`` octaves (Daugman 1985); 0.56 / f for b = 1.
    """
    if sf_cycles_per_px <= 0 or bandwidth_oct <= 0:
        raise ValueError("sf_cycles_per_px and bandwidth_oct must be positive")
    b = 2.0 ** bandwidth_oct
    return math.sqrt(2 * math.log(2)) / (2 * math.pi * sf_cycles_per_px) * (b + 1) / (b - 1)


def _odd_size(radius_px: float) -> int:
    return 2 * int(math.ceil(radius_px)) + 1


def gabor_kernel(orientation_deg: float, sf_cycles_per_px: float, phase_deg: float = 0.0, *,
                 sigma_px: float | None = None, aspect_ratio: float = 1.0,
                 size_px: int | None = None,
                 truncate: float = DEFAULT_TRUNCATE_SIGMAS) -> torch.Tensor:
    """A Gabor filter, float64 of shape ``(size_px, size_px)``.

    ``g(x, y) = exp(-(x'^2 + a^2 y'^2) / (2 sigma^2)) cos(2 pi f x' + phase) / Z`` with
    ``x' = x cos(theta) + y sin(theta)``, ``y' = -x sin(theta) + y cos(theta)`` (module
    conventions) and ``Z = sum(envelope) / 2``, so that the matched full-contrast grating
    gives 1 (up to ``exp(-2 (2 pi f sigma)^2)``). The filter is not made zero-mean: its DC
    response is ``exp(-(2 pi f sigma)^2 / 2)`` of the peak (0.2% at one octave), which keeps
    an even/odd pair in exact quadrature.

    Parameters
    ----------
    orientation_deg, sf_cycles_per_px, phase_deg : float
        Carrier orientation, spatial frequency and phase (module conventions).
    sigma_px : float, optional
        Envelope sigma along the carrier; default :func:`sigma_from_bandwidth` (1 octave).
    aspect_ratio : float
        ``a`` above: > 1 makes the envelope shorter along the stripes.
    size_px : int, optional
        Odd kernel side; default covers ``truncate`` sigmas each side.
    """
    sigma = float(sigma_px) if sigma_px is not None else sigma_from_bandwidth(sf_cycles_per_px)
    if sigma <= 0 or aspect_ratio <= 0:
        raise ValueError("sigma_px and aspect_ratio must be positive")
    if size_px is None:
        size_px = _odd_size(truncate * sigma * max(1.0, 1.0 / aspect_ratio))
    x, y = _centred_grid(int(size_px))
    theta = math.radians(orientation_deg)
    xr = x * math.cos(theta) + y * math.sin(theta)
    yr = -x * math.sin(theta) + y * math.cos(theta)
    envelope = torch.exp(-(xr ** 2 + (aspect_ratio * yr) ** 2) / (2 * sigma ** 2))
    carrier = torch.cos(2 * math.pi * sf_cycles_per_px * xr + math.radians(phase_deg))
    return envelope * carrier / (envelope.sum() / 2)


def dog_kernel(center_sigma_px: float, surround_sigma_px: float | None = None, *,
               surround_weight: float = 1.0, size_px: int | None = None,
               truncate: float = 3.5) -> torch.Tensor:
    """A difference-of-Gaussians filter, float64 ``(size_px, size_px)``.

    ``k = G(center_sigma) / sum G(center_sigma) - w G(surround_sigma) / sum G(surround_sigma)``
    (each Gaussian sampled on the pixel grid and normalised to unit sum), so with ``w = 1``
    the filter is balanced: a uniform field gives 0. Surround sigma defaults to 3 x centre.
    """
    surround_sigma_px = surround_sigma_px or 3.0 * center_sigma_px
    if center_sigma_px <= 0 or surround_sigma_px <= 0:
        raise ValueError("sigmas must be positive")
    if size_px is None:
        size_px = _odd_size(truncate * max(center_sigma_px, surround_sigma_px))
    x, y = _centred_grid(int(size_px))
    r2 = x ** 2 + y ** 2
    c = torch.exp(-r2 / (2 * center_sigma_px ** 2))
    s = torch.exp(-r2 / (2 * surround_sigma_px ** 2))
    return c / c.sum() - surround_weight * s / s.sum()


def sinusoid(size_px: int, orientation_deg: float, sf_cycles_per_px: float,
             phase_deg: float = 0.0, contrast: float = 1.0,
             center_px: tuple[float, float] | None = None) -> torch.Tensor:
    """A full-field sinusoidal grating in the module conventions, float32 ``(3, H, W)`` in [0, 1].

    ``I = 0.5 + 0.5 c cos(2 pi f x' + phase)``, ``x'`` measured from ``center_px``
    (``(row, col)``, default the centre unit ``(size_px // 2, size_px // 2)``). A reference
    stimulus for testing the analytic cells; the stimulus library has the full set.
    """
    cy, cx = center_px if center_px is not None else map_center(size_px, size_px)
    idx = torch.arange(size_px, dtype=torch.float64)
    rows, cols = torch.meshgrid(idx, idx, indexing="ij")
    x, y = cols - cx, -(rows - cy)
    theta = math.radians(orientation_deg)
    xr = x * math.cos(theta) + y * math.sin(theta)
    img = 0.5 + 0.5 * contrast * torch.cos(2 * math.pi * sf_cycles_per_px * xr
                                           + math.radians(phase_deg))
    return img.to(torch.float32).expand(3, size_px, size_px).clone()


def spot(size_px: int, radius_px: float, *, contrast: float = 1.0,
         center_px: tuple[float, float] | None = None) -> torch.Tensor:
    """A uniform disc of luminance ``0.5 + 0.5 c`` on mid-grey, float32 ``(3, H, W)``."""
    cy, cx = center_px if center_px is not None else map_center(size_px, size_px)
    idx = torch.arange(size_px, dtype=torch.float32)
    rows, cols = torch.meshgrid(idx, idx, indexing="ij")
    disc = ((rows - cy) ** 2 + (cols - cx) ** 2) <= radius_px ** 2
    img = torch.full((size_px, size_px), 0.5) + 0.5 * contrast * disc.float()
    return img.expand(3, size_px, size_px).clone()
