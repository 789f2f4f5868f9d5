"""The steps of the ``characterize`` battery, each stored under the key of its inputs.

Every result is ``(digest, value)``: the digest of the step that produced it goes into
the keys of the steps that read it, so a changed recording invalidates every analysis of
it, and a changed analysis setting only that analysis. Layers are grouped by their shape
size (one group unless ``shape_size`` is ``rf:FRACTION``); the recordings of all layers
of a group that are missing are done in one forward pass per condition and stimulus set,
the TI sweeps of a group from shared stride-phase passes (:mod:`.battery_ti`), the APC
fits of all layers of a condition in one call (:mod:`.battery_apc`); the shuffle control
costs no forward pass. Controls with random weights are run for ``control_seeds`` seeds.
"""

from __future__ import annotations

import hashlib

import numpy as np

from artiphys.experiments.base import Session, model_inputs
from artiphys.store.rundir import file_label

VERSIONS = {"responses": 1, "sparsity": 1, "histograms": 1, "top_bottom": 1,
            "natural_ratio": 1, "apc": 1, "apc_cv": 1, "apc_shuffle": 1, "ti_sweep": 2,
            "ti": 2, "ti_shuffle": 2, "apc_kurtosis": 1, "apc_confounds": 1, "examples": 1,
            "maximal_images": 1, "probes": 1, "diverse": 1, "diverse_indices": 1,
            "top_patches": 1}


def model_meta(spec, condition: str) -> dict:
    """File-attribute provenance of a condition's model (not part of step keys)."""
    return {"model": spec.name, "weights_sha256": spec.weights_sha256 or "",
            "condition": condition, "model_seed": -1 if spec.seed is None else int(spec.seed)}


def default_layers(spec) -> list[str]:
    """Every paper-style sublayer in execution order (:func:`artiphys.models.sublayers.
    paper_sublayers`: linear, rectified, normalised, pooled outputs of each major layer)."""
    from artiphys.models.sublayers import paper_sublayers

    return [r.name for r in paper_sublayers(spec)]


def features_digest(features) -> str:
    """sha256 of a list of per-stimulus APC feature arrays."""
    h = hashlib.sha256()
    for f in features:
        h.update(np.ascontiguousarray(np.asarray(f, np.float64)).tobytes())
        h.update(b"|")
    return h.hexdigest()


