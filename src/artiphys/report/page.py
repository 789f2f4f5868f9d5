"""Report pages: numbered figures (PNG + PDF) and tables, filled into the Jinja2 templates
of ``report/templates/`` (one per page kind).

No SVG: each format draws the figure again, and a third draw made the report a third
slower for a format the PDF already covers (vector, zoomable)."""

from __future__ import annotations

import html
import sys
from pathlib import Path

import matplotlib.pyplot as plt

from artiphys.store.atomic import atomic_write_text

TEMPLATES = Path(__file__).with_name("templates")


def render(template: str, **values) -> str:
    """The page ``templates/<template>`` filled with ``values`` (autoescaped)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES),
                             autoescape=jinja2.select_autoescape(["html"]),
                             undefined=jinja2.StrictUndefined)
    return env.get_template(template).render(**values)


def _channel(value) -> int | None:
    """A table cell's channel as an int (None when it is not a whole number)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return int(f) if f == int(f) else None


SUFFIXES = (".png", ".pdf")
_SAVER: list = []  # the active FigureSaver of parallel_saves(), if any


def _write_figure(fig, stem: Path) -> None:
    for suffix in SUFFIXES:
        tmp = stem.with_name(stem.name + ".tmp" + suffix)
        fig.savefig(tmp, dpi=130 if suffix == ".png" else None)
        tmp.replace(stem.with_name(stem.name + suffix))
    plt.close(fig)


def _write_pickled(data: bytes, stem: str) -> None:
    """Worker side of :class:`FigureSaver`."""
    import pickle

    import matplotlib

    matplotlib.use("Agg")
    _write_figure(pickle.loads(data), Path(stem))


class FigureSaver:
    """Draws and writes figures in worker processes (drawing PNG and PDF is most of a
    report's time), so that they overlap each other and the building of the next ones.
    Figures that cannot be pickled are written in this process."""

    def __init__(self, workers: int):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # Forked (as torch's DataLoader workers are): a spawned worker would import the
        # caller's main script again, which breaks scripts without a __main__ guard.
        self.pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"))
        self.futures: list = []

    def save(self, fig, stem: Path) -> None:
        import pickle

        try:
            data = pickle.dumps(fig)
        except (pickle.PicklingError, TypeError, AttributeError):
            _write_figure(fig, stem)
            return
        plt.close(fig)
        self.futures.append(self.pool.submit(_write_pickled, data, str(stem)))

    def close(self) -> None:
        """Wait for every figure (a worker's error is raised here) and stop the workers."""
        try:
            for future in self.futures:
                future.result()
        finally:
            self.pool.shutdown(cancel_futures=True)


class parallel_saves:  # noqa: N801 - used as a context manager, like contextlib's
    """``with parallel_saves(workers):`` every :func:`save_figure` inside goes to a
    :class:`FigureSaver` of ``workers`` processes (default: the CPU count, at most 4;
    one, or not on Linux: written in this process); all are written when the block ends."""

    def __init__(self, workers: int | None = None):
        import multiprocessing as mp
        import os

        self.workers = workers if workers is not None else min(4, os.cpu_count() or 1)
        if "fork" not in mp.get_all_start_methods() or sys.platform != "linux":
            self.workers = 1  # no fork (macOS forks badly, Windows cannot): this process

    def __enter__(self):
        if self.workers > 1 and not _SAVER:
            _SAVER.append(FigureSaver(self.workers))
            self.owner = True
        else:
            self.owner = False
        return self

    def __exit__(self, *exc) -> None:
        if self.owner:
            _SAVER.pop().close()


def save_figure(fig, stem: Path) -> list[str]:
    """Write ``fig`` as ``<stem>.png`` and ``<stem>.pdf`` (by a worker inside
    :class:`parallel_saves`); close it; return the suffixes."""
    if _SAVER:
        _SAVER[-1].save(fig, stem)
    else:
        _write_figure(fig, stem)
    return list(SUFFIXES)


class Page:
    """An HTML page of numbered figures and tables, its files under ``out_dir``.

    ``prefix``: the start of every figure file name (``fig01.png``, or
    ``<unit>_fig01.png`` for a dossier); ``links``: ``{(layer, channel): href}`` of the
    unit dossiers, so that table cells of those units link to them.
    """

    def __init__(self, out_dir: Path, parts: list[str] | None = None, *, prefix: str = "fig",
                 links: dict | None = None):
        self.out_dir, self.parts, self.n_fig = out_dir, parts if parts is not None else [], 0
        self.prefix, self.links = prefix, links or {}

    def add(self, figs) -> None:
        for title, caption, fig in figs:
            self.n_fig += 1
            stem = f"{self.prefix}{self.n_fig:02d}"
            written = save_figure(fig, self.out_dir / stem)
            alt = title.strip() or f"Figure {self.n_fig}"
            other = ", ".join(f"<a href='{stem}{s}'>{s[1:].upper()}</a>" for s in written[1:])
            self.parts.append(
                f"<figure><img src='{stem}.png' alt='{html.escape(alt, quote=True)}'>"
                f"<figcaption><b>Figure {self.n_fig}. {html.escape(title)}.</b> "
                f"{html.escape(caption)} ({other})</figcaption></figure>")

    def table_html(self, table) -> str:
        """``table`` as HTML; with columns ``layer`` and ``channel``, the cells of rows whose
        unit has a dossier link to it."""
        cols = set(map(str, table.columns))
        if not (self.links and {"layer", "channel"} <= cols):
            return table.to_html(index=False, float_format="%.3g", na_rep="-")
        shown = table.astype(object)  # cells become link strings, whatever their dtype
        for col in shown.columns:
            if table[col].dtype.kind == "f":
                shown[col] = [("-" if v != v else f"{v:.3g}") for v in shown[col]]
        for i, (layer, channel) in enumerate(zip(table["layer"], table["channel"])):
            href = self.links.get((str(layer), _channel(channel)))
            for col in ("layer", "channel"):
                text = html.escape(str(shown[col].iloc[i]))
                shown.iloc[i, shown.columns.get_loc(col)] = (
                    f"<a href='{html.escape(href, quote=True)}'>{text}</a>" if href else text)
        others = [c for c in shown.columns if c not in ("layer", "channel")]
        for col in others:
            shown[col] = [html.escape(str(v)) for v in shown[col]]
        return shown.to_html(index=False, escape=False, na_rep="-")

    def add_table(self, stem: str, caption: str, table) -> None:
        """Show ``table`` (a DataFrame) and write it as ``<stem>.csv``."""
        tmp = self.out_dir / f"{stem}.csv.tmp"
        table.to_csv(tmp, index=False, float_format="%.4g")
        tmp.replace(self.out_dir / f"{stem}.csv")
        self.parts.append(f"<p><b>{html.escape(stem)}</b> ({html.escape(caption)}; "
                          f"<a href='{stem}.csv'>CSV</a>)</p><div class='wide'>" +
                          self.table_html(table) + "</div>")

    def write(self, title: str = "artiphys report", name: str = "index.html") -> Path:
        """Write the page as ``out_dir/<name>``; return its path."""
        index = self.out_dir / name
        atomic_write_text(index, render("page.html", title=title, body="\n".join(self.parts)))
        return index
