"""Translation-invariance figures of a run (Pospisil, Pasupathy & Bair 2018, Figs. 6-8 and
Fig. 7-figure supplement 1), drawn from the battery's stored steps
(:mod:`artiphys.experiments.battery_ti`): ``ti`` (per-unit TI, RF profile, position
correlation and the in-RF window of :func:`artiphys.tuning.ti.ti_metric`), ``ti_sweep``
(each unit's RF edges), ``ti_shuffle`` (the shuffle control), their ``_y`` variants
(vertical sweeps) and ``apc`` (APC fit r).

Run level: the example units' position-correlation and RF profiles with the layers'
averages (Fig. 6), TI cumulative distributions per layer and condition (Fig. 7), TI along
x vs along y (Fig. 7-S1) and APC r vs TI with the paper's V4 reference (Fig. 8). Unit
level: one unit's profiles and where it stands in its layer's APC r vs TI cloud.

Positions are the shapes' offsets along the sweep axis from the sweep's centre (the RF
centre of the recorded centre units), in input-image pixels.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import xarray as xr

from artiphys.report.figures import _ecdf, plt, run_figure, unit_figure
from artiphys.report.results import example_units, run_results

# The hypothetical best V4 unit of Pospisil et al. (2018) Fig. 8: the highest TI (of the
# El-Shamayleh & Pasupathy 2016 V4 data) with the highest APC fit r (of the Pasupathy &
# Connor 2001 V4 data), two separate data sets; (TI, APC r), from the figure's caption.
V4_BEST = (0.97, 0.80)
V4_SOURCE = ("red x: the hypothetical best V4 unit of Pospisil et al. (2018) Fig. 8, TI 0.97 "
             "(highest of El-Shamayleh & Pasupathy 2016) with APC r 0.80 (highest of "
             "Pasupathy & Connor 2001), from separate data sets")
DISTANCE_LEVELS = (0.25, 0.5, 0.75, 1.0)
_CONTROL_NAMES = ("untrained", "weight-shuffled", "shuffle")
_CONTROL_TEXT = {"untrained": "untrained (random init)",
                 "weight-shuffled": "weight-shuffled (each layer's weights permuted)",
                 "shuffle": "shuffle (responses permuted across shapes at each position)"}
_LAYERS_PER_FIGURE = 6
_RED, _GREEN = "#d62728", "#2ca02c"


# ---- reading the stored steps -------------------------------------------------------------

def _results(run_dir: Path, result: str, condition: str | None = None, drop=(),
             layer: str | None = None) -> dict[tuple[str, str], xr.Dataset]:
    """``{(condition, layer): Dataset}`` of the current ``result`` steps (``"ti"``,
    ``"ti_y"``, ``"ti_sweep"``, ...) of ``condition`` and ``layer`` (default all); results
    without a step index are matched by file name (``<result>.<digest>.nc``)."""
    meta = {k: v for k, v in (("condition", condition), ("layer", layer)) if v is not None}
    out = {}
    for r in run_results(run_dir, **meta):
        if r.meta.get("result", r.path.name.split(".")[0]) == result:
            out[(str(r.meta.get("condition", "")), str(r.meta.get("layer", "")))] = \
                r.load(drop=drop)
    return out


def _ti(run_dir: Path, name: str = "ti") -> dict[tuple[str, str], xr.Dataset]:
    """The stored TI along x (step ``name``), or along y (``name_y``) in a run whose
    shapes were swept along y only."""
    return _results(run_dir, name) or _results(run_dir, f"{name}_y")


def _ordered(summary: dict, layers) -> list[str]:
    """Layers in the run's order (``summary['layer_order']``), others after."""
    layers = list(dict.fromkeys(layers))
    order = summary.get("layer_order") or []
    return [la for la in order if la in layers] + [la for la in layers if la not in order]


def _is_control(condition: str) -> bool:
    return re.sub(r"_seed\d+$", "", condition) in _CONTROL_NAMES


