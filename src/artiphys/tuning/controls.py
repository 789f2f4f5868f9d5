"""Controls for every metric (Pospisil et al. 2018): shuffled responses and conditions.

* :func:`shuffle_responses` permutes each unit's responses across stimuli (seeded), which
  keeps the response distribution and destroys any relation to the stimuli.
* :func:`shuffle_null` runs an analysis on ``n_repeats`` shuffles, giving a null
  distribution of its statistic (e.g. APC r) per unit.
* :func:`with_condition` / :func:`combine_conditions` give results a ``condition``
  coordinate ("trained", "untrained", "weight-shuffled", "shuffle") so trained and control
  results sit side by side. The untrained and weight-shuffled twins themselves are built
  by :mod:`artiphys.models` and run through the same pipeline.
* :func:`summarize_seeds` - per layer, the median of a per-unit statistic (APC r, TI...)
  for each seed of each condition, its spread across seeds, and the trained-vs-control
  difference with a Mann-Whitney U test, as a JSON-able dict (``summary.json``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import xarray as xr

from artiphys.tuning._arrays import as_responses


def shuffle_responses(responses, seed: int = 0) -> xr.DataArray:
    """A copy of ``responses`` with each unit's values permuted across stimuli.

    Each unit gets its own permutation from ``numpy.random.default_rng(seed)``; the
    coordinates stay where they were (stimulus parameters no longer match the values).
    """
    da = as_responses(responses)
    rng = np.random.default_rng(seed)
    values = rng.permuted(np.asarray(da.values), axis=0)
    out = da.copy(data=values)
    out.attrs = {**da.attrs, "shuffled_seed": int(seed)}
    return out


def shuffle_null(responses, analysis: Callable[..., xr.Dataset], n_repeats: int = 10,
                 seed: int = 0, stack: bool = True, **kwargs) -> xr.Dataset:
    """Null distribution of ``analysis`` over ``n_repeats`` seeded shuffles.

    Parameters
    ----------
    responses : DataArray ``("stimulus", "unit")`` or array
    analysis : callable ``analysis(responses, **kwargs) -> Dataset on unit`` (e.g.
        ``fit_apc`` with ``predictions=...``)
    n_repeats : number of shuffles; repeat ``k`` uses seed ``seed + k``
    stack : run all repeats as one call on ``n_repeats * n_units`` units (fast for the
        vectorised APC fit); False calls ``analysis`` once per repeat
    kwargs : passed to ``analysis``

    Returns
    -------
    Dataset with dims ``(repeat, unit, ...)``; attrs ``seed`` and ``n_repeats``.
    """
    da = as_responses(responses)
    shuffles = [shuffle_responses(da, seed + k) for k in range(n_repeats)]
    if stack:
        n = da.sizes["unit"]
        big = xr.concat(shuffles, dim="unit").assign_coords(unit=np.arange(n * n_repeats))
        res = analysis(big, **kwargs)
        parts = [res.isel(unit=slice(k * n, (k + 1) * n)).assign_coords(unit=da["unit"].values)
                 for k in range(n_repeats)]
    else:
        parts = [analysis(s, **kwargs) for s in shuffles]
    out = xr.concat(parts, dim="repeat").assign_coords(repeat=np.arange(n_repeats))
    out.attrs.update(control="shuffle", seed=int(seed), n_repeats=int(n_repeats))
    return out


def with_condition(result: xr.Dataset | xr.DataArray, condition: str):
    """``result`` with a length-1 ``condition`` dim (for :func:`combine_conditions`)."""
    return result.expand_dims(condition=[condition])


def combine_conditions(results: dict[str, xr.Dataset]) -> xr.Dataset:
    """Concatenate ``{condition: result}`` along a ``condition`` dim (outer join on units)."""
    parts = [r.expand_dims(condition=[c]) if "condition" not in r.dims else r
             for c, r in results.items()]
    return xr.concat(parts, dim="condition", join="outer", combine_attrs="drop_conflicts")


MANN_WHITNEY = ("Mann-Whitney U (scipy.stats.mannwhitneyu, two-sided, asymptotic with tie "
                "correction for large samples) on the units pooled over seeds")


def _finite(x) -> float | None:
    """A float for JSON, None for NaN / inf."""
    x = float(x)
    return x if math.isfinite(x) else None


def _seed_arrays(values) -> list[np.ndarray]:
    """A condition's per-seed values as a list of 1-D float arrays (one array = one seed)."""
    if isinstance(values, np.ndarray) and values.ndim == 1:
        values = [values]
    return [np.asarray(v, dtype=float).ravel() for v in values]


