"""Benchmark: APC fit of 22,096 units x 65,536 models x 362 stimuli, full and screened.

Prints, measured in this run on this machine:
  * the float32 matmul rate (GFLOP/s) of a large square torch.matmul;
  * the full fit's effective rate, counting 2 * units * models * stimuli flops
    (target >= 50% of the matmul rate);
  * the screened fit (``fit_apc(method="screened")``, artiphys.tuning.apc_screen) next to
    the full fit on the same units, full/screened time ratio (target >= 2x) and the
    fraction of units with the identical best model (must be 100%), on two workloads:
    responses of AlexNet (random init, seed 0) sublayer units to the 362 shapes at 227 px
    (the units Pospisil et al. fit), and random gamma responses (the screen's worst case:
    their r is low and flat across models, like a shuffle null);
  * a per-unit loop baseline (target: the vectorised fit >= 100x faster per unit).

On a CPU the full 22,096 units take a while, so by default 2,048 units are fit and times
extrapolated linearly (labelled "extrapolated"); ``--units 22096`` runs them all. The
screening basis is built once per prediction matrix (timed separately) and reused, as
``fit_apc`` does through its cache. Standalone: ``python bench/bench_apc.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from artiphys.tuning import apc_screen  # noqa: E402
from artiphys.tuning.apc import APCGrid, apc_predictions, fit_apc  # noqa: E402

N_UNITS_PAPER = 22_096  # unique units of AlexNet's sublayers analysed by Pospisil et al.
N_STIM = 362


def matmul_gflops(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b  # warm-up
    best = np.inf
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def per_unit_loop(preds: np.ndarray, resp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Baseline: one unit at a time, Pearson r with every model (vectorised over models)."""
    best_r, best_m = np.empty(resp.shape[1]), np.empty(resp.shape[1], dtype=int)
    for u in range(resp.shape[1]):
        y = resp[:, u]
        pc = preds - preds.mean(1, keepdims=True)
        yc = y - y.mean()
        r = pc @ yc / (np.sqrt((pc * pc).sum(1)) * np.sqrt(yc @ yc))
        best_m[u] = int(np.nanargmax(r))
        best_r[u] = r[best_m[u]]
    return best_r, best_m


def per_unit_matvec(pred_norm: torch.Tensor, resp_norm: torch.Tensor):
    """Stronger baseline: models already normalised, one matrix-vector product per unit."""
    out = []
    for u in range(resp_norm.shape[1]):
        out.append(torch.max(pred_norm @ resp_norm[:, u], dim=0))
    return out


