"""Grating tuning on cells whose answers are known analytically."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from artiphys.errors import ResponseError
from artiphys.tuning.orientation import grating_tuning

ORIS = np.arange(0, 180, 15.0)
SFS = np.array([0.05, 0.1, 0.2])
PHASES = np.arange(0, 360, 45.0)


def _responses(fn):
    """Responses of analytic units fn(ori, sf, phase) -> (n_units,) over a factorial sweep."""
    o, s, p = (a.ravel() for a in np.meshgrid(ORIS, SFS, PHASES, indexing="ij"))
    r = np.stack([fn(*args) for args in zip(o, s, p)])
    return xr.DataArray(r, dims=("stimulus", "unit"),
                        coords={"orientation_deg": ("stimulus", o), "sf_cycles_per_px": ("stimulus", s),
                                "phase_deg": ("stimulus", p), "channel": ("unit", np.arange(r.shape[1]))})


def _tuning(ori, pref, width=20.0):
    d = (ori - pref + 90) % 180 - 90
    return np.exp(-0.5 * (d / width) ** 2)


def test_simple_and_complex_cells_are_told_apart_and_preferences_recovered():
    prefs = np.array([30.0, 120.0])

    def cells(ori, sf, phase):
        sf_gain = np.exp(-0.5 * np.log2(sf / 0.1) ** 2)
        drive = _tuning(ori, prefs) * sf_gain
        simple = drive * np.maximum(np.cos(np.deg2rad(phase - 90)), 0)    # half-wave rectified
        complex_ = drive * (1.0 + 0.1 * np.cos(np.deg2rad(phase)))          # weakly modulated
        return np.concatenate([simple, complex_])

    res = grating_tuning(_responses(cells))
    np.testing.assert_allclose(res.preferred_orientation_deg, [30, 120, 30, 120], atol=1e-6)
    np.testing.assert_allclose(res.preferred_sf_cycles_per_px, 0.1)
    assert list(res.cell_class.values) == ["simple", "simple", "complex", "complex"]
    # half-wave rectified sinusoid sampled at 8 phases (samples 0, .707, 1, .707, 0, 0, 0, 0):
    # F1 = 2|sum r e^{-i phi}|/8 = 0.5, F0 = (1 + sqrt 2)/8, so F1/F0 = 4/(1 + sqrt 2)
    # (pi/2 in the limit of dense phase sampling)
    assert res.f1_f0.values[0] == pytest.approx(4 / (1 + np.sqrt(2)), rel=1e-9)
    np.testing.assert_allclose(res.f1_f0.values[2:], 0.1, rtol=1e-6)  # amplitude 0.1 of F0
    assert (res.circular_variance < 0.5).all()
    assert res.curve.dims == ("unit", "orientation_deg", "sf_cycles_per_px")


def test_untuned_unit_has_circular_variance_one_and_silent_unit_nan():
    res = grating_tuning(_responses(lambda o, s, p: np.array([1.0, 0.0])))
    assert res.circular_variance.values[0] == pytest.approx(1.0)
    assert np.isnan(res.circular_variance.values[1]) and np.isnan(res.f1_f0.values[1])


def test_missing_coords_say_what_to_record():
    r = xr.DataArray(np.zeros((3, 2)), dims=("stimulus", "unit"))
    with pytest.raises(ResponseError, match="grating set"):
        grating_tuning(r)
