"""Unit dossiers: one page per example unit of a run (``report/units/<layer>_<channel>.html``).

The units are the battery's example units (:func:`artiphys.report.results.example_units`,
units of interest included) and every unit named by a stored maximal-image, diverse-set
or top-patches result (its meta ``unit``: comma-separated channels). A dossier says why
the unit was chosen, where it stands in its layer (its APC r, TI and lifetime sparseness
against the layer's medians and the controls' medians of ``summary.json``), then shows
every unit-level figure of the registry (:func:`artiphys.report.figures.unit_figures`).
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

VISUALISED = {"synthesis": "maximal image", "diverse": "diverse set",
              "top_patches": "top natural-image patches"}
"""Result kinds whose meta ``unit`` names units that get a dossier, and what they hold."""

MEASURES = (("apc", "r", "apc_r_median", "APC fit r"),
            ("ti", "ti", "ti_median", "translation invariance (TI)"),
            ("sparsity", "lifetime_sparseness", "sparsity_median", "lifetime sparseness"))
"""``(result, variable, summary key, name)`` of each measure of a unit's standing."""


def unit_stem(layer: str, channel: int) -> str:
    """``<file_label(layer)>_<channel>``: the file name (no suffix) of a unit's dossier."""
    from artiphys.store.rundir import file_label

    return f"{file_label(layer)}_{int(channel)}"


def dossier_href(layer: str, channel: int) -> str:
    """The dossier's address relative to ``index.html``."""
    return f"units/{unit_stem(layer, channel)}.html"


def _layer_order(summary: dict, layers) -> list[str]:
    order = list(summary.get("layer_order") or [])
    return [la for la in order if la in layers] + sorted(la for la in layers if la not in order)


def dossier_units(run_dir: Path, summary: dict) -> dict[str, dict[int, list[str]]]:
    """``{layer: {channel: [why it was chosen, ...]}}``, layers in execution order and
    channels ascending."""
    from artiphys.report.results import example_units, run_results

    found: dict[str, dict[int, list[str]]] = {}
    shown: dict[tuple[str, int], list[str]] = {}
    for layer, units in example_units(run_dir).items():
        for unit in units:
            reasons = found.setdefault(str(layer), {}).setdefault(int(unit["channel"]), [])
            reasons.append(str(unit.get("reason") or "example unit"))
    for result in run_results(run_dir):
        unit, layer = result.meta.get("unit"), result.meta.get("layer")
        if result.kind not in VISUALISED or not unit or not layer:
            continue
        for item in str(unit).split(","):
            if item.strip().isdigit():
                kinds = shown.setdefault((str(layer), int(item)), [])
                if VISUALISED[result.kind] not in kinds:
                    kinds.append(VISUALISED[result.kind])
    for (layer, channel), kinds in shown.items():
        found.setdefault(layer, {}).setdefault(channel, []).append(
            "visualised: " + ", ".join(kinds))
    return {la: dict(sorted(found[la].items())) for la in _layer_order(summary, found)}


def capped(units: dict[str, dict[int, list[str]]], most: int):
    """``(kept, left out)``: at most ``most`` units, the battery's chosen units first (in
    layer order), then the units that are only visualised (a ``synthesis = "all"`` run
    visualises every unit); both in ``dossier_units``' form."""
    def chosen(reasons):
        return any(not r.startswith("visualised") for r in reasons)

    order = [(la, c) for pick in (True, False) for la, chans in units.items()
             for c, why in chans.items() if chosen(why) == pick]
    keep = set(order[:max(0, int(most))])
    kept, left = {}, {}
    for la, chans in units.items():
        for c, why in chans.items():
            (kept if (la, c) in keep else left).setdefault(la, {})[c] = why
    return kept, left


def primary_condition(summary: dict) -> str:
    return (summary.get("conditions") or ["trained"])[0]


def stored_result(run_dir: Path, condition: str, layer: str, result: str):
    """The stored dataset of ``result`` for ``condition`` and ``layer`` (None if absent)."""
    from artiphys.report.results import run_results

    found = run_results(run_dir, condition=condition, layer=layer)
    exact = [r for r in found if r.meta.get("result") == result]
    pick = exact or [r for r in found if r.kind == result and "result" not in r.meta]
    return pick[-1].load() if pick else None


def unit_value(ds, var: str, channel: int):
    """``(value, values of the layer)`` of unit ``channel`` in ``ds[var]`` (by the
    ``channel`` coordinate, else the unit's position); value NaN when it is missing."""
    values = np.asarray(ds[var].values, float)
    if values.ndim != 1:
        return np.nan, values
    if "channel" in ds[var].coords:
        hit = np.flatnonzero(np.asarray(ds[var]["channel"].values) == channel)
    else:
        hit = np.array([channel]) if 0 <= channel < values.size else np.array([], int)
    return (float(values[hit[0]]) if hit.size else np.nan), values


def _position(ds, channel: int) -> str:
    if ds is None or not {"y", "x", "channel"} <= set(ds.coords):
        return ""
    hit = np.flatnonzero(np.asarray(ds["channel"].values) == channel)
    if not hit.size:
        return ""
    return f"the unit at y = {int(ds['y'].values[hit[0]])}, x = {int(ds['x'].values[hit[0]])} " \
           "of its map"


