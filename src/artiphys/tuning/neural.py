"""Comparison of CNN units with recorded neurons (Pospisil et al. 2018, Figs. 5, 13, 14).

* Distributions: :func:`compare_r_distributions` compares each layer's APC-r distribution
  with that of recorded V4 neurons (empirical CDFs and the two-sample KS statistic), and
  :func:`combined_distance` is the paper's distance from the ideal unit,
  ``sqrt((1 - TI)^2 + (1 - r)^2)``.
* Units as models of neurons: :func:`single_unit_cv` finds, for each neuron, the one CNN
  unit whose responses best predict it with a cross-validated linear fit;
  :func:`ridge_population_cv` is the stronger baseline, a cross-validated ridge read-out
  of a whole layer; :func:`compare_unit_models` puts both next to the cross-validated APC
  fit of each neuron (Fig. 14).

All cross-validated scores are the mean over folds of the Pearson r between held-out
responses and predictions, with the same seeded folds (:func:`artiphys.tuning.apc.kfold_indices`)
for every model, so they compare fairly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from artiphys.errors import ResponseError
from artiphys.tuning._arrays import as_responses, response_flags
from artiphys.tuning.apc import fit_apc_cv, kfold_indices


def load_v4_fits(path: str | Path) -> pd.DataFrame:
    """Read a table of APC fits of recorded neurons (one row per neuron, an ``r`` column).

    E.g. ``v4_apc_fits_pc2001_109cells.csv`` (Pasupathy & Connor 2001, 109 V4 cells).
    """
    table = pd.read_csv(path)
    if "r" not in table.columns:
        raise ResponseError(f"{path} has no 'r' column (columns: {list(table.columns)}); "
                            "give a table with one APC fit r per neuron")
    return table


def ecdf(values, at) -> np.ndarray:
    """Empirical CDF of the finite ``values``, evaluated at ``at``."""
    v = np.sort(np.asarray(values, float)[np.isfinite(values)])
    if v.size == 0:
        return np.full(np.shape(at), np.nan)
    return np.searchsorted(v, np.asarray(at, float), side="right") / v.size


def compare_r_distributions(fits: xr.Dataset, reference_r, *, by: str | None = "layer",
                            var: str = "r", at=None) -> xr.Dataset:
    """Compare the distribution of ``fits[var]`` per group with reference neurons' r.

    Parameters
    ----------
    fits : per-unit result (e.g. :func:`~artiphys.tuning.apc.fit_apc`), with a ``by``
        unit coord (``layer``) to group on; None treats all units as one group
    reference_r : recorded neurons' APC r (array, Series, or the table of
        :func:`load_v4_fits`)
    at : values at which the CDFs are given (default 0..1 in steps of 0.01)

    Returns
    -------
    Dataset on ``group``: ``ks_statistic``, ``ks_pvalue``, ``n_units``, ``median``,
    ``frac_gt_0_5``, ``cdf (group, r_value)``, and ``reference_cdf (r_value)``.
    """
    ref = np.asarray(reference_r["r"] if isinstance(reference_r, pd.DataFrame) else reference_r,
                     float)
    ref = ref[np.isfinite(ref)]
    at = np.linspace(0, 1, 101) if at is None else np.asarray(at, float)
    if by is not None and by in fits.coords:
        labels = np.asarray(fits[by].values).astype(str)
    else:
        labels = np.full(fits.sizes["unit"], "all")
    groups = list(dict.fromkeys(labels.tolist()))
    ks, p, n, med, frac, cdfs = [], [], [], [], [], []
    values_all = np.asarray(fits[var].values, float)
    for g in groups:
        v = values_all[labels == g]
        v = v[np.isfinite(v)]
        n.append(v.size)
        if v.size and ref.size:
            res = stats.ks_2samp(v, ref)
            ks.append(res.statistic)
            p.append(res.pvalue)
        else:
            ks.append(np.nan)
            p.append(np.nan)
        med.append(np.median(v) if v.size else np.nan)
        frac.append(np.mean(v > 0.5) if v.size else np.nan)
        cdfs.append(ecdf(v, at))
    return xr.Dataset(
        {"ks_statistic": ("group", ks), "ks_pvalue": ("group", p), "n_units": ("group", n),
         "median": ("group", med), "frac_gt_0_5": ("group", frac),
         "cdf": (("group", "r_value"), np.array(cdfs).reshape(len(groups), at.size)),
         "reference_cdf": ("r_value", ecdf(ref, at))},
        coords={"group": groups, "r_value": at},
        attrs={"analysis": "compare_r_distributions", "variable": var,
               "n_reference": int(ref.size), "reference_median": float(np.median(ref))
               if ref.size else float("nan")})


def combined_distance(ti, r):
    """Distance from the ideal unit, ``sqrt((1 - TI)^2 + (1 - r)^2)`` (Pospisil et al. Fig. 13).

    Works element-wise on arrays and DataArrays (aligned by coordinates).
    """
    return ((1 - ti) ** 2 + (1 - r) ** 2) ** 0.5


# ---- units as models of neurons --------------------------------------------------------

def _zscore_cols(x: np.ndarray) -> np.ndarray:
    xc = x - x.mean(0)
    norm = np.sqrt((xc**2).sum(0))
    return np.where(norm > 0, xc / np.where(norm > 0, norm, 1), 0.0)


def _aligned(neurons, units):
    nd, ud = as_responses(neurons, name="neurons"), as_responses(units, name="unit responses")
    if nd.sizes["stimulus"] != ud.sizes["stimulus"]:
        raise ResponseError(f"{nd.sizes['stimulus']} stimuli for the neurons but "
                            f"{ud.sizes['stimulus']} for the units; use the same stimuli")
    if "stimulus" in nd.coords and "stimulus" in ud.coords and \
            not np.array_equal(nd["stimulus"].values, ud["stimulus"].values):
        raise ResponseError("neurons and units have different stimulus coords; reorder one "
                            "to match the other (e.g. units.sel(stimulus=neurons.stimulus))")
    y = np.asarray(nd.values, float)
    x = np.asarray(ud.values, float)
    if not (np.isfinite(y).all() and np.isfinite(x).all()):
        raise ResponseError("responses contain NaN or inf; drop those neurons/units first")
    return nd, ud, y, x


def _neuron_dataset(nd: xr.DataArray, data: dict, attrs: dict) -> xr.Dataset:
    coords = {k: ("neuron", v.values) for k, v in nd.coords.items() if v.dims == ("unit",)}
    coords["neuron"] = ("neuron", nd["unit"].values)
    return xr.Dataset(data, coords=coords, attrs=attrs)


def single_unit_cv(neurons, units, *, n_folds: int = 5, seed: int = 0) -> xr.Dataset:
    """For each neuron, the best single-unit linear model, cross-validated.

    In each fold, the unit whose responses correlate most (in absolute value) with the
    neuron's on the training stimuli is chosen, a line ``y = a x + b`` is fit there, and
    its predictions are correlated with the held-out responses (equal to
    ``sign(a) * corr_test(x, y)``, since a line does not change a correlation's size).

    Parameters
    ----------
    neurons : ``("stimulus", "unit")`` responses of recorded neurons (the ``unit`` dim
        is read as neurons)
    units : ``("stimulus", "unit")`` responses of CNN units to the same stimuli

    Returns
    -------
    Dataset on ``neuron``: ``cv_r`` (mean held-out r), ``best_unit`` (index into the
    units, chosen on all stimuli), ``r_all`` (its r on all stimuli), ``cv_r_fold``,
    ``unit_fold``.
    """
    nd, ud, y, x = _aligned(neurons, units)
    n_stim, n_neurons = y.shape
    folds = kfold_indices(n_stim, n_folds, seed)
    r_fold = np.full((n_neurons, n_folds), np.nan)
    u_fold = np.zeros((n_neurons, n_folds), int)
    for k, test in enumerate(folds):
        train = np.setdiff1d(np.arange(n_stim), test)
        c_train = _zscore_cols(x[train]).T @ _zscore_cols(y[train])  # (U, N)
        best = np.abs(c_train).argmax(0)
        sign = np.sign(c_train[best, np.arange(n_neurons)])
        xt, yt = _zscore_cols(x[test][:, best]), _zscore_cols(y[test])
        r_fold[:, k] = sign * (xt * yt).sum(0)
        u_fold[:, k] = best
    c_all = _zscore_cols(x).T @ _zscore_cols(y)
    best_all = np.abs(c_all).argmax(0)
    flags = response_flags(y)
    cv_r = np.where(flags == 0, r_fold.mean(1), np.nan)
    return _neuron_dataset(nd, {
        "cv_r": ("neuron", cv_r), "best_unit": ("neuron", best_all),
        "r_all": ("neuron", c_all[best_all, np.arange(n_neurons)]),
        "cv_r_fold": (("neuron", "fold"), r_fold), "unit_fold": (("neuron", "fold"), u_fold),
    }, {"analysis": "single_unit_cv", "n_folds": n_folds, "seed": seed})


def _ridge_fold(xtr, ytr, xte, alphas):
    """Ridge predictions for the test stimuli, alpha chosen per neuron by leave-one-out."""
    xm, ym = xtr.mean(0), ytr.mean(0)
    xc, yc = xtr - xm, ytr - ym
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    uty = u.T @ yc  # (k, N)
    n = xtr.shape[0]
    best_err = np.full(ytr.shape[1], np.inf)
    best_alpha = np.zeros(ytr.shape[1])
    for a in alphas:
        shrink = s**2 / (s**2 + a)  # (k,)
        fitted = u @ (shrink[:, None] * uty)
        h = (u**2 * shrink).sum(1) + 1.0 / n  # leverage, intercept included
        loo = ((yc - fitted) / (1 - h)[:, None]) ** 2
        err = loo.mean(0)
        better = err < best_err
        best_err[better], best_alpha[better] = err[better], a
    coef_s = s[:, None] / (s[:, None] ** 2 + best_alpha[None])  # (k, N)
    beta = vt.T @ (coef_s * uty)  # (U, N)
    return (xte - xm) @ beta + ym, best_alpha


def ridge_population_cv(neurons, units, *, alphas=None, n_folds: int = 5,
                        seed: int = 0) -> xr.Dataset:
    """Cross-validated ridge regression from all ``units`` (a layer) to each neuron.

    The ridge penalty is chosen per neuron and fold from ``alphas`` by exact
    leave-one-out error on the training stimuli (closed form through the SVD), so the
    held-out stimuli are never seen. Returns ``cv_r``, ``cv_r_fold`` and ``alpha_fold``.
    """
    nd, ud, y, x = _aligned(neurons, units)
    if alphas is None:
        scale = float(np.linalg.norm(x - x.mean(0)) ** 2) or 1.0
        alphas = scale * np.logspace(-6, 1, 15)
    n_stim, n_neurons = y.shape
    folds = kfold_indices(n_stim, n_folds, seed)
    r_fold = np.full((n_neurons, n_folds), np.nan)
    a_fold = np.zeros((n_neurons, n_folds))
    for k, test in enumerate(folds):
        train = np.setdiff1d(np.arange(n_stim), test)
        pred, a_fold[:, k] = _ridge_fold(x[train], y[train], x[test], np.asarray(alphas, float))
        r_fold[:, k] = (_zscore_cols(pred) * _zscore_cols(y[test])).sum(0)
    flags = response_flags(y)
    return _neuron_dataset(nd, {
        "cv_r": ("neuron", np.where(flags == 0, r_fold.mean(1), np.nan)),
        "cv_r_fold": (("neuron", "fold"), r_fold), "alpha_fold": (("neuron", "fold"), a_fold),
    }, {"analysis": "ridge_population_cv", "n_folds": n_folds, "seed": seed})


def compare_unit_models(neurons, units, features=None, *, grid=None, predictions=None,
                        n_folds: int = 5, seed: int = 0, device=None) -> xr.Dataset:
    """Fig. 14: per neuron, CV r of the best single unit, of a ridge read-out of the
    layer, and of the APC model (same folds). Needs APC ``features`` or ``predictions``."""
    single = single_unit_cv(neurons, units, n_folds=n_folds, seed=seed)
    ridge = ridge_population_cv(neurons, units, n_folds=n_folds, seed=seed)
    apc = fit_apc_cv(as_responses(neurons, name="neurons"), features, grid,
                     predictions=predictions, n_folds=n_folds, seed=seed, device=device)
    out = single[["cv_r", "best_unit"]].rename(cv_r="unit_cv_r")
    out["ridge_cv_r"] = ("neuron", ridge.cv_r.values)
    out["apc_cv_r"] = ("neuron", apc.r.values)
    out.attrs = {"analysis": "compare_unit_models", "n_folds": n_folds, "seed": seed}
    return out
