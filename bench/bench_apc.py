"""Benchmark: APC fit of 22,096 units x 65,536 models x 362 stimuli.

Prints, measured in this run on this machine:
  * the float32 matmul rate (GFLOP/s) of a large square torch.matmul;
  * the vectorised fit's effective rate, counting 2 * units * models * stimuli flops
    (target >= 50% of the matmul rate);
  * a per-unit loop baseline (target: the vectorised fit >= 100x faster per unit).

On a CPU the full 22,096 units take minutes, so by default a subset of units is fit and
the time extrapolated linearly (the work is linear in units; labelled "extrapolated").
``--units 22096`` runs them all. Standalone: ``python bench/bench_apc.py``.
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=None,
                    help=f"units to fit (default: {N_UNITS_PAPER} on GPU, 2048 on CPU)")
    ap.add_argument("--loop-units", type=int, default=4, help="units timed in the baselines")
    ap.add_argument("--repeats", type=int, default=3, help="best-of repeats of the fit")
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    n_units = args.units or (N_UNITS_PAPER if device.type == "cuda" else 2048)
    print(f"device {device}, torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}")

    rng = np.random.default_rng(0)
    feats = [np.column_stack([rng.uniform(0, 2 * np.pi, k), rng.uniform(-0.3, 1.0, k)])
             for k in rng.integers(4, 9, N_STIM)]
    grid = APCGrid.published()
    t0 = time.perf_counter()
    preds = apc_predictions(feats, grid, device=device)
    _sync(device)
    t_pred = time.perf_counter() - t0
    print(f"predictions {grid.n_models} models x {N_STIM} stimuli: {t_pred:.2f} s (once per "
          "stimulus set, shared by all layers)")

    resp = rng.gamma(1.0, size=(N_STIM, n_units)).astype(np.float32)
    fit_apc(resp[:, :64], grid=grid, predictions=preds, device=device)  # warm-up
    # best of `repeats`, interleaved with the matmul measurement so both see the same load
    peak, t_fit = 0.0, np.inf
    for _ in range(args.repeats):
        peak = max(peak, matmul_gflops(device, repeats=2))
        _sync(device)
        t0 = time.perf_counter()
        fit = fit_apc(resp, grid=grid, predictions=preds, device=device)
        _sync(device)
        t_fit = min(t_fit, time.perf_counter() - t0)
    print(f"float32 matmul (2048^3, best of {2 * args.repeats}): {peak:.1f} GFLOP/s")
    flops = 2.0 * n_units * grid.n_models * N_STIM
    rate = flops / t_fit / 1e9
    t_full = t_fit * N_UNITS_PAPER / n_units
    label = "measured" if n_units == N_UNITS_PAPER else f"extrapolated from {n_units} units"
    print(f"vectorised fit, {n_units} units (best of {args.repeats}; includes normalising "
          f"the predictions, flags and float64 re-scoring): {t_fit:.2f} s -> {rate:.1f} GFLOP/s "
          f"= {100 * rate / peak:.0f}% of matmul (target >= 50%)")
    print(f"vectorised fit, {N_UNITS_PAPER} units: {t_full:.1f} s ({label})")
    assert np.isfinite(fit.r.values).all()

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
