"""``artiphys report RUN1 RUN2 ... --out DIR``: one page comparing runs of any kind.

Each run is checked first; runs that cannot be used (no folder, not a run, an unreadable
manifest, nothing the comparison draws) are named on the page with the reason, and the
rest are compared: the battery's per-layer medians (APC r, TI, sparsity, natural/shape
ratio) of every model and condition side by side, and the diverse-set tables and figures
(:mod:`artiphys.report.diverse_figures`).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from artiphys.errors import RunStoreError

#: Per-layer medians of summary.json compared across runs: (key, axis label).
METRICS = (("apc_r_median", "median APC r"), ("ti_median", "median TI"),
           ("sparsity_median", "median lifetime sparseness"),
           ("natural_shape_max_ratio_median", "median natural/shape max ratio"))


@dataclass(frozen=True)
class RunInfo:
    """One run given to the comparison: its folder, a short name, what it holds."""

    path: Path
    name: str
    summary: dict
    has_diverse: bool
    note: str = ""  # e.g. "unfinished: characterize is running"


def _names(paths: list[Path]) -> list[str]:
    """Folder names, with the parent prepended where two runs share a name."""
    names = [p.name or str(p) for p in paths]
    return [f"{p.parent.name}/{n}" if names.count(n) > 1 else n for p, n in zip(paths, names)]


def check_runs(run_dirs) -> tuple[list[RunInfo], list[tuple[str, str]]]:
    """``(usable runs, [(run, why it cannot be used)])``."""
    from artiphys.report.results import run_results

    paths = [Path(r) for r in run_dirs]
    usable, refused = [], []
    for path, name in zip(paths, _names(paths)):
        if not path.is_dir():
            refused.append((str(path), "no such folder"))
            continue
        if not (path / "manifest.json").is_file():
            refused.append((str(path), "not an artiphys run (no manifest.json)"))
            continue
        try:
            manifest = json.loads((path / "manifest.json").read_text())
            summary_path = path / "summary.json"
            summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        except (OSError, json.JSONDecodeError) as exc:
            refused.append((str(path), f"unreadable manifest or summary ({exc})"))
            continue
        kinds = {r.kind for r in run_results(path)}
        has_diverse = "diverse" in kinds
        if not (isinstance(summary.get("layers"), dict) and summary["layers"]) and not has_diverse:
            what = ", ".join(sorted(manifest.get("experiments", {}))) or "nothing"
            refused.append((str(path), f"holds no battery summary and no diverse sets (its "
                            f"experiments: {what}); run characterize or diverse into it"))
            continue
        unfinished = [f"{k} is {v.get('status')}" for k, v in
                      manifest.get("experiments", {}).items() if v.get("status") != "finished"]
        note = f"unfinished: {', '.join(unfinished)}" if unfinished else ""
        usable.append(RunInfo(path, name, summary, has_diverse, note))
    return usable, refused


def layer_table(runs: list[RunInfo]) -> pd.DataFrame:
    """One row per run, condition and layer (in each run's layer order): model, weights,
    n units and the medians of :data:`METRICS`."""
    rows = []
    for run in runs:
        layers = run.summary.get("layers") or {}
        order = run.summary.get("layer_order") or list(layers)
        model = run.summary.get("model", {}) or {}
        for depth, layer in enumerate(la for la in order if la in layers):
            for cond, entry in layers[layer].items():
                rows.append({"run": run.name, "model": model.get("name", ""),
                             "condition": cond, "layer": layer, "depth": depth,
                             "n_units": entry.get("n_units"),
                             **{key: entry.get(key) for key, _ in METRICS}})
    return pd.DataFrame(rows)


def layer_figures(table: pd.DataFrame):
    """Per metric, one line per run and condition over layer depth."""
    if table.empty:
        return []
    metrics = [(k, lab) for k, lab in METRICS if table[k].notna().any()]
    if not metrics:
        return []
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6),
                             constrained_layout=True, squeeze=False)
    groups = list(table.groupby(["run", "condition"], sort=False))
    for ax, (key, label) in zip(axes[0], metrics):
        for i, ((run, cond), rows) in enumerate(groups):
            y = rows[key].astype(float).to_numpy()
            ax.plot(rows["depth"], y, "o-" if cond == "trained" else "o--", ms=3,
                    color=f"C{i % 10}", label=f"{run}: {cond}")
        ax.set_xlabel("layer (depth in its model, 0 = first recorded)")
        ax.set_ylabel(label)
    axes[0][0].legend(fontsize=6)
    n = table.groupby(["run", "condition"]).size()
    caption = ("Per-layer medians over units from each run's summary.json, one line per run "
               "and condition (dashed: controls); layers by execution order within each "
               f"model. {len(n)} run/condition pairs, {int(n.sum())} layer rows; the table "
               "above gives the layer names and unit counts.")
    return [("Layer medians across runs", caption, fig)]


def build_comparison_report(run_dirs, out_dir) -> Path:
    """Write ``out_dir/index.html`` comparing ``run_dirs`` (see the module doc), with its
    tables as CSV beside it. Returns the path of ``index.html``.

    Raises
    ------
    RunStoreError
        When none of the runs can be used (each one's reason in the message).
    """
    from artiphys.report.diverse_figures import comparison_figures, load_diverse_groups
    from artiphys.report.figures import run_tables
    from artiphys.report.page import Page

    runs, refused = check_runs(run_dirs)
    if not runs:
        raise RunStoreError("none of these runs can be compared: " + "; ".join(
            f"{r}: {why}" for r, why in refused))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = ["<h1>artiphys comparison</h1>", "<h2>Runs</h2><ul>" + "".join(
        f"<li>{html.escape(r.name)}: <code>{html.escape(str(r.path))}</code>"
        f"{' <b>(' + html.escape(r.note) + ')</b>' if r.note else ''}</li>" for r in runs) +
        "</ul>"]
    if refused:
        parts.append("<h2>Runs not used</h2><ul>" + "".join(
            f"<li><code>{html.escape(r)}</code>: {html.escape(why)}</li>"
            for r, why in refused) + "</ul>")
    page = Page(out_dir, parts)
    table = layer_table(runs)
    if not table.empty:
        parts.append("<h2>Shape tuning and invariance by layer</h2>")
        page.add_table("layer_medians", "per run, condition and layer: units and medians",
                       table.drop(columns="depth"))
        page.add(layer_figures(table))
    diverse = [r.path for r in runs if r.has_diverse]
    if diverse:
        parts.append("<h2>Diverse feature visualisations</h2>")
        for t in run_tables(diverse):
            page.add_table(*t)
        page.add(comparison_figures(load_diverse_groups(diverse)))
    return page.write("artiphys comparison")


__all__ = ["METRICS", "RunInfo", "build_comparison_report", "check_runs", "layer_table"]