def _primary(summary: dict, conditions) -> str | None:
    """The run's own model's condition (the first of ``summary['conditions']`` present)."""
    conditions = list(dict.fromkeys(conditions))
    for c in summary.get("conditions") or []:
        if c in conditions:
            return c
    own = [c for c in conditions if not _is_control(c)]
    return (own or sorted(conditions) or [None])[0]


def _group(summary: dict, condition: str) -> str:
    """The control a seed's condition belongs to (``untrained_seed2`` -> ``untrained``)."""
    for name, seeds in (summary.get("control_seeds") or {}).items():
        if condition in seeds:
            return name
    return re.sub(r"_seed\d+$", "", condition)


def _channels(ds: xr.Dataset) -> np.ndarray:
    if "channel" in ds.coords:
        return np.asarray(ds["channel"].values, int)
    return np.arange(ds.sizes["unit"])


def _index(ds: xr.Dataset, channel: int) -> int | None:
    hit = np.flatnonzero(_channels(ds) == int(channel))
    return int(hit[0]) if hit.size else None


def _paired(a: xr.Dataset, var_a: str, b: xr.Dataset, var_b: str):
    """``(channels, a values, b values)`` of the channels both results hold with both values
    finite, in ``a``'s order (units matched by channel, not by position)."""
    ib = {int(c): j for j, c in enumerate(_channels(b))}
    values_a, values_b = np.asarray(a[var_a].values, float), np.asarray(b[var_b].values, float)
    rows = [(int(c), values_a[i], values_b[ib[int(c)]]) for i, c in enumerate(_channels(a))
            if int(c) in ib and np.isfinite(values_a[i]) and np.isfinite(values_b[ib[int(c)]])]
    chans, va, vb = (zip(*rows) if rows else ((), (), ()))
    return np.asarray(chans, int), np.asarray(va, float), np.asarray(vb, float)


def defined_text(ds: xr.Dataset) -> str:
    """``"40/64 (24 rf smaller than stimulus)"``: units with a defined TI of all, and why
    the others have none (:func:`artiphys.tuning.ti.ti_summary`)."""
    if "flags" in ds and "n_in_rf" in ds:
        from artiphys.tuning.ti import ti_summary

        s = ti_summary(ds)
        n, ok, why = s["n_units"], s["n_defined"], s["undefined"]
    else:
        ti = np.asarray(ds["ti"].values, float)
        n, ok = ti.size, int(np.isfinite(ti).sum())
        why = {"unflagged": n - ok} if n > ok else {}
    reasons = ", ".join(f"{k} {v.replace('_', ' ')}" for v, k in why.items())
    return f"{ok}/{n}" + (f" ({reasons})" if reasons else "")


def _nanmean(a: np.ndarray, axis: int) -> np.ndarray:
    """Mean over the finite values (NaN where there are none), without a warning."""
    ok = np.isfinite(a)
    n = ok.sum(axis)
    return np.where(n > 0, np.where(ok, a, 0.0).sum(axis) / np.maximum(n, 1), np.nan)


def _legend(ax, **kw) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=7, color="0.4",
            transform=ax.transAxes, gid="empty")


def _grid(n: int, cols: int = 4, size=(3.0, 2.6)):
    cols = max(1, min(cols, n))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows),
                             squeeze=False, constrained_layout=True)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig, list(axes.flat)[:n]


# ---- Fig. 6: position-correlation and RF profiles --------------------------------------------

def rf_band_px(sweep: xr.Dataset | None, i: int | None, extent) -> tuple[float, float] | None:
    """Offsets (px) at which the shapes' centre lies inside unit ``i``'s RF: the sweep's RF
    edges (image px, clipped to the image) minus the centre of the stimulus extent at
    offset 0; None when the sweep or the extent is not stored. ``i=None``: the median over
    units."""
    if sweep is None or "rf_start_px" not in sweep or extent is None:
        return None
    centre = float(np.mean(np.asarray(extent, float)))
    lo, hi = sweep["rf_start_px"].values, sweep["rf_end_px"].values
    if i is None:
        return float(np.median(lo)) - centre, float(np.median(hi)) - centre
    return float(lo[i]) - centre, float(hi[i]) - centre


