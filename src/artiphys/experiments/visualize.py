"""The ``visualize`` and ``top-patches`` experiments: maximal images, probes, patches.

``visualize`` stores each batch of units' maximal images as one step (so a killed run
resumes at the batch it reached), then per layer the Bandi & Kinley probe table; the
gallery PNGs are drawn from the stored images. ``top-patches`` stores per layer the
top-k excitatory and suppressive natural-image patches with their visualised features.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
import xarray as xr

from artiphys.config import Config, option
from artiphys.experiments.base import (ExecutionConfig, ModelConfig, Session, model_inputs,
                                       run_experiment)
from artiphys.experiments.parsing import parse_channels
from artiphys.store.rundir import RunDir, file_label


@dataclass(frozen=True)
class VisualizeConfig(Config):
    """Maximal images of a model's units (Yosinski et al. 2015; Bandi & Kinley)."""

    kind = "visualize"
    model: ModelConfig = option(default_factory=ModelConfig, help="The model.")
    layers: tuple[str, ...] = option((), cli="--layer", help="Layer name or alias "
                                     "(comma-separated for several).")
    units: str = option("0-63", help="Channels, e.g. 0-63 or 1,5,9.")
    objective: Literal["unit", "channel", "layer"] = option(
        "channel", help="Centre unit, channel mean over the map, or layer mean.")
    param: Literal["fourier", "pixel"] = option("fourier", help="Image parameterisation.")
    color: Literal["all", "r", "g", "b", "gray"] = option("all", help="Colour channels "
                                                          "synthesised.")
    steps: int = option(256, help="Optimisation steps.")
    rescue_steps: int = option(16, help="First steps with redirected ReLU gradients, so "
                               "channels silent at the start get an image (0: off).")
    lr: float | None = option(None, help="Learning rate [default: the recipe's].")
    size: str = option("input", help="Image side in px, 'rf' (unit's RF) or 'input'.")
    units_per_batch: int = option(64, help="Units optimised together (one step each).")
    suppress: bool = option(False, help="Most suppressive images (negated objective).")
    probes: bool = option(True, help="Probe tables: zoom, rotation, colour, baselines.")
    synth_seed: int = option(0, help="Seed of the optimisation.")
    execution: ExecutionConfig = option(default_factory=ExecutionConfig)

    def validate(self):
        if not self.layers:
            self.fail("layers", "name at least one layer (see `artiphys layers MODEL`)")
        parse_channels(self.units, f"{self.kind}.units")
        if self.steps < 1:
            self.fail("steps", f"must be at least 1, not {self.steps}")
        if self.rescue_steps < 0:
            self.fail("rescue_steps", f"must be 0 or more, not {self.rescue_steps}")
        if self.lr is not None and not self.lr > 0:
            self.fail("lr", f"must be positive, not {self.lr}")
        if self.units_per_batch < 1:
            self.fail("units_per_batch", "must be a positive integer")
        if self.size not in ("input", "rf") and not (self.size.isdigit() and int(self.size) > 0):
            self.fail("size", f"must be a number of px, 'rf' or 'input', not {self.size!r}")
        if self.size == "rf" and self.objective != "unit":
            self.fail("size", "'rf' reads one unit at the image centre; use it with "
                      "objective = unit")

    def size_px(self):
        return None if self.size == "input" else ("rf" if self.size == "rf" else int(self.size))


def run_visualize(config: VisualizeConfig, out: str | os.PathLike, **options) -> RunDir:
    """Maximal images (and probes) of ``config`` into run directory ``out``."""
    return run_experiment(config, out, lambda s: _visualize(s, config), **options)


