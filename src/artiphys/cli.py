"""Command-line interface: thin commands that parse strings and call the library.

Every command that takes a MODEL accepts the same model options (``model_options``).
Errors caused by user input (:class:`artiphys.errors.ArtiphysError`) are printed on one
line and exit with status 2; no traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from artiphys.errors import ArtiphysError


class _Group(click.Group):
    """Click group that turns ArtiphysError into a one-line message and exit status 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ArtiphysError as exc:
            click.echo(f"artiphys: error: {exc}", err=True)
            sys.exit(2)
        except FileNotFoundError as exc:
            click.echo(f"artiphys: error: file not found: {exc.filename}; check the path", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="artiphys")
def main():
    """artiphys: in-silico electrophysiology of deep networks."""


def model_options(func):
    """Add the shared model options and pass a loaded ``ModelSpec`` as ``spec``."""

    @click.argument("model")
    @click.option("--pretrained/--untrained", default=None,
                  help="Trained weights (default for zoo models) or a random-init twin.")
    @click.option("--weights", "weights", type=click.Path(dir_okay=False), default=None,
                  help="Explicit weights file (.pth state dict).")
    @click.option("--seed", type=int, default=0, show_default=True,
                  help="Seed of random initialisation and shuffles.")
    @click.option("--input-size", "input_size", type=int, default=None,
                  help="Input size in px (e.g. 227 for the AlexNet runs of Pospisil et al.).")
    @click.option("--device", default=None, help="torch device (default: cuda when present).")
    @functools.wraps(func)
    def wrapper(model, pretrained, weights, seed, input_size, device, **kwargs):
        from artiphys.models import load_model

        spec = load_model(model, pretrained=pretrained, weights=weights, seed=seed,
                          input_size=input_size)
        return func(spec=spec, device=device, **kwargs)

    return wrapper


