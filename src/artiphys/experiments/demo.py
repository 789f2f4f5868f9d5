"""The ``demo`` experiment (the main job of ``make demo``): the built-in V1 model end to end.

The default model (``v1bank``: Gabor simple cells, energy and Hubel-Wiesel complex cells,
DoG cells) has known answers, so the demo checks itself: the preferred orientation
recovered from a grating sweep must match each channel's designed orientation, simple
cells must come out with F1/F0 > 1 and energy complex cells with F1/F0 < 1. Gratings and
the 362 Pasupathy-Connor shapes are recorded from the centre unit of every channel of
each cell family; grating tuning and APC fits follow. Before them the demo runs the
characterize battery (:data:`DEMO_BATTERY`: APC, TI, sparsity, shuffle and untrained
controls, example units' maximal images, probes, and with natural images diverse sets and
top/bottom patches) into the same run, lightened so that the whole demo takes minutes on
two CPU cores (fewer layers, one control seed, fewer optimisation steps and lambdas than
the papers; the stored ``configs/characterize.toml`` says exactly which). A summary and the
report are built from what was stored. Every result is a step, so ``--resume`` redoes only
what is missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from artiphys.config import Config, option
from artiphys.experiments.base import (ExecutionConfig, ModelConfig, Session, model_inputs,
                                       run_experiment)
from artiphys.store.rundir import RunDir, file_label

DEMO_LAYERS = ("simple", "complex_energy", "complex_hw", "dog")
#: The battery settings of the demo (the rest are characterize's defaults).
DEMO_BATTERY = {
    "layers": ("simple.linear", "simple.relu", "complex_energy.pool", "complex_hw.pool",
               "dog.linear"),
    "control_seeds": 1, "n_images": 100, "n_examples": 2, "ti_step_px": 4,
    "synthesis_layers": ("simple.linear", "complex_energy.pool"),
    "diverse_layers": ("complex_energy.pool",), "synthesis_steps": 64,
    "diverse_steps": 100, "diverse_lambdas": (0.0, 0.16, 1.28),
}


@dataclass(frozen=True)
class DemoConfig(Config):
    """The built-in V1 model's known answers, and a report."""

    kind = "demo"
    model: ModelConfig = option(default_factory=ModelConfig, help="The model.")
    battery: bool = option(True, cli="--battery", cli_no="--no-battery",
                           help="Run the characterize battery first (DEMO_BATTERY settings).")
    execution: ExecutionConfig = option(default_factory=ExecutionConfig)

    def battery_config(self):
        """The characterize config the demo runs (its model and execution settings)."""
        from artiphys.experiments.characterize import CharacterizeConfig

        own = dict(DEMO_BATTERY)
        names = dict(self.model.load().module.named_modules())
        if not set(own["layers"]) <= set(names):  # another model: its paper sublayers
            for key in ("layers", "synthesis_layers", "diverse_layers"):
                own.pop(key)
        return CharacterizeConfig(model=self.model, execution=self.execution, **own)


def run_demo(config: DemoConfig | None = None, out: str | os.PathLike = "runs/demo",
             **options) -> RunDir:
    """Run the demo into ``out``: the battery's summary is in ``out/summary.json``, the
    known-answer checks in ``out/demo_summary.json``."""
    config = config or DemoConfig()
    if config.battery:
        from artiphys.experiments.characterize import run as run_characterize

        run_characterize(config.battery_config(), out, **options)
    return run_experiment(config, out, lambda s: _demo(s, config), **options)


def _recorded(session: Session, spec, stim, layers, set_name) -> dict:
    from artiphys.recording.record import Recorder, restore_dtypes

    steps = [session.step("responses", 1, inputs={**model_inputs(spec), "layer": la,
                                                  "units": "center",
                                                  "stimuli": stim.content_hash},
                          settings={}, path=f"{spec.condition}/{file_label(la)}/responses_"
                                            f"{set_name}",
                          layer=la, set=set_name, result="responses", model=spec.name,
                          condition=spec.condition) for la in layers]

    def compute(todo):
        with Recorder(spec, [t.meta["layer"] for t in todo], batch_size=session.batch_size,
                      device=session.device) as rec:
            arrays = rec.record(stim)
        return [arrays[t.meta["layer"]].to_dataset(name="responses") for t in todo]

    got = session.store.get_or_compute_many(steps, compute, finite=("responses",))
    return {st.meta["layer"]: (st.digest, restore_dtypes(ds["responses"]))
            for st, ds in zip(steps, got)}


