"""Sparsity, histograms, natural/shape ratio, top/bottom stimuli, kurtosis filter."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from artiphys.errors import ResponseError
from artiphys.tuning._arrays import FLAG_CONSTANT, FLAG_EXCLUDED
from artiphys.tuning.sparsity import (
    PAPER_KURTOSIS_THRESHOLD,
    apply_kurtosis_filter,
    natural_to_shape_max_ratio,
    response_histograms,
    sparsity,
    top_bottom_stimuli,
)


def test_kurtosis_and_sparseness_known_answers():
    n = 362
    one_hot = np.zeros(n)
    one_hot[17] = 5.0
    dense = np.ones(n) + np.r_[0.0, np.zeros(n - 1)]
    dense[0] = 1.001
    gauss = np.random.default_rng(0).normal(size=n)
    ds = sparsity(np.column_stack([one_hot, dense, gauss]))
    # one-hot: kurtosis n - 2 + 1/(n - 1); lifetime sparseness 1; Treves-Rolls a = 1/n
    assert ds.kurtosis[0] == pytest.approx(n - 2 + 1 / (n - 1))
    assert ds.lifetime_sparseness[0] == pytest.approx(1.0)
    assert ds.treves_rolls[0] == pytest.approx(1 / n)
    assert ds.lifetime_sparseness[1] == pytest.approx(0.0, abs=1e-5)
    assert ds.kurtosis[2] == pytest.approx(stats.kurtosis(gauss, fisher=False))
    assert ds.kurtosis[0] >= PAPER_KURTOSIS_THRESHOLD > ds.kurtosis[2]


def test_constant_units_are_nan_and_flagged_quietly():
    x = np.random.default_rng(1).gamma(1, size=(50, 3))
    x[:, 1] = 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = sparsity(x)
    assert np.isnan(ds.kurtosis[1]) and ds.flags[1] == FLAG_CONSTANT and ds.flags[0] == 0


def test_kurtosis_filter_is_reported_and_only_blanks_sparse_units():
    fit = xr.Dataset({"r": ("unit", [0.9, 0.8, 0.7]), "flags": ("unit", np.zeros(3, np.int8))},
                     coords={"unit": [0, 1, 2]})
    out = apply_kurtosis_filter(fit, [3.0, 50.0, 42.0])
    assert np.isnan(out.r[1]) and np.isnan(out.r[2]) and out.r[0] == 0.9
    assert out.flags.values.tolist() == [0, FLAG_EXCLUDED, FLAG_EXCLUDED]
    assert out.attrs["n_excluded_kurtosis"] == 2 and out.attrs["kurtosis_threshold"] == 42
    assert fit.r[1] == 0.8  # caller's result untouched
    with pytest.raises(ResponseError):
        apply_kurtosis_filter(fit, [1.0])


def test_histograms_count_every_value_per_set():
    rng = np.random.default_rng(2)
    h = response_histograms({"shapes": rng.normal(size=(362, 10)),
                             "natural": rng.normal(2, 1, size=(362, 10))}, bins=20)
    assert h["count"].sum("bin").values.tolist() == [3620, 3620]
    assert h["density"].sum("bin").values == pytest.approx([1, 1])
    assert h.bin_lo.values[0] < h.bin_hi.values[-1]


def test_natural_to_shape_ratio_and_unit_check():
    shapes = np.array([[1.0, 0.0], [2.0, -1.0]])
    natural = np.array([[6.0, 3.0], [1.0, 1.0]])
    ds = natural_to_shape_max_ratio(natural, shapes)
    assert ds.ratio[0] == 3.0 and np.isnan(ds.ratio[1]) and ds.flags[1] == FLAG_CONSTANT
    a = xr.DataArray(shapes, dims=("stimulus", "unit"), coords={"channel": ("unit", [0, 1])})
    b = xr.DataArray(natural, dims=("stimulus", "unit"), coords={"channel": ("unit", [1, 0])})
    with pytest.raises(ResponseError, match="channel"):
        natural_to_shape_max_ratio(b, a)


def test_top_and_bottom_eight_by_stimulus_coord():
    x = np.arange(20.0)[:, None] * np.array([1.0, -1.0])
    da = xr.DataArray(x, dims=("stimulus", "unit"), coords={"stimulus": np.arange(100, 120)})
    ds = top_bottom_stimuli(da, n=8)
    assert ds.top_stimulus.sel(unit=0).values.tolist() == list(range(119, 111, -1))
    assert ds.bottom_stimulus.sel(unit=0).values.tolist() == list(range(100, 108))
    assert ds.top_stimulus.sel(unit=1).values.tolist() == list(range(100, 108))
    assert ds.top_response.sel(unit=0, rank=0) == 19.0


def _unit_ds(layers, **vars_):
    return xr.Dataset({k: ("unit", np.asarray(v, float)) for k, v in vars_.items()},
                      coords={"unit": np.arange(len(layers)), "layer": ("unit", layers),
                              "channel": ("unit", np.arange(len(layers)))})


def test_ratio_of_top_apc_units_as_fig13():
    from artiphys.tuning.sparsity import ratio_of_top_apc_units

    # layer "a": 15 units, APC r 0.15 * k; the 10 best are k = 5..14; two of them (k = 13,
    # 7) have a negative shape maximum and are excluded; ratio = k
    k = np.arange(15)
    smax = np.where(np.isin(k, [13, 7]), -1.0, 2.0)
    ratio_a = np.where(smax > 0, k.astype(float), np.nan)
    # layer "b": 4 units, one with NaN APC r (constant), fewer than 10 in all
    layers = ["a"] * 15 + ["b"] * 4
    r = np.r_[0.05 * k, [0.9, np.nan, 0.1, 0.5]]
    ratio = _unit_ds(layers, ratio=np.r_[ratio_a, [3.0, 100.0, 1.0, 2.0]],
                     shape_max=np.r_[smax, [1.0, 1.0, 1.0, 1.0]])
    fit = _unit_ds(layers, r=r)
    out = ratio_of_top_apc_units(ratio, fit)
    used_a = [5, 6, 8, 9, 10, 11, 12, 14]
    assert out.layer.values.tolist() == ["a", "b"]
    assert out.n_top_used.values.tolist() == [8, 3] and out.n_top_excluded.values.tolist() == [2, 0]
    np.testing.assert_allclose(out.ratio_top_mean.values, [np.mean(used_a), 2.0])
    np.testing.assert_allclose(out.ratio_top_sd.values, [np.std(used_a, ddof=1), 1.0])
    np.testing.assert_allclose(out.ratio_median_all.values, [np.nanmedian(ratio_a), 2.5])
    assert out.n_ratio_defined.values.tolist() == [13, 4]
    assert sorted(out.top_unit.values[0][:8].tolist()) == used_a
    assert out.top_unit.values[1].tolist()[:4] == [15, 18, 17, -1]
    assert out.top_apc_r_min.values[0] == pytest.approx(0.25)
    three = ratio_of_top_apc_units(ratio, fit, n_top=3)
    assert three.ratio_top_mean.values[0] == pytest.approx(np.mean([14, 12]))  # 13 excluded
    with pytest.raises(ResponseError, match="same units"):
        ratio_of_top_apc_units(ratio, fit.isel(unit=slice(0, 5)))
    with pytest.raises(ResponseError, match="channel"):
        ratio_of_top_apc_units(ratio, fit.assign_coords(channel=("unit", np.arange(19)[::-1])))
