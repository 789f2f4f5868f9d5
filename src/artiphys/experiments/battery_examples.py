"""Example units of the battery and their visualisations (Pospisil Figs. 5, 9-12; Table 1).

Per layer, example units are chosen from the model's own results: the highest APC r, the
highest TI, the closest to the ideal V4 unit ``sqrt((1 - TI)^2 + (1 - r)^2)`` and a
typical unit (median APC r), distinct, plus any units of interest the config names.
For each example unit (``synthesis = "examples"``; every unit with ``"all"``) the battery
stores, as steps with meta ``unit=<channel>`` (one step per layer and kind holding all
its units): the maximal image of the centre unit (Yosinski et al. 2015 as used by Bandi &
Kinley) with its probes, the Cadena et al. (2018) diverse set with its invariance
indices, and the top and bottom natural-image patches with their visualised features.
"""

from __future__ import annotations

import numpy as np

CRITERIA = ("highest APC r", "highest TI", "closest to the ideal V4 unit",
            "median APC r (typical)")


def rank_units(apc_r, ti) -> list[tuple[str, np.ndarray]]:
    """Unit orders (best first) for each criterion that some unit has a value for; NaN
    ranks last."""
    r = np.asarray(apc_r, float)
    t = np.asarray(ti, float) if ti is not None else np.full_like(r, np.nan)
    dist = np.sqrt((1 - t) ** 2 + (1 - r) ** 2)
    med = np.nanmedian(r) if np.isfinite(r).any() else 0.0
    keys = dict(zip(CRITERIA, (-r, -t, dist, np.abs(r - med))))
    return [(name, np.argsort(np.where(np.isfinite(key), key, np.inf), kind="stable"))
            for name, key in keys.items() if np.isfinite(key).any()]


def choose_examples(apc_r, ti, channels, n: int = 4, extra=()) -> list[dict]:
    """``n`` distinct example units (one per criterion in turn, the next best when a unit
    was already chosen), then the channels of ``extra``; ``[{"channel", "reason"}]``."""
    channels = np.asarray(channels)
    chosen: dict[int, str] = {}
    ranks = rank_units(apc_r, ti)
    n = min(n, len(channels))
    for k in range(n * max(1, len(ranks))):
        if len(chosen) >= n or not ranks:
            break
        name, order = ranks[k % len(ranks)]
        c = next(int(channels[i]) for i in order if int(channels[i]) not in chosen)
        chosen[c] = name
    for c in extra:
        chosen.setdefault(int(c), "unit of interest")
    return [{"channel": c, "reason": why} for c, why in chosen.items()]


def parse_units_of_interest(items, labels_by_name: dict) -> dict[str, list[int]]:
    """``("conv2:5", "features.7:12")`` -> ``{label: [channels]}``.

    Raises
    ------
    ConfigError
        For items not of the form ``layer:channel`` or naming a layer not in the battery.
    """
    from artiphys.config import ConfigError

    out: dict[str, list[int]] = {}
    for item in items:
        layer, sep, channel = str(item).rpartition(":")
        if not sep or not channel.isdigit():
            raise ConfigError(f"cannot read unit of interest {item!r}: use layer:channel, "
                              "e.g. conv2:5")
        if layer not in labels_by_name:
            raise ConfigError(f"unit of interest {item!r}: layer {layer!r} is not in the "
                              f"battery's layers ({', '.join(sorted(labels_by_name))})")
        out.setdefault(labels_by_name[layer], []).append(int(channel))
    return out


def examples(battery) -> dict[str, list[dict]]:
    """The example units of every layer (stored as the ``examples`` JSON step)."""
    res, cond = battery.results, battery.spec.condition
    wanted = parse_units_of_interest(battery.cfg.units_of_interest, battery.labels_by_name)
    out = {}
    for ref in battery.refs:
        apc = res.get((cond, ref.label, "apc"))
        ti = res.get((cond, ref.label, "ti"))
        if apc is None:
            continue
        ds = apc[1]
        channels = np.asarray(ds["channel"].values)
        out[ref.label] = choose_examples(ds.r.values, None if ti is None else ti[1].ti.values,
                                         channels, battery.cfg.n_examples,
                                         wanted.get(ref.label, ()))
    return out


def run_examples(battery) -> None:
    """Choose the example units and store their visualisations (see the module doc)."""
    cfg, s = battery.cfg, battery.s
    if cfg.synthesis == "none" or "apc" not in battery.tests:
        if cfg.synthesis != "none":
            battery.skipped.append("example-unit synthesis: needs the apc test to choose units")
        return
    inputs = {f"{c}/{la}/{n}": d for (c, la, n), (d, _) in battery.results.items()
              if n in ("apc", "ti") and c == battery.spec.condition}
    chosen = battery.one(battery.spec.condition, "all", "examples", battery.spec, inputs,
                          {"n": cfg.n_examples, "of_interest": list(cfg.units_of_interest)},
                          lambda: {"layers": examples(battery), "criteria": list(CRITERIA)})
    spec = battery.spec
    spec.module.to(s.device)
    synth_layers, diverse_layers = battery.synthesis_layers, battery.diverse_layers
    for ref in battery.refs:
        if synth_layers and ref.label not in synth_layers:
            continue
        units = [e["channel"] for e in chosen["layers"].get(ref.label, [])]
        if cfg.synthesis == "all":
            units = sorted(set(units) | set(range(int(battery.n_channels(ref)))))
        if not units:
            continue
        s.progress.step(f"{spec.condition} {ref.label}: visualising {len(units)} unit(s)")
        _maximal_images(battery, ref, units)
        if cfg.images_dir is not None and (not diverse_layers or ref.label in diverse_layers):
            _diverse(battery, ref, [e["channel"] for e in chosen["layers"].get(ref.label, [])])
        if "natural" in battery.tests:
            _top_patches(battery, ref, units)
    if cfg.images_dir is None:
        battery.skipped.append("diverse sets and top/bottom patches of the example units: "
                               "they need natural images (the image norm, the patches); "
                               "pass --images DIR or set ARTIPHYS_NATURAL_IMAGES")


