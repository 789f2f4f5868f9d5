"""Labelled contact sheets of stimulus sets (``artiphys stimuli SET --out sheet.png``)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from artiphys.errors import StimulusError
from artiphys.stimuli.base import StimulusSet

_LABEL_H = 12
_GAP = 2
_SHEET_BG = (40, 40, 40)


def default_labels(params: pd.DataFrame, max_columns: int = 3) -> list[str]:
    """Short label per row: ``"12 r3"`` (shape id, rotation) for shapes, else varying columns."""
    if {"shape_id", "rotation"} <= set(params.columns):
        out = []
        for r in params.itertuples():
            if r.shape_id < 0:
                out.append("blank")
                continue
            lab = f"{r.shape_id} r{r.rotation}"
            for col in ("dx_px", "dy_px"):
                if col in params.columns and params[col].nunique() > 1:
                    lab += f" {col[:2]}{getattr(r, col):+g}"
            if "probe_value" in params.columns and params["probe_value"].nunique() > 1:
                lab += f" {r.probe_value}"
            out.append(lab)
        return out
    varying = [c for c in params.columns if params[c].astype(str).nunique() > 1][:max_columns]
    if not varying:
        return [str(i) for i in range(len(params))]
    short = {c: c.replace("_cycles_per_px", "").replace("_deg", "").replace("_px", "") for c in varying}

    def fmt(v):
        return f"{v:.3g}" if isinstance(v, (float, np.floating)) else str(v)

    return [" ".join(f"{short[c]}={fmt(v)}" for c, v in zip(varying, row))
            for row in params[varying].itertuples(index=False)]


def _content_box(images_u8: np.ndarray) -> tuple[int, int, int, int]:
    """Union bounding box (r0, r1, c0, c1) of pixels that differ from each image's corner."""
    diff = np.abs(images_u8.astype(np.int16) - images_u8[:, :1, :1, :].astype(np.int16)).max(-1) > 2
    any_r, any_c = diff.any(axis=(0, 2)), diff.any(axis=(0, 1))
    if not any_r.any():
        h = images_u8.shape[1]
        return 0, h, 0, h
    rows, cols = np.nonzero(any_r)[0], np.nonzero(any_c)[0]
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def contact_sheet(stimuli: StimulusSet, *, ncols: int | None = None, labels: list[str] | None = None,
                  crop: bool = True, margin_px: int = 3, tile_px: int | None = None,
                  limit: int | None = None, batch_size: int = 128) -> Image.Image:
    """Draw the stimuli of a set in a labelled grid.

    Parameters
    ----------
    stimuli : StimulusSet
    ncols : int or None
        Columns of the grid (default about square).
    labels : list of str or None
        One per stimulus; default :func:`default_labels` (shape id and rotation for shapes).
    crop : bool
        Crop every image to the square around the union of all images' content (plus
        ``margin_px``), so small shapes on a large canvas stay visible.
    tile_px : int or None
        Side each image is drawn at (default: the crop, at least 64 px).
    limit : int or None
        Draw only the first ``limit`` stimuli.

    Returns
    -------
    PIL.Image.Image (RGB)
    """
    n = len(stimuli) if limit is None else min(int(limit), len(stimuli))
    if n < 1:
        raise StimulusError("the stimulus set is empty: nothing to draw")
    chunks = []
    for lo in range(0, n, batch_size):
        x = stimuli.images(lo, min(lo + batch_size, n)).clamp(0, 1)
        chunks.append((x.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8))
    imgs = np.concatenate(chunks)
    h = imgs.shape[1]
    if crop:
        r0, r1, c0, c1 = _content_box(imgs)
        side = min(h, max(r1 - r0, c1 - c0) + 2 * margin_px)
        cr, cc = (r0 + r1) / 2, (c0 + c1) / 2
        top = int(np.clip(round(cr - side / 2), 0, h - side))
        left = int(np.clip(round(cc - side / 2), 0, h - side))
        imgs = imgs[:, top:top + side, left:left + side]
    side = imgs.shape[1]
    tile = int(tile_px or max(side, 64))
    labels = default_labels(stimuli.params.iloc[:n]) if labels is None else list(labels)[:n]
    if len(labels) < n:
        raise StimulusError(f"{len(labels)} labels for {n} stimuli")
    ncols = int(ncols or math.ceil(math.sqrt(n)))
    nrows = math.ceil(n / ncols)
    cell_w, cell_h = tile + _GAP, tile + _LABEL_H + _GAP
    sheet = Image.new("RGB", (ncols * cell_w + _GAP, nrows * cell_h + _GAP), _SHEET_BG)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    resample = Image.NEAREST if tile % side == 0 else Image.BILINEAR
    for i in range(n):
        r, c = divmod(i, ncols)
        x0, y0 = _GAP + c * cell_w, _GAP + r * cell_h
        im = Image.fromarray(imgs[i])
        if side != tile:
            im = im.resize((tile, tile), resample)
        sheet.paste(im, (x0, y0))
        draw.text((x0 + 1, y0 + tile), labels[i], fill=(230, 230, 120), font=font)
    return sheet


def save_contact_sheet(stimuli: StimulusSet, path: str | Path, **options) -> Path:
    """Draw :func:`contact_sheet` and write it (format from the suffix, e.g. ``.png``)."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise StimulusError(f"folder {str(path.parent)!r} does not exist; create it or choose another --out")
    img = contact_sheet(stimuli, **options)
    try:
        img.save(path)
    except (ValueError, KeyError):
        raise StimulusError(f"cannot write {path}: use a picture suffix such as .png") from None
    return path
