"""Run-level figures and the example-unit table of Pospisil, Pasupathy & Bair (2018).

Drawn from a ``characterize`` run's stored steps and ``summary.json``:

* Fig. 4: response distributions of every sublayer for the four stimulus sets (standard,
  large and dim shapes, natural images; ``histograms`` steps), log-scaled counts, and the
  lifetime sparseness of its units (``sparsity`` steps; Fig. 4 supplement 1);
* Fig. 5G/H: cumulative distributions of APC fit r per layer for the network and its
  controls (responses shuffled across stimuli, untrained and weight-shuffled networks, every
  seed) and, when the run names a reference table, the V4 neurons;
* Fig. 13: the natural-image / shape maximum-response ratio of each layer's most APC-like
  units (``summary.json``) beside every unit's ratio (``natural_ratio`` steps);
* Table 1: the example units of each layer with their APC fit, TI and distance to the
  ideal V4 unit.

The per-unit APC figures (Fig. 5A-D) are in :mod:`artiphys.report.pospisil_units`.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from artiphys.report.figures import plt, run_figure, run_table

#: Stimulus-set colours of Pospisil et al. (2018) Fig. 4.
SET_COLOURS = {"shapes": "tab:red", "shapes_large": "c", "shapes_dim": "tab:green",
               "natural": "navy"}
SET_NAMES = {"shapes": "standard shapes", "shapes_large": "large shapes",
             "shapes_dim": "dim shapes", "natural": "natural images"}
#: Condition colours of Fig. 5H (trained black, shuffled green, untrained blue, V4 red).
CONDITION_COLOURS = {"shuffle": "tab:green", "untrained": "tab:blue",
                     "weight-shuffled": "tab:purple"}
V4_COLOUR = "tab:red"
COLOUR_NAMES = {"k": "black", "tab:green": "green", "tab:blue": "blue",
                "tab:purple": "purple"}


# ---- reading a run -------------------------------------------------------------------

def primary_condition(summary: dict) -> str:
    """The condition of the model as given (the battery's first; ``trained`` if unnamed)."""
    return (summary.get("conditions") or ["trained"])[0]


def layer_names(summary: dict, present=()) -> list[str]:
    """The run's layers in ``layer_order``, then any other layer of ``summary["layers"]``
    or of ``present`` (layers that have a result)."""
    order = list(summary.get("layer_order") or [])
    extra = list(summary.get("layers") or {}) + list(present)
    return list(dict.fromkeys(order + [la for la in extra if la not in order]))


def _key(result) -> tuple:
    meta = result.meta
    return (meta.get("condition", ""), meta.get("layer", ""),
            meta.get("result") or result.kind, meta.get("set", ""))


@functools.lru_cache(maxsize=8)
def _index_cached(run_dir: str, stamp: tuple) -> dict:
    from artiphys.report.results import run_results

    return {_key(r): r for r in run_results(run_dir)}


def result_index(run_dir) -> dict:
    """``{(condition, layer, step name, set): Result}`` of the run's current results
    (cached until the run's manifest or step index changes)."""
    run_dir = Path(run_dir)
    stamps = []
    for part in ("manifest.json", ".steps"):
        p = run_dir / part
        stamps.append(p.stat().st_mtime_ns if p.exists() else None)
    if None in stamps:
        return _index_cached.__wrapped__(str(run_dir), ())
    return _index_cached(str(run_dir), tuple(stamps))


@functools.lru_cache(maxsize=64)
def _load_cached(path: str, mtime_ns: int):
    from artiphys.report.results import Result

    return Result(Path(path), "").load()


def load(index: dict, condition: str, layer: str, *names: str, set_name: str = ""):
    """The first of the steps ``names`` stored for ``(condition, layer)``, loaded (its
    file is read once), or None."""
    for name in names:
        r = index.get((condition, layer, name, set_name))
        if r is not None:
            return _load_cached(str(r.path), r.path.stat().st_mtime_ns)
    return None


def read_summary(run_dir) -> dict | None:
    path = Path(run_dir) / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


def apc_r(index: dict, condition: str, layer: str):
    """APC fit r of a condition's units (kurtosis-filtered fit first, as the summary's
    medians; the shuffle control's fit is its own step), or None."""
    ds = load(index, condition, layer, "apc_kurtosis", "apc_shuffle" if condition == "shuffle"
              else "apc")
    return None if ds is None else np.asarray(ds["r"].values, float)


def reference_r(run_dir, summary: dict):
    """``(r of the reference neurons, file name)`` of the run's ``reference_fits`` table,
    or None when the run has none or the file is gone."""
    from artiphys.tuning.neural import load_v4_fits

    name = summary.get("reference_fits")
    if not name:
        return None
    for path in (Path(name), Path(run_dir) / name):
        if path.is_file():
            return np.asarray(load_v4_fits(path)["r"], float), path.name
    return None


def condition_groups(summary: dict, present: set) -> list[tuple[str, str, list[str]]]:
    """``[(label, colour, conditions)]``: the model, each control (all its seeds) and the
    shuffle control, those with results in ``present``."""
    primary = primary_condition(summary)
    seeded = dict(summary.get("control_seeds") or {})
    seeds = {c for conds in seeded.values() for c in conds}
    for c in summary.get("conditions") or []:
        if c != primary and c not in seeds:
            seeded.setdefault(c, [c])
    groups = [(primary, "k", [primary])]
    groups += [(name, CONDITION_COLOURS.get(name, f"C{5 + i}"), conds)
               for i, (name, conds) in enumerate(seeded.items())]
    groups.append(("shuffle", CONDITION_COLOURS["shuffle"], ["shuffle"]))
    out = []
    for label, colour, conds in groups:
        conds = [c for c in conds if c in present]
        if conds:
            out.append((label, colour, conds))
    return out


def kurtosis_note(summary: dict) -> str:
    """The sentence saying which units the kurtosis filter took out of the APC fits."""
    threshold = summary.get("kurtosis_threshold")
    if threshold is None:
        return "No kurtosis filter."
    return (f"Units with response kurtosis >= {threshold:g} excluded from the fits (Pospisil "
            "et al. excluded kurtosis >= 42).")


def panel_grid(n: int, width: float = 3.0, height: float = 2.4, cols: int = 4):
    """``(fig, axes)``: ``n`` panels in rows of up to ``cols``; unused axes are hidden."""
    cols = max(1, min(cols, n))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows),
                             squeeze=False, constrained_layout=True)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, list(axes.flat[:n])


