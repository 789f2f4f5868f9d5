"""Shuffle control (null distribution of APC r) and condition bookkeeping."""

from __future__ import annotations

import numpy as np
import xarray as xr

from artiphys.tuning.apc import APCGrid, apc_predictions, apc_unit_responses, fit_apc
from artiphys.tuning.controls import (
    combine_conditions,
    shuffle_null,
    shuffle_responses,
    with_condition,
)

SMALL = APCGrid(tuple(np.arange(8) * 45.0), (30, 90), (-0.2, 0.3, 0.8), (0.15, 0.6))


def test_shuffle_keeps_each_units_values_and_is_seeded():
    x = np.arange(40.0).reshape(10, 4)
    a, b, c = shuffle_responses(x, 3), shuffle_responses(x, 3), shuffle_responses(x, 4)
    assert np.array_equal(a.values, b.values) and not np.array_equal(a.values, c.values)
    assert np.array_equal(np.sort(a.values, 0), x)


def test_shuffling_lowers_apc_r_to_its_null(features_362):
    preds = apc_predictions(features_362, SMALL, device="cpu")
    resp = apc_unit_responses(features_362, [1, 20, 40], SMALL)
    trained = fit_apc(resp, predictions=preds, grid=SMALL)
    null = shuffle_null(resp, fit_apc, n_repeats=6, seed=0, predictions=preds, grid=SMALL)
    assert null.r.dims == ("repeat", "unit") and null.r.shape == (6, 3)
    assert (trained.r > 0.99).all()
    assert float(null.r.max()) < 0.35  # best of 96 models on noise, n = 362
    looped = shuffle_null(resp, fit_apc, n_repeats=2, seed=0, stack=False,
                          predictions=preds, grid=SMALL)
    np.testing.assert_allclose(looped.r.values, null.r.values[:2])


def test_conditions_sit_side_by_side():
    a = xr.Dataset({"r": ("unit", [0.5, 0.6])}, coords={"unit": [0, 1]})
    b = xr.Dataset({"r": ("unit", [0.1, 0.2])}, coords={"unit": [0, 1]})
    both = combine_conditions({"trained": a, "untrained": b})
    assert both.r.sel(condition="untrained").values.tolist() == [0.1, 0.2]
    assert with_condition(a, "shuffle").condition.values.tolist() == ["shuffle"]
