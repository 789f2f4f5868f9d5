"""Benchmark: TI position sweeps on AlexNet conv layers, equivariant vs brute force.

For each conv layer (conv1..conv5 of torchvision AlexNet at 227 px; random weights, which
do not change the cost) the responses of every channel's centre unit to ``--shapes``
shapes at 51 positions (+-50 px in 2 px steps) are computed both ways, timed, and checked
to agree to 1e-4 (target: equivariant >= 5x faster). The equivariant times include all
their set-up (stride detection, RF margins, the self-check against brute force).

Then the battery's TI engine: conv1..pool5 (8 layers) swept by ``sweep_layers`` in one set
of passes against one ``sweep_responses`` per layer (each on the images moved onto that
layer's centre unit, as ``characterize`` renders them), with the forward passes of each
counted in model-input image equivalents (input pixels / 227^2, every call of the model,
set-up included; a pass that stops early at an early layer counts in full) and checked to
agree. ``--skip-single`` leaves out the first part.
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

from artiphys.models.spec import ModelSpec, Preprocessing
from artiphys.tuning.ti import position_sweep, sweep_responses
from artiphys.tuning.ti_layers import _moved, sweep_layers

LAYERS = {"conv1": "features.0", "conv2": "features.3", "conv3": "features.6",
          "conv4": "features.8", "conv5": "features.10"}
ALL_LAYERS = ["features.0", "features.2", "features.3", "features.5", "features.6",
              "features.8", "features.10", "features.12"]  # conv1 .. pool5


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
    ap.add_argument("--skip-single", action="store_true",
                    help="only the multi-layer comparison")
    args = ap.parse_args()
    from torchvision.models import alexnet

    torch.manual_seed(0)
    spec = ModelSpec("alexnet (random weights)", alexnet().eval(), Preprocessing(227),
                     condition="untrained")
    imgs = shapes(args.shapes)
    pos = position_sweep(2, 50)
    print(f"AlexNet @227, {args.shapes} shapes x {len(pos)} positions (+ blank), "
          f"torch threads {torch.get_num_threads()}, device {args.device}")
    if not args.skip_single:
        _single_layers(spec, imgs, pos, args)
    _multi_layers(spec, imgs, pos, args.device)
    return 0


def _single_layers(spec, imgs, pos, args) -> None:
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


class _Count:
    """Input pixels of every forward call of the model, in model-input images."""

    def __init__(self, module, size: int):
        self.pixels, self.size = 0, size
        self.handle = module.register_forward_pre_hook(self._hook)

    def _hook(self, module, inputs):
        x = inputs[0]
        self.pixels += x.shape[0] * x.shape[2] * x.shape[3]

    def images(self) -> float:
        return self.pixels / self.size**2


def _multi_layers(spec, imgs, pos, device) -> None:
    count = _Count(spec.module, 227)
    try:
        t0 = time.perf_counter()
        multi = sweep_layers(spec, imgs, ALL_LAYERS, pos, device=device)
        t_multi, n_multi = time.perf_counter() - t0, count.images()
        count.pixels = 0
        fill = imgs[:, :, :1, :1]
        t0 = time.perf_counter()
        single = {la: sweep_responses(spec, _moved(imgs, ds.attrs["shift_px"], fill), la, pos,
                                      device=device) for la, ds in multi.items()}
        t_single, n_single = time.perf_counter() - t0, count.images()
    finally:
        count.handle.remove()
    err = max(float(np.abs(multi[la].responses.values - single[la].responses.values).max())
              / max(float(np.abs(single[la].responses.values).max()), 1.0) for la in multi)
    first = next(iter(multi.values()))
    print(f"conv1..pool5 (8 layers), {len(imgs)} shapes x {len(pos)} positions: one sweep per "
          f"layer {t_single:6.1f} s, {n_single:7.0f} image-equivalents; sweep_layers "
          f"{t_multi:6.1f} s, {n_multi:7.0f} image-equivalents (canvas {first.attrs['canvas_px']}"
          f" x {first.attrs['canvas_across_px']}) -> {t_single / t_multi:4.1f}x time, "
          f"{n_single / n_multi:4.1f}x fewer images; max |diff| / scale {err:.1e}")


if __name__ == "__main__":
    sys.exit(main())
