"""Errors raised for bad user input.

Every message says what went wrong *and what to do about it*; the CLI prints the message
on one line and exits non-zero, never a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ArtiphysError(Exception):
    """Base class of every error caused by user input or user data."""


class UnknownModelError(ArtiphysError):
    """A model name that the registry cannot resolve."""


class UnknownLayerError(ArtiphysError):
    """A layer name or alias that the model does not have."""


class UnknownUnitError(ArtiphysError):
    """A unit (channel, position) outside a layer's output."""


class WeightsError(ArtiphysError):
    """A weights file that is missing, corrupt, truncated or of the wrong architecture."""


class StimulusError(ArtiphysError):
    """Stimuli of the wrong shape, type or parameters."""


class ResponseError(ArtiphysError):
    """Responses that cannot be analysed (NaN, wrong dims)."""


class RunStoreError(ArtiphysError):
    """A run directory that cannot be written, read or resumed."""


def close_matches(name: str, choices: Iterable[str], n: int = 5) -> str:
    """Return ``" Did you mean: a, b?"`` for the closest choices, or ``""`` if none."""
    choices = list(choices)
    found = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    if not found:
        found = [c for c in choices if name.lower() in c.lower()][:n]
    return f" Did you mean: {', '.join(found)}?" if found else ""
