"""Image priors for diverse feature visualisation: the ``alpha * log P(x)`` term.

A prior is any callable (a plain function or an ``nn.Module``) that maps a batch of images
*relative to the channel mean* -- ``x = image - channel_mean``, shape ``(n, 3, H, W)``, on
the [0, 1] pixel scale -- to a per-image log-likelihood ``(n,)``, differentiable in ``x``.
Constants that do not depend on ``x`` may be dropped (only gradients matter).

Cadena et al. (2018) used PixelCNN++ trained on CIFAR-100 (alpha = 0.0005), whose weights
are not available here; pass your own module (wrapped with :func:`as_prior` if it expects
another input convention) to use one. Shipped:

:class:`SpectralGaussianPrior`
    A stationary Gaussian with the ``1 / f^2`` power spectrum of natural images (Field
    1987; van der Schaaf & van Hateren 1996): ``log P(x) = -1/2 sum_f |X(f)|^2 / S(f)``
    with ``S(f) = amplitude / max(|f|, f_min)^exponent`` (``|f|`` in cycles per image).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from artiphys.errors import ArtiphysError

Prior = Callable[[torch.Tensor], torch.Tensor]


class SpectralGaussianPrior(nn.Module):
    """Gaussian log-likelihood under a ``1 / |f|^exponent`` power spectrum (see module doc).

    Parameters
    ----------
    exponent : float
        Spectral slope; 2 for natural images (amplitude ``1/f``).
    amplitude : float
        Power at one cycle per image, in (pixel units)^2; scales the log-likelihood by
        ``1 / amplitude``.
    f_min_cycles : float
        Frequencies below this (cycles per image; the DC component has ``|f| = 0``) are
        treated as ``f_min_cycles``.

    ``forward(x)`` takes ``(n, C, H, W)`` images relative to the channel mean and returns the
    per-image log-likelihood ``(n,)`` (up to a constant), divided by the number of pixels so
    that alpha does not depend on the image size.
    """

    def __init__(self, exponent: float = 2.0, amplitude: float = 1.0, f_min_cycles: float = 1.0):
        super().__init__()
        if amplitude <= 0 or f_min_cycles <= 0:
            raise ArtiphysError("amplitude and f_min_cycles of the spectral prior must be > 0")
        self.exponent = float(exponent)
        self.amplitude = float(amplitude)
        self.f_min_cycles = float(f_min_cycles)

    def inverse_power(self, h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
        """``1 / S(f)`` for the ``rfft2`` coefficients of an ``h x w`` image."""
        fy = torch.fft.fftfreq(h, device=device)[:, None] * h
        fx = torch.fft.rfftfreq(w, device=device)[None, :] * w
        f = torch.sqrt(fy ** 2 + fx ** 2).clamp(min=self.f_min_cycles)
        return (f ** self.exponent / self.amplitude).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        spec = torch.fft.rfft2(x, norm="ortho")
        power = spec.real ** 2 + spec.imag ** 2
        # rfft2 keeps half the spectrum: count the mirrored columns twice
        weight = torch.full((w // 2 + 1,), 2.0, device=x.device, dtype=x.dtype)
        weight[0] = 1.0
        if w % 2 == 0:
            weight[-1] = 1.0
        inv = self.inverse_power(h, w, x.device, x.dtype) * weight
        return -0.5 * (power * inv).flatten(1).sum(1) / (h * w)

    def extra_repr(self) -> str:
        return (f"exponent={self.exponent}, amplitude={self.amplitude}, "
                f"f_min_cycles={self.f_min_cycles}")


def as_prior(module: Callable, *, offset: torch.Tensor | float = 0.0, scale: float = 1.0) -> Prior:
    """Adapt a user's density model to the prior convention.

    The wrapped prior feeds ``module((x + offset) * scale)``: e.g. a PixelCNN++ that reads
    images in [-1, 1] is ``as_prior(pixelcnn, offset=channel_mean - 0.5, scale=2.0)`` (the
    channel mean as a tensor ``(1, 3, 1, 1)``). The module must return one log-likelihood
    per image (a log-likelihood summed over pixels is fine; alpha absorbs the scale).
    """
    if not callable(module):
        raise ArtiphysError("a prior must be callable: images (n, 3, H, W) -> log P (n,)")

    def prior(x: torch.Tensor) -> torch.Tensor:
        off = torch.as_tensor(offset, dtype=x.dtype, device=x.device)
        out = module((x + off) * scale)
        if out.ndim != 1 or out.shape[0] != x.shape[0]:
            raise ArtiphysError(f"the prior returned shape {tuple(out.shape)} for {x.shape[0]} "
                                "images; it must return one log-likelihood per image")
        return out

    prior.module = module  # type: ignore[attr-defined]
    return prior


PRIORS = {"none": None, "spectral": SpectralGaussianPrior}


def make_prior(name: str) -> Prior | None:
    """A shipped prior by name: ``"none"`` or ``"spectral"`` (1/f^2 Gaussian)."""
    if name not in PRIORS:
        raise ArtiphysError(f"unknown prior {name!r}; use one of {sorted(PRIORS)} or pass a "
                            "module to diverse_sets(prior=...)")
    factory = PRIORS[name]
    return None if factory is None else factory()


def prior_name(prior) -> str:
    if prior is None:
        return "none"
    inner = getattr(prior, "module", prior)
    return type(inner).__name__ if isinstance(inner, nn.Module) else getattr(inner, "__name__",
                                                                             type(inner).__name__)


__all__ = ["SpectralGaussianPrior", "as_prior", "make_prior", "prior_name", "PRIORS", "Prior"]
