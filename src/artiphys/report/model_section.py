"""The report's 'Model' section: the sublayer table (units, map size, RF, stride; Pospisil
et al. 2018 Fig. 2), the first convolution's kernels (their Fig. 1; the Neuromatch W1D5
kernel plots) and, for the built-in analytic models, each run layer's activation maps to
one grating.

It needs the model, loaded from the run's stored config (the ``[model]`` table of
``configs/<experiment>.toml`` or ``config.toml``). Analytic models need no weights; a zoo
model needs its weights where the run found them. When loading fails the section says why
instead of failing the report.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from artiphys.errors import ArtiphysError
from artiphys.report.figures import Figure, plt

MAX_KERNELS = 64
GRATING_SF_CYCLES_PER_PX = 0.125
GRATING_ORIENTATION_DEG = 0.0


def run_config(run_dir: Path) -> dict:
    """The stored config of the run's battery as a plain dict (``configs/characterize.toml``,
    else the config of the experiment run last, ``config.toml``, else any other; the first
    that is readable and not empty; ``{}`` when none)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    for path in (run_dir / "configs" / "characterize.toml", run_dir / "config.toml",
                 *sorted((run_dir / "configs").glob("*.toml"))):
        if path.is_file():
            try:
                found = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                continue
            if found:
                return found
    return {}


def load_run_model(run_dir: Path):
    """``(ModelSpec, "")`` of the run's model, or ``(None, why it could not be loaded)``."""
    from artiphys.experiments.base import ModelConfig

    table = run_config(run_dir).get("model")
    if not isinstance(table, dict):
        return None, "the run directory holds no config with a [model] table"
    try:
        return ModelConfig.from_dict(table).load(), ""
    except (ArtiphysError, OSError, RuntimeError, ImportError, ValueError, KeyError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def layer_rows(spec, summary: dict) -> pd.DataFrame:
    """The model's sublayers (every layer-table row with a paper sublayer, and every layer
    the run analysed; all rows when the model has no sublayer), as a table."""
    from artiphys.models.layer_table import list_layers

    rows = list_layers(spec)
    analysed = set((summary.get("layer_paths") or {}).values())
    analysed |= set(summary.get("layer_order") or [])
    keep = [r for r in rows if r.sublayer or r.name in analysed or r.label in analysed]
    if not any(r.sublayer for r in rows):
        keep = rows
    return pd.DataFrame([{
        "layer": r.label, "module": r.name, "kind": r.kind, "major layer": r.major or "",
        "sublayer": r.sublayer or "", "units": r.units,
        "map (px)": "x".join(map(str, r.shape[1:])) if r.is_spatial else "-",
        "RF (px)": _px(r.rf_size_range_px, "-"),
        "stride (px)": _px(r.stride_px) if r.is_spatial else "-",
        "analysed": "yes" if (r.name in analysed or r.label in analysed) else ""}
        for r in keep])


def _px(value, sep: str = "x") -> str:
    """``"11"``, ``"3x5"`` (a pair, or ``"3-5"`` with ``sep="-"``: a range), ``"?"``
    (unknown)."""
    if value is None:
        return "?"
    if isinstance(value, (tuple, list, np.ndarray)):
        a, b = (int(v) for v in np.ravel(value)[:2])
        return str(a) if a == b else f"{a}{sep}{b}"
    return str(int(value))


def first_conv(spec):
    """``(module path, Conv2d)`` of the first convolution with a kernel larger than 1 px
    (None when the model has none)."""
    from torch import nn

    for path, module in spec.module.named_modules():
        if isinstance(module, nn.Conv2d) and max(module.kernel_size) > 1:
            return path, module
    return None


def kernel_figure(spec) -> list[tuple[str, str, Figure]]:
    """The first convolution's kernels drawn as images (RGB for a 3-channel input, else the
    sum over input channels on a diverging scale)."""
    found = first_conv(spec)
    if found is None:
        return []
    path, conv = found
    w = conv.weight.detach().float().cpu().numpy()
    n = min(len(w), MAX_KERNELS)
    cols = min(16, n)
    rows = int(np.ceil(n / cols))
    rgb = w.shape[1] == 3
    fig, axes = plt.subplots(rows, cols, figsize=(0.75 * cols + 0.9, 0.75 * rows + 0.5),
                             squeeze=False, constrained_layout=True)
    image = None
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= n:
            ax.axis("off")
            continue
        peak = float(np.abs(w[k]).max()) or 1.0
        if rgb:
            ax.imshow(np.clip(0.5 + w[k].transpose(1, 2, 0) / (2 * peak), 0, 1))
        else:
            summed = w[k].sum(0)
            image = ax.imshow(summed / (float(np.abs(summed).max()) or 1.0), cmap="RdBu_r",
                              vmin=-1, vmax=1)
        ax.set_title(str(k), fontsize=6, pad=1)
    kh, kw = conv.kernel_size
    axes[-1, 0].set_xlabel(f"{kw} px", fontsize=7)
    axes[-1, 0].set_ylabel(f"{kh} px", fontsize=7)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="weight / max |w|")
    how = ("RGB, each kernel scaled so that 0 is mid-grey and its largest |weight| saturates"
           if rgb else f"summed over its {w.shape[1]} input channel(s), scaled to its "
           "largest |weight| (red positive, blue negative)")
    caption = (f"The {n} of {len(w)} kernels of {path} ({kh} x {kw} px, stride "
               f"{conv.stride[0]} px) that the network applies first; {how}. Compare "
               "Pospisil et al. (2018) Fig. 1.")
    return [(f"First-layer kernels ({path})", caption, fig)]


