"""Text forms used in configs and on the command line: unit selections, lists, numbers."""

from __future__ import annotations

from artiphys.config import ConfigError


def split_list(text: str | None) -> list[str]:
    """``"a,b, c"`` -> ``["a", "b", "c"]`` (empty items dropped)."""
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def parse_channels(text: str, where: str = "units") -> list[int]:
    """``"0-3,7"`` -> ``[0, 1, 2, 3, 7]``.

    Raises
    ------
    ConfigError
        For text that is not channels and ranges, empty ranges, or negative channels.
    """
    out: list[int] = []
    for part in split_list(text):
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                out.extend(range(lo_i, hi_i + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ConfigError(f"cannot read {where} {text!r}: use channels like 0-63 or "
                              "1,5,9") from None
    if not out:
        raise ConfigError(f"{where} {text!r} names no channel; use e.g. 0-63 or 1,5,9")
    if min(out) < 0:
        raise ConfigError(f"{where} {text!r}: channels are numbered from 0")
    return list(dict.fromkeys(out))


def parse_unit_spec(text: str, where: str = "units"):
    """``center`` | ``all`` | channels ``0-63,70`` (at the map centre) | ``c:y:x,c:y:x``."""
    text = text.strip()
    if text in {"center", "centre"}:
        return "center"
    if text == "all":
        return "all"
    if ":" in text:
        out = []
        for part in split_list(text):
            try:
                c, y, x = (int(v) for v in part.split(":"))
            except ValueError:
                raise ConfigError(f"cannot read unit {part!r} in {where}: use channel:y:x, "
                                  "e.g. 3:6:6") from None
            out.append((c, y, x))
        return out
    try:
        return parse_channels(text, where)
    except ConfigError:
        raise ConfigError(f"cannot read {where} {text!r}: use center, all, channels like "
                          "0-63, or channel:y:x triples like 3:6:6,4:6:6") from None


def parse_floats(text: str, where: str) -> list[float]:
    """``"0,0.1,1"`` -> ``[0.0, 0.1, 1.0]``; an empty list is refused."""
    try:
        out = [float(v) for v in split_list(text)]
    except ValueError:
        raise ConfigError(f"cannot read {where} {text!r}: use numbers like 0,0.1,1") from None
    if not out:
        raise ConfigError(f"{where} is empty; give at least one number, e.g. 0,0.1,1")
    return out


__all__ = ["parse_channels", "parse_floats", "parse_unit_spec", "split_list"]