def draw_profile(ax, pos, corr, prof, in_rf=None, band=None) -> None:
    """Position correlation (red) and RF profile (green) against offset; the TI window
    (dotted lines and a black bar) and the RF (grey band) where given."""
    pos = np.asarray(pos, float)
    corr, prof = np.asarray(corr, float), np.asarray(prof, float)
    if band is not None:
        ax.axvspan(*band, color="0.9", zorder=0, gid="rf_band")
    ax.plot(pos, corr, "-", color=_RED, lw=1.2, label="position correlation", gid="corr")
    ax.plot(pos, prof, "-", color=_GREEN, lw=1.2, label="RF profile", gid="profile")
    finite = np.concatenate([corr[np.isfinite(corr)], [0.0]])
    bottom = min(-0.25, float(finite.min()) - 0.05)
    ax.set_ylim(bottom, 1.08)
    if in_rf is not None and np.any(in_rf):
        inside = pos[np.asarray(in_rf, bool)]
        for edge in (inside.min(), inside.max()):
            ax.axvline(edge, color="k", ls=":", lw=0.8)
        y = bottom + 0.06 * (1.08 - bottom)
        ax.plot([inside.min(), inside.max()], [y, y], "-", color="k", lw=2.5, gid="ti_window")
    ax.axhline(0, color="0.6", lw=0.5)
    ax.set_xlim(pos.min() - 1, pos.max() + 1)   # the sweep (an RF may reach beyond it)
    ax.set_xlabel("stimulus offset (px)", fontsize=7)
    ax.set_ylabel("r, normalised response", fontsize=7)
    ax.tick_params(labelsize=6)


def _sweeps(run_dir: Path, condition: str, tag: str = "",
            layer: str | None = None) -> dict[str, xr.Dataset]:
    """The RF edges of the stored sweeps, by layer (their responses are not read)."""
    got = _results(run_dir, f"ti_sweep{tag}", condition, drop=("responses",), layer=layer)
    return {la: ds for (_, la), ds in got.items()}


def _by_position(ds: xr.Dataset, var: str) -> np.ndarray:
    """``ds[var]`` as a ``(position, unit)`` array."""
    return np.asarray(ds[var].transpose("position", "unit").values)


def _unit_profile(ax, ds, sweep, channel, label) -> None:
    """One unit's profiles (its TI window, and its RF where the sweep is stored)."""
    i = _index(ds, channel)
    j = None if sweep is None else _index(sweep, channel)
    band = rf_band_px(sweep, j, ds.attrs.get("stimulus_extent_px")) if j is not None else None
    in_rf = _by_position(ds, "in_rf")[:, i] if "in_rf" in ds else None
    draw_profile(ax, ds["position_px"].values, _by_position(ds, "position_correlation")[:, i],
                 _by_position(ds, "rf_profile")[:, i], in_rf, band)
    ti = float(ds["ti"].values[i])
    ax.set_title(f"{label}\nTI = {ti:.2f}" if np.isfinite(ti) else f"{label}\nTI undefined",
                 fontsize=7)


def _layer_average(ax, ds, sweep, layer) -> int:
    """Average profiles over the layer's units (finite values); returns the n averaged."""
    corr = _by_position(ds, "position_correlation").astype(float)
    prof = _by_position(ds, "rf_profile").astype(float)
    keep = np.isfinite(corr).any(0) & np.isfinite(prof).any(0)
    if not keep.any():
        ax.set_title(f"{layer}: no unit with a profile", fontsize=7)
        ax.axis("off")
        return 0
    band = rf_band_px(sweep, None, ds.attrs.get("stimulus_extent_px"))
    draw_profile(ax, ds["position_px"].values, _nanmean(corr[:, keep], 1),
                 _nanmean(prof[:, keep], 1), None, band)
    ax.set_title(f"{layer}: average of\n{int(keep.sum())} units", fontsize=7)
    return int(keep.sum())


