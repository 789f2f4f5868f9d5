"""Tiny factories for the pluggable callables of the optimisation loop.

Four kinds, one signature each (all default to "do nothing" in the loop):

transform ``t(images, step) -> images``
    Differentiable, usually random, applied to the images before the model sees them
    (jitter, scale, rotation; Olah et al. 2017 "transformation robustness").
regulariser ``r(images) -> Tensor (n,)``
    A per-image penalty subtracted from the objective (total variation, L2).
preconditioner ``g(grad, step) -> grad``
    Applied to each parameter's gradient before the optimiser step.
projection ``p(param, step) -> param``
    Applied in place to each parameter tensor after the optimiser step, under
    ``torch.no_grad`` (Yosinski et al. 2015: L2 decay, Gaussian blur every k steps,
    clipping, and a fixed L2-norm constraint). On a ``pixel`` parameterisation the
    parameter is the image minus mid-gray, so these act on the image as in the paper.

Randomness comes from torch's global generator; the loop seeds it inside
``torch.random.fork_rng`` so runs are reproducible and the caller's state is untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from artiphys.errors import ArtiphysError

Transform = Callable[[torch.Tensor, int], torch.Tensor]


def identity(x, step=0):
    """The do-nothing transform / preconditioner / projection."""
    return x


def compose(fns: Sequence[Callable]) -> Callable:
    """Chain transforms (or preconditioners, or projections) left to right."""
    fns = [f for f in fns if f is not None]

    def composed(x, step=0):
        for f in fns:
            x = f(x, step)
        return x

    composed.parts = fns  # type: ignore[attr-defined]
    return composed


def _randint(high_inclusive: int) -> int:
    return int(torch.randint(0, high_inclusive + 1, ()).item())


def _choice(values: Sequence[float]) -> float:
    return float(values[int(torch.randint(0, len(values), ()).item())])


# ---- transforms ------------------------------------------------------------------------

def jitter(px: int) -> Transform:
    """Random translation by cropping: output is ``px`` smaller, offset uniform in 0..px."""
    px = int(px)
    if px < 0:
        raise ArtiphysError(f"jitter must be >= 0 px, got {px}")

    def t(x, step=0):
        if px == 0:
            return x
        h, w = x.shape[-2:]
        if px >= min(h, w):
            raise ArtiphysError(f"jitter of {px} px does not fit a {h}x{w} image; use less")
        dy, dx = _randint(px), _randint(px)
        return x[..., dy:h - px + dy, dx:w - px + dx]

    return t


def pad(px: int, value: float = 0.5) -> Transform:
    """Constant padding (mid-gray by default) so jitter/rotation reveal no image edge."""
    px = int(px)

    def t(x, step=0):
        return F.pad(x, (px, px, px, px), value=value) if px else x

    return t


def scale(factors: Sequence[float]) -> Transform:
    """Random rescaling by one of ``factors`` (bilinear; output size changes)."""
    factors = [float(f) for f in factors]

    def t(x, step=0):
        f = _choice(factors)
        if f == 1.0:
            return x
        size = max(1, round(x.shape[-1] * f))
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)

    return t


def rotate_images(x: torch.Tensor, angle_deg: float, fill: str = "reflection") -> torch.Tensor:
    """Rotate images ``(n, C, H, W)`` counter-clockwise (as displayed, rows down) by
    ``angle_deg`` about the centre."""
    a = math.radians(angle_deg)
    cos, sin = math.cos(a), math.sin(a)
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=fill, align_corners=False)


def rotate(degrees: Sequence[float]) -> Transform:
    """Random rotation by one of ``degrees`` (output size unchanged, edges reflected)."""
    degrees = [float(d) for d in degrees]

    def t(x, step=0):
        d = _choice(degrees)
        return x if d == 0 else rotate_images(x, d)

    return t


def gaussian_kernel1d(sigma_px: float) -> torch.Tensor:
    """Normalised 1-D Gaussian of s.d. ``sigma_px`` truncated at 3 s.d."""
    radius = max(1, math.ceil(3 * sigma_px))
    xs = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (xs / sigma_px) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(n, C, H, W)`` with reflected edges."""
    if sigma_px <= 0:
        return x
    k = gaussian_kernel1d(sigma_px).to(x.device, x.dtype)
    r = (k.numel() - 1) // 2
    c = x.shape[1]
    mode = "reflect" if min(x.shape[-2:]) > r else "replicate"
    y = F.pad(x, (r, r, 0, 0), mode=mode)
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.pad(y, (0, 0, r, r), mode=mode)
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


