"""The contrast scale of natural images: the norm of random natural-image patches.

Cadena et al. (2018, section 3.2) hold every synthesised image at "half the average norm of
natural images patches of the same size", with zero in each colour channel at the channel
mean. :func:`natural_patch_norm` measures that norm on a folder of images;
:func:`default_natural_folder` finds the folder the package uses when none is given.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

NATURAL_IMAGES_ENV = "ARTIPHYS_NATURAL_IMAGES"
"""Environment variable naming a folder of natural images (JPEG/PNG)."""


def natural_patch_norm(folder: str | os.PathLike, size_px: int, *, mean=(0.485, 0.456, 0.406),
                       n_images: int = 64, patches_per_image: int = 8, image_size_px: int = 224,
                       seed: int = 0) -> float:
    """Half the mean L2 norm of random ``size_px`` patches of natural images (Cadena et al.).

    ``0.5 * mean_k ||patch_k - mean||_2`` over ``patches_per_image`` random patches of each of
    ``n_images`` images from ``folder`` (RGB in [0, 1], shorter side resized to
    ``image_size_px`` and centre-cropped; :func:`artiphys.stimuli.natural.images`), with the
    channel ``mean`` as zero. Seeded: the same arguments give the same norm.
    """
    from artiphys.stimuli.natural import images

    size_px = int(size_px)
    stim = images(folder, n=n_images, seed=seed, size_px=max(int(image_size_px), size_px))
    imgs = stim.images()
    g = torch.Generator().manual_seed(int(seed))
    hi = imgs.shape[-1] - size_px + 1
    m = torch.as_tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    norms = []
    for _ in range(patches_per_image):
        ys = torch.randint(0, hi, (len(imgs),), generator=g)
        xs = torch.randint(0, hi, (len(imgs),), generator=g)
        patches = torch.stack([im[:, y:y + size_px, x:x + size_px]
                               for im, y, x in zip(imgs, ys, xs)])
        norms.append((patches - m).flatten(1).norm(dim=1))
    return 0.5 * float(torch.cat(norms).mean())


def default_natural_folder() -> Path | None:
    """``$ARTIPHYS_NATURAL_IMAGES``, else ``$ARTIPHYS_SHARED/data/imagenet-sample-256`` if it
    exists, else None."""
    env = os.environ.get(NATURAL_IMAGES_ENV)
    if env:
        return Path(env)
    shared = os.environ.get("ARTIPHYS_SHARED")
    if shared and (Path(shared) / "data" / "imagenet-sample-256").is_dir():
        return Path(shared) / "data" / "imagenet-sample-256"
    return None


__all__ = ["natural_patch_norm", "default_natural_folder", "NATURAL_IMAGES_ENV"]
