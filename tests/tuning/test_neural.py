"""Comparison with recorded neurons: V4 r distribution, distance, units as neuron models."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from artiphys.errors import ResponseError
from artiphys.tuning.apc import APCGrid, apc_predictions, apc_unit_responses
from artiphys.tuning.neural import (
    combined_distance,
    compare_r_distributions,
    compare_unit_models,
    ecdf,
    load_v4_fits,
    ridge_population_cv,
    single_unit_cv,
)


def test_v4_reference_table_and_ks(reference_dir):
    v4 = load_v4_fits(reference_dir / "v4_apc_fits_pc2001_109cells.csv")
    assert len(v4) == 109
    rng = np.random.default_rng(0)
    same = rng.choice(v4.r.values, 300)
    low = rng.uniform(0, 0.2, 300)
    fits = xr.Dataset({"r": ("unit", np.r_[same, low])},
                      coords={"layer": ("unit", ["fc7"] * 300 + ["conv1"] * 300)})
    cmp = compare_r_distributions(fits, v4)
    assert cmp.group.values.tolist() == ["fc7", "conv1"]
    assert cmp.ks_statistic.sel(group="fc7") < 0.15 < cmp.ks_statistic.sel(group="conv1")
    assert cmp.n_units.values.tolist() == [300, 300] and cmp.attrs["n_reference"] == 109
    assert cmp.reference_cdf.values[-1] == pytest.approx(1.0)


def test_ecdf_and_combined_distance():
    assert ecdf([0.1, 0.2, np.nan, 0.9], [0.0, 0.2, 1.0]).tolist() == pytest.approx([0, 2 / 3, 1])
    assert combined_distance(1.0, 1.0) == 0
    assert combined_distance(np.array([0.97]), np.array([0.80]))[0] == pytest.approx(
        np.hypot(0.03, 0.2))


def test_single_unit_cv_finds_the_generating_unit():
    rng = np.random.default_rng(1)
    units = rng.normal(size=(362, 200))
    neurons = np.column_stack([2 * units[:, 17] + 0.3 * rng.normal(size=362),
                               -units[:, 150] + 0.3 * rng.normal(size=362),
                               rng.normal(size=(362, 20))])
    ds = single_unit_cv(neurons, units, n_folds=5, seed=0)
    assert ds.best_unit.values[:2].tolist() == [17, 150]
    assert (ds.cv_r.values[:2] > 0.9).all()  # negative slope fits too
    # noise neurons: the best of 200 units looks related on all stimuli, not after CV
    assert abs(ds.cv_r.values[2:].mean()) < 0.06 and np.abs(ds.r_all.values[2:]).mean() > 0.12
    with pytest.raises(ResponseError, match="stimuli"):
        single_unit_cv(neurons[:10], units)


def test_ridge_population_beats_single_units_on_a_distributed_code():
    rng = np.random.default_rng(2)
    units = rng.normal(size=(362, 80))
    w = rng.normal(size=(80, 4))
    neurons = units @ w + 2.0 * rng.normal(size=(362, 4))
    ridge = ridge_population_cv(neurons, units, n_folds=5, seed=0)
    single = single_unit_cv(neurons, units, n_folds=5, seed=0)
    assert (ridge.cv_r > 0.9).all() and (ridge.cv_r > single.cv_r + 0.3).all()


def test_compare_unit_models_apc_neuron(features_362):
    grid = APCGrid(tuple(np.arange(8) * 45.0), (30, 90), (-0.2, 0.3, 0.8), (0.15, 0.6))
    preds = apc_predictions(features_362, grid, device="cpu")
    rng = np.random.default_rng(3)
    neuron = apc_unit_responses(features_362, [10], grid) + 0.05 * rng.normal(size=(362, 1))
    units = rng.normal(size=(362, 50))
    ds = compare_unit_models(neuron, units, grid=grid, predictions=preds, n_folds=4)
    assert ds.apc_cv_r[0] > 0.8 and abs(float(ds.unit_cv_r[0])) < 0.3
    assert set(ds.data_vars) == {"unit_cv_r", "best_unit", "ridge_cv_r", "apc_cv_r"}
