"""Benchmark: TI position sweeps on AlexNet conv layers, equivariant vs brute force.

For each conv layer (conv1..conv5 of torchvision AlexNet at 227 px; random weights, which
do not change the cost) the responses of every channel's centre unit to ``--shapes``
shapes at 51 positions (+-50 px in 2 px steps) are computed both ways, timed, and checked
to agree to 1e-4 (target: equivariant >= 5x faster). The equivariant times include all
their set-up (stride detection, RF margins, the self-check against brute force).
Standalone: ``python bench/bench_ti.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from artiphys.models.spec import ModelSpec, Preprocessing  # noqa: E402
from artiphys.tuning.ti import position_sweep, sweep_responses  # noqa: E402

LAYERS = {"conv1": "features.0", "conv2": "features.3", "conv3": "features.6",
          "conv4": "features.8", "conv5": "features.10"}


def shapes(n: int, size: int = 227, width: int = 32, seed: int = 0) -> torch.Tensor:
    """Random white 32 px blobs, centred, on black (stand-ins for the Pasupathy shapes)."""
    rng = np.random.default_rng(seed)
    imgs = torch.zeros(n, 3, size, size)
    c, h = size // 2, width // 2
    for i in range(n):
        yy, xx = np.mgrid[-h:h, -h:h]
        lobes = rng.integers(2, 6)
        r = h * (0.6 + 0.4 * rng.random()) * (1 + 0.3 * np.cos(lobes * np.arctan2(yy, xx)))
        imgs[i, :, c - h:c + h, c - h:c + h] = torch.as_tensor(np.hypot(yy, xx) < r * 0.8,
                                                               dtype=torch.float32)
    return imgs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", type=int, default=48)
    ap.add_argument("--brute-positions", type=int, default=9,
                    help="positions run by brute force (its time is linear in positions and "
                         "is extrapolated to all 51; 51 runs them all)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    from torchvision.models import alexnet

    torch.manual_seed(0)
    spec = ModelSpec("alexnet (random weights)", alexnet().eval(), Preprocessing(227),
                     condition="untrained")
    imgs = shapes(args.shapes)
    pos = position_sweep(2, 50)
    print(f"AlexNet @227, {args.shapes} shapes x {len(pos)} positions (+ blank), "
          f"torch threads {torch.get_num_threads()}, device {args.device}")
    total_eq = total_bf = 0.0
    for name, path in LAYERS.items():
        t0 = time.perf_counter()
        eq = sweep_responses(spec, imgs, path, pos, method="equivariant", device=args.device)
        t_eq = time.perf_counter() - t0
        sub = np.unique(np.linspace(0, len(pos) - 1, args.brute_positions).round().astype(int))
        t0 = time.perf_counter()
        bf = sweep_responses(spec, imgs, path, pos[sub], method="brute", device=args.device)
        t_bf = (time.perf_counter() - t0) * len(pos) / len(sub)
        err = float(np.abs(eq.responses.values[sub] - bf.responses.values).max())
        scale = float(np.abs(bf.responses.values).max())
        total_eq += t_eq
        total_bf += t_bf
        lo, hi = eq.attrs["canvas_px"]
        print(f"{name}: stride {eq.attrs['stride_px']:2d} px, canvas [{lo}, {hi}) x "
              f"[{eq.attrs['crop_px']}, {227 - eq.attrs['crop_px']}) px; equivariant "
              f"{t_eq:6.2f} s, brute force {t_bf:6.2f} s{'*' if len(sub) < len(pos) else ''} -> "
              f"{t_bf / t_eq:5.1f}x; max |diff| {err:.1e} (max response {scale:.1f}); "
              f"self-check {eq.attrs['self_check']}")
    print(f"all conv layers: equivariant {total_eq:.1f} s, brute force {total_bf:.1f} s -> "
          f"{total_bf / total_eq:.1f}x (target >= 5x)")
    if args.brute_positions < len(pos):
        print(f"* brute force timed on {len(sub)} of {len(pos)} positions (incl. both ends and "
              "the centre) and scaled to all; the agreement check covers those positions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