def parse_list(text: str | None) -> list[str] | None:
    """``"a,b, c"`` -> ``["a", "b", "c"]``; None stays None."""
    if text is None:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_units(text: str | None) -> list[int] | None:
    """``"0-3,7"`` -> ``[0, 1, 2, 3, 7]``."""
    if text is None:
        return None
    out: list[int] = []
    for part in parse_list(text) or []:
        try:
            if "-" in part:
                lo, hi = part.split("-", 1)
                out.extend(range(int(lo), int(hi) + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ArtiphysError(f"cannot read units {text!r}: use e.g. 0-63 or 1,5,9") from None
    return out


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


# ---- models (issue 2) ------------------------------------------------------------------

@main.command("models")
@click.option("--timm", "include_timm", is_flag=True, help="Also list timm's models (timm:<name>).")
def models_cmd(include_timm):
    """List the model names artiphys can load."""
    from artiphys.models import available_models

    for name in available_models(include_timm=include_timm):
        click.echo(name)


@main.command("model-info")
@model_options
def model_info_cmd(spec, device):
    """Load MODEL and print its provenance (condition, weights file and sha256, input size)."""
    info = spec.provenance()
    info["n_parameters"] = sum(p.numel() for p in spec.module.parameters())
    info["aliases"] = spec.aliases
    echo_json(info)


def _architecture_options(func):
    """``model_options`` for commands that need the architecture only: unless --pretrained
    or --weights is given, the model is built with random weights (no weights file needed)."""
    loaded = model_options(func)

    @functools.wraps(loaded)
    def wrapper(model, pretrained, weights, **kwargs):
        if pretrained is None and weights is None:
            pretrained = False
        return loaded(model=model, pretrained=pretrained, weights=weights, **kwargs)

    return wrapper


@main.command("layers")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON list of objects (name, alias, kind, shape, units, rf_size, "
                   "stride, offset, ...) instead of a table.")
@click.option("--layer", "layer", default=None,
              help="Only this layer (module path or alias, e.g. conv2 or features.3).")
@_architecture_options
def layers_cmd(spec, device, as_json, layer):
    """List MODEL's layers in execution order with shapes and receptive fields (px).

    Shapes and receptive fields depend on the architecture (and --input-size) only, so
    no weights are loaded unless --pretrained or --weights is given.
    """
    from artiphys.models.layers import format_layer_table, list_layers, select_layer_rows

    rows = list_layers(spec)
    if layer is not None:
        rows = select_layer_rows(spec, rows, layer)
    if as_json:
        echo_json([row.to_dict() for row in rows])
    else:
        click.echo(format_layer_table(rows))


# ---- recording and run store (issue 2) -------------------------------------------------

def parse_unit_arg(text: str):
    """``center`` | ``all`` | channels ``0-63,70`` (at the map centre) | ``c:y:x,c:y:x``."""
    text = text.strip()
    if text in {"center", "all"}:
        return text
    if ":" in text:
        out = []
        for part in parse_list(text) or []:
            try:
                c, y, x = (int(v) for v in part.split(":"))
            except ValueError:
                raise ArtiphysError(f"cannot read unit {part!r}: use channel:y:x, e.g. 3:6:6") from None
            out.append((c, y, x))
        return out
    try:
        return parse_units(text)
    except ArtiphysError:
        raise ArtiphysError(f"cannot read --units {text!r}: use center, all, channels like 0-63, "
                            "or channel:y:x triples like 3:6:6,4:6:6") from None


def load_stimuli_arg(text: str):
    """A registered set (``NAME[:key=value,...]``) or a ``.npy`` file of images in [0, 1]."""
    from pathlib import Path

    from artiphys.stimuli.registry import parse_stimuli_arg

    if text.endswith(".npy") or Path(text).is_file():
        import numpy as np

        from artiphys.recording import as_stimulus_set

        try:
            images = np.load(text, allow_pickle=False)
        except ValueError as exc:
            raise ArtiphysError(f"cannot read images from {text}: {exc}; save a float array "
                                "(n, 3, H, H) in [0, 1] with numpy.save") from None
        return as_stimulus_set(images, name=f"file:{Path(text).name}")
    return parse_stimuli_arg(text)


@main.command("record")
@model_options
@click.option("--stimuli", "stimuli_arg", required=True,
              help="Stimulus set NAME[:key=value,...] (e.g. noise:n=64) or a .npy file of "
                   "images (n, 3, H, H) in [0, 1].")
@click.option("--layers", required=True, help="Comma-separated layer names or aliases.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Run directory to write (manifest.json + netCDF files).")
@click.option("--units", "units_arg", default="center", show_default=True,
              help="center, all, channels (0-63,70) or channel:y:x triples (3:6:6,4:6:6).")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--chunk-size", type=int, default=512, show_default=True,
              help="Stimuli per netCDF chunk file (bounds memory).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out.")
def record_cmd(spec, device, stimuli_arg, layers, out, units_arg, batch_size, chunk_size, resume):
    """Record responses of MODEL's units in --layers to a stimulus set into --out."""
    from tqdm import tqdm

    from artiphys.recording import record_to_store

    stimuli = load_stimuli_arg(stimuli_arg)
    units = parse_unit_arg(units_arg)
    with tqdm(total=len(stimuli), unit="img", disable=None, leave=False) as bar:
        run = record_to_store(spec, stimuli, parse_list(layers) or [], out, units,
                              chunk_size=chunk_size, batch_size=batch_size, device=device,
                              resume=resume, command=["artiphys", *sys.argv[1:]],
                              metadata={"stimuli_arg": stimuli_arg},
                              progress=lambda done: bar.update(done - bar.n))
    manifest = run.manifest
    click.echo(f"recorded {manifest['n_stimuli']} stimuli x "
               f"{len(manifest['layers'])} layer(s) of {spec.name} into {run.path}")


# ---- stimuli (issue 3) -----------------------------------------------------------------

def parse_options(items) -> dict:
    """``("size_px=64", "unique=false")`` -> ``{"size_px": 64, "unique": False}``."""
    from artiphys.stimuli.registry import _parse_value

    out = {}
    for item in items or ():
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ArtiphysError(f"cannot read option {item!r}: use --option key=value")
        out[key.strip().replace("-", "_")] = _parse_value(value.strip())
    return out


@main.command("stimuli")
@click.argument("set_name", required=False)
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE",
              help="Set option, repeatable (e.g. -o size_px=64 -o orientation_deg=0,45,90).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write a labelled contact sheet (e.g. shapes.png).")
