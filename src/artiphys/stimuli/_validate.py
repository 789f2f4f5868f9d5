"""Checks of stimulus-builder parameters, done when a set is built (before any rendering).

Each check raises :class:`~artiphys.errors.StimulusError` with one line that names the
parameter, the value given and a value that works, so ``--json``, contact sheets and
recording refuse the same bad sets. Pixel geometry: pixel centres at integer
coordinates ``0 .. size_px - 1``; the canvas covers ``[-0.5, size_px - 0.5]`` in x and y.
"""

from __future__ import annotations

import math

import numpy as np

from artiphys.errors import StimulusError
from artiphys.stimuli._options import as_list

# A Gabor or DoG contributes less than one 8-bit gray level beyond this many sigmas:
# exp(-r^2 / (2 sigma^2)) < 1/255  <=>  r > sigma * sqrt(2 ln 255) (about 3.33 sigma).
INVISIBLE_SIGMAS = math.sqrt(2 * math.log(255))


def finite(name: str, value, example) -> float:
    """A finite number (a string such as ``"3"`` is read)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise StimulusError(f"{name} must be a number, got {value!r}; e.g. {name}={example}") from None
    if not math.isfinite(x):
        raise StimulusError(f"{name} must be a finite number, got {value!r}; e.g. {name}={example}")
    return x


def number(name: str, value, example, *, low: float | None = None, high: float | None = None,
           low_open: bool = False) -> float:
    """A finite number in ``[low, high]`` (``(low, high]`` when ``low_open``)."""
    x = finite(name, value, example)
    below = low is not None and (x <= low if low_open else x < low)
    if below or (high is not None and x > high):
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f"<= {high:g}"
        raise StimulusError(f"{name} must be {' and '.join(filter(None, (lo, hi)))}, got {value!r}; "
                            f"e.g. {name}={example}")
    return x


def positive(name: str, value, example) -> float:
    """A finite number > 0."""
    return number(name, value, example, low=0, low_open=True)


def nonnegative(name: str, value, example) -> float:
    """A finite number >= 0."""
    return number(name, value, example, low=0)


def optional_number(name: str, value, example) -> float | None:
    """None, or a finite number (a position given as NaN is refused, not taken as None)."""
    return None if value is None else finite(name, value, example)


def count(name: str, value, example, minimum: int = 1) -> int:
    """A whole number >= ``minimum`` (an integral float such as 64.0 is accepted)."""
    x = finite(name, value, example)
    if x != int(x) or x < minimum:
        raise StimulusError(f"{name} must be a whole number >= {minimum}, got {value!r}; "
                            f"e.g. {name}={example}")
    return int(x)


def sweep(name: str, value, example, check=None, cast=float) -> list:
    """A list option (``as_list``) with at least one value, each passed through ``check``."""
    values = as_list(value, cast)
    if not values:
        raise StimulusError(f"{name} is an empty list; give at least one value, e.g. {name}={example}")
    return [check(name, v, example) for v in values] if check else values


def distance_to_canvas(x_px, y_px, size_px: int):
    """Distance (px) from points ``(x_px, y_px)`` to the canvas square (0 inside it)."""
    x, y = np.asarray(x_px, np.float64), np.asarray(y_px, np.float64)
    lo, hi = -0.5, size_px - 0.5
    dx = np.maximum(np.maximum(lo - x, x - hi), 0)
    dy = np.maximum(np.maximum(lo - y, y - hi), 0)
    return np.hypot(dx, dy)


def require_on_canvas(what: str, x_px: float, y_px: float, reach_px: float, size_px: int,
                      fix: str) -> None:
    """Refuse a pattern centred at ``(x_px, y_px)`` that reaches no farther than
    ``reach_px`` and so draws nothing on a ``size_px`` canvas."""
    if float(distance_to_canvas(x_px, y_px, size_px)) > reach_px:
        raise StimulusError(f"{what} at x_px={x_px:g}, y_px={y_px:g} lies entirely outside the "
                            f"{size_px} px canvas (it reaches {reach_px:.3g} px); {fix}")
