"""Report figures of maximal images, their probes and the top/bottom natural-image patches.

* ``analysis="synthesis"`` (the battery's ``maximal_images`` step, ``visualize``): a
  labelled gallery of the maximal images (Yosinski et al. 2015 as used by Bandi & Kinley).
  The stored images are what the network saw before its input normalisation: RGB in
  [0, 1] (:mod:`artiphys.synthesis.param`), so they are drawn as they are (clipped to
  [0, 1]); gray syntheses are drawn with a gray colour map, single-colour ones (the other
  two channels exactly 0) as the RGB image the network saw.
* ``probes`` (:func:`artiphys.synthesis.probes.probe_responses`): response vs zoom factor
  and rotation, and to colour variants, with the noise, white and mid-gray baselines as
  horizontal lines (Bandi & Kinley Figs. 3-6).
* ``analysis="top_patches"``: per unit, the whole image with the RF square, the RF patch,
  its visualised feature and the response; excitatory above, suppressive below
  (Pospisil et al. 2018, Figs. 9-12).
* :func:`synthesis_unit_figures` (a :func:`~artiphys.report.figures.unit_figure`): all
  three for one unit of a run, for its dossier page.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.patches import Rectangle

from artiphys.report.figures import Figure, figure_for, plt, unit_figure

MAX_GALLERY = 64        # images in one gallery figure (the rest are counted in the caption)
MAX_PATCH_UNITS = 8     # units drawn from one top-patches result (the dossier shows each)
BASELINES = (("noise", "C2", ":"), ("white", "C1", "--"), ("gray", "0.45", "-."))
STATS = (("max", "max over the channel's map"), ("mean", "mean over the channel's map"))


def _settings(ds: xr.Dataset) -> dict:
    try:
        return json.loads(ds.attrs.get("settings_json", "{}"))
    except (TypeError, ValueError):
        return {}


def _off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


# ---- maximal images ---------------------------------------------------------------------

def image_colour(image: np.ndarray, declared: str | None = None) -> str:
    """How a ``(3, H, W)`` synthesis was made: ``"all"``, ``"gray"`` or ``"r"``/``"g"``/
    ``"b"`` (the settings' ``param.color`` when given, else read from the pixels)."""
    if declared in ("all", "gray", "r", "g", "b"):
        return declared
    if np.array_equal(image[0], image[1]) and np.array_equal(image[1], image[2]):
        return "gray"
    live = [c for c, ch in zip("rgb", image) if np.any(ch != 0)]
    return live[0] if len(live) == 1 else "all"


def show_image(ax, image: np.ndarray, colour: str = "all") -> None:
    """Draw a ``(3, H, W)`` image in [0, 1] (clipped); gray syntheses with a gray map."""
    img = np.clip(np.asarray(image, float), 0.0, 1.0)
    if colour == "gray":
        ax.imshow(img[0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(np.moveaxis(img, 0, -1), interpolation="nearest")
    _off(ax)


def gallery_labels(ds: xr.Dataset, natural: dict | None = None) -> list[str]:
    """``"layer:channel"`` and the final activation (and the best natural image's response
    where ``natural`` maps a channel to it) under each image."""
    layer = str(ds.attrs.get("layer", ""))
    whole_layer = _settings(ds).get("objective_kind") == "layer"
    labels = []
    for u, final in zip(ds["unit"].values, ds["final"].values):
        text = f"{layer}:{int(u)}" if layer else str(int(u))
        if whole_layer:
            text = f"{layer} (layer mean)"
        text += f"\nfinal {float(final):.3g}"
        if natural and int(u) in natural:
            text += f"\nnatural {natural[int(u)]:.3g}"
        labels.append(text)
    return labels


def gallery(ds: xr.Dataset, natural: dict | None = None, columns: int = 8) -> Figure:
    """The maximal images of a ``synthesis`` result in a grid, labelled (:func:`gallery_labels`)."""
    n = min(ds.sizes["unit"], MAX_GALLERY)
    cols = min(columns, n)
    rows = -(-n // cols)
    tile = 1.45 if n > 2 else 2.2
    fig, axes = plt.subplots(rows, cols, figsize=(tile * cols, (tile + 0.3) * rows), squeeze=False,
                             constrained_layout=True)
    declared = (_settings(ds).get("param") or {}).get("color")
    images = ds["images"].values
    for ax, img, label in zip(axes.flat, images[:n], gallery_labels(ds, natural)):
        colour = image_colour(img, declared)
        show_image(ax, img, colour)
        tag = "" if colour == "all" else f" ({colour.upper()} only)" if colour in "rgb" \
            else " (gray)"
        ax.set_xlabel(label + tag, fontsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig


def _synthesis_caption(ds: xr.Dataset, natural: dict | None) -> str:
    s = _settings(ds)
    n_total = ds.sizes["unit"]
    n = min(n_total, MAX_GALLERY)
    param = s.get("param") or {}
    recipe = s.get("recipe") or {}
    kind = s.get("objective_kind") or "unit"
    read = {"unit": "the centre unit of the channel's map", "channel": "the mean over the "
            "channel's map", "layer": "the mean over the layer"}.get(kind, kind)
    layer = ds.attrs.get("layer", "the layer")
    count = f"{n} of {n_total}" if n < n_total else f"all {n_total}"
    shown = (f"The maximal image of {layer}:{int(ds['unit'].values[0])}" if n_total == 1
             else f"Maximal images of {count} units of {layer}, each labelled layer:channel")
    text = (f"{shown}. Objective: {read}"
            f"{' (negated: most suppressive images)' if s.get('negate') else ''}; "
            f"{param.get('kind', 'pixel')} parameterisation, colour {param.get('color', 'all')}, "
            f"{s.get('steps', recipe.get('steps', '?'))} steps, "
            f"{s.get('size_px', ds.sizes.get('x', '?'))} px. 'final': the objective on the "
            "final image, in the layer's activation units. Images are the RGB input in "
            "[0, 1] before the model's normalisation.")
    if natural:
        text += (" 'natural': the response of the same unit to its most exciting natural "
                 "image among those of the top-patches result (read on the map position "
                 "that result names: centre unit or the map's maximum).")
    return text


@figure_for("synthesis")
def synthesis_figures(ds: xr.Dataset) -> list[tuple[str, str, Figure]]:
    """The gallery of one stored ``synthesis`` result."""
    if "images" not in ds or "final" not in ds or ds.sizes.get("unit", 0) == 0:
        return []
    return [("Maximal images", _synthesis_caption(ds, None), gallery(ds))]


# ---- probes -----------------------------------------------------------------------------

def probe_values(ds: xr.Dataset, stat: str, family: str):
    """``(values, mean over units, s.d. over units)`` of one probe family (values: the
    ``value`` coord, float where numeric); ``ds`` has dims ``(unit, probe)``."""
    idx = np.flatnonzero(ds["family"].values == family)
    v = ds[stat].values[:, idx].astype(float)
    vals = ds["value"].values[idx]
    if family in ("zoom", "rotation"):
        vals = vals.astype(float)
        order = np.argsort(vals)
        vals, v = vals[order], v[:, order]
    return vals, v.mean(0), v.std(0)


def baseline_values(ds: xr.Dataset, stat: str) -> dict[str, float]:
    """``{noise, white, gray}``: mean over units of each baseline image's response."""
    vals, mean, _ = probe_values(ds, stat, "baseline")
    return {str(k): float(m) for k, m in zip(vals, mean)}


def _draw_baselines(ax, ds: xr.Dataset, stat: str) -> None:
    base = baseline_values(ds, stat)
    for name, colour, style in BASELINES:
        if name in base:
            ax.axhline(base[name], color=colour, ls=style, lw=1.0, label=f"{name} image",
                       gid=f"baseline:{name}")


def _probe_row(axes, ds: xr.Dataset, stat: str, label: str, errors: bool) -> None:
    """Zoom, rotation and colour panels of one statistic."""
    for ax, family, xlabel in ((axes[0], "zoom", "zoom factor (x image scale)"),
                               (axes[1], "rotation", "rotation (deg)")):
        x, m, s = probe_values(ds, stat, family)
        if x.size:
            drawn = ax.errorbar(x, m, yerr=s if errors else None, marker="o", ms=3,
                                color="C0", capsize=2, label="maximal image")
            drawn.lines[0].set_gid(f"probe:{family}")
            if family == "zoom" and np.all(x > 0):
                ax.set_xscale("log")
                ax.minorticks_off()
            ax.set_xticks(x, [f"{v:g}" for v in x], fontsize=6)
        ax.set_xlabel(xlabel, fontsize=7)
        _draw_baselines(ax, ds, stat)
    axes[0].set_ylabel(f"response\n({label},\nactivation units)", fontsize=7)
    _, m0, s0 = probe_values(ds, stat, "original")
    xc, mc, sc = probe_values(ds, stat, "color")
    names = ["image"] * len(m0) + [str(v).replace("only_", "only ") for v in xc]
    heights = np.concatenate([m0, mc])
    spread = np.concatenate([s0, sc])
    xs = np.arange(len(names))
    axes[2].bar(xs, heights, 0.7, yerr=spread if errors else None, color="C0", capsize=2,
                gid="probe:color")
    axes[2].set_xticks(xs, names, rotation=60, ha="right", fontsize=6)
    axes[2].set_xlabel("colour variant", fontsize=7)
    _draw_baselines(axes[2], ds, stat)
    for ax in axes:
        ax.tick_params(labelsize=6)


def probe_figure(ds: xr.Dataset, title: str = "") -> Figure:
    """Rows: max and mean over the map; columns: zoom, rotation, colour. Several units:
    their mean with the s.d. over units as error bars."""
    errors = ds.sizes["unit"] > 1
    fig, axes = plt.subplots(2, 3, figsize=(11, 5.8), layout="constrained",
                             gridspec_kw={"width_ratios": [1, 1.3, 1.4]})
    for row, (stat, label) in zip(axes, STATS):
        _probe_row(row, ds, stat, label, errors)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, fontsize=7, loc="outside lower center", ncol=len(names))
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def _probe_caption(ds: xr.Dataset, n: int) -> str:
    scope = ds.attrs.get("scope", "channel")
    what = "the unit's channel" if scope == "channel" else "the whole layer"
    spread = (f"mean over {n} units' maximal images; error bars: s.d. over those units"
              if n > 1 else "one maximal image, one measurement per probe (no error bars: "
              "the probes are deterministic)")
    return (f"Bandi & Kinley probes of the maximal images of {ds.attrs.get('layer', 'a layer')}"
            f": response of {what} (top: max over the map, bottom: mean over the map) vs "
            "zoom factor at a fixed image size (zoom-out pads with mid-gray), vs rotation "
            "about the centre (corners mid-gray), and to the image's colour variants (one "
            f"channel kept, channels swapped, grayscale); {spread}. Horizontal lines: the "
            "same units' responses to the baselines (Gaussian noise around mid-gray, all "
            f"white, all mid-gray){', averaged over the units alike' if n > 1 else ''}.")


@figure_for("probes")
def probe_figures(ds: xr.Dataset) -> list[tuple[str, str, Figure]]:
    """The probes of one stored ``probes`` result, averaged over its units."""
    if "family" not in ds.coords or "max" not in ds or ds.sizes.get("unit", 0) == 0:
        return []
    n = ds.sizes["unit"]
    title = f"{ds.attrs.get('layer', '')}: {'mean of ' + str(n) + ' units' if n > 1 else ''}"
    return [("Probes of the maximal images", _probe_caption(ds, n), probe_figure(ds, title))]


# ---- top and bottom natural-image patches ----------------------------------------------

def patch_table(ds: xr.Dataset) -> pd.DataFrame:
    """The per-(unit, sign, rank) table stored as ``table_*`` variables."""
    cols = {v[len("table_"):]: ds[v].values for v in ds.data_vars if str(v).startswith("table_")}
    return pd.DataFrame(cols)


def _image_size(ds: xr.Dataset, table: pd.DataFrame) -> int | None:
    size = ds.attrs.get("input_size_px") or _settings(ds).get("stimuli", {}).get("size_px")
    if size is None and "size_px" in table:
        size = table["size_px"].iloc[0]
    return int(size) if size is not None else None


def whole_image(ds: xr.Dataset, row: pd.Series, size: int) -> np.ndarray | None:
    """The natural image of a table row at the model's input size, read from the stimulus
    folder the result names (``None`` when that file is not there)."""
    from artiphys.stimuli.natural import load_image

    folder = ((_settings(ds).get("stimuli") or {}).get("meta") or {}).get("folder")
    if not folder or "path" not in row or not isinstance(row["path"], str):
        return None
    path = Path(folder) / row["path"]
    if not path.is_file():
        return None
    return load_image(path, size).numpy()


def _canvas(patch: np.ndarray, size: int, top: int, left: int) -> np.ndarray:
    """The patch pasted at its box on a mid-gray canvas (when the image file is missing)."""
    out = np.full((3, size, size), 0.5, np.float32)
    side = patch.shape[-1]
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + side, size), min(left + side, size)
    if y1 > y0 and x1 > x0:
        out[:, y0:y1, x0:x1] = patch[:, y0 - top:y1 - top, x0 - left:x1 - left]
    return out


def _draw_whole(ax, image: np.ndarray, row: pd.Series, found: bool) -> None:
    size = image.shape[-1]
    show_image(ax, image)
    top, left, side = int(row["top_px"]), int(row["left_px"]), int(row["crop_px"])
    ax.add_patch(Rectangle((left - 0.5, top - 0.5), side, side, fill=False, ec="C3", lw=1.2,
                           gid="rf"))
    ax.set_xlim(min(-0.5, left - 0.5), max(size - 0.5, left + side - 0.5))
    ax.set_ylim(max(size - 0.5, top + side - 0.5), min(-0.5, top - 0.5))
    tied = " (tied)" if bool(row.get("tied", False)) else ""
    ax.set_title(f"#{int(row['rank']) + 1}: {float(row['response']):.3g}{tied}"
                 + ("" if found else "\n(file missing)"), fontsize=6)


def patches_figure(ds: xr.Dataset, unit: int, k: int | None = None) -> tuple[Figure, int]:
    """One unit's rows: for each sign (excitatory first), whole images with the RF square,
    the RF patches and their features, ranks left to right. Returns the figure and how
    many whole images had to be drawn from the patch alone (file missing)."""
    from artiphys.synthesis.top_patches import feature_to_rgb

    table = patch_table(ds)
    size = _image_size(ds, table) or int(ds.sizes["x"])
    signs = [str(s) for s in ds["sign"].values]
    k = min(k or ds.sizes["rank"], ds.sizes["rank"])
    fig, axes = plt.subplots(3 * len(signs), k, figsize=(1.15 * k, 1.25 * 3 * len(signs)),
                             squeeze=False, constrained_layout=True)
    sub = ds.sel(unit=unit)
    missing = 0
    for s, sign in enumerate(signs):
        rows = table[(table["unit"] == unit) & (table["sign"] == sign)].sort_values("rank")
        for r, (_, row) in enumerate(rows.head(k).iterrows()):
            patch = sub["patches"].sel(sign=sign).isel(rank=int(row["rank"])).values
            feature = sub["features"].sel(sign=sign).isel(rank=int(row["rank"])).values
            image = whole_image(ds, row, size)
            found = image is not None
            if not found:
                missing += 1
                image = _canvas(patch, size, int(row["top_px"]), int(row["left_px"]))
            _draw_whole(axes[3 * s, r], image, row, found)
            show_image(axes[3 * s + 1, r], patch)
            show_image(axes[3 * s + 2, r], feature_to_rgb(feature))
        axes[3 * s, 0].set_ylabel(f"{sign[:5]}.\nimage", fontsize=7)
        axes[3 * s + 1, 0].set_ylabel("RF patch", fontsize=7)
        axes[3 * s + 2, 0].set_ylabel("feature", fontsize=7)
    for ax in axes.flat:
        if not ax.has_data():
            ax.axis("off")
    return fig, missing


def _patches_caption(ds: xr.Dataset, unit: int, missing: int) -> str:
    s = _settings(ds)
    n_images = (s.get("stimuli") or {}).get("n", "?")
    where = {"center": "the centre unit of the map", "max": "the unit at the map's extreme"}
    text = (f"{ds.attrs.get('layer', s.get('layer', ''))}:{unit}, top {ds.sizes['rank']} "
            f"excitatory (upper block) and suppressive (lower block) of {n_images} natural "
            f"images, read on {where.get(s.get('position'), s.get('position', 'the map'))}; "
            f"suppressive responses read on {s.get('suppressive_layer') or 'the layer'}. Per "
            "rank: the image at the model's input size with the unit's receptive field "
            "(red square, input px; it may leave the image), the RF patch (padding: the "
            "normalisation mean) and its visualised feature "
            f"({s.get('method', 'deconvnet')}; 0 = mid-gray, scaled by its max |value|). "
            "Titles: rank and response (activation units); 'tied': equal responses, the "
            "choice among them arbitrary. Compare Pospisil et al. (2018) Figs. 9-12.")
    if missing:
        text += (f" {missing} image file(s) not found: those panels show the patch at its "
                 "position on mid-gray.")
    return text


@figure_for("top_patches")
def top_patches_figures(ds: xr.Dataset) -> list[tuple[str, str, Figure]]:
    """One figure per unit of a ``top_patches`` result (the first :data:`MAX_PATCH_UNITS`)."""
    if "patches" not in ds or "table_unit" not in ds or ds.sizes.get("unit", 0) == 0:
        return []
    out = []
    units = [int(u) for u in ds["unit"].values]
    for unit in units[:MAX_PATCH_UNITS]:
        fig, missing = patches_figure(ds, unit)
        caption = _patches_caption(ds, unit, missing)
        if len(units) > MAX_PATCH_UNITS:
            caption += (f" {MAX_PATCH_UNITS} of the result's {len(units)} units are drawn "
                        "here; each unit's dossier page shows its own.")
        out.append((f"Top and bottom natural-image patches, unit {unit}", caption, fig))
    return out


# ---- one unit's dossier page ------------------------------------------------------------

KINDS = {"synthesis": "maximal_images", "probes": "probes", "top_patches": "top_patches"}


def _holds(meta: dict, channel: int) -> bool:
    """Whether a result's ``unit`` meta (comma-separated channels) may hold ``channel``
    (results without that meta, e.g. ``visualize`` batches, are checked after loading)."""
    units = meta.get("unit")
    return units is None or str(channel) in str(units).split(",")


def unit_datasets(run_dir: Path, summary: dict, kind: str, layer: str,
                  channel: int) -> list[xr.Dataset]:
    """The stored results of ``kind`` (``synthesis``, ``probes``, ``top_patches``) of
    ``layer`` that hold ``channel``, each selected to that unit; results of the run's first
    condition where it has some (other conditions' channel numbers are other units)."""
    from artiphys.report.results import run_results

    found = [r for r in run_results(run_dir, layer=layer)
             if r.kind == kind or r.meta.get("result") == KINDS[kind]]
    primary = (summary.get("conditions") or [None])[0]
    if primary is not None and any(r.meta.get("condition") == primary for r in found):
        found = [r for r in found if r.meta.get("condition") == primary]
    out = []
    for r in found:
        if _holds(r.meta, channel):
            ds = _load_unit(r.path, channel)
            if ds is not None:
                out.append(ds)
    return out


def _load_unit(path: Path, channel: int) -> xr.Dataset | None:
    """One unit of a stored result, reading only that unit's arrays (a layer's patches
    can be large); ``None`` when the result does not hold it."""
    from artiphys.store.steps import from_netcdf

    with xr.open_dataset(path) as ds:
        if "unit" not in ds.coords or channel not in set(int(u) for u in ds["unit"].values):
            return None
        return from_netcdf(ds.sel(unit=[channel]).load())


def best_natural(ds: xr.Dataset) -> dict[int, float]:
    """``{channel: response to its most exciting image}`` from a top-patches result."""
    table = patch_table(ds)
    if table.empty or "response" not in table:
        return {}
    top = table[(table["sign"] == "excitatory") & (table["rank"] == 0)]
    return {int(u): float(v) for u, v in zip(top["unit"], top["response"])}


def _maximal_figures(images, natural, label):
    out = []
    for ds in images:
        if (_settings(ds).get("objective_kind") or "unit") == "layer":
            continue              # a layer's image, not this unit's
        out.append((f"Maximal image of {label}", _synthesis_caption(ds, natural),
                    gallery(ds, natural)))
    return out


def _probe_unit_figures(probes, label):
    return [(f"Probes of the maximal image of {label}", _probe_caption(ds, 1),
             probe_figure(ds, label)) for ds in probes if ds.attrs.get("scope") != "layer"]


@unit_figure
def synthesis_unit_figures(run_dir: Path, summary: dict, layer: str,
                           channel: int) -> list[tuple[str, str, Figure]]:
    """One unit's maximal image (with its best natural image's response), its probes and
    its top and bottom natural-image patches; ``[]`` when the run holds none of them."""
    channel = int(channel)
    label = f"{layer}:{channel}"
    patches = unit_datasets(run_dir, summary, "top_patches", layer, channel)
    natural = {}
    for ds in patches:
        natural.update(best_natural(ds))
    figs = _maximal_figures(unit_datasets(run_dir, summary, "synthesis", layer, channel),
                            natural, label)
    figs += _probe_unit_figures(unit_datasets(run_dir, summary, "probes", layer, channel),
                                label)
    for ds in patches:
        if "patches" in ds and "table_unit" in ds:
            fig, missing = patches_figure(ds, channel)
            figs.append((f"Top and bottom natural-image patches of {label}",
                         _patches_caption(ds, channel, missing), fig))
    return figs
