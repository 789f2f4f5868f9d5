"""The ``diverse`` experiment: diverse feature visualisations (Cadena et al. 2018).

``--seed`` seeds the starting images (and texture starts) and the control twins.

For the same units of several layers of a model and of its controls (random-weight and
weight-shuffled twins), the lambda sweep of diverse sets (one step per condition and
layer) and the phase-invariance and linear-combination indices (one step each, reading
the sets' step). Files: ``<condition>/<layer>/diverse.<digest>.nc`` and
``.../diverse_indices.<digest>.nc``; ``artiphys report RUN`` draws them.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from dataclasses import dataclass
from typing import Literal

from artiphys.config import Config, option
from artiphys.experiments.base import (ExecutionConfig, ModelConfig, Session, model_inputs,
                                       run_experiment)
from artiphys.experiments.parsing import parse_channels
from artiphys.store.rundir import RunDir, file_label

DEFAULT_LAMBDAS = (0.0, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48)


@dataclass(frozen=True)
class DiverseConfig(Config):
    """Diverse sets of maximally driving images and invariance indices."""

    kind = "diverse"
    model: ModelConfig = option(default_factory=ModelConfig, help="The model.")
    layers: tuple[str, ...] = option((), cli="--layer", help="Layers of the units (names "
                                     "or aliases, comma-separated).")
    units: str = option("0-31", help="Channels, e.g. 0-31 or 1,5,9.")
    controls: tuple[str, ...] = option((), choices=("untrained", "weight-shuffle"),
                                       help="Also run the same units of controls: untrained, "
                                            "weight-shuffle.")
    n_images: int = option(6, help="Images per set.")
    lambdas: tuple[float, ...] = option(DEFAULT_LAMBDAS, help="Diversity weights, incl. 0.")
    threshold: float = option(0.9, help="Chosen lambda keeps this fraction of the lambda=0 "
                              "mean activation.")
    steps: int = option(1000, help="Optimisation steps (at most).")
    patience: int = option(100, help="Early-stop patience, steps.")
    distance: Literal["features", "pixel"] = option("features", help="Distance space.")
    feature_window: Literal["unit", "full"] = option(
        "unit", help="Compare the preceding layer at the positions the unit reads, or the "
                     "whole map (the paper's wording).")
    optimizer: Literal["normalized_sgd", "adam"] = option(
        "normalized_sgd", help="adam = the paper's Adam (lr 0.1 on the 0-255 scale).")
    prior: Literal["none", "spectral"] = option("none", help="Image prior for the alpha term.")
    alpha: float = option(0.0, help="Weight of the image prior.")
    norm: float | None = option(None, help="Image norm ([0,1] pixel scale) [default: half "
                                "the natural-patch norm].")
    natural_images: str | None = option(None, help="Folder of natural images for the "
                                        "default norm.")
    distance_weight: Literal["activation", "none"] = option(
        "activation", help="Weight each pair's distance by how well the unit sees the "
                           "less-driving image of the pair (see docs/diverse.md).")
    reference_restart: bool = option(True, help="Restart lambda = 0 from each unit's most "
                                     "driving images of the sweep (no lambda beats it).")
    gain_floor: float = option(0.05, help="Diversity gain divides by max(d(0), floor x "
                               "rms(0)), finite when lambda = 0 images coincide.")
    batch_units: int | None = option(None, key=False, help="Units per optimisation batch "
                                     "[default: all that fit the memory budget].")
    indices: bool = option(True, help="Also the phase-invariance and linear-combination "
                           "indices.")
    texture_steps: int = option(1000, help="Texture optimisation steps (indices).")
    execution: ExecutionConfig = option(default_factory=ExecutionConfig)

    def validate(self):
        if not self.layers:
            self.fail("layers", "name at least one layer, e.g. --layer conv3_1")
        parse_channels(self.units, f"{self.kind}.units")
        if not self.lambdas:
            self.fail("lambdas", "give the diversity weights, including 0, e.g. 0,0.1,1")
        if 0.0 not in self.lambdas or min(self.lambdas) < 0:
            self.fail("lambdas", "must be >= 0 and include 0 (ratios are taken at lambda = 0)")
        if self.n_images < 2:
            self.fail("n_images", f"a diverse set needs at least 2 images, not {self.n_images}")
        if not 0 <= self.gain_floor:
            self.fail("gain_floor", f"must be >= 0, not {self.gain_floor}")
        if not 0 < self.threshold <= 1:
            self.fail("threshold", f"must be in (0, 1], not {self.threshold}")
        if self.steps < 1 or self.texture_steps < 1:
            self.fail("steps", "steps and texture_steps must be at least 1")
        if self.norm is not None and not self.norm > 0:
            self.fail("norm", f"must be positive, not {self.norm}")

    def recipe(self):
        from artiphys.synthesis.diverse import DiverseRecipe

        return DiverseRecipe(n_images=self.n_images, lambdas=self.lambdas,
                             threshold=self.threshold, steps=self.steps,
                             patience=self.patience, distance=self.distance,
                             feature_window=self.feature_window, optimizer=self.optimizer,
                             alpha=self.alpha, distance_weight=self.distance_weight,
                             reference_restart=self.reference_restart,
                             gain_floor=self.gain_floor, seed=self.model.seed)

    def texture(self):
        from artiphys.synthesis.diverse import TextureRecipe

        return TextureRecipe(steps=self.texture_steps, optimizer=self.optimizer,
                             seed=self.model.seed)


def run_diverse(config: DiverseConfig, out: str | os.PathLike, **options) -> RunDir:
    """Diverse sets (and indices) of ``config`` into run directory ``out``."""
    return run_experiment(config, out, lambda s: _diverse(s, config), **options)


def _models(config: DiverseConfig) -> list:
    from artiphys.errors import ArtiphysError
    from artiphys.models.controls import TWINS

    spec = config.model.load()
    models = [spec] + [TWINS[c](spec, seed=config.model.seed) for c in config.controls]
    conditions = [m.condition for m in models]
    if len(set(conditions)) < len(conditions):
        raise ArtiphysError(f"conditions repeat ({', '.join(conditions)}): do not ask for a "
                            "control that the model already is (e.g. --untrained with "
                            "--controls untrained)")
    return models


def _diverse(session: Session, config: DiverseConfig) -> dict:
    from artiphys.models.layers import resolve_layer
    from artiphys.synthesis.priors import make_prior

    models = _models(config)
    units = parse_channels(config.units)
    prior = make_prior(config.prior)
    session.progress.plan(len(models) * len(config.layers) * (1 + config.indices))
    summary = {}
    for twin in models:
        twin.module.to(session.device)
        for layer in config.layers:
            label = resolve_layer(twin, layer).label
            summary[f"{twin.condition}/{label}"] = _one_layer(session, config, twin, layer,
                                                              label, units, prior)
    return summary


def _one_layer(session, config, twin, layer, label, units, prior) -> dict:
    from artiphys.synthesis.diverse import diverse_sets, invariance_indices, pre_rectifier_layer

    recipe = config.recipe()
    base = f"{twin.condition}/{file_label(label)}"
    meta = {"layer": label, "condition": twin.condition, "model": twin.name}
    session.progress.step(f"{twin.condition} {label}: diverse sets of {len(units)} units")
    sets_step = session.step("diverse", 1, inputs={**model_inputs(twin), "layer": layer,
                                                   "units": units},
                             settings={"recipe": recipe.to_dict(), "prior": config.prior,
                                       "norm": config.norm,
                                       "natural_images": config.natural_images},
                             path=f"{base}/diverse", result="diverse", **meta)
    ds = session.store.get_or_compute(sets_step, lambda: diverse_sets(
        twin, layer, units, recipe=recipe, norm=config.norm,
        natural_folder=config.natural_images, prior=prior, batch_units=config.batch_units,
        progress=not session.progress.quiet))
    silent = int((~ds["responsive"].values.astype(bool)).sum())
    pre = pre_rectifier_layer(twin, layer) if silent else None
    if pre:
        session.progress.note(
            f"note: {silent} unit(s) of {label} ({twin.condition}) stayed silent from the "
            f"noise start (no gradient through the rectifier); the pre-activation layer "
            f"{pre} has the same optimum and always a gradient")
    row = {"responsive": int(ds["responsive"].sum()), "units": len(units),
           "chosen_lambda_median": float(ds["chosen_lambda"].median()),
           "diversity_gain_median": float(ds["diversity_gain"].median())}
    if config.indices:
        session.progress.step(f"{twin.condition} {label}: invariance indices")
        texture = config.texture()
        ind_step = session.step("diverse_indices", 1, inputs={"sets": sets_step.digest},
                                settings={"texture": asdict(texture)},
                                path=f"{base}/diverse_indices", result="diverse_indices",
                                **meta)
        ind = session.store.get_or_compute(ind_step, lambda: invariance_indices(
            twin, ds, texture=texture, progress=not session.progress.quiet))
        row.update(phase_invariance_median=float(ind["phase_invariance_index"].median()),
                   linear_combination_median=float(ind["linear_combination_index"].median()))
    session.progress.note(f"{twin.condition} {label}: " + ", ".join(
        f"{k} {v:.3g}" for k, v in row.items()))
    return row


__all__ = ["DiverseConfig", "run_diverse"]
