"""APC model: grid, predictions, fit (known answers), cross-validation, bad units."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from artiphys.errors import ResponseError, StimulusError
from artiphys.stimuli.apc_features import load_feature_table
from artiphys.stimuli.shapes import shape_table
from artiphys.tuning._arrays import FLAG_CONSTANT, FLAG_NONFINITE
from artiphys.tuning.apc import (
    APCGrid,
    align_features,
    apc_predictions,
    apc_unit_responses,
    as_feature_list,
    best_correlations,
    fit_apc,
    fit_apc_cv,
    kfold_indices,
)

SMALL = APCGrid(mu_a_deg=tuple(np.arange(8) * 45.0), sigma_a_deg=(30, 60, 120),
                mu_c=(-0.2, 0.2, 0.6, 1.0), sigma_c=(0.1, 0.3, 0.9))


def test_published_grid_matches_the_paper():
    g = APCGrid.published()
    assert g.n_models == 65_536 and g.shape == (16, 16, 16, 16)
    assert g.mu_a_deg[0] == 0 and g.mu_a_deg[-1] == 337.5
    assert np.allclose(np.diff(g.mu_a_deg), 22.5)
    assert np.allclose(g.mu_c, np.arange(-0.5, 1.01, 0.1))
    assert np.isclose(g.sigma_a_deg[0], 23) and np.isclose(g.sigma_a_deg[-1], 171)
    assert np.isclose(g.sigma_c[0], 0.09) and np.isclose(g.sigma_c[-1], 0.98)
    assert np.allclose(np.diff(np.log(g.sigma_c)), np.log(0.98 / 0.09) / 15)
    p = g.parameters([0, 65_535])
    assert p["mu_a_deg"].tolist() == [0, 337.5] and p["sigma_c"][1] == pytest.approx(0.98)


def test_grid_rejects_bad_values():
    with pytest.raises(ValueError, match="positive"):
        APCGrid((0,), (0,), (0,), (0.1,))
    with pytest.raises(ValueError, match="empty"):
        APCGrid((), (10,), (0,), (0.1,))


def test_prediction_is_max_of_vonmises_times_gaussian():
    feats = [np.array([[0.0, 0.5], [np.pi, -0.1]]), np.array([[np.pi / 2, 1.0]])]
    g = APCGrid((0.0, 180.0), (57.29577951308232,), (0.5,), (0.2,))  # kappa = 1
    pred = apc_predictions(feats, g, device="cpu", dtype=torch.float64).numpy()
    # model 0 (mu_a 0): stimulus 0 peaks at its first point, stimulus 1 at 90 deg away
    assert pred[0, 0] == pytest.approx(1.0)
    assert pred[0, 1] == pytest.approx(np.exp(-1) * np.exp(-0.5 * (0.5 / 0.2) ** 2))
    # model 1 (mu_a 180): the max over the two points of stimulus 0
    first, second = np.exp(-2.0), np.exp(-0.5 * (0.6 / 0.2) ** 2)
    assert pred[1, 0] == pytest.approx(max(first, second))


def test_predictions_agree_with_direct_formula(features_362):
    got = apc_predictions(features_362, SMALL, device="cpu").numpy()
    want = apc_unit_responses(features_362, np.arange(SMALL.n_models), SMALL).T
    assert got.shape == (SMALL.n_models, 362) and got.dtype == np.float32
    assert np.abs(got - want).max() < 1e-6


def test_on_grid_units_are_fit_exactly(features_362, published_predictions):
    """Known answer: units that *are* random published-grid APC models."""
    grid = APCGrid.published()
    truth = np.random.default_rng(0).integers(0, grid.n_models, 40)
    resp = apc_unit_responses(features_362, truth, grid)
    fit = fit_apc(resp, predictions=published_predictions, grid=grid)
    assert (fit.r > 0.99).all()
    assert (fit.model_index.values == truth).all()
    want = grid.parameters(truth)
    for name, values in want.items():
        np.testing.assert_allclose(fit[name].values, values)


def test_fit_is_invariant_to_affine_rescaling_and_shuffling_lowers_r(features_362):
    preds = apc_predictions(features_362, SMALL, device="cpu")
    truth = np.arange(0, SMALL.n_models, 37)
    resp = apc_unit_responses(features_362, truth, SMALL)
    a = fit_apc(resp, predictions=preds, grid=SMALL)
    b = fit_apc(3.5 * resp - 2.0, predictions=preds, grid=SMALL)
    np.testing.assert_allclose(a.r, b.r, atol=1e-9)
    assert (a.model_index == b.model_index).all()
    shuffled = np.random.default_rng(1).permuted(resp, axis=0)
    c = fit_apc(shuffled, predictions=preds, grid=SMALL)
    assert float(c.r.max()) < 0.4 < float(a.r.min())


def test_chunked_running_max_equals_full_product():
    torch.manual_seed(2)
    p = torch.nn.functional.normalize(torch.randn(1000, 50), dim=1)
    r = torch.nn.functional.normalize(torch.randn(50, 70), dim=0)
    best_r, best_m = best_correlations(p, r, max_chunk_mb=0.01)  # many small blocks
    full = p @ r
    assert torch.equal(best_m, full.argmax(0))
    assert torch.allclose(best_r, full.max(0).values)


def test_constant_and_nan_units_get_nan_and_flags_without_warnings(features_362):
    preds = apc_predictions(features_362, SMALL, device="cpu")
    resp = apc_unit_responses(features_362, [5, 9, 11], SMALL)
    resp[:, 1] = 0.0
    resp[3, 2] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_apc(resp, predictions=preds, grid=SMALL)
        cv = fit_apc_cv(resp, predictions=preds, grid=SMALL, n_folds=3)
    assert fit.flags.values.tolist() == [0, FLAG_CONSTANT, FLAG_NONFINITE]
    assert np.isnan(fit.r.values[1:]).all() and np.isnan(fit.mu_c.values[1:]).all()
    assert fit.model_index.values[1] == -1 and fit.r.values[0] > 0.99
    assert np.isnan(cv.r.values[1:]).all() and cv.r.values[0] > 0.99


def test_unit_coords_are_kept_and_features_table_is_matched_by_coord(features_362):
    keep = shape_table(unique=True).index_370.to_numpy()  # standard numbering of the 362
    rows = [(keep[i], j, a, c) for i, f in enumerate(features_362) for j, (a, c) in enumerate(f)]
    table = pd.DataFrame(rows, columns=["stimulus_index", "feature_index",
                                        "angular_position_rad", "curvature"])
    resp = apc_unit_responses(features_362, [3, 100], SMALL)
    order = np.random.default_rng(3).permutation(362)  # responses in another stimulus order
    da = xr.DataArray(resp[order], dims=("stimulus", "unit"),
                      coords={"stimulus": np.arange(362), "index_370": ("stimulus", keep[order]),
                              "layer": ("unit", ["conv2", "conv2"]), "channel": ("unit", [7, 8]),
                              "y": ("unit", [6, 6]), "x": ("unit", [6, 6])})
    fit = fit_apc(da, table, SMALL, device="cpu")
    assert fit.model_index.values.tolist() == [3, 100]
    assert fit.channel.values.tolist() == [7, 8] and fit.layer.values.tolist() == ["conv2"] * 2
    assert fit.flags.attrs["flag_meanings"].startswith("constant")


def _independent_predictions(feats: list[np.ndarray], grid: APCGrid) -> np.ndarray:
    """Written apart from the package: every model's prediction by the formula
    max_p exp((cos(a_p - mu_a) - 1) / sigma_a) exp(-(c_p - mu_c)^2 / (2 sigma_c^2))."""
    models = itertools.product(*(np.asarray(getattr(grid, n)) for n in
                                 ("mu_a_deg", "sigma_a_deg", "mu_c", "sigma_c")))
    return np.array([[np.max(np.exp((np.cos(f[:, 0] - np.radians(ma)) - 1) / np.radians(sa))
                             * np.exp(-(f[:, 1] - mc) ** 2 / (2 * sc ** 2))) for f in feats]
                     for ma, sa, mc, sc in models])


def _independent_fit(resp: np.ndarray, preds: np.ndarray):
    """numpy's Pearson r of every model with every unit: best model and its r per unit."""
    r = np.array([[np.corrcoef(p, u)[0, 1] for p in preds] for u in resp.T])  # (units, models)
    return r.argmax(1), r.max(1)


