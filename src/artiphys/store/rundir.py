"""Run directories: a manifest, result files written atomically, resumable chunks.

Layout of a run directory::

    run/
      manifest.json     what was run: model and weights sha256, stimuli, layers, seeds,
                        package and torch versions, command line, timestamps
      index.json        finished chunks: file, sha256 and size of each, written after
                        every chunk (atomically)
      <results>         netCDF / JSON files written with ``atomic_write_*``

The manifest's ``identity`` block names everything that changes the results; resuming a
run with a different identity is refused. Generic: recording, tuning analyses and
synthesis galleries all store their results this way.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from artiphys.errors import RunStoreError
from artiphys.store.atomic import (atomic_write_json, atomic_write_netcdf, is_temp_file,
                                   remove_temp_files, sha256_file)

MANIFEST = "manifest.json"
INDEX = "index.json"
_LOCK = ".lock"


def utc_now() -> str:
    """Current UTC time as ISO 8601 (seconds)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _jsonable(obj):
    """Normalise through a JSON round trip so comparisons with a stored manifest are fair."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def _diff(old, new, prefix="") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _diff(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    if old != new:
        return [f"{prefix[:-1] or 'value'} ({_short(old)} before, {_short(new)} now)"]
    return []


def _short(value, n: int = 40) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= n else text[: n - 3] + "..."


class RunDir:
    """A run directory on disk.

    Use :meth:`create` to start (or resume) a run and :meth:`open` to read a finished one.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._index: dict | None = None
        self._verified: set[str] = set()

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- creation -----------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, manifest: dict, *, identity: dict,
               resume: bool = False) -> RunDir:
        """Start a run in ``path``, or continue the run already there when ``resume``.

        Parameters
        ----------
        manifest : dict
            JSON-able provenance (stored as ``manifest.json``, with ``identity`` added).
        identity : dict
            The settings that determine the results. Resuming requires the stored
            identity to be equal.
        resume : bool
            Continue a run found in ``path``; without it an existing run is an error.

        Raises
        ------
        RunStoreError
            ``path`` holds a run and ``resume`` is False; the stored identity differs; or
            ``path`` is a non-empty folder that is not a run directory.
        """
        run = cls(path)
        identity = _jsonable(identity)
        if run.path.exists() and not run.path.is_dir():
            raise RunStoreError(f"{run.path} is a file, not a folder; choose another --out")
        manifest_file = run.path / MANIFEST
        if manifest_file.exists():
            if not resume:
                raise RunStoreError(
                    f"{run.path} already holds a run; pass --resume to continue it, "
                    "or choose a new --out")
            stored = run.manifest
            diffs = _diff(stored.get("identity", {}), identity)
            if diffs:
                raise RunStoreError(
                    f"cannot resume {run.path}: it was made with a different "
                    f"{'; '.join(diffs[:3])}; choose a new --out for this run")
            remove_temp_files(run.path)
            run.update_manifest(resumed_utc=utc_now(), resumed_command=manifest.get("command"))
            return run
        if run.path.is_dir() and any(p for p in run.path.iterdir() if not is_temp_file(p)):
            raise RunStoreError(
                f"{run.path} is a non-empty folder without a {MANIFEST}; choose a new --out")
        run.path.mkdir(parents=True, exist_ok=True)
        remove_temp_files(run.path)
        now = utc_now()
        atomic_write_json(manifest_file, {**_jsonable(manifest), "identity": identity,
                                          "created_utc": now, "updated_utc": now})
        return run

    @classmethod
    def open(cls, path: str | os.PathLike) -> RunDir:
        """Open an existing run directory for reading.

        Raises
        ------
        RunStoreError
            When ``path`` has no manifest.
        """
        run = cls(path)
        if not (run.path / MANIFEST).is_file():
            raise RunStoreError(f"{run.path} is not an artiphys run directory (no {MANIFEST}); "
                                "check the path")
        return run

    # -- manifest -----------------------------------------------------------------------
    @property
    def manifest(self) -> dict:
        """The stored manifest (read from disk each time)."""
        try:
            return json.loads((self.path / MANIFEST).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise RunStoreError(f"cannot read {self.path / MANIFEST}: {exc}; "
                                "the run directory is damaged, start a new --out") from None

    def update_manifest(self, **fields) -> dict:
        """Merge ``fields`` into the manifest (atomically) and return the new manifest."""
        manifest = {**self.manifest, **_jsonable(fields), "updated_utc": utc_now()}
        atomic_write_json(self.path / MANIFEST, manifest)
        return manifest

    # -- files --------------------------------------------------------------------------
    def file(self, relpath: str | os.PathLike) -> Path:
        """Absolute path of ``relpath`` inside the run."""
        return self.path / relpath

    def write_json(self, relpath: str | os.PathLike, obj) -> Path:
        """Write a JSON result file atomically."""
        return atomic_write_json(self.file(relpath), obj)

    def write_netcdf(self, relpath: str | os.PathLike, data, *, chunk: str | None = None,
                     **info) -> Path:
        """Write a Dataset / named DataArray atomically; when ``chunk`` is given, record it
        as finished in the index (with ``info``) after the file is in place."""
        path = atomic_write_netcdf(self.file(relpath), data)
        if chunk is not None:
            self.mark_chunk(chunk, relpath, **info)
        return path

    # -- chunk bookkeeping --------------------------------------------------------------
    def _load_index(self) -> dict:
        if self._index is None:
            f = self.path / INDEX
            if f.is_file():
                try:
                    self._index = json.loads(f.read_text())
                except json.JSONDecodeError:
                    raise RunStoreError(f"{f} is damaged; start a new --out") from None
            else:
                self._index = {"chunks": {}}
        return self._index

    @property
    def chunks(self) -> dict[str, dict]:
        """Finished chunks: key -> ``{"file", "sha256", "bytes", ...}`` (a copy)."""
        return json.loads(json.dumps(self._load_index()["chunks"]))

    def mark_chunk(self, key: str, relpath: str | os.PathLike, **info) -> None:
        """Record chunk ``key`` (file ``relpath``, already written) as finished."""
        path = self.file(relpath)
        entry = {"file": Path(relpath).as_posix(), "sha256": sha256_file(path),
                 "bytes": path.stat().st_size, **_jsonable(info)}
        index = self._load_index()
        index["chunks"][key] = entry
        atomic_write_json(self.path / INDEX, index)
        self._verified.add(key)

    def chunk_done(self, key: str, *, verify: bool = True) -> bool:
        """True when chunk ``key`` is in the index and its file is intact (size and sha256
        checked once per process when ``verify``)."""
        entry = self._load_index()["chunks"].get(key)
        if entry is None:
            return False
        path = self.file(entry["file"])
        if not path.is_file() or path.stat().st_size != entry["bytes"]:
            return False
        if verify and key not in self._verified:
            if sha256_file(path) != entry["sha256"]:
                return False
            self._verified.add(key)
        return True

    def chunk_file(self, key: str) -> Path:
        """Path of finished chunk ``key``."""
        entry = self._load_index()["chunks"].get(key)
        if entry is None:
            raise RunStoreError(f"chunk {key!r} is not finished in {self.path}; "
                                "run again with --resume to complete it")
        return self.file(entry["file"])

    def discard_if_empty(self) -> bool:
        """Remove a run that has no finished chunk (manifest, index, lock, temporary files
        and empty folders), e.g. after it failed on its first batch, so that the same
        command can be run again without ``--resume``. Returns True when removed."""
        if self._load_index()["chunks"]:
            return False
        remove_temp_files(self.path)
        for name in (MANIFEST, INDEX, _LOCK):
            (self.path / name).unlink(missing_ok=True)
        for folder in sorted((p for p in self.path.rglob("*") if p.is_dir()), reverse=True):
            if not any(folder.iterdir()):
                folder.rmdir()
        if self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()
        self._index = None
        return True

    # -- locking ------------------------------------------------------------------------
    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock on the run while writing (no-op where ``fcntl`` is missing).

        Raises
        ------
        RunStoreError
            When another process is writing to the same run.
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield
            return
        fd = os.open(self.path / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunStoreError(f"another process is writing to {self.path}; wait for it "
                                    "or choose a new --out") from None
            yield
        finally:
            os.close(fd)


def file_label(label: str) -> str:
    """A layer label as used in file names (anything but letters, digits, ``._-`` -> ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label)
