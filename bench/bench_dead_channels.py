"""Benchmark: channels whose maximal image beats their best natural image, with and without
the redirected-ReLU rescue (issue 12, "no dead images").

Standalone: ``nice python bench/bench_dead_channels.py [--n-images 200] [--size 224]
[--steps 32] [--param pixel]``. SqueezeNet 1.0 with the real weights of
``$ARTIPHYS_WEIGHTS_DIR`` (``squeezenet1_0-*.pth``), layers ``features.5`` and
``features.7``, channel objective (channel mean over the map). Natural images:
``$ARTIPHYS_SHARED/data/imagenet-sample-256`` (a seeded sample of ``--n-images``, centre
224 crop). All channels of a layer are optimised in one batch with the default recipe of
``--param`` (``rescue_steps`` 0 = before, 16 = after). A channel counts as driven when some
natural image gives it a positive mean; it is rescued when its maximal image's mean is
larger than its best natural image's. Printed per layer and in total: driven channels,
and those beaten, before and after.
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
from artiphys.models.weights import load_state_dict  # noqa: E402
from artiphys.recording.hooks import forward_to_layers  # noqa: E402
from artiphys.stimuli.natural import find_images, load_image  # noqa: E402
from artiphys.synthesis.render import default_recipe, render_units  # noqa: E402

LAYERS = ("features.5", "features.7")


def squeezenet():
    folder = Path(os.environ.get("ARTIPHYS_WEIGHTS_DIR", "/work/shared/weights"))
    module = torchvision.models.squeezenet1_0()
    module.load_state_dict(load_state_dict(next(folder.glob("squeezenet1_0-*.pth"))))
    return as_spec(module.eval())


def natural_best(spec, n: int) -> dict:
    shared = Path(os.environ.get("ARTIPHYS_SHARED", "/work/shared"))
    paths = find_images(shared / "data" / "imagenet-sample-256", n=n, seed=0)
    best = {layer: None for layer in LAYERS}
    for lo in range(0, len(paths), 50):
        x = torch.stack([load_image(p, 224) for p in paths[lo:lo + 50]])
        with torch.no_grad():
            acts = forward_to_layers(spec, spec.preprocessing.normalise(x), list(LAYERS))
        for layer in LAYERS:
            m = acts[layer].mean((2, 3)).max(0).values
            best[layer] = m if best[layer] is None else torch.maximum(best[layer], m)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-images", type=int, default=200)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--param", default="pixel", choices=["pixel", "fourier"])
    ap.add_argument("--rescue", default="0,16", help="rescue_steps values to run")
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    spec = squeezenet()
    best = natural_best(spec, args.n_images)
    print(f"SqueezeNet 1.0, {args.n_images} natural images, {args.param} images of "
          f"{args.size} px, {args.steps} steps, channel objective")
    rescues = [int(r) for r in args.rescue.split(",")]
    totals = {r: [0, 0] for r in rescues}
    for layer in LAYERS:
        units = list(range(best[layer].numel()))
        driven = best[layer] > 0
        for rescue in rescues:
            recipe = default_recipe(args.param, steps=args.steps, rescue_steps=rescue)
            t0 = time.perf_counter()
            res = render_units(spec, layer, units, objective="channel", param=args.param,
                               size_px=args.size, recipe=recipe, batch_size=len(units))
            beat = (torch.as_tensor(res.final) > best[layer]) & driven
            totals[rescue][0] += int(beat.sum())
            totals[rescue][1] += int(driven.sum())
            print(f"{layer} rescue_steps={rescue:2d}: {int(beat.sum())}/{int(driven.sum())} "
                  f"driven channels beat their best natural image "
                  f"({int((torch.as_tensor(res.final) <= 0).sum())} maximal images at <= 0; "
                  f"{time.perf_counter() - t0:.0f} s)", flush=True)
    for rescue in rescues:
        label = "before (no rescue)" if rescue == 0 else f"after (rescue_steps={rescue})"
        b, d = totals[rescue]
        print(f"{label}: {b}/{d} = {b / max(d, 1):.1%}")


if __name__ == "__main__":
    main()