def _demo(session: Session, config: DemoConfig) -> dict:
    from artiphys.models.analytic import channel_table
    from artiphys.models.layers import resolve_layer
    from artiphys.stimuli.apc_features import apc_features
    from artiphys.stimuli.registry import make_stimuli
    from artiphys.tuning.apc import fit_apc
    from artiphys.tuning.orientation import grating_tuning

    spec = config.model.load()
    size = spec.preprocessing.input_size_px
    layers = [name for name in DEMO_LAYERS if name in dict(spec.module.named_modules())] or [
        resolve_layer(spec, n).name for n, _ in list(spec.module.named_children())[-1:]]
    gratings = make_stimuli("gratings", orientation_deg=list(np.arange(0.0, 180.0, 11.25)),
                            sf_cycles_per_px=[0.05, 0.1, 0.2, 0.3],
                            phase_deg=list(np.arange(0.0, 360.0, 45.0)), size_px=size)
    shapes = make_stimuli("shapes", canvas_px=size, size_px=min(32, size // 2))
    p = session.progress
    p.plan(2 + 2 * len(layers) + 1)
    p.step(f"responses to {len(gratings)} gratings")
    grat = _recorded(session, spec, gratings, layers, "gratings")
    p.step(f"responses to {len(shapes)} shapes")
    shp = _recorded(session, spec, shapes, layers, "shapes")
    features = apc_features(shapes)
    summary: dict = {"model": spec.provenance(), "stimuli": {
        "gratings": gratings.describe(), "shapes": shapes.describe()}, "layers": {}}
    for label in layers:
        p.step(f"{label}: grating tuning")
        d, resp = grat[label]
        tuning = session.store.get_or_compute(session.step(
            "grating_tuning", 1, inputs={"responses": d}, settings={},
            path=f"{spec.condition}/{file_label(label)}/grating_tuning", layer=label,
            result="grating_tuning", condition=spec.condition), lambda: grating_tuning(resp))
        p.step(f"{label}: APC fit")
        d, resp = shp[label]
        apc = session.store.get_or_compute(session.step(
            "apc", 1, inputs={"responses": d, "features": "computed from shape coords"},
            settings={}, path=f"{spec.condition}/{file_label(label)}/apc", layer=label,
            result="apc", condition=spec.condition), lambda: fit_apc(resp, features))
        summary["layers"][label] = _layer_entry(spec, label, tuning, apc, channel_table)
    p.step("summary and report")
    session.run.write_json("demo_summary.json", summary)
    from artiphys.report import build_report

    summary["report"] = str(build_report(session.run.path))
    return {"layers": summary["layers"], "report": summary["report"]}


def _layer_entry(spec, label, tuning, apc, channel_table) -> dict:
    from artiphys.models.layers import resolve_layer

    entry = {
        "n_units": int(tuning.sizes["unit"]),
        "frac_simple": float(np.mean(tuning["cell_class"].values == "simple")),
        "f1_f0_median": float(np.nanmedian(tuning["f1_f0"].values)),
        "circular_variance_median": float(np.nanmedian(tuning["circular_variance"].values)),
        "apc_r_median": float(np.nanmedian(apc["r"].values)),
    }
    table = channel_table(resolve_layer(spec, label).module)
    if table is not None and "orientation_deg" in table:
        channels = tuning["channel"].values
        designed = table["orientation_deg"].to_numpy()[channels]
        diff = (tuning["preferred_orientation_deg"].values - designed + 90) % 180 - 90
        entry["orientation_error_deg_max"] = float(np.max(np.abs(diff)))
    return entry


__all__ = ["DEMO_LAYERS", "DemoConfig", "run_demo"]
