"""Command-line options generated from experiment configs (the CLI edge only).

:func:`experiment_command` turns a config class into click options: one option per field
(nested model / execution settings flattened: ``--seed``, ``--device``), plus
``--config FILE`` (start from a TOML file; options given on the command line override
it), ``--dump-config`` (print the TOML and stop), ``--out``, ``--resume``, ``--restart``
and ``--quiet``. The command body receives the finished config, so a command is option
parsing + ``run(config)`` + printing, nothing else.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import types
import typing
from typing import Literal, get_args, get_origin

import click

from artiphys.config import Config, ConfigError, config_fields
from artiphys.experiments.parsing import parse_floats, split_list


def _flat_fields(cls, prefix=()):
    """``(path, field, type)`` of every leaf setting, nested configs flattened."""
    for f, tp in config_fields(cls):
        if isinstance(tp, type) and issubclass(tp, Config):
            yield from _flat_fields(tp, prefix + (f.name,))
        else:
            yield prefix + (f.name,), f, tp


def _strip_none(tp):
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _option_for(path, f, tp, param: str):
    """A click option for one field (default None: unset keeps the config's value)."""
    name = f.metadata.get("cli") or "--" + f.name.replace("_", "-")
    base = _strip_none(tp)
    help_text = f.metadata.get("help", "")
    default = f.default if f.default is not dataclasses.MISSING else None
    if default not in (None, (), "") and not isinstance(default, Config):
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        help_text += f"  [default: {shown}]"
    if base is bool:
        neg = f.metadata.get("cli_no") or "--no-" + name[2:]
        return click.option(f"{name}/{neg}", param, default=None, help=help_text)
    if get_origin(base) is Literal:
        return click.option(name, param, type=click.Choice([str(a) for a in get_args(base)]),
                            default=None, help=help_text)
    ctype = {int: click.INT, float: click.FLOAT}.get(base, click.STRING)
    return click.option(name, param, type=ctype, default=None, help=help_text)


def _cli_value(value, tp, where: str):
    """A command-line string for a field of type ``tp`` as a config value."""
    base = _strip_none(tp)
    if get_origin(base) is tuple:
        item = get_args(base)[0]
        if item is float:
            return parse_floats(value, where)
        if item is int:
            try:
                return [int(v) for v in split_list(value)]
            except ValueError:
                raise ConfigError(f"cannot read {where} {value!r}: use integers like 1,2,3") \
                    from None
        return split_list(value)
    return value


def _set(data: dict, path: tuple, value) -> None:
    for key in path[:-1]:
        data = data.setdefault(key, {})
    data[path[-1]] = value


def build_config(cls, config_file, given: dict, positional=None):
    """``cls`` from an optional TOML file, overridden by the options ``given`` (and the
    positional argument, ``(path, value)``)."""
    data = cls.from_toml(config_file).to_dict() if config_file else {}
    if positional is not None and positional[1] is not None:
        _set(data, *positional)
    for path, (value, tp) in given.items():
        where = "--" + path[-1].replace("_", "-")
        _set(data, path, _cli_value(value, tp, where))
    return cls.from_dict(data)


def experiment_command(group: click.Group, name: str, cls, *,
                       arg: tuple[str, ...] | None = ("model", "name"), metavar: str = "MODEL",
                       out_default: str | None = None):
    """Decorator: register ``fn(config, out, resume, restart, quiet, command)`` as command
    ``name`` of ``group`` with options generated from config class ``cls``; ``arg`` is the
    field set by the positional argument ``metavar`` (None: no positional argument)."""
    leaves = list(_flat_fields(cls))
    params = {"__".join(path): (path, f, tp) for path, f, tp in leaves if path != arg}
    names = [f.metadata.get("cli") or "--" + f.name.replace("_", "-")
             for _, f, _ in params.values()]
    clash = {n for n in names if names.count(n) > 1}
    if clash:  # pragma: no cover - a programming error in a config class
        raise TypeError(f"{cls.__name__}: options {sorted(clash)} are defined twice")

    def deco(fn):
        @functools.wraps(fn)
        def command(positional=None, config_file=None, dump_config=False, out=None,
                    resume=False, restart=False, quiet=False, **values):
            given = {params[k][0]: (v, params[k][2]) for k, v in values.items()
                     if v is not None}
            config = build_config(cls, config_file, given,
                                  (arg, positional) if arg else None)
            if dump_config:
                click.echo(config.to_toml(), nl=False)
                return None
            out = out or out_default
            if out is None:
                raise click.UsageError("--out is required (the run directory to write)")
            return fn(config=config, out=out, resume=resume, restart=restart, quiet=quiet,
                      command=["artiphys", *sys.argv[1:]])

        for key, (path, f, tp) in reversed(list(params.items())):
            command = _option_for(path, f, tp, key)(command)
        command = click.option("--quiet", "-q", is_flag=True,
                               help="Show no progress (errors only).")(command)
        command = click.option("--restart", is_flag=True,
                               help="Discard the results of an earlier run of this "
                                    "experiment in --out and start over.")(command)
        command = click.option("--resume", is_flag=True,
                               help="Continue a run in --out: stored results whose settings "
                                    "match are reused, the rest computed.")(command)
        command = click.option("--out", type=click.Path(file_okay=False), default=None,
                               help="Run directory to write (created; several experiments "
                                    "may share one)" + (f" [default: {out_default}]."
                                                        if out_default else "."))(command)
        command = click.option("--dump-config", is_flag=True,
                               help="Print this run's config as TOML and stop.")(command)
        command = click.option("--config", "config_file", type=click.Path(dir_okay=False),
                               default=None, help="Read settings from a TOML file (as "
                               "written by --dump-config or found in a run's config.toml); "
                               "options given here override it.")(command)
        if arg:
            command = click.argument("positional", metavar=metavar, required=False)(command)
        return group.command(name)(command)

    return deco


__all__ = ["build_config", "experiment_command"]
