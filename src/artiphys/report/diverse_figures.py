"""Report figures for diverse sets (``analysis="diverse"``) and their invariance indices
(``analysis="diverse_indices"``), Cadena et al. (2018) Figs. 2-5 and 8."""

from __future__ import annotations

import numpy as np
import xarray as xr

from artiphys.report.figures import figure_for, plt, unit_labels


def _display(img: np.ndarray) -> np.ndarray:
    """``(3, H, W)`` image (channel mean added, unclipped) -> ``(H, W, 3)`` clipped to [0, 1]."""
    return np.clip(np.moveaxis(img, 0, -1), 0.0, 1.0)


@figure_for("diverse")
def diverse_figures(ds: xr.Dataset):
    """Trade-off curves (activation vs diversity over lambda) and the sets of a few units."""
    labels = unit_labels(ds)
    lams = ds["lambda"].values
    n_units = ds.sizes["unit"]
    fig, ax = plt.subplots(1, 2, figsize=(8, 3), constrained_layout=True)
    act = ds["mean_activation_rel"].values
    dist = ds["min_distance_rel"].values
    for u in range(n_units):
        ax[0].plot(dist[u], act[u], "-", color="0.5", lw=0.7, alpha=0.7)
        c = int(ds["chosen_index"].values[u])
        ax[0].plot(dist[u, c], act[u, c], "o", color="C3", ms=3)
    ax[0].set_xscale("log")
    ax[0].axhline(float(ds.attrs.get("threshold", 0.9)), color="C0", lw=0.8, ls="--")
    ax[0].set_xlabel("min pairwise distance / at $\\lambda=0$")
    ax[0].set_ylabel("mean activation / at $\\lambda=0$")
    gain = ds["diversity_gain"].values
    ok = np.isfinite(gain) & (gain > 0)
    ax[1].hist(np.log10(gain[ok]), bins=20, color="0.3")
    ax[1].set_xlabel("log10 diversity gain at the chosen $\\lambda$")
    ax[1].set_ylabel("units")
    figs = [("Diversity vs activation trade-off",
             f"{ds.attrs.get('layer', '')}: each line one unit over lambda "
             f"({', '.join(f'{v:g}' for v in lams)}); red dot: chosen lambda (largest lambda "
             f"keeping >= {float(ds.attrs.get('threshold', 0.9)):g} of the lambda=0 activation). "
             f"Distance in {ds.attrs.get('feature_layer') or 'pixels'}.", fig)]

    show = np.linspace(0, n_units - 1, min(n_units, 6)).round().astype(int)
    n = ds.sizes["image"]
    fig2, axes = plt.subplots(len(show), 2 * n + 1, figsize=(1.0 * (2 * n + 1), 1.1 * len(show)),
                              squeeze=False, constrained_layout=True)
    imgs = ds["images"].values
    for r, u in enumerate(show):
        c = int(ds["chosen_index"].values[u])
        for i in range(n):
            axes[r, i].imshow(_display(imgs[u, 0, i]))
            axes[r, n + 1 + i].imshow(_display(imgs[u, c, i]))
        axes[r, 0].set_ylabel(labels[u], fontsize=6)
        axes[r, n + 1].set_title(f"$\\lambda$={lams[c]:g}", fontsize=6, loc="left")
    axes[0, 0].set_title("$\\lambda$=0", fontsize=6, loc="left")
    for a in axes.flat:
        a.set_xticks([])
        a.set_yticks([])
        a.spines[:].set_visible(False)
    figs.append(("Diverse sets", "Left: the n images at lambda = 0; right: at the chosen "
                 "lambda (channel mean added, clipped to [0, 1] for display).", fig2))
    return figs


@figure_for("diverse_indices")
def diverse_index_figures(ds: xr.Dataset):
    """Histograms of the two invariance indices and their scatter (texture vs shape units)."""
    pi = ds["phase_invariance_index"].values
    lc = ds["linear_combination_index"].values
    fig, ax = plt.subplots(1, 3, figsize=(10, 3), constrained_layout=True)
    ax[0].hist(pi[np.isfinite(pi)], bins=20, color="0.3")
    ax[0].set_xlabel("phase (shift) invariance index")
    ax[1].hist(lc[np.isfinite(lc)], bins=20, color="0.3")
    ax[1].set_xlabel("linear-combination index")
    ax[2].scatter(lc, pi, s=10, color="0.2")
    ax[2].set_xlabel("linear-combination index")
    ax[2].set_ylabel("phase invariance index")
    ax[0].set_ylabel("units")
    return [("Invariance indices", f"{ds.attrs.get('layer', '')}: shift invariance = mean "
             "activation of windowed crops of an optimised texture (side 2 RF - 1) / mean "
             "activation of the diverse templates; linear-combination index = mean activation "
             "of pairwise template averages (rescaled to the templates' norm) / templates'.",
             fig)]