def layer_choice(battery, names, field: str) -> set[str]:
    """The battery labels of the layers ``names`` (empty: no restriction).

    Raises
    ------
    ConfigError
        For a name that is not one of the battery's layers.
    """
    from artiphys.config import ConfigError

    out = set()
    for name in names:
        if name not in battery.labels_by_name:
            raise ConfigError(f"{field}: layer {name!r} is not in the battery's layers "
                              f"({', '.join(sorted(battery.labels_by_name))})")
        out.add(battery.labels_by_name[name])
    return out


def _unit_meta(units):
    return {"unit": ",".join(map(str, units))}


def _maximal_images(battery, ref, units) -> None:
    import torch

    from artiphys.experiments.base import model_inputs
    from artiphys.synthesis.probes import probe_responses
    from artiphys.synthesis.render import default_recipe, render_units
    from artiphys.synthesis.save import synthesis_dataset

    spec, cfg = battery.spec, battery.cfg
    recipe = default_recipe("pixel", steps=cfg.synthesis_steps,
                            rescue_steps=cfg.rescue_steps)
    settings = {"objective": "unit", "param": "pixel", "recipe": recipe.to_dict(),
                "seed": cfg.control_seed}

    def compute():
        res = render_units(spec, ref.name, units, objective="unit", param="pixel",
                           recipe=recipe, batch_size=len(units), seed=cfg.control_seed,
                           progress=not battery.s.progress.quiet)
        ds = synthesis_dataset(res)
        ds.attrs.update(analysis="synthesis", layer=ref.label)
        return ds

    images = battery.one(spec.condition, ref.label, "maximal_images", spec,
                          {**model_inputs(spec), "layer": ref.name, "units": units}, settings,
                          compute, **_unit_meta(units))
    digest = battery.results[spec.condition, ref.label, "maximal_images"][0]
    battery.one(spec.condition, ref.label, "probes", spec, {"images": digest},
                 {"units": units}, lambda: probe_responses(
                     spec, ref.name, torch.as_tensor(images["images"].values), units),
                 **_unit_meta(units))


def _diverse(battery, ref, units) -> None:
    from artiphys.experiments.base import model_inputs
    from artiphys.synthesis.diverse import (DiverseRecipe, TextureRecipe, diverse_sets,
                                            invariance_indices)

    spec, cfg = battery.spec, battery.cfg
    if not units or not battery.is_spatial(ref):
        return
    lambdas = {"lambdas": tuple(cfg.diverse_lambdas)} if cfg.diverse_lambdas else {}
    recipe = DiverseRecipe(steps=cfg.diverse_steps, seed=cfg.control_seed, **lambdas)
    sets = battery.one(spec.condition, ref.label, "diverse", spec,
                        {**model_inputs(spec), "layer": ref.name, "units": units},
                        {"recipe": recipe.to_dict(), "images_dir": cfg.images_dir},
                        lambda: diverse_sets(spec, ref.name, units, recipe=recipe,
                                             natural_folder=cfg.images_dir,
                                             progress=not battery.s.progress.quiet),
                        **_unit_meta(units))
    digest = battery.results[spec.condition, ref.label, "diverse"][0]
    texture = TextureRecipe(steps=cfg.diverse_steps, seed=cfg.control_seed)
    battery.one(spec.condition, ref.label, "diverse_indices", spec, {"sets": digest},
                 {"steps": cfg.diverse_steps},
                 lambda: invariance_indices(spec, sets, texture=texture,
                                            progress=not battery.s.progress.quiet),
                 **_unit_meta(units))


def _top_patches(battery, ref, units) -> None:
    import xarray as xr

    from artiphys.experiments.base import model_inputs
    from artiphys.synthesis.save import top_patches_dataset
    from artiphys.synthesis.top_patches import top_patches

    spec, stim = battery.spec, battery.sets[battery.size_of(ref)]["natural"]

    def compute():
        res = top_patches(spec, stim, ref.name, units, 8, position="center",
                          batch_size=battery.s.batch_size,
                          progress=not battery.s.progress.quiet)
        ds = top_patches_dataset(res)
        table = xr.Dataset.from_dataframe(res.table.reset_index(drop=True))
        ds = ds.merge(table.rename({"index": "row"}).rename_vars(
            {c: f"table_{c}" for c in res.table.columns}))
        ds.attrs.update(analysis="top_patches", layer=ref.label)
        return ds

    battery.one(spec.condition, ref.label, "top_patches", spec,
                 {**model_inputs(spec), "layer": ref.name, "units": units,
                  "stimuli": stim.content_hash},
                 {"k": 8, "position": "center", "method": "deconv", "suppressive": "linear"},
                 compute,
                 **_unit_meta(units))


__all__ = ["CRITERIA", "choose_examples", "examples", "layer_choice", "parse_units_of_interest",
           "rank_units", "run_examples"]
