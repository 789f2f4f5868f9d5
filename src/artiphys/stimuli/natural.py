"""Natural images from a folder.

Images (JPEG, PNG and TIFF, found recursively) are taken in a deterministic order (sorted
relative paths). Each is read at its true range (below), its shorter side resized to
``size_px`` (bilinear) and centre-cropped to ``size_px`` square; the model's
normalisation is applied later by :func:`artiphys.stimuli.base.to_model_input`.
Files that are not images or cannot be read are skipped with one warning that lists them.

Values by PIL mode (:func:`image_values`)
-----------------------------------------
- 8-bit modes (``L``, ``P``, ``RGB``, ``CMYK``, ``YCbCr``, ``1``, ``LA``, ``PA``, ``RGBA``,
  ...) are converted to RGB by PIL and divided by 255 (``1``: 0 or 1; ``CMYK``: PIL's
  ``R = 255 - C - K`` clipped, white is 1).
- 16-bit gray (``I;16``, ``I;16L``, ``I;16B``, ``I;16N``, e.g. 16-bit PNG/TIFF) is
  divided by 65535, and resized in float, so no level is lost or clipped.
- ``I`` (32-bit integer, how PIL holds 16-bit data from some files) is read as 16-bit
  data: divided by 65535; values outside 0..65535 are clipped, with a warning.
- ``F`` (32-bit float) is taken as intensities on [0, 1]; values outside are clipped,
  with a warning; NaN or infinite pixels are refused.
- **Alpha is dropped** in every mode that has it (``LA``, ``PA``, ``RGBA``, ``La``,
  ``RGBa``, palette images with a transparent colour): the stored colours are kept as
  they are, as PIL's ``convert("RGB")`` and torchvision's image loader do, so a
  transparent pixel shows its stored colour, not a background. (Pillow itself reads
  16-bit colour PNGs as 8-bit RGB.)
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

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_WITH_ALPHA = ("LA", "La", "PA", "RGBa")  # converted through RGBA, whose alpha is then dropped


def _clipped(arr: np.ndarray, path, what: str) -> np.ndarray:
    outside = int(((arr < 0) | (arr > 1)).sum())
    if outside:
        warnings.warn(f"{path}: {outside} of {arr.size} pixels of this {what} image lie outside "
                      "its range and were clipped", UserWarning, stacklevel=3)
    return np.clip(arr, 0, 1)


def image_values(im: Image.Image, path: str | Path = "image") -> Image.Image:
    """An ``"RGB"`` image (8-bit modes) or an ``"F"`` image with gray values in [0, 1]
    (16-bit, 32-bit integer and float modes); see the module doc for each mode."""
    mode = im.mode
    if mode in SIXTEEN_BIT_MODES:
        return Image.fromarray(np.asarray(im).astype(np.float32) / 65535.0, mode="F")
    if mode == "I":
        arr = np.asarray(im).astype(np.float64) / 65535.0
        return Image.fromarray(_clipped(arr, path, "32-bit integer").astype(np.float32), mode="F")
    if mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise StimulusError(f"{path} holds NaN or infinite pixels; replace it with a clean image")
        return Image.fromarray(_clipped(arr, path, "float"), mode="F")
    if mode in _WITH_ALPHA or (mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
    return im if mode == "RGB" else im.convert("RGB")


def load_image(path: str | Path, size_px: int = 224) -> torch.Tensor:
    """One image as float32 ``(3, size_px, size_px)`` RGB in [0, 1] at its true range
    (:func:`image_values`): resize the shorter side to ``size_px``, centre crop."""
    with Image.open(path) as im:
        im = image_values(im, path)
        w, h = im.size
        scale = size_px / min(w, h)
        nw, nh = max(size_px, round(w * scale)), max(size_px, round(h * scale))
        im = im.resize((nw, nh), Image.BILINEAR, reducing_gap=None)
        left, top = (nw - size_px) // 2, (nh - size_px) // 2
        im = im.crop((left, top, left + size_px, top + size_px))
        if im.mode == "F":
            gray = torch.from_numpy(np.clip(np.asarray(im, dtype=np.float32), 0, 1).copy())
            return gray[None].expand(3, -1, -1).contiguous()
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
        raise StimulusError(f"image folder {str(folder)!r} does not exist; give a folder of JPEG/PNG/TIFF files")
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
        warnings.warn(f"skipped {len(skipped)} file(s) in {folder} that are not readable JPEG/PNG/TIFF images: "
                      f"{names}", UserWarning, stacklevel=2)
    if not good:
        raise StimulusError(f"no readable JPEG/PNG/TIFF images in {folder}")
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
