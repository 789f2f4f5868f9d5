"""The ``record`` experiment: responses of a model's units to a stimulus set, on disk.

Each chunk of ``chunk_size`` stimuli of each layer is one step (``responses``), keyed by
the model, the layer, the units, the stimulus set's content hash and the chunk's range,
stored as ``responses/<layer>/chunk-00000.<digest>.nc`` (variable ``responses``, dims
``stimulus, unit``). Memory is bounded by one chunk, whatever the number of stimuli.
:func:`load_responses` reads a layer back (every chunk verified) as the DataArray that
:func:`artiphys.recording.record` returns.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import xarray as xr

from artiphys.config import Config, option
from artiphys.errors import RunStoreError, UnknownLayerError, close_matches
from artiphys.experiments.base import (ExecutionConfig, ModelConfig, Session, model_inputs,
                                       run_experiment)
from artiphys.experiments.parsing import parse_unit_spec
from artiphys.store.rundir import RunDir, file_label

STEP_VERSION = 1


@dataclass(frozen=True)
class RecordConfig(Config):
    """Record the responses of a model's units to a stimulus set."""

    kind = "record"
    model: ModelConfig = option(default_factory=ModelConfig, help="The model.")
    stimuli: str = option("shapes", help="Stimulus set NAME[:key=value,...] (e.g. "
                          "noise:n=64) or a .npy file of images (n, 3, H, H) in [0, 1].")
    layers: tuple[str, ...] = option((), help="Comma-separated layer names or aliases.")
    units: str = option("center", help="center, all, channels (0-63,70) or channel:y:x "
                        "triples (3:6:6,4:6:6).")
    chunk_size: int = option(512, help="Stimuli per stored chunk (bounds memory).")
    execution: ExecutionConfig = option(default_factory=ExecutionConfig)

    def validate(self):
        if not self.layers:
            self.fail("layers", "name at least one layer (see `artiphys layers MODEL`)")
        parse_unit_spec(self.units, f"{self.kind}.units")
        if self.chunk_size < 1:
            self.fail("chunk_size", f"must be a positive integer, not {self.chunk_size}")


def run(config: RecordConfig, out: str | os.PathLike, **options) -> RunDir:
    """Record ``config`` into run directory ``out`` (options of
    :func:`~artiphys.experiments.base.run_experiment`: resume, restart, progress, command)."""
    from artiphys.recording.record import resolve_layers
    from artiphys.stimuli.registry import stimuli_from_arg

    def prepare():
        spec = config.model.load()
        prepared = (spec, stimuli_from_arg(config.stimuli), resolve_layers(spec, config.layers),
                    parse_unit_spec(config.units))
        check_recordable(*prepared)
        return prepared

    return run_experiment(config, out, lambda session, p: _record(session, *p,
                                                                  config.chunk_size),
                          prepare=prepare, **options)


def record_to_store(model, stimuli, layers, out: str | os.PathLike, units="center", *,
                    chunk_size: int = 512, batch_size: int = 64, device=None,
                    **options) -> RunDir:
    """The ``record`` experiment for a model and stimuli given as objects (a
    :class:`~artiphys.models.spec.ModelSpec` or module, a StimulusSet or image array).

    The stored ``config.toml`` names the model and set but cannot rebuild a module or
    set made in Python; results, keys and resume are the same as :func:`run`'s.
    """
    from artiphys.models.spec import as_spec
    from artiphys.recording.record import as_stimulus_set
    from artiphys.recording.units import units_to_json

    spec, stimuli = as_spec(model), as_stimulus_set(stimuli)
    names = [layers] if isinstance(layers, str) else list(layers)
    text = units if isinstance(units, str) else ",".join(
        ":".join(map(str, u)) if isinstance(u, (tuple, list)) else str(u)
        for u in units_to_json(units))
    config = RecordConfig(model=ModelConfig(name=spec.name, seed=int(spec.seed or 0)),
                          stimuli=stimuli.name, layers=tuple(map(str, names)), units=text,
                          chunk_size=int(chunk_size),
                          execution=ExecutionConfig(device=None if device is None
                                                    else str(device), batch_size=batch_size))
    from artiphys.recording.record import resolve_layers

    def prepare():
        prepared = (spec, stimuli, resolve_layers(spec, names), units)
        check_recordable(*prepared)
        return prepared

    return run_experiment(config, out, lambda session, p: _record(session, *p, int(chunk_size)),
                          prepare=prepare, **options)


def check_recordable(spec, stimuli, refs, units) -> None:
    """Record the first stimulus once, so that units outside a layer, an input too small
    for the network or NaN responses are reported before a run directory is made."""
    from artiphys.recording.record import Recorder

    with Recorder(spec, refs, units, batch_size=1, device="cpu") as rec:
        rec.record(stimuli, 0, 1)


