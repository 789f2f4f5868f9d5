"""APC steps of the battery: the fit of every layer of a condition in one call, its
cross-validated fit, the shuffle control and the size confounds (area, perimeter, extent;
APC r with area partialled out)."""

from __future__ import annotations

from functools import partial

import numpy as np
import xarray as xr


def apc_inputs(battery):
    """``(features digest, predictions)`` of the standard shapes (computed once: the APC
    features are in shape units, the same at every shape size)."""
    if battery._apc_inputs is None:
        from artiphys.experiments.battery import features_digest
        from artiphys.stimuli.apc_features import apc_features
        from artiphys.tuning.apc import apc_predictions

        first = next(iter(battery.sets.values()))["shapes"]
        feats = apc_features(first)
        battery._apc_inputs = (features_digest(feats),
                               apc_predictions(feats, device=battery.s.device))
    return battery._apc_inputs


def apc(battery, condition: str, cspec, shapes: dict) -> None:
    """APC fit (CV fit, the shuffle control's fit, confounds) of every layer at once."""
    from artiphys.tuning.apc import fit_apc, fit_apc_cv
    from artiphys.tuning.controls import shuffle_responses

    fdig, preds = apc_inputs(battery)
    dev, seed, cfg = battery.s.device, battery.cfg.control_seed, battery.cfg
    base = {"features": fdig, "grid": "published"}
    fits = [(condition, "apc", shapes, {"refine": True}, partial(fit_apc, device=dev))]
    if cfg.cv_folds:
        k = cfg.cv_folds
        fits.append((condition, "apc_cv", shapes, {"folds": k, "seed": seed},
                     partial(fit_apc_cv, n_folds=k, seed=seed, device=dev)))
    if battery.shuffle(condition):
        shuffled = {la: (d, shuffle_responses(r, seed)) for la, (d, r) in shapes.items()}
        fits.append(("shuffle", "apc_shuffle", shuffled, {"refine": True, "shuffle_seed": seed},
                     partial(fit_apc, device=dev)))
    battery.s.executor.each(lambda f: fit_layers(battery, f[0], cspec, f[1], f[2], base, f[3],
                                                 f[4]), fits)
    confounds(battery, condition, cspec, shapes)


def fit_layers(battery, condition, cspec, name, resp: dict, inputs, settings, fit) -> None:
    """``fit(responses, predictions=...)`` once on the stacked responses of every layer
    without a stored result (as one task of the session's executor)."""
    preds, ex = apc_inputs(battery)[1], battery.s.executor
    steps = [battery.step(name, condition, label, spec=cspec,
                          inputs={**inputs, "responses": d}, settings=settings)
             for label, (d, _) in resp.items()]

    def compute(todo):
        labels = [t.meta["layer"] for t in todo]
        return ex.run(fit_stacked, fit, preds, {la: resp[la][1] for la in labels})

    got = battery.s.store.get_or_compute_many(steps, compute)
    for st, value in zip(steps, got):
        battery.results[condition, st.meta["layer"], name] = (st.digest, value)


def fit_stacked(fit, predictions, responses: dict) -> list:
    """``fit`` once on the stacked ``{label: responses}``, one result per label (a
    module-level function of picklable arguments, so that it can run as a Dask task)."""
    from artiphys.tuning._arrays import split_layers, stack_layers

    labels = list(responses)
    stacked = stack_layers(responses)
    stacked = stacked.assign_coords(layer=("unit", np.repeat(
        labels, [responses[la].sizes["unit"] for la in labels])))
    pieces = split_layers(fit(stacked, predictions=predictions))
    return [restore_unit_coords(pieces[la], responses[la]) for la in labels]


def confounds(battery, condition: str, cspec, shapes: dict) -> None:
    """Per layer: r with area, perimeter and extent; APC r with area partialled out."""
    from artiphys.tuning.confounds import apc_confounds, area_residual_predictions, \
        shape_descriptors

    fdig, preds = apc_inputs(battery)
    partial: dict = {}
    for ref in battery.refs:
        d, resp = shapes[ref.label]
        px = battery.size_of(ref)
        stim = battery.sets[px]["shapes"]
        fit_digest, fit = battery.results[condition, ref.label, "apc"]

        def compute(resp=resp, stim=stim, px=px, fit=fit):
            if px not in partial:
                area = shape_descriptors(stim)["area_px2"].to_numpy()
                partial[px] = area_residual_predictions(preds, area)
            return apc_confounds(resp, preds, stimuli=stim, apc_fit=fit,
                                 partial_predictions=partial[px], seed=battery.cfg.control_seed,
                                 device=battery.s.device)

        battery.one(condition, ref.label, "apc_confounds", cspec,
                    {"responses": d, "apc": fit_digest, "features": fdig},
                    {"n_null": 1, "seed": battery.cfg.control_seed}, compute)


def restore_unit_coords(result: xr.Dataset, responses: xr.DataArray) -> xr.Dataset:
    """A per-layer piece of a stacked result, with the layer's own unit coords."""
    from artiphys.tuning._arrays import unit_coords

    result = result.drop_vars("unit", errors="ignore")
    return result.assign_coords({k: v for k, v in unit_coords(responses).items()
                                 if k != "unit" or "unit" in responses.coords})


__all__ = ["apc", "apc_inputs", "confounds", "fit_layers", "restore_unit_coords"]