def _profile_figure(layers, found, sweeps, examples):
    cols = 1 + max([len(examples.get(la, [])) for la in layers] + [0])
    fig, axes = plt.subplots(len(layers), cols, figsize=(2.7 * cols, 2.3 * len(layers)),
                             squeeze=False, constrained_layout=True)
    notes = []
    for row, la in zip(axes, layers):
        ds, sweep = found[la], sweeps.get(la)
        shown = [ex for ex in examples.get(la, []) if _index(ds, ex["channel"]) is not None]
        for ax, ex in zip(row, shown):
            _unit_profile(ax, ds, sweep, ex["channel"], f"{la}:{ex['channel']} ({ex['reason']})")
        for ax in row[len(shown):-1]:
            ax.axis("off")
        n = _layer_average(row[-1], ds, sweep, la)
        notes.append(f"{la}: {len(shown)} example unit(s), average over {n} units")
    _legend(axes[0][-1], fontsize=6, loc="lower right")
    return fig, notes


@run_figure
def ti_profile_figures(run_dir: Path, summary: dict):
    """Fig. 6: example units' position-correlation and RF profiles, and layer averages."""
    found = _ti(run_dir)
    primary = _primary(summary, [c for c, _ in found])
    found = {la: ds for (c, la), ds in found.items() if c == primary
             and {"position_correlation", "rf_profile"} <= set(ds.data_vars)}
    if not found:
        return []
    layers = _ordered(summary, found)
    axis = str(next(iter(found.values())).attrs.get("axis", "x"))
    sweeps = _sweeps(run_dir, primary, "" if axis == "x" else f"_{axis}")
    examples = example_units(run_dir)
    figs = []
    for k in range(0, len(layers), _LAYERS_PER_FIGURE):
        chunk = layers[k:k + _LAYERS_PER_FIGURE]
        fig, notes = _profile_figure(chunk, found, sweeps, examples)
        part = f" ({k // _LAYERS_PER_FIGURE + 1})" if len(layers) > _LAYERS_PER_FIGURE else ""
        figs.append((f"Translation invariance across the RF{part}", (
            f"{primary}, shapes shifted along {axis}: red, the correlation of the responses "
            "to the shapes at each offset with those at the RF centre (offset 0); green, the "
            "RF profile (root of the summed squared blank-subtracted responses over the "
            "shapes, over its maximum); offsets in input px. Dotted lines and black bar: the "
            "positions where every shape lies wholly inside the unit's RF, over which TI is "
            "computed; grey band: the offsets that put the shapes' centre inside the RF "
            "(edges from the network's geometry, clipped to the image; the median over "
            "units in the average panels). Left: the run's example units (why chosen in "
            "brackets); right: averages over the layer's units with a profile. "
            + "; ".join(notes) + ". Compare Pospisil et al. (2018) Fig. 6."), fig))
    return figs


# ---- Fig. 7 and its supplement: TI distributions ----------------------------------------------

def _all_ti(run_dir: Path, summary: dict):
    """``({(condition, layer): ti Dataset}, [conditions ordered: own, controls, shuffle])``."""
    found = {**_ti(run_dir), **_ti(run_dir, "ti_shuffle")}
    conds = list(dict.fromkeys(c for c, _ in found))
    primary = _primary(summary, conds)
    named = list(summary.get("conditions") or [])
    rank = {c: (c != primary, c == "shuffle", named.index(c) if c in named else len(named))
            for c in conds}
    return found, sorted(conds, key=lambda c: rank[c])


