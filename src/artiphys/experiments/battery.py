"""The steps of the ``characterize`` battery, each stored under the key of its inputs.

Every result is ``(digest, value)``: the digest of the step that produced it goes into
the keys of the steps that read it, so a changed recording invalidates every analysis of
it, and a changed analysis setting only that analysis. Recordings of all layers that are
missing are done in one forward pass per condition and stimulus set; the APC fits of all
layers of a condition in one call; the shuffle control costs no forward pass.
"""

from __future__ import annotations

import hashlib

import numpy as np
import xarray as xr

from artiphys.experiments.base import Session, model_inputs
from artiphys.store.rundir import file_label

VERSIONS = {"responses": 1, "sparsity": 1, "histograms": 1, "top_bottom": 1,
            "natural_ratio": 1, "apc": 1, "apc_cv": 1, "apc_shuffle": 1, "ti_sweep": 1,
            "ti": 1, "ti_shuffle": 1, "apc_kurtosis": 1, "examples": 1,
            "maximal_images": 1, "probes": 1, "diverse": 1, "diverse_indices": 1,
            "top_patches": 1}


def model_meta(spec, condition: str) -> dict:
    """File-attribute provenance of a condition's model (not part of step keys)."""
    return {"model": spec.name, "weights_sha256": spec.weights_sha256 or "",
            "condition": condition, "model_seed": -1 if spec.seed is None else int(spec.seed)}


