"""Command-line interface: each command parses its options into a config, runs it, and
prints where the results are.

Experiment commands (``record``, ``characterize``, ``apc``, ``ti``, ``visualize``,
``top-patches``, ``diverse``, ``demo``) get their options from their config classes
(:mod:`artiphys.cli_config`), plus ``--config FILE``, ``--dump-config``, ``--out``,
``--resume``, ``--restart`` and ``--quiet``. Errors caused by user input
(:class:`artiphys.errors.ArtiphysError`) and file-system errors are printed on one line
and exit with status 2; an unexpected failure prints one line naming the file that holds
its traceback and exits with status 1 (``ARTIPHYS_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

import click

from artiphys.cli_config import experiment_command
from artiphys.errors import ArtiphysError
from artiphys.experiments.analyze import ApcConfig, TiConfig
from artiphys.experiments.characterize import CharacterizeConfig
from artiphys.experiments.demo import DemoConfig
from artiphys.experiments.diverse import DiverseConfig
from artiphys.experiments.record import RecordConfig
from artiphys.experiments.visualize import TopPatchesConfig, VisualizeConfig


def _os_error_line(exc: OSError) -> str:
    what = exc.strerror or type(exc).__name__
    where = f" {exc.filename}" if exc.filename else ""
    return f"{what}:{where}; check the path, its permissions and the free disk space"


class _Group(click.Group):
    """Click group that turns every error into one line and a non-zero exit status."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except ArtiphysError as exc:
            click.echo(f"artiphys: error: {exc}", err=True)
            sys.exit(2)
        except OSError as exc:
            click.echo(f"artiphys: error: {_os_error_line(exc)}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("artiphys: interrupted; finished results are kept (rerun with "
                       "--resume to continue)", err=True)
            sys.exit(130)
        except Exception as exc:  # a bug: one line for the user, the traceback in a file
            if os.environ.get("ARTIPHYS_DEBUG"):
                raise
            path = Path(tempfile.gettempdir()) / f"artiphys-error-{os.getpid()}.txt"
            path.write_text(traceback.format_exc())
            click.echo(f"artiphys: internal error ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0] if str(exc) else ''}); this is a bug - "
                       f"the traceback is in {path}", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.version_option(package_name="artiphys")
def main():
    """artiphys: in-silico electrophysiology of deep networks."""


def _progress(quiet: bool):
    from artiphys.progress import Progress

    return Progress(quiet=quiet)


def _done(run, *, report: bool = False) -> None:
    """Say where the results are; with ``report``, build the run's report first."""
    click.echo(f"results: {Path(run.path).resolve()}")
    if report:
        from artiphys.report import build_report

        click.echo(f"report:  {Path(build_report(run.path)).resolve()}")


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


# ---- models, layers, stimuli --------------------------------------------------------------

def _load(model, pretrained, weights, seed, input_size):
    from artiphys.experiments.base import ModelConfig

    return ModelConfig(name=model, pretrained=pretrained, weights_path=weights, seed=seed,
                       input_size_px=input_size).load()


_model_args = [
    click.argument("model"),
    click.option("--pretrained/--untrained", default=None,
                 help="Trained weights (default for zoo models) or a random-init twin."),
    click.option("--weights", type=click.Path(dir_okay=False), default=None,
                 help="Explicit weights file (.pth state dict)."),
    click.option("--seed", type=int, default=0, show_default=True,
                 help="Seed of random initialisation."),
    click.option("--input-size", "input_size", type=int, default=None,
                 help="Input size in px."),
    click.option("--device", default=None, help="torch device (accepted for uniformity; "
                 "listing runs on the CPU)."),
]


def _with_model_args(fn):
    for deco in reversed(_model_args):
        fn = deco(fn)
    return fn


@main.command("models")
@click.option("--timm", "include_timm", is_flag=True, help="Also list timm's models (timm:<name>).")
def models_cmd(include_timm):
    """List the model names artiphys can load."""
    from artiphys.models import available_models

    for name in available_models(include_timm=include_timm):
        click.echo(name)


@main.command("model-info")
@_with_model_args
def model_info_cmd(model, pretrained, weights, seed, input_size, device):
    """Load MODEL and print its provenance (condition, weights file and sha256, input size)."""
    from artiphys.models.spec import model_info

    echo_json(model_info(_load(model, pretrained, weights, seed, input_size)))


@main.command("layers")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON list of objects (name, alias, kind, shape, units, rf_size, "
                   "stride, offset, ...) instead of a table.")
@click.option("--layer", "layer", default=None,
              help="Only this layer (module path or alias, e.g. conv2 or features.3).")
@_with_model_args
def layers_cmd(model, pretrained, weights, seed, input_size, device, as_json, layer):
    """List MODEL's layers in execution order with shapes and receptive fields (px).

    Shapes and receptive fields depend on the architecture (and --input-size) only, so
    no weights are loaded unless --pretrained or --weights is given.
    """
    from artiphys.models.layers import format_layer_table, list_layers, select_layer_rows

    if pretrained is None and weights is None:
        pretrained = False
    spec = _load(model, pretrained, weights, seed, input_size)
    rows = list_layers(spec)
    if layer is not None:
        rows = select_layer_rows(spec, rows, layer)
    if as_json:
        echo_json([row.to_dict() for row in rows])
    else:
        click.echo(format_layer_table(rows))


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
    from artiphys.stimuli.registry import available_sets, make_stimuli, parse_options

    if list_sets or not set_name:
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


# ---- experiments --------------------------------------------------------------------------

@experiment_command(main, "record", RecordConfig)
def record_cmd(config, out, resume, restart, quiet, command):
    """Record responses of MODEL's units in --layers to a stimulus set into --out."""
    from artiphys.experiments.record import run

    run_dir = run(config, out, resume=resume, restart=restart, progress=_progress(quiet),
                  command=command)
    summary = run_dir.experiments["record"]
    click.echo(f"recorded {summary['n_stimuli']} stimuli x {len(summary['layers'])} "
               f"layer(s) of {config.model.name} into {run_dir.path}")


@experiment_command(main, "characterize", CharacterizeConfig)
def characterize_cmd(config, out, resume, restart, quiet, command):
    """APC, TI, sparsity and natural-image analyses of MODEL's layers, with controls
    (Pospisil et al. 2018). Writes summary.json and one result file per step."""
    from artiphys.experiments.characterize import run

    run_dir = run(config, out, resume=resume, restart=restart, progress=_progress(quiet),
                  command=command)
    echo_json(json.loads(run_dir.file("summary.json").read_text())["layers"])
    _done(run_dir, report=True)


@experiment_command(main, "apc", ApcConfig, arg=("source_run",), metavar="RUN")
def apc_cmd(config, out, resume, restart, quiet, command):
    """Fit the APC model to recorded shape responses in RUN (a `record` run directory)."""
    from artiphys.experiments.analyze import run_apc

    run_dir = run_apc(config, out, resume=resume, restart=restart, progress=_progress(quiet),
                      command=command)
    echo_json(run_dir.experiments["apc"]["summary"])


@experiment_command(main, "ti", TiConfig, arg=("source_run",), metavar="RUN")
def ti_cmd(config, out, resume, restart, quiet, command):
    """Translation invariance from RUN, a `record` run of a shapes_sweep set (with blank)."""
    from artiphys.experiments.analyze import run_ti

    run_dir = run_ti(config, out, resume=resume, restart=restart, progress=_progress(quiet),
                     command=command)
    echo_json(run_dir.experiments["ti"]["summary"])


@experiment_command(main, "visualize", VisualizeConfig)
def visualize_cmd(config, out, resume, restart, quiet, command):
    """Maximal images of MODEL's units: a gallery per layer, probe tables, into --out."""
    from artiphys.experiments.visualize import run_visualize

    run_dir = run_visualize(config, out, resume=resume, restart=restart,
                            progress=_progress(quiet), command=command)
    _done(run_dir)
    click.echo(f"report:  artiphys report {run_dir.path}")


@experiment_command(main, "top-patches", TopPatchesConfig)
def top_patches_cmd(config, out, resume, restart, quiet, command):
    """Top-k excitatory and suppressive natural-image patches of MODEL's units, with their
    visualised features (Pospisil et al. 2018, Figs. 9-12), into --out."""
    from artiphys.experiments.visualize import run_top_patches

    run_dir = run_top_patches(config, out, resume=resume, restart=restart,
                              progress=_progress(quiet), command=command)
    _done(run_dir)
    click.echo(f"report:  artiphys report {run_dir.path}")


@experiment_command(main, "diverse", DiverseConfig)
def diverse_cmd(config, out, resume, restart, quiet, command):
    """Diverse sets of maximally driving images for --units of MODEL's --layer (Cadena et
    al. 2018): the lambda sweep, chosen lambda, diversity gain and invariance indices, for
    the model and its --controls."""
    from artiphys.experiments.diverse import run_diverse

    run_dir = run_diverse(config, out, resume=resume, restart=restart,
                          progress=_progress(quiet), command=command)
    _done(run_dir)
    click.echo(f"report:  artiphys report {run_dir.path}")


@experiment_command(main, "demo", DemoConfig, arg=None, out_default="runs/demo")
def demo_cmd(config, out, resume, restart, quiet, command):
    """Characterise the built-in V1 model (gratings, shapes, APC) and build a report."""
    from artiphys.experiments.demo import run_demo

    run_dir = run_demo(config, out, resume=resume, restart=restart, progress=_progress(quiet),
                       command=command)
    summary = run_dir.experiments["demo"]["summary"]
    for layer, entry in summary["layers"].items():
        extra = (f", max orientation error {entry['orientation_error_deg_max']:.1f} deg"
                 if "orientation_error_deg_max" in entry else "")
        click.echo(f"{layer:15s} {entry['n_units']:3d} units: {100 * entry['frac_simple']:5.1f}% "
                   f"simple (median F1/F0 {entry['f1_f0_median']:.2f}), median APC r "
                   f"{entry['apc_r_median']:.2f}{extra}")
    click.echo(f"results: {Path(out).resolve()}")
    click.echo(f"report:  {Path(summary['report']).resolve()}")


# ---- report -------------------------------------------------------------------------------

@main.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Report folder [default: RUN/report for one run; required for several].")
def report_cmd(runs, out):
    """HTML report (PNG + PDF figures) of a run directory, or a comparison of several runs
    of any kind (models, conditions, seeds: per-layer medians; diverse runs: indices by
    receptive-field size); runs it cannot use are named with the reason."""
    from artiphys.report import build_comparison_report, build_report
    from artiphys.report.compare import check_runs

    if len(runs) == 1:
        index = build_report(runs[0], out)
    else:
        if out is None:
            raise ArtiphysError("comparing several runs needs --out (the report folder)")
        index = build_comparison_report(runs, out)
        for run, why in check_runs(runs)[1]:
            click.echo(f"not used: {run}: {why}")
    click.echo(f"report: {Path(index).resolve()}")
