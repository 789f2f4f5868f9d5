"""Progress of an experiment: numbered step lines with an ETA, and tqdm bars for loops.

An experiment announces its steps (``[3/40] trained conv2: APC fit``) with the time
elapsed and a rough estimate of the time left (mean time per finished step so far times
the steps left); a loop longer than a second inside a step (recording batches, TI
phases, optimisation steps) shows one tqdm bar with its own ETA. ``quiet`` silences both.
Messages go to standard error so that standard output stays machine-readable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class _NullBar:
    """A tqdm stand-in that shows nothing."""

    n = 0

    def update(self, n=1):
        self.n += n

    def set_description_str(self, *a, **k):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Progress:
    """Step lines and progress bars for one experiment.

    Parameters
    ----------
    quiet : bool
        Show nothing.
    echo : callable, optional
        Where step lines go (default: standard error).
    """

    def __init__(self, quiet: bool = False, echo: Callable[[str], None] | None = None):
        self.quiet = quiet
        self._echo = echo or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.total = 0
        self.done = 0
        self._t0 = time.monotonic()

    def plan(self, n_steps: int) -> None:
        """Announce how many steps follow (counted from now)."""
        self.total, self.done, self._t0 = int(n_steps), 0, time.monotonic()

    def add(self, n_steps: int) -> None:
        """More steps than planned turned up."""
        self.total += int(n_steps)

    def step(self, label: str) -> None:
        """Start the next step: ``[i/n] label  (elapsed, ETA)``."""
        self.done += 1
        if self.quiet:
            return
        elapsed = time.monotonic() - self._t0
        total = max(self.total, self.done)
        eta = ""
        if self.done > 1:
            left = elapsed / (self.done - 1) * (total - self.done + 1)
            eta = f", about {_clock(left)} left"
        self._echo(f"[{self.done}/{total}] {label}  ({_clock(elapsed)} elapsed{eta})")

    def note(self, message: str) -> None:
        """A line that is not a step (a warning, a hint, a result)."""
        if not self.quiet:
            self._echo(message)

    def bar(self, total: int | None, desc: str = "", unit: str = "it"):
        """A tqdm bar (shown on a terminal only), or a bar that shows nothing when quiet."""
        if self.quiet:
            return _NullBar()
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, leave=False, disable=None,
                    file=sys.stderr, dynamic_ncols=True)

    def counter(self, total: int | None, desc: str = "", unit: str = "img"):
        """``(bar, callback)``: the callback takes the number done so far (for library
        functions that report progress as a running count)."""
        bar = self.bar(total, desc, unit)

        def update(done: int) -> None:
            bar.update(done - bar.n)

        return bar, update


QUIET = Progress(quiet=True)

__all__ = ["Progress", "QUIET"]