def ecdf(ax, values, **kw) -> int:
    """Draw the empirical CDF of the finite ``values``; return how many there were."""
    v = np.sort(np.asarray(values, float)[np.isfinite(values)])
    if v.size:
        ax.step(np.r_[v[0], v], np.r_[0.0, np.arange(1, v.size + 1) / v.size], where="post",
                **kw)
    return int(v.size)


# ---- Fig. 4: response distributions and sparseness ------------------------------------

@run_figure
def response_distribution_figures(run_dir: Path, summary: dict):
    """Fig. 4: per sublayer, histograms of every response value for each stimulus set."""
    index, primary = result_index(run_dir), primary_condition(summary)
    found = {la: load(index, primary, la, "histograms", "response_histograms")
             for la in layer_names(summary, [k[1] for k in index])}
    found = {la: ds for la, ds in found.items() if ds is not None}
    figs = []
    if found:
        fig, axes = panel_grid(len(found))
        for ax, (la, ds) in zip(axes, found.items()):
            edges = np.r_[ds["bin_lo"].values, ds["bin_hi"].values[-1:]]
            n_values = np.atleast_1d(ds.attrs.get("n_values", [0] * ds.sizes["set"]))
            for s, n in zip(ds["set"].values, n_values):
                ax.stairs(ds["count"].sel(set=s).values, edges, color=SET_COLOURS.get(
                    str(s)), label=f"{SET_NAMES.get(str(s), s)} (n={int(n)})", lw=1)
            ax.set_yscale("log", nonpositive="clip")
            ax.set_ylim(bottom=0.8)
            ax.set_title(la, fontsize=8)
            ax.set_xlabel("response (layer's units)", fontsize=7)
            ax.set_ylabel("count (log scale)", fontsize=7)
            ax.tick_params(labelsize=6)
            ax.legend(fontsize=5)
        figs.append(("Response distributions by stimulus set (Fig. 4)",
                     f"{primary} network: frequency of every response value (all centre units "
                     "x all stimuli of a set; n in each legend) of each sublayer, for the "
                     "standard shapes (red), shapes twice as large (cyan), dim shapes "
                     "(intensity 100, green) and natural images (dark blue); log-scaled "
                     "counts, bins shared by the sets of a panel. Compare Pospisil et al. "
                     "(2018) Fig. 4.", fig))
    return figs + _sparseness_figures(index, summary)


