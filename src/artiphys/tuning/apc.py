"""The angular position x curvature (APC) shape-tuning model and its fit to units.

Pasupathy & Connor (2001) described V4 shape tuning by a Gaussian-like function of the
angular position and curvature of boundary elements; Pospisil, Pasupathy & Bair (2018,
eLife 7:e38242, Eq. 2) fit the same model to CNN units. A model ``(mu_a, sigma_a, mu_c,
sigma_c)`` predicts, for a stimulus with boundary features ``(a_p, c_p)`` at its
curvature extrema,

    pred = max_p  exp(kappa * (cos(a_p - mu_a) - 1)) * exp(-(c_p - mu_c)^2 / (2 sigma_c^2)),
    kappa = 1 / sigma_a   (sigma_a in radians),

i.e. a von Mises function of angular position (scaled to peak 1; the normalising constant
does not change a correlation) times a Gaussian of curvature. A unit's fit is the model of
a grid with the highest Pearson r between prediction and responses.

The fit of every unit of a layer at once is one large correlation: predictions
``(n_models, n_stimuli)`` and responses ``(n_stimuli, n_units)`` are both centred and
scaled to unit norm, so ``r = P @ R``; it is computed in chunks of models with a running
maximum, so memory stays bounded whatever the number of units, and on the GPU when one is
present. The chosen model is then re-scored in float64 against its neighbours one grid
step away along each parameter, so near-ties that float32 rounding could flip between
adjacent models are settled exactly, and the reported r is a float64 correlation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import xarray as xr

from artiphys.errors import StimulusError
from artiphys.tuning._arrays import (
    FLAG_ATTRS,
    as_responses,
    response_flags,
    unit_dataset,
)

_PARAMS = ("mu_a_deg", "sigma_a_deg", "mu_c", "sigma_c")


@dataclass(frozen=True)
class APCGrid:
    """A grid of APC models: the Cartesian product of four parameter lists.

    Model ``m`` has indices ``np.unravel_index(m, grid.shape)`` into
    ``(mu_a_deg, sigma_a_deg, mu_c, sigma_c)``.

    Attributes
    ----------
    mu_a_deg : tuple of float
        Preferred angular positions, degrees (0 = right, counter-clockwise).
    sigma_a_deg : tuple of float
        Angular widths, degrees; the von Mises concentration is ``1 / radians(sigma_a)``.
    mu_c : tuple of float
        Preferred normalised curvatures (convex positive).
    sigma_c : tuple of float
        Curvature widths (Gaussian s.d.).
    """

    mu_a_deg: tuple[float, ...]
    sigma_a_deg: tuple[float, ...]
    mu_c: tuple[float, ...]
    sigma_c: tuple[float, ...]

    def __post_init__(self):
        for name in _PARAMS:
            values = tuple(float(v) for v in np.atleast_1d(getattr(self, name)))
            if not values:
                raise ValueError(f"APCGrid.{name} is empty; give at least one value")
            if name.startswith("sigma") and min(values) <= 0:
                raise ValueError(f"APCGrid.{name} must be positive, got {values}")
            object.__setattr__(self, name, values)

    @classmethod
    def published(cls) -> APCGrid:
        """The 16^4 = 65,536-model grid of Pospisil et al. (2018).

        mu_a 0..337.5 deg in 22.5 deg steps; mu_c -0.5..1.0 in 0.1 steps; sigma_a 16
        log-spaced values 23..171 deg; sigma_c 16 log-spaced values 0.09..0.98.
        """
        return cls(mu_a_deg=tuple(np.arange(16) * 22.5),
                   sigma_a_deg=tuple(np.geomspace(23.0, 171.0, 16)),
                   mu_c=tuple(np.round(np.linspace(-0.5, 1.0, 16), 10)),
                   sigma_c=tuple(np.geomspace(0.09, 0.98, 16)))

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return tuple(len(getattr(self, n)) for n in _PARAMS)

    @property
    def n_models(self) -> int:
        return int(np.prod(self.shape))

    def parameters(self, model_index=None) -> dict[str, np.ndarray]:
        """Parameter values of the models ``model_index`` (default: all), by name."""
        idx = np.arange(self.n_models) if model_index is None else np.asarray(model_index)
        sub = np.unravel_index(idx, self.shape)
        return {n: np.asarray(getattr(self, n))[s] for n, s in zip(_PARAMS, sub)}

    def describe(self) -> dict:
        return {n: list(getattr(self, n)) for n in _PARAMS}


# ---- features --------------------------------------------------------------------------

def as_feature_list(features, n_stimuli: int | None = None, *,
                    index_370=None) -> list[np.ndarray]:
    """Normalise APC features to a list of ``(n_points, 2)`` arrays ``[angle_rad, curvature]``.

    Parameters
    ----------
    features : sequence of (n_i, 2) arrays, or DataFrame
        One array per stimulus, in the stimuli's order (angular position in radians,
        normalised curvature); or a feature table (columns ``stimulus_index`` in the
        standard 370 numbering, ``angular_position_rad``, ``curvature``; one row per
        feature point), which is joined to the stimuli by identity through ``index_370``,
        never by position. Dense boundary samples work the same way as extrema.
    n_stimuli : int, optional
        Number of stimuli expected.
    index_370 : array of int, optional
        The stimuli in the standard 370 numbering (the responses' ``index_370``
        coordinate); required with a table.
    """
    from artiphys.stimuli.apc_features import check_feature_table, features_by_index_370

    if isinstance(features, pd.DataFrame):
        features = check_feature_table(features)
        if index_370 is None:
            raise StimulusError("a feature table is joined to stimuli by identity: give "
                                "index_370= (the responses' index_370 coordinate), or pass "
                                "the table to fit_apc with responses recorded from a shape set")
        out = features_by_index_370(features, index_370)
    else:
        out = [np.asarray(f, dtype=float).reshape(-1, 2) for f in features]
    if n_stimuli is not None and len(out) != n_stimuli:
        raise StimulusError(f"{len(out)} stimuli have APC features but there are {n_stimuli} "
                            "responses per unit; pass the features of the same stimuli, in order")
    for i, f in enumerate(out):
        if len(f) == 0 or not np.isfinite(f).all():
            raise StimulusError(f"stimulus {i} has no (finite) APC feature points")
    return out


def _padded(features: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Angles, curvatures ``(S, P)`` and a validity mask, padded to the longest list."""
    n = max(len(f) for f in features)
    ang = np.zeros((len(features), n))
    cur = np.zeros((len(features), n))
    valid = np.zeros((len(features), n), dtype=bool)
    for i, f in enumerate(features):
        ang[i, :len(f)], cur[i, :len(f)], valid[i, :len(f)] = f[:, 0], f[:, 1], True
    return ang, cur, valid


