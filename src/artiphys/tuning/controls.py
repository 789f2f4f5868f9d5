"""Controls for every metric (Pospisil et al. 2018): shuffled responses and conditions.

* :func:`shuffle_responses` permutes each unit's responses across stimuli (seeded), which
  keeps the response distribution and destroys any relation to the stimuli.
* :func:`shuffle_null` runs an analysis on ``n_repeats`` shuffles, giving a null
  distribution of its statistic (e.g. APC r) per unit.
* :func:`with_condition` / :func:`combine_conditions` give results a ``condition``
  coordinate ("trained", "untrained", "weight-shuffled", "shuffle") so trained and control
  results sit side by side. The untrained and weight-shuffled twins themselves are built
  by :mod:`artiphys.models` and run through the same pipeline.
"""

from __future__ import annotations

from collections.abc import Callable

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
