"""Rendered stimuli that come out blank (one uniform colour) when they should not.

The builders refuse parameters that cannot draw anything (non-finite or non-positive
sizes, stimuli entirely off the canvas, empty sweeps). A set can still render an image
with nothing in it: a shape smaller than a pixel, a Gabor whose envelope barely reaches
the canvas, a uniform image file. :func:`blank_images` finds uniform images,
:func:`intended_blank` the rows meant to be uniform (the shapes' ``blank`` row, the
``white`` and ``gray`` baselines, zero contrast, a spot at the background level), and
:class:`BlankCheck` gathers the rest over the batches a recorder renders anyway.

A recorder calls it without rendering anything twice::

    check = BlankCheck(stimuli)
    for rows, images in stimuli.batches(batch_size):
        check.update(rows.start, images)
        ...                                    # record the batch
    check.warn()   # one UserWarning naming the unexpectedly blank rows; returns them

:func:`find_blank_stimuli` renders a whole set (in batches) to check it on its own.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch

from artiphys.stimuli.base import StimulusSet

BLANK_TOLERANCE = 0.5 / 255  # an image whose values span no more than this is uniform


def blank_images(images, tol: float = BLANK_TOLERANCE) -> np.ndarray:
    """True for each image whose values all lie within ``tol`` of each other.

    Parameters
    ----------
    images : Tensor or ndarray (n, ...)
        Float images in [0, 1] (any layout), or integer images (uint8: 0..255), which
        are compared on the [0, 1] scale.
    tol : float
        Largest peak-to-peak range (on the [0, 1] scale) of a uniform image.

    Returns
    -------
    ndarray of bool (n,)
    """
    x = images.detach().cpu().numpy() if torch.is_tensor(images) else np.asarray(images)
    if len(x) == 0:
        return np.zeros(0, bool)
    flat = x.reshape(len(x), -1)
    span = flat.max(1).astype(np.float64) - flat.min(1).astype(np.float64)
    if np.issubdtype(flat.dtype, np.integer):
        span = span / np.iinfo(flat.dtype).max
    return span <= tol


def intended_blank(params: pd.DataFrame) -> np.ndarray:
    """True for the rows of a parameter table that are meant to render uniform images.

    Those are: a true ``blank`` column (the shapes' blank stimulus); ``kind`` ``white`` or
    ``gray`` (baselines); ``contrast == 0``; ``sigma == 0`` (noise without noise);
    ``intensity == background`` (shapes) or ``intensity == mean`` (spots and annuli).
    """
    mask = np.zeros(len(params), bool)

    def col(name):
        return params[name].to_numpy() if name in params.columns else None

    if (blank := col("blank")) is not None:
        mask |= pd.Series(blank).fillna(False).astype(bool).to_numpy()
    if (kind := col("kind")) is not None:
        mask |= np.isin(kind.astype(str), ["white", "gray"])
    for name in ("contrast", "sigma"):
        if (v := col(name)) is not None and np.issubdtype(v.dtype, np.number):
            mask |= v == 0
    intensity = col("intensity")
    for other in ("background", "mean"):
        if intensity is not None and (v := col(other)) is not None:
            mask |= np.asarray(intensity, float) == np.asarray(v, float)
    return mask


class BlankCheck:
    """Collects the stimuli that render blank though they should not, batch by batch."""

    def __init__(self, stimuli: StimulusSet, tol: float = BLANK_TOLERANCE):
        self._name, self._n, self._tol = stimuli.name, len(stimuli), tol
        self._intended = intended_blank(stimuli.params)
        self._found: list[np.ndarray] = []

    def update(self, start: int, images) -> np.ndarray:
        """Check the images of stimuli ``start, start + 1, ...``; return the blank rows."""
        uniform = blank_images(images, self._tol)
        rows = start + np.nonzero(uniform & ~self._intended[start:start + len(uniform)])[0]
        self._found.append(rows)
        return rows

    @property
    def rows(self) -> np.ndarray:
        """Positions of the unexpectedly blank stimuli found so far (sorted)."""
        return np.unique(np.concatenate(self._found)) if self._found else np.zeros(0, np.int64)

    def message(self) -> str | None:
        rows = self.rows
        if not len(rows):
            return None
        shown = ", ".join(map(str, rows[:8])) + (", ..." if len(rows) > 8 else "")
        return (f"{len(rows)} of {self._n} stimuli of {self._name!r} render as blank (uniform) "
                f"images though they should show something: rows {shown}; check their "
                "positions, sizes and contrast")

    def warn(self) -> np.ndarray:
        """Warn once (``UserWarning``) when blank stimuli were found; return their rows."""
        if (msg := self.message()) is not None:
            warnings.warn(msg, UserWarning, stacklevel=2)
        return self.rows


def find_blank_stimuli(stimuli: StimulusSet, batch_size: int = 64, warn: bool = True) -> np.ndarray:
    """Render ``stimuli`` in batches and return the rows that are unexpectedly blank."""
    check = BlankCheck(stimuli)
    for rows, images in stimuli.batches(batch_size):
        check.update(rows.start, images)
    return check.warn() if warn else check.rows