def _cdf_by_layer(found, conds, layers, summary):
    """Fig. 7A/B: per condition, one curve per layer; the own model's curves faint behind."""
    groups = list(dict.fromkeys(_group(summary, c) for c in conds))
    firsts = [next(c for c in conds if _group(summary, c) == g) for g in groups]
    fig, axes = _grid(len(firsts), cols=3, size=(4.0, 3.2))
    depth = plt.get_cmap("copper_r")
    for k, (ax, cond) in enumerate(zip(axes, firsts)):
        if k:
            for la in layers:
                if (conds[0], la) in found:
                    _ecdf(ax, found[conds[0], la]["ti"].values, color="0.85", lw=0.8)
        for i, la in enumerate(layers):
            if (cond, la) in found:
                _ecdf(ax, found[cond, la]["ti"].values, label=la,
                      color=depth(i / max(1, len(layers) - 1)))
        if not _n_defined(found, [cond], layers):
            _empty(ax, "no unit with a defined TI")
        ax.set_title(cond, fontsize=8)
        ax.set_xlabel("TI")
        ax.set_ylabel("cumulative fraction of units")
        ax.set_xlim(_low(found[c, la]["ti"] for c in conds for la in layers if (c, la) in found),
                    1.02)
        ax.set_ylim(0, 1.02)
    _legend(axes[0], fontsize=6, ncol=2, loc="upper left")
    return fig, firsts


def _low(arrays) -> float:
    """The lower axis limit for TI values: -0.3, or below the lowest value."""
    values = [np.asarray(a, float) for a in arrays]
    low = min([float(np.nanmin(v)) for v in values if np.isfinite(v).any()] + [0.0])
    return min(-0.3, low - 0.05)


def _n_defined(found, conds, layers) -> int:
    return sum(int(np.isfinite(np.asarray(found[c, la]["ti"].values, float)).sum())
               for c in conds for la in layers if (c, la) in found)


def _cdf_by_condition(found, conds, layers, summary):
    """Per layer, one curve per condition (seeds thin, in their control's colour)."""
    groups = list(dict.fromkeys(_group(summary, c) for c in conds))
    colour = {g: f"C{i}" for i, g in enumerate(groups)}
    shown = [la for la in layers if any((c, la) in found for c in conds)]
    fig, axes = _grid(len(shown), cols=4, size=(3.0, 2.6))
    for ax, la in zip(axes, shown):
        labelled = set()
        for c in conds:
            if (c, la) not in found:
                continue
            g = _group(summary, c)
            seed = g in labelled
            _ecdf(ax, found[c, la]["ti"].values, color=colour[g], lw=0.7 if seed else 1.4,
                  alpha=0.6 if seed else 1.0, label=None if seed else g)
            labelled.add(g)
        ax.set_title(la, fontsize=8)
        ax.set_xlabel("TI", fontsize=7)
        ax.set_ylabel("cumulative fraction", fontsize=7)
        ax.set_xlim(_low(found[c, la]["ti"] for c in conds if (c, la) in found), 1.02)
        ax.set_ylim(0, 1.02)
        ax.tick_params(labelsize=6)
        _legend(ax, fontsize=6, loc="upper left")
        if not _n_defined(found, conds, [la]):
            _empty(ax, "no unit with a defined TI")
    return fig, shown


@run_figure
def ti_cdf_figures(run_dir: Path, summary: dict):
    """Fig. 7: cumulative distributions of TI per layer, the own model vs its controls."""
    found, conds = _all_ti(run_dir, summary)
    if not found:
        return []
    layers = _ordered(summary, [la for _, la in found])
    counts = "; ".join(f"{la}: " + ", ".join(f"{c} {defined_text(found[c, la])}"
                                             for c in conds if (c, la) in found)
                       for la in layers)
    n_note = (" Units with a defined TI / all units, per layer and condition (why the others "
              f"have none in brackets): {counts}.")
    fig, firsts = _cdf_by_layer(found, conds, layers, summary)
    axis = str(next(iter(found.values())).attrs.get("axis", "x"))
    figs = [("Cumulative distributions of TI by layer", (
        f"TI for shifts of the shapes along {axis}. One curve per layer (darker = deeper), one "
        f"panel per condition ({', '.join(firsts)}); in the control panels the {conds[0]} "
        "curves are repeated in grey. TI over the positions where every shape lies inside "
        "the unit's RF (Pospisil et al. 2018 Eq. 3); units without a defined TI are left "
        "out. Compare Pospisil et al. (2018) Fig. 7A, B." + n_note), fig)]
    if len(conds) > 1:
        fig, _ = _cdf_by_condition(found, conds, layers, summary)
        seeds = [c for c in conds if _group(summary, c) != c]
        seed_note = (f" Thin lines: further seeds ({', '.join(seeds)})." if seeds else "")
        groups = dict.fromkeys(_group(summary, c) for c in conds[1:])
        named = [_CONTROL_TEXT.get(g, g) for g in groups]
        figs.append((f"TI distributions: {conds[0]} vs controls, per layer", (
            f"One panel per layer: {conds[0]} vs {', '.join(named)}.{seed_note}" + n_note),
            fig))
    return figs