class Battery:
    """The battery of one ``characterize`` config in one session (see the module doc)."""

    def __init__(self, config):
        """Load the model, its layers, stimulus sets and control twins (no run touched)."""
        from artiphys.recording.record import resolve_layers

        self.s: Session | None = None
        self.cfg = config
        self.notes: list[str] = []
        self.spec = config.model.load()
        names = list(config.layers) or default_layers(self.spec)
        self.refs = resolve_layers(self.spec, names)
        self.tests = set(config.tests)
        self.skipped: list[str] = []
        if "natural" in self.tests and config.images_dir is None:
            self.tests.discard("natural")
            self.skipped.append("natural (natural/shape max ratio and natural-image "
                                "histograms): no image folder; pass --images DIR or set "
                                "ARTIPHYS_NATURAL_IMAGES")
        self.labels_by_name = {k: ref.label for ref in self.refs
                               for k in (ref.label, ref.name, ref.alias) if k}
        self.check_example_layers()
        self.shape_sizes = self._shape_sizes()
        self.groups = self._groups()
        self.sets = self._stimulus_sets()
        self.models, self.seeded = self._models()
        self._apc_inputs = None
        self.results: dict = {}  # (condition, layer, name) -> (digest, value)

    # -- set-up --------------------------------------------------------------------------
    def check_example_layers(self) -> None:
        """Fail before any run is touched when a units-of-interest, synthesis or diverse
        layer is not one of the battery's layers; set ``synthesis_layers`` and
        ``diverse_layers`` (labels; empty: every layer, the synthesis layers)."""
        from artiphys.experiments.battery_examples import layer_choice, parse_units_of_interest

        parse_units_of_interest(self.cfg.units_of_interest, self.labels_by_name)
        self.synthesis_layers = layer_choice(self, self.cfg.synthesis_layers,
                                             "synthesis_layers")
        self.diverse_layers = (layer_choice(self, self.cfg.diverse_layers, "diverse_layers")
                               or self.synthesis_layers)

    def _shape_sizes(self) -> dict:
        """Per layer label the :class:`~artiphys.tuning.shape_size.ShapeSize` of the config's
        ``shape_size`` (px, or ``rf:FRACTION`` of each layer's RF)."""
        from artiphys.tuning.shape_size import resolve_shape_sizes
        from artiphys.tuning.ti import position_sweep

        sizes = resolve_shape_sizes(self.spec, self.refs, self.cfg.shape_size,
                                    positions_px=position_sweep(self.cfg.ti_step_px,
                                                                self.cfg.ti_extent_px))
        misfits = [s for s in sizes.values() if not s.fits]
        if misfits:
            self.notes.append(f"note: at {misfits[0].layer} the swept shapes leave the "
                              f"{misfits[0].input_px} px image ({misfits[0].note})")
        return sizes

    def _groups(self) -> dict[float, list]:
        """Layers by shape size (px, rounded to 0.01 px), in execution order."""
        groups: dict[float, list] = {}
        for ref in self.refs:
            groups.setdefault(round(self.shape_sizes[ref.label].size_px, 2), []).append(ref)
        return groups

    def size_of(self, ref) -> float:
        return round(self.shape_sizes[ref.label].size_px, 2)

    def _stimulus_sets(self) -> dict:
        """``{size_px: {set name: StimulusSet}}``; natural images are the same for every
        size."""
        from artiphys.stimuli.shapes import shapes

        canvas = self.spec.preprocessing.input_size_px
        natural = None
        if "natural" in self.tests:
            from artiphys.stimuli.natural import images

            natural = images(self.cfg.images_dir, n=self.cfg.n_images,
                             seed=self.cfg.control_seed, size_px=canvas)
        out = {}
        for px in self.groups:
            sets = {"shapes": shapes(size_px=px, canvas_px=canvas)}
            if "sparsity" in self.tests:
                sets["shapes_large"] = shapes(size_px=2 * px, canvas_px=canvas)
                sets["shapes_dim"] = shapes(size_px=px, intensity=100, canvas_px=canvas)
            if natural is not None:
                sets["natural"] = natural
            out[px] = sets
        return out

    def _models(self) -> tuple[dict, dict]:
        """``({condition: spec}, {control name: [conditions of its seeds]})``: the model as
        given, then each random-weight control for ``control_seeds`` seeds (the first
        seed's condition is the twin's plain condition, e.g. ``untrained``)."""
        from artiphys.models.controls import TWINS

        models = {self.spec.condition: self.spec}
        seeded: dict[str, list[str]] = {}
        for name, make_twin in TWINS.items():
            if name not in self.cfg.controls:
                continue
            for k in range(self.cfg.control_seeds):
                seed = self.cfg.control_seed + k
                twin = make_twin(self.spec, seed=seed)
                if k == 0 and twin.condition in models:
                    self.notes.append(f"note: the model is itself {twin.condition}; the "
                                      f"{name} control is skipped")
                    break
                condition = twin.condition if k == 0 else f"{twin.condition}_seed{seed}"
                models[condition] = twin
                seeded.setdefault(twin.condition, []).append(condition)
        return models, seeded

    def n_channels(self, ref) -> int:
        """Channels of a layer (from its stored centre-unit responses)."""
        return int(self.results[self.spec.condition, ref.label, "responses"][1].sizes["unit"])

    def is_spatial(self, ref) -> bool:
        """True for a layer with a spatial map (conv, pool), False for 1-D layers."""
        from artiphys.models.receptive_field import GeometryError, layer_geometry

        try:
            return bool(layer_geometry(self.spec, ref.name).is_spatial)
        except GeometryError:
            return False

    def shuffle(self, condition: str) -> bool:
        return "shuffle" in self.cfg.controls and condition == self.spec.condition

    def step(self, name, condition, layer_label, *, inputs, settings, spec, tag="", **meta):
        """Step ``name`` of one condition and layer (``tag`` names a variant, e.g. the
        TI axis, in the file name and the results table)."""
        return self.s.step(name, VERSIONS[name], inputs=inputs, settings=settings,
                           path=f"{condition}/{file_label(layer_label)}/{name}{tag}",
                           layer=layer_label, result=f"{name}{tag}",
                           **{**model_meta(spec, condition), **meta})

    def one(self, condition, label, name, cspec, inputs, settings, compute, tag="", **meta):
        """One stored step (reused or computed); kept in :attr:`results`."""
        step = self.step(name, condition, label, spec=cspec, inputs=inputs, settings=settings,
                         tag=tag, **meta)
        value = self.s.store.get_or_compute(step, compute)
        self.results[condition, label, name + tag] = (step.digest, value)
        return value

    # -- the battery ---------------------------------------------------------------------
    def run(self, session: Session) -> dict:
        """Every step of the battery in ``session``; returns the manifest summary."""
        from artiphys.experiments.battery_examples import run_examples
        from artiphys.experiments.battery_summary import write_summary

        self.s = session
        p = self.s.progress
        for note in self.notes:
            p.note(note)
        n_sets = sum(len(sets) for sets in self.sets.values())
        per_condition = n_sets + ("apc" in self.tests) + (
            len(self.groups) * len(self.cfg.ti_axes) if "ti" in self.tests else 0)
        examples = len(self.refs) if self.cfg.synthesis != "none" else 0
        p.plan(per_condition * len(self.models) + examples + 1)
        for note in self.skipped:
            p.note(f"skipped {note}")
        if "apc" in self.tests:
            from artiphys.experiments.battery_apc import apc_inputs

            apc_inputs(self)  # once, before conditions may run side by side
        self.s.executor.each(lambda item: self._condition(*item), list(self.models.items()))
        run_examples(self)
        p.step("summary")
        return write_summary(self)

    def _condition(self, condition: str, cspec) -> None:
        """Every test of one condition (conditions are independent of each other)."""
        from artiphys.experiments.battery_apc import apc
        from artiphys.experiments.battery_ti import ti

        resp = self.responses(condition, cspec)
        self.unit_statistics(condition, cspec, resp)
        if "apc" in self.tests:
            self.s.progress.step(f"{condition}: APC fits of {len(self.refs)} layer(s)")
            apc(self, condition, cspec, {la: v["shapes"] for la, v in resp.items()})
        if "ti" in self.tests:
            ti(self, condition, cspec)

    def responses(self, condition: str, cspec) -> dict:
        """``{layer label: {set: (digest, DataArray)}}``: one pass per set and shape-size
        group for the layers not stored yet."""
        out: dict = {ref.label: {} for ref in self.refs}

        def one_set(item):
            px, set_name = item
            stim, refs = self.sets[px][set_name], self.groups[px]
            self.s.progress.step(f"{condition}: responses to {set_name} ({len(stim)} "
                                 f"stimuli, {len(refs)} layer(s))")
            return item, self._record(condition, cspec, refs, set_name, stim)

        pairs = [(px, name) for px in self.groups for name in self.sets[px]]
        for (_, set_name), got in self.s.executor.each(one_set, pairs):
            for label, value in got.items():
                out[label][set_name] = value
                if set_name == "shapes":
                    self.results[condition, label, "responses"] = value
        return out

    def _record(self, condition, cspec, refs, set_name, stim) -> dict:
        from artiphys.models.layers import resolve_layer
        from artiphys.recording.record import restore_dtypes

        steps = [self.step("responses", condition, ref.label, spec=cspec,
                           inputs={**model_inputs(cspec), "layer": ref.name,
                                   "units": "center", "stimuli": stim.content_hash},
                           settings={}, set=set_name) for ref in refs]
        own = {ref.label: resolve_layer(cspec, ref.name) for ref in refs}
        batch_size, device, ex = self.s.batch_size, self.s.device, self.s.executor

        def compute(todo):
            layers = [own[t.meta["layer"]] for t in todo]
            if ex.concurrent:
                return ex.run(record_steps, cspec, layers, stim, todo, batch_size, device)
            bar, update = self.s.progress.counter(len(stim), set_name, "img")
            with bar:
                return record_steps(cspec, layers, stim, todo, batch_size, device, update)

        got = self.s.store.get_or_compute_many(steps, compute, finite=("responses",))
        return {st.meta["layer"]: (st.digest, restore_dtypes(ds["responses"]))
                for st, ds in zip(steps, got)}

    def unit_statistics(self, condition: str, cspec, resp: dict) -> None:
        """Sparsity, response histograms, top/bottom shapes, natural/shape max ratio."""
        from artiphys.tuning.sparsity import (natural_to_shape_max_ratio, response_histograms,
                                              sparsity, top_bottom_stimuli)

        for ref in self.refs:
            by_set = resp[ref.label]
            d, shapes = by_set["shapes"]
            if "sparsity" in self.tests or self.cfg.kurtosis_threshold is not None:
                self.one(condition, ref.label, "sparsity", cspec, {"responses": d}, {},
                         lambda: sparsity(shapes))
            if "sparsity" in self.tests:
                self.one(condition, ref.label, "histograms", cspec,
                         {k: v[0] for k, v in by_set.items()}, {"bins": 100},
                         lambda: response_histograms({k: v[1] for k, v in by_set.items()}))
                self.one(condition, ref.label, "top_bottom", cspec, {"responses": d},
                         {"n": 8}, lambda: top_bottom_stimuli(shapes, 8))
            if "natural" in self.tests:
                dn, natural = by_set["natural"]
                self.one(condition, ref.label, "natural_ratio", cspec,
                         {"natural": dn, "shapes": d}, {},
                         lambda: natural_to_shape_max_ratio(natural, shapes))


def record_steps(cspec, layers, stim, todo, batch_size, device, progress=None) -> list:
    """Centre-unit responses of ``layers`` to ``stim`` in one pass, one Dataset per step
    of ``todo`` (a module-level function, so that it can run as a Dask task)."""
    from artiphys.recording.record import Recorder

    with Recorder(cspec, layers, batch_size=batch_size, device=device) as rec:
        arrays = rec.record(stim, progress=progress)
    return [arrays[t.meta["layer"]].to_dataset(name="responses") for t in todo]


__all__ = ["Battery", "record_steps", "default_layers", "features_digest", "model_meta"]
