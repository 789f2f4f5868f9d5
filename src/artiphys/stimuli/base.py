"""StimulusSet: images plus a parameter table, generated lazily in batches."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from artiphys.errors import StimulusError
from artiphys.models.spec import Preprocessing

# render(params_rows) -> float32 tensor (n, 3, H, W), RGB in [0, 1]
Renderer = Callable[[pd.DataFrame], torch.Tensor]
ROWS_PER_PIECE = 4096  # parameter rows hashed / listed at a time


class StimulusSet:
    """Images plus one parameter row per image, rendered on demand.

    Parameters
    ----------
    name : str
        Set name (``"shapes"``, ``"gratings"``, ``"images:<folder>"``...).
    params : pandas.DataFrame
        One row per stimulus; every generating parameter is a column. The row order is
        the stimulus order; the index is reset to ``0..n-1`` (the ``stimulus`` coord).
    render : callable
        ``render(rows) -> Tensor (n, 3, H, W)`` float32 RGB in [0, 1] for a slice of rows.
    size_px : int
        Side of the square images ``render`` draws.
    meta : dict
        Set-level settings (JSON-able), part of the content hash and of run manifests.
    """

    def __init__(self, name: str, params: pd.DataFrame, render: Renderer, size_px: int,
                 meta: dict | None = None):
        self.name = name
        self.params = params.reset_index(drop=True)
        self._render = render
        self.size_px = int(size_px)
        self.meta = dict(meta or {})
        self._hash: str | None = None

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_tensor(cls, images: torch.Tensor | np.ndarray, params: pd.DataFrame | None = None,
                    name: str = "images", meta: dict | None = None) -> StimulusSet:
        """Wrap ready images ``(n, 3, H, W)`` (or ``(n, H, W)`` gray) in [0, 1]."""
        images = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
        if images.ndim == 3:
            images = images[:, None].expand(-1, 3, -1, -1)
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
            raise StimulusError(
                f"images must have shape (n, 3, H, H) or (n, H, H), got {tuple(images.shape)}; "
                "convert to RGB and crop to a square first")
        images = images.float().contiguous()
        if params is None:
            params = pd.DataFrame({"index": np.arange(len(images))})
        if len(params) != len(images):
            raise StimulusError(f"{len(images)} images but {len(params)} parameter rows")
        digest = hashlib.sha256(images.numpy().tobytes()).hexdigest()[:16]

        def render(rows: pd.DataFrame) -> torch.Tensor:
            index = rows.index.to_numpy()
            if len(index) and (np.diff(index) == 1).all():   # consecutive rows: a view, no copy
                return images[int(index[0]):int(index[-1]) + 1]
            return images[torch.tensor(index, dtype=torch.long)]

        return cls(name, params, render, images.shape[-1],
                   {**(meta or {}), "pixels_sha256_16": digest})

    # -- access -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.params)

    def __repr__(self) -> str:
        return f"StimulusSet({self.name!r}, n={len(self)}, size_px={self.size_px})"

    def images(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Render stimuli ``start:stop`` as a float32 tensor ``(n, 3, H, W)`` in [0, 1]."""
        rows = self.params.iloc[start:stop]
        out = self._render(rows)
        if out.shape[0] != len(rows):
            raise StimulusError(f"renderer of {self.name!r} returned {out.shape[0]} images "
                                f"for {len(rows)} rows")
        return out

    def batches(self, batch_size: int = 64, start: int = 0) -> Iterator[tuple[slice, torch.Tensor]]:
        """Yield ``(slice, images)`` for consecutive batches from ``start``."""
        for lo in range(start, len(self), batch_size):
            hi = min(lo + batch_size, len(self))
            yield slice(lo, hi), self.images(lo, hi)

    def subset(self, index) -> StimulusSet:
        """A new set with the rows ``index`` (positions), rendered by the same function."""
        rows = self.params.iloc[index]
        keep = rows.index.to_numpy()
        parent = self

        def render(sub: pd.DataFrame) -> torch.Tensor:
            return parent._render(parent.params.iloc[keep[sub.index.to_numpy()]])

        return StimulusSet(self.name, rows, render, self.size_px,
                           {**self.meta, "subset_of": self.content_hash})

    @property
    def content_hash(self) -> str:
        """sha256 (hex, 16 chars) of name, meta and parameter table: the set's identity.

        The table enters as its CSV text (``params.to_csv(index=False)``), hashed in
        pieces of :data:`ROWS_PER_PIECE` rows so that large sets need no whole copy.
        """
        if self._hash is None:
            h = hashlib.sha256()
            h.update(self.name.encode())
            h.update(json.dumps(self.meta, sort_keys=True, default=str).encode())
            h.update(str(self.size_px).encode())
            for lo in range(0, max(len(self.params), 1), ROWS_PER_PIECE):
                piece = self.params.iloc[lo:lo + ROWS_PER_PIECE]
                h.update(piece.to_csv(index=False, header=lo == 0).encode())
            self._hash = h.hexdigest()[:16]
        return self._hash

    def iter_json(self, rows_per_piece: int = ROWS_PER_PIECE) -> Iterator[str]:
        """The parameter table as a JSON list of records, in pieces of text to write one
        after the other (same content as ``params.to_json(orient="records", indent=1)``,
        without building it whole)."""
        yield "["
        for lo in range(0, len(self.params), rows_per_piece):
            text = self.params.iloc[lo:lo + rows_per_piece].to_json(orient="records", indent=1)
            yield ("," if lo else "") + text.strip()[1:-1].rstrip()
        yield "\n]\n"

    def describe(self) -> dict:
        """JSON-able identity for run manifests."""
        return {"name": self.name, "n": len(self), "size_px": self.size_px,
                "content_hash": self.content_hash, "meta": self.meta}


def resize_to_input(images: torch.Tensor, preprocessing: Preprocessing) -> torch.Tensor:
    """Resize RGB images ``(n, 3, H, W)`` to the model's input size (bilinear, antialiased);
    images already at ``preprocessing.input_size_px`` are returned as they are."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise StimulusError(f"expected images of shape (n, 3, H, W), got {tuple(images.shape)}")
    size = preprocessing.input_size_px
    if images.shape[-2:] != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                               antialias=True)
    return images


def to_model_input(images: torch.Tensor, preprocessing: Preprocessing) -> torch.Tensor:
    """Resize square RGB images in [0, 1] to the model's input size, then normalise."""
    return preprocessing.normalise(resize_to_input(images, preprocessing))