@click.option("--json", "as_json", is_flag=True, help="Print the parameter table as JSON.")
@click.option("--cols", type=int, default=None, help="Columns of the contact sheet.")
@click.option("--limit", type=int, default=None, help="Draw only the first N stimuli.")
@click.option("--no-crop", is_flag=True, help="Draw whole images, not the central content.")
@click.option("--list", "list_sets", is_flag=True, help="List the stimulus set names.")
def stimuli_cmd(set_name, options, out, as_json, cols, limit, no_crop, list_sets):
    """Build stimulus set SET_NAME (shapes, shapes_sweep, gratings, gabors, dog,
    binarised_grating, images, probe, baselines, ...); draw it or print its table.

    Also accepts SET_NAME:key=value,key=value (the form of ``record --stimuli``).
    """
    from artiphys.stimuli.registry import _load_builtin_sets, available_sets, make_stimuli

    if list_sets or not set_name:
        _load_builtin_sets()
        click.echo("\n".join(available_sets()))
        return
    name, _, inline = set_name.partition(":")
    # inline options are comma-separated; --option values may themselves hold lists (0,45,90)
    opts = parse_options(o.strip() for o in inline.split(",") if o.strip())
    opts.update(parse_options(options))
    stim = make_stimuli(name, **opts)
    if out:
        from artiphys.stimuli.sheet import save_contact_sheet

        sheet = save_contact_sheet(stim, out, ncols=cols, limit=limit, crop=not no_crop)
        click.echo(f"wrote {sheet.path} ({sheet.summary}, set {stim.name}, hash {stim.content_hash})",
                   err=as_json)
    if as_json:
        for text in stim.iter_json():
            click.echo(text, nl=False)
    elif not out:
        echo_json(stim.describe())


# ---- tuning analyses (issue 4) ---------------------------------------------------------

def _analysis_layers(run, layers):
    """Responses of ``layers`` (default: every layer) of a recorded run directory."""
    from artiphys.recording.record import load_responses, load_run_responses

    if layers:
        return {name: load_responses(run, name) for name in parse_list(layers)}
    return load_run_responses(run)


def _write_result(out, label, name, ds):
    from artiphys.store.atomic import atomic_write_netcdf
    from artiphys.store.rundir import file_label
    from artiphys.tuning.characterize import _netcdf_safe

    path = Path(out) / f"{file_label(label)}.{name}.nc"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_netcdf(path, _netcdf_safe(ds))
    return path


@main.command("characterize")
@model_options
@click.option("--layers", required=True, help="Comma-separated layer names or aliases.")
@click.option("--tests", default="apc,ti,sparsity", show_default=True,
              help="Analyses: apc, ti, sparsity, natural.")
@click.option("--controls", default="", help="Controls: shuffle, untrained, weight-shuffle.")
@click.option("--images", "images_dir", type=click.Path(exists=True, file_okay=False),
              default=None, help="Folder of natural images (for --tests natural).")
@click.option("--n-images", type=int, default=362, show_default=True)
@click.option("--kurtosis-filter", "kurtosis", type=float, default=None,
              help="Exclude units with kurtosis >= this from APC results (paper: 42). Off by default.")
@click.option("--cv-folds", type=int, default=0, show_default=True,
              help="Also a k-fold cross-validated APC fit (0 = off).")
@click.option("--ti-step", type=int, default=2, show_default=True, help="TI sweep step, px.")
@click.option("--ti-extent", type=int, default=50, show_default=True, help="TI sweep +- extent, px.")
@click.option("--ti-axes", default="x", show_default=True,
              help="TI sweep directions: x, or x,y for TI_y and the x/y agreement too.")
@click.option("--control-seed", type=int, default=0, show_default=True,
              help="Seed of shuffles, twins and natural-image draws.")