def _sparseness_figures(index: dict, summary: dict):
    """Fig. 4 supplement 1: lifetime sparseness of the units of each layer."""
    present = {k[0] for k in index if k[2] == "sparsity"}
    groups = [(label, colour, conds[0]) for label, colour, conds in
              condition_groups(summary, present)]
    layers = [la for la in layer_names(summary, [k[1] for k in index])
              if any((c, la, "sparsity", "") in index for _, _, c in groups)]
    if not layers:
        return []
    fig, axes = panel_grid(len(layers))
    notes = []
    for ax, la in zip(axes, layers):
        counts = []
        for label, colour, cond in groups:
            ds = load(index, cond, la, "sparsity")
            if ds is None:
                continue
            v = np.asarray(ds["lifetime_sparseness"].values, float)
            ok = np.isfinite(v)
            ax.hist(v[ok], bins=20, range=(0, 1), histtype="step", color=colour,
                    label=f"{label} (n={int(ok.sum())})")
            counts.append(f"{label} {int(ok.sum())} of {v.size}")
        notes.append(f"{la}: {', '.join(counts)}")
        ax.set_title(la, fontsize=8)
        ax.set_xlabel("lifetime sparseness", fontsize=7)
        ax.set_ylabel("units", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=5)
    caption = ("Lifetime sparseness (1 - a)/(1 - 1/n) of each unit's responses to the "
               "standard shapes (0 = dense, 1 = responds to one shape), per layer and "
               "condition (first seed of each control). Units with a defined sparseness, of "
               "all units (constant units excluded): " + "; ".join(notes) + ". Compare "
               "Pospisil et al. (2018) Fig. 4, supplement 1.")
    return [("Lifetime sparseness by layer (Fig. 4, supplement 1)", caption, fig)]


# ---- Fig. 5G/H: cumulative distributions of APC r ------------------------------------

@run_figure
def apc_cdf_figures(run_dir: Path, summary: dict):
    """Fig. 5G (one curve per layer) and 5H (one panel per layer: network vs controls)."""
    index = result_index(run_dir)
    names = layer_names(summary, [k[1] for k in index])
    apc_layers = {k[1] for k in index if k[2] in ("apc", "apc_shuffle", "apc_kurtosis")}
    names = [la for la in names if la in apc_layers]
    if not names:
        return []
    ref = reference_r(run_dir, summary)
    figs = _apc_cdf_by_layer(index, summary, names, ref)
    groups = condition_groups(summary, {k[0] for k in index if k[1] in apc_layers})
    fig, axes = panel_grid(len(names), width=3.0, height=2.5)
    counts = []
    for ax, la in zip(axes, names):
        for label, colour, conds in groups:
            for k, cond in enumerate(conds):
                r = apc_r(index, cond, la)
                if r is None:
                    continue
                n = ecdf(ax, r, color=colour, lw=1.2 if k == 0 else 0.6,
                         alpha=1 if k == 0 else 0.6,
                         label=(f"{label} ({len(conds)} seeds)" if len(conds) > 1 else label)
                         if k == 0 else None)
                if k == 0:
                    counts.append(f"{la} {label} {n}")
        if ref is not None:
            ecdf(ax, ref[0], color=V4_COLOUR, lw=1.2, label=f"V4 (n={np.isfinite(ref[0]).sum()})")
        ax.set_title(la, fontsize=8)
        ax.set_xlim(-0.2, 1)
        ax.set_xlabel("APC fit r", fontsize=7)
        ax.set_ylabel("cumulative fraction of units", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0].legend(fontsize=5)
    ref_note = (f"red: {ref[1]} (reference neurons, no noise correction)" if ref is not None
                else "no V4 reference table in this run (set reference_fits)")
    figs.append(("APC fit r of the network and its controls, by layer (Fig. 5H)",
                 "Cumulative distributions of APC fit r per layer: "
                 + ", ".join(f"{label} ({COLOUR_NAMES.get(c, c)})" for label, c, _ in groups)
                 + " (shuffle: each unit's responses permuted across shapes; thin lines: "
                 f"further seeds of a control); {ref_note}. Units with a fit (first seed): {'; '.join(counts)}. "
                 f"{kurtosis_note(summary)} Compare Pospisil et al. (2018) Fig. 5H.", fig))
    return figs


