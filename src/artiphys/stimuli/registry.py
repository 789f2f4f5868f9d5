"""Stimulus sets by name, for the CLI and config files.

``make_stimuli("noise", n=8, size_px=64, seed=0)``; ``parse_stimuli_arg("shapes:size_px=64")``.
Each builder is registered with :func:`register_set`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from artiphys.errors import StimulusError, close_matches
from artiphys.stimuli import _validate as V
from artiphys.stimuli.base import StimulusSet

_SETS: dict[str, Callable[..., StimulusSet]] = {}


def register_set(name: str):
    """Decorator: register ``builder(**options) -> StimulusSet`` under ``name``."""

    def deco(builder):
        _SETS[name] = builder
        return builder

    return deco


def available_sets() -> list[str]:
    return sorted(_SETS)


def make_stimuli(name: str, **options) -> StimulusSet:
    """Build the stimulus set registered as ``name`` with keyword ``options``."""
    load_builtin_sets()
    if name not in _SETS:
        raise StimulusError(f"unknown stimulus set {name!r}.{close_matches(name, _SETS)} "
                            f"Known sets: {', '.join(available_sets())}")
    try:
        return _SETS[name](**options)
    except TypeError as exc:
        raise StimulusError(f"bad options for stimulus set {name!r}: {exc}") from None


def parse_stimuli_arg(text: str) -> StimulusSet:
    """Parse ``NAME[:key=value,key=value]`` (values read as int, float, or str)."""
    name, _, opts = text.partition(":")
    options = {}
    for item in filter(None, (o.strip() for o in opts.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise StimulusError(f"cannot read stimulus option {item!r}: use key=value")
        options[key.strip().replace("-", "_")] = parse_value(value.strip())
    return make_stimuli(name, **options)


def parse_options(items) -> dict:
    """``("size_px=64", "unique=false")`` -> ``{"size_px": 64, "unique": False}``."""
    out = {}
    for item in items or ():
        key, eq, value = str(item).partition("=")
        if not eq or not key.strip():
            raise StimulusError(f"cannot read option {item!r}: use key=value")
        out[key.strip().replace("-", "_")] = parse_value(value.strip())
    return out


def stimuli_from_arg(text: str) -> StimulusSet:
    """A registered set (``NAME[:key=value,...]``) or a ``.npy`` file of images in [0, 1]
    ``(n, 3, H, H)``."""
    from pathlib import Path

    if not (text.endswith(".npy") or Path(text).is_file()):
        return parse_stimuli_arg(text)
    try:
        images = np.load(text, allow_pickle=False)
    except FileNotFoundError:
        raise StimulusError(f"image file not found: {text}; check the path") from None
    except ValueError as exc:
        raise StimulusError(f"cannot read images from {text}: {exc}; save a float array "
                            "(n, 3, H, H) in [0, 1] with numpy.save") from None
    if images.dtype.kind in "iub":
        raise StimulusError(f"images must be floats in [0, 1], but {text} holds "
                            f"{images.dtype}; divide 8-bit images by 255")
    if images.dtype.kind != "f" or images.ndim not in (3, 4) or not len(images):
        raise StimulusError(f"{text} holds a {images.dtype} array of shape {images.shape}; "
                            "save a float array (n, 3, H, H) in [0, 1] with numpy.save")
    if not np.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise StimulusError(f"the images in {text} must be finite values in [0, 1]; rescale "
                            "them (8-bit images: divide by 255)")
    return StimulusSet.from_tensor(torch.from_numpy(np.array(images, np.float32)),
                                   name=f"file:{Path(text).name}")


def parse_value(value: str):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    if value.lower() in {"true", "false"}:
        return value.lower() == "true"
    return value


def load_builtin_sets() -> None:
    """Import the modules whose builders register themselves (idempotent)."""
    import importlib

    for mod in ("artiphys.stimuli.shapes", "artiphys.stimuli.gratings", "artiphys.stimuli.natural",
                "artiphys.stimuli.probes"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


@register_set("noise")
def noise_set(n: int = 16, size_px: int = 224, seed: int = 0, sigma: float = 0.15) -> StimulusSet:
    """Gaussian white-noise images around gray (0.5), clipped to [0, 1]; seeded."""
    n, size_px = V.count("n", n, 16), V.count("size_px", size_px, 224)
    V.count("seed", seed, 0, minimum=0)  # checked only: seed and sigma enter the meta (the
    V.nonnegative("sigma", sigma, 0.15)  # content hash) as given
    params = pd.DataFrame({"seed": seed + np.arange(n), "sigma": float(sigma)})

    def render(rows: pd.DataFrame) -> torch.Tensor:
        out = []
        for s in rows["seed"]:
            g = torch.Generator().manual_seed(int(s))
            out.append((0.5 + sigma * torch.randn(3, size_px, size_px, generator=g)).clamp(0, 1))
        return torch.stack(out)

    return StimulusSet("noise", params, render, size_px, {"sigma": sigma, "seed": seed})