def _map_of(da, channel: int) -> np.ndarray:
    """The activation map of ``channel`` from a one-stimulus recording of every unit."""
    da = da.isel(stimulus=0)
    hit = np.asarray(da["channel"].values) == channel
    y, x = np.asarray(da["y"].values)[hit], np.asarray(da["x"].values)[hit]
    grid = np.full((y.max() + 1, x.max() + 1), np.nan)
    grid[y, x] = np.asarray(da.values, float)[hit]
    return grid


def _shown_channels(n: int, examples: list[int], most: int = 6) -> list[int]:
    chosen = [c for c in examples if 0 <= c < n][:most]
    for c in np.linspace(0, n - 1, min(n, most)).round().astype(int):
        if len(chosen) >= max(4, len(examples[:most])) or len(chosen) >= n:
            break
        if int(c) not in chosen:
            chosen.append(int(c))
    return sorted(chosen)


def grating_maps(spec, summary: dict, examples: dict) -> list[tuple[str, str, Figure]]:
    """Activation maps of the run's spatial layers to one full-field grating (analytic
    models only: their units have known tuning to compare with)."""
    from artiphys.recording.record import record, resolve_layers
    from artiphys.stimuli.gratings import gratings

    if spec.condition != "analytic":
        return []
    size = int(spec.preprocessing.input_size_px)
    stim = gratings(orientation_deg=GRATING_ORIENTATION_DEG,
                    sf_cycles_per_px=GRATING_SF_CYCLES_PER_PX, size_px=size)
    paths = summary.get("layer_paths") or {}
    labels = [la for la in (summary.get("layer_order") or paths) if la in paths]
    if not labels:
        return []
    refs = resolve_layers(spec, [paths[la] for la in labels])
    recorded = record(spec, stim, refs, units="all", device="cpu")   # one forward pass
    maps = []
    for label, ref in zip(labels, refs):
        da = recorded[ref.label]
        if not {"y", "x", "channel"} <= set(da.coords):
            continue
        n = int(np.asarray(da["channel"].values).max()) + 1
        chans = _shown_channels(n, [e["channel"] for e in examples.get(label, [])])
        maps.append((label, [(c, _map_of(da, c)) for c in chans]))
    if not maps:
        return []
    cols = 1 + max(len(m) for _, m in maps)
    fig, axes = plt.subplots(len(maps), cols, figsize=(1.55 * cols + 0.8, 1.5 * len(maps)),
                             squeeze=False, constrained_layout=True)
    picture = stim.images(0, 1)[0].mean(0).numpy()
    for row, (label, panels) in zip(axes, maps):
        row[0].imshow(picture, cmap="gray", vmin=0, vmax=1)
        row[0].set_title("grating", fontsize=7)
        row[0].set_ylabel(f"{label}\ny (px)", fontsize=7)
        peak = max(float(np.nanmax(np.abs(m))) for _, m in panels) or 1.0
        for ax, (c, m) in zip(row[1:], panels):
            im = ax.imshow(m, cmap="RdBu_r", vmin=-peak, vmax=peak)
            ax.set_title(f"channel {c}", fontsize=7)
        for ax in row[1 + len(panels):]:
            ax.axis("off")
        fig.colorbar(im, ax=list(row[1:1 + len(panels)]), shrink=0.9, label="response")
        for ax in row:
            ax.tick_params(labelsize=5)
    for ax in axes[-1]:
        ax.set_xlabel("x (px)", fontsize=7)
    caption = (f"Responses of every unit of a map (rows: the run's {len(maps)} spatial "
               f"layers; columns: the example channels, filled up to 4 with evenly spaced "
               f"ones) to a full-field sine grating of {GRATING_ORIENTATION_DEG:g} deg "
               f"(vertical stripes), {GRATING_SF_CYCLES_PER_PX:g} cycles/px, phase 0, full "
               f"contrast, at the model's {size} px input; one symmetric colour scale per "
               "row. Units tuned to the grating's orientation and SF respond in stripes "
               "that follow it; phase-invariant (complex) units respond evenly away from "
               "the image border.")
    return [("Activation maps to a grating", caption, fig)]


def model_section(run_dir: Path, summary: dict, page, examples: dict):
    """Append the 'Model' section to ``page`` (a :class:`~artiphys.report.page.Page`);
    return the loaded model (None when it could not be loaded)."""
    page.parts.append("<h2 id='model'>Model</h2>")
    spec, why = load_run_model(run_dir)
    if not summary.get("layer_paths"):   # an unfinished run: the layers its config names
        layers = [str(la) for la in run_config(run_dir).get("layers") or []]
        summary = {**summary, "layer_order": layers, "layer_paths": {la: la for la in layers}}
    if spec is None:
        page.parts.append(f"<p>The model could not be loaded, so this section is empty: "
                          f"{html.escape(why)}.</p>")
        return None
    page.parts.append(
        f"<p><b>{html.escape(spec.name)}</b> ({html.escape(spec.condition)}), input "
        f"{spec.preprocessing.input_size_px} px; loaded from the run's stored config.</p>")
    try:
        table = layer_rows(spec, summary)
    except ArtiphysError as exc:
        page.parts.append(f"<p>No layer table: {html.escape(str(exc))}.</p>")
    else:
        page.add_table("model_layers", "the model's sublayers in execution order: units "
                       "(channels), output map size, receptive field and stride in input px "
                       "(compare Pospisil et al. 2018 Fig. 2); 'analysed': in this run",
                       table)
    page.add(kernel_figure(spec))
    try:
        maps = grating_maps(spec, summary, examples)
    except (ArtiphysError, RuntimeError) as exc:   # e.g. a layer the model no longer has
        page.parts.append(f"<p>No activation maps: {html.escape(str(exc))}.</p>")
    else:
        page.add(maps)
    return spec


__all__ = ["first_conv", "grating_maps", "kernel_figure", "layer_rows", "load_run_model",
           "model_section", "run_config"]
