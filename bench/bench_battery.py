"""The battery vs the bare forward passes it needs (target ratio <= 1.5).

``characterize`` of SqueezeNet 1.0 (real weights from ``$ARTIPHYS_WEIGHTS_DIR`` when
present, else random init), a few layers, APC + TI, no controls, no synthesis, into a
fresh run directory. Every forward pass the battery makes through the model is noted
(input shape, by a global forward pre-hook that only counts), and the same passes are then
run bare: random inputs of those shapes through ``model(x)`` under ``torch.no_grad``, the
same batch sizes, no hooks, no store. The ratio battery / bare is printed with both wall
times and the number of images. The bare passes are those the battery made (so a pass
the battery repeats needlessly is in both); their count is printed.

    nice python bench/bench_battery.py [--layers features.3,features.7] [--input-size 160]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from artiphys.experiments.base import ExecutionConfig, ModelConfig  # noqa: E402
from artiphys.experiments.characterize import CharacterizeConfig, run  # noqa: E402
from artiphys.progress import Progress  # noqa: E402


def battery_config(args, executor: str = "local", workers: int = 2) -> CharacterizeConfig:
    return CharacterizeConfig(
        model=ModelConfig(name=args.model, input_size_px=args.input_size),
        layers=tuple(args.layers.split(",")), tests=("apc", "ti"), controls=(),
        synthesis="none", ti_step_px=args.ti_step, ti_extent_px=args.ti_extent,
        execution=ExecutionConfig(batch_size=args.batch_size, executor=executor,
                                  workers=workers, device="cpu"))


def timed_battery(config) -> tuple[float, list]:
    """Wall time of the battery in a fresh run directory, and the input shapes of the
    model's forward passes (those of modules of the top-level model's class)."""
    shapes: list = []
    top: list = []

    def note(module, inputs):
        if top and type(module) is top[0] and inputs and torch.is_tensor(inputs[0]):
            shapes.append(tuple(inputs[0].shape))

    handle = torch.nn.modules.module.register_module_forward_pre_hook(note)
    try:
        spec = config.model.load()
        top.append(type(spec.module))
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            run(config, Path(tmp) / "run", progress=Progress(quiet=True))
            wall = time.perf_counter() - t0
    finally:
        handle.remove()
    return wall, shapes


def timed_bare(model, shapes) -> float:
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.rand(s, generator=gen) for s in shapes]
    t0 = time.perf_counter()
    with torch.no_grad():
        for x in inputs:
            model(x)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="squeezenet1_0")
    ap.add_argument("--layers", default="features.3,features.7,features.12")
    ap.add_argument("--input-size", type=int, default=160)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--ti-step", type=int, default=4)
    ap.add_argument("--ti-extent", type=int, default=16)
    args = ap.parse_args()
    config = battery_config(args)
    wall, shapes = timed_battery(config)
    spec = config.model.load()  # the battery's model loads the same way (the hook saw it)
    bare = timed_bare(spec.module.eval(), shapes)
    images = sum(s[0] for s in shapes)
    weights = str(spec.provenance().get("weights_sha256") or "random init")[:12]
    print(f"{args.model} (weights {weights}), layers "
          f"{args.layers}, {args.input_size} px, APC + TI (step {args.ti_step}, extent "
          f"+-{args.ti_extent} px), batch {args.batch_size}")
    print(f"forward passes the battery made: {len(shapes)} batches, {images} images")
    print(f"battery           {wall:8.2f} s")
    print(f"bare forward      {bare:8.2f} s")
    print(f"ratio battery / bare forward: {wall / bare:.2f} (target <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
