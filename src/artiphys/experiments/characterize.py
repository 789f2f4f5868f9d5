"""The ``characterize`` experiment: the artiphysiology battery of Pospisil et al. (2018).

The shapes (and large, dim and natural-image sets where needed) are recorded from the
centre unit of every channel of every layer; APC fits, translation invariance (TI),
sparsity, response histograms, top/bottom shapes and the natural/shape max ratio follow,
for the model and each control: shuffled responses (no forward pass), an untrained twin
and a weight-shuffled twin. Every result is a step of the run's step store
(:mod:`artiphys.experiments.battery` builds them), so ``--resume`` recomputes exactly
what a changed setting touches; ``summary.json`` is rebuilt from the results each run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from artiphys.config import Config, option
from artiphys.experiments.base import ExecutionConfig, ModelConfig, run_experiment
from artiphys.store.rundir import RunDir

TESTS = ("apc", "ti", "sparsity", "natural")
CONTROLS = ("shuffle", "untrained", "weight-shuffle")
NATURAL_ENV = "ARTIPHYS_NATURAL_IMAGES"


@dataclass(frozen=True)
class CharacterizeConfig(Config):
    """The Pospisil et al. (2018) battery on a model's layers, with controls."""

    kind = "characterize"
    model: ModelConfig = option(default_factory=ModelConfig, help="The model.")
    layers: tuple[str, ...] = option((), help="Comma-separated layer names or aliases "
                                     "[default: every sublayer].")
    tests: tuple[str, ...] = option(TESTS, choices=TESTS,
                                    help="Analyses: apc, ti, sparsity, natural.")
    controls: tuple[str, ...] = option(("shuffle", "untrained"), choices=CONTROLS,
                                       help="Controls: shuffle, untrained, weight-shuffle.")
    images_dir: str | None = option(None, cli="--images", help="Folder of natural images "
                                    f"[default: ${NATURAL_ENV}].")
    n_images: int = option(362, help="Natural images drawn from the folder.")
    shape_size: str = option("32", help="Shape size (big-circle diameter): px at the input "
                             "size (the paper: 32 at 227), or rf:FRACTION of each layer's "
                             "RF (e.g. rf:0.5).")
    kurtosis_threshold: float | None = option(
        None, cli="--kurtosis-filter", help="Exclude units with kurtosis >= this from APC "
        "results (paper: 42). Off by default.")
    cv_folds: int = option(0, help="Also a k-fold cross-validated APC fit (0 = off).")
    ti_step_px: int = option(2, cli="--ti-step", help="TI sweep step, px.")
    ti_extent_px: int = option(50, cli="--ti-extent", help="TI sweep +- extent, px.")
    ti_axes: tuple[str, ...] = option(("x",), choices=("x", "y"),
                                      help="TI sweep directions: x, or x,y.")
    control_seed: int = option(0, help="Seed of shuffles, twins and natural-image draws.")
    control_seeds: int = option(3, help="Seeds of each random-weight control (untrained, "
                                "weight-shuffle): control_seed, control_seed + 1, ...")
    reference_fits: str | None = option(
        None, cli="--reference", help="Table of recorded neurons' APC fits (an r column), "
        "e.g. v4_apc_fits_pc2001_109cells.csv: adds KS vs the neurons.")
    synthesis: Literal["none", "examples", "all"] = option(
        "examples", help="Visualise example units (maximal image + probes, diverse set, "
        "top/bottom natural patches), every unit ('all': no diverse sets beyond the "
        "examples), or none.")
    n_examples: int = option(4, help="Example units per layer: highest APC r, highest TI, "
                             "closest to the ideal V4 unit, median APC r.")
    units_of_interest: tuple[str, ...] = option((), help="More example units, as "
                                                "layer:channel (e.g. conv2:5,conv4:17).")
    synthesis_layers: tuple[str, ...] = option((), help="Layers whose example units are "
                                               "visualised [default: every layer].")
    diverse_layers: tuple[str, ...] = option((), help="Layers whose example units get a "
                                             "diverse set [default: the synthesis layers].")
    synthesis_steps: int = option(256, help="Optimisation steps of a maximal image.")
    rescue_steps: int = option(16, help="First steps of a maximal image with redirected "
                               "ReLU gradients (silent units still get an image; 0: off).")
    diverse_steps: int = option(1000, help="Optimisation steps of a diverse set (and of "
                                "its textures).")
    diverse_lambdas: tuple[float, ...] = option(
        (), help="Diversity weights of the lambda sweep (must include 0) [default: Cadena "
        "et al.'s sweep].")
    execution: ExecutionConfig = option(default_factory=ExecutionConfig)

    def validate(self):
        if not self.tests:
            self.fail("tests", f"name at least one analysis: {', '.join(TESTS)}")
        if len(set(self.layers)) != len(self.layers):
            self.fail("layers", "a layer is named twice")
        if self.n_images < 1:
            self.fail("n_images", f"must be at least 1, not {self.n_images}")
        from artiphys.errors import StimulusError
        from artiphys.tuning.shape_size import parse_shape_size

        try:
            parse_shape_size(self.shape_size)
        except StimulusError as exc:
            self.fail("shape_size", str(exc))
        if self.control_seeds < 1:
            self.fail("control_seeds", f"must be at least 1, not {self.control_seeds}")
        if self.kurtosis_threshold is not None and not self.kurtosis_threshold > 0:
            self.fail("kurtosis_threshold", "must be positive (the paper: 42)")
        if self.cv_folds == 1 or self.cv_folds < 0:
            self.fail("cv_folds", f"must be 0 (off) or at least 2, not {self.cv_folds}")
        if self.ti_step_px < 1:
            self.fail("ti_step_px", f"must be a positive number of px, not {self.ti_step_px}")
        if self.ti_extent_px < self.ti_step_px:
            self.fail("ti_extent_px", f"must be at least the step ({self.ti_step_px} px), "
                      f"not {self.ti_extent_px}")
        if not self.ti_axes:
            self.fail("ti_axes", "name at least one axis: x or y")
        if self.n_examples < 0:
            self.fail("n_examples", f"must be 0 or more, not {self.n_examples}")
        if self.diverse_lambdas and (0.0 not in self.diverse_lambdas
                                     or min(self.diverse_lambdas) < 0):
            self.fail("diverse_lambdas", "must be >= 0 and include 0 (the reference every "
                      "ratio divides by)")
        if self.synthesis_steps < 1 or self.diverse_steps < 1:
            self.fail("synthesis_steps", "synthesis_steps and diverse_steps must be >= 1")
        if self.rescue_steps < 0:
            self.fail("rescue_steps", f"must be 0 or more, not {self.rescue_steps}")

    def resolved(self) -> CharacterizeConfig:
        """The config with the natural-image folder taken from the environment when unset
        (so the stored ``config.toml`` says which folder was used)."""
        if self.images_dir is None and os.environ.get(NATURAL_ENV):
            return self.replace(images_dir=os.environ[NATURAL_ENV])
        return self


def run(config: CharacterizeConfig, out: str | os.PathLike, **options) -> RunDir:
    """Run the battery of ``config`` into run directory ``out`` (options of
    :func:`~artiphys.experiments.base.run_experiment`: resume, restart, progress, command)."""
    from artiphys.experiments.battery import Battery

    config = config.resolved()
    return run_experiment(config, out, lambda session, battery: battery.run(session),
                          prepare=lambda: Battery(config), **options)


__all__ = ["CONTROLS", "CharacterizeConfig", "TESTS", "run"]
