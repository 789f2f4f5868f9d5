"""Benchmark: generate the 362 shapes at 227x227 and turn them into model input.

Target: well under 1 s on CPU for ``make_stimuli("shapes").images()`` followed by
``to_model_input(images, Preprocessing(input_size_px=227))``. Prints the best of several
runs (seconds), the split between rendering and normalisation, and the ratio to 1 s.
Standalone: ``python bench/bench_stimuli.py``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from artiphys.models.spec import Preprocessing  # noqa: E402
from artiphys.stimuli.base import to_model_input  # noqa: E402
from artiphys.stimuli.registry import make_stimuli  # noqa: E402

TARGET_S = 1.0
REPEATS = 5


def main() -> int:
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    prep = Preprocessing(input_size_px=227)
    make_stimuli("shapes").images(0, 2)  # warm caches (boundaries, scale) and imports
    totals, renders, norms, cpus = [], [], [], []
    for _ in range(REPEATS):
        c0 = time.process_time()
        t0 = time.perf_counter()
        s = make_stimuli("shapes")
        x = s.images()
        t1 = time.perf_counter()
        y = to_model_input(x, prep)
        t2 = time.perf_counter()
        cpus.append(time.process_time() - c0)
        totals.append(t2 - t0)
        renders.append(t1 - t0)
        norms.append(t2 - t1)
        del x, y
    best = min(totals)
    print(f"362 shapes at 227x227 -> model input: best {best:.3f} s of {REPEATS} "
          f"(median {sorted(totals)[REPEATS // 2]:.3f} s; build+render {min(renders):.3f} s, "
          f"to_model_input {min(norms):.3f} s), torch threads {torch.get_num_threads()}")
    print(f"CPU time (all threads): min {min(cpus):.3f} s; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall time inflates "
          "when the machine is shared)")
    print(f"ratio to the {TARGET_S:.0f} s target: {best / TARGET_S:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
