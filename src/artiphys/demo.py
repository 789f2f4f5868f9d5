"""The main job of `make demo`: characterise the built-in V1 model end to end.

The default model (``v1bank``: Gabor simple cells, energy and Hubel-Wiesel complex cells,
DoG cells) has known answers, so the demo also checks itself: the preferred orientation
recovered from a grating sweep must match each channel's designed orientation, simple
cells must come out with F1/F0 > 1 and energy complex cells with F1/F0 < 1.

Steps: gratings and the 362 Pasupathy-Connor shapes are recorded from the centre unit of
every channel of each cell family into a run directory; grating tuning and APC fits are
written as netCDF results; a summary and an HTML report are built from what was stored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from artiphys.models import DEMO_MODEL, load_model
from artiphys.models.analytic import channel_table
from artiphys.models.layers import resolve_layer
from artiphys.recording.record import load_run_responses, record_to_store
from artiphys.report import build_report
from artiphys.stimuli.apc_features import apc_features
from artiphys.stimuli.registry import make_stimuli
from artiphys.store.atomic import atomic_write_json, atomic_write_netcdf
from artiphys.tuning.apc import fit_apc
from artiphys.tuning.orientation import grating_tuning

DEMO_LAYERS = ("simple", "complex_energy", "complex_hw", "dog")


def _orientation_error_deg(tuning: xr.Dataset, designed: np.ndarray) -> np.ndarray:
    diff = (tuning["preferred_orientation_deg"].values - designed + 90) % 180 - 90
    return np.abs(diff)


def run_demo(out: str | Path, *, model: str = DEMO_MODEL, resume: bool = False) -> dict:
    """Run the demo into run directory ``out`` and return its summary (also in summary.json)."""
    out = Path(out)
    spec = load_model(model)
    size = spec.preprocessing.input_size_px
    layers = [name for name in DEMO_LAYERS if name in dict(spec.module.named_modules())]

    gratings = make_stimuli("gratings", orientation_deg=list(np.arange(0.0, 180.0, 11.25)),
                            sf_cycles_per_px=[0.05, 0.1, 0.2, 0.3],
                            phase_deg=list(np.arange(0.0, 360.0, 45.0)), size_px=size)
    shapes = make_stimuli("shapes", canvas_px=size, size_px=min(32, size // 2))
    record_to_store(spec, gratings, layers, out / "gratings", resume=resume)
    record_to_store(spec, shapes, layers, out / "shapes", resume=resume)

    grating_resp = load_run_responses(out / "gratings")
    shape_resp = load_run_responses(out / "shapes")
    features = apc_features(shapes)
    summary: dict = {"model": spec.provenance(), "stimuli": {
        "gratings": gratings.describe(), "shapes": shapes.describe()}, "layers": {}}
    results = out / "results"
    for label in layers:
        tuning = grating_tuning(grating_resp[label])
        atomic_write_netcdf(results / f"grating_tuning_{label}.nc", tuning)
        apc = fit_apc(shape_resp[label], features)
        atomic_write_netcdf(results / f"apc_{label}.nc", apc)
        entry = {
            "n_units": int(tuning.sizes["unit"]),
            "frac_simple": float(np.mean(tuning["cell_class"].values == "simple")),
            "f1_f0_median": float(np.nanmedian(tuning["f1_f0"].values)),
            "circular_variance_median": float(np.nanmedian(tuning["circular_variance"].values)),
            "apc_r_median": float(np.nanmedian(apc["r"].values)),
        }
        table = channel_table(resolve_layer(spec, label).module)
        if table is not None and "orientation_deg" in table:
            channels = tuning["channel"].values
            err = _orientation_error_deg(tuning, table["orientation_deg"].to_numpy()[channels])
            entry["orientation_error_deg_max"] = float(np.max(err))
        summary["layers"][label] = entry
    atomic_write_json(out / "summary.json", summary)
    summary["report"] = str(build_report(out))
    return summary
