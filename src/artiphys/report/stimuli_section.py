"""The report's 'Stimuli' section: the shape set at each of the run's shape sizes (a
contact sheet), and one example row of every other set the battery used (large and dim
shapes for sparsity, natural images when the run read a folder).

Shapes are drawn again from their formula (cheap, no model needed) at the sizes and
canvas stored in ``summary.json`` and the run's config; natural images are read from the
folder the config names, and the section says so when it is gone.
"""

from __future__ import annotations

import html
from pathlib import Path

from artiphys.errors import ArtiphysError
from artiphys.store.atomic import atomic_write_with

ROW = 12
"""Stimuli in an example row."""


def _sizes(summary: dict, config: dict) -> list[float]:
    """The run's shape sizes (px, at the model's input size), smallest first."""
    found = {round(float(s["size_px"]), 2) for s in (summary.get("shape_sizes") or {}).values()
             if isinstance(s, dict) and s.get("size_px")}
    if not found:
        try:
            found = {float(config.get("shape_size", ""))}
        except ValueError:   # rf:FRACTION, resolved per layer: nothing stored to draw at
            found = set()
    return sorted(found)


def _canvas(summary: dict, config: dict) -> int | None:
    """The model's input side: from summary.json, else the run's model config."""
    size = ((summary.get("model") or {}).get("input_size_px")
            or (config.get("model") or {}).get("input_size_px"))
    return int(size) if size else None


def _save(img, out_dir: Path, stem: str) -> str:
    """Write a sheet as ``<stem>.png`` and ``<stem>.pdf``; return the PNG's name."""
    for suffix, fmt in ((".png", "PNG"), (".pdf", "PDF")):
        atomic_write_with(out_dir / f"{stem}{suffix}", lambda tmp, f=fmt: img.save(tmp, format=f),
                          what="contact sheet")
    return f"{stem}.png"


def _figure(name: str, alt: str, caption: str, width: int) -> str:
    stem = name[:-4]
    return (f"<figure><img class='sheet' src='{html.escape(name, quote=True)}' "
            f"alt='{html.escape(alt, quote=True)}' style='width:{min(width, 960)}px'>"
            f"<figcaption>{html.escape(caption)} (<a href='{html.escape(stem)}.pdf'>PDF</a>)"
            "</figcaption></figure>")


def stimulus_sets(summary: dict, config: dict, canvas: int) -> list[tuple[str, str, object, dict]]:
    """``(file stem, description, StimulusSet, contact-sheet options)`` of each set shown."""
    from artiphys.stimuli.shapes import shapes

    tests = set(config.get("tests") or summary.get("tests") or [])
    out = []
    for px in _sizes(summary, config):
        out.append((f"stimuli_shapes_{px:g}", f"All {{n}} shapes of the run at {px:g} px "
                    f"(big-circle diameter) on its {canvas} px canvas, white on black "
                    "(Pasupathy & Connor 2001 as in Pospisil et al. 2018); labels: shape id "
                    "and rotation", shapes(size_px=px, canvas_px=canvas), {}))
        if "sparsity" in tests:
            out.append((f"stimuli_shapes_large_{px:g}", f"The first {ROW} of the {{n}} large "
                        f"shapes ({2 * px:g} px) of the sparsity test",
                        shapes(size_px=2 * px, canvas_px=canvas), {"limit": ROW, "ncols": ROW}))
            out.append((f"stimuli_shapes_dim_{px:g}", f"The first {ROW} of the {{n}} dim "
                        f"shapes ({px:g} px, intensity 100 of 255) of the sparsity test",
                        shapes(size_px=px, intensity=100, canvas_px=canvas),
                        {"limit": ROW, "ncols": ROW}))
    return out


def _natural(config: dict, summary: dict, canvas: int):
    """``(set or None, why not)`` of the natural images the run drew."""
    from artiphys.stimuli.natural import images

    tests = set(config.get("tests") or summary.get("tests") or [])
    folder = config.get("images_dir")
    if "natural" not in tests or not folder:
        return None, ""
    try:
        return images(folder, n=int(config.get("n_images") or ROW),
                      seed=int(config.get("control_seed") or 0), size_px=canvas), ""
    except ArtiphysError as exc:
        return None, f"The run's natural images ({folder}) cannot be shown here: {exc}."


def _names(stim) -> list[str]:
    """Short tile labels of natural images: their file names (at most 10 characters)."""
    col = next((c for c in ("file", "path") if c in stim.params.columns), None)
    if col is None:
        return [str(i) for i in range(len(stim))]
    return [Path(str(v)).stem[:10] for v in stim.params[col]]


def stimuli_section(out_dir: Path, summary: dict, config: dict,
                    canvas_px: int | None = None) -> str:
    """The section's HTML (sheets written into ``out_dir``); '' when the run shows no
    stimulus set the report knows. ``canvas_px``: the model's input side when neither
    summary.json nor the config says it (the loaded model's)."""
    import warnings

    from artiphys.stimuli.sheet import contact_sheet

    canvas = _canvas(summary, config) or canvas_px
    if canvas is None:
        return ""
    parts = ["<h2 id='stimuli'>Stimuli</h2>"]
    try:
        sets = stimulus_sets(summary, config, canvas)
    except ArtiphysError as exc:   # e.g. shapes that do not fit the canvas
        return (f"<h2 id='stimuli'>Stimuli</h2><p>The run's shapes cannot be drawn again "
                f"here: {html.escape(str(exc))}.</p>")
    natural, why = _natural(config, summary, canvas)
    if natural is not None:
        sets.append(("stimuli_natural", f"The first {ROW} of the {{n}} natural images drawn "
                     f"from {config.get('images_dir')} (seed {config.get('control_seed', 0)}), "
                     f"centre-cropped to {canvas} px", natural,
                     {"limit": ROW, "ncols": ROW, "crop": False, "labels": _names(natural)}))
    for stem, text, stim, options in sets:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)   # blank tiles are said below
            img = contact_sheet(stim, **options)
        name = _save(img, out_dir, stem)
        caption = text.format(n=len(stim)) + "."
        parts.append(_figure(name, caption.split(" (")[0], caption, img.width))
    if why:
        parts.append(f"<p>{html.escape(why)}</p>")
    return "\n".join(parts) if len(parts) > 1 else ""


__all__ = ["stimuli_section", "stimulus_sets"]