def _apc_cdf_by_layer(index, summary, names, ref):
    """Fig. 5G: the network's APC r, one curve per (first-sub)layer, dark to light."""
    primary = primary_condition(summary)
    firsts = [la for la in summary.get("first_sublayers") or [] if la in names] or names
    fig, ax = plt.subplots(figsize=(5.5, 3.6), constrained_layout=True)
    cmap = plt.get_cmap("copper")
    counts = []
    for i, la in enumerate(firsts):
        r = apc_r(index, primary, la)
        if r is not None:
            n = ecdf(ax, r, color=cmap(0.9 * i / max(1, len(firsts) - 1)), label=la)
            counts.append(f"{la} {n}")
    if not counts:
        plt.close(fig)
        return []
    if ref is not None:
        ecdf(ax, ref[0], color=V4_COLOUR, lw=1.5, label=f"V4 ({ref[1]})")
    ax.set_xlim(-0.2, 1)
    ax.set_xlabel("APC fit r")
    ax.set_ylabel("cumulative fraction of units")
    ax.legend(fontsize=6, ncol=2)
    which = ("the first sublayer of each major layer" if summary.get("first_sublayers")
             else "every layer")
    ref_note = (f"Red: the reference neurons of {ref[1]} (n = {np.isfinite(ref[0]).sum()})."
                if ref is not None else "No V4 reference table in this run.")
    return [("Cumulative distributions of APC fit r by layer (Fig. 5G)",
             f"{primary} network, {which}, dark (early) to light (deep); units with a fit: "
             f"{', '.join(counts)}. {ref_note} {kurtosis_note(summary)} Compare Pospisil et "
             "al. (2018) Fig. 5G.", fig)]


# ---- Fig. 13: natural / shape maximum ratio ------------------------------------------

@run_figure
def natural_ratio_figures(run_dir: Path, summary: dict):
    """Fig. 13: mean +- SD of the ratio over each layer's most APC-like units, and every
    unit's ratio beside it."""
    index, primary = result_index(run_dir), primary_condition(summary)
    rows = (summary.get("layers") or {})
    names = [la for la in layer_names(summary, [k[1] for k in index])
             if (primary, la, "natural_ratio", "") in index
             or (rows.get(la, {}).get(primary, {}).get("natural_shape_ratio_top_mean")
                 is not None)]
    if not names:
        return []
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(names) + 2), 3.4),
                           constrained_layout=True)
    x = np.arange(len(names))
    labels, n_all, per_unit, tops = [], [], {}, []
    for i, la in enumerate(names):
        row = rows.get(la, {}).get(primary, {})
        mean, sd = row.get("natural_shape_ratio_top_mean"), row.get("natural_shape_ratio_top_sd")
        if mean is not None:
            ax.bar(i, mean, yerr=0 if sd is None else sd, color="0.75", capsize=3, width=0.6,
                   label="top APC units, mean ± SD" if not tops else None)
            tops.append(mean + (sd or 0))
        n_top = row.get("natural_shape_ratio_top_n_used")
        labels.append(f"{la}\n(n={n_top})" if mean is not None and n_top is not None else la)
        ds = load(index, primary, la, "natural_ratio", "natural_to_shape_max_ratio")
        if ds is not None:
            v = np.asarray(ds["ratio"].values, float)
            per_unit[i] = v[np.isfinite(v)]
            n_all.append(f"{la} {per_unit[i].size}")
    beyond = _unit_strip(ax, per_unit, tops)
    ax.axhline(1, color="0.3", lw=0.8, ls="--")
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("max over natural images / max over shapes\n(ratio)", fontsize=8)
    ax.legend(fontsize=7)
    excluded = {la: rows.get(la, {}).get(primary, {}).get("natural_shape_ratio_top_n_excluded")
                for la in names}
    excluded = ", ".join(f"{la} {n}" for la, n in excluded.items() if n)
    caption = (f"{primary} network: per unit, the maximum response over the run's natural "
               "images divided by the maximum over the shapes. " +
               ("Bars: mean ± SD (ddof 1) over each layer's ten units with the highest APC r "
                "(n used under each layer; units whose shape maximum is <= 0 excluded" +
                (f": {excluded}" if excluded else ", none here") + "). " if tops else
                "No summary of the most APC-like units in this run. ") + "Dots: every unit with a "
               f"defined ratio ({'; '.join(n_all) or 'no per-unit results'}"
               + (f"; {beyond} beyond the axis, drawn as triangles at its edge" if beyond else "")
               + "). Dashed: ratio 1. Compare Pospisil et al. (2018) Fig. 13.")
    return [("Natural-image vs shape maximum responses (Fig. 13)", caption, fig)]


