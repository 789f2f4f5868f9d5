"""Writing synthesis results into a run directory (:class:`artiphys.store.RunDir`).

Layout under ``run/`` for one layer label ``L`` (unsafe characters replaced by ``_``)::

    synthesis/L/images.nc      images (unit, rgb, y, x) float32 in [0, 1], final (unit),
                               trace (step, unit); settings JSON in attrs
    synthesis/L/unit_0007.png  one PNG per unit
    synthesis/L/gallery.png    all units in a grid, labelled by channel order
    synthesis/L/probes.nc / probes.csv / probes.png     (when probes were run)
    top_patches/L/table.csv    one row per unit, sign, rank
    top_patches/L/patches.nc   patches and features (unit, sign, rank, rgb, y, x)
    top_patches/L/unit_0007.png   Pospisil-style panel: excitatory patches, their features,
                                  suppressive patches, their features

Diverse sets (:func:`save_diverse`) go to ``diverse_<layer>.nc`` and
``diverse_indices_<layer>.nc`` in a plain folder.

Every file is written atomically; nothing here runs a model.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import numpy as np
import xarray as xr

from artiphys.store import RunDir, atomic_write_bytes, atomic_write_netcdf, atomic_write_text
from artiphys.synthesis.optimize import SynthesisResult
from artiphys.synthesis.probes import probe_table
from artiphys.synthesis.top_patches import SIGNS, TopPatches, feature_to_rgb


def safe_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(label))


def to_uint8(image: np.ndarray) -> np.ndarray:
    """``(3, H, W)`` float in [0, 1] -> ``(H, W, 3)`` uint8."""
    return (np.clip(image, 0, 1).transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)


def png_bytes(rgb_uint8: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb_uint8).save(buf, format="PNG")
    return buf.getvalue()


def montage(tiles: list[np.ndarray], columns: int, gap_px: int = 2,
            background: int = 255) -> np.ndarray:
    """Tiles ``(h, w, 3)`` uint8 of equal size in a grid, row-major."""
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    out = np.full((rows * (h + gap_px) - gap_px, columns * (w + gap_px) - gap_px, 3),
                  background, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, columns)
        out[r * (h + gap_px):r * (h + gap_px) + h, c * (w + gap_px):c * (w + gap_px) + w] = t
    return out


def _upscale(tile: np.ndarray, factor: int) -> np.ndarray:
    return tile.repeat(factor, 0).repeat(factor, 1) if factor > 1 else tile


def synthesis_dataset(result: SynthesisResult) -> xr.Dataset:
    units = result.settings.get("units", list(range(result.images.shape[0])))
    return xr.Dataset(
        {"images": (("unit", "rgb", "y", "x"), result.images.numpy().astype(np.float32)),
         "final": (("unit",), np.asarray(result.final, dtype=np.float32)),
         "trace": (("step", "unit"), np.asarray(result.trace, dtype=np.float32))},
        coords={"unit": np.asarray(units), "rgb": ["r", "g", "b"],
                "objective": ("unit", list(result.objectives))},
        attrs={"settings_json": json.dumps(result.settings, default=str),
               "seconds": float(result.seconds)})


def save_synthesis(run: RunDir, result: SynthesisResult, label: str, columns: int = 8) -> dict:
    """Write images (netCDF + PNGs + gallery), final activations, trace and settings."""
    base = f"synthesis/{safe_name(label)}"
    run.write_netcdf(f"{base}/images.nc", synthesis_dataset(result))
    units = result.settings.get("units", list(range(result.images.shape[0])))
    tiles = []
    for u, img in zip(units, result.images.numpy()):
        tile = to_uint8(img)
        atomic_write_bytes(run.file(f"{base}/unit_{int(u):04d}.png"), png_bytes(tile))
        tiles.append(_upscale(tile, max(1, 64 // tile.shape[0])))
    atomic_write_bytes(run.file(f"{base}/gallery.png"), png_bytes(montage(tiles, columns)))
    run.write_json(f"{base}/settings.json", result.settings)
    return {"images": f"{base}/images.nc", "gallery": f"{base}/gallery.png"}


def save_probes(run: RunDir, ds: xr.Dataset, label: str) -> dict:
    """Write the probe table (netCDF and CSV) and the mean-over-units figure."""
    base = f"synthesis/{safe_name(label)}"
    run.write_netcdf(f"{base}/probes.nc", ds)
    atomic_write_text(run.file(f"{base}/probes.csv"), probe_table(ds).to_csv(index=False))
    from artiphys.synthesis.probes import plot_probes

    fig = plot_probes(ds)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    atomic_write_bytes(run.file(f"{base}/probes.png"), buf.getvalue())
    return {"probes": f"{base}/probes.nc", "probes_csv": f"{base}/probes.csv"}


def top_patches_dataset(result: TopPatches) -> xr.Dataset:
    dims = ("unit", "sign", "rank", "rgb", "y", "x")
    return xr.Dataset(
        {"patches": (dims, result.patches), "features": (dims, result.features)},
        coords={"unit": np.asarray(result.units), "sign": list(SIGNS),
                "rank": np.arange(result.patches.shape[2]), "rgb": ["r", "g", "b"]},
        attrs={"settings_json": json.dumps(result.settings, default=str)})


def save_top_patches(run: RunDir, result: TopPatches, label: str | None = None) -> dict:
    """Write the table, the arrays and one panel PNG per unit."""
    base = f"top_patches/{safe_name(label or result.layer)}"
    atomic_write_text(run.file(f"{base}/table.csv"), result.table.to_csv(index=False))
    run.write_netcdf(f"{base}/patches.nc", top_patches_dataset(result))
    run.write_json(f"{base}/settings.json", result.settings)
    rf = result.patches.shape[-1]
    factor = max(1, 48 // rf)
    k = result.patches.shape[2]
    for u, unit in enumerate(result.units):
        tiles = []
        for s in range(2):
            tiles += [_upscale(to_uint8(p), factor) for p in result.patches[u, s]]
            tiles += [_upscale(to_uint8(feature_to_rgb(f)), factor) for f in result.features[u, s]]
        atomic_write_bytes(run.file(f"{base}/unit_{int(unit):04d}.png"),
                           png_bytes(montage(tiles, k)))
    return {"table": f"{base}/table.csv", "patches": f"{base}/patches.nc"}


def save_diverse(out_dir: str | os.PathLike, sets: xr.Dataset,
                 indices: xr.Dataset | None = None, name: str | None = None) -> list[Path]:
    """Write ``diverse_<name>.nc`` (and ``diverse_indices_<name>.nc``) atomically in ``out_dir``
    (``name`` defaults to the sets' layer, ``/`` replaced by ``_``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tag = (name or str(sets.attrs["layer"])).replace("/", "_")
    paths = [atomic_write_netcdf(out / f"diverse_{tag}.nc", sets)]
    if indices is not None:
        paths.append(atomic_write_netcdf(out / f"diverse_indices_{tag}.nc", indices))
    return paths