def _visualize(session: Session, config: VisualizeConfig) -> dict:
    from artiphys.models.layers import resolve_layer
    from artiphys.synthesis.render import default_recipe

    spec = config.model.load()
    spec.module.to(session.device)
    units = parse_channels(config.units)
    recipe = default_recipe(config.param, steps=config.steps, rescue_steps=config.rescue_steps,
                            **({"lr": config.lr} if config.lr is not None else {}))
    batches = [units[i:i + config.units_per_batch]
               for i in range(0, len(units), config.units_per_batch)]
    session.progress.plan(len(config.layers) * (len(batches) + config.probes))
    summary = {}
    for layer in config.layers:
        label = resolve_layer(spec, layer).label
        images, digests = _maximal_images(session, config, spec, layer, label, batches,
                                          recipe)
        if config.probes:
            _probes(session, config, spec, layer, label, images, digests)
        summary[label] = {"units": len(units),
                          "final_median": float(np.median(images["final"].values))}
    return summary


def _maximal_images(session, config, spec, layer, label, batches, recipe):
    """The layer's maximal images (one step per batch of units) and the steps' digests."""
    from artiphys.synthesis.render import render_units
    from artiphys.synthesis.save import synthesis_dataset

    settings = {"objective": config.objective, "param": config.param, "color": config.color,
                "size": config.size, "suppress": config.suppress, "seed": config.synth_seed,
                "recipe": recipe.to_dict()}
    parts, digests = [], []
    for b, chunk in enumerate(batches):
        session.progress.step(f"{label}: maximal images of units {chunk[0]}-{chunk[-1]}")
        step = session.step("maximal_images", 1,
                            inputs={**model_inputs(spec), "layer": layer, "units": chunk,
                                    "batch": b},
                            settings=settings, path=f"synthesis/{file_label(label)}/batch-{b:03d}",
                            layer=label, result="maximal_images", batch=b,
                            model=spec.name, condition=spec.condition)

        def compute(chunk=chunk, b=b):
            res = render_units(spec, layer, chunk, objective=config.objective,
                               param=config.param, color=config.color,
                               size_px=config.size_px(), recipe=recipe,
                               batch_size=len(chunk), seed=config.synth_seed + b,
                               progress=not session.progress.quiet, negate=config.suppress)
            ds = synthesis_dataset(res)
            ds.attrs.update(analysis="synthesis", layer=label)
            return ds

        parts.append(session.store.get_or_compute(step, compute))
        digests.append(step.digest)
    images = parts[0] if len(parts) == 1 else xr.concat(parts, dim="unit",
                                                        combine_attrs="drop_conflicts")
    _write_gallery(session.run, label, images)
    return images, digests


