"""Experiment configurations as frozen, validated values with a TOML round trip.

An experiment is one frozen dataclass deriving from :class:`Config` (units in field names,
validated at construction) and one ``run(config, out, *, resume)``. A config is written
as ``config.toml`` into every run directory and read back with :meth:`Config.from_toml`,
so ``artiphys <experiment> --config run.toml`` reproduces a run. Unknown keys and values
of the wrong type are refused with a one-line :class:`ConfigError` naming the key.

Field types understood: ``int``, ``float``, ``str``, ``bool``, ``X | None``,
``tuple[T, ...]``, ``Literal[...]`` and nested :class:`Config` classes (TOML tables).
``None`` is written by leaving the key out, so optional fields must default to ``None``.
Field metadata: ``help`` (CLI help), ``cli`` (option name, default ``--field-name``),
``cli_no`` (negative flag of a bool), ``choices`` (allowed values of a tuple's items),
``key`` (False: the field does not
change results, e.g. the device, and is left out of step keys).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args, get_origin

from artiphys.errors import ArtiphysError, close_matches


class ConfigError(ArtiphysError):
    """A configuration value or file that cannot be used."""


def option(default=dataclasses.MISSING, *, help: str = "", cli: str | None = None,
           cli_no: str | None = None, choices: tuple | None = None, key: bool = True,
           **kwargs):
    """A dataclass field with CLI help, option name (``cli_no``: the negative flag of a
    bool), allowed items and key-membership."""
    meta = {"help": help, "cli": cli, "cli_no": cli_no, "choices": choices, "key": key}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple (immutable) as a config default")
    return dataclasses.field(default=default, metadata=meta, **kwargs)


def _type_name(tp) -> str:
    if tp is type(None):
        return "none"
    origin = get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is tuple:
        return f"list of {_type_name(get_args(tp)[0])}"
    return getattr(tp, "__name__", str(tp))


def _coerce(value, tp, where: str):
    """``value`` checked against type ``tp`` (ints accepted for floats, lists for tuples)."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
        return value
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = get_args(tp)[0]
        return tuple(_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(tp, type) and issubclass(tp, Config):
        if isinstance(value, tp):
            return value
        if isinstance(value, dict):
            return tp.from_dict(value, where=where)
        raise ConfigError(f"{where}: expected a table of {tp.__name__} settings, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a config class using an unsupported annotation
        raise TypeError(f"{where}: unsupported config type {tp!r}")
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Config:
    """Base of experiment configurations: validation, dict/TOML round trip, digest."""

    #: the experiment's name (``characterize``, ``record``, ...); set by subclasses
    kind: ClassVar[str] = ""

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _coerce(getattr(self, f.name), hints[f.name], self._where(f.name))
            choices = f.metadata.get("choices")
            if choices:
                items = value if isinstance(value, tuple) else (value,)
                bad = [v for v in items if v is not None and v not in choices]
                if bad:
                    raise ConfigError(f"{self._where(f.name)}: unknown value {bad[0]!r}; "
                                      f"choose from {', '.join(map(str, choices))}")
            object.__setattr__(self, f.name, value)
        self.validate()

    def _where(self, name: str) -> str:
        return f"{self.kind or type(self).__name__}.{name}"

    def validate(self) -> None:
        """Check relations between values; raise :class:`ConfigError` (override)."""

    def fail(self, name: str, message: str) -> None:
        """Raise a :class:`ConfigError` about field ``name``."""
        raise ConfigError(f"{self._where(name)}: {message}")

    # -- dicts -------------------------------------------------------------------------
    def to_dict(self, *, key_only: bool = False) -> dict:
        """Plain values (nested configs as dicts, tuples as lists), ``None`` kept.

        ``key_only`` leaves out the fields that do not change results (``key=False``).
        """
        out = {}
        for f in dataclasses.fields(self):
            if key_only and not f.metadata.get("key", True):
                continue
            value = getattr(self, f.name)
            if isinstance(value, Config):
                value = value.to_dict(key_only=key_only)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict, *, where: str | None = None):
        """Build from plain values; unknown keys and wrong types raise :class:`ConfigError`."""
        where = where or cls.kind or cls.__name__
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a table of settings, got {data!r}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in data if k not in names]
        if unknown:
            raise ConfigError(f"{where}: unknown setting {unknown[0]!r}."
                              f"{close_matches(unknown[0], names)} Settings: {', '.join(names)}")
        try:
            return cls(**data)
        except TypeError as exc:  # a required field is missing
            raise ConfigError(f"{where}: {exc}") from None

    def replace(self, **changes):
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)

    def digest(self) -> str:
        """sha256 of the settings that change results (``key=False`` fields left out)."""
        text = json.dumps(self.to_dict(key_only=True), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    # -- TOML --------------------------------------------------------------------------
    def to_toml(self) -> str:
        """TOML text: ``experiment = "<kind>"`` then every setting (None left out)."""
        import tomli_w

        body = _drop_none(self.to_dict())
        head = {"experiment": self.kind} if self.kind else {}
        for name, value in body.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{self._where(name)}: {value} cannot be written to TOML")
        return tomli_w.dumps({**head, **body})

    @classmethod
    def from_toml(cls, source: str | Path):
        """Read a config from a TOML file path (or TOML text holding ``experiment = ...``)."""
        data, origin = _read_toml(source)
        kind = data.pop("experiment", cls.kind)
        if cls.kind and kind != cls.kind:
            raise ConfigError(f"{origin} is a {kind!r} config, not {cls.kind!r}; run "
                              f"`artiphys {kind} --config {origin}` instead")
        return cls.from_dict(data, where=str(origin))


def _drop_none(d: dict) -> dict:
    return {k: _drop_none(v) if isinstance(v, dict) else v for k, v in d.items()
            if v is not None}


def _read_toml(source: str | Path) -> tuple[dict, str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    text, origin = str(source), "config text"
    if isinstance(source, Path) or "\n" not in text and "=" not in text:
        path = Path(source)
        try:
            text, origin = path.read_text(encoding="utf-8"), str(path)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} not found; check the path") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        return tomllib.loads(text), origin
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin} is not valid TOML: {exc}; fix the file or write a new "
                          "one with --dump-config") from None


def config_fields(cls) -> list[tuple[dataclasses.Field, Any]]:
    """``(field, resolved type)`` of a config class, in order (for building CLI options)."""
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls)]


__all__ = ["Config", "ConfigError", "config_fields", "option"]
