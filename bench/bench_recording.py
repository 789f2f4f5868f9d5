"""Recording throughput vs the bare forward pass (target ratio >= 0.9).

AlexNet (torchvision layout, random init, seeded), 362 random images at 227 x 227, the
centre units of every sublayer (every leaf module of ``features``, ``avgpool`` and
``classifier``: 21 layers) recorded with ``artiphys.recording.record`` and compared with
the bare ``model(x)`` forward on the same batches (moved to the same device) in the same
run. Each is timed ``--repeats`` times, alternating, and the best time of each is kept
(on a shared machine the slower runs measure the neighbours); the median of the paired
ratios is printed too.

    python bench/bench_recording.py [--batch-size 64] [--repeats 3] [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
import torchvision  # noqa: E402

from artiphys.models.spec import ModelSpec, Preprocessing, default_device  # noqa: E402
from artiphys.recording import hooks_left, record  # noqa: E402
from artiphys.stimuli.base import StimulusSet  # noqa: E402

N_IMAGES = 362  # the shape set of Pospisil et al. 2018
SIZE_PX = 227


def sublayers(model: torch.nn.Module) -> list[str]:
    names = []
    for part in ("features", "avgpool", "classifier"):
        mod = getattr(model, part)
        leaves = [f"{part}.{n}" if n else part for n, m in mod.named_modules()
                  if not list(m.children())]
        names += leaves
    return names


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_forward(model, images, batch_size, device) -> float:
    sync(device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for lo in range(0, len(images), batch_size):
            model(images[lo:lo + batch_size].to(device, non_blocking=True))
    sync(device)
    return time.perf_counter() - t0


def recording(spec, stimuli, layers, batch_size, device) -> float:
    sync(device)
    t0 = time.perf_counter()
    out = record(spec, stimuli, layers, "center", batch_size=batch_size, device=device)
    sync(device)
    elapsed = time.perf_counter() - t0
    assert len(out) == len(layers) and all(da.shape[0] == len(stimuli) for da in out.values())
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default=None)
    parser.add_argument("--n-images", type=int, default=N_IMAGES)
    args = parser.parse_args()

    device = default_device(args.device)
    torch.manual_seed(0)
    model = torchvision.models.alexnet().eval().to(device)
    spec = ModelSpec("alexnet", model, Preprocessing(SIZE_PX), condition="untrained", seed=0)
    images = torch.rand(args.n_images, 3, SIZE_PX, SIZE_PX,
                        generator=torch.Generator().manual_seed(0))
    stimuli = StimulusSet.from_tensor(images, name="bench-random")
    layers = sublayers(model)

    # warm up both paths (allocator, cuDNN autotune, first-batch layer-order pass)
    bare_forward(model, images[: args.batch_size], args.batch_size, device)
    recording(spec, stimuli.subset(range(args.batch_size)), layers, args.batch_size, device)

    bare, rec = [], []
    for _ in range(args.repeats):
        bare.append(bare_forward(model, images, args.batch_size, device))
        rec.append(recording(spec, stimuli, layers, args.batch_size, device))
    if hooks_left(model):
        print("error: hooks left on the model", file=sys.stderr)
        return 1

    n = args.n_images
    bare_ips, rec_ips = n / min(bare), n / min(rec)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}; batch size {args.batch_size}; {n} images {SIZE_PX}x{SIZE_PX}; "
          f"{len(layers)} AlexNet sublayers, centre units; best of {args.repeats}")
    print(f"bare forward:  {bare_ips:8.1f} images/s")
    print(f"recording:     {rec_ips:8.1f} images/s")
    paired = sorted(b / r for b, r in zip(bare, rec))
    print(f"ratio recording/bare: {rec_ips / bare_ips:.3f} (target >= 0.9); median of "
          f"paired runs {paired[len(paired) // 2]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
