"""Natural images from a folder.

Images (JPEG and PNG, found recursively) are taken in a deterministic order (sorted
relative paths). Each is converted to RGB, its shorter side resized to ``size_px``
(bilinear with antialiasing) and centre-cropped to ``size_px`` square; the model's
normalisation is applied later by :func:`artiphys.stimuli.base.to_model_input`.
Files that are not images or cannot be read are skipped with one warning that lists them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError

from artiphys.errors import StimulusError
from artiphys.stimuli import _validate as V
from artiphys.stimuli.base import StimulusSet
from artiphys.stimuli.registry import register_set

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def load_image(path: str | Path, size_px: int = 224) -> torch.Tensor:
    """One image as float32 ``(3, size_px, size_px)`` RGB in [0, 1]: resize shorter side, centre crop."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        scale = size_px / min(w, h)
        nw, nh = max(size_px, round(w * scale)), max(size_px, round(h * scale))
        im = im.resize((nw, nh), Image.BILINEAR, reducing_gap=None)
        left, top = (nw - size_px) // 2, (nh - size_px) // 2
        im = im.crop((left, top, left + size_px, top + size_px))
        arr = np.asarray(im, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def _readable(path: Path) -> bool:
    """Decode the file (at reduced resolution for JPEG) so truncated files are caught too."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", (32, 32))
            im.load()
        return True
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return False


def find_images(folder: str | Path, n: int | None = None, seed: int = 0) -> list[Path]:
    """Readable image files under ``folder`` (recursive), sorted; ``n`` of them at random.

    With ``n``, a seeded random sample (``numpy.random.default_rng(seed)``) of the
    readable files is returned in sorted order. Skipped files are reported in one
    ``UserWarning``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise StimulusError(f"image folder {str(folder)!r} does not exist; give a folder of JPEG/PNG files")
    files = sorted((p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")),
                   key=lambda p: p.relative_to(folder).as_posix())
    skipped = [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    candidates = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if n is not None:
        n = V.count("n", n, 100)
        order = np.random.default_rng(seed).permutation(len(candidates))
        chosen = []
        for i in order:  # take readable files in random order until n are found
            if _readable(candidates[i]):
                chosen.append(candidates[i])
                if len(chosen) == n:
                    break
            else:
                skipped.append(candidates[i])
        if len(chosen) < n:
            raise StimulusError(f"asked for {n} images but {folder} holds only {len(chosen)} readable "
                                f"ones ({len(skipped)} other files skipped); ask for fewer")
        good = sorted(chosen, key=lambda p: p.relative_to(folder).as_posix())
    else:
        good = []
        for p in candidates:
            (good if _readable(p) else skipped).append(p)
    if skipped:
        names = ", ".join(sorted(p.relative_to(folder).as_posix() for p in skipped))
        warnings.warn(f"skipped {len(skipped)} file(s) in {folder} that are not readable JPEG/PNG images: "
                      f"{names}", UserWarning, stacklevel=2)
    if not good:
        raise StimulusError(f"no readable JPEG/PNG images in {folder}")
    return good


@register_set("images")
def images(folder: str | Path, n: int | None = None, seed: int = 0, size_px: int = 224) -> StimulusSet:
    """Natural images from ``folder`` (see module doc).

    Parameters
    ----------
    folder : path
        Searched recursively for ``.jpg``, ``.jpeg``, ``.png`` (any case).
    n : int or None
        Number of images drawn at random (seeded); None = all.
    seed : int
    size_px : int
        Side of the square crop (the model's input size: 224, or 227 for AlexNet).

    Returns
    -------
    StimulusSet with columns ``path`` (relative to folder), ``file``, ``size_px``.
    """
    folder = Path(folder)
    size_px = V.count("size_px", size_px, 224)
    paths = find_images(folder, n, seed)
    params = pd.DataFrame({"path": [p.relative_to(folder).as_posix() for p in paths],
                           "file": [p.stem for p in paths]})
    params["size_px"] = int(size_px)
    root = folder.resolve()

    def render(rows: pd.DataFrame) -> torch.Tensor:
        out = torch.empty(len(rows), 3, int(size_px), int(size_px))
        for i, rel in enumerate(rows["path"]):
            try:
                out[i] = load_image(root / rel, int(size_px))
            except (OSError, UnidentifiedImageError, ValueError) as exc:
                raise StimulusError(f"cannot read image {rel} in {root}: {exc}; remove or replace it") from None
        return out

    return StimulusSet(f"images:{folder.name}", params, render, int(size_px),
                       {"folder": str(root), "n": n, "seed": int(seed)})
