"""Size confounds of the APC fit: descriptors, one-parameter fits, area-partialled APC r."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from artiphys.errors import StimulusError
from artiphys.stimuli.shapes import shapes
from artiphys.tuning._arrays import FLAG_CONSTANT
from artiphys.tuning.apc import APCGrid, apc_predictions, apc_unit_responses
from artiphys.tuning.confounds import (
    apc_confounds,
    area_residual_predictions,
    shape_descriptors,
)

SMALL = APCGrid(mu_a_deg=tuple(np.arange(8) * 45.0), sigma_a_deg=(30, 60, 120),
                mu_c=(-0.2, 0.2, 0.6, 1.0), sigma_c=(0.1, 0.3, 0.9))


@pytest.fixture(scope="module")
def small_predictions(features_362):
    return apc_predictions(features_362, SMALL, device="cpu")


@pytest.fixture(scope="module")
def area():
    return shape_descriptors().area_px2.to_numpy()


def _z(x):
    return (x - x.mean()) / x.std()


def test_descriptors_of_the_circles_and_rotations():
    d = shape_descriptors()  # 362 unique shapes, big circle 32 px across
    assert len(d) == 362 and list(d.columns[2:]) == ["area_px2", "perimeter_px", "max_extent_px"]
    big = d[d.shape_id == 1].iloc[0]
    assert big.area_px2 == pytest.approx(np.pi * 16**2, rel=0.01)
    assert big.perimeter_px == pytest.approx(np.pi * 32, rel=0.01)
    assert big.max_extent_px == pytest.approx(32, rel=1e-3)
    assert d[d.shape_id == 0].area_px2.iloc[0] < big.area_px2 / 4  # the small circle
    for _, g in d.groupby("shape_id"):  # rotation invariant
        assert np.ptp(g.area_px2) == 0 and np.ptp(g.perimeter_px) == 0
    double = shape_descriptors(shapes(size_px=64, blank=True))
    np.testing.assert_allclose(double.area_px2[:362], 4 * d.area_px2)
    np.testing.assert_allclose(double.max_extent_px[:362], 2 * d.max_extent_px)
    assert double.iloc[-1][["area_px2", "perimeter_px", "max_extent_px"]].tolist() == [0, 0, 0]


def test_a_unit_that_is_the_area_has_no_apc_tuning_left(small_predictions, area):
    res = apc_confounds(area, small_predictions, grid=SMALL, stimuli=shapes())
    assert res.attrs["analysis"] == "apc_confounds"
    assert float(res.r_area[0]) == pytest.approx(1.0, abs=1e-12)
    assert float(res.r_perimeter[0]) > 0.5 and float(res.r_size[0]) > 0.3
    assert float(res.apc_r[0]) > 0.3  # the confound: APC fits a pure size unit
    assert float(res.apc_r_partial_area[0]) == 0.0
    assert not bool(res.apc_beats_area[0])


def test_the_published_grid_fits_the_area_unit_with_r_070(published_predictions, area):
    """Issue 12 item 7's number, and nothing left once area is partialled out."""
    res = apc_confounds(area, published_predictions, stimuli=shapes(), n_null=0)
    assert 0.65 < float(res.apc_r[0]) < 0.75
    assert float(res.apc_r_partial_area[0]) == 0.0 and not bool(res.apc_beats_area[0])


def test_on_grid_apc_units_keep_a_high_partial_r(features_362, small_predictions):
    rng = np.random.default_rng(0)
    truth = np.arange(0, SMALL.n_models, 23)
    resp = apc_unit_responses(features_362, truth, SMALL)
    resp += rng.normal(scale=0.2 * resp.std(0), size=resp.shape)
    res = apc_confounds(resp, small_predictions, grid=SMALL, stimuli=shapes(), n_null=2)
    assert (res.apc_r_partial_area > 0.8).mean() > 0.9
    assert bool(res.apc_beats_area.all())
    assert 0.05 < res.attrs["null_partial_r95"] < 0.5
    null = apc_confounds(rng.permuted(resp, axis=0), small_predictions, grid=SMALL,
                         stimuli=shapes(), n_null=2)
    assert null.apc_beats_area.mean() < 0.2  # shuffled units rarely pass


def test_area_plus_apc_decomposes(features_362, small_predictions, area):
    """y = z(area) + z(p_m): r_area = sqrt((1 + rho) / 2) with rho = r(area, p_m), and the
    partial fit finds p_m with r = 1 (its area residual is the response's)."""
    models = [5, 40, 77, 150]
    p = apc_unit_responses(features_362, models, SMALL)
    y = np.column_stack([_z(area) + _z(p[:, k]) for k in range(len(models))])
    res = apc_confounds(y, small_predictions, grid=SMALL, stimuli=shapes(), n_null=0)
    rho = np.array([np.corrcoef(area, p[:, k])[0, 1] for k in range(len(models))])
    np.testing.assert_allclose(res.r_area.values, np.sqrt((1 + rho) / 2), atol=1e-12)
    np.testing.assert_allclose(res.apc_r_partial_area.values, 1.0, atol=1e-6)
    assert (res.apc_r.values >= np.sqrt((1 + rho) / 2) - 1e-9).all()  # p_m alone fits as well


def test_descriptors_come_from_coords_and_bad_units_are_flagged(small_predictions, area):
    stim = shapes()
    values = np.column_stack([area, np.zeros(362), area ** 0.5])
    da = xr.DataArray(values, dims=("stimulus", "unit"),
                      coords={c: ("stimulus", stim.params[c].to_numpy())
                              for c in ("shape_id", "rotation", "px_per_unit")})
    res = apc_confounds(da, small_predictions, grid=SMALL, n_null=0)
    assert res.flags.values.tolist() == [0, FLAG_CONSTANT, 0]
    assert np.isnan(res.r_area[1]) and np.isnan(res.apc_r_partial_area[1])
    assert not bool(res.apc_beats_area[1])
    assert float(res.r_area[2]) > 0.99
    with pytest.raises(StimulusError, match="stimuli="):
        apc_confounds(values, small_predictions, grid=SMALL)
    with pytest.raises(StimulusError, match="recorded with"):
        apc_confounds(values[:100], small_predictions[:, :100], grid=SMALL, stimuli=stim)


def test_residual_predictions_are_orthogonal_to_area(small_predictions, area):
    res = area_residual_predictions(small_predictions, area).double().numpy()
    a = (area - area.mean()) / np.linalg.norm(area - area.mean())
    assert np.abs(res @ a).max() < 1e-5 and np.abs(res.mean(1)).max() < 1e-6
