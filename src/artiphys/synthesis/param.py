"""Image parameterisations: ``(params, image_fn)`` pairs.

``params`` are the leaf tensors the optimiser updates; ``image_fn()`` turns them into a
batch of RGB images ``(n, 3, H, W)`` in [0, 1]. Each parameterisation wraps the next:
spatial basis (pixels or Fourier coefficients) -> colour (decorrelated RGB, gray, one
channel) -> squashing into [0, 1].

Colour options (``color``):

``"all"``
    three free channels (optionally decorrelated, see :data:`COLOR_SQRT_COV`);
``"gray"``
    one free channel copied to R, G and B;
``"r"``, ``"g"``, ``"b"``
    one free channel; the other two are exactly zero (Bandi & Kinley's single-colour
    maximal images).

For ``pixel`` parameterisations the parameter tensor *is* the image minus mid-gray
(``image = clip(0.5 + p)``), so the Yosinski et al. (2015) projections (L2 decay, blur,
clipping, norm constraint) act on the image exactly as in the paper.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from artiphys.errors import ArtiphysError

# Symmetric square root of the RGB covariance of natural images, estimated by us from the
# 1000 images of ../shared/data/imagenet-sample-256 (pixels in [0, 1], resized to 64 px).
# Multiplying independent channels by it gives colours correlated like natural images'.
COLOR_SQRT_COV = torch.tensor([[0.2160, 0.1203, 0.0897],
                               [0.1203, 0.1886, 0.1262],
                               [0.0897, 0.1262, 0.2207]])

COLORS = ("all", "gray", "r", "g", "b")
SQUASHES = ("sigmoid", "clip")


@dataclass
class ImageParam:
    """A parameterised batch of images.

    Attributes
    ----------
    params : list of Tensor
        Leaf tensors (``requires_grad=True``) the optimiser updates.
    image_fn : callable
        ``image_fn() -> Tensor (n, 3, H, W)`` RGB in [0, 1].
    n : int
        Batch size.
    size_px : int
        Image side.
    settings : dict
        JSON-able description (kind, colour, decay, ...), stored with results.
    """

    params: list
    image_fn: Callable[[], torch.Tensor]
    n: int
    size_px: int
    settings: dict = field(default_factory=dict)

    def __call__(self) -> torch.Tensor:
        return self.image_fn()

    @property
    def is_pixel(self) -> bool:
        return self.settings.get("kind") == "pixel"


def _channels(color: str) -> int:
    if color not in COLORS:
        raise ArtiphysError(f"unknown color {color!r}; use one of {', '.join(COLORS)}")
    return 3 if color == "all" else 1


def _squash(x: torch.Tensor, squash: str) -> torch.Tensor:
    if squash == "sigmoid":
        return torch.sigmoid(x)
    if squash == "clip":
        return (0.5 + x).clamp(0.0, 1.0)
    raise ArtiphysError(f"unknown squash {squash!r}; use one of {', '.join(SQUASHES)}")


def to_rgb(x: torch.Tensor, color: str, decorrelate: bool, squash: str) -> torch.Tensor:
    """Map free channels ``(n, 1 or 3, H, W)`` to RGB images in [0, 1] (see module doc)."""
    if color == "all":
        if decorrelate:
            m = COLOR_SQRT_COV.to(x.device, x.dtype)
            m = m / m.norm(dim=0).max()
            x = torch.einsum("ij,njhw->nihw", m, x)
        return _squash(x, squash)
    one = _squash(x, squash)
    if color == "gray":
        return one.expand(-1, 3, -1, -1)
    index = "rgb".index(color)
    zeros = torch.zeros_like(one)
    return torch.cat([one if i == index else zeros for i in range(3)], dim=1)


def _generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


def pixel(n: int, size_px: int, *, color: str = "all", sd: float = 0.01, squash: str = "clip",
          decorrelate: bool = False, seed: int = 0, device=None) -> ImageParam:
    """Free pixels: ``image = squash(p)``, ``p ~ N(0, sd)`` at start (mid-gray plus noise).

    ``squash="clip"`` (default) gives ``image = clip(0.5 + p, 0, 1)``, the setting of
    Yosinski et al. (2015) where clipping is a projection step.
    """
    c = _channels(color)
    _squash(torch.zeros(1), squash)  # validate early
    p = (torch.randn(n, c, size_px, size_px, generator=_generator(seed)) * sd).to(device)
    p.requires_grad_(True)

    def image_fn():
        return to_rgb(p, color, decorrelate, squash)

    return ImageParam([p], image_fn, n, size_px,
                      {"kind": "pixel", "color": color, "sd": sd, "squash": squash,
                       "decorrelate": decorrelate, "seed": seed})


def fft_frequencies(size_px: int) -> torch.Tensor:
    """Radial spatial frequency (cycles/px) of each ``rfft2`` coefficient, ``(H, W//2+1)``."""
    fy = torch.fft.fftfreq(size_px)[:, None]
    fx = torch.fft.rfftfreq(size_px)[None, :]
    return torch.sqrt(fy ** 2 + fx ** 2)


def fourier_scale(size_px: int, decay: float) -> torch.Tensor:
    """``1 / max(f, 1/size)^decay``, normalised to unit root-mean-square over coefficients.

    With an orthonormal inverse FFT, white coefficients of s.d. ``sd`` then give pixels of
    s.d. about ``sd`` whose spectrum falls as ``1/f^decay`` (natural images: decay ~ 1).
    """
    f = fft_frequencies(size_px).clamp(min=1.0 / size_px)
    scale = f ** (-float(decay))
    return scale / scale.pow(2).mean().sqrt()


def fourier(n: int, size_px: int, *, decay: float = 1.0, color: str = "all", sd: float = 0.01,
            decorrelate: bool = True, squash: str = "sigmoid", seed: int = 0,
            device=None) -> ImageParam:
    """Fourier coefficients scaled by ``1/f^decay``, decorrelated colour, sigmoid squash.

    Gradient steps on the coefficients are steps preconditioned towards low frequencies
    (Olah et al. 2017, Distill); ``decay=0`` is white (pixel-equivalent) preconditioning.
    """
    c = _channels(color)
    _squash(torch.zeros(1), squash)
    half = size_px // 2 + 1
    g = _generator(seed)
    coeffs = (torch.randn(n, c, size_px, half, 2, generator=g) * sd).to(device)
    coeffs.requires_grad_(True)
    scale = fourier_scale(size_px, decay).to(coeffs.device)

    def image_fn():
        spectrum = torch.view_as_complex(coeffs) * scale
        x = torch.fft.irfft2(spectrum, s=(size_px, size_px), norm="ortho")
        return to_rgb(x, color, decorrelate, squash)

    return ImageParam([coeffs], image_fn, n, size_px,
                      {"kind": "fourier", "decay": decay, "color": color, "sd": sd,
                       "decorrelate": decorrelate, "squash": squash, "seed": seed})


PARAM_KINDS = {"pixel": pixel, "fourier": fourier}


def make_param(kind: str, n: int, size_px: int, **options) -> ImageParam:
    """Build a parameterisation by name (``"pixel"`` or ``"fourier"``)."""
    if kind not in PARAM_KINDS:
        raise ArtiphysError(f"unknown parameterisation {kind!r}; use one of {sorted(PARAM_KINDS)}")
    if int(size_px) < 1 or int(n) < 1:
        raise ArtiphysError(f"need n >= 1 images of size >= 1 px, got n={n}, size_px={size_px}")
    return PARAM_KINDS[kind](int(n), int(size_px), **options)


__all__ = ["ImageParam", "pixel", "fourier", "make_param", "to_rgb", "fft_frequencies",
           "fourier_scale", "COLOR_SQRT_COV", "COLORS"]
