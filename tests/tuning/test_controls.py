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


def test_summarize_seeds_known_medians_spread_and_u():
    import json

    import pytest

    from artiphys.tuning.controls import summarize_seeds

    results = {"conv2": {
        "trained": [np.array([3.0, 4.0, 5.0, np.nan])],  # one seed; NaN dropped, counted
        "untrained": [np.array([1.0, 2.0, 3.0]), np.array([2.0, 3.0, 4.0]),
                      np.array([3.0, 4.0, 5.0])],
        "weight-shuffled": np.array([0.0, 1.0]),  # a bare array is one seed
    }}
    out = summarize_seeds(results)
    json.dumps(out)  # JSON-able as it is
    conv2 = out["layers"]["conv2"]
    t, u = conv2["conditions"]["trained"], conv2["conditions"]["untrained"]
    assert t["median_per_seed"] == [4.0] and t["n_units"] == [3] and t["n_dropped_nonfinite"] == [1]
    assert t["median_sd"] is None and t["median_min"] == t["median_max"] == 4.0
    assert u["median_per_seed"] == [2.0, 3.0, 4.0]
    assert (u["median_min"], u["median_max"], u["median_sd"]) == (2.0, 4.0, 1.0)
    assert u["median_pooled"] == 3.0 and u["n_units"] == [3, 3, 3]
    vu = conv2["versus"]["untrained"]
    assert vu["difference_of_pooled_medians"] == 1.0
    # U by counting: trained {3,4,5} vs pooled control {1,2,3,2,3,4,3,4,5}
    x, y = np.array([3, 4, 5.0]), np.array([1, 2, 3, 2, 3, 4, 3, 4, 5.0])
    want = ((x[:, None] > y[None]).sum() + 0.5 * (x[:, None] == y[None]).sum())
    assert vu["U"] == want and vu["prob_superiority"] == pytest.approx(want / 27)
    assert vu["trained_outside_control_range"] is False  # 4 is within the seeds' 2..4
    vs = conv2["versus"]["weight-shuffled"]
    assert vs["U"] == 6.0 and vs["prob_superiority"] == 1.0
    assert vs["trained_outside_control_range"] is True
    assert out["test"].startswith("Mann-Whitney U")


def test_summarize_seeds_separates_shifted_and_equal_distributions():
    from scipy.stats import norm

    from artiphys.tuning.controls import summarize_seeds

    rng = np.random.default_rng(0)
    results = {"fc7": {"trained": [rng.normal(0.5, 0.1, 500)],
                       "untrained": [rng.normal(0.3, 0.1, 500) for _ in range(3)],
                       "same": [rng.normal(0.5, 0.1, 500) for _ in range(3)]},
               "conv1": {"untrained": [rng.normal(0.3, 0.1, 50)]}}  # no trained: no test
    out = summarize_seeds(results)
    v = out["layers"]["fc7"]["versus"]
    assert v["untrained"]["p_value"] < 1e-100
    assert abs(v["untrained"]["difference_of_pooled_medians"] - 0.2) < 0.02
    assert abs(v["untrained"]["prob_superiority"] - norm.cdf(0.2 / (0.1 * np.sqrt(2)))) < 0.03
    assert v["untrained"]["trained_outside_control_range"] is True
    assert v["same"]["p_value"] > 0.01 and abs(v["same"]["prob_superiority"] - 0.5) < 0.05
    spread = out["layers"]["fc7"]["conditions"]["untrained"]
    assert 0 < spread["median_sd"] < 0.02  # seeds agree to sampling error
    assert out["layers"]["conv1"]["versus"] == {}