@click.option("--reference", "reference", type=click.Path(exists=True, dir_okay=False),
              default=None, help="Table of recorded neurons' APC fits (an r column), e.g. "
                                 "v4_apc_fits_pc2001_109cells.csv: adds KS vs the neurons.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False))
@click.option("--resume", is_flag=True, help="Reuse results already in --out.")
def characterize_cmd(spec, device, layers, tests, controls, images_dir, n_images, kurtosis,
                     cv_folds, ti_step, ti_extent, ti_axes, control_seed, reference, batch_size,
                     out, resume):
    """APC, TI, sparsity and natural-image analyses of MODEL's --layers, with controls.

    Writes <out>/<condition>/<layer>.<analysis>.nc and <out>/summary.json.
    """
    from artiphys.tuning.characterize import characterize

    summary = characterize(spec, parse_list(layers) or [], out, tests=parse_list(tests) or [],
                           controls=parse_list(controls) or [], images_dir=images_dir,
                           n_images=n_images, seed=control_seed, kurtosis_threshold=kurtosis,
                           cv_folds=cv_folds, ti_step_px=ti_step, ti_extent_px=ti_extent,
                           ti_axes=parse_list(ti_axes) or ["x"], reference_fits=reference,
                           resume=resume, device=device, batch_size=batch_size,
                           log=lambda msg: click.echo(msg, err=True))
    echo_json(summary["layers"])


@main.command("apc")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--layers", default=None, help="Layers of the run (default: all).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False))
@click.option("--features", "features_csv", type=click.Path(exists=True, dir_okay=False),
              default=None, help="APC feature table (stimulus_index, angular_position_rad, "
                                 "curvature); default computed from the shape coords.")
@click.option("--cv-folds", type=int, default=0, show_default=True)
@click.option("--shuffle", "n_shuffle", type=int, default=0, show_default=True,
              help="Shuffle-control repeats (null distribution of r).")
@click.option("--kurtosis-filter", "kurtosis", type=float, default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default=None)
def apc_cmd(run, layers, out, features_csv, cv_folds, n_shuffle, kurtosis, seed, device):
    """Fit the APC model to recorded shape responses in RUN (a `record` run directory)."""
    import numpy as np
    import pandas as pd

    from artiphys.stimuli.apc_features import apc_features
    from artiphys.tuning.apc import apc_predictions, as_feature_list, fit_apc, fit_apc_cv
    from artiphys.tuning.controls import shuffle_null
    from artiphys.tuning.sparsity import apply_kurtosis_filter, sparsity

    summary = {}
    preds = None
    for label, da in _analysis_layers(run, layers).items():
        if preds is None:
            if features_csv:
                feats = as_feature_list(pd.read_csv(features_csv), n_stimuli=da.sizes["stimulus"])
            else:
                table = pd.DataFrame({c: np.asarray(da[c].values) for c in ("shape_id", "rotation")
                                      if c in da.coords})
                feats = apc_features(table)
            preds = apc_predictions(feats, device=device)
        res = fit_apc(da, predictions=preds, device=device)
        if kurtosis is not None:
            res = apply_kurtosis_filter(res, sparsity(da).kurtosis.values, kurtosis)
        _write_result(out, label, "apc", res)
        row = {"n_units": int(da.sizes["unit"]),
               "apc_r_median": float(np.nanmedian(res.r)) if np.isfinite(res.r).any() else None,
               "apc_r_frac_gt_0.5": float((res.r > 0.5).mean())}
        if cv_folds:
            cv = fit_apc_cv(da, predictions=preds, n_folds=cv_folds, seed=seed, device=device)
            _write_result(out, label, f"apc_cv{cv_folds}", cv)
            row["apc_cv_r_median"] = float(np.nanmedian(cv.r))
        if n_shuffle:
            null = shuffle_null(da, fit_apc, n_repeats=n_shuffle, seed=seed, predictions=preds,
                                device=device)
            _write_result(out, label, "apc_shuffle", null)
            row["shuffle_r_median"] = float(np.nanmedian(null.r))
        summary[label] = row
    echo_json(summary)


