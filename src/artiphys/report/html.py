"""Build a report (HTML page with PNG and PDF figures) from a run directory's stored results.

The report reads only what is on disk: the run's ``manifest.json`` and every netCDF result
(``*.nc``) under the run directory. It never reruns a model.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib.pyplot as plt
import xarray as xr

from artiphys.errors import RunStoreError
from artiphys.report.figures import figures_for, has_figures, run_figures, run_tables


def _results(run_dir: Path) -> list[tuple[Path, str, dict]]:
    """``(path, analysis kind, meta)`` of every current result of ``run_dir``."""
    from artiphys.report.results import run_results

    return [(r.path, r.kind, r.meta) for r in run_results(run_dir)]


def _ordered(results, summary: dict) -> list:
    """Results in the layers' execution order (``summary['layer_order']``), then by
    condition in the summary's order; results of other layers keep their order, last."""
    layers = list(summary.get("layer_order") or summary.get("layers") or [])
    conds = list(summary.get("conditions") or [])

    def key(item):
        meta = item[2]
        la, cond = meta.get("layer"), meta.get("condition")
        return (layers.index(la) if la in layers else len(layers),
                conds.index(cond) if cond in conds else len(conds))

    return sorted(results, key=key)


def _title(kind: str, meta: dict, summary: dict) -> str:
    """``"<layer> (<module path>): <kind>, <condition>"`` for a section heading."""
    layer = meta.get("layer")
    path = (summary.get("layer_paths") or {}).get(layer) if layer else None
    where = f"{layer} ({path})" if path and path != layer else (layer or "run")
    cond = f", {meta['condition']}" if meta.get("condition") else ""
    unit = f", unit(s) {meta['unit']}" if meta.get("unit") else ""
    return f"{where}: {kind.replace('_', ' ')}{cond}{unit}"


def _provenance(manifest: dict) -> dict:
    """The manifest with each experiment's step digest lists replaced by their counts."""
    out = {k: v for k, v in manifest.items() if k != "experiments"}
    out["experiments"] = {
        kind: {k: (f"{len(v)} steps" if isinstance(v, list) and "steps" in k else v)
               for k, v in entry.items()}
        for kind, entry in manifest.get("experiments", {}).items()}
    return out


def _status_notes(manifest: dict, summary: dict) -> list[str]:
    """A banner when an experiment of the run is not finished, and what was not run."""
    out = []
    unfinished = {k: v.get("status") for k, v in manifest.get("experiments", {}).items()
                  if v.get("status") != "finished"}
    if unfinished:
        out.append("<p class='banner'><b>This run is unfinished:</b> " + ", ".join(
            f"{html.escape(k)} is {html.escape(str(v))}" for k, v in unfinished.items()) +
            ". The report shows what was stored; resume the run with <code>--resume</code>."
            "</p>")
    if summary.get("skipped"):
        out.append("<h2>Not run</h2><ul>" + "".join(
            f"<li>{html.escape(str(s))}</li>" for s in summary["skipped"]) + "</ul>")
    return out


