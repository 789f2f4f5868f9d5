"""Screened APC fit: the same best model and r as the full fit, for every kind of unit."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from artiphys.errors import ArtiphysError
from artiphys.tuning import apc_screen
from artiphys.tuning._arrays import FLAG_CONSTANT, FLAG_NONFINITE
from artiphys.tuning.apc import (
    APCGrid,
    _neighbours,
    _normalise_rows,
    apc_predictions,
    apc_unit_responses,
    fit_apc,
)
from artiphys.tuning.apc_screen import (
    cached_screen_basis,
    choose_method,
    exact_margin,
    group_edges,
    level_margin,
    screen_basis,
    screen_dtype,
    screened_best,
    tile_order,
)

SMALL = APCGrid(mu_a_deg=tuple(np.arange(8) * 45.0), sigma_a_deg=(30, 60, 120),
                mu_c=(-0.2, 0.2, 0.6, 1.0), sigma_c=(0.1, 0.3, 0.9))
DTYPES = [torch.float32] + ([torch.bfloat16] if screen_dtype("cpu") == torch.bfloat16 else [])


def _same_fit(full, screened):
    """Identical best models, r, parameters and flags (NaN where the full fit has NaN)."""
    np.testing.assert_array_equal(screened.model_index.values, full.model_index.values)
    np.testing.assert_array_equal(screened.flags.values, full.flags.values)
    np.testing.assert_allclose(screened.r.values, full.r.values, rtol=0, atol=1e-12)
    for name in ("mu_a_deg", "sigma_a_deg", "mu_c", "sigma_c"):
        np.testing.assert_array_equal(screened[name].values, full[name].values)


MEDIUM = APCGrid(mu_a_deg=tuple(np.arange(8) * 45.0), sigma_a_deg=tuple(np.geomspace(23, 171, 8)),
                 mu_c=tuple(np.linspace(-0.5, 1.0, 8)), sigma_c=tuple(np.geomspace(0.09, 0.98, 8)))


@pytest.fixture(scope="module")
def published_bases(published_predictions):
    """One basis per screening dtype; the default one is the cached one ``fit_apc`` uses."""
    default = cached_screen_basis(published_predictions, APCGrid.published())
    return {dt: default if dt == default.dtype else screen_basis(published_predictions, dtype=dt)
            for dt in DTYPES}


def test_tiles_cover_every_model_with_increasing_indices():
    tiles = tile_order((16, 16, 16, 16))
    assert tiles.shape == (256, 256)
    assert np.array_equal(np.sort(tiles.ravel()), np.arange(65_536))
    assert (np.diff(tiles, axis=1) > 0).all()  # first maximum in a tile = lowest index
    sub = np.stack(np.unravel_index(tiles[37], (16,) * 4))
    assert (np.ptp(sub, axis=1) == 3).all()  # a 4 x 4 x 4 x 4 box of grid neighbours
    ragged = tile_order(SMALL.shape)  # (8, 3, 4, 3): boxes padded by repeating the edge
    assert ragged.shape == (2, 4 * 3 * 4 * 3)
    assert set(ragged.ravel()) == set(range(SMALL.n_models))
    assert (np.diff(ragged, axis=1) >= 0).all()


def test_group_edges_and_margins():
    assert group_edges(48, 362) == (48, 72, 108, 162, 243, 362)
    assert group_edges(362, 362) == (362,) and group_edges(400, 362) == (362,)
    assert 5e-5 < exact_margin(362) < 8e-5
    assert level_margin(53, 362) < 1e-4 < level_margin(53, 362, torch.bfloat16) < 0.01


@pytest.mark.parametrize("dtype", DTYPES)
def test_rounding_of_a_screening_product_stays_within_its_margin(dtype):
    """The margin's rounding part bounds the error of real products of unit vectors."""
    gen = torch.Generator().manual_seed(1)
    a = torch.nn.functional.normalize(torch.randn(512, 362, generator=gen, dtype=torch.float64), dim=1)
    b = torch.nn.functional.normalize(torch.randn(256, 362, generator=gen, dtype=torch.float64), dim=1)
    b[:8] = a[:8]  # products near 1, where the output rounding is largest
    err = ((a.to(dtype) @ b.to(dtype).T).double() - a @ b.T).abs().max()
    rounding = level_margin(362, 362, dtype) - exact_margin(362)
    assert float(err) <= rounding
    if dtype == torch.bfloat16:  # dominated by rounding the inputs: the bound is not loose
        assert float(err) > rounding / 20