@main.command("ti")
@click.argument("run", type=click.Path(exists=True, file_okay=False))
@click.option("--layers", default=None, help="Layers of the run (default: all).")
@click.option("--axis", type=click.Choice(["x", "y"]), default="x", show_default=True)
@click.option("--stimulus-width", "width", type=float, default=None,
              help="Stimulus width in px (default: the size_px coord).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False))
def ti_cmd(run, layers, axis, width, out):
    """Translation invariance from RUN, a `record` run of a shapes_sweep set (with blank)."""
    import numpy as np

    from artiphys.tuning.ti import ti_from_recorded

    summary = {}
    for label, da in _analysis_layers(run, layers).items():
        res = ti_from_recorded(da, axis=axis, stimulus_width_px=width)
        _write_result(out, label, f"ti_{axis}", res)
        finite = res.ti.values[np.isfinite(res.ti.values)]
        summary[label] = {"n_units": int(res.sizes["unit"]),
                          "ti_median": float(np.median(finite)) if finite.size else None,
                          "n_undefined": int((~np.isfinite(res.ti.values)).sum())}
    echo_json(summary)


# ---- synthesis (issue 5) ---------------------------------------------------------------

def _synthesis_run(out, spec, kind: str, settings: dict):
    """A run directory for a synthesis command (manifest with model provenance)."""
    import platform

    import torch

    import artiphys
    from artiphys.store import RunDir

    manifest = {"kind": kind, "artiphys_version": getattr(artiphys, "__version__", None),
                "torch_version": torch.__version__, "python_version": platform.python_version(),
                "command": list(sys.argv), "model": spec.provenance(), "settings": settings}
    return RunDir.create(out, manifest, identity={"model": spec.provenance(), **settings})


def _parse_size(text: str | None):
    if text is None or text == "input":
        return None
    if text == "rf":
        return "rf"
    try:
        return int(text)
    except ValueError:
        raise ArtiphysError(f"--size must be a number of px, 'rf' or 'input', not {text!r}") from None


@main.command("visualize")
@model_options
@click.option("--layer", "layers", required=True, help="Layer name or alias (comma-separated for several).")
@click.option("--units", "units_arg", default="0-63", show_default=True, help="Channels, e.g. 0-63 or 1,5,9.")
@click.option("--objective", type=click.Choice(["unit", "channel", "layer"]), default="channel",
              show_default=True, help="Centre unit, channel mean over the map, or layer mean.")
@click.option("--param", "param_kind", type=click.Choice(["fourier", "pixel"]), default="fourier",
              show_default=True)
@click.option("--color", type=click.Choice(["all", "r", "g", "b", "gray"]), default="all", show_default=True)
@click.option("--steps", type=int, default=256, show_default=True)
@click.option("--lr", type=float, default=None, help="Learning rate (default from the recipe).")
@click.option("--size", "size_arg", default=None, help="Image side in px, 'rf' (unit's RF) or 'input' (default).")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Units optimised together.")
@click.option("--suppress", is_flag=True, help="Most suppressive images (negated objective).")
@click.option("--probes/--no-probes", default=True, show_default=True,
              help="Probe tables: zoom, rotation, colour, baselines (Bandi & Kinley).")
@click.option("--synth-seed", type=int, default=0, show_default=True, help="Seed of the optimisation.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run directory to write.")
def visualize_cmd(spec, device, layers, units_arg, objective, param_kind, color, steps, lr, size_arg,
                  batch_size, suppress, probes, synth_seed, out):
    """Maximal images of MODEL's units: a gallery per layer, probe tables, into --out."""
    from artiphys.models.spec import default_device
    from artiphys.synthesis.probes import probe_responses
    from artiphys.synthesis.render import default_recipe, render_units
    from artiphys.synthesis.save import save_probes, save_synthesis

    layer_list = parse_list(layers) or []
    units = parse_units(units_arg) or []
    size = _parse_size(size_arg)
    recipe = default_recipe(param_kind, steps=steps, **({"lr": lr} if lr is not None else {}))
    spec.module.to(default_device(device))
    settings = {"layers": layer_list, "units": units, "objective": objective, "param": param_kind,
                "color": color, "size": size_arg or "input", "recipe": recipe.to_dict(),
                "batch_size": batch_size, "suppress": suppress, "seed": synth_seed}
    run = _synthesis_run(out, spec, "synthesis", settings)
    for layer in layer_list:
        result = render_units(spec, layer, units, objective=objective, param=param_kind, color=color,
                              size_px=size, recipe=recipe, batch_size=batch_size, seed=synth_seed,
                              progress=True, negate=suppress)
        label = result.settings["layer"]
        files = save_synthesis(run, result, label)
        if probes:
            ds = probe_responses(spec, layer, result.images,
                                 None if objective == "layer" else units)
            files.update(save_probes(run, ds, label))
        click.echo(f"{label}: {len(units)} images in {result.seconds:.1f} s -> "
                   f"{run.file(files['gallery'])}")
    run.update_manifest(finished=True)


@main.command("top-patches")
@model_options
@click.option("--images", "images_dir", required=True, type=click.Path(file_okay=False),
              help="Folder of JPEG/PNG images (searched recursively).")
@click.option("--layer", "layers", required=True, help="Layer name or alias (comma-separated for several).")
@click.option("--units", "units_arg", default="0-63", show_default=True, help="Channels, e.g. 0-63.")
@click.option("-k", "k", type=int, default=5, show_default=True, help="Images kept per unit and sign.")
@click.option("--position", type=click.Choice(["max", "center"]), default="max", show_default=True,
              help="Unit at the extreme of the map, or the centre unit.")
@click.option("--n-images", type=int, default=None, help="Use a seeded random sample of this many images.")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run directory to write.")
def top_patches_cmd(spec, device, images_dir, layers, units_arg, k, position, n_images, batch_size, out):
    """Top-k excitatory and suppressive natural-image patches of MODEL's units, with
    guided-backprop features (Pospisil et al. 2018, Figs. 9-12), into --out."""
    from artiphys.models.spec import default_device
    from artiphys.stimuli.natural import images as natural_images
    from artiphys.synthesis.save import save_top_patches
    from artiphys.synthesis.top_patches import top_patches

    spec.module.to(default_device(device))
    stimuli = natural_images(images_dir, n=n_images, size_px=spec.preprocessing.input_size_px)
    units = parse_units(units_arg) or []
    layer_list = parse_list(layers) or []
    settings = {"layers": layer_list, "units": units, "k": k, "position": position,
                "stimuli": stimuli.describe()}
    run = _synthesis_run(out, spec, "top_patches", settings)
    for layer in layer_list:
        result = top_patches(spec, stimuli, layer, units, k, position=position,
                             batch_size=batch_size, progress=True)
        files = save_top_patches(run, result)
        click.echo(f"{result.layer}: top {k} of {len(stimuli)} images for {len(units)} units -> "
                   f"{run.file(files['table']).parent}")
    run.update_manifest(finished=True)


# ---- diverse sets (issue 6) ------------------------------------------------------------

@main.command("diverse")
@model_options
@click.option("--layer", "layer_args", required=True, multiple=True,
              help="Layer of the units (name or alias); repeat or comma-separate for several.")
@click.option("--units", "units_arg", required=True, help="Channels, e.g. 0-31 or 1,5,9.")
@click.option("--controls", default="",
              help="Also run the same units of controls: untrained (random weights, same "
                   "architecture), weight-shuffle. Comma-separated.")
@click.option("--n-images", type=int, default=6, show_default=True, help="Images per set.")
@click.option("--lambdas", default=None,
              help="Comma-separated diversity weights incl. 0 [default: 0,0.02,...,20.48].")
@click.option("--threshold", type=float, default=0.9, show_default=True,
              help="Chosen lambda keeps this fraction of the lambda=0 mean activation.")
@click.option("--steps", type=int, default=1000, show_default=True)
@click.option("--patience", type=int, default=100, show_default=True)
@click.option("--distance", type=click.Choice(["features", "pixel"]), default="features",
              show_default=True)
@click.option("--feature-window", type=click.Choice(["unit", "full"]), default="unit",
              show_default=True,
              help="Compare the preceding layer at the positions the unit reads, or the "
                   "whole map (the paper's wording).")
@click.option("--optimizer", type=click.Choice(["normalized_sgd", "adam"]),
              default="normalized_sgd", show_default=True,
              help="adam = the paper's Adam (lr 0.1 on the 0-255 scale); see docs.")
@click.option("--prior", "prior_arg", type=click.Choice(["none", "spectral"]), default="none",
              show_default=True, help="Image prior for the alpha term.")
@click.option("--alpha", type=float, default=0.0, show_default=True)
@click.option("--norm", type=float, default=None,
              help="Image norm ([0,1] pixel scale) [default: half the natural-patch norm].")
@click.option("--natural-images", type=click.Path(file_okay=False), default=None,
              help="Folder of natural images for the default norm.")
@click.option("--batch-units", type=int, default=None,
              help="Units per optimisation batch [default: all that fit the memory budget].")
@click.option("--indices/--no-indices", default=True, show_default=True,
              help="Also compute the phase-invariance and linear-combination indices.")
@click.option("--texture-steps", type=int, default=1000, show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Run directory to write (manifest.json + netCDF files).")
@click.option("--resume", is_flag=True,
              help="Continue a run made with the same settings (finished layers are kept).")
def diverse_cmd(spec, device, layer_args, units_arg, controls, n_images, lambdas, threshold,
                steps, patience, distance, feature_window, optimizer, prior_arg, alpha, norm,
                natural_images, batch_units, indices, texture_steps, out, resume):
    """Diverse sets of maximally driving images for --units of MODEL's --layer (Cadena et al.
    2018): the lambda sweep, chosen lambda, diversity gain and invariance indices, for the
    model and its --controls. Files: <condition>/diverse_<layer>.nc and
    <condition>/diverse_<layer>.indices.nc; `artiphys report OUT` draws them."""
    from artiphys.models.spec import default_device
    from artiphys.synthesis.diverse import PAPER_LAMBDAS, DiverseRecipe, TextureRecipe
    from artiphys.synthesis.diverse_run import diverse_experiment
    from artiphys.synthesis.priors import make_prior

    try:
        lams = tuple(float(v) for v in parse_list(lambdas)) if lambdas else PAPER_LAMBDAS
    except ValueError:
        raise ArtiphysError(f"cannot read --lambdas {lambdas!r}; use e.g. 0,0.1,1") from None
    recipe = DiverseRecipe(n_images=n_images, lambdas=lams, threshold=threshold, steps=steps,
                           patience=patience, distance=distance, feature_window=feature_window,
                           optimizer=optimizer, alpha=alpha)
    run = diverse_experiment(
        spec, [la for arg in layer_args for la in parse_list(arg) or []],
        parse_units(units_arg) or [], out=out, controls=parse_list(controls) or [],
        recipe=recipe, texture=TextureRecipe(steps=texture_steps, optimizer=optimizer),
        indices=indices, norm=norm, natural_folder=natural_images,
        prior=make_prior(prior_arg), batch_units=batch_units, device=default_device(device),
        resume=resume, command=list(sys.argv), echo=click.echo)
    click.echo(f"results: {run.path}  (report: artiphys report {run.path})")


# ---- report ---------------------------------------------------------------------------------

@main.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Report folder [default: RUN/report for one run; required for several].")
def report_cmd(runs, out):
    """HTML report (PNG + PDF figures) of a run directory, or a comparison of several runs
    (e.g. diverse runs of different models: indices by receptive-field size)."""
    from artiphys.report import build_comparison_report, build_report

    if len(runs) == 1:
        index = build_report(runs[0], out)
    else:
        if out is None:
            raise ArtiphysError("comparing several runs needs --out (the report folder)")
        index = build_comparison_report(runs, out)
    click.echo(f"report: {Path(index).resolve()}")



# ---- demo (the main job of `make demo`) --------------------------------------------------

@main.command("demo")
@click.option("--out", type=click.Path(file_okay=False), default="runs/demo", show_default=True,
              help="Run directory for the results.")
@click.option("--resume", is_flag=True, help="Continue a run in --out.")
def demo_cmd(out, resume):
    """Characterise the built-in V1 model (gratings, shapes, APC) and build a report."""
    from artiphys.demo import run_demo

    summary = run_demo(out, resume=resume)
    for layer, entry in summary["layers"].items():
        extra = (f", max orientation error {entry['orientation_error_deg_max']:.1f} deg"
                 if "orientation_error_deg_max" in entry else "")
        click.echo(f"{layer:15s} {entry['n_units']:3d} units: {100 * entry['frac_simple']:5.1f}% "
                   f"simple (median F1/F0 {entry['f1_f0_median']:.2f}), median APC r "
                   f"{entry['apc_r_median']:.2f}{extra}")
    click.echo(f"results: {Path(out).resolve()}")
    click.echo(f"report:  {Path(summary['report']).resolve()}")
