"""A diverse-set experiment over layers and control conditions, stored as a run directory.

:func:`diverse_experiment` runs :func:`artiphys.synthesis.diverse.diverse_sets` and
:func:`~artiphys.synthesis.diverse.invariance_indices` for the same units of several layers
of a model and of its controls (random-weight and weight-shuffled twins), writing
``<condition>/diverse_<layer>.nc`` and ``<condition>/diverse_<layer>.indices.nc`` as each
finishes; with ``resume`` finished files are kept (the stored settings must match). It is
what ``artiphys diverse`` runs; ``artiphys report`` draws the result.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict

import xarray as xr

from artiphys.errors import ArtiphysError
from artiphys.models.controls import TWINS
from artiphys.models.graph import pre_rectifier_layer
from artiphys.models.layers import resolve_layer
from artiphys.models.spec import ModelSpec, as_spec
from artiphys.store.rundir import RunDir, file_label
from artiphys.synthesis.diverse import DiverseRecipe, diverse_sets
from artiphys.synthesis.invariance import TextureRecipe, invariance_indices
from artiphys.synthesis.priors import prior_name


def diverse_experiment(model: ModelSpec, layers: Sequence, units: Sequence[int], *,
                       out: str | os.PathLike, controls: Sequence[str] = (),
                       recipe: DiverseRecipe | None = None,
                       texture: TextureRecipe | None = None, indices: bool = True,
                       norm: float | None = None,
                       natural_folder: str | os.PathLike | None = None, prior=None,
                       batch_units: int | None = None, device=None, resume: bool = False,
                       command: list[str] | None = None,
                       echo: Callable[[str], None] = print) -> RunDir:
    """Diverse sets (and indices) for ``units`` of every layer in ``layers``, for ``model``
    and each of ``controls`` (``"untrained"``, ``"weight-shuffle"``), written to ``out``.

    Conditions are named by the models' ``condition`` (``trained`` for zoo weights); they
    must differ. ``echo`` gets one line per finished (condition, layer), and a note when
    units of a rectified layer stayed silent (see :func:`pre_rectifier_layer`).
    """
    spec = as_spec(model)
    recipe = recipe or DiverseRecipe()
    texture = texture or TextureRecipe(optimizer=recipe.optimizer)
    unknown = [c for c in controls if c not in TWINS]
    if unknown:
        raise ArtiphysError(f"unknown control {unknown[0]!r} for diverse sets; choose from "
                            f"{', '.join(TWINS)}")
    units = [int(u) for u in units]
    if not units or not layers:
        raise ArtiphysError("give at least one layer and one unit, e.g. --layer conv3_1 "
                            "--units 0-31")
    labels = [resolve_layer(spec, la).label for la in layers]
    models = [spec] + [TWINS[c](spec, seed=int(spec.seed or 0)) for c in controls]
    conditions = [m.condition for m in models]
    if len(set(conditions)) < len(conditions):
        raise ArtiphysError(f"conditions repeat ({', '.join(conditions)}): do not ask for a "
                            "control that the model already is (e.g. --untrained with "
                            "--controls untrained)")
    identity = {"model": spec.provenance(), "layers": labels, "units": units,
                "controls": list(controls), "recipe": recipe.to_dict(),
                "prior": prior_name(prior), "norm": norm,
                "texture": asdict(texture) if indices else None}
    run = RunDir.create(out, {"command": command or [], "analysis": "diverse"},
                        identity=identity, resume=resume)
    done = run.chunks
    for twin in models:
        if device is not None:
            twin.module.to(device)
        for layer, label in zip(layers, labels):
            base = f"{twin.condition}/diverse_{file_label(label)}"
            need_idx = indices and f"{base}.indices.nc" not in done
            if f"{base}.nc" in done and not need_idx:
                echo(f"{twin.condition} {label}: kept from the earlier run")
                continue
            if f"{base}.nc" in done:
                with xr.open_dataset(run.file(f"{base}.nc")) as stored:
                    ds = stored.load()
            else:
                ds = diverse_sets(twin, layer, units, recipe=recipe, norm=norm,
                                  natural_folder=natural_folder, prior=prior,
                                  batch_units=batch_units, progress=True)
                run.write_netcdf(f"{base}.nc", ds, chunk=f"{base}.nc")
            silent = int((~ds["responsive"].values.astype(bool)).sum())
            pre = pre_rectifier_layer(twin, layer) if silent else None
            if pre:
                echo(f"note: {silent} unit(s) of {label} ({twin.condition}) stayed silent from "
                     f"the noise start (no gradient through the rectifier); the "
                     f"pre-activation layer {pre} has the same optimum and always a gradient")
            msg = (f"{twin.condition} {label}: {int(ds['responsive'].sum())}/{len(units)} "
                   f"units respond; median chosen lambda "
                   f"{float(ds['chosen_lambda'].median()):g}, median diversity gain "
                   f"{float(ds['diversity_gain'].median()):.3g}")
            if need_idx:
                ind = invariance_indices(twin, ds, texture=texture, progress=True)
                run.write_netcdf(f"{base}.indices.nc", ind, chunk=f"{base}.indices.nc")
                msg += (f"; median phase-invariance index "
                        f"{float(ind['phase_invariance_index'].median()):.3g}, "
                        f"linear-combination index "
                        f"{float(ind['linear_combination_index'].median()):.3g}")
            echo(msg)
    run.update_manifest(finished=True)
    return run


__all__ = ["diverse_experiment"]