def _primary_pairs(summary: dict, first: dict, fvar: str, second: dict, svar: str, *, by):
    """``(primary condition, {layer: (channels, first values, second values)}, layers in
    execution order with a matched unit)`` of two ``{(condition, layer): result}`` maps;
    the primary condition is chosen among the conditions of ``by``."""
    primary = _primary(summary, [c for c, _ in by])
    pairs = {la: _paired(first[primary, la], fvar, second[primary, la], svar)
             for c, la in by if c == primary and (c, la) in first and (c, la) in second}
    return primary, pairs, _ordered(summary, [la for la, p in pairs.items() if p[0].size])


@run_figure
def ti_xy_figures(run_dir: Path, summary: dict):
    """Fig. 7-S1: TI for vertical vs horizontal shifts, per layer."""
    tx, ty = _results(run_dir, "ti"), _results(run_dir, "ti_y")
    primary, pairs, layers = _primary_pairs(summary, tx, "ti", ty, "ti", by=ty)
    if not layers:
        return []
    examples = example_units(run_dir)
    fig, axes = _grid(len(layers), cols=4, size=(2.8, 2.7))
    notes = []
    for ax, la in zip(axes, layers):
        chans, x, y = pairs[la]
        ax.plot([-1, 1], [-1, 1], color="0.6", lw=0.7)
        ax.scatter(x, y, s=8, color="C0", alpha=0.7, gid="units")
        _mark_examples(ax, chans, x, y, examples.get(la, []))
        r = float(np.corrcoef(x, y)[0, 1]) if x.size > 2 and x.std() > 0 and y.std() > 0 \
            else float("nan")
        ax.set_title(f"{la}: r = {r:.2f}, n = {x.size}", fontsize=7)
        ax.set_xlabel("TI, horizontal shifts (x)", fontsize=7)
        ax.set_ylabel("TI, vertical shifts (y)", fontsize=7)
        ax.set_xlim(_low([x]), 1.02)
        ax.set_ylim(_low([y]), 1.02)
        ax.tick_params(labelsize=6)
        notes.append(f"{la} {x.size}")
    return [("TI along x vs along y", (
        f"{primary}: each point a unit's TI for vertical vs horizontal shifts of the shapes; "
        "grey: equality; orange stars: example units (labelled by channel). n = units with "
        f"a defined TI along both axes: {', '.join(notes)}{_left_out(pairs, layers)}. r: "
        "Pearson. Compare Pospisil et al. (2018) Fig. 7-figure supplement 1."), fig)]


def _left_out(pairs: dict, layers) -> str:
    gone = [la for la in pairs if la not in layers]
    return f" (not drawn, no such unit: {', '.join(gone)})" if gone else ""


# ---- Fig. 8: APC r vs TI ------------------------------------------------------------------

def _mark_examples(ax, chans, x, y, examples, highlight=()) -> None:
    """Orange stars labelled by channel at the example units (and ``highlight``)."""
    wanted = [int(e["channel"]) for e in examples] + [int(c) for c in highlight]
    at = {int(c): k for k, c in enumerate(chans)}
    pts = [(c, x[at[c]], y[at[c]]) for c in dict.fromkeys(wanted) if c in at]
    if not pts:
        return
    ax.scatter([p[1] for p in pts], [p[2] for p in pts], marker="*", s=90, color="C1",
               edgecolor="k", lw=0.5, zorder=5, gid="examples")
    for c, px, py in pts:
        ax.annotate(str(c), (px, py), xytext=(3, 3), textcoords="offset points", fontsize=6)


