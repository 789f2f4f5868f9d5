"""Figure makers, one per kind of stored result (its ``attrs["analysis"]``).

Each maker takes an ``xr.Dataset`` read from the run store and returns a list of
``(title, caption, matplotlib Figure)``. Makers register with :func:`figure_for`; the
report calls every maker whose analysis name matches a stored result.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402


Figure = matplotlib.figure.Figure
Maker = Callable[[xr.Dataset], list[tuple[str, str, Figure]]]
_MAKERS: dict[str, Maker] = {}


def figure_for(analysis: str):
    """Decorator: register a figure maker for results with ``attrs["analysis"] == analysis``."""

    def deco(fn: Maker) -> Maker:
        _MAKERS[analysis] = fn
        return fn

    return deco


def has_figures(analysis: str) -> bool:
    """Whether a figure maker is registered for this kind of result."""
    return analysis in _MAKERS


def figures_for(ds: xr.Dataset) -> list[tuple[str, str, Figure]]:
    """All figures for one stored result (``[]`` when no maker knows it)."""
    # Results stored before their maker knew them may lack ``analysis``: their step names them.
    maker = _MAKERS.get(ds.attrs.get("analysis") or ds.attrs.get("artiphys_step", ""))
    return maker(ds) if maker else []


def unit_labels(ds: xr.Dataset) -> list[str]:
    """``layer:channel`` (plus ``@y,x`` where spatial) labels of the units of a result."""
    n = ds.sizes["unit"]
    layer = ds["layer"].values if "layer" in ds.coords else np.array([""] * n)
    chan = ds["channel"].values if "channel" in ds.coords else np.arange(n)
    return [f"{lay}:{c}" if str(lay) else str(c) for lay, c in zip(layer, chan)]


@figure_for("grating_tuning")
def grating_tuning_figures(ds: xr.Dataset) -> list[tuple[str, str, Figure]]:
    """Orientation tuning curves at each unit's preferred SF, and the F1/F0 histogram."""
    ori_name = [d for d in ds["curve"].dims if d != "unit"][0]
    sf_name = [d for d in ds["curve"].dims if d != "unit"][1]
    labels = unit_labels(ds)
    n = ds.sizes["unit"]
    show = np.linspace(0, n - 1, min(n, 16)).round().astype(int)
    cols = 4
    rows = int(np.ceil(len(show) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.1 * rows), squeeze=False,
                             constrained_layout=True)
    oris = ds[ori_name].values
    for ax, u in zip(axes.flat, show):
        curve = ds["curve"].isel(unit=u)
        sf_best = float(ds["preferred_sf_cycles_per_px"].isel(unit=u))
        ax.plot(oris, curve.sel({sf_name: sf_best}).values, "o-", ms=3)
        ax.axvline(float(ds["preferred_orientation_deg"].isel(unit=u)), color="0.6", lw=0.8)
        ax.set_title(f"{labels[u]}  ({ds['cell_class'].values[u]})", fontsize=8)
        ax.set_xlabel("orientation (deg)", fontsize=7)
        ax.set_ylabel("response", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(show):]:
        ax.axis("off")
    figs = [("Orientation tuning", "F0 response (mean over phase) vs grating orientation at each "
             "unit's preferred spatial frequency; grey line: vector-sum preferred orientation.", fig)]

    fig2, ax = plt.subplots(1, 2, figsize=(7, 2.6), constrained_layout=True)
    ratio = ds["f1_f0"].values
    ax[0].hist(ratio[np.isfinite(ratio)], bins=20, range=(0, 2), color="0.3")
    ax[0].axvline(1, color="r", lw=0.8)
    ax[0].set_xlabel("F1/F0")
    ax[0].set_ylabel("units")
    cv = ds["circular_variance"].values
    ax[1].hist(cv[np.isfinite(cv)], bins=20, range=(0, 1), color="0.3")
    ax[1].set_xlabel("circular variance")
    figs.append(("Simple vs complex, orientation selectivity",
                 "Modulation ratio F1/F0 at the preferred grating (> 1: simple, Skottun et al. "
                 "1991) and circular variance of orientation tuning (Ringach et al. 2002).", fig2))
    return figs


@figure_for("apc")
def apc_figures(ds: xr.Dataset) -> list[tuple[str, str, Figure]]:
    """Distribution of APC fit r, and the preferred angular position x curvature of each unit."""
    r = ds["r"].values
    ok = np.isfinite(r)
    fig, ax = plt.subplots(1, 2, figsize=(8, 3), constrained_layout=True)
    ax[0].hist(r[ok], bins=20, range=(-0.2, 1), color="0.3")
    ax[0].axvline(np.median(r[ok]) if ok.any() else 0, color="r", lw=0.8)
    ax[0].set_xlabel("APC fit r")
    ax[0].set_ylabel("units")
    sc = ax[1].scatter(ds["mu_a_deg"].values[ok], ds["mu_c"].values[ok], c=r[ok], cmap="viridis",
                       vmin=0, vmax=1, s=18)
    ax[1].set_xlabel("preferred angular position $\\mu_a$ (deg)")
    ax[1].set_ylabel("preferred curvature $\\mu_c$")
    ax[1].set_xlim(-10, 350)
    ax[1].set_ylim(-0.6, 1.1)
    fig.colorbar(sc, ax=ax[1], label="r")
    cv = " (cross-validated)" if int(ds.attrs.get("cross_validated", 0)) else ""
    caption = (f"APC model fits{cv} over {int(ds.attrs.get('n_models', 0))} grid models and "
               f"{int(ds.attrs.get('n_stimuli', 0))} shapes; {int((~ok).sum())} units without a fit "
               "(constant responses). Red line: median r.")
    return [("Angular position x curvature (APC) fits", caption, fig)]



