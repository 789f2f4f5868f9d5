"""``summary.json`` of a ``characterize`` run: per layer and condition, the medians.

Rebuilt from the battery's results on every run (it costs no model evaluation), so it
always describes the results of the current config.
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
    row["apc_r_median"] = median(r)
    row["apc_r_frac_gt_0.5"] = float(np.mean(finite > 0.5)) if finite.size else None
    row["n_apc_flagged"] = int((np.asarray(apc.flags.values) != 0).sum())
    if "n_excluded_kurtosis" in apc.attrs:
        row["n_excluded_kurtosis"] = int(apc.attrs["n_excluded_kurtosis"])


def _ti_row(row: dict, ti, key: str) -> None:
    values = np.asarray(ti.ti.values, float)
    row[f"{key}_median"] = median(values)
    row[f"n_{key}_defined"] = int(np.isfinite(values).sum())


def _kurtosis_filtered(battery, condition, label, apc):
    """The APC fit with the kurtosis filter applied (stored as its own small step)."""
    threshold = battery.cfg.kurtosis_threshold
    if threshold is None:
        return apc
    from artiphys.tuning.sparsity import apply_kurtosis_filter

    res = battery.results
    sp_digest, sp = res[condition if condition != "shuffle" else battery.spec.condition,
                        label, "sparsity"]
    apc_digest = res[condition, label, "apc" if condition != "shuffle" else "apc_shuffle"][0]
    spec = battery.models.get(condition, battery.spec)
    return battery._one(condition, label, "apc_kurtosis", spec,
                        {"apc": apc_digest, "sparsity": sp_digest}, {"threshold": threshold},
                        lambda: apply_kurtosis_filter(apc, sp.kurtosis.values, threshold))


def _layer_rows(battery, label: str, ref_r) -> dict:
    from artiphys.tuning.neural import combined_distance, compare_r_distributions

    res = battery.results
    rows: dict = {}
    conditions = list(battery.models) + (["shuffle"] if "shuffle" in battery.cfg.controls
                                         else [])
    for condition in conditions:
        row: dict = {}
        apc_name = "apc_shuffle" if condition == "shuffle" else "apc"
        if (condition, label, apc_name) in res:
            apc = _kurtosis_filtered(battery, condition, label, res[condition, label, apc_name][1])
            row["n_units"] = int(apc.sizes["unit"])
            _apc_row(row, apc)
            if ref_r is not None and condition != "shuffle":
                cmp = compare_r_distributions(apc, ref_r, by=None)
                row["ks_vs_reference"] = float(cmp.ks_statistic.values[0])
                row["reference_r_median"] = median(ref_r)
        if (condition, label, "apc_cv") in res:
            row["apc_cv_r_median"] = median(res[condition, label, "apc_cv"][1].r)
        ti_name = "ti_shuffle" if condition == "shuffle" else "ti"
        for axis in battery.cfg.ti_axes:
            tag = "" if axis == "x" else f"_{axis}"
            if (condition, label, ti_name + tag) in res:
                _ti_row(row, res[condition, label, ti_name + tag][1], f"ti{tag}")
        if "ti_median" in row and "ti_y_median" in row:
            from artiphys.tuning.ti import ti_agreement

            r = float(ti_agreement(res[condition, label, ti_name][1],
                                   res[condition, label, ti_name + "_y"][1], by=None)
                      .r.sel(group="all"))
            row["ti_xy_r"] = r if np.isfinite(r) else None
        if (condition, label, apc_name) in res and (condition, label, ti_name) in res:
            dist = combined_distance(res[condition, label, ti_name][1].ti.values,
                                     np.asarray(res[condition, label, apc_name][1].r.values))
            row["distance_to_ideal_median"] = median(dist)
        if (condition, label, "sparsity") in res:
            sp = res[condition, label, "sparsity"][1]
            row["sparsity_median"] = median(sp.lifetime_sparseness)
            row["kurtosis_median"] = median(sp.kurtosis)
        if (condition, label, "natural_ratio") in res:
            row["natural_shape_max_ratio_median"] = median(
                res[condition, label, "natural_ratio"][1].ratio)
        if row:
            rows[condition] = row
    return rows


def write_summary(battery) -> dict:
    """Write ``summary.json`` into the run; return the short form kept in the manifest."""
    ref_r = None
    if battery.cfg.reference_fits is not None:
        from artiphys.tuning.neural import load_v4_fits

        ref_r = np.asarray(load_v4_fits(battery.cfg.reference_fits)["r"], float)
    summary = {
        "model": battery.spec.provenance(),
        "tests": sorted(battery.tests), "controls": list(battery.cfg.controls),
        "conditions": list(battery.models), "skipped": battery.skipped,
        "kurtosis_threshold": battery.cfg.kurtosis_threshold,
        "reference_fits": battery.cfg.reference_fits,
        "layer_order": [ref.label for ref in battery.refs],
        "layer_paths": {ref.label: ref.name for ref in battery.refs},
        "layers": {ref.label: _layer_rows(battery, ref.label, ref_r) for ref in battery.refs},
    }
    battery.s.run.write_json("summary.json", summary)
    return {"n_layers": len(battery.refs), "conditions": list(battery.models),
            "skipped": battery.skipped}


__all__ = ["median", "write_summary"]