def draw_v4_reference(ax, v4_median_r: float | None = None) -> None:
    """Distance-to-ideal contours, the hypothetical best V4 unit and its region, and the
    V4 median APC r of the run's reference fits (when given)."""
    from artiphys.tuning.neural import combined_distance

    t, r = np.meshgrid(np.linspace(-0.3, 1.0, 131), np.linspace(-0.3, 1.0, 131))
    dist = combined_distance(t, r)
    cs = ax.contour(t, r, dist, levels=DISTANCE_LEVELS, colors="0.6", linewidths=0.6,
                    linestyles="--")
    ax.clabel(cs, fontsize=5, fmt="%.2f")
    best = float(combined_distance(*V4_BEST))
    ax.contourf(t, r, dist, levels=[0, best], colors=[(1.0, 0.8, 0.8)], alpha=0.6)
    ax.plot(*V4_BEST, "x", color=_RED, ms=8, mew=2, gid="v4_best")
    if v4_median_r is not None and np.isfinite(v4_median_r):
        ax.axhline(v4_median_r, color=_RED, lw=0.8, gid="v4_median_r")


def _v4_median_r(summary: dict, layer: str, condition: str) -> float | None:
    row = ((summary.get("layers") or {}).get(layer) or {}).get(condition) or {}
    value = row.get("reference_r_median")
    return None if value is None else float(value)


def _apc_ti_axes(ax, chans, ti, r, examples, summary, layer, condition, highlight=()):
    draw_v4_reference(ax, _v4_median_r(summary, layer, condition))
    ax.scatter(ti, r, s=9, color="C0", alpha=0.7, gid="units")
    _mark_examples(ax, chans, ti, r, examples, highlight)
    ax.set_xlim(min(-0.05, float(np.min(ti, initial=0)) - 0.05), 1.02)
    ax.set_ylim(min(-0.05, float(np.min(r, initial=0)) - 0.05), 1.02)
    ax.set_xlabel("TI", fontsize=7)
    ax.set_ylabel("APC fit r", fontsize=7)
    ax.tick_params(labelsize=6)


def _apc_ti_caption(condition, notes, with_median) -> str:
    median = (" Red line: the median APC r of the run's V4 reference fits (summary.json)."
              if with_median else "")
    return (f"{condition}: each point a unit, its APC fit r against its TI; n = units with "
            f"both defined: {', '.join(notes)}. {V4_SOURCE}; pink: the region closer to the "
            "ideal unit (TI = 1, r = 1) than that V4 unit; dashed grey: distance from the "
            f"ideal unit sqrt((1 - TI)^2 + (1 - r)^2) at {', '.join(map(str, DISTANCE_LEVELS))}; "
            "orange stars: the example units, labelled by channel." + median
            + " Compare Pospisil et al. (2018) Fig. 8.")


@run_figure
def apc_ti_figures(run_dir: Path, summary: dict):
    """Fig. 8: APC r vs TI per layer with the V4 reference and distance-to-ideal contours."""
    tis, apcs = _ti(run_dir), _results(run_dir, "apc")
    primary, pairs, layers = _primary_pairs(summary, tis, "ti", apcs, "r", by=tis)
    if not layers:
        return []
    examples = example_units(run_dir)
    fig, axes = _grid(len(layers), cols=3, size=(3.4, 3.2))
    notes, with_median = [], False
    for ax, la in zip(axes, layers):
        chans, ti, r = pairs[la]
        _apc_ti_axes(ax, chans, ti, r, examples.get(la, []), summary, la, primary)
        with_median |= _v4_median_r(summary, la, primary) is not None
        ax.set_title(f"{la} (n = {ti.size})", fontsize=8)
        notes.append(f"{la} {ti.size}")
    notes[-1] += _left_out(pairs, layers)
    axis = str(next(iter(tis.values())).attrs.get("axis", "x"))
    return [("APC fit r vs translation invariance",
             _apc_ti_caption(f"{primary}, TI along {axis}", notes, with_median), fig)]