def _unit_strip(ax, per_unit: dict, bar_tops) -> int:
    """Jittered dots of every unit's ratio at its layer's position; the axis spans the
    bars and the 2nd-98th percentiles of the units (a unit whose shape maximum is barely
    above 0 has a huge ratio), and units beyond it are triangles at its edge. Returns
    how many units lie beyond."""
    values = np.concatenate(list(per_unit.values()) or [np.zeros(0)])
    if not values.size:
        return 0
    lo, hi = np.percentile(values, [2, 98])
    lo, hi = min(0.0, lo, *bar_tops), max(1.0, hi, *bar_tops)
    lo, hi = lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)
    beyond = 0
    for i, v in per_unit.items():
        x = i + np.random.default_rng(i).uniform(-0.2, 0.2, v.size)
        inside = (v >= lo) & (v <= hi)
        ax.plot(x[inside], v[inside], ".", color="tab:blue", ms=3, alpha=0.6,
                label="every unit" if i == min(per_unit) else None)
        for edge, out, marker in ((hi, v > hi, "^"), (lo, v < lo, "v")):
            ax.plot(x[out], np.full(out.sum(), edge), marker, color="tab:blue", ms=4)
        beyond += int((~inside).sum())
    ax.set_ylim(lo, hi)
    return beyond


# ---- Table 1: example units ------------------------------------------------------------

def example_rows(run_dir, summary: dict) -> list[dict]:
    """One row per example unit of the run: its fit, TI and distance to the ideal unit."""
    from artiphys.report.results import example_units
    from artiphys.tuning.neural import combined_distance

    chosen = example_units(run_dir)
    index, primary = result_index(run_dir), primary_condition(summary)
    paths = summary.get("layer_paths") or {}
    rows = []
    for la in layer_names(summary, chosen):
        apc = load(index, primary, la, "apc")
        ti = load(index, primary, la, "ti")
        for unit in chosen.get(la, []):
            row = {"layer": la, "module_path": paths.get(la, la),
                   "channel": int(unit["channel"]), "reason": unit.get("reason", "")}
            fit = _unit_values(apc, row["channel"], ("r", "mu_a_deg", "sigma_a_deg", "mu_c",
                                                     "sigma_c"))
            row.update({"apc_r" if k == "r" else k: v for k, v in fit.items()})
            row["ti"] = _unit_values(ti, row["channel"], ("ti",))["ti"]
            row["distance_to_ideal"] = float(combined_distance(row["ti"], row["apc_r"]))
            rows.append(row)
    return rows


def _unit_values(ds, channel: int, names) -> dict:
    """Values of ``names`` for the unit ``channel`` of a per-unit result (NaN if absent)."""
    out = dict.fromkeys(names, np.nan)
    if ds is None or "channel" not in ds.coords:
        return out
    hit = np.flatnonzero(np.asarray(ds["channel"].values) == channel)
    if hit.size:
        for name in names:
            if name in ds:
                out[name] = float(ds[name].values[hit[0]])
    return out


@run_table
def example_unit_table(run_dirs: list[Path]):
    """Table 1: the example units of each layer of each run."""
    frames = []
    for run_dir in run_dirs:
        summary = read_summary(run_dir)
        rows = example_rows(run_dir, summary) if summary is not None else []
        if rows:
            frame = pd.DataFrame(rows)
            if len(run_dirs) > 1:
                frame.insert(0, "run", Path(run_dir).name)
            frames.append(frame)
    if not frames:
        return []
    table = pd.concat(frames, ignore_index=True)
    caption = (f"{len(table)} example units (chosen per layer by the reason given): APC fit r "
               "and the best grid model (mu_a, sigma_a in degrees; mu_c, sigma_c normalised "
               "curvature), TI over the positions where the shapes lie within the RF (blank "
               "where undefined), and distance sqrt((1 - TI)^2 + (1 - r)^2) to the ideal unit "
               "(TI = r = 1). Compare Pospisil et al. (2018) Table 1.")
    return [("example_units", caption, table)]


# Per-unit APC figures (Fig. 5A-D) register themselves on import.
from artiphys.report import pospisil_units  # noqa: E402,F401