# ---- regularisers ------------------------------------------------------------------------

def total_variation(weight: float) -> Callable:
    """``weight * mean(|dx| + |dy|)`` per image (anisotropic total variation)."""
    w = float(weight)

    def r(images):
        dx = (images[..., :, 1:] - images[..., :, :-1]).abs().flatten(1).mean(1)
        dy = (images[..., 1:, :] - images[..., :-1, :]).abs().flatten(1).mean(1)
        return w * (dx + dy)

    return r


def l2_penalty(weight: float) -> Callable:
    """``weight * mean((image - 0.5)^2)`` per image (L2 around mid-gray)."""
    w = float(weight)

    def r(images):
        return w * (images - 0.5).pow(2).flatten(1).mean(1)

    return r


# ---- preconditioner ----------------------------------------------------------------------

def fourier_preconditioner(exponent: float = 0.5) -> Callable:
    """Multiply the gradient's spectrum by ``1 / max(1, |f|^exponent)``, normalised to mean 1.

    ``|f|`` in cycles per image; Cadena et al. (2018) use ``exponent = 0.5``. Acts on
    gradients of image-shaped parameters ``(n, C, H, W)``; others pass unchanged.
    """
    cache: dict = {}

    def g(grad, step=0):
        if grad.ndim != 4:
            return grad
        h, w = grad.shape[-2:]
        key = (h, w, grad.device, grad.dtype)
        if key not in cache:
            fy = torch.fft.fftfreq(h)[:, None] * h
            fx = torch.fft.rfftfreq(w)[None, :] * w
            f = torch.sqrt(fy ** 2 + fx ** 2)
            m = 1.0 / torch.clamp(f ** exponent, min=1.0)
            cache[key] = (m / m.mean()).to(grad.device, grad.dtype)
        return torch.fft.irfft2(torch.fft.rfft2(grad) * cache[key], s=(h, w))

    return g


# ---- projections (Yosinski et al. 2015) --------------------------------------------------

def _need_image_shaped(p: torch.Tensor, what: str) -> None:
    if p.ndim != 4:
        raise ArtiphysError(f"{what} acts on image-shaped parameters; use --param pixel "
                            "(the pixel parameterisation) with it")


def l2_decay(theta_decay: float) -> Callable:
    """``r(x) = (1 - theta_decay) * x`` after each step (Yosinski et al. 2015, eq. 2).

    ``theta_decay`` in [0, 0.5] (Bandi & Kinley). On the pixel parameterisation ``x`` is the
    image minus mid-gray, so images decay towards gray; on Fourier coefficients it is the
    same linear shrinkage of the pre-squash image.
    """
    theta = float(theta_decay)
    if not 0.0 <= theta < 1.0:
        raise ArtiphysError(f"theta_decay must be in [0, 1), got {theta}")

    def p(x, step=0):
        return x.mul_(1.0 - theta)

    return p


def blur_every(sigma_px: float, every: int = 1) -> Callable:
    """Gaussian blur of width ``sigma_px`` applied to the image every ``every`` steps."""
    every = max(1, int(every))

    def p(x, step=0):
        _need_image_shaped(x, "blur")
        if step % every == 0:
            x.copy_(gaussian_blur(x, sigma_px))
        return x

    return p


def clip_pixels(low: float = -0.5, high: float = 0.5) -> Callable:
    """Clip to the valid range; on the pixel parameterisation that is images in [0, 1]."""

    def p(x, step=0):
        _need_image_shaped(x, "clip_pixels")
        return x.clamp_(low, high)

    return p


def norm_constraint(norm: float) -> Callable:
    """Rescale each image's parameters to a fixed L2 norm ``norm`` (Cadena et al. 2018)."""
    target = float(norm)

    def p(x, step=0):
        n = x.flatten(1).norm(dim=1).clamp(min=1e-12)
        return x.mul_((target / n).view(-1, *([1] * (x.ndim - 1))))

    return p
