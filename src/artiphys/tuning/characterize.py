"""The whole artiphysiology battery of Pospisil et al. (2018) on a model, with controls.

:func:`characterize` records every requested layer's centre units (one per channel) to
the 362 shapes (and to the large, dim and natural-image sets where needed), runs the APC
fit, TI, sparsity and natural-image analyses, repeats them for each control condition
(shuffled responses, untrained twin, weight-shuffled twin), writes one netCDF file per
condition, layer and analysis under ``out`` and returns (and writes) ``summary.json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from artiphys.errors import ArtiphysError

TESTS = ("apc", "ti", "sparsity", "natural")
CONTROLS = ("shuffle", "untrained", "weight-shuffle")


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label)


def _check(names, allowed, what):
    bad = [n for n in names if n not in allowed]
    if bad:
        raise ArtiphysError(f"unknown {what} {bad}; choose from {', '.join(allowed)}")


class _Store:
    """One netCDF file per (condition, layer, name) under ``out``; reused with resume."""

    def __init__(self, out: Path, resume: bool):
        self.out, self.resume = out, resume

    def path(self, condition, layer, name) -> Path:
        return self.out / condition / f"{_safe(layer)}.{name}.nc"

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


def characterize(model, layers: Sequence[str], out, *, tests: Sequence[str] = ("apc", "ti", "sparsity"),
                 controls: Sequence[str] = (), images_dir=None, n_images: int = 362,
                 seed: int = 0, kurtosis_threshold: float | None = None, cv_folds: int = 0,
                 ti_step_px: int = 2, ti_extent_px: int = 50, ti_axes: Sequence[str] = ("x",),
                 shape_size_px: float = 32,
                 reference_fits=None, resume: bool = False, device=None, batch_size: int = 64,
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
    lifetime sparseness), ``kurtosis_median``, ``n_excluded_kurtosis``.
    """
    from artiphys.models.controls import untrained_twin, weight_shuffled_twin
    from artiphys.models.spec import as_spec
    from artiphys.recording import record
    from artiphys.stimuli.apc_features import apc_features
    from artiphys.stimuli.shapes import shapes
    from artiphys.tuning.apc import apc_predictions, fit_apc, fit_apc_cv
    from artiphys.tuning.controls import shuffle_responses
    from artiphys.tuning.sparsity import (apply_kurtosis_filter, natural_to_shape_max_ratio,
                                          response_histograms, sparsity, top_bottom_stimuli)
    from artiphys.tuning.ti import position_sweep, ti_from_sweep

    _check(tests, TESTS, "tests")
    _check(controls, CONTROLS, "controls")
    _check(ti_axes, ("x", "y"), "TI axes")
    if "natural" in tests and images_dir is None:
        raise ArtiphysError("the natural test needs natural images: pass --images DIR")
    log = log or (lambda msg: None)
    spec = as_spec(model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = _Store(out, resume)
    size = spec.preprocessing.input_size_px
    standard = shapes(size_px=shape_size_px, canvas_px=size)
    sets = {"shapes": standard}
    if "sparsity" in tests:
        sets["shapes_large"] = shapes(size_px=2 * shape_size_px, canvas_px=size)
        sets["shapes_dim"] = shapes(size_px=shape_size_px, intensity=100, canvas_px=size)
    if images_dir is not None:
        from artiphys.stimuli.natural import images as natural_images

        sets["natural"] = natural_images(images_dir, n=n_images, seed=seed, size_px=size)
    predictions = None
    if "apc" in tests:
        predictions = apc_predictions(apc_features(standard), device=device)

    models = {"trained": spec}
    if "untrained" in controls:
        models["untrained"] = untrained_twin(spec, seed=seed)
    if "weight-shuffle" in controls:
        models["weight-shuffled"] = weight_shuffled_twin(spec, seed=seed)
    ref_r = None
    if reference_fits is not None:
        from artiphys.tuning.neural import load_v4_fits

        table = reference_fits if hasattr(reference_fits, "columns") else load_v4_fits(reference_fits)
        ref_r = np.asarray(table["r"], float)
    summary: dict = {"model": spec.provenance(), "tests": list(tests), "controls": list(controls),
                     "kurtosis_threshold": kurtosis_threshold,
                     "reference_fits": None if reference_fits is None or hasattr(reference_fits, "columns")
                     else str(reference_fits), "layers": {}}
    for condition, cspec in models.items():
        for layer in layers:
            log(f"{condition} {layer}")
            resp = {}
            for set_name, stim in sets.items():
                if set_name != "shapes" and not (set_name == "natural" or "sparsity" in tests):
                    continue
                ds = store.get_or_make(condition, layer, f"responses_{set_name}", lambda st=stim: record(
                    cspec, st, [layer], units="center", batch_size=batch_size,
                    device=device)[_label(cspec, layer)].rename("responses").to_dataset())
                resp[set_name] = ds["responses"]
            row = summary["layers"].setdefault(layer, {}).setdefault(condition, {})
            row["n_units"] = int(resp["shapes"].sizes["unit"])
            sp = None
            if "sparsity" in tests or kurtosis_threshold is not None:
                sp = store.get_or_make(condition, layer, "sparsity", lambda: sparsity(resp["shapes"]))
                row["sparsity_median"] = _median(sp.lifetime_sparseness)
                row["kurtosis_median"] = _median(sp.kurtosis)
            if "sparsity" in tests:
                store.get_or_make(condition, layer, "histograms",
                                  lambda: response_histograms(resp))
                store.get_or_make(condition, layer, "top_bottom",
                                  lambda: top_bottom_stimuli(resp["shapes"], 8))
            if "natural" in tests:
                ratio = store.get_or_make(condition, layer, "natural_ratio",
                                          lambda: natural_to_shape_max_ratio(resp["natural"],
                                                                             resp["shapes"]))
                row["natural_shape_max_ratio_median"] = _median(ratio.ratio)
            if "apc" in tests:
                def fit(r=resp["shapes"]):
                    res = fit_apc(r, predictions=predictions, device=device)
                    if kurtosis_threshold is not None:
                        res = apply_kurtosis_filter(res, sp.kurtosis.values, kurtosis_threshold)
                    return res

                apc = store.get_or_make(condition, layer, "apc", fit)
                _apc_summary(row, apc)
                if cv_folds:
                    cv = store.get_or_make(condition, layer, f"apc_cv{cv_folds}", lambda: fit_apc_cv(
                        resp["shapes"], predictions=predictions, n_folds=cv_folds, seed=seed,
                        device=device))
                    row["apc_cv_r_median"] = _median(cv.r)
                if "shuffle" in controls and condition == "trained":
                    shuf = store.get_or_make("shuffle", layer, "apc", lambda: fit_apc(
                        shuffle_responses(resp["shapes"], seed), predictions=predictions,
                        device=device))
                    srow = summary["layers"][layer].setdefault("shuffle", {})
                    srow["n_units"] = row["n_units"]
                    _apc_summary(srow, shuf)
            if "ti" in tests:
                tis = {}
                for axis in ti_axes:
                    name = "ti" if axis == "x" else f"ti_{axis}"
                    sweep = store.get_or_make(condition, layer, f"{name}_sweep", lambda a=axis: _sweep(
                        cspec, layer, standard, position_sweep(ti_step_px, ti_extent_px), device,
                        batch_size, a))
                    tis[axis] = store.get_or_make(condition, layer, name, lambda sw=sweep: ti_from_sweep(
                        sw, stimulus_width_px=shape_size_px))
                    key = "ti_median" if axis == "x" else f"ti_{axis}_median"
                    row[key] = _median(tis[axis].ti)
                    if "shuffle" in controls and condition == "trained":
                        shuf = store.get_or_make("shuffle", layer, name, lambda sw=sweep: ti_from_sweep(
                            sw, stimulus_width_px=shape_size_px, shuffle_seed=seed))
                        srow = summary["layers"][layer].setdefault("shuffle", {})
                        srow.setdefault("n_units", row["n_units"])
                        srow[key] = _median(shuf.ti)
                if {"x", "y"} <= set(tis):
                    from artiphys.tuning.ti import ti_agreement

                    agree = ti_agreement(tis["x"], tis["y"], by=None)
                    r = float(agree.r.sel(group="all"))
                    row["ti_xy_r"] = r if np.isfinite(r) else None
                if "apc" in tests and "x" in tis:
                    from artiphys.tuning.neural import combined_distance

                    dist = combined_distance(tis["x"].ti.values, np.asarray(apc.r.values, float))
                    row["distance_to_ideal_median"] = _median(dist)
            if ref_r is not None and "apc" in tests:
                from artiphys.tuning.neural import compare_r_distributions

                cmp = compare_r_distributions(apc, ref_r, by=None)
                row["ks_vs_reference"] = float(cmp.ks_statistic.values[0])
                row["reference_r_median"] = float(np.median(ref_r[np.isfinite(ref_r)]))
    from artiphys.store.atomic import atomic_write_json

    atomic_write_json(out / "summary.json", summary)
    return summary


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

        geo = layer_geometry(spec, layer)
        if geo.is_spatial and geo.known:
            _, h, w = geo.out_shape
            cy, cx = unit_center_px(geo, h // 2, w // 2)
            images = shapes(size_px=float(standard.params["size_px"].iloc[0]),
                            canvas_px=standard.size_px, x_px=cx, y_px=cy)
    except (ArtiphysError, ValueError, TypeError):
        pass  # geometry unknown: keep the shapes at the image centre
    return sweep_responses(spec, images, layer, positions, axis=axis, device=device,
                           batch_size=batch_size)