def layer_standing(run_dir: Path, summary: dict, layer: str, channels) -> tuple[dict, str]:
    """Per channel a table of where the unit stands in ``layer``, and the unit's position.

    Returns ``({channel: (DataFrame or None, position text)}, caption)``. Columns: the
    measure, the unit's value, its percentile among the layer's units with a value (and
    their n), the layer median of the run's model (``summary.json``; else computed from
    the stored result) and each control's layer median.
    """
    primary = primary_condition(summary)
    medians = (summary.get("layers") or {}).get(layer) or {}
    controls = [c for c in medians if c != primary]
    stored = {m[0]: stored_result(run_dir, primary, layer, m[0]) for m in MEASURES}
    position_ds = next((ds for ds in stored.values() if ds is not None), None)
    out = {}
    for channel in channels:
        rows = []
        for result, var, key, name in MEASURES:
            ds = stored[result]
            if ds is None or var not in ds:
                continue
            value, values = unit_value(ds, var, channel)
            finite = values[np.isfinite(values)]
            pct = (100.0 * np.mean(finite < value) if finite.size and np.isfinite(value)
                   else np.nan)
            own = medians.get(primary, {}).get(key)
            row = {"measure": name, "this unit": value,
                   "percentile in layer": pct, "n units with a value": int(finite.size),
                   f"layer median ({primary})": own if own is not None else (
                       float(np.median(finite)) if finite.size else np.nan)}
            for control in controls:
                got = medians[control].get(key)
                row[f"{control} median"] = np.nan if got is None else got
            rows.append(row)
        out[channel] = (pd.DataFrame(rows) if rows else None, _position(position_ds, channel))
    caption = (f"The unit's value in the {primary} model's stored results of this layer; "
               "percentile: the share of the layer's units (those with a defined value) "
               "below it; medians over units from summary.json for the model and each "
               "control (untrained: random init; weight-shuffled: weights permuted; "
               "shuffle: responses permuted across stimuli). '-': not computed or "
               "undefined (e.g. TI where too few positions lie in the RF).")
    return out, caption


def write_dossiers(run_dir: Path, out_dir: Path, summary: dict,
                   units: dict[str, dict[int, list[str]]]) -> list[Path]:
    """Write every unit's dossier under ``out_dir/units``; return their paths."""
    from artiphys.report.figures import unit_figures
    from artiphys.report.page import Page, render
    from artiphys.store.atomic import atomic_write_text

    if not units:
        return []
    folder = out_dir / "units"
    folder.mkdir(parents=True, exist_ok=True)
    paths = (summary.get("layer_paths") or {})
    written = []
    for layer, channels in units.items():
        standing, caption = layer_standing(run_dir, summary, layer, list(channels))
        for channel, reasons in channels.items():
            stem = unit_stem(layer, channel)
            page = Page(folder, prefix=f"{stem}_fig")
            page.add(unit_figures(run_dir, summary, layer, channel))
            table, where = standing[channel]
            text = render("unit.html", title=f"artiphys unit {layer}:{channel}", layer=layer,
                          channel=channel, path=paths.get(layer), where=where,
                          reasons=reasons, standing_caption=caption,
                          standing=(table.to_html(index=False, float_format="%.3g",
                                                  na_rep="-") if table is not None else ""),
                          figures="\n".join(page.parts))
            written.append(atomic_write_text(folder / f"{stem}.html", text))
    return written


def units_section(units: dict[str, dict[int, list[str]]], summary: dict,
                  left_out: dict | None = None) -> str:
    """The index's 'Units' section: every dossier, grouped by layer, and the units left
    without one (``left_out``, over the cap of :func:`capped`)."""
    if not units and not left_out:
        return ""
    paths = summary.get("layer_paths") or {}
    parts = ["<h2 id='units'>Units</h2><p>One page per example unit (the battery's choices "
             "and every unit with a stored visualisation): why it was chosen, where it stands "
             "in its layer, and its figures.</p>"]
    for layer, channels in units.items():
        path = paths.get(layer)
        where = f" (<code>{html.escape(path)}</code>)" if path and path != layer else ""
        items = "".join(
            f"<li><a href='{html.escape(dossier_href(layer, c), quote=True)}'>"
            f"{html.escape(layer)}:{c}</a>: {html.escape('; '.join(why))}</li>"
            for c, why in channels.items())
        parts.append(f"<h3>{html.escape(layer)}{where}</h3><ul class='units'>{items}</ul>")
    if left_out:
        n = sum(len(c) for c in left_out.values())
        parts.append(f"<p>{n} more visualised unit(s) have no page (over the report's "
                     "max_dossiers): " + "; ".join(
                         f"{html.escape(la)}: {', '.join(map(str, chans))}"
                         for la, chans in left_out.items()) + ".</p>")
    return "\n".join(parts)


__all__ = ["MEASURES", "capped", "dossier_href", "dossier_units", "layer_standing", "primary_condition",
           "stored_result", "unit_stem", "unit_value", "units_section", "write_dossiers"]
