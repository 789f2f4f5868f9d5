"""Build a report (HTML page with PNG and PDF figures) from a run directory's stored results.

The report reads only what is on disk: the run's ``manifest.json`` and every netCDF result
(``*.nc``) under the run directory. It never reruns a model.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import xarray as xr

from artiphys.errors import RunStoreError
from artiphys.report.figures import figures_for, has_figures, run_figures, run_tables
from artiphys.report import unit_basics  # noqa: F401  (registers its unit figure)
from artiphys.report.page import Page as _Page


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
                 max_per_kind: int = 200, max_dossiers: int = 100,
                 model: bool = True) -> Path:
    """Write ``report/index.html`` (+ one PNG and PDF per figure) for ``run_dir``.

    The page opens with the model (its sublayer table, first-layer kernels and, for the
    analytic models, activation maps to a grating; ``model=False`` leaves it out) and the
    stimuli, then the run-level overview, the units with a dossier page
    (``units/<layer>_<channel>.html``; at most ``max_dossiers``, the battery's chosen
    units first, the rest listed), each stored result's own figures (at most
    ``max_per_kind`` results of each analysis kind; the rest are listed), the provenance
    and the summary. Returns the path of ``index.html``.
    """
    from artiphys.report.page import parallel_saves

    with parallel_saves():  # figures are drawn and written by worker processes
        page = _build(Path(run_dir), out_dir, max_per_kind, max_dossiers, model)
    return page.write()


def _build(run_dir: Path, out_dir, max_per_kind: int, max_dossiers: int, model: bool):
    """Every section of :func:`build_report`; returns the index page, not yet written."""
    from artiphys.report.dossier import (capped, dossier_href, dossier_units, units_section,
                                         write_dossiers)
    from artiphys.report.model_section import model_section, run_config
    from artiphys.report.results import example_units
    from artiphys.report.stimuli_section import stimuli_section

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunStoreError(f"run directory {run_dir} does not exist; pass the --out of a run")
    out_dir = Path(out_dir) if out_dir else run_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    units, left_out = capped(dossier_units(run_dir, summary), max_dossiers)
    links = {(la, c): dossier_href(la, c) for la, chans in units.items() for c in chans}
    parts = [f"<h1>artiphys report: {html.escape(run_dir.name)}</h1>"]
    parts += _status_notes(manifest, summary)
    page = _Page(out_dir, parts, links=links)
    config = run_config(run_dir)
    spec = None
    if model and config.get("model"):
        spec = model_section(run_dir, summary, page, example_units(run_dir))
    parts.append(stimuli_section(out_dir, summary, config, spec and
                                 spec.preprocessing.input_size_px))

    overview = run_figures(run_dir, summary)
    tables = run_tables([run_dir])
    if overview or tables:
        parts.append("<h2 id='overview'>Overview</h2>")
        for table in tables:
            page.add_table(*table)
        page.add(overview)
    parts.append(units_section(units, summary, left_out))
    _result_sections(run_dir, summary, page, max_per_kind)
    if manifest:
        parts.append("<h2 id='provenance'>Provenance</h2><pre>" + html.escape(json.dumps(
            _provenance(manifest), indent=2, default=str)) + "</pre><p>Every step's digest: "
            "<code>manifest.json</code> in the run directory.</p>")
    if summary:
        parts.append("<h2 id='summary'>Summary</h2><pre>" + html.escape(json.dumps(summary,
                     indent=2)) + "</pre>")
    if page.n_fig == 0:
        parts.append("<p>No stored result of a kind the report knows how to draw.</p>")
    write_dossiers(run_dir, out_dir, summary, units)
    parts.insert(1, _contents(parts))
    return page


def _contents(parts: list[str]) -> str:
    """A line of links to the page's sections that have an id."""
    import re

    found = re.findall(r"<h2 id='([\w-]+)'>([^<]+)</h2>", "\n".join(parts))
    return ("<nav>" + " | ".join(f"<a href='#{i}'>{html.escape(t)}</a>" for i, t in found) +
            "</nav>") if found else ""


def _result_sections(run_dir: Path, summary: dict, page, max_per_kind: int) -> None:
    """Each stored result's own figures, in the layers' order, capped per kind."""
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
            page.parts.append(f"<h2>{html.escape(_title(kind, meta, summary))}</h2>"
                              f"<p class='file'>{html.escape(str(path.relative_to(run_dir)))}"
                              "</p>")
            page.add(figs)
    if skipped:
        page.parts.append("<p>Not drawn (over " + str(max_per_kind) + " results of a kind): " +
                          ", ".join(f"{n} {html.escape(k)}" for k, n in sorted(skipped.items()))
                          + " results; open them with <code>xarray.open_dataset</code>.</p>")
