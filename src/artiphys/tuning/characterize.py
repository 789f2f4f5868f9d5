"""The whole artiphysiology battery of Pospisil et al. (2018) on a model, with controls.

:func:`characterize` records every requested layer's centre units (one per channel) to
the 362 shapes (and to the large, dim and natural-image sets where needed), runs the APC
fit, TI, sparsity and natural-image analyses, repeats them for each control condition
(shuffled responses, untrained twin, weight-shuffled twin), writes one netCDF file per
condition, layer and analysis under ``out`` and returns (and writes) ``summary.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from artiphys.errors import ArtiphysError
from artiphys.store.rundir import file_label

TESTS = ("apc", "ti", "sparsity", "natural")
CONTROLS = ("shuffle", "untrained", "weight-shuffle")



def _check(names, allowed, what):
    bad = [n for n in names if n not in allowed]
    if bad:
        raise ArtiphysError(f"unknown {what} {bad}; choose from {', '.join(allowed)}")


class _Store:
    """One netCDF file per (condition, layer, name) under ``out``; reused with resume."""

    def __init__(self, out: Path, resume: bool):
        self.out, self.resume = out, resume

    def path(self, condition, layer, name) -> Path:
        return self.out / condition / f"{file_label(layer)}.{name}.nc"

    def get_or_make(self, condition, layer, name, make: Callable[[], xr.Dataset]) -> xr.Dataset:
        from artiphys.store.atomic import atomic_write_netcdf

        path = self.path(condition, layer, name)
        if self.resume and path.exists():
            with xr.open_dataset(path) as ds:
                return ds.load()
        ds = make()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_netcdf(path, _netcdf_safe(ds))
        return ds


def _netcdf_safe(ds: xr.Dataset | xr.DataArray) -> xr.Dataset:
    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset(name=ds.name or "responses")
    ds = ds.copy()
    for name in list(ds.variables):
        if ds[name].dtype == object:
            ds[name] = ds[name].astype(str)
        if ds[name].dtype == bool:
            ds[name] = ds[name].astype(np.int8)
    ds.attrs = {k: (json.dumps(v) if isinstance(v, (list, dict, tuple)) else
                    int(v) if isinstance(v, bool) else v) for k, v in ds.attrs.items()
                if v is not None}
    return ds


def _median(values) -> float | None:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else None


def characterize(model, layers: Sequence[str], out, *,
                 tests: Sequence[str] = ("apc", "ti", "sparsity"), controls: Sequence[str] = (),
                 images_dir=None, n_images: int = 362, seed: int = 0,
                 kurtosis_threshold: float | None = None, cv_folds: int = 0,
                 ti_step_px: int = 2, ti_extent_px: int = 50, ti_axes: Sequence[str] = ("x",),
                 shape_size_px: float = 32, reference_fits=None, resume: bool = False,
                 device=None, batch_size: int = 64,
                 log: Callable[[str], None] | None = None) -> dict:
    """Run the APC / TI / sparsity / natural-image battery on ``layers`` of ``model``.

    Parameters
    ----------
    model : ModelSpec or nn.Module
    layers : layer names or aliases
    out : output folder: ``<condition>/<layer>.<analysis>.nc`` and ``summary.json``
    tests : subset of ``("apc", "ti", "sparsity", "natural")``
    controls : subset of ``("shuffle", "untrained", "weight-shuffle")``
    images_dir : folder of natural images (needed for ``natural``; adds them to the
        response histograms); ``n_images`` drawn with ``seed``
    kurtosis_threshold : exclude units with kurtosis >= this from APC results (the paper:
        42); None (default) keeps every unit. Reported in the summary either way.
    cv_folds : also run a ``cv_folds``-fold cross-validated APC fit (0 = no)
    ti_axes : sweep directions for TI, ``("x",)`` (the paper's) or ``("x", "y")``, which
        adds ``ti_y_median`` and the across-unit agreement ``ti_xy_r``
    reference_fits : path of (or DataFrame with) recorded neurons' APC fits with an ``r``
        column (e.g. ``v4_apc_fits_pc2001_109cells.csv``): adds per layer and condition
        the KS statistic between the units' and the neurons' APC r (``ks_vs_reference``)
        and, with TI, the median distance from the ideal unit ``sqrt((1-TI)^2+(1-r)^2)``
    resume : reuse result files already in ``out``

    Returns
    -------
    dict, also written to ``out/summary.json``: per layer and condition ``n_units``,
    ``apc_r_median``, ``apc_r_frac_gt_0.5``, ``ti_median``, ``sparsity_median`` (median
    lifetime sparseness), ``kurtosis_median``, ``n_excluded_kurtosis`` and the extras above.
    The ``shuffle`` condition holds the trained model's results on shuffled responses.
    """
    from artiphys.models.controls import TWINS
    from artiphys.models.spec import as_spec
    from artiphys.store.atomic import atomic_write_json

    _check(tests, TESTS, "tests")
    _check(controls, CONTROLS, "controls")
    _check(ti_axes, ("x", "y"), "TI axes")
    if "natural" in tests and images_dir is None:
        raise ArtiphysError("the natural test needs natural images: pass --images DIR")
    spec = as_spec(model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ref_r, ref_name = None, None
    if reference_fits is not None:
        from artiphys.tuning.neural import load_v4_fits

        is_table = hasattr(reference_fits, "columns")
        table = reference_fits if is_table else load_v4_fits(reference_fits)
        ref_r, ref_name = np.asarray(table["r"], float), None if is_table else str(reference_fits)
    battery = _Battery(spec, _Store(out, resume), tests=tuple(tests), controls=tuple(controls),
                       images_dir=images_dir, n_images=n_images, seed=seed,
                       kurtosis_threshold=kurtosis_threshold, cv_folds=cv_folds,
                       ti_step_px=ti_step_px, ti_extent_px=ti_extent_px,
                       ti_axes=tuple(ti_axes), shape_size_px=shape_size_px, ref_r=ref_r,
                       device=device, batch_size=batch_size)
    models = {"trained": spec}
    for name, make_twin in TWINS.items():
        if name in controls:
            twin = make_twin(spec, seed=seed)
            models[twin.condition] = twin
    summary: dict = {"model": spec.provenance(), "tests": list(tests), "controls": list(controls),
                     "kurtosis_threshold": kurtosis_threshold, "reference_fits": ref_name,
                     "layer_order": list(layers), "layers": {}}
    for condition, cspec in models.items():
        (log or (lambda msg: None))(f"{condition}: {', '.join(layers)}")
        battery.run(condition, cspec, list(layers), summary["layers"])
    atomic_write_json(out / "summary.json", summary)
    return summary


class _Battery:
    """The analyses of one (condition, layer), sharing stimuli and APC predictions."""

    def __init__(self, spec, store: _Store, *, tests, controls, images_dir, n_images, seed,
                 kurtosis_threshold, cv_folds, ti_step_px, ti_extent_px, ti_axes,
                 shape_size_px, ref_r, device, batch_size):
        from artiphys.stimuli.apc_features import apc_features
        from artiphys.stimuli.shapes import shapes
        from artiphys.tuning.apc import apc_predictions
        from artiphys.tuning.ti import position_sweep

        self.store, self.tests, self.controls = store, tests, controls
        self.seed, self.kurtosis_threshold, self.cv_folds = seed, kurtosis_threshold, cv_folds
        self.ti_axes, self.width_px, self.ref_r = ti_axes, shape_size_px, ref_r
        self.device, self.batch_size = device, batch_size
        self.positions = position_sweep(ti_step_px, ti_extent_px)
        size = spec.preprocessing.input_size_px
        self.standard = shapes(size_px=shape_size_px, canvas_px=size)
        self.sets = {"shapes": self.standard}
        if "sparsity" in tests:
            self.sets["shapes_large"] = shapes(size_px=2 * shape_size_px, canvas_px=size)
            self.sets["shapes_dim"] = shapes(size_px=shape_size_px, intensity=100, canvas_px=size)
        if images_dir is not None:
            from artiphys.stimuli.natural import images as natural_images

            self.sets["natural"] = natural_images(images_dir, n=n_images, seed=seed, size_px=size)
        self.predictions = (apc_predictions(apc_features(self.standard), device=device)
                            if "apc" in tests else None)

    def _responses(self, condition: str, spec, layers: list[str]) -> dict:
        """``{layer: {set name: responses}}``; every layer still missing from the store is
        recorded in one forward pass per stimulus set."""
        from artiphys.recording import record

        get, store = self.store.get_or_make, self.store
        resp: dict = {layer: {} for layer in layers}
        for name, stim in self.sets.items():
            key = f"responses_{name}"
            missing = [la for la in layers
                       if not (store.resume and store.path(condition, la, key).exists())]
            fresh = (record(spec, stim, missing, units="center", batch_size=self.batch_size,
                            device=self.device) if missing else {})
            for la in layers:
                resp[la][name] = get(condition, la, key, lambda la=la: fresh[_label(spec, la)]
                                     .rename("responses").to_dataset())["responses"]
        return resp

    def run(self, condition: str, spec, layers: list[str], summary: dict) -> None:
        """Every analysis of every layer; the APC fit of all layers in one call."""
        resp = self._responses(condition, spec, layers)
        sparse = {}
        for layer in layers:
            rows = summary.setdefault(layer, {})
            row = rows.setdefault(condition, {})
            row["n_units"] = int(resp[layer]["shapes"].sizes["unit"])
            sparse[layer] = self._sparsity(condition, layer, resp[layer], row)
        apc = self._apc(condition, layers, {la: resp[la]["shapes"] for la in layers}, sparse,
                        summary) if "apc" in self.tests else {}
        for layer in layers:
            rows = summary[layer]
            row = rows[condition]
            srow = (rows.setdefault("shuffle", {"n_units": row["n_units"]})
                    if self._shuffle(condition) else None)
            tis = self._ti(condition, spec, layer, row, srow) if "ti" in self.tests else {}
            fit = apc.get(layer)
            if fit is not None and "x" in tis:
                from artiphys.tuning.neural import combined_distance

                dist = combined_distance(tis["x"].ti.values, np.asarray(fit.r.values, float))
                row["distance_to_ideal_median"] = _median(dist)
            if fit is not None and self.ref_r is not None:
                from artiphys.tuning.neural import compare_r_distributions

                cmp = compare_r_distributions(fit, self.ref_r, by=None)
                row["ks_vs_reference"] = float(cmp.ks_statistic.values[0])
                row["reference_r_median"] = _median(self.ref_r)

    def _shuffle(self, condition: str) -> bool:
        return "shuffle" in self.controls and condition == "trained"

    def _sparsity(self, condition, layer, resp, row):
        get = self.store.get_or_make
        shapes_resp = resp["shapes"]
        sp = None
        if "sparsity" in self.tests or self.kurtosis_threshold is not None:
            from artiphys.tuning.sparsity import sparsity

            sp = get(condition, layer, "sparsity", lambda: sparsity(shapes_resp))
            row["sparsity_median"] = _median(sp.lifetime_sparseness)
            row["kurtosis_median"] = _median(sp.kurtosis)
        if "sparsity" in self.tests:
            from artiphys.tuning.sparsity import response_histograms, top_bottom_stimuli

            get(condition, layer, "histograms", lambda: response_histograms(resp))
            get(condition, layer, "top_bottom", lambda: top_bottom_stimuli(shapes_resp, 8))
        if "natural" in self.tests:
            from artiphys.tuning.sparsity import natural_to_shape_max_ratio

            ratio = get(condition, layer, "natural_ratio",
                        lambda: natural_to_shape_max_ratio(resp["natural"], shapes_resp))
            row["natural_shape_max_ratio_median"] = _median(ratio.ratio)
        return sp

    def _fit_stacked(self, condition: str, name: str, resp: dict, fit_fn,
                     post=lambda layer, result: result) -> dict:
        """``fit_fn(stacked responses)`` once for the layers without a stored result, then
        ``post(layer, result)`` on each layer's piece before it is stored."""
        from artiphys.tuning._arrays import split_layers, stack_layers

        todo = [la for la in resp if not (self.store.resume
                                          and self.store.path(condition, la, name).exists())]
        fitted = {}
        if todo:
            stacked = stack_layers({la: resp[la] for la in todo})
            labels = np.repeat(todo, [resp[la].sizes["unit"] for la in todo])
            stacked = stacked.assign_coords(layer=("unit", labels))
            fitted = split_layers(fit_fn(stacked))
        return {la: self.store.get_or_make(
                    condition, la, name,
                    lambda la=la: post(la, _restore_unit_coords(fitted[la], resp[la])))
                for la in resp}

    def _apc(self, condition, layers, resp, sparse, summary) -> dict:
        from artiphys.tuning.apc import fit_apc, fit_apc_cv
        from artiphys.tuning.controls import shuffle_responses
        from artiphys.tuning.sparsity import apply_kurtosis_filter

        preds, dev = self.predictions, self.device
        def kurtosis_filter(layer, result):
            if self.kurtosis_threshold is None:
                return result
            return apply_kurtosis_filter(result, sparse[layer].kurtosis.values,
                                         self.kurtosis_threshold)

        fits = self._fit_stacked(condition, "apc", resp,
                                 lambda r: fit_apc(r, predictions=preds, device=dev),
                                 kurtosis_filter)
        for la, f in fits.items():
            _apc_summary(summary[la][condition], f)
        if self.cv_folds:
            cvs = self._fit_stacked(condition, f"apc_cv{self.cv_folds}", resp, lambda r: fit_apc_cv(
                r, predictions=preds, n_folds=self.cv_folds, seed=self.seed, device=dev))
            for la, cv in cvs.items():
                summary[la][condition]["apc_cv_r_median"] = _median(cv.r)
        if self._shuffle(condition):
            shuffled = {la: shuffle_responses(r, self.seed) for la, r in resp.items()}
            shufs = self._fit_stacked("shuffle", "apc", shuffled,
                                      lambda r: fit_apc(r, predictions=preds, device=dev))
            for la, f in shufs.items():
                n_units = summary[la][condition]["n_units"]
                _apc_summary(summary[la].setdefault("shuffle", {"n_units": n_units}), f)
        return fits

    def _ti(self, condition, spec, layer, row, srow) -> dict:
        from artiphys.tuning.ti import ti_agreement, ti_from_sweep

        get, width = self.store.get_or_make, self.width_px
        tis = {}
        for axis in self.ti_axes:
            name = "ti" if axis == "x" else f"ti_{axis}"
            key = f"{name}_median"
            sweep = get(condition, layer, f"{name}_sweep", lambda a=axis: _sweep(
                spec, layer, self.standard, self.positions, self.device, self.batch_size, a))
            tis[axis] = get(condition, layer, name,
                            lambda: ti_from_sweep(sweep, stimulus_width_px=width))
            row[key] = _median(tis[axis].ti)
            if srow is not None:
                shuf = get("shuffle", layer, name, lambda: ti_from_sweep(
                    sweep, stimulus_width_px=width, shuffle_seed=self.seed))
                srow[key] = _median(shuf.ti)
        if {"x", "y"} <= set(tis):
            r = float(ti_agreement(tis["x"], tis["y"], by=None).r.sel(group="all"))
            row["ti_xy_r"] = r if np.isfinite(r) else None
        return tis


def _restore_unit_coords(result: xr.Dataset, responses: xr.DataArray) -> xr.Dataset:
    """A per-layer piece of a stacked result, with the layer's own unit coords."""
    from artiphys.tuning._arrays import unit_coords

    result = result.drop_vars("unit", errors="ignore")
    return result.assign_coords({k: v for k, v in unit_coords(responses).items()
                                 if k != "unit" or "unit" in responses.coords})


def _label(spec, layer) -> str:
    from artiphys.models.layers import resolve_layer

    return resolve_layer(spec, layer).label


def _apc_summary(row: dict, apc: xr.Dataset) -> None:
    r = np.asarray(apc.r.values, float)
    finite = r[np.isfinite(r)]
    row["apc_r_median"] = _median(r)
    row["apc_r_frac_gt_0.5"] = float(np.mean(finite > 0.5)) if finite.size else None
    row["n_apc_flagged"] = int((np.asarray(apc.flags.values) != 0).sum())
    if "n_excluded_kurtosis" in apc.attrs:
        row["n_excluded_kurtosis"] = int(apc.attrs["n_excluded_kurtosis"])


def _sweep(spec, layer, standard, positions, device, batch_size, axis="x") -> xr.Dataset:
    """Sweep responses with the shapes centred on the centre unit's RF (geometry if known)."""
    from artiphys.stimuli.shapes import shapes
    from artiphys.tuning.ti import sweep_responses

    images = standard
    try:
        from artiphys.models.receptive_field import layer_geometry, unit_center_px
        from artiphys.models.units import map_center

        geo = layer_geometry(spec, layer)
        if geo.is_spatial and geo.known:
            _, h, w = geo.out_shape
            cy, cx = unit_center_px(geo, *map_center(h, w))
            images = shapes(size_px=float(standard.params["size_px"].iloc[0]),
                            canvas_px=standard.size_px, x_px=cx, y_px=cy)
    except (ArtiphysError, ValueError, TypeError):
        pass  # geometry unknown: keep the shapes at the image centre
    return sweep_responses(spec, images, layer, positions, axis=axis, device=device,
                           batch_size=batch_size)