def build_report(run_dir: str | Path, out_dir: str | Path | None = None, *,
                 max_per_kind: int = 200) -> Path:
    """Write ``report/index.html`` (+ one PNG and PDF per figure) for ``run_dir``.

    Run-level overview figures come first, then each stored result's own figures (at most
    ``max_per_kind`` results of each analysis kind; the rest are listed). Returns the path
    of ``index.html``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunStoreError(f"run directory {run_dir} does not exist; pass the --out of a run")
    out_dir = Path(out_dir) if out_dir else run_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}

    parts = [f"<h1>artiphys report: {html.escape(run_dir.name)}</h1>"]
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    parts += _status_notes(manifest, summary)
    if manifest:
        parts.append("<h2>Provenance</h2><pre>" + html.escape(json.dumps(
            _provenance(manifest), indent=2, default=str)) + "</pre><p>Every step's digest: "
            "<code>manifest.json</code> in the run directory.</p>")
    page = _Page(out_dir, parts)
    add = page.add

    overview = run_figures(run_dir, summary)
    tables = run_tables([run_dir])
    if overview or tables:
        parts.append("<h2>Overview</h2>")
        for table in tables:
            page.add_table(*table)
        add(overview)
    drawn: dict[str, int] = {}
    skipped: dict[str, int] = {}
    for path, kind, meta in _ordered(_results(run_dir), summary):
        if not has_figures(kind):
            continue
        if drawn.get(kind, 0) >= max_per_kind:
            skipped[kind] = skipped.get(kind, 0) + 1
            continue
        with xr.open_dataset(path) as ds:
            figs = figures_for(ds.load())
        if figs:
            drawn[kind] = drawn.get(kind, 0) + 1
            parts.append(f"<h2>{html.escape(_title(kind, meta, summary))}</h2>"
                         f"<p class='file'>{html.escape(str(path.relative_to(run_dir)))}</p>")
            add(figs)
    if skipped:
        parts.append("<p>Not drawn (over " + str(max_per_kind) + " results of a kind): " +
                     ", ".join(f"{n} {html.escape(k)}" for k, n in sorted(skipped.items())) +
                     " results; open them with <code>xarray.open_dataset</code>.</p>")
    if summary:
        parts.append("<h2>Summary</h2><pre>" + html.escape(json.dumps(summary, indent=2)) +
                     "</pre>")
    if page.n_fig == 0:
        parts.append("<p>No stored result of a kind the report knows how to draw.</p>")
    return page.write()


class _Page:
    """An HTML page of numbered figures (PNG + PDF beside it) under ``out_dir``."""

    def __init__(self, out_dir: Path, parts: list[str]):
        self.out_dir, self.parts, self.n_fig = out_dir, parts, 0

    def add(self, figs) -> None:
        for title, caption, fig in figs:
            self.n_fig += 1
            stem = f"fig{self.n_fig:02d}"
            fig.savefig(self.out_dir / f"{stem}.png", dpi=130)
            fig.savefig(self.out_dir / f"{stem}.pdf")
            plt.close(fig)
            self.parts.append(
                f"<figure><img src='{stem}.png' alt='{html.escape(title, quote=True)}' "
                f"style='max-width:100%'>"
                f"<figcaption><b>Figure {self.n_fig}. {html.escape(title)}.</b> "
                f"{html.escape(caption)} (<a href='{stem}.pdf'>PDF</a>)</figcaption></figure>")

    def add_table(self, stem: str, caption: str, table) -> None:
        """Show ``table`` (a DataFrame) and write it as ``<stem>.csv``."""
        tmp = self.out_dir / f"{stem}.csv.tmp"
        table.to_csv(tmp, index=False, float_format="%.4g")
        tmp.replace(self.out_dir / f"{stem}.csv")
        self.parts.append(f"<p><b>{html.escape(stem)}</b> ({html.escape(caption)}; "
                          f"<a href='{stem}.csv'>CSV</a>)</p><div class='wide'>" +
                          table.to_html(index=False, float_format="%.3g", na_rep="-") +
                          "</div>")

    def write(self) -> Path:
        page = ("<!doctype html><html><head><meta charset='utf-8'><title>artiphys report"
                "</title><style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}"
                "figcaption{font-size:90%;margin-bottom:2em}.banner{background:#fee;padding:"
                ".6em;border:1px solid #c66}.file{color:#777;font-size:75%}"
                ".wide{overflow-x:auto}pre{font-size:80%;"
                "background:#f5f5f5;padding:1em;overflow:auto}table{font-size:80%;"
                "border-collapse:collapse}td,th{padding:2px 6px;border-bottom:1px solid #ddd}"
                "</style></head><body>" + "\n".join(self.parts) + "</body></html>")
        index = self.out_dir / "index.html"
        tmp = index.with_suffix(".html.tmp")
        tmp.write_text(page)
        tmp.replace(index)
        return index


def build_comparison_report(run_dirs, out_dir: str | Path) -> Path:
    """Write ``out_dir/index.html`` comparing the diverse results of several runs (e.g. one
    run per model: trained and control conditions, layers by receptive-field size), with its
    tables as CSV beside it (``diverse_summary.csv``, ``diverse_condition_tests.csv``).
    Returns the path of ``index.html``."""
    from artiphys.report.diverse_figures import comparison_figures, load_diverse_groups

    runs = [Path(r) for r in run_dirs]
    missing = [str(r) for r in runs if not r.is_dir()]
    if missing:
        raise RunStoreError(f"run directory {missing[0]} does not exist; pass the --out of "
                            "a run")
    tables = run_tables(runs)
    if not tables:
        raise RunStoreError("none of these runs holds diverse results (artiphys diverse "
                            "... --out RUN); nothing to compare")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = ["<h1>artiphys comparison: diverse feature visualisations</h1>",
             "<p>Runs: " + ", ".join(html.escape(str(r)) for r in runs) + "</p>",
             "<h2>Summary</h2>"]
    page = _Page(out_dir, parts)
    for table in tables:
        page.add_table(*table)
    page.add(comparison_figures(load_diverse_groups(runs)))
    return page.write()