def test_authors_table_is_joined_by_stimulus_identity(reference_dir):
    """The 370-row standard table fits the 362 unique shapes by index_370, not by row order:
    equal to an independent brute-force fit on features looked up stimulus by stimulus."""
    table = load_feature_table(reference_dir / "pc2001_370_apc_features.csv")
    raw = pd.read_csv(reference_dir / "pc2001_370_apc_features.csv")
    idx = shape_table(unique=True).index_370.to_numpy()
    lookup = [raw.loc[raw.stimulus_index == k, ["angular_position_rad", "curvature"]].to_numpy()
              for k in idx]
    positional = [raw.loc[raw.stimulus_index == k, ["angular_position_rad", "curvature"]].to_numpy()
                  for k in range(362)]
    differs = [i for i in range(362) if not np.array_equal(lookup[i], positional[i])]
    assert len(differs) == 348 and differs[0] == 14  # what a join by position got wrong
    tiny = APCGrid(mu_a_deg=(0, 90, 180, 270), sigma_a_deg=(40, 120), mu_c=(-0.2, 0.5, 1.0),
                   sigma_c=(0.15, 0.6))
    rng = np.random.default_rng(0)
    truth = rng.integers(0, tiny.n_models, 4)
    preds = _independent_predictions(lookup, tiny)
    resp = preds[truth].T + 0.05 * rng.normal(size=(362, 4))
    want_m, want_r = _independent_fit(resp, preds)
    order = rng.permutation(362)
    da = xr.DataArray(resp[order], dims=("stimulus", "unit"),
                      coords={"index_370": ("stimulus", idx[order])})
    fit = fit_apc(da, table, tiny, device="cpu")
    assert fit.model_index.values.tolist() == want_m.tolist() == truth.tolist()
    assert np.allclose(fit.r.values, want_r, atol=1e-9)
    cv = fit_apc_cv(da, table, tiny, n_folds=3, device="cpu")
    assert cv.model_index.values.tolist() == truth.tolist()
    got = apc_predictions(table, tiny, device="cpu", dtype=torch.float64, index_370=idx).numpy()
    assert np.allclose(got, preds, atol=1e-12)
    assert all(np.array_equal(a, lookup[i]) for a, i in zip(align_features(table, da), order))


