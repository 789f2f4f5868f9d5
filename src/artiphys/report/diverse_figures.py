"""Report figures for diverse sets (``analysis="diverse"``) and their invariance indices
(``analysis="diverse_indices"``), Cadena et al. (2018) Figs. 2-5, 8 and 10.

Per result: the trade-off curves and sets, and the index histograms. Across results
(several layers, conditions or models; :func:`load_diverse_groups`): trained vs control
curves normalised to 1 at lambda = 0 (Fig. 5), diversity-gain and index histograms per layer
with their scatter (Fig. 8C-E), and the per-layer medians against receptive-field size
(VGG-19 vs ResNet-50, Fig. 10B), drawn as a run overview or by
:func:`artiphys.report.build_comparison_report` over several runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.ticker import NullFormatter

from artiphys.report.figures import figure_for, plt, run_figure, run_table, unit_labels


def _log_x(ax) -> None:
    """Log x axis with decade labels only (minor labels collide over short ranges)."""
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())


def _display(img: np.ndarray) -> np.ndarray:
    """``(3, H, W)`` image (channel mean added, unclipped) -> ``(H, W, 3)`` clipped to [0, 1]."""
    return np.clip(np.moveaxis(img, 0, -1), 0.0, 1.0)


@figure_for("diverse")
def diverse_figures(ds: xr.Dataset):
    """Trade-off curves (activation vs diversity over lambda) and the sets of a few units."""
    labels = unit_labels(ds)
    lams = ds["lambda"].values
    n_units = ds.sizes["unit"]
    fig, ax = plt.subplots(1, 2, figsize=(8, 3), constrained_layout=True)
    act = ds["mean_activation_rel"].values
    dist = ds["min_distance_rel"].values
    for u in range(n_units):
        ax[0].plot(dist[u], act[u], "-", color="0.5", lw=0.7, alpha=0.7)
        c = int(ds["chosen_index"].values[u])
        ax[0].plot(dist[u, c], act[u, c], "o", color="C3", ms=3)
    _log_x(ax[0])
    ax[0].axhline(float(ds.attrs.get("threshold", 0.9)), color="C0", lw=0.8, ls="--")
    ax[0].set_xlabel("min pairwise distance / at $\\lambda=0$")
    ax[0].set_ylabel("mean activation / at $\\lambda=0$")
    gain = ds["diversity_gain"].values
    ok = np.isfinite(gain) & (gain > 0)
    _hist(ax[1], np.log10(gain[ok]))
    ax[1].set_xlabel("log10 diversity gain at the chosen $\\lambda$")
    ax[1].set_ylabel("units")
    figs = [("Diversity vs activation trade-off",
             f"{ds.attrs.get('layer', '')}: each line one unit over lambda "
             f"({', '.join(f'{v:g}' for v in lams)}); red dot: chosen lambda (largest lambda "
             f"keeping >= {float(ds.attrs.get('threshold', 0.9)):g} of the lambda=0 activation). "
             f"Distance in {ds.attrs.get('feature_layer') or 'pixels'}.", fig)]

    show = np.linspace(0, n_units - 1, min(n_units, 6)).round().astype(int)
    n = ds.sizes["image"]
    fig2, axes = plt.subplots(len(show), 2 * n + 1, figsize=(1.0 * (2 * n + 1), 1.1 * len(show)),
                              squeeze=False, constrained_layout=True)
    imgs = ds["images"].values
    for r, u in enumerate(show):
        c = int(ds["chosen_index"].values[u])
        for i in range(n):
            axes[r, i].imshow(_display(imgs[u, 0, i]))
            axes[r, n + 1 + i].imshow(_display(imgs[u, c, i]))
        axes[r, 0].set_ylabel(labels[u], fontsize=6)
        axes[r, n + 1].set_title(f"$\\lambda$={lams[c]:g}", fontsize=6, loc="left")
    axes[0, 0].set_title("$\\lambda$=0", fontsize=6, loc="left")
    for a in axes.flat:
        a.set_xticks([])
        a.set_yticks([])
        a.spines[:].set_visible(False)
    figs.append(("Diverse sets", "Left: the n images at lambda = 0; right: at the chosen "
                 "lambda (channel mean added, clipped to [0, 1] for display).", fig2))

    responsive = np.flatnonzero(ds["responsive"].values.astype(bool))
    for u in responsive[:2]:
        act = ds["activation"].values[u] / max(float(ds["mean_activation"].values[u, 0]), 1e-30)
        fig3, axes = plt.subplots(len(lams), n, figsize=(0.9 * n, 0.9 * len(lams)),
                                  squeeze=False, constrained_layout=True)
        c = int(ds["chosen_index"].values[u])
        for r in range(len(lams)):
            for i in range(n):
                a = axes[r, i]
                a.imshow(_display(imgs[u, r, i]))
                a.set_xticks([])
                a.set_yticks([])
                a.set_title(f"{act[r, i]:.2f}", fontsize=5, pad=1)
                if r == c:
                    a.spines[:].set_color("C3")
                    a.spines[:].set_linewidth(1.5)
            axes[r, 0].set_ylabel(f"{lams[r]:g}", fontsize=6)
        figs.append((f"Sets at every lambda: {labels[u]}",
                     "One row per lambda (label on the left); above each image its activation "
                     "relative to the mean at lambda = 0; red frames: the chosen lambda. "
                     "Compare Cadena et al. (2018) Fig. 4.", fig3))
    return figs


def _hist(ax, values, bins: int = 20) -> int:
    """Histogram of the finite ``values`` (a range widened around a single repeated value,
    which numpy cannot bin); returns how many were drawn."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size:
        lo, hi = float(v.min()), float(v.max())
        pad = max(abs(lo), abs(hi), 1.0) * 1e-3
        if hi - lo < pad:
            lo, hi = lo - pad, hi + pad
        ax.hist(v, bins=bins, range=(lo, hi), color="0.3")
    return int(v.size)


