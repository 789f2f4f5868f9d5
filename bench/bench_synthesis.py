"""Benchmark: maximal images for many channels in one batch vs one at a time (vs lucent).

Standalone: ``python bench/bench_synthesis.py [--device cpu|cuda] [--steps 256] ...``.
Model: torchvision resnet18 with random init (seed 0), channels of ``layer3``, images of
128 px, Fourier parameterisation with the default transforms (pad, jitter, scale,
rotation), Adam, ``--steps`` steps.

Printed, from one run:
  * batched: wall time of one optimisation of ``--units`` channels (one image each), and
    per unit;
  * one at a time: the same engine and settings with a batch of one, for
    ``--baseline-units`` channels at ``--baseline-steps`` steps (time per step does not
    depend on the step index, so the per-unit time is scaled to ``--steps`` and labelled
    as such), then the per-unit ratio one-at-a-time / batched;
  * lucent (only when ``torch-lucent`` is importable): ``render_vis`` for one channel at
    ``--steps`` steps and ``--size`` px, and the per-unit ratio lucent / batched.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
import torchvision  # noqa: E402

from artiphys.models.spec import as_spec  # noqa: E402
from artiphys.synthesis.objectives import for_units  # noqa: E402
from artiphys.synthesis.optimize import optimize  # noqa: E402
from artiphys.synthesis.param import make_param  # noqa: E402
from artiphys.synthesis.render import fourier_recipe  # noqa: E402


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_engine(spec, layer, units, size, steps, device, seed=0):
    recipe = fourier_recipe(steps=steps)
    prm = make_param("fourier", len(units), size, seed=seed, device=device)
    obj = for_units(layer, units, "channel")
    _sync(device)
    t0 = time.perf_counter()
    res = optimize(spec, obj, prm, steps=steps, lr=recipe.lr, transform=recipe.transform(),
                   seed=seed)
    _sync(device)
    return time.perf_counter() - t0, res


def run_lucent(model, layer, channel, size, steps, device):
    try:
        from lucent.optvis import param as lparam
        from lucent.optvis import render
    except ImportError:
        return None
    model = model.to(device).eval()
    t0 = time.perf_counter()
    render.render_vis(model, f"{layer}:{channel}", param_f=lambda: lparam.image(size),
                      thresholds=(steps,), show_image=False, progress=False)
    _sync(device)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (lucent figure: 2)")
    ap.add_argument("--layer", default="layer3")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--units", type=int, default=64)
    ap.add_argument("--baseline-units", type=int, default=4)
    ap.add_argument("--baseline-steps", type=int, default=32)
    ap.add_argument("--no-lucent", action="store_true")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval().to(device)
    spec = as_spec(model)
    print(f"resnet18 (random init) {args.layer}, {args.size} px, Fourier param, Adam, "
          f"device={device}, threads={torch.get_num_threads()}, cpus={os.cpu_count()}")

    # warm-up (allocator, kernels) outside the timings
    run_engine(spec, args.layer, [0], args.size, 2, device)

    t_batch, res = run_engine(spec, args.layer, list(range(args.units)), args.size,
                              args.steps, device)
    per_unit_batch = t_batch / args.units
    rise = float((res.final > res.trace[0]).mean())
    print(f"batched      : {args.units} units x {args.steps} steps in one batch: "
          f"{t_batch:8.2f} s total, {per_unit_batch:7.3f} s/unit "
          f"(objective rose for {rise:.0%} of units)")

    times = []
    for u in range(args.baseline_units):
        t, _ = run_engine(spec, args.layer, [u], args.size, args.baseline_steps, device)
        times.append(t)
    per_step = sum(times) / len(times) / args.baseline_steps
    per_unit_single = per_step * args.steps
    print(f"one at a time: {args.baseline_units} units x {args.baseline_steps} steps, batch of 1: "
          f"{per_step * 1000:7.1f} ms/step -> {per_unit_single:7.3f} s/unit "
          f"(scaled to {args.steps} steps)")
    print(f"ratio one-at-a-time / batched, per unit: {per_unit_single / per_unit_batch:6.2f}x "
          f"(target on GPU >= 8x)")

    if args.no_lucent:
        print("lucent: skipped (--no-lucent)")
        return 0
    t_lucent = run_lucent(model, args.layer, 0, args.size, args.steps, device)
    if t_lucent is None:
        print("lucent: torch-lucent not importable here; skipped "
              "(reference on 2 CPU threads: about 10.6 s per channel at 128 px, 256 steps)")
    else:
        print(f"lucent render_vis: 1 channel x {args.steps} steps: {t_lucent:8.2f} s/unit; "
              f"ratio lucent / batched per unit: {t_lucent / per_unit_batch:6.2f}x "
              f"(target >= 2x on CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