def test_feature_table_without_identity_gives_one_line_errors(reference_dir):
    table = load_feature_table(reference_dir / "pc2001_370_apc_features.csv")
    resp = np.random.default_rng(1).normal(size=(362, 2))
    cases = [(lambda: fit_apc(resp, table, SMALL), "no index_370 coordinate"),
             (lambda: fit_apc_cv(resp, table, SMALL, n_folds=3), "no index_370 coordinate"),
             (lambda: apc_predictions(table, SMALL), "index_370="),
             (lambda: as_feature_list(table), "index_370=")]
    idx = shape_table(unique=True).index_370.to_numpy()
    da = xr.DataArray(resp, dims=("stimulus", "unit"), coords={"index_370": ("stimulus", idx)})
    partial = table[~table.stimulus_index.isin([18, 40])]
    cases.append((lambda: fit_apc(da, partial, SMALL), "index_370 = 18, 40 .2 of 362 stimuli"))
    blank = da.assign_coords(index_370=("stimulus", np.r_[idx[:-1], -1]))
    cases.append((lambda: fit_apc(blank, table, SMALL), "index_370 = -1 .*blank"))
    for call, message in cases:
        with pytest.raises(StimulusError, match=message) as err:
            call()
        assert "\n" not in str(err.value)


def test_bad_inputs_raise_clear_errors(features_362):
    with pytest.raises(StimulusError, match="same stimuli"):
        fit_apc(np.ones((10, 2)), features_362, SMALL)
    with pytest.raises(ResponseError, match="dims"):
        fit_apc(xr.DataArray(np.ones((2, 3, 4)), dims=("a", "b", "c")), features_362, SMALL)
    with pytest.raises(StimulusError, match="columns"):
        as_feature_list(pd.DataFrame({"a": [1]}))