def _record(session: Session, spec, stimuli, refs, units, chunk_size: int) -> dict:
    from artiphys.recording.record import Recorder
    from artiphys.recording.units import units_to_json

    n, size = len(stimuli), chunk_size
    bounds = [(lo, min(lo + size, n)) for lo in range(0, n, size)]
    steps = {(ref.label, i): session.step(
        "responses", STEP_VERSION,
        inputs={**model_inputs(spec), "layer": ref.name, "units": units_to_json(units),
                "stimuli": stimuli.content_hash, "start": lo, "stop": hi},
        settings={}, path=f"responses/{file_label(ref.label)}/chunk-{i:05d}",
        layer=ref.label, condition=spec.condition, chunk=i, result="responses")
        for ref in refs for i, (lo, hi) in enumerate(bounds)}
    session.run.note(session.kind, model=spec.provenance(), stimuli=stimuli.describe(),
                     n_stimuli=n, n_chunks=len(bounds), chunk_size=size,
                     units=units_to_json(units),
                     layers=[{"label": r.label, "name": r.name, "alias": r.alias} for r in refs],
                     outputs={r.label: [steps[r.label, i].digest for i in range(len(bounds))]
                              for r in refs})
    progress = session.progress
    progress.plan(len(bounds))
    with Recorder(spec, refs, units, batch_size=session.batch_size,
                  device=session.device) as rec:
        for i, (lo, hi) in enumerate(bounds):
            progress.step(f"{spec.name}: stimuli {lo}-{hi - 1} of {n}, "
                          f"{len(refs)} layer(s)")
            chunk = [steps[r.label, i] for r in refs]

            def compute(todo, lo=lo, hi=hi, i=i):
                bar, update = progress.counter(hi - lo, f"chunk {i}", "img")
                with bar:
                    arrays = rec.record(stimuli, lo, hi, progress=update)
                return [_chunk_dataset(arrays[s.meta["layer"]], i, lo, hi) for s in todo]

            session.store.get_or_compute_many(chunk, compute, load=False)
    return {"n_stimuli": n, "layers": [r.label for r in refs], "device": str(session.device)}


def _chunk_dataset(da: xr.DataArray, i: int, lo: int, hi: int) -> xr.Dataset:
    da = da.copy()
    da.attrs.update(chunk=i, chunk_start=lo, chunk_stop=hi)
    return da.to_dataset(name="responses")


# ---- reading back ------------------------------------------------------------------------

def _record_entry(run: RunDir) -> dict:
    entry = run.experiments.get("record")
    if entry is None:
        raise RunStoreError(f"{run.path} holds no recording; record one with `artiphys "
                            f"record MODEL --stimuli ... --layers ... --out {run.path}`")
    return entry


def recorded_layers(run: RunDir | str | os.PathLike) -> list[str]:
    """Labels of the layers a run recorded, in the order they were given."""
    run = run if isinstance(run, RunDir) else RunDir.open(run)
    return [e["label"] for e in _record_entry(run).get("layers", [])]


def _layer_label(entry: dict, layer: str, run: RunDir) -> str:
    for e in entry.get("layers", []):
        if layer in (e["label"], e["name"], e.get("alias")):
            return e["label"]
    labels = [e["label"] for e in entry.get("layers", [])]
    raise UnknownLayerError(f"run {run.path} has no responses of layer {layer!r}."
                            f"{close_matches(layer, labels)} Recorded layers: "
                            f"{', '.join(labels)}")


def response_digests(run: RunDir | str | os.PathLike, layer: str) -> list[str]:
    """Step digests of one layer's chunks (the inputs of analyses of the recording)."""
    run = run if isinstance(run, RunDir) else RunDir.open(run)
    entry = _record_entry(run)
    return list(entry["outputs"][_layer_label(entry, layer, run)])


def iter_response_chunks(run: RunDir | str | os.PathLike, layer: str):
    """One layer's responses chunk by chunk, in stimulus order (memory: one chunk), each
    verified against its checksum and checked for NaN / inf.

    Raises
    ------
    RunStoreError
        The run is unfinished or a chunk is damaged; the message says how to go on.
    """
    from artiphys.recording.record import restore_dtypes

    run = run if isinstance(run, RunDir) else RunDir.open(run)
    entry = _record_entry(run)
    label = _layer_label(entry, layer, run)
    digests = entry["outputs"][label]
    missing = [d for d in digests if run.steps.entry(d) is None]
    if missing:
        raise RunStoreError(
            f"run {run.path} is unfinished: {len(missing)} of {len(digests)} chunks of layer "
            f"{label!r} are missing; run the same command again with --resume")
    for digest in digests:
        ds = run.steps.load(digest, finite=("responses",))
        yield restore_dtypes(ds["responses"]).rename(label)


def load_responses(run: RunDir | str | os.PathLike, layer: str) -> xr.DataArray:
    """One layer's responses from a ``record`` run (all chunks, in stimulus order)."""
    from artiphys.recording.record import concat_chunks

    da = concat_chunks(list(iter_response_chunks(run, layer)))
    for key in [k for k in da.attrs if k.startswith(("artiphys_", "step_", "inputs_",
                                                     "settings_"))]:
        da.attrs.pop(key)
    return da


def load_run_responses(run: RunDir | str | os.PathLike) -> dict[str, xr.DataArray]:
    """Every recorded layer: ``{label: DataArray}``."""
    run = run if isinstance(run, RunDir) else RunDir.open(run)
    return {label: load_responses(run, label) for label in recorded_layers(run)}


__all__ = ["RecordConfig", "iter_response_chunks", "load_responses", "load_run_responses",
           "record_to_store", "recorded_layers", "response_digests", "run"]
