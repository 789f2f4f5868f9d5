"""Report pages: numbered figures (PNG + PDF) and tables, filled into the Jinja2 templates
of ``report/templates/`` (one per page kind).

No SVG: each format draws the figure again, and a third draw made the report a third
slower for a format the PDF already covers (vector, zoomable)."""

from __future__ import annotations

import html
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


def save_figure(fig, stem: Path) -> list[str]:
    """Write ``fig`` as ``<stem>.png`` and ``<stem>.pdf``; close it; return the suffixes."""
    suffixes = [".png", ".pdf"]
    for suffix in suffixes:
        tmp = stem.with_name(stem.name + ".tmp" + suffix)
        fig.savefig(tmp, dpi=130 if suffix == ".png" else None)
        tmp.replace(stem.with_name(stem.name + suffix))
    plt.close(fig)
    return suffixes


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