def default_layers(spec) -> list[str]:
    """Every sublayer in execution order (dropouts and flattening left out)."""
    from artiphys.models.layers import list_layers

    return [r.name for r in list_layers(spec) if r.kind not in ("dropout", "flatten")]


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
        self.sets = self._stimulus_sets()
        self.models = self._models()
        self._apc_inputs = None
        self.results: dict = {}  # (condition, layer, name) -> (digest, value)

    # -- set-up --------------------------------------------------------------------------
    def _stimulus_sets(self) -> dict:
        from artiphys.stimuli.shapes import shapes

        size, px = self.spec.preprocessing.input_size_px, self.cfg.shape_size_px
        sets = {"shapes": shapes(size_px=px, canvas_px=size)}
        if "sparsity" in self.tests:
            sets["shapes_large"] = shapes(size_px=2 * px, canvas_px=size)
            sets["shapes_dim"] = shapes(size_px=px, intensity=100, canvas_px=size)
        if "natural" in self.tests:
            from artiphys.stimuli.natural import images

            sets["natural"] = images(self.cfg.images_dir, n=self.cfg.n_images,
                                     seed=self.cfg.control_seed, size_px=size)
        return sets

    def _models(self) -> dict:
        from artiphys.models.controls import TWINS

        models = {self.spec.condition: self.spec}
        for name, make_twin in TWINS.items():
            if name not in self.cfg.controls:
                continue
            twin = make_twin(self.spec, seed=self.cfg.control_seed)
            if twin.condition in models:
                self.notes.append(f"note: the model is itself {twin.condition}; the "
                                  f"{name} control is skipped")
                continue
            models[twin.condition] = twin
        return models

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

    def _shuffle(self, condition: str) -> bool:
        return "shuffle" in self.cfg.controls and condition == self.spec.condition

    def step(self, name, condition, layer_label, *, inputs, settings, spec, tag="", **meta):
        """Step ``name`` of one condition and layer (``tag`` names a variant, e.g. the
        TI axis, in the file name and the results table)."""
        return self.s.step(name, VERSIONS[name], inputs=inputs, settings=settings,
                           path=f"{condition}/{file_label(layer_label)}/{name}{tag}",
                           layer=layer_label, result=f"{name}{tag}",
                           **{**model_meta(spec, condition), **meta})

    # -- the battery ---------------------------------------------------------------------
    def run(self, session: Session) -> dict:
        """Every step of the battery in ``session``; returns the manifest summary."""
        from artiphys.experiments.battery_summary import write_summary

        self.s = session
        p = self.s.progress
        for note in self.notes:
            p.note(note)
        per_condition = len(self.sets) + ("apc" in self.tests) + len(self.refs) * (
            len(self.cfg.ti_axes) if "ti" in self.tests else 0)
        examples = len(self.refs) if self.cfg.synthesis != "none" else 0
        p.plan(per_condition * len(self.models) + examples + 1)
        for note in self.skipped:
            p.note(f"skipped {note}")
        for condition, cspec in self.models.items():
            resp = self.responses(condition, cspec)
            self.unit_statistics(condition, cspec, resp)
            if "apc" in self.tests:
                p.step(f"{condition}: APC fits of {len(self.refs)} layer(s)")
                self.apc(condition, cspec, resp["shapes"])
            if "ti" in self.tests:
                self.ti(condition, cspec)
        from artiphys.experiments.battery_examples import run_examples

        run_examples(self)
        p.step("summary")
        return write_summary(self)

    def responses(self, condition: str, cspec) -> dict:
        """``{set: {layer label: (digest, DataArray)}}``: one pass per set for the layers
        not stored yet."""
        from artiphys.models.layers import resolve_layer
        from artiphys.recording.record import Recorder, restore_dtypes

        out = {}
        for set_name, stim in self.sets.items():
            self.s.progress.step(f"{condition}: responses to {set_name} ({len(stim)} "
                                 f"stimuli, {len(self.refs)} layer(s))")
            steps = [self.step("responses", condition, ref.label, spec=cspec,
                               inputs={**model_inputs(cspec), "layer": ref.name,
                                       "units": "center", "stimuli": stim.content_hash},
                               settings={}, set=set_name) for ref in self.refs]
            refs = {ref.label: resolve_layer(cspec, ref.name) for ref in self.refs}

            def compute(todo, stim=stim, cspec=cspec, set_name=set_name):
                bar, update = self.s.progress.counter(len(stim), set_name, "img")
                with bar, Recorder(cspec, [refs[t.meta["layer"]] for t in todo],
                                   batch_size=self.s.batch_size, device=self.s.device) as rec:
                    arrays = rec.record(stim, progress=update)
                return [arrays[t.meta["layer"]].to_dataset(name="responses") for t in todo]

            got = self.s.store.get_or_compute_many(steps, compute, finite=("responses",))
            out[set_name] = {st.meta["layer"]: (st.digest, restore_dtypes(ds["responses"]))
                             for st, ds in zip(steps, got)}
            if set_name == "shapes":
                for label, value in out[set_name].items():
                    self.results[condition, label, "responses"] = value
        return out

    def unit_statistics(self, condition: str, cspec, resp: dict) -> None:
        """Sparsity, response histograms, top/bottom shapes, natural/shape max ratio."""
        from artiphys.tuning.sparsity import (natural_to_shape_max_ratio, response_histograms,
                                              sparsity, top_bottom_stimuli)

        for ref in self.refs:
            d, shapes = resp["shapes"][ref.label]
            if "sparsity" in self.tests or self.cfg.kurtosis_threshold is not None:
                self._one(condition, ref.label, "sparsity", cspec, {"responses": d}, {},
                          lambda: sparsity(shapes))
            if "sparsity" in self.tests:
                by_set = {k: v[ref.label] for k, v in resp.items()}
                self._one(condition, ref.label, "histograms", cspec,
                          {k: v[0] for k, v in by_set.items()}, {"bins": 100},
                          lambda: response_histograms({k: v[1] for k, v in by_set.items()}))
                self._one(condition, ref.label, "top_bottom", cspec, {"responses": d},
                          {"n": 8}, lambda: top_bottom_stimuli(shapes, 8))
            if "natural" in self.tests:
                dn, natural = resp["natural"][ref.label]
                self._one(condition, ref.label, "natural_ratio", cspec,
                          {"natural": dn, "shapes": d}, {},
                          lambda: natural_to_shape_max_ratio(natural, shapes))

    def _one(self, condition, label, name, cspec, inputs, settings, compute, tag="", **meta):
        step = self.step(name, condition, label, spec=cspec, inputs=inputs, settings=settings,
                         tag=tag, **meta)
        value = self.s.store.get_or_compute(step, compute)
        self.results[condition, label, name + tag] = (step.digest, value)
        return value

    # -- APC -----------------------------------------------------------------------------
    def apc_inputs(self):
        """``(features digest, predictions)`` of the standard shapes (computed once)."""
        if self._apc_inputs is None:
            from artiphys.stimuli.apc_features import apc_features
            from artiphys.tuning.apc import apc_predictions

            feats = apc_features(self.sets["shapes"])
            self._apc_inputs = (features_digest(feats),
                                apc_predictions(feats, device=self.s.device))
        return self._apc_inputs

    def apc(self, condition: str, cspec, shapes: dict) -> None:
        """APC fit (and CV fit, and the shuffle control's fit) of every layer at once."""
        from artiphys.tuning.apc import fit_apc, fit_apc_cv
        from artiphys.tuning.controls import shuffle_responses

        fdig, preds = self.apc_inputs()
        dev, seed = self.s.device, self.cfg.control_seed
        base = {"features": fdig, "grid": "published"}
        self._fit_layers(condition, cspec, "apc", shapes, base, {"refine": True},
                         lambda r: fit_apc(r, predictions=preds, device=dev))
        if self.cfg.cv_folds:
            k = self.cfg.cv_folds
            self._fit_layers(condition, cspec, "apc_cv", shapes, base,
                             {"folds": k, "seed": seed},
                             lambda r: fit_apc_cv(r, predictions=preds, n_folds=k, seed=seed,
                                                  device=dev))
        if self._shuffle(condition):
            shuffled = {la: (d, shuffle_responses(r, seed)) for la, (d, r) in shapes.items()}
            self._fit_layers("shuffle", cspec, "apc_shuffle", shuffled, base,
                             {"refine": True, "shuffle_seed": seed},
                             lambda r: fit_apc(r, predictions=preds, device=dev))

    def _fit_layers(self, condition, cspec, name, resp: dict, inputs, settings, fit) -> None:
        """``fit`` once on the stacked responses of every layer without a stored result."""
        from artiphys.tuning._arrays import split_layers, stack_layers

        steps = [self.step(name, condition, label, spec=cspec,
                           inputs={**inputs, "responses": d}, settings=settings)
                 for label, (d, _) in resp.items()]

        def compute(todo):
            labels = [t.meta["layer"] for t in todo]
            stacked = stack_layers({la: resp[la][1] for la in labels})
            stacked = stacked.assign_coords(layer=("unit", np.repeat(
                labels, [resp[la][1].sizes["unit"] for la in labels])))
            pieces = split_layers(fit(stacked))
            return [_restore_unit_coords(pieces[la], resp[la][1]) for la in labels]

        got = self.s.store.get_or_compute_many(steps, compute)
        for st, value in zip(steps, got):
            self.results[condition, st.meta["layer"], name] = (st.digest, value)

    # -- TI ------------------------------------------------------------------------------
    def ti(self, condition: str, cspec) -> None:
        """TI sweep and TI of every layer along every axis (and the shuffle control)."""
        from artiphys.tuning.ti import position_sweep, ti_from_sweep

        positions = position_sweep(self.cfg.ti_step_px, self.cfg.ti_extent_px)
        width, seed = self.cfg.shape_size_px, self.cfg.control_seed
        for ref in self.refs:
            images = self._centred_shapes(cspec, ref)
            for axis in self.cfg.ti_axes:
                tag = "" if axis == "x" else f"_{axis}"
                self.s.progress.step(f"{condition} {ref.label}: TI sweep along {axis}")
                sweep = self._one(
                    condition, ref.label, "ti_sweep", cspec,
                    {**model_inputs(cspec), "layer": ref.name, "stimuli": images.content_hash},
                    {"positions_px": positions.tolist(), "axis": axis},
                    lambda a=axis: _sweep(cspec, ref, images, positions, a, self.s), tag=tag)
                d = self.results[condition, ref.label, f"ti_sweep{tag}"][0]
                self._one(condition, ref.label, "ti", cspec, {"sweep": d},
                          {"stimulus_width_px": width, "axis": axis},
                          lambda: ti_from_sweep(sweep, stimulus_width_px=width), tag=tag)
                if self._shuffle(condition):
                    self._one("shuffle", ref.label, "ti_shuffle", cspec, {"sweep": d},
                              {"stimulus_width_px": width, "axis": axis, "seed": seed},
                              lambda: ti_from_sweep(sweep, stimulus_width_px=width,
                                                    shuffle_seed=seed), tag=tag)

    def _centred_shapes(self, cspec, ref):
        """The standard shapes centred on the layer's centre-unit RF (the image centre
        when the geometry is unknown or the layer is not spatial)."""
        from artiphys.models.receptive_field import (GeometryError, layer_geometry,
                                                     unit_center_px)
        from artiphys.models.units import map_center
        from artiphys.stimuli.shapes import shapes

        standard = self.sets["shapes"]
        try:
            geo = layer_geometry(cspec, ref.name)
        except GeometryError as exc:
            self.s.progress.note(f"note: RF geometry of {ref.label} unknown ({exc}); TI "
                                 "shapes are centred on the image")
            return standard
        if not (geo.is_spatial and geo.known):
            return standard
        _, h, w = geo.out_shape
        cy, cx = unit_center_px(geo, *map_center(h, w))
        return shapes(size_px=self.cfg.shape_size_px, canvas_px=standard.size_px,
                      x_px=cx, y_px=cy)


def _sweep(cspec, ref, images, positions, axis, session) -> xr.Dataset:
    from artiphys.tuning.ti import sweep_responses

    return sweep_responses(cspec, images, ref.name, positions, axis=axis,
                           device=session.device, batch_size=min(session.batch_size, 32))


def _restore_unit_coords(result: xr.Dataset, responses: xr.DataArray) -> xr.Dataset:
    """A per-layer piece of a stacked result, with the layer's own unit coords."""
    from artiphys.tuning._arrays import unit_coords

    result = result.drop_vars("unit", errors="ignore")
    return result.assign_coords({k: v for k, v in unit_coords(responses).items()
                                 if k != "unit" or "unit" in responses.coords})


__all__ = ["Battery", "default_layers", "features_digest", "model_meta"]
