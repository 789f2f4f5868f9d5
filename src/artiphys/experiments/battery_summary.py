"""``summary.json`` of a ``characterize`` run: per layer and condition, the medians.

Rebuilt from the battery's results on every run (it costs no model evaluation), so it
always describes the results of the current config. Per layer and condition: APC r (and
its cross-validated value), the confounds (r with area, APC r with area partialled out,
the fraction of units whose shape tuning beats area), TI with how many units got one and
why the rest did not, sparsity, the natural/shape max ratio (all-unit median and Pospisil
Fig. 13's mean +- SD over the ten most APC-like units); per layer the spread of the
controls over their seeds and the trained-vs-control tests (top-level
``seed_statistics``, per layer). The
``first_sublayers`` are the layers the paper's per-layer curves use (the linear output of
each major layer).
"""

from __future__ import annotations

import numpy as np


def median(values) -> float | None:
    """Median of the finite values, None when there is none."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else None


def _apc_row(row: dict, apc) -> None:
    r = np.asarray(apc.r.values, float)
    finite = r[np.isfinite(r)]
    row["n_units"] = int(apc.sizes["unit"])
    row["apc_r_median"] = median(r)
    row["apc_r_frac_gt_0.5"] = float(np.mean(finite > 0.5)) if finite.size else None
    row["n_apc_flagged"] = int((np.asarray(apc.flags.values) != 0).sum())
    if "n_excluded_kurtosis" in apc.attrs:
        row["n_excluded_kurtosis"] = int(apc.attrs["n_excluded_kurtosis"])


def _confound_row(row: dict, conf) -> None:
    beats = np.asarray(conf["apc_beats_area"].values, bool)
    defined = np.isfinite(np.asarray(conf["apc_r"].values, float))
    row["area_r_median"] = median(conf["r_area"])
    row["abs_area_r_median"] = median(np.abs(np.asarray(conf["r_area"].values, float)))
    row["apc_r_partial_area_median"] = median(conf["apc_r_partial_area"])
    row["frac_apc_beats_area"] = float(beats[defined].mean()) if defined.any() else None


def _ti_row(row: dict, ti, key: str) -> None:
    from artiphys.tuning.ti import ti_summary

    summary = ti_summary(ti)
    row[f"{key}_median"] = summary["ti_median"]
    row[f"n_{key}_defined"] = summary["n_defined"]
    row[f"{key}_undefined"] = summary["undefined"]


def _kurtosis_filtered(battery, condition, label, apc):
    """The APC fit with the kurtosis filter applied (stored as its own small step)."""
    threshold = battery.cfg.kurtosis_threshold
    if threshold is None:
        return apc
    from artiphys.tuning.sparsity import apply_kurtosis_filter

    res = battery.results
    own = condition if condition != "shuffle" else battery.spec.condition
    sp_digest, sp = res[own, label, "sparsity"]
    apc_digest = res[condition, label, "apc" if condition != "shuffle" else "apc_shuffle"][0]
    spec = battery.models.get(condition, battery.spec)
    return battery.one(condition, label, "apc_kurtosis", spec,
                       {"apc": apc_digest, "sparsity": sp_digest}, {"threshold": threshold},
                       lambda: apply_kurtosis_filter(apc, sp.kurtosis.values, threshold))


def _natural_row(row: dict, ratio, apc) -> None:
    from artiphys.tuning.sparsity import ratio_of_top_apc_units

    row["natural_shape_max_ratio_median"] = median(ratio.ratio)
    top = ratio_of_top_apc_units(ratio, apc.drop_vars("layer", errors="ignore"))
    for key in ("ratio_top_mean", "ratio_top_sd"):
        value = float(top[key].values.ravel()[0])
        row[f"natural_shape_{key}"] = value if np.isfinite(value) else None
    row["natural_shape_ratio_top_n_used"] = int(top["n_top_used"].values.ravel()[0])
    row["natural_shape_ratio_top_n_excluded"] = int(top["n_top_excluded"].values.ravel()[0])


def _condition_row(battery, condition: str, label: str, ref_r) -> dict:
    from artiphys.tuning.neural import combined_distance, compare_r_distributions

    res, row = battery.results, {}
    apc_name = "apc_shuffle" if condition == "shuffle" else "apc"
    ti_name = "ti_shuffle" if condition == "shuffle" else "ti"
    apc = None
    if (condition, label, apc_name) in res:
        apc = _kurtosis_filtered(battery, condition, label, res[condition, label, apc_name][1])
        _apc_row(row, apc)
        if ref_r is not None and condition != "shuffle":
            cmp = compare_r_distributions(apc, ref_r, by=None)
            row["ks_vs_reference"] = float(cmp.ks_statistic.values[0])
            row["reference_r_median"] = median(ref_r)
    if (condition, label, "apc_cv") in res:
        row["apc_cv_r_median"] = median(res[condition, label, "apc_cv"][1].r)
    if (condition, label, "apc_confounds") in res:
        _confound_row(row, res[condition, label, "apc_confounds"][1])
    for axis in battery.cfg.ti_axes:
        tag = "" if axis == "x" else f"_{axis}"
        if (condition, label, ti_name + tag) in res:
            _ti_row(row, res[condition, label, ti_name + tag][1], f"ti{tag}")
    if (condition, label, ti_name + "_y") in res and (condition, label, ti_name) in res:
        from artiphys.tuning.ti import ti_agreement

        r = float(ti_agreement(res[condition, label, ti_name][1],
                               res[condition, label, ti_name + "_y"][1], by=None)
                  .r.sel(group="all"))
        row["ti_xy_r"] = r if np.isfinite(r) else None
    if apc is not None and (condition, label, ti_name) in res:
        dist = combined_distance(res[condition, label, ti_name][1].ti.values,
                                 np.asarray(res[condition, label, apc_name][1].r.values))
        row["distance_to_ideal_median"] = median(dist)
    if (condition, label, "sparsity") in res:
        sp = res[condition, label, "sparsity"][1]
        row["sparsity_median"] = median(sp.lifetime_sparseness)
        row["kurtosis_median"] = median(sp.kurtosis)
    if (condition, label, "natural_ratio") in res and apc is not None:
        _natural_row(row, res[condition, label, "natural_ratio"][1], apc)
    return row


def _conditions(battery) -> list[str]:
    return list(battery.models) + (["shuffle"] if "shuffle" in battery.cfg.controls else [])


def _seed_statistics(battery, label: str) -> dict:
    """Medians over the controls' seeds and trained-vs-control tests of APC r and TI."""
    from artiphys.tuning.controls import summarize_seeds

    res, own = battery.results, battery.spec.condition
    out = {}
    for metric, name, var in (("apc_r", "apc", "r"), ("ti", "ti", "ti")):
        per = {own: [res[own, label, name][1][var].values]} if (own, label, name) in res else {}
        for control, conditions in battery.seeded.items():
            values = [res[c, label, name][1][var].values for c in conditions
                      if (c, label, name) in res]
            if values:
                per[control] = values
        if own in per and len(per) > 1:
            out[metric] = summarize_seeds({label: per}, trained=own)["layers"][label]
    return out