def test_cross_validation_removes_the_optimism_of_the_full_fit(features_362):
    preds = apc_predictions(features_362, SMALL, device="cpu")
    rng = np.random.default_rng(4)
    noise = rng.normal(size=(362, 30))
    signal = apc_unit_responses(features_362, rng.integers(0, SMALL.n_models, 30), SMALL)
    signal = signal / signal.std(0) + 0.5 * noise
    pure = fit_apc_cv(noise, predictions=preds, grid=SMALL, n_folds=5, seed=0)
    good = fit_apc_cv(signal, predictions=preds, grid=SMALL, n_folds=5, seed=0)
    # noise: the best of 288 models looks correlated on all stimuli, not on held-out ones
    assert float(pure.r_all.mean()) > 0.12 and abs(float(pure.r.mean())) < 0.06
    assert float(good.r.mean()) > 0.75
    assert abs(float((good.r - good.r_all).mean())) < 0.03  # real tuning survives CV
    assert good.r_fold.shape == (30, 5) and good.attrs["cross_validated"] == 1


def test_kfold_indices_partition_the_stimuli():
    folds = kfold_indices(362, 5, seed=1)
    assert sorted(np.concatenate(folds).tolist()) == list(range(362))
    assert {len(f) for f in folds} <= {72, 73}
    with pytest.raises(ValueError):
        kfold_indices(3, 5)


@settings(max_examples=20, deadline=None)
@given(scale=st.floats(0.01, 100), shift=st.floats(-100, 100),
       unit=st.integers(0, SMALL.n_models - 1))
def test_fit_r_is_affine_invariant_property(scale, shift, unit):
    rng = np.random.default_rng(unit)
    feats = [rng.uniform([0, -0.3], [2 * np.pi, 1.0], size=(rng.integers(2, 7), 2))
             for _ in range(40)]
    resp = apc_unit_responses(feats, [unit], SMALL)[:, 0] + 0.1 * rng.normal(size=40)
    a = fit_apc(resp, feats, SMALL, device="cpu")
    b = fit_apc(resp * scale + shift, feats, SMALL, device="cpu")
    assert abs(float(a.r[0]) - float(b.r[0])) < 1e-6


def test_dense_boundary_features_with_a_small_memory_budget():
    """Hundreds of points per stimulus (dense boundary samples) in bounded blocks."""
    rng = np.random.default_rng(7)
    feats = [np.column_stack([np.linspace(0, 2 * np.pi, k, endpoint=False),
                              rng.uniform(-0.3, 1, k)]) for k in rng.integers(200, 400, 25)]
    got = apc_predictions(feats, SMALL, device="cpu", max_chunk_mb=0.5).numpy()
    want = apc_unit_responses(feats, np.arange(SMALL.n_models), SMALL).T
    assert np.abs(got - want).max() < 1e-6


def test_features_from_the_stimulus_module_fit_synthetic_units():
    """Integration with artiphys.stimuli.apc_features: on-grid units are recovered."""
    stimuli = pytest.importorskip("artiphys.stimuli.apc_features")
    feats = stimuli.apc_features()  # the 362 unique shapes
    assert len(feats) == 362
    preds = apc_predictions(feats, SMALL, device="cpu")
    truth = np.arange(3, SMALL.n_models, 41)
    fit = fit_apc(apc_unit_responses(feats, truth, SMALL), predictions=preds, grid=SMALL)
    assert (fit.model_index.values == truth).all() and (fit.r > 0.99).all()


def test_precomputed_predictions_as_numpy_and_shape_check(features_362):
    preds = apc_predictions(features_362, SMALL, device="cpu")
    resp = apc_unit_responses(features_362, [7], SMALL)
    fit = fit_apc(resp, predictions=preds.numpy(), grid=SMALL)
    assert fit.model_index.values.tolist() == [7]
    with pytest.raises(StimulusError, match="shape"):
        fit_apc(resp[:100], predictions=preds, grid=SMALL)
