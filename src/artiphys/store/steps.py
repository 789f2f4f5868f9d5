"""The step store: every result stored under a key made of everything that determines it.

A :class:`Step` names one result (a recording chunk, an APC fit, a TI sweep, a set of
images, a report table) and what determines it: its ``inputs`` (model name, weights
sha256, condition and seed, layer, units, stimulus-set content hash, the digests of the
steps it reads) and its ``settings``, plus the ``version`` of the code that computes it.
Its :attr:`Step.digest` is the sha256 of those four. :meth:`StepStore.get_or_compute`
reuses a stored result exactly when its digest matches and its file is intact (size and
sha256 checked on every read); otherwise the result is computed and stored.

A result is recorded as finished only after its file is complete: the file is written
atomically (temporary file, fsync, rename), then its index entry
``.steps/<digest>.json`` (file, sha256, bytes, step, meta) is written atomically too. One
entry file per step means writers never contend for an index (several processes, e.g.
Dask workers, can store steps into one run), and a run killed at any moment leaves
either a finished, verifiable step or none. Every netCDF result carries its provenance
in its global attributes (``xarray.open_dataset`` on one file tells the whole story).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from artiphys.errors import ResponseError, RunStoreError
from artiphys.store.atomic import atomic_write_json, atomic_write_netcdf, sha256_file

STEPS_DIR = ".steps"
_BOOL_ATTR = "artiphys_bool_vars"


def canonical_json(obj) -> str:
    """Deterministic JSON (sorted keys, no spaces; numpy scalars and paths as plain values)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_plain)


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def jsonable(obj):
    """``obj`` normalised through a JSON round trip (tuples -> lists, numpy -> Python)."""
    return json.loads(canonical_json(obj))


@dataclass(frozen=True)
class Step:
    """One result and everything that determines it.

    Attributes
    ----------
    name : str
        Kind of result (``"apc"``, ``"ti_sweep"``, ``"responses"``, ...).
    version : int
        Version of the code computing it; bump it when the same inputs would give
        different results.
    inputs : dict
        Model provenance, condition, layer, units, stimulus hash, upstream step digests.
    settings : dict
        The step's own settings.
    path : str
        Readable location in the run, without suffix (``"trained/conv2/apc"``); the file
        is ``<path>.<first 10 hex of the digest>.nc``.
    meta : dict
        Not part of the key: labels for finding the result (``experiment``,
        ``condition``, ``layer``, ...) and provenance written into the file.
    """

    name: str
    version: int
    inputs: Mapping
    settings: Mapping
    path: str
    meta: Mapping = field(default_factory=dict)

    @property
    def key(self) -> dict:
        return jsonable({"step": self.name, "version": self.version, "inputs": self.inputs,
                         "settings": self.settings})

    @property
    def digest(self) -> str:
        return hashlib.sha256(canonical_json(self.key).encode()).hexdigest()

    def relpath(self, suffix: str = ".nc") -> str:
        return f"{self.path}.{self.digest[:10]}{suffix}"


class BadStepFile(RunStoreError):
    """A stored result whose file is missing, changed or unreadable."""


def to_netcdf_safe(ds: xr.Dataset | xr.DataArray) -> xr.Dataset:
    """A Dataset that netCDF can hold: object -> str, bool -> int8 (noted in attrs so
    :func:`from_netcdf` restores it), list/dict attrs as JSON, None attrs dropped."""
    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset(name=ds.name or "data")
    ds = ds.copy()
    bools = []
    for name in list(ds.variables):
        if ds[name].dtype == object:
            ds[name] = ds[name].astype(str)
        elif ds[name].dtype == bool:
            ds[name] = ds[name].astype(np.int8)
            bools.append(str(name))
        ds[name].attrs = _safe_attrs(ds[name].attrs)
    ds.attrs = _safe_attrs(ds.attrs)
    if bools:
        ds.attrs[_BOOL_ATTR] = json.dumps(bools)
    return ds


def _safe_attrs(attrs: Mapping) -> dict:
    out = {}
    for k, v in attrs.items():
        if v is None:
            continue
        if isinstance(v, (list, tuple)) and v and all(
                isinstance(x, (int, float, np.integer, np.floating))
                and not isinstance(x, (bool, np.bool_)) for x in v):
            v = np.asarray(v)  # numeric vectors stay netCDF array attributes
        elif isinstance(v, (list, dict, tuple)):
            v = canonical_json(v)
        elif isinstance(v, (bool, np.bool_)):
            v = int(v)
        out[str(k)] = v
    return out