@figure_for("diverse_indices")
def diverse_index_figures(ds: xr.Dataset):
    """Histograms of the two invariance indices and their scatter (texture vs shape units)."""
    pi = ds["phase_invariance_index"].values
    lc = ds["linear_combination_index"].values
    fig, ax = plt.subplots(1, 3, figsize=(10, 3), constrained_layout=True)
    _hist(ax[0], pi)
    ax[0].set_xlabel("phase (shift) invariance index")
    _hist(ax[1], lc)
    ax[1].set_xlabel("linear-combination index")
    ax[2].scatter(lc, pi, s=10, color="0.2")
    ax[2].set_xlabel("linear-combination index")
    ax[2].set_ylabel("phase invariance index")
    ax[0].set_ylabel("units")
    return [("Invariance indices", f"{ds.attrs.get('layer', '')}: shift invariance = mean "
             "activation of windowed crops of an optimised texture (side 2 RF - 1) / mean "
             "activation of the diverse templates; linear-combination index = mean activation "
             "of pairwise template averages (rescaled to the templates' norm) / templates'.",
             fig)]


# ---- comparisons across layers, conditions and models -----------------------------------------

CONDITION_ORDER = ("trained", "analytic", "custom", "untrained", "weight-shuffled")
CONTROLS = ("untrained", "weight-shuffled")


@dataclass
class DiverseGroup:
    """One stored diverse result (one model, condition and layer) and its indices."""

    model: str
    condition: str
    layer: str
    size_px: int
    sets: xr.Dataset
    indices: xr.Dataset | None
    run: Path

    @property
    def panel(self) -> str:
        return f"{self.model} {self.layer}"


def _key(ds: xr.Dataset) -> tuple[str, str, str]:
    return (str(ds.attrs.get("model", "")), str(ds.attrs.get("condition", "")),
            str(ds.attrs.get("layer", "")))


def load_diverse_groups(run_dirs) -> list[DiverseGroup]:
    """Every diverse result under ``run_dirs`` (loaded without its images and textures),
    matched with its indices by (model, condition, layer) within its run; sorted by model,
    receptive field, condition."""
    from artiphys.report.results import run_results

    groups = []
    for run in [Path(r) for r in run_dirs]:
        sets, indices = {}, {}
        for res in run_results(run):
            if res.kind == "diverse":
                # comparisons need the per-unit numbers, not the images (the bulk)
                ds = res.load(drop=("images",))
                sets[_key(ds)] = ds
            elif res.kind == "diverse_indices":
                ds = res.load(drop=("texture",))
                indices[_key(ds)] = ds
        for key, ds in sets.items():
            groups.append(DiverseGroup(*key, int(ds.attrs.get("size_px", 0)), ds,
                                       indices.get(key), run))
    rank = {c: i for i, c in enumerate(CONDITION_ORDER)}
    groups.sort(key=lambda g: (g.model, g.size_px, g.layer, rank.get(g.condition, 9),
                               g.condition))
    return groups