def alexnet_responses(n_units: int, device: torch.device) -> np.ndarray:
    """Responses ``(362, n_units)`` of random-init AlexNet sublayer units to the shapes.

    Centre units of every sublayer (conv, ReLU, pool, FC; 20,200 in torchvision's AlexNet),
    plus the units one position right of centre in the conv sublayers when more are asked
    for; a seeded random subset of ``n_units``.
    """
    from artiphys.models import load_model
    from artiphys.models.receptive_field import layer_geometry
    from artiphys.recording import record
    from artiphys.stimuli.shapes import shapes

    spec = load_model("alexnet", pretrained=False, seed=0)
    layers = [f"features.{i}" for i in range(13)] + [f"classifier.{i}" for i in (1, 2, 4, 5, 6)]
    units = {}
    for name in layers:
        geo = layer_geometry(spec, name)
        if len(geo.out_shape) == 3 and n_units > 20_200:
            c, h, w = geo.out_shape
            units[name] = [(k, h // 2, w // 2 + j) for j in (0, 1) for k in range(c)]
        else:
            units[name] = "center"
    resp = record(spec, shapes(size_px=32, canvas_px=227), layers, units=units, device=device)
    values = np.column_stack([r.values for r in resp.values()]).astype(np.float32)
    pick = np.random.default_rng(0).permutation(values.shape[1])[:n_units]
    return values[:, np.sort(pick)]


def compare(label: str, resp: np.ndarray, preds, grid, device, repeats: int, peak: float):
    """Time the full and the screened fit on the same units (interleaved, best of
    ``repeats``) and print times, ratio, agreement and screen statistics."""
    n_units = resp.shape[1]
    fit_apc(resp[:, :64], grid=grid, predictions=preds, device=device, method="full")  # warm-up
    fit_apc(resp[:, :64], grid=grid, predictions=preds, device=device, method="screened")
    t_full = t_scr = np.inf
    for _ in range(repeats):
        peak = max(peak, matmul_gflops(device, repeats=2))
        _sync(device)
        t0 = time.perf_counter()
        full = fit_apc(resp, grid=grid, predictions=preds, device=device, method="full")
        _sync(device)
        t1 = time.perf_counter()
        scr = fit_apc(resp, grid=grid, predictions=preds, device=device, method="screened")
        _sync(device)
        t_full, t_scr = min(t_full, t1 - t0), min(t_scr, time.perf_counter() - t1)
    ok = full.flags.values == 0
    same = np.mean(full.model_index.values[ok] == scr.model_index.values[ok])
    dr = np.nanmax(np.abs(full.r.values - scr.r.values)) if ok.any() else 0.0
    _, _, stats = apc_screen.screened_fit_stats(resp[:, ok].astype(np.float64), preds, grid)
    rate = 2.0 * ok.sum() * grid.n_models * resp.shape[0] / t_full / 1e9
    scale = N_UNITS_PAPER / n_units
    how = "measured" if n_units == N_UNITS_PAPER else f"extrapolated from {n_units} units"
    print(f"[{label}] {n_units} units, {ok.sum()} analysable (others constant/flagged)")
    print(f"  full fit:     {t_full:.2f} s -> {rate:.1f} GFLOP/s = {100 * rate / peak:.0f}% of matmul "
          f"(target >= 50%); {N_UNITS_PAPER} units: {t_full * scale:.1f} s ({how})")
    print(f"  screened fit: {t_scr:.2f} s -> {t_full / t_scr:.2f}x the full fit (target >= 2x); "
          f"{N_UNITS_PAPER} units: {t_scr * scale:.1f} s ({how})")
    print(f"  identical best model: {100 * same:.2f}% of {ok.sum()} units (must be 100%); "
          f"max |r_full - r_screened| = {dr:.1e}")
    print(f"  screen: {stats.level2_tiles:.1f} of {stats.n_tiles} tiles bounded at level 2, "
          f"{stats.exact_tiles:.1f} scored exactly per unit; multiply-adds "
          f"{100 * stats.work_fraction:.0f}% of the full fit's")
    return full, t_full, peak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=None,
                    help=f"units to fit (default: {N_UNITS_PAPER} on GPU, 2048 on CPU)")
    ap.add_argument("--loop-units", type=int, default=4, help="units timed in the baselines")
    ap.add_argument("--repeats", type=int, default=3, help="best-of repeats of the fit")
    ap.add_argument("--device", default=None)
    ap.add_argument("--workload", choices=("alexnet", "gamma", "both"), default="both",
                    help="responses fit: AlexNet random-init units, random gamma, or both")
    args = ap.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    n_units = args.units or (N_UNITS_PAPER if device.type == "cuda" else 2048)
    print(f"device {device}, torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}")

    from artiphys.stimuli.apc_features import apc_features
    from artiphys.stimuli.shapes import shapes

    grid = APCGrid.published()
    feats = apc_features(shapes(size_px=32, canvas_px=227))
    t0 = time.perf_counter()
    preds = apc_predictions(feats, grid, device=device)
    _sync(device)
    t_pred = time.perf_counter() - t0
    print(f"predictions {grid.n_models} models x {N_STIM} stimuli: {t_pred:.2f} s (once per "
          "stimulus set, shared by all layers)")
    t0 = time.perf_counter()
    basis = apc_screen.cached_screen_basis(preds, grid)
    print(f"screening basis: {time.perf_counter() - t0:.2f} s (once per prediction matrix, "
          f"cached); ranks {basis.ranks}, {100 * basis.energy1:.1f}% of ||P||^2 in the first "
          f"{basis.ranks[0]} dims; screening products in {str(basis.dtype).split('.')[-1]}")
    peak = 0.0
    if args.workload in ("alexnet", "both"):
        t0 = time.perf_counter()
        resp_cnn = alexnet_responses(n_units, device)
        print(f"recorded AlexNet (random init) responses: {time.perf_counter() - t0:.1f} s")
        resp = resp_cnn
        fit, t_fit, peak = compare("AlexNet random-init sublayer units", resp_cnn, preds, grid,
                                   device, args.repeats, peak)
    if args.workload in ("gamma", "both"):
        resp = np.random.default_rng(0).gamma(1.0, size=(N_STIM, n_units)).astype(np.float32)
        fit, t_fit, peak = compare("random gamma responses", resp, preds, grid, device,
                                   args.repeats, peak)
    print(f"float32 matmul (2048^3, best of {2 * args.repeats}): {peak:.1f} GFLOP/s")
    ok = fit.flags.values == 0
    resp, fit = resp[:, ok], fit.isel(unit=np.flatnonzero(ok))
    n_units = int(ok.sum())

    n_loop = args.loop_units
    p64 = preds.double().cpu().numpy()
    t0 = time.perf_counter()
    loop_r, loop_m = per_unit_loop(p64, resp[:, :n_loop].astype(np.float64))
    t_loop = (time.perf_counter() - t0) / n_loop
    agree = np.mean(loop_m == fit.model_index.values[:n_loop])
    print(f"per-unit loop (numpy, Pearson r vs all models per unit): {t_loop * 1e3:.0f} ms/unit "
          f"-> {t_loop * N_UNITS_PAPER:.0f} s for {N_UNITS_PAPER} units (extrapolated from "
          f"{n_loop}); vectorised is {t_loop / (t_fit / n_units):.0f}x faster (target >= 100x); "
          f"same best model on {agree:.0%} of timed units")
    pn = preds - preds.mean(1, keepdim=True)
    pn = pn / pn.norm(dim=1, keepdim=True)
    rn = torch.as_tensor(resp[:, :n_loop * 4], device=device)
    rn = (rn - rn.mean(0)) / (rn - rn.mean(0)).norm(dim=0)
    _sync(device)
    t0 = time.perf_counter()
    per_unit_matvec(pn, rn)
    _sync(device)
    t_mv = (time.perf_counter() - t0) / rn.shape[1]
    print(f"per-unit matvec (models pre-normalised, torch): {t_mv * 1e3:.1f} ms/unit; "
          f"vectorised is {t_mv / (t_fit / n_units):.1f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