def _condition_summary(seeds: list[np.ndarray]) -> dict:
    kept = [v[np.isfinite(v)] for v in seeds]
    medians = np.array([np.median(v) if len(v) else np.nan for v in kept])
    ok = medians[np.isfinite(medians)]
    pooled = np.concatenate(kept) if kept else np.array([])
    return {
        "n_seeds": len(seeds),
        "n_units": [len(v) for v in kept],
        "n_dropped_nonfinite": [int(len(s) - len(v)) for s, v in zip(seeds, kept)],
        "median_per_seed": [_finite(m) for m in medians],
        "median_of_seed_medians": _finite(np.median(ok)) if len(ok) else None,
        "median_min": _finite(ok.min()) if len(ok) else None,
        "median_max": _finite(ok.max()) if len(ok) else None,
        "median_sd": _finite(ok.std(ddof=1)) if len(ok) > 1 else None,
        "median_pooled": _finite(np.median(pooled)) if len(pooled) else None,
    }


def _versus(trained: list[np.ndarray], control: list[np.ndarray], t_sum: dict, c_sum: dict) -> dict:
    from scipy.stats import mannwhitneyu

    x = np.concatenate([v[np.isfinite(v)] for v in trained])
    y = np.concatenate([v[np.isfinite(v)] for v in control])
    out = {"difference_of_pooled_medians": None, "U": None, "p_value": None,
           "prob_superiority": None, "trained_outside_control_range": None}
    if len(x) and len(y):
        u, p = mannwhitneyu(x, y, alternative="two-sided")
        out.update(difference_of_pooled_medians=_finite(np.median(x) - np.median(y)),
                   U=_finite(u), p_value=_finite(p), prob_superiority=_finite(u / (len(x) * len(y))))
    lo, hi, med = c_sum["median_min"], c_sum["median_max"], t_sum["median_of_seed_medians"]
    if None not in (lo, hi, med):
        out["trained_outside_control_range"] = bool(med < lo or med > hi)
    return out


def summarize_seeds(results: Mapping[str, Mapping[str, Sequence]], *,
                    trained: str = "trained") -> dict:
    """Per-layer medians over seeds and trained-vs-control tests of a per-unit statistic.

    Parameters
    ----------
    results : ``{layer: {condition: [values of seed 0, seed 1, ...]}}``
        Per-unit values (APC r, TI, ...) of each seed of each condition; one 1-D array is
        one seed (the trained model usually has one). Non-finite values (undefined units)
        are dropped and counted.
    trained : the condition the others are compared with

    Returns
    -------
    JSON-able dict: ``{"test": ..., "trained": ..., "layers": {layer: {"conditions":
    {condition: summary}, "versus": {control: comparison}}}}``. A condition's summary:
    ``median_per_seed``, their ``median_min`` / ``median_max`` / ``median_sd`` (ddof = 1;
    None with one seed) and ``median_of_seed_medians``, ``median_pooled`` (units of all
    seeds), ``n_units`` per seed. A comparison (trained minus control):
    ``difference_of_pooled_medians``; ``U``, ``p_value`` of the Mann-Whitney U test on
    units pooled over seeds, and ``prob_superiority = U / (n_trained n_control)``
    (P(trained unit > control unit) + P(tie)/2); ``trained_outside_control_range``: the
    trained median lies outside the range of the control seeds' medians, a seed-level
    check that does not treat units as independent (units of one layer are correlated,
    so the pooled p-value is optimistic).
    """
    layers = {}
    for layer, conds in results.items():
        seeds = {c: _seed_arrays(v) for c, v in conds.items()}
        summaries = {c: _condition_summary(v) for c, v in seeds.items()}
        versus = {}
        if trained in seeds:
            versus = {c: _versus(seeds[trained], v, summaries[trained], summaries[c])
                      for c, v in seeds.items() if c != trained}
        layers[str(layer)] = {"conditions": summaries, "versus": versus}
    return {"test": MANN_WHITNEY, "trained": trained, "layers": layers}
