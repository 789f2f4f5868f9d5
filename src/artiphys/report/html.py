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
from artiphys.report.figures import figures_for


def _results(run_dir: Path) -> list[tuple[Path, xr.Dataset]]:
    found = []
    for path in sorted(run_dir.rglob("*.nc")):
        if any(part.startswith((".", "_")) for part in path.relative_to(run_dir).parts):
            continue
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            if ds.attrs.get("analysis"):
                found.append((path, ds.load()))
    return found


def build_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write ``report/index.html`` (+ one PNG and PDF per figure) for ``run_dir``.

    Returns the path of ``index.html``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunStoreError(f"run directory {run_dir} does not exist; pass the --out of a run")
    out_dir = Path(out_dir) if out_dir else run_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}

    parts = [f"<h1>artiphys report: {html.escape(run_dir.name)}</h1>"]
    if manifest:
        parts.append("<h2>Provenance</h2><pre>" + html.escape(json.dumps(manifest, indent=2,
                                                                         default=str)) + "</pre>")
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        parts.append("<h2>Summary</h2><pre>" + html.escape(summary_path.read_text()) + "</pre>")
    n_fig = 0
    for path, ds in _results(run_dir):
        rel = path.relative_to(run_dir)
        figs = figures_for(ds)
        if not figs:
            continue
        parts.append(f"<h2>{html.escape(str(rel))}</h2>")
        for title, caption, fig in figs:
            n_fig += 1
            stem = f"fig{n_fig:02d}"
            fig.savefig(out_dir / f"{stem}.png", dpi=130)
            fig.savefig(out_dir / f"{stem}.pdf")
            plt.close(fig)
            parts.append(
                f"<figure><img src='{stem}.png' style='max-width:100%'>"
                f"<figcaption><b>Figure {n_fig}. {html.escape(title)}.</b> {html.escape(caption)} "
                f"(<a href='{stem}.pdf'>PDF</a>)</figcaption></figure>")
    if n_fig == 0:
        parts.append("<p>No stored result of a kind the report knows how to draw.</p>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>artiphys report</title>"
            "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}"
            "figcaption{font-size:90%;margin-bottom:2em}pre{font-size:80%;background:#f5f5f5;"
            "padding:1em;overflow:auto}</style></head><body>" + "\n".join(parts) + "</body></html>")
    index = out_dir / "index.html"
    tmp = index.with_suffix(".html.tmp")
    tmp.write_text(page)
    tmp.replace(index)
    return index
