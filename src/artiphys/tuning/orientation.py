"""Grating tuning: orientation, spatial frequency and phase (simple vs complex cells).

Responses are an ``xr.DataArray`` with dims ``("stimulus", "unit")`` whose stimulus coords
hold the grating parameters. Everything is selected by coordinate, never by order.

References
----------
Skottun B. C. et al. (1991) Classifying simple and complex cells on the basis of response
modulation. Vision Res 31:1079-1086 (F1/F0 > 1: simple; < 1: complex).
Ringach D. L., Shapley R. M., Hawken M. J. (2002) Orientation selectivity in macaque V1:
diversity and laminar dependence. J Neurosci 22:5639-5651 (circular variance).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from artiphys.errors import ResponseError


def _require_coords(responses: xr.DataArray, names: list[str]) -> None:
    missing = [n for n in names if n not in responses.coords]
    if missing:
        raise ResponseError(
            f"responses lack the stimulus coords {missing}; record a grating set whose "
            f"parameter table has them (coords present: {sorted(responses.coords)})")


def grating_tuning(responses: xr.DataArray, *, orientation: str = "orientation_deg",
                   sf: str = "sf_cycles_per_px", phase: str = "phase_deg") -> xr.Dataset:
    """Orientation, spatial-frequency and phase tuning of every unit.

    Parameters
    ----------
    responses : xr.DataArray
        Dims ``("stimulus", "unit")``; stimulus coords ``orientation``, ``sf`` and ``phase``
        (a full factorial sweep; phases evenly spaced over 360°).
    orientation, sf, phase : str
        Names of the stimulus coords (degrees, cycles/px, degrees).

    Returns
    -------
    xr.Dataset
        Over the ``unit`` dim (unit coords kept):

        - ``curve`` (unit, orientation, sf): F0 (mean over phase) response;
        - ``preferred_orientation_deg``: orientation of the vector sum of the F0 curve at the
          preferred SF, over doubled angles, in [0, 180);
        - ``circular_variance``: 1 − |Σ R e^{2iθ}| / Σ R at the preferred SF (0 = perfectly
          tuned, 1 = untuned), computed on responses clipped at 0;
        - ``preferred_sf_cycles_per_px``: SF of the largest F0 at the preferred orientation;
        - ``f1_f0``: modulation ratio over phase at the preferred orientation and SF,
          F1 = 2·|first DFT harmonic|/N, F0 = mean (Skottun et al. 1991); NaN when F0 = 0;
        - ``cell_class``: "simple" when f1_f0 > 1, "complex" when ≤ 1.
    """
    _require_coords(responses, [orientation, sf, phase])
    if set(responses.dims) != {"stimulus", "unit"}:
        raise ResponseError(f"expected dims ('stimulus', 'unit'), got {responses.dims}")
    cube = (responses.set_index(stimulus=[orientation, sf, phase]).unstack("stimulus")
            .transpose("unit", orientation, sf, phase))
    values = cube.values.astype(np.float64)
    if np.isnan(values).any():
        raise ResponseError("grating responses contain NaN (or the sweep is not a full "
                            "orientation × SF × phase factorial)")
    theta = np.deg2rad(cube[orientation].values)
    phases = np.deg2rad(cube[phase].values)

    f0 = values.mean(axis=3)                                   # unit, ori, sf
    n_unit = values.shape[0]
    best = f0.reshape(n_unit, -1).argmax(axis=1)
    i_ori, i_sf = np.unravel_index(best, f0.shape[1:])
    units = np.arange(n_unit)

    at_sf = np.clip(f0[units, :, i_sf], 0, None)               # unit, ori
    vec = (at_sf * np.exp(2j * theta)[None]).sum(axis=1)
    total = at_sf.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cv = np.where(total > 0, 1 - np.abs(vec) / total, np.nan)
    pref_ori = np.rad2deg(np.angle(vec) / 2) % 180

    pref_sf_index = f0[units, i_ori, :].argmax(axis=1)
    pref_sf = cube[sf].values[pref_sf_index]

    trace = values[units, i_ori, i_sf, :]                      # unit, phase
    n_ph = trace.shape[1]
    f1 = 2 * np.abs((trace * np.exp(-1j * phases)[None]).sum(axis=1)) / n_ph
    mean = trace.mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(mean > 0, f1 / mean, np.nan)

    unit_coords = {k: v for k, v in responses.coords.items() if v.dims == ("unit",)}
    out = xr.Dataset(
        {
            "curve": (("unit", orientation, sf), f0),
            "preferred_orientation_deg": ("unit", pref_ori),
            "circular_variance": ("unit", cv),
            "preferred_sf_cycles_per_px": ("unit", pref_sf),
            "f1_f0": ("unit", ratio),
            "cell_class": ("unit", np.where(ratio > 1, "simple", "complex")),
        },
        coords={**unit_coords, orientation: cube[orientation].values, sf: cube[sf].values},
    )
    out.attrs["analysis"] = "grating_tuning"
    return out