# ---- one unit -----------------------------------------------------------------------------

@unit_figure
def ti_unit_figures(run_dir: Path, summary: dict, layer: str, channel: int):
    """A unit's TI profiles (x, and y where swept) and its place in the APC r vs TI cloud."""
    tis = {t: _results(run_dir, f"ti{t}", layer=layer) for t in ("", "_y")}
    primary = _primary(summary, [c for c, _ in tis[""]] + [c for c, _ in tis["_y"]])
    mine = {t: got[primary, layer] for t, got in tis.items() if (primary, layer) in got
            and {"position_correlation", "rf_profile"} <= set(got[primary, layer].data_vars)
            and _index(got[primary, layer], channel) is not None}
    if not mine:
        return []
    apc = _results(run_dir, "apc", primary, layer=layer).get((primary, layer))
    cloud = apc is not None and "" in mine
    fig, axes = plt.subplots(1, len(mine) + cloud, figsize=(3.4 * (len(mine) + cloud), 3),
                             squeeze=False, constrained_layout=True)
    axes, notes = list(axes.flat), []
    for ax, (tag, ds) in zip(axes, mine.items()):
        i = _index(ds, channel)
        axis = str(ds.attrs.get("axis", "y" if tag else "x"))
        _unit_profile(ax, ds, _sweeps(run_dir, primary, tag, layer).get(layer), channel,
                      f"{layer}:{channel}, along {axis}")
        n_in = f"{int(ds['n_in_rf'].values[i])} in-RF positions" if "n_in_rf" in ds else "the RF"
        notes.append(f"TI along {axis} over {n_in}" + _why_undefined(ds, i))
    _legend(axes[0], fontsize=6, loc="lower right")
    cap = ("Red: correlation of the responses to the shapes at each offset with those at the "
           "RF centre; green: RF profile (normalised response magnitude); dotted lines and "
           "black bar: the TI window (every shape inside the RF); grey band: the offsets "
           "that put the shapes' centre inside the RF; offsets in input px. " + "; ".join(notes)
           + ".")
    if cloud:
        chans, ti, r = _paired(mine[""], "ti", apc, "r")
        _apc_ti_axes(axes[-1], chans, ti, r, [], summary, layer, primary, highlight=[channel])
        axes[-1].set_title(f"{layer}: APC r vs TI (n = {ti.size})", fontsize=7)
        if not ti.size:
            _empty(axes[-1], "no unit with both a TI and an APC r")
        placed = "" if int(channel) in chans else " (this unit lacks a TI or an APC r)"
        cap += (f" Right: the layer's units with both an APC r and a TI (n = {ti.size}); "
                f"orange star: this unit{placed}. {V4_SOURCE}; pink: closer to the ideal unit "
                "than that V4 unit; dashed grey: distance from the ideal unit (TI = 1, r = 1).")
    return [(f"Translation invariance of {layer}:{channel}", f"{primary}. " + cap, fig)]


def _why_undefined(ds: xr.Dataset, i: int) -> str:
    if np.isfinite(float(ds["ti"].values[i])):
        return ""
    if "flags" not in ds:
        return " (TI undefined)"
    from artiphys.tuning.ti import TI_FLAG_MEANINGS

    bits = int(ds["flags"].values[i])
    why = [m.replace("_", " ") for b, m in TI_FLAG_MEANINGS.items() if bits & b]
    return f" (TI undefined: {', '.join(why) or 'unflagged'})"


__all__ = ["DISTANCE_LEVELS", "V4_BEST", "apc_ti_figures", "defined_text", "draw_profile",
           "draw_v4_reference", "rf_band_px", "ti_cdf_figures", "ti_profile_figures",
           "ti_unit_figures", "ti_xy_figures"]