def _write_gallery(run: RunDir, label: str, images: xr.Dataset) -> None:
    """The gallery PNG (drawn from the stored images; not itself a result)."""
    from artiphys.store.atomic import atomic_write_bytes
    from artiphys.synthesis.save import montage, png_bytes, to_uint8

    tiles = [to_uint8(np.asarray(img)) for img in images["images"].values]
    factor = max(1, 64 // tiles[0].shape[0])
    tiles = [t.repeat(factor, 0).repeat(factor, 1) for t in tiles]
    atomic_write_bytes(run.file(f"synthesis/{file_label(label)}/gallery.png"),
                       png_bytes(montage(tiles, 8)))


def _probes(session, config, spec, layer, label, images: xr.Dataset, digests) -> None:
    import torch

    from artiphys.synthesis.probes import probe_responses

    session.progress.step(f"{label}: probes of {images.sizes['unit']} maximal images")
    units = None if config.objective == "layer" else [int(u) for u in images["unit"].values]
    step = session.step("probes", 1, inputs={"images": digests},
                        settings={"units": units}, path=f"synthesis/{file_label(label)}/probes",
                        layer=label, result="probes", model=spec.name,
                        condition=spec.condition)
    session.store.get_or_compute(step, lambda: probe_responses(
        spec, layer, torch.as_tensor(images["images"].values), units))


@dataclass(frozen=True)
class TopPatchesConfig(Config):
    """Top-k excitatory and suppressive natural-image patches of a model's units
    (Pospisil et al. 2018, Figs. 9-12)."""

    kind = "top-patches"
    model: ModelConfig = option(default_factory=ModelConfig, help="The model.")
    images_dir: str = option("", cli="--images", help="Folder of JPEG/PNG images "
                             "(searched recursively).")
    layers: tuple[str, ...] = option((), cli="--layer", help="Layer name or alias "
                                     "(comma-separated for several).")
    units: str = option("0-63", help="Channels, e.g. 0-63.")
    k: int = option(5, cli="-k", help="Images kept per unit and sign.")
    position: Literal["max", "center"] = option("max", help="Unit at the extreme of the "
                                                "map, or the centre unit.")
    n_images: int | None = option(None, help="Use a seeded random sample of this many images.")
    method: Literal["deconv", "guided"] = option(
        "deconv", help="Patch features: Zeiler & Fergus deconvolution (the paper's Figs. "
        "9-12) or guided backpropagation.")
    suppressive: Literal["linear", "same"] = option(
        "linear", help="Read the most suppressive patches on the layer's linear sublayer "
        "(before its rectifier; on a ReLU they are ties at 0) or on the layer itself "
        "(ties flagged).")
    execution: ExecutionConfig = option(default_factory=ExecutionConfig)

    def validate(self):
        if not self.images_dir:
            self.fail("images_dir", "give a folder of natural images (--images DIR)")
        if not self.layers:
            self.fail("layers", "name at least one layer (see `artiphys layers MODEL`)")
        parse_channels(self.units, f"{self.kind}.units")
        if self.k < 1:
            self.fail("k", f"must be at least 1, not {self.k}")
        if self.n_images is not None and self.n_images < 1:
            self.fail("n_images", f"must be at least 1, not {self.n_images}")


def run_top_patches(config: TopPatchesConfig, out: str | os.PathLike, **options) -> RunDir:
    """Top natural-image patches of ``config`` into run directory ``out``."""
    return run_experiment(config, out, lambda s: _top_patches(s, config), **options)


def _top_patches(session: Session, config: TopPatchesConfig) -> dict:
    from artiphys.models.layers import resolve_layer
    from artiphys.stimuli.natural import images as natural_images
    from artiphys.synthesis.save import top_patches_dataset
    from artiphys.synthesis.top_patches import top_patches

    spec = config.model.load()
    spec.module.to(session.device)
    stimuli = natural_images(config.images_dir, n=config.n_images,
                             size_px=spec.preprocessing.input_size_px)
    units = parse_channels(config.units)
    session.progress.plan(len(config.layers))
    summary = {}
    for layer in config.layers:
        label = resolve_layer(spec, layer).label
        session.progress.step(f"{label}: top {config.k} of {len(stimuli)} images for "
                              f"{len(units)} units")
        step = session.step("top_patches", 1,
                            inputs={**model_inputs(spec), "layer": layer, "units": units,
                                    "stimuli": stimuli.content_hash},
                            settings={"k": config.k, "position": config.position,
                                      "method": config.method,
                                      "suppressive": config.suppressive},
                            path=f"top_patches/{file_label(label)}/patches", layer=label,
                            result="top_patches", model=spec.name, condition=spec.condition)

        def compute(layer=layer):
            res = top_patches(spec, stimuli, layer, units, config.k, position=config.position,
                              batch_size=session.batch_size, method=config.method,
                              suppressive=config.suppressive,
                              progress=not session.progress.quiet)
            ds = top_patches_dataset(res)
            table = xr.Dataset.from_dataframe(res.table.reset_index(drop=True))
            ds = ds.merge(table.rename({"index": "row"}).rename_vars(
                {c: f"table_{c}" for c in res.table.columns}))
            ds.attrs.update(analysis="top_patches", layer=label)
            return ds

        ds = session.store.get_or_compute(step, compute)
        settings = json.loads(ds.attrs.get("settings_json", "{}"))
        summary[label] = {"units": len(units), "images": len(stimuli),
                          "suppressive_read_on": settings.get("suppressive_layer"),
                          "units_with_tied_responses": settings.get("tied")}
    return summary


__all__ = ["TopPatchesConfig", "VisualizeConfig", "run_top_patches", "run_visualize"]
