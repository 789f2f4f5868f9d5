"""Labelled contact sheets of stimulus sets (``artiphys stimuli SET --out sheet.png``).

Memory does not grow with the number of stimuli: images are rendered in batches of a
bounded number of pixels and only the tiles drawn on the sheet are kept. A set with more
than ``max_tiles`` stimuli (default :data:`MAX_TILES`) is drawn as an evenly spaced
sample of ``max_tiles`` of them (:func:`sheet_rows`), which a caption on the sheet and
:attr:`SheetInfo.summary` say. Cropping to the content needs a first pass over the
drawn stimuli (the union of their content boxes), so they are rendered twice.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from artiphys.errors import RunStoreError, StimulusError
from artiphys.stimuli.base import StimulusSet
from artiphys.stimuli.checks import blank_images, intended_blank
from artiphys.store.atomic import atomic_write_with, file_in_the_way

MAX_TILES = 1024            # stimuli drawn on one sheet; larger sets are sampled
_BATCH_VALUES = 1 << 22     # float32 values rendered at once (16 MB)
_AUTO_SHEET_PX = 1 << 26    # the default tile size keeps a sheet under 64 Mpx (192 MB)
_MAX_SHEET_PX = 1 << 28     # larger sheets (an explicit tile_px) are refused
_LABEL_H = 12
_GAP = 2
_SHEET_BG = (40, 40, 40)


@dataclass(frozen=True)
class SheetInfo:
    """What a contact sheet shows.

    Attributes
    ----------
    path : Path or None
        Where it was written (None when only drawn).
    n_total : int
        Stimuli in the set.
    rows : tuple of int
        Positions (rows of the parameter table) of the stimuli drawn, in order.
    sampled : bool
        True when ``rows`` is an evenly spaced sample (more stimuli than ``max_tiles``).
    n_considered : int
        Stimuli the sheet stands for: the first ``limit``, or all of them.
    blank_rows : tuple of int
        Drawn stimuli that render as uniform images though they are not meant to
        (see :func:`artiphys.stimuli.checks.intended_blank`).
    """

    path: Path | None
    n_total: int
    rows: tuple[int, ...]
    sampled: bool
    n_considered: int
    blank_rows: tuple[int, ...] = ()

    @property
    def n_drawn(self) -> int:
        return len(self.rows)

    @property
    def summary(self) -> str:
        """``"362 of 362 stimuli"``, with the sampling and blank stimuli said when any."""
        text = f"{self.n_drawn} of {self.n_total} stimuli"
        if self.sampled:
            first = "" if self.n_considered == self.n_total else f" of the first {self.n_considered}"
            text += (f", an evenly spaced sample{first} (a sheet draws at most {self.n_drawn}; "
                     "use --limit for the first N)")
        if self.blank_rows:
            text += f"; {len(self.blank_rows)} drawn stimuli are blank"
        return text


def sheet_rows(n_total: int, limit: int | None = None, max_tiles: int = MAX_TILES) -> np.ndarray:
    """Positions of the stimuli a sheet draws: the first ``limit`` (default all), or, when
    more than ``max_tiles``, ``max_tiles`` of them evenly spaced (first and last included:
    ``round(linspace(0, n - 1, max_tiles))``)."""
    n = int(n_total) if limit is None else min(int(limit), int(n_total))
    if n < 1:
        raise StimulusError("the stimulus set is empty: nothing to draw" if limit is None or limit > 0
                            else f"--limit must be at least 1, got {limit}")
    if int(max_tiles) < 1:
        raise StimulusError(f"max_tiles must be at least 1, got {max_tiles}")
    if n <= max_tiles:
        return np.arange(n)
    return np.round(np.linspace(0, n - 1, int(max_tiles))).astype(np.int64)


def default_labels(params: pd.DataFrame, max_columns: int = 3) -> list[str]:
    """Short label per row: ``"12 r3"`` (shape id, rotation) for shapes, else varying columns."""
    if {"shape_id", "rotation"} <= set(params.columns):
        extra = [c for c in ("dx_px", "dy_px") if c in params.columns and params[c].nunique() > 1]
        probe = "probe_value" in params.columns and params["probe_value"].nunique() > 1
        out = []
        for r in params.itertuples():
            if r.shape_id < 0:
                out.append("blank")
                continue
            lab = f"{r.shape_id} r{r.rotation}"
            for col in extra:
                lab += f" {col[:2]}{getattr(r, col):+g}"
            if probe:
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


# ---- rendering in bounded batches --------------------------------------------------------

def _batches_u8(stimuli: StimulusSet, rows: np.ndarray, batch_size: int):
    """Yield ``(positions into rows, uint8 images (b, H, W, 3))`` for the given rows."""
    sub = stimuli.subset(rows) if not np.array_equal(rows, np.arange(len(rows))) else stimuli
    per = max(1, min(int(batch_size), _BATCH_VALUES // (3 * stimuli.size_px ** 2)))
    for lo in range(0, len(rows), per):
        hi = min(lo + per, len(rows))
        x = sub.images(lo, hi).clamp(0, 1)
        yield np.arange(lo, hi), (x.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)


def _content_box(stimuli: StimulusSet, rows: np.ndarray, batch_size: int) -> tuple[int, int, int, int]:
    """Union bounding box (r0, r1, c0, c1) of the pixels that differ from each image's
    corner pixel by more than 2 gray levels, over the stimuli ``rows``."""
    h = stimuli.size_px
    any_r, any_c = np.zeros(h, bool), np.zeros(h, bool)
    for _, imgs in _batches_u8(stimuli, rows, batch_size):
        diff = np.abs(imgs.astype(np.int16) - imgs[:, :1, :1, :].astype(np.int16)).max(-1) > 2
        any_r |= diff.any(axis=(0, 2))
        any_c |= diff.any(axis=(0, 1))
    if not any_r.any():
        return 0, h, 0, h
    r, c = np.nonzero(any_r)[0], np.nonzero(any_c)[0]
    return int(r[0]), int(r[-1]) + 1, int(c[0]), int(c[-1]) + 1


def _crop_window(stimuli, rows, crop: bool, margin_px: int, batch_size: int) -> tuple[int, int, int]:
    """``(top, left, side)`` of the square drawn from every image."""
    h = stimuli.size_px
    if not crop:
        return 0, 0, h
    r0, r1, c0, c1 = _content_box(stimuli, rows, batch_size)
    side = min(h, max(r1 - r0, c1 - c0) + 2 * margin_px)
    top = int(np.clip(round((r0 + r1) / 2 - side / 2), 0, h - side))
    left = int(np.clip(round((c0 + c1) / 2 - side / 2), 0, h - side))
    return top, left, side


def _layout(n: int, side: int, ncols: int | None, tile_px: int | None, caption: bool):
    """Tile side, columns, rows, the top band and the sheet size, within the pixel budgets."""
    ncols = int(ncols or math.ceil(math.sqrt(n)))
    if ncols < 1:
        raise StimulusError(f"--cols must be at least 1, got {ncols}")
    nrows = math.ceil(n / ncols)
    if tile_px is None:
        fit = math.isqrt(_AUTO_SHEET_PX // (ncols * nrows)) - _LABEL_H - _GAP
        tile = max(16, min(max(side, 64), fit))
    else:
        tile = int(tile_px)
        if tile < 1:
            raise StimulusError(f"tile_px must be at least 1, got {tile_px}")
    top = _LABEL_H + _GAP if caption else 0
    size = (ncols * (tile + _GAP) + _GAP, top + nrows * (tile + _LABEL_H + _GAP) + _GAP)
    if size[0] * size[1] > _MAX_SHEET_PX:
        raise StimulusError(f"a sheet of {n} tiles of {tile} px would be {size[0]} x {size[1]} px; "
                            "use a smaller tile_px, fewer --cols or a --limit")
    return tile, ncols, top, size


def _draw(stimuli: StimulusSet, rows: np.ndarray, labels: list[str], *, ncols, crop, margin_px,
          tile_px, batch_size, caption: str | None) -> tuple[Image.Image, np.ndarray]:
    """The sheet of the stimuli ``rows`` and a mask of the drawn images that are uniform."""
    top, left, side = _crop_window(stimuli, rows, crop, margin_px, batch_size)
    tile, ncols, band, size = _layout(len(rows), side, ncols, tile_px, caption is not None)
    sheet = Image.new("RGB", size, _SHEET_BG)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    if caption:
        draw.text((_GAP + 1, _GAP // 2), caption, fill=(255, 160, 120), font=font)
    resample = Image.NEAREST if tile % side == 0 else Image.BILINEAR
    cell_w, cell_h = tile + _GAP, tile + _LABEL_H + _GAP
    uniform = np.zeros(len(rows), bool)
    for pos, imgs in _batches_u8(stimuli, rows, batch_size):
        uniform[pos] = blank_images(imgs)
        for i, img in zip(pos, imgs[:, top:top + side, left:left + side]):
            r, c = divmod(int(i), ncols)
            x0, y0 = _GAP + c * cell_w, band + _GAP + r * cell_h
            im = Image.fromarray(img)
            sheet.paste(im if side == tile else im.resize((tile, tile), resample), (x0, y0))
            draw.text((x0 + 1, y0 + tile), labels[i], fill=(230, 230, 120), font=font)
    return sheet, uniform


def _plan(stimuli: StimulusSet, labels, limit, max_tiles):
    rows = sheet_rows(len(stimuli), limit, max_tiles)
    n_considered = len(stimuli) if limit is None else min(int(limit), len(stimuli))
    if labels is None:
        labels = default_labels(stimuli.params.iloc[:n_considered])
    labels = list(labels)
    if len(labels) < n_considered:
        raise StimulusError(f"{len(labels)} labels for {n_considered} stimuli")
    sampled = len(rows) < n_considered
    caption = (f"{len(rows)} of {n_considered} stimuli, evenly spaced (every "
               f"{(n_considered - 1) / max(len(rows) - 1, 1):.3g}th)") if sampled else None
    return rows, [labels[i] for i in rows], n_considered, sampled, caption


def _sheet(stimuli: StimulusSet, *, ncols=None, labels=None, crop=True, margin_px=3, tile_px=None,
           limit=None, batch_size=128, max_tiles=MAX_TILES) -> tuple[Image.Image, SheetInfo]:
    rows, drawn_labels, n_considered, sampled, caption = _plan(stimuli, labels, limit, max_tiles)
    sheet, uniform = _draw(stimuli, rows, drawn_labels, ncols=ncols, crop=crop, margin_px=margin_px,
                           tile_px=tile_px, batch_size=batch_size, caption=caption)
    expected = intended_blank(stimuli.params.iloc[rows])
    blank = tuple(int(r) for r in rows[uniform & ~expected])
    if blank:
        warnings.warn(f"{len(blank)} of the {len(rows)} drawn stimuli of {stimuli.name!r} are blank "
                      f"(uniform images), e.g. rows {', '.join(map(str, blank[:5]))}; check their "
                      "positions and sizes", UserWarning, stacklevel=3)
    info = SheetInfo(None, len(stimuli), tuple(int(r) for r in rows), sampled, n_considered, blank)
    return sheet, info


def contact_sheet(stimuli: StimulusSet, *, ncols: int | None = None, labels: list[str] | None = None,
                  crop: bool = True, margin_px: int = 3, tile_px: int | None = None,
                  limit: int | None = None, batch_size: int = 128,
                  max_tiles: int = MAX_TILES) -> Image.Image:
    """Draw the stimuli of a set in a labelled grid.

    Parameters
    ----------
    stimuli : StimulusSet
    ncols : int or None
        Columns of the grid (default about square).
    labels : list of str or None
        One per stimulus; default :func:`default_labels` (shape id and rotation for shapes).
    crop : bool
        Crop every image to the square around the union of all drawn images' content
        (plus ``margin_px``), so small shapes on a large canvas stay visible.
    tile_px : int or None
        Side each image is drawn at (default: the crop, at least 64 px, smaller when
        needed to keep the sheet under 64 megapixels).
    limit : int or None
        Draw only the first ``limit`` stimuli.
    batch_size : int
        Stimuli rendered at once (fewer for large images: at most 4 M values).
    max_tiles : int
        Most stimuli drawn; more are sampled evenly (:func:`sheet_rows`), with a caption
        at the top of the sheet saying so.

    Returns
    -------
    PIL.Image.Image (RGB)
    """
    return _sheet(stimuli, ncols=ncols, labels=labels, crop=crop, margin_px=margin_px,
                  tile_px=tile_px, limit=limit, batch_size=batch_size, max_tiles=max_tiles)[0]


def save_contact_sheet(stimuli: StimulusSet, path: str | Path, **options) -> SheetInfo:
    """Draw :func:`contact_sheet` (same options) and write it atomically (format from the
    suffix, e.g. ``.png``); return what it shows (``info.summary`` for a message)."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise StimulusError(f"cannot write {path}: use a picture suffix such as .png")
    if not path.parent.is_dir():
        blocker = file_in_the_way(path.parent)
        if blocker is not None:
            raise RunStoreError(f"cannot write contact sheet {path}: {blocker} is a regular file, "
                                "not a folder; choose another --out")
        raise StimulusError(f"folder {str(path.parent)!r} does not exist; create it or choose another --out")
    img, info = _sheet(stimuli, **options)
    try:
        atomic_write_with(path, lambda tmp: img.save(tmp, format=fmt), what="contact sheet")
    except (ValueError, KeyError) as exc:  # PIL cannot store this picture in that format
        raise StimulusError(f"cannot write {path} as {fmt}: {exc}; use .png") from None
    return SheetInfo(path, info.n_total, info.rows, info.sampled, info.n_considered, info.blank_rows)