@pytest.mark.parametrize("dtype", DTYPES)
def test_bounds_hold_for_every_model(features_362, published_bases, dtype):
    """Level-1 bound >= exact score for every model and unit (float64 check of the bound)."""
    basis = published_bases[dtype]
    rng = np.random.default_rng(0)
    resp = np.column_stack([rng.gamma(1.0, size=362), rng.normal(size=362),
                            apc_unit_responses(features_362, [1234])[:, 0]])
    q, _ = _normalise_rows(torch.as_tensor(resp.T.copy()))
    d = q @ basis.basis
    exact = basis.pred_norm.double() @ q.T  # (rows, U)
    bound = (apc_screen._level_columns(basis.pred_norm.double() @ basis.basis, basis.edges1)
             @ apc_screen._level_columns(d, basis.edges1).T)
    assert (bound >= exact - 1e-12).all()
    assert float((bound - exact).median()) > 1e-3  # a real bound, not the score itself


def _synthetic_units(features, grid, preds, seed=0):
    """On-grid APC units with noise, random units, constant / NaN units, near ties."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, grid.n_models, 60)
    ongrid = apc_unit_responses(features, truth, grid)
    noisy = ongrid + rng.normal(scale=0.3 * ongrid.std(0), size=ongrid.shape)
    random = np.column_stack([rng.gamma(1.0, size=(362, 40)), rng.normal(size=(362, 40))])
    p = preds.double().numpy()
    z = (p - p.mean(1, keepdims=True)) / p.std(1, keepdims=True)
    far = rng.integers(0, grid.n_models, (20, 2))  # two models anywhere on the grid
    ties = z[far[:, 0]].T + z[far[:, 1]].T * (1 + rng.normal(scale=1e-4, size=20))
    near = _neighbours(grid, truth[:20])[:, 1]  # a model and its grid neighbour
    neighbour_ties = z[truth[:20]].T + z[near].T * (1 + 1e-7)
    const = np.column_stack([np.zeros(362), np.full(362, 3.25), 5.0 + 1e-9 * rng.normal(size=362)])
    bad = ongrid[:, :2].copy()
    bad[5, 0], bad[7, 1] = np.nan, np.inf
    return np.column_stack([ongrid, noisy, random, ties, neighbour_ties, const, bad])


@pytest.fixture(scope="module")
def synthetic(features_362, published_predictions):
    grid = APCGrid.published()
    resp = _synthetic_units(features_362, grid, published_predictions)
    return resp, fit_apc(resp, predictions=published_predictions, grid=grid, method="full")


@pytest.mark.parametrize("dtype", DTYPES)
def test_screened_fit_equals_full_fit_on_synthetic_units(synthetic, published_predictions,
                                                         published_bases, dtype):
    grid = APCGrid.published()
    resp, full = synthetic
    basis = published_bases[dtype]
    r, m = apc_screen.fit_arrays_screened(resp[:, full.flags.values == 0], published_predictions,
                                          grid, basis=basis)
    ok = full.flags.values == 0
    np.testing.assert_array_equal(m, full.model_index.values[ok])
    np.testing.assert_allclose(r, full.r.values[ok], rtol=0, atol=1e-12)
    assert (full.flags.values[-5:] == [FLAG_CONSTANT] * 3 + [FLAG_NONFINITE] * 2).all()
    assert (full.model_index.values[:60] == np.random.default_rng(0).integers(0, grid.n_models, 60)).all()


def test_fit_apc_dispatch_gives_the_same_dataset(synthetic, published_predictions,
                                                  published_bases):
    grid = APCGrid.published()
    resp, full = synthetic
    screened = fit_apc(resp, predictions=published_predictions, grid=grid, method="screened")
    _same_fit(full, screened)
    assert full.attrs["fit_method"] == "full" and screened.attrs["fit_method"] == "screened"
    assert np.isnan(screened.r.values[-5:]).all() and (screened.model_index.values[-5:] == -1).all()


def test_small_ragged_grid_and_unrefined_fit(features_362):
    preds = apc_predictions(features_362, SMALL, device="cpu")
    rng = np.random.default_rng(5)
    resp = np.column_stack([apc_unit_responses(features_362, np.arange(0, SMALL.n_models, 7), SMALL),
                            rng.gamma(1.0, size=(362, 30))])
    for refine in (True, False):
        full = fit_apc(resp, predictions=preds, grid=SMALL, method="full", refine=refine)
        screened = fit_apc(resp, predictions=preds, grid=SMALL, method="screened", refine=refine)
        np.testing.assert_array_equal(screened.model_index.values, full.model_index.values)
        np.testing.assert_allclose(screened.r.values, full.r.values, atol=1e-5 if not refine else 1e-12)


def test_screen_prunes_most_tiles_of_apc_like_units(features_362, published_predictions,
                                                    published_bases):
    basis = published_bases[DTYPES[-1]]
    truth = np.random.default_rng(2).integers(0, 65_536, 50)
    resp = apc_unit_responses(features_362, truth)
    resp += np.random.default_rng(3).normal(scale=0.2 * resp.std(0), size=resp.shape)
    q, _ = _normalise_rows(torch.as_tensor(resp.T.copy()))
    _, m, stats = screened_best(q, basis)
    assert (m.numpy() == truth).mean() > 0.9
    assert stats.exact_tiles < 12 and stats.level2_tiles < 128 and stats.work_fraction < 0.5


def test_choose_method_and_cache(features_362):
    grid = MEDIUM  # 4096 models, the smallest grid "auto" screens
    preds = apc_predictions(features_362, grid, device="cpu")
    assert choose_method("full", preds, grid, 10**6) == "full"
    assert choose_method("screened", preds, grid, 1) == "screened"
    assert choose_method("auto", preds[:SMALL.n_models], SMALL, 10**6) == "full"
    assert choose_method("auto", preds, grid, 4096) == "screened"
    with pytest.raises(ArtiphysError, match="auto, full, screened"):
        choose_method("fast", preds, grid, 10)
    assert choose_method("auto", preds, grid, 500) == "full"
    basis = cached_screen_basis(preds, grid)
    assert cached_screen_basis(preds, grid) is basis
    assert choose_method("auto", preds, grid, 500) == "screened"
    preds[0, 0] += 1.0  # an in-place change invalidates the entry
    assert choose_method("auto", preds, grid, 500) == "full"
    assert cached_screen_basis(preds, grid) is not basis


@pytest.fixture(scope="module")
def alexnet_responses():
    from artiphys.models import load_model
    from artiphys.recording import record
    from artiphys.stimuli.shapes import shapes

    spec = load_model("alexnet", pretrained=False, seed=0)
    resp = record(spec, shapes(size_px=32, canvas_px=227), ["features.3", "features.8"],
                  units="center", batch_size=64, device="cpu")
    return np.column_stack([resp[k].values for k in resp])


@pytest.mark.slow
def test_screened_fit_equals_full_fit_on_alexnet_random_init(alexnet_responses,
                                                               published_predictions):
    grid = APCGrid.published()
    full = fit_apc(alexnet_responses, predictions=published_predictions, grid=grid, method="full")
    t0 = time.perf_counter()
    screened = fit_apc(alexnet_responses, predictions=published_predictions, grid=grid,
                       method="screened")
    assert time.perf_counter() - t0 < 60
    assert (full.flags.values == 0).sum() > 400
    _same_fit(full, screened)


@pytest.mark.slow
def test_screened_fit_equals_full_fit_on_squeezenet(weights_dir, published_predictions):
    from artiphys.models import load_model
    from artiphys.recording import record
    from artiphys.stimuli.shapes import shapes

    if not any(weights_dir.glob("squeezenet1_0*")):
        pytest.skip(f"no SqueezeNet weights in {weights_dir}")
    spec = load_model("squeezenet1_0", pretrained=True)
    layers = ["features.3", "features.7", "features.12"]
    size = spec.preprocessing.input_size_px
    resp = record(spec, shapes(size_px=32, canvas_px=size), layers, units="center",
                  batch_size=64, device="cpu")
    values = np.column_stack([resp[k].values for k in layers])
    grid = APCGrid.published()
    full = fit_apc(values, predictions=published_predictions, grid=grid, method="full")
    screened = fit_apc(values, predictions=published_predictions, grid=grid, method="screened")
    assert (full.flags.values == 0).sum() > 600
    _same_fit(full, screened)