def write_summary(battery) -> dict:
    """Write ``summary.json`` into the run; return the short form kept in the manifest."""
    from artiphys.models.sublayers import first_sublayers

    ref_r = None
    if battery.cfg.reference_fits is not None:
        from artiphys.tuning.neural import load_v4_fits

        ref_r = np.asarray(load_v4_fits(battery.cfg.reference_fits)["r"], float)
    firsts = {r.name for r in first_sublayers(battery.spec)}
    layers, seeds = {}, {}
    for ref in battery.refs:
        layers[ref.label] = {c: row for c in _conditions(battery)
                             if (row := _condition_row(battery, c, ref.label, ref_r))}
        if stats := _seed_statistics(battery, ref.label):
            seeds[ref.label] = stats
    summary = {
        "model": battery.spec.provenance(),
        "tests": sorted(battery.tests), "controls": list(battery.cfg.controls),
        "conditions": list(battery.models), "control_seeds": battery.seeded,
        "skipped": battery.skipped,
        "kurtosis_threshold": battery.cfg.kurtosis_threshold,
        "reference_fits": battery.cfg.reference_fits,
        "layer_order": [ref.label for ref in battery.refs],
        "layer_paths": {ref.label: ref.name for ref in battery.refs},
        "first_sublayers": [ref.label for ref in battery.refs if ref.name in firsts],
        "shape_sizes": {label: s.to_dict() for label, s in battery.shape_sizes.items()},
        "layers": layers,
        "seed_statistics": seeds,
    }
    battery.s.run.write_json("summary.json", summary)
    return {"n_layers": len(battery.refs), "conditions": list(battery.models),
            "skipped": battery.skipped}


__all__ = ["median", "write_summary"]