def _finite(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v[np.isfinite(v)]


def _median(v) -> float:
    v = _finite(v)
    return float(np.median(v)) if v.size else float("nan")


def diverse_summary(groups: list[DiverseGroup]) -> pd.DataFrame:
    """One row per group: units, responsive units, median chosen lambda, diversity gain,
    phase-invariance and linear-combination indices (with quartiles of the indices)."""
    rows = []
    for g in groups:
        ok = g.sets["responsive"].values.astype(bool)
        row = {"model": g.model, "condition": g.condition, "layer": g.layer,
               "rf_px": g.size_px, "units": int(ok.size), "responsive": int(ok.sum()),
               "chosen_lambda_median": _median(g.sets["chosen_lambda"].values[ok]),
               "diversity_gain_median": _median(g.sets["diversity_gain"].values[ok])}
        for name, short in (("phase_invariance_index", "phase_invariance"),
                            ("linear_combination_index", "linear_combination")):
            v = (_finite(g.indices[name].values[ok]) if g.indices is not None
                 else np.array([]))
            q = np.percentile(v, [25, 50, 75]) if v.size else [np.nan] * 3
            row.update({f"{short}_q25": float(q[0]), f"{short}_median": float(q[1]),
                        f"{short}_q75": float(q[2])})
        rows.append(row)
    return pd.DataFrame(rows)


def _unit_values(g: DiverseGroup, metric: str) -> np.ndarray:
    ok = g.sets["responsive"].values.astype(bool)
    if metric == "diversity_gain":
        return _finite(g.sets[metric].values[ok])
    return _finite(g.indices[metric].values[ok]) if g.indices is not None else np.array([])


def condition_tests(groups: list[DiverseGroup]) -> pd.DataFrame:
    """Per model and layer, each control condition against the model as given (trained):
    medians of the diversity gain and both indices over responsive units and the two-sided
    Mann-Whitney U test between the two distributions."""
    from scipy.stats import mannwhitneyu

    rows = []
    for members in _panels(groups).values():
        refs = [g for g in members if g.condition not in CONTROLS]
        for ref in refs[:1]:
            for ctl in (g for g in members if g.condition in CONTROLS):
                for metric in ("diversity_gain", "phase_invariance_index",
                               "linear_combination_index"):
                    a, b = _unit_values(ref, metric), _unit_values(ctl, metric)
                    p = (float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
                         if a.size and b.size else float("nan"))
                    rows.append({"model": ref.model, "layer": ref.layer, "metric": metric,
                                 "condition": ref.condition, "control": ctl.condition,
                                 "n": a.size, "n_control": b.size, "median": _median(a),
                                 "median_control": _median(b), "mannwhitney_p": p})
    return pd.DataFrame(rows)


@run_table
def diverse_tables(run_dirs):
    """The summary table and the trained-vs-control tests of the runs' diverse results."""
    groups = load_diverse_groups(run_dirs)
    if not groups:
        return []
    out = [("diverse_summary", "Per model, condition and layer: units, responsive units, "
            "median chosen lambda and diversity gain, quartiles of the phase-invariance and "
            "linear-combination indices (responsive units).", diverse_summary(groups))]
    tests = condition_tests(groups)
    if len(tests):
        out.append(("diverse_condition_tests", "Trained (the model as given) vs each control, "
                    "per layer: medians over responsive units and the two-sided Mann-Whitney "
                    "U test p-value.", tests))
    return out


def _colours(groups) -> dict[str, str]:
    found = list(dict.fromkeys(g.condition for g in groups))
    order = [c for c in CONDITION_ORDER if c in found] + [c for c in found
                                                         if c not in CONDITION_ORDER]
    return {c: f"C{i}" for i, c in enumerate(order)}


def _panels(groups) -> dict[str, list[DiverseGroup]]:
    out: dict[str, list[DiverseGroup]] = {}
    for g in groups:
        out.setdefault(g.panel, []).append(g)
    return out


def _grid(n: int, width: float = 3.0, height: float = 2.6, ncol: int = 4):
    ncol = min(ncol, n)
    nrow = -(-n // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(width * ncol, height * nrow),
                             squeeze=False, constrained_layout=True)
    for a in axes.flat[n:]:
        a.set_visible(False)
    return fig, axes.flat


def _tradeoff_figure(groups, colour, panels) -> list:
    """Activation-diversity trade-off per panel (Cadena Fig. 5A)."""
    figs = []
    fig, axes = _grid(len(panels))
    for ax, (name, members) in zip(axes, panels.items()):
        for g in members:
            ok = g.sets["responsive"].values.astype(bool)
            act = g.sets["mean_activation_rel"].values[ok]
            dist = g.sets["min_distance_rel"].values[ok]
            for a, d in zip(act, dist):
                ax.plot(d, a, "-", color=colour[g.condition], lw=0.5, alpha=0.35)
            if ok.any():
                ax.plot(np.nanmedian(dist, 0), np.nanmedian(act, 0), "o-", ms=2.5, lw=1.8,
                        color=colour[g.condition], label=f"{g.condition} ({ok.sum()})")
        ax.axhline(float(members[0].sets.attrs.get("threshold", 0.9)), color="0.4", lw=0.7,
                   ls="--")
        _log_x(ax)
        ax.set_title(f"{name} (RF {members[0].size_px} px)", fontsize=8)
        ax.set_xlabel("min distance / at $\\lambda$=0", fontsize=7)
        ax.set_ylabel("activation / at $\\lambda$=0", fontsize=7)
        ax.legend(fontsize=6)
    figs.append(("Activation-diversity trade-off, normalised",
                 "Each thin line is one unit over lambda (0, 0.02, ... 20.48), with mean "
                 "activation and min pairwise distance divided by their values at lambda = 0 "
                 "(the distance floored as for the gain); "
                 "thick: the median over units; dashed: the threshold. Compare Cadena et al. "
                 "(2018) Fig. 5A (trained VGG-19 conv3_1 vs random weights).", fig))

    return figs


def _gain_figure(groups, colour, panels) -> list:
    """Diversity-gain histograms per panel (Cadena Fig. 5B)."""
    figs = []
    fig, axes = _grid(len(panels))
    for ax, (name, members) in zip(axes, panels.items()):
        vals = [np.log10(_finite(g.sets["diversity_gain"].values)) for g in members]
        lo = min((v.min() for v in vals if v.size), default=0.0)
        hi = max((v.max() for v in vals if v.size), default=1.0)
        bins = np.linspace(lo, hi + 1e-9, 16)
        for g, v in zip(members, vals):
            if v.size:
                ax.hist(v, bins=bins, histtype="step", lw=1.5, color=colour[g.condition],
                        label=f"{g.condition}: median {10 ** np.median(v):.2f}")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("log10 diversity gain at chosen $\\lambda$", fontsize=7)
        ax.set_ylabel("units", fontsize=7)
        ax.legend(fontsize=6)
    figs.append(("Diversity gain", "Min pairwise (seen) distance at each unit's chosen lambda "
                 "/ at lambda = 0, floored at gain_floor x the feature norm where the lambda = 0 "
                 "images coincide (docs/diverse.md). Compare Cadena et al. (2018) Fig. 5B.", fig))

    return figs


def _index_figure(groups, colour, panels) -> list:
    """Invariance-index histograms and scatter (Cadena Figs. 8, 10)."""
    figs = []
    with_idx = {k: [g for g in v if g.indices is not None] for k, v in panels.items()}
    with_idx = {k: v for k, v in with_idx.items() if v}
    if with_idx:
        fig, ax = plt.subplots(len(with_idx), 3, figsize=(10, 2.6 * len(with_idx)),
                               squeeze=False, constrained_layout=True)
        for r, (name, members) in enumerate(with_idx.items()):
            for col, metric in enumerate(("phase_invariance_index",
                                          "linear_combination_index")):
                values = [_unit_values(g, metric) for g in members]
                pooled = np.concatenate(values)
                if not pooled.size:
                    continue
                lo, hi = min(0.0, pooled.min()), max(1.0, pooled.max())
                bins = np.linspace(lo, hi + 1e-9, 25)   # shared by the conditions
                for g, v in zip(members, values):
                    if v.size:
                        ax[r, col].hist(v, bins=bins, histtype="step", lw=1.5,
                                        color=colour[g.condition], label=g.condition)
            for g in members:
                ok = g.sets["responsive"].values.astype(bool)
                ax[r, 2].scatter(g.indices["linear_combination_index"].values[ok],
                                 g.indices["phase_invariance_index"].values[ok], s=8,
                                 color=colour[g.condition], alpha=0.8)
            ax[r, 0].set_ylabel(f"{name}\nunits", fontsize=7)
            ax[r, 0].legend(fontsize=6)
            ax[r, 2].set_ylabel("phase invariance", fontsize=7)
        ax[-1, 0].set_xlabel("phase (shift) invariance index")
        ax[-1, 1].set_xlabel("linear-combination index")
        ax[-1, 2].set_xlabel("linear-combination index")
        figs.append(("Invariance indices by layer and condition",
                     "Histograms of the phase-invariance index (windowed crops of an optimised "
                     "texture vs the templates) and the linear-combination index (pairwise "
                     "template averages vs the templates), and their scatter: texture-like "
                     "units sit high on both, shape-like units high only on the second "
                     "(responsive units). "
                     "Compare Cadena et al. (2018) Figs. 8C-E and 10B.", fig))

    return figs


def _rf_figure(groups, colour, panels) -> list:
    """Median indices against RF size per model and condition."""
    figs = []
    table = diverse_summary(groups)
    if table["phase_invariance_median"].notna().any():
        fig, ax = plt.subplots(1, 3, figsize=(11, 3.2), constrained_layout=True)
        models = list(dict.fromkeys(table["model"]))
        markers = "osD^vP*X"
        for (model, cond), t in table.groupby(["model", "condition"], sort=False):
            t = t.sort_values("rf_px")
            style = {"color": f"C{models.index(model)}", "marker": markers[
                list(colour).index(cond) % len(markers)], "ms": 4,
                "mfc": "white" if cond in CONTROLS else None,
                "ls": "--" if cond in CONTROLS else "-",
                "label": f"{model} ({cond})"}
            for a, short in zip(ax[:2], ("phase_invariance", "linear_combination")):
                med = t[f"{short}_median"].to_numpy()
                err = [med - t[f"{short}_q25"].to_numpy(), t[f"{short}_q75"].to_numpy() - med]
                a.errorbar(t["rf_px"], med, yerr=err, capsize=2, lw=1, **style)
            ax[2].plot(t["rf_px"], t["diversity_gain_median"], lw=1, **style)
        for a, label in zip(ax, ("phase-invariance index", "linear-combination index",
                                 "diversity gain")):
            a.set_xlabel("receptive field (px)")
            a.set_ylabel(f"median {label}")
        ax[0].legend(fontsize=6)
        figs.append(("Invariance against receptive-field size",
                     "Per layer (one point per model, condition and layer at its RF size): "
                     "median and quartiles of the indices over responsive units, median "
                     "diversity gain. Layers of matching RF compare architectures (Cadena "
                     "et al. 2018: VGG-19 vs ResNet-50); filled = trained, open and dashed = "
                     "controls.",
                     fig))
    return figs


def comparison_figures(groups: list[DiverseGroup]):
    """Figures comparing diverse results across layers, conditions and models."""
    if not groups:
        return []
    colour = _colours(groups)
    panels = _panels(groups)
    return [f for make in (_tradeoff_figure, _gain_figure, _index_figure, _rf_figure)
            for f in make(groups, colour, panels)]


@run_figure
def diverse_run_figures(run_dir: Path, summary: dict):
    """Comparison figures of a run holding several diverse results (layers / conditions)."""
    groups = load_diverse_groups([run_dir])
    return comparison_figures(groups) if len(groups) >= 2 else []
