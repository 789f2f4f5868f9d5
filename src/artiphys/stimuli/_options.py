"""Reading builder options that may come from the command line."""

from __future__ import annotations

import numpy as np

from artiphys.errors import StimulusError


def as_list(value, cast=float) -> list:
    """Options that may be one value, a list, or a string ``"a;b;c"`` / ``"a,b,c"``."""
    if value is None:
        return [None]
    if isinstance(value, str):
        parts = [p for p in value.replace(";", ",").split(",") if p.strip()]
        try:
            return [cast(p.strip()) for p in parts]
        except ValueError:
            raise StimulusError(f"cannot read {value!r} as a list of numbers; use e.g. 0;45;90") from None
    if np.ndim(value) == 0:
        return [cast(value)]
    return [cast(v) for v in value]
