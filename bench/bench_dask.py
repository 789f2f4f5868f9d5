"""The battery with ``--executor dask`` vs local: 2-worker speed-up and 1-worker overhead
(target overhead <= 15 %).

The same small battery as ``bench_battery.py`` (SqueezeNet 1.0, two layers, APC + TI, the
untrained control, so that there are independent steps to run side by side), run three
times into fresh run directories in one process: local, Dask with a LocalCluster of 1
worker process, Dask with 2 worker processes (1 thread each). The Dask times include
starting and closing the cluster, as a user running ``--executor dask`` sees them.

    nice python bench/bench_dask.py [--layers features.3,features.7] [--input-size 96]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from artiphys.experiments.base import ExecutionConfig, ModelConfig  # noqa: E402
from artiphys.experiments.characterize import CharacterizeConfig, run  # noqa: E402
from artiphys.progress import Progress  # noqa: E402


def timed(config) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run(config, Path(tmp) / "run", progress=Progress(quiet=True))
        return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="squeezenet1_0")
    ap.add_argument("--layers", default="features.3,features.7")
    ap.add_argument("--input-size", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    base = CharacterizeConfig(
        model=ModelConfig(name=args.model, input_size_px=args.input_size),
        layers=tuple(args.layers.split(",")), tests=("apc", "ti"), controls=("untrained",),
        control_seeds=1, synthesis="none", ti_step_px=4, ti_extent_px=8,
        execution=ExecutionConfig(batch_size=args.batch_size, device="cpu"))

    def with_dask(workers):
        ex = ExecutionConfig(batch_size=args.batch_size, device="cpu", executor="dask",
                             workers=workers, threads=1)
        return dataclasses.replace(base, execution=ex)

    local = timed(base)
    one = timed(with_dask(1))
    two = timed(with_dask(2))
    print(f"{args.model}, layers {args.layers}, {args.input_size} px, APC + TI, trained + "
          "untrained")
    print(f"local              {local:8.2f} s")
    print(f"dask, 1 worker     {one:8.2f} s")
    print(f"dask, 2 workers    {two:8.2f} s")
    print(f"1-worker overhead vs local: {one / local - 1:+.1%} (target <= +15%)")
    print(f"2-worker speed-up vs local: {local / two:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
