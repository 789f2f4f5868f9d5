"""A unit's place in its layer's distributions (a unit figure of the dossier page): the
histograms of the layer's APC r, TI and lifetime sparseness with the unit marked and the
controls' medians drawn over them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from artiphys.report.figures import Figure, plt, unit_figure


@unit_figure
def unit_standing_figure(run_dir: Path, summary: dict, layer: str,
                         channel: int) -> list[tuple[str, str, Figure]]:
    """One histogram per measure the run stored for ``layer`` (``[]`` when none)."""
    from artiphys.report.dossier import MEASURES, primary_condition, stored_result, unit_value

    primary = primary_condition(summary)
    medians = (summary.get("layers") or {}).get(layer) or {}
    panels = []
    for result, var, key, name in MEASURES:
        ds = stored_result(Path(run_dir), primary, layer, result)
        if ds is None or var not in ds:
            continue
        value, values = unit_value(ds, var, int(channel))
        finite = values[np.isfinite(values)]
        if finite.size:
            panels.append((name, key, value, finite))
    if not panels:
        return []
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 2.7), squeeze=False,
                             constrained_layout=True)
    controls = [c for c in medians if c != primary]
    for k, (ax, (name, key, value, finite)) in enumerate(zip(axes[0], panels)):
        ax.hist(finite, bins=20, color="0.6", label=f"{primary} units (n = {finite.size})")
        if np.isfinite(value):
            ax.axvline(value, color="C3", lw=2, label=f"unit {channel}")
        for i, control in enumerate(controls):
            got = medians[control].get(key)
            if got is not None:
                ax.axvline(got, color=f"C{i}", ls="--", lw=1, label=f"{control} median")
        ax.set_xlabel(name)
        ax.set_ylabel("units")
        if k == 0:
            ax.legend(fontsize=6)
    ns = ", ".join(f"{name}: {finite.size}" for name, _, _, finite in panels)
    caption = (f"Distribution over the {primary} model's units of {layer} (units with a "
               f"defined value: {ns}); red: unit {channel}"
               + (", missing where it has no value" if any(not np.isfinite(p[2])
                                                          for p in panels) else "")
               + "; dashed: the controls' layer medians (summary.json).")
    return [(f"Unit {layer}:{channel} in its layer's distributions", caption, fig)]


__all__ = ["unit_standing_figure"]