def from_netcdf(ds: xr.Dataset) -> xr.Dataset:
    """Undo :func:`to_netcdf_safe`'s bool encoding (text stays ``str``)."""
    names = json.loads(ds.attrs.pop(_BOOL_ATTR, "[]"))
    for name in names:
        if name in ds.variables:
            ds[name] = ds[name].astype(bool)
    return ds


class StepStore:
    """Steps of one run directory (see the module docstring).

    Parameters
    ----------
    root : path of the run directory
    log : called with one line per step reused, computed or recomputed
    provenance : dict written into every result file's attributes (artiphys version, ...)
    """

    def __init__(self, root: str | os.PathLike, *, log: Callable[[str], None] | None = None,
                 provenance: Mapping | None = None):
        self.root = Path(root)
        self.log = log or (lambda msg: None)
        self.provenance = dict(provenance or {})
        self.events: list[tuple[str, str, str]] = []  # (action, step name, path)
        self.used: dict[str, None] = {}  # digests of the steps reused or computed, in order
        self._verified: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    # -- index ---------------------------------------------------------------------------
    def _entry_path(self, digest: str) -> Path:
        return self.root / STEPS_DIR / f"{digest}.json"

    def entry(self, step: Step | str) -> dict | None:
        """The index entry of ``step`` (or digest), or None when it is not finished."""
        digest = step if isinstance(step, str) else step.digest
        path = self._entry_path(digest)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError):
            return None  # a damaged entry is no entry: the step is recomputed

    def entries(self, **meta) -> list[dict]:
        """Every finished step whose ``meta`` has all the given values, oldest first."""
        folder = self.root / STEPS_DIR
        out = []
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                entry = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if all(entry.get("meta", {}).get(k) == v for k, v in meta.items()):
                out.append(entry)
        return sorted(out, key=lambda e: (e.get("created_utc", ""), e["file"]))

    def has(self, step: Step) -> bool:
        """True when ``step`` is finished and its file intact."""
        try:
            self.verify(self.entry(step), step.digest)
        except BadStepFile:
            return False
        return True

    def verify(self, entry: dict | None, digest: str = "?") -> Path:
        """The file of ``entry`` after checking its size and sha256 (cached per process
        while the file's size and modification time stay the same)."""
        if entry is None:
            raise BadStepFile(f"step {digest[:10]} is not finished")
        path = self.root / entry["file"]
        try:
            st = path.stat()
        except FileNotFoundError:
            raise BadStepFile(f"{entry['file']} is missing") from None
        if st.st_size != entry["bytes"]:
            raise BadStepFile(f"{entry['file']} has {st.st_size} bytes, not the "
                              f"{entry['bytes']} it was written with")
        stamp = (st.st_size, st.st_mtime_ns)
        if self._verified.get(entry["file"]) != stamp:
            if sha256_file(path) != entry["sha256"]:
                raise BadStepFile(f"{entry['file']} was changed after it was written "
                                  "(checksum differs)")
            self._verified[entry["file"]] = stamp
        return path

    # -- reading -------------------------------------------------------------------------
    def load(self, step: Step | str | dict, *, finite: Iterable[str] = ()) -> xr.Dataset | dict:
        """A finished step's result (Dataset, or dict for JSON results), verified.

        ``finite``: variables that must hold only finite values.

        Raises
        ------
        BadStepFile
            The step is unfinished, or its file is missing, changed or unreadable; the
            message says how to recompute it.
        """
        entry = step if isinstance(step, dict) else self.entry(step)
        digest = entry["digest"] if entry else (step if isinstance(step, str) else step.digest)
        try:
            path = self.verify(entry, digest)
            return _read(path, finite)
        except (BadStepFile, ResponseError) as exc:
            raise BadStepFile(f"cannot use a stored result in {self.root}: {exc}; run the "
                              "same command again with --resume to recompute it") from None

    # -- writing -------------------------------------------------------------------------
    def save(self, step: Step, result: xr.Dataset | xr.DataArray | dict) -> dict:
        """Store ``result`` for ``step`` (file first, then its index entry); the entry."""
        return self._save(step, result)[0]

    def _save(self, step: Step, result):
        """``(entry, stored value)``: the value as a later reader gets it (netCDF-safe
        types, provenance attributes), so fresh and reused results look the same."""
        from artiphys.store.rundir import utc_now

        now = utc_now()
        if isinstance(result, dict):
            relpath = step.relpath(".json")
            atomic_write_json(self.root / relpath, result)
            stored = jsonable(result)
        else:
            relpath = step.relpath(".nc")
            ds = to_netcdf_safe(result)
            ds.attrs.update(_safe_attrs(self._file_attrs(step, now)))
            atomic_write_netcdf(self.root / relpath, ds)
            stored = from_netcdf(ds.copy())
        path = self.root / relpath
        analysis = None if isinstance(result, dict) else result.attrs.get("analysis")
        entry = {"digest": step.digest, "step": step.name, "version": step.version,
                 "analysis": analysis, "file": relpath, "sha256": sha256_file(path), "bytes": path.stat().st_size,
                 "created_utc": now, "meta": jsonable(dict(step.meta)), "key": step.key}
        atomic_write_json(self._entry_path(step.digest), entry)
        st = path.stat()
        self._verified[relpath] = (st.st_size, st.st_mtime_ns)
        return entry, stored

    def _file_attrs(self, step: Step, now: str) -> dict:
        meta = dict(step.meta)
        model = {k: step.inputs[k] for k in ("model", "weights_sha256", "condition", "seed",
                                             "input_size_px") if k in step.inputs}
        return {**self.provenance, **model,
                **{k: v for k, v in meta.items() if isinstance(v, (str, int, float))},
                "artiphys_step": step.name, "artiphys_step_version": step.version,
                "step_digest": step.digest, "created_utc": now,
                "step_inputs_json": canonical_json(step.inputs),
                "step_settings_json": canonical_json(step.settings)}

    def get_or_compute(self, step: Step, compute: Callable[[], object], *,
                       finite: Iterable[str] = ()):
        """The stored result of ``step`` when finished and intact, else ``compute()``
        stored and returned (a damaged file is logged and recomputed)."""
        return self.get_or_compute_many([step], lambda todo: [compute()], finite=finite)[0]

    def get_or_compute_many(self, steps: list[Step],
                            compute: Callable[[list[Step]], list], *,
                            finite: Iterable[str] = (), load: bool = True,
                            executor=None) -> list:
        """Results of ``steps``; the missing ones computed together by
        ``compute(missing_steps) -> results in the same order`` (e.g. one forward pass
        for several layers, one APC fit for several layers' units).

        ``load=False``: stored results are verified but not read (None in their place),
        so that finishing a large run does not hold every finished result in memory.
        ``executor``: runs ``compute`` (``executor.run(compute, missing_steps)``, e.g. as a
        Dask task, see :mod:`artiphys.store.executor`); the results are stored here.
        """
        results: list = [None] * len(steps)
        todo: dict[int, str] = {}  # index -> "computed" or "recomputed"
        for i, step in enumerate(steps):
            entry = self.entry(step)
            if entry is None:
                todo[i] = "computed"
                continue
            try:
                path = self.verify(entry, step.digest)
                results[i] = _read(path, finite) if load else None
                self._event("reused", step)
            except (BadStepFile, ResponseError) as exc:
                self.log(f"{step.path}: {exc}")
                todo[i] = "recomputed"
        if todo:
            missing = [steps[i] for i in todo]
            fresh = executor.run(compute, missing) if executor else compute(missing)
            if len(fresh) != len(todo):  # pragma: no cover - programming error
                raise RuntimeError("compute returned the wrong number of results")
            for (i, action), value in zip(todo.items(), fresh):
                results[i] = self._save(steps[i], value)[1]
                self._event(action, steps[i])
        return results

    def _event(self, action: str, step: Step) -> None:
        with self._lock:
            self.events.append((action, step.name, step.path))
            self.used[step.digest] = None
        self.log(f"{action} {step.path}")


def _read(path: Path, finite: Iterable[str] = ()):
    """Open a verified result file (netCDF into memory, or JSON)."""
    if path.suffix == ".json":
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise BadStepFile(f"{path.name} cannot be read ({exc})") from None
    try:
        with xr.open_dataset(path) as ds:
            ds = from_netcdf(ds.load())
    except Exception as exc:  # h5py/netCDF raise many types for a damaged file
        raise BadStepFile(f"{path.name} cannot be read ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    for name in finite:
        if name in ds and ds[name].dtype.kind == "f" and not np.isfinite(ds[name].values).all():
            raise ResponseError(f"{path.name}: variable {name!r} holds NaN or infinite "
                                "values; run the same command again with --resume to "
                                "recompute it")
    return ds


__all__ = ["BadStepFile", "Step", "StepStore", "canonical_json", "from_netcdf", "jsonable",
           "to_netcdf_safe"]