def apc_predictions(features, grid: APCGrid | None = None, *, device=None,
                    dtype: torch.dtype = torch.float32, max_chunk_mb: float = 256,
                    index_370=None) -> torch.Tensor:
    """Predicted responses of every model of ``grid`` to every stimulus.

    Parameters
    ----------
    features : see :func:`as_feature_list` (curvature extrema, or dense boundary samples)
    grid : APCGrid, default :meth:`APCGrid.published`
    device : torch device, default CUDA when present
    dtype : torch dtype of the result (computed in float64, then cast)
    max_chunk_mb : float
        Bound on the temporaries: stimuli and models are taken in blocks whose
        ``models x stimuli x points`` float64 terms stay under it (dense boundary samples,
        hundreds of points per stimulus, need this).
    index_370 : array of int, optional
        With a feature table: the stimuli (standard 370 numbering), in prediction order.

    Returns
    -------
    torch.Tensor ``(grid.n_models, n_stimuli)``
        ``max_p vonMises(a_p; mu_a, 1/sigma_a) * Gauss(c_p; mu_c, sigma_c)``, each factor
        with peak 1.
    """
    from artiphys.models.spec import default_device

    grid = grid or APCGrid.published()
    dev = default_device(device)
    feats = as_feature_list(features, index_370=index_370)
    ang, cur, valid = (torch.as_tensor(a, device=dev) for a in _padded(feats))
    f64 = dict(dtype=torch.float64, device=dev)
    # The grid is a product, so the log-prediction separates: log vonMises depends on
    # (mu_a, sigma_a) only, log Gauss on (mu_c, sigma_c) only; padding points get -inf.
    mu_a = torch.as_tensor(np.radians(grid.mu_a_deg), **f64)
    mu_a = mu_a.repeat_interleave(len(grid.sigma_a_deg))
    kappa = (1.0 / torch.as_tensor(np.radians(grid.sigma_a_deg), **f64)).repeat(len(grid.mu_a_deg))
    mu_c = torch.as_tensor(grid.mu_c, **f64).repeat_interleave(len(grid.sigma_c))
    sigma_c = torch.as_tensor(grid.sigma_c, **f64).repeat(len(grid.mu_c))
    n_ac, n_cc = len(mu_a), len(mu_c)
    n_stim, n_pts = ang.shape
    out = torch.empty((n_ac, n_cc, n_stim), dtype=dtype, device=dev)
    budget = max(1, int(max_chunk_mb * 2**20 / 8))  # float64 terms per temporary
    stim_block = max(1, min(n_stim, budget // (4 * max(n_ac, n_cc) * n_pts)))
    for s0 in range(0, n_stim, stim_block):
        s1 = min(s0 + stim_block, n_stim)
        a, c, v = ang[s0:s1], cur[s0:s1], valid[s0:s1]
        log_a = kappa[:, None, None] * (torch.cos(a[None] - mu_a[:, None, None]) - 1)
        log_a = torch.where(v[None], log_a, -torch.inf)  # (n_a * n_sa, s, P)
        log_c = -0.5 * ((c[None] - mu_c[:, None, None]) / sigma_c[:, None, None]) ** 2
        block = max(1, budget // (n_cc * (s1 - s0) * n_pts))
        for lo in range(0, n_ac, block):
            hi = min(lo + block, n_ac)
            log_pred = (log_a[lo:hi, None] + log_c[None]).amax(dim=3)
            out[lo:hi, :, s0:s1] = torch.exp(log_pred).to(dtype)
    return out.reshape(grid.n_models, n_stim)


# ---- fitting ---------------------------------------------------------------------------

CPU_CHUNK_MB = 4     # default block of correlations held at once, on a CPU
GPU_CHUNK_MB = 256   # and on a GPU

def _normalise_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre rows and scale them to unit norm; constant rows become 0. Returns (x, ok).

    A row counts as constant when its spread is at rounding level of its mean (so a row of
    identical values, whose float mean is not exact, does not become a noise vector).
    """
    mean = x.mean(dim=1, keepdim=True)
    x = x - mean
    norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    eps = torch.finfo(x.dtype).eps
    ok = norm > 64 * eps * (mean.abs() * x.shape[1] ** 0.5 + torch.finfo(x.dtype).tiny)
    x.div_(torch.where(ok, norm, 1.0))
    x.mul_(ok)
    return x, ok[:, 0]


def best_correlations(pred_norm: torch.Tensor, resp_norm: torch.Tensor, *,
                      max_chunk_mb: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Running max / argmax over models of ``pred_norm @ resp_norm``.

    ``pred_norm`` ``(M, S)`` and ``resp_norm`` ``(S, U)`` are centred unit-norm rows /
    columns, so each product entry is a Pearson r. Works in blocks of units and models
    whose ``(units, models)`` block of correlations stays under ``max_chunk_mb``; each
    block is reduced along its contiguous (model) axis. The default block is cache-sized on
    a CPU (the max-reduction then reads it from cache: about 30% faster than 64 MB blocks
    on our 2-core machine) and large on a GPU (fewer kernel launches).
    """
    if max_chunk_mb is None:
        max_chunk_mb = CPU_CHUNK_MB if pred_norm.device.type == "cpu" else GPU_CHUNK_MB
    n_models, n_units = pred_norm.shape[0], resp_norm.shape[1]
    budget = max(1, int(max_chunk_mb * 2**20 / pred_norm.element_size()))
    unit_block = min(n_units, 1024)
    model_block = max(1, min(n_models, budget // unit_block))
    best_r = torch.empty((n_units,), dtype=pred_norm.dtype, device=pred_norm.device)
    best_m = torch.empty((n_units,), dtype=torch.long, device=pred_norm.device)
    resp_t = resp_norm.T.contiguous()  # (U, S)
    for u0 in range(0, n_units, unit_block):
        u1 = min(u0 + unit_block, n_units)
        r_blk = torch.full((u1 - u0,), -torch.inf, dtype=pred_norm.dtype, device=pred_norm.device)
        m_blk = torch.zeros((u1 - u0,), dtype=torch.long, device=pred_norm.device)
        for m0 in range(0, n_models, model_block):
            m1 = min(m0 + model_block, n_models)
            vals, idx = torch.max(resp_t[u0:u1] @ pred_norm[m0:m1].T, dim=1)
            better = vals > r_blk
            r_blk = torch.where(better, vals, r_blk)
            m_blk = torch.where(better, idx + m0, m_blk)
        best_r[u0:u1], best_m[u0:u1] = r_blk, m_blk
    return best_r, best_m


def _neighbours(grid: APCGrid, model_index: np.ndarray) -> np.ndarray:
    """``(U, 9)`` model indices: each model and its neighbours one step along each axis."""
    sub = np.stack(np.unravel_index(model_index, grid.shape), axis=1)  # (U, 4)
    steps = np.vstack([np.zeros((1, 4), int), np.eye(4, dtype=int), -np.eye(4, dtype=int)])
    cand = sub[:, None, :] + steps[None]
    # angular position is circular; the other parameters are clipped at the grid's edges
    cand[..., 0] %= grid.shape[0]
    for k in (1, 2, 3):
        cand[..., k] = np.clip(cand[..., k], 0, grid.shape[k] - 1)
    return np.ravel_multi_index(tuple(cand[..., k] for k in range(4)), grid.shape)


def _pearson64(pred: np.ndarray, resp: np.ndarray) -> np.ndarray:
    """Row-wise Pearson r of ``pred`` ``(..., S)`` with ``resp`` ``(..., S)``, float64."""
    pc = pred - pred.mean(-1, keepdims=True)
    rc = resp - resp.mean(-1, keepdims=True)
    den = np.sqrt((pc * pc).sum(-1) * (rc * rc).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (pc * rc).sum(-1) / np.where(den > 0, den, 1), 0.0)


def _fit_arrays(resp: np.ndarray, preds: torch.Tensor, grid: APCGrid, *, refine: bool,
                max_chunk_mb: float | None, pred_norm: torch.Tensor | None = None,
                ) -> tuple[np.ndarray, np.ndarray]:
    """Best model and its r for each column of ``resp`` ``(S, U)`` (no flag handling)."""
    dev = preds.device
    if pred_norm is None:
        pred_norm, _ = _normalise_rows(preds.to(torch.float32))
    resp_t = torch.as_tensor(resp.T, dtype=torch.float64, device=dev)
    resp_norm, _ = _normalise_rows(resp_t)  # (U, S) float64
    r, m = best_correlations(pred_norm, resp_norm.T.to(torch.float32), max_chunk_mb=max_chunk_mb)
    if not refine or len(m) == 0:
        return r.double().cpu().numpy(), m.cpu().numpy()
    return _refine(preds, grid, m, resp_norm)


def _refine(preds: torch.Tensor, grid: APCGrid, m: torch.Tensor, resp_norm: torch.Tensor,
            ) -> tuple[np.ndarray, np.ndarray]:
    """Float64 re-scoring of models ``m`` ``(U,)`` against their 8 axis neighbours.

    ``resp_norm`` ``(U, S)`` float64 centred unit-norm responses. Returns (r, model index).
    """
    dev = preds.device
    cand = torch.as_tensor(_neighbours(grid, m.cpu().numpy()), device=dev)  # (U, 9)
    out_r = torch.empty(len(m), dtype=torch.float64, device=dev)
    out_m = torch.empty(len(m), dtype=torch.long, device=dev)
    block = 4096
    for lo in range(0, len(m), block):
        c = cand[lo:lo + block]
        p = preds[c.reshape(-1)].double()
        p, _ = _normalise_rows(p)
        rr = torch.einsum("uks,us->uk", p.view(c.shape + (preds.shape[1],)),
                          resp_norm[lo:lo + block])
        best = rr.argmax(1)
        rows = torch.arange(len(c), device=dev)
        out_r[lo:lo + block] = rr[rows, best]
        out_m[lo:lo + block] = c[rows, best]
    return out_r.cpu().numpy(), out_m.cpu().numpy()


def _prepare(responses, features, grid, predictions, device):
    from artiphys.models.spec import default_device

    da = as_responses(responses)
    grid = grid or APCGrid.published()
    if predictions is None:
        feats = align_features(features, da)
        predictions = apc_predictions(feats, grid, device=default_device(device))
    else:
        predictions = torch.as_tensor(predictions)
    if tuple(predictions.shape) != (grid.n_models, da.sizes["stimulus"]):
        raise StimulusError(f"predictions have shape {tuple(predictions.shape)}, expected "
                            f"(n_models={grid.n_models}, n_stimuli={da.sizes['stimulus']})")
    values = np.asarray(da.values, dtype=np.float64)
    flags = response_flags(values)
    return da, grid, predictions, values, flags


def align_features(features, responses) -> list[np.ndarray]:
    """APC features in the order of the responses' stimuli.

    A feature table (DataFrame with ``stimulus_index`` in the standard 370 numbering) is
    joined by the ``index_370`` stimulus coordinate of ``responses``, never by position; a
    list of per-stimulus arrays is taken to be in the responses' order already.

    Raises
    ------
    StimulusError
        A table with responses that have no ``index_370`` coordinate, a table missing some
        of the responses' stimuli, or a list of the wrong length.
    """
    da = as_responses(responses)
    n = da.sizes["stimulus"]
    if isinstance(features, pd.DataFrame):
        if "index_370" not in da.coords:
            raise StimulusError("the responses have no index_370 coordinate, so a feature "
                                "table cannot be joined to their stimuli; record a shape set "
                                "(its index_370 column becomes the coordinate) or pass the "
                                "features as a list in the responses' stimulus order")
        return as_feature_list(features, n_stimuli=n, index_370=da["index_370"].values)
    return as_feature_list(features, n_stimuli=n)


def _result(da, grid, r, m, flags, attrs) -> xr.Dataset:
    bad = flags != 0
    r = np.where(bad, np.nan, r)
    params = grid.parameters(np.where(bad, 0, m))
    data = {"r": ("unit", r, {"long_name": "Pearson r of the best APC model"})}
    for name in _PARAMS:
        data[name] = ("unit", np.where(bad, np.nan, params[name]))
    data["model_index"] = ("unit", np.where(bad, -1, m).astype(np.int64))
    data["flags"] = ("unit", flags, FLAG_ATTRS)
    return unit_dataset(da, data, {"analysis": "apc", "n_models": grid.n_models, **attrs})


def fit_apc(responses, features=None, grid: APCGrid | None = None, *, predictions=None,
            device=None, refine: bool = True, max_chunk_mb: float | None = None,
            method: str = "auto") -> xr.Dataset:
    """Fit the APC model to every unit: the grid model with the highest Pearson r.

    Parameters
    ----------
    responses : xr.DataArray ``("stimulus", "unit")`` or array ``(n_stimuli, n_units)``
        Responses of any number of units (all layers stacked, if wanted) to the shapes.
    features : APC features of the same stimuli (see :func:`as_feature_list`); a feature
        table is joined by the ``index_370`` coordinate of ``responses`` (see
        :func:`align_features`). Not needed when ``predictions`` are given.
    grid : APCGrid, default the published 65,536-model grid
    predictions : tensor ``(n_models, n_stimuli)``, optional
        Precomputed :func:`apc_predictions` (reuse across layers and conditions).
    device : torch device, default CUDA when present
    refine : bool
        Re-score, in float64, the float32 winner against its 8 axis neighbours on the grid.
    max_chunk_mb : float, optional
        Bound on the ``(models, units)`` block of correlations held at once (default
        ``CPU_CHUNK_MB`` on a CPU, ``GPU_CHUNK_MB`` on a GPU).
    method : {"auto", "full", "screened"}
        ``"full"`` scores every model; ``"screened"`` rules models out by a provable
        low-rank bound and scores the rest (:mod:`artiphys.tuning.apc_screen`; same best
        model); ``"auto"`` screens where that is faster (large grids and unit counts, CPU).

    Returns
    -------
    xr.Dataset on ``unit`` (with the unit coords of ``responses``)
        ``r``, ``mu_a_deg``, ``sigma_a_deg``, ``mu_c``, ``sigma_c``, ``model_index`` and
        ``flags`` (bit mask, see ``flags.attrs``): units with constant or non-finite
        responses get NaN and a flag. ``attrs["fit_method"]`` says which method ran.
    """
    from artiphys.tuning import apc_screen

    da, grid, preds, values, flags = _prepare(responses, features, grid, predictions, device)
    ok = flags == 0
    r = np.full(values.shape[1], np.nan)
    m = np.zeros(values.shape[1], dtype=np.int64)
    chosen = apc_screen.choose_method(method, preds, grid, int(ok.sum()))
    fit = apc_screen.fit_arrays_screened if chosen == "screened" else _fit_arrays
    if ok.any():
        r[ok], m[ok] = fit(values[:, ok], preds, grid, refine=refine, max_chunk_mb=max_chunk_mb)
    return _result(da, grid, r, m, flags, {"n_stimuli": values.shape[0], "cross_validated": 0,
                                           "fit_method": chosen})


def kfold_indices(n: int, n_folds: int, seed: int = 0) -> list[np.ndarray]:
    """Seeded random split of ``range(n)`` into ``n_folds`` nearly equal test folds."""
    if not 2 <= n_folds <= n:
        raise ValueError(f"n_folds must be between 2 and the number of stimuli ({n}), "
                         f"got {n_folds}")
    perm = np.random.default_rng(seed).permutation(n)
    return [np.sort(f) for f in np.array_split(perm, n_folds)]


def fit_apc_cv(responses, features=None, grid: APCGrid | None = None, *, n_folds: int = 5,
               seed: int = 0, predictions=None, device=None, refine: bool = True,
               max_chunk_mb: float | None = None) -> xr.Dataset:
    """Cross-validated APC fit: choose the model on k-1 folds, score it on the held-out fold.

    Same inputs as :func:`fit_apc`. Folds are a seeded random split of the stimuli.

    Returns
    -------
    xr.Dataset on ``unit`` (and ``fold``)
        ``r`` = mean held-out r over folds; ``r_train`` = mean training r; ``r_fold`` and
        ``model_index_fold`` per fold; the parameters of the model fit to all stimuli
        (``mu_a_deg`` ...); ``flags``.
    """
    da, grid, preds, values, flags = _prepare(responses, features, grid, predictions, device)
    n_stim, n_units = values.shape
    folds = kfold_indices(n_stim, n_folds, seed)
    r_fold = np.full((n_units, n_folds), np.nan)
    r_train = np.full((n_units, n_folds), np.nan)
    m_fold = np.full((n_units, n_folds), -1, dtype=np.int64)
    ok = flags == 0
    dev = preds.device
    for k, test in enumerate(folds):
        train = np.setdiff1d(np.arange(n_stim), test)
        sub = values[:, ok]
        # a unit constant on the training or test stimuli only has an undefined r there
        tr_ok = response_flags(sub[train]) == 0
        idx_ok = np.flatnonzero(ok)[tr_ok]
        if len(idx_ok) == 0:
            continue
        p_train = preds[:, torch.as_tensor(train, device=dev)]
        rt, mt = _fit_arrays(values[np.ix_(train, idx_ok)], p_train, grid, refine=refine,
                             max_chunk_mb=max_chunk_mb)
        p_test = preds[torch.as_tensor(mt, device=dev)][:, torch.as_tensor(test, device=dev)]
        resp_test = values[np.ix_(test, idx_ok)].T
        r_test = _pearson64(p_test.double().cpu().numpy(), resp_test)
        const_test = response_flags(resp_test.T) != 0
        r_test[const_test] = np.nan
        r_fold[idx_ok, k], r_train[idx_ok, k], m_fold[idx_ok, k] = r_test, rt, mt
    full = fit_apc(da, grid=grid, predictions=preds, refine=refine, max_chunk_mb=max_chunk_mb)
    out = full.copy()
    out = out.rename({"r": "r_all"})
    out["r_all"].attrs = {"long_name": "r of the model fit to all stimuli (not cross-validated)"}
    with np.errstate(invalid="ignore"), _quiet():
        out["r"] = ("unit", np.nanmean(r_fold, axis=1),
                    {"long_name": f"mean held-out r over {n_folds} folds"})
        out["r_train"] = ("unit", np.nanmean(r_train, axis=1))
    out["r_fold"] = (("unit", "fold"), r_fold)
    out["model_index_fold"] = (("unit", "fold"), m_fold)
    out.attrs.update(cross_validated=1, n_folds=n_folds, seed=seed)
    return out


class _quiet:
    """Silence numpy's 'Mean of empty slice' for units with no valid fold (NaN is meant)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def apc_unit_responses(features, params: dict | Sequence[int], grid: APCGrid | None = None,
                       ) -> np.ndarray:
    """Responses ``(n_stimuli, n_units)`` of synthetic units that *are* APC models.

    ``params`` is a list of model indices into ``grid`` or a dict of equal-length
    parameter arrays ``mu_a_deg, sigma_a_deg, mu_c, sigma_c``. For known-answer tests.
    """
    feats = as_feature_list(features)
    if not isinstance(params, dict):
        params = (grid or APCGrid.published()).parameters(np.asarray(params))
    ang, cur, valid = _padded(feats)
    mu_a = np.radians(np.asarray(params["mu_a_deg"], float))[:, None, None]
    kappa = 1 / np.radians(np.asarray(params["sigma_a_deg"], float))[:, None, None]
    mu_c = np.asarray(params["mu_c"], float)[:, None, None]
    sd_c = np.asarray(params["sigma_c"], float)[:, None, None]
    val = np.exp(kappa * (np.cos(ang[None] - mu_a) - 1) - 0.5 * ((cur[None] - mu_c) / sd_c) ** 2)
    return np.where(valid[None], val, 0.0).max(axis=2).T


__all__ = ["APCGrid", "align_features", "apc_predictions", "apc_unit_responses",
           "as_feature_list", "best_correlations", "fit_apc", "fit_apc_cv", "kfold_indices"]