# ---- run-level figures (drawn from summary.json and several stored results) -------------

RunMaker = Callable[[Path, dict], list[tuple[str, str, Figure]]]
_RUN_MAKERS: list[RunMaker] = []


def run_figure(fn: RunMaker) -> RunMaker:
    """Decorator: register a maker of figures over a whole run (``fn(run_dir, summary)``)."""
    _RUN_MAKERS.append(fn)
    return fn


def run_figures(run_dir: Path, summary: dict) -> list[tuple[str, str, Figure]]:
    """Every run-level figure that applies to this run."""
    return [fig for maker in _RUN_MAKERS for fig in maker(run_dir, summary)]


TableMaker = Callable[[list[Path]], list[tuple[str, str, "pd.DataFrame"]]]
_TABLE_MAKERS: list[TableMaker] = []


def run_table(fn: TableMaker) -> TableMaker:
    """Decorator: register a maker of ``(file stem, caption, DataFrame)`` tables over one or
    several runs; the report shows them and writes each as ``<stem>.csv``."""
    _TABLE_MAKERS.append(fn)
    return fn


def run_tables(run_dirs: list[Path]) -> list[tuple[str, str, "pd.DataFrame"]]:
    """Every table that applies to these runs."""
    return [t for maker in _TABLE_MAKERS for t in maker(run_dirs)]



def _ecdf(ax, values, **kw) -> None:
    v = np.sort(np.asarray(values, float)[np.isfinite(values)])
    if v.size:
        ax.step(v, np.arange(1, v.size + 1) / v.size, where="post", **kw)


@run_figure
def characterize_figures(run_dir: Path, summary: dict) -> list[tuple[str, str, Figure]]:
    """Pospisil et al. (2018)-style overview of a ``characterize`` run."""
    layers = summary.get("layers")
    if "tests" not in summary or not isinstance(layers, dict) or not layers:
        return []
    order = summary.get("layer_order") or []
    names = [la for la in order if la in layers] + [la for la in layers if la not in order]
    preferred = ["trained", "untrained", "weight-shuffled", "shuffle"]
    found = list(dict.fromkeys(c for la in names for c in layers[la]))
    conditions = [c for c in preferred if c in found] + [c for c in found if c not in preferred]
    colour = {c: f"C{i}" for i, c in enumerate(conditions)}   # same colour in every panel
    metrics = [("apc_r_median", "median APC r"), ("ti_median", "median TI"),
               ("sparsity_median", "median lifetime sparseness")]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), constrained_layout=True)
    x = np.arange(len(names))
    for ax, (key, label) in zip(axes, metrics):
        for cond in conditions:
            y = np.array([layers[la].get(cond, {}).get(key) for la in names], dtype=float)
            if np.isfinite(y).any():
                ax.plot(x, y, "o-", ms=3, label=cond, color=colour[cond])
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7)
    axes[1].set_title("TI undefined where no stimulus position lies within the RF", fontsize=7)
    figs = [("Shape tuning and translation invariance across layers",
             "Per-layer medians over units for the trained network and its controls "
             "(untrained: random init; weight-shuffled: each layer's weights permuted; "
             "shuffle: responses permuted across stimuli). Compare Pospisil et al. (2018) "
             "Figs. 5 and 7.", fig)]
    # the cumulative distributions of APC r: pospisil_figures (Fig. 5G/H); of TI: ti_figures
    return figs


# ---- unit-level figures (one unit's dossier page) -------------------------------------

UnitMaker = Callable[[Path, dict, str, int], list[tuple[str, str, Figure]]]
_UNIT_MAKERS: list[UnitMaker] = []


def unit_figure(fn: UnitMaker) -> UnitMaker:
    """Decorator: register a maker of one unit's figures, ``fn(run_dir, summary, layer,
    channel)`` (layer: the battery's label); it returns ``[]`` when the run holds nothing
    of its kind for that unit. The dossier page of a unit shows every maker's figures."""
    _UNIT_MAKERS.append(fn)
    return fn


def unit_figures(run_dir: Path, summary: dict, layer: str,
                 channel: int) -> list[tuple[str, str, Figure]]:
    """Every unit-level figure that applies to unit ``channel`` of ``layer``."""
    return [fig for maker in _UNIT_MAKERS for fig in maker(run_dir, summary, layer, channel)]


# Makers defined in other modules register themselves on import.
from artiphys.report import diverse_figures  # noqa: E402,F401
from artiphys.report import pospisil_figures  # noqa: E402,F401
from artiphys.report import synthesis_figures  # noqa: E402,F401
from artiphys.report import ti_figures  # noqa: E402,F401
