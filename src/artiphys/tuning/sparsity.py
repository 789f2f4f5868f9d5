"""Response distributions and sparseness of units (Pospisil et al. 2018, Fig. 3 and Methods).

* :func:`response_histograms` - frequency of all response values of a sublayer, one
  histogram per stimulus set (standard shapes, large shapes, dim shapes, natural images).
* :func:`sparsity` - per-unit kurtosis and Treves-Rolls / lifetime sparseness.
* :func:`apply_kurtosis_filter` - the paper's exclusion of very sparse units (kurtosis
  >= 42) from APC analyses; off unless called, and recorded in the result's attrs.
* :func:`natural_to_shape_max_ratio` - max response over natural images / max over shapes.
* :func:`ratio_of_top_apc_units` - that ratio as in the paper's Fig. 13: mean +- SD over
  the ten most APC-like units of each layer, beside the all-unit median.
* :func:`top_bottom_stimuli` - each unit's most and least effective stimuli.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from artiphys.errors import ResponseError
from artiphys.tuning._arrays import (
    FLAG_ATTRS,
    FLAG_CONSTANT,
    FLAG_EXCLUDED,
    as_responses,
    response_flags,
    unit_dataset,
)

#: Kurtosis at or above which Pospisil et al. (2018) excluded units from APC analyses.
PAPER_KURTOSIS_THRESHOLD = 42.0


def sparsity(responses) -> xr.Dataset:
    """Per-unit sparseness of responses across stimuli.

    Parameters
    ----------
    responses : DataArray ``("stimulus", "unit")`` or array ``(n_stimuli, n_units)``

    Returns
    -------
    xr.Dataset on ``unit``
        ``kurtosis`` : Pearson (non-excess) kurtosis ``m4 / m2**2`` (3 for a Gaussian;
        about ``n`` for a unit that responds to one of ``n`` stimuli).
        ``treves_rolls`` : ``a = (mean r)^2 / mean(r^2)`` (Treves & Rolls 1991; 1 = dense).
        ``lifetime_sparseness`` : ``(1 - a) / (1 - 1/n)`` (Vinje & Gallant 2000; 0 = dense,
        1 = responds to one stimulus). Both assume non-negative responses (rectified
        sublayers); for signed responses they describe the distribution of ``r`` as given.
        ``flags`` : constant / non-finite units get NaN.
    """
    da = as_responses(responses)
    x = np.asarray(da.values, dtype=np.float64)
    flags = response_flags(x)
    n = x.shape[0]
    clean = np.where(flags[None] == 0, x, 0.0)
    xc = clean - clean.mean(0)
    m2 = (xc**2).mean(0)
    m4 = (xc**4).mean(0)
    mean_sq = (clean**2).mean(0)
    ok = (flags == 0) & (m2 > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        kurt = np.where(ok, m4 / np.where(ok, m2, 1) ** 2, np.nan)
        a = np.where(ok, clean.mean(0) ** 2 / np.where(mean_sq > 0, mean_sq, 1), np.nan)
    lifetime = (1 - a) / (1 - 1 / n) if n > 1 else np.full_like(a, np.nan)
    return unit_dataset(da, {
        "kurtosis": ("unit", kurt, {"long_name": "Pearson kurtosis m4/m2^2 (Gaussian = 3)"}),
        "treves_rolls": ("unit", a, {"long_name": "Treves-Rolls a = <r>^2/<r^2>"}),
        "lifetime_sparseness": ("unit", lifetime, {"long_name": "(1 - a)/(1 - 1/n)"}),
        "flags": ("unit", flags, FLAG_ATTRS),
    }, {"analysis": "sparsity", "n_stimuli": n})


def apply_kurtosis_filter(result: xr.Dataset, kurtosis, threshold: float = PAPER_KURTOSIS_THRESHOLD,
                          variables=("r",)) -> xr.Dataset:
    """Exclude units with ``kurtosis >= threshold`` from ``result`` (NaN + ``excluded`` flag).

    Pospisil et al. (2018) excluded units this sparse from APC fits (their threshold 42),
    because a unit driven by one or two shapes is fit well by chance. The filter is never
    applied implicitly; the threshold and the number excluded go into ``result.attrs``.

    Parameters
    ----------
    result : Dataset on ``unit`` (e.g. from :func:`artiphys.tuning.apc.fit_apc`)
    kurtosis : DataArray / array on the same units (``sparsity(...).kurtosis``)
    variables : names of the per-unit variables to blank (all float unit variables if None)
    """
    k = np.asarray(kurtosis.values if isinstance(kurtosis, xr.DataArray) else kurtosis, float)
    if k.shape != (result.sizes["unit"],):
        raise ResponseError(f"kurtosis has shape {k.shape}, expected ({result.sizes['unit']},) "
                            "- one value per unit of the result")
    out = result.copy()
    excluded = k >= threshold
    names = variables or [v for v, d in out.data_vars.items()
                          if d.dims[:1] == ("unit",) and d.dtype.kind == "f"]
    for v in names:
        out[v] = out[v].where(~xr.DataArray(excluded, dims="unit"))
    flags = out["flags"].values.copy() if "flags" in out else np.zeros(len(k), np.int8)
    flags[excluded] |= FLAG_EXCLUDED
    out["flags"] = ("unit", flags, FLAG_ATTRS)
    out.attrs.update(kurtosis_threshold=float(threshold), n_excluded_kurtosis=int(excluded.sum()))
    return out


def response_histograms(responses_by_set: dict, bins: int | np.ndarray = 100,
                        value_range: tuple[float, float] | None = None) -> xr.Dataset:
    """Histograms of all response values (every unit x stimulus) per stimulus set.

    Parameters
    ----------
    responses_by_set : dict name -> responses of one sublayer to that set
    bins : number of bins or explicit edges, shared by all sets
    value_range : (lo, hi), default the min and max over all sets

    Returns
    -------
    xr.Dataset with ``count (set, bin)``, ``density (set, bin)`` (fraction of values) and
    coords ``bin_lo``, ``bin_hi``; attrs record the number of values per set.
    """
    if not responses_by_set:
        raise ResponseError("no stimulus sets given; pass e.g. {'shapes': responses}")
    values = {name: np.asarray(as_responses(r).values, float).ravel()
              for name, r in responses_by_set.items()}
    finite = {k: v[np.isfinite(v)] for k, v in values.items()}
    if np.ndim(bins) == 0:
        if value_range is None:
            allv = np.concatenate(list(finite.values()))
            value_range = (float(allv.min()), float(allv.max())) if allv.size else (0.0, 1.0)
            if value_range[0] == value_range[1]:
                value_range = (value_range[0] - 0.5, value_range[1] + 0.5)
        edges = np.linspace(value_range[0], value_range[1], int(bins) + 1)
    else:
        edges = np.asarray(bins, float)
    counts = np.stack([np.histogram(v, edges)[0] for v in finite.values()])
    total = np.array([max(len(v), 1) for v in finite.values()])[:, None]
    return xr.Dataset(
        {"count": (("set", "bin"), counts), "density": (("set", "bin"), counts / total)},
        coords={"set": list(finite), "bin_lo": ("bin", edges[:-1]), "bin_hi": ("bin", edges[1:])},
        attrs={"analysis": "response_histograms",
               "n_values": [int(len(v)) for v in finite.values()]})


def natural_to_shape_max_ratio(natural, shapes) -> xr.Dataset:
    """Per unit, max response over natural images / max response over shapes.

    Units must be the same, in the same order, in both (checked on the unit coords).
    Units whose max shape response is <= 0 get NaN and the ``constant`` flag bit.
    """
    nat, shp = as_responses(natural, name="natural"), as_responses(shapes, name="shapes")
    if nat.sizes["unit"] != shp.sizes["unit"]:
        raise ResponseError(f"natural-image responses have {nat.sizes['unit']} units, shape "
                            f"responses {shp.sizes['unit']}; record the same units for both")
    for c in ("layer", "channel", "y", "x"):
        if c in nat.coords and c in shp.coords and nat[c].dims == ("unit",) \
                and not np.array_equal(nat[c].values, shp[c].values):
            raise ResponseError(f"unit coord {c!r} differs between natural-image and shape "
                                "responses; record the same units in the same order")
    nmax = np.asarray(nat.max("stimulus").values, float)
    smax = np.asarray(shp.max("stimulus").values, float)
    ok = smax > 0
    flags = np.where(ok, 0, FLAG_CONSTANT).astype(np.int8)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(ok, nmax / np.where(ok, smax, 1), np.nan)
    return unit_dataset(shp, {"ratio": ("unit", ratio), "natural_max": ("unit", nmax),
                              "shape_max": ("unit", smax), "flags": ("unit", flags, FLAG_ATTRS)},
                        {"analysis": "natural_to_shape_max_ratio"})


def _check_same_units(a: xr.Dataset, b: xr.Dataset, what: str):
    if a.sizes["unit"] != b.sizes["unit"]:
        raise ResponseError(f"{what} have {a.sizes['unit']} and {b.sizes['unit']} units; pass "
                            "results of the same units, in the same order")
    for c in ("layer", "channel", "y", "x"):
        if c in a.coords and c in b.coords and not np.array_equal(a[c].values, b[c].values):
            raise ResponseError(f"unit coord {c!r} differs between the {what}; pass results "
                                "of the same units in the same order")


def ratio_of_top_apc_units(ratio: xr.Dataset, apc_fit: xr.Dataset, n_top: int = 10) -> xr.Dataset:
    """Natural/shape max ratio of each layer's most APC-like units (Pospisil et al. 2018, Fig. 13).

    Per layer (the ``layer`` unit coord; all units form one layer ``"all"`` without it),
    the ``n_top`` units with the highest APC r (NaN r never ranks; ties keep unit order)
    are taken; of those, units whose maximum shape response is <= 0 are excluded and
    counted, as the paper excluded them (its ratio is undefined or negative there), and
    the ratio is averaged over the rest: ``ratio_top_mean`` +- ``ratio_top_sd`` (sample
    SD, ddof = 1; NaN for fewer than 2 units). ``ratio_median_all`` is the median over all
    the layer's units with a defined ratio (the package's earlier summary), beside it.

    Parameters
    ----------
    ratio : result of :func:`natural_to_shape_max_ratio` (``ratio``, ``shape_max``)
    apc_fit : result of :func:`artiphys.tuning.apc.fit_apc` on the same units (``r``)
    n_top : units per layer (10 in the paper)

    Returns
    -------
    xr.Dataset on ``layer`` (and ``rank`` for ``top_unit``, the positions in the unit dim
    of the units averaged, -1 padding): ``ratio_top_mean``, ``ratio_top_sd``, ``n_top_used``,
    ``n_top_excluded``, ``top_apc_r_min``, ``ratio_median_all``, ``n_ratio_defined``.
    """
    _check_same_units(ratio, apc_fit, "ratio and APC results")
    layers = (np.asarray(ratio["layer"].values).astype(str) if "layer" in ratio.coords
              else np.full(ratio.sizes["unit"], "all"))
    names = list(dict.fromkeys(layers.tolist()))
    r = np.asarray(apc_fit["r"].values, float)
    rat = np.asarray(ratio["ratio"].values, float)
    smax = np.asarray(ratio["shape_max"].values, float)
    cols = {k: [] for k in ("mean", "sd", "used", "excluded", "rmin", "median", "defined", "top")}
    for name in names:
        idx = np.flatnonzero((layers == name) & np.isfinite(r))
        top = idx[np.argsort(-r[idx], kind="stable")[:n_top]]
        used = top[smax[top] > 0]
        vals = rat[used]
        cols["mean"].append(vals.mean() if len(vals) else np.nan)
        cols["sd"].append(vals.std(ddof=1) if len(vals) > 1 else np.nan)
        cols["used"].append(len(used))
        cols["excluded"].append(len(top) - len(used))
        cols["rmin"].append(r[top].min() if len(top) else np.nan)
        all_ratio = rat[(layers == name) & np.isfinite(rat)]
        cols["median"].append(np.median(all_ratio) if len(all_ratio) else np.nan)
        cols["defined"].append(len(all_ratio))
        cols["top"].append(np.pad(used, (0, n_top - len(used)), constant_values=-1))
    return xr.Dataset({
        "ratio_top_mean": ("layer", np.array(cols["mean"], float),
                           {"long_name": f"mean natural/shape max ratio of the {n_top} best APC units"}),
        "ratio_top_sd": ("layer", np.array(cols["sd"], float), {"long_name": "SD (ddof=1)"}),
        "n_top_used": ("layer", np.array(cols["used"], int)),
        "n_top_excluded": ("layer", np.array(cols["excluded"], int),
                           {"long_name": "top units excluded: shape maximum <= 0"}),
        "top_apc_r_min": ("layer", np.array(cols["rmin"], float)),
        "ratio_median_all": ("layer", np.array(cols["median"], float),
                             {"long_name": "median ratio over all units with a defined ratio"}),
        "n_ratio_defined": ("layer", np.array(cols["defined"], int)),
        "top_unit": (("layer", "rank"), np.array(cols["top"], int).reshape(len(names), n_top)),
    }, coords={"layer": names, "rank": np.arange(n_top)},
        attrs={"analysis": "natural_to_shape_ratio_top_apc", "n_top": int(n_top), "sd_ddof": 1})


def top_bottom_stimuli(responses, n: int = 8) -> xr.Dataset:
    """Each unit's ``n`` most and ``n`` least effective stimuli.

    Returns
    -------
    xr.Dataset on ``(unit, rank)``: ``top_stimulus`` / ``bottom_stimulus`` (values of the
    ``stimulus`` coord, rank 0 = most / least effective) and their responses.
    """
    da = as_responses(responses)
    x = np.asarray(da.values, float)
    n = min(int(n), x.shape[0])
    order = np.argsort(np.where(np.isfinite(x), x, -np.inf), axis=0, kind="stable")
    top = order[::-1][:n].T  # (unit, rank)
    order_low = np.argsort(np.where(np.isfinite(x), x, np.inf), axis=0, kind="stable")
    bottom = order_low[:n].T
    stim = np.asarray(da["stimulus"].values)
    ds = unit_dataset(da, {
        "top_stimulus": (("unit", "rank"), stim[top]),
        "top_response": (("unit", "rank"), np.take_along_axis(x.T, top, 1)),
        "bottom_stimulus": (("unit", "rank"), stim[bottom]),
        "bottom_response": (("unit", "rank"), np.take_along_axis(x.T, bottom, 1)),
    }, {"analysis": "top_bottom_stimuli"})
    return ds.assign_coords(rank=np.arange(n))
