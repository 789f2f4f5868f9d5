"""Run directories: a manifest, a step store, the configs that reproduce the results.

Layout of a run directory (one or several experiments: a study)::

    run/
      manifest.json        package/torch/python versions, creation time, and per
                           experiment: status (running / finished / failed), command
                           line, config digest, start and end times, the steps it used
      config.toml          the config of the experiment run last (``--config`` reruns it)
      configs/<kind>.toml  the config of each experiment in the run
      .steps/<digest>.json one index entry per finished step (see ``store.steps``)
      <condition>/<layer>/<step>.<digest>.nc   results, each self-describing
      report/              the report (``artiphys report RUN``)
      run.log              one line per step reused, computed or recomputed

Resume is one rule for every experiment (``store.steps``): a stored step is reused
exactly when its key matches, so a run that failed or was killed at any point can be
resumed (``--resume``) or started over (``--restart``), and changing one setting
recomputes only the steps it touches.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from artiphys.errors import RunStoreError
from artiphys.store.atomic import (atomic_write_json, atomic_write_text, is_temp_file,
                                   make_folder, remove_temp_files)
from artiphys.store.steps import STEPS_DIR, StepStore, jsonable

MANIFEST = "manifest.json"
CONFIG = "config.toml"
LOG = "run.log"
_LOCK = ".lock"


def utc_now() -> str:
    """Current UTC time as ISO 8601 (seconds)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def versions() -> dict:
    """Versions of artiphys, torch and Python (for manifests and result files)."""
    import torch

    import artiphys

    return {"artiphys_version": artiphys.__version__, "torch_version": str(torch.__version__),
            "python_version": platform.python_version()}


class RunDir:
    """A run directory on disk.

    :meth:`open_or_create` starts a run (or opens the one there) for writing; :meth:`open`
    opens an existing run for reading. :attr:`steps` is its step store.
    """

    def __init__(self, path: str | os.PathLike, *, log=None):
        self.path = Path(path)
        self._log_extra = log
        self.steps = StepStore(self.path, log=self._log, provenance=versions())

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- creation -----------------------------------------------------------------------
    @classmethod
    def open_or_create(cls, path: str | os.PathLike, *, log=None) -> RunDir:
        """The run in ``path``, created (with a manifest) when ``path`` is new or empty.

        Raises
        ------
        RunStoreError
            ``path`` is a file, lies under a file, cannot be created, or is a non-empty
            folder that is not a run directory.
        """
        run = cls(path, log=log)
        if run.path.exists() and not run.path.is_dir():
            raise RunStoreError(f"{run.path} is a file, not a folder; choose another --out")
        if (run.path / MANIFEST).is_file():
            return run
        if run.path.is_dir() and any(p for p in run.path.iterdir() if not is_temp_file(p)):
            raise RunStoreError(
                f"{run.path} is a non-empty folder without a {MANIFEST}; choose a new --out")
        make_folder(run.path, "the run directory")
        now = utc_now()
        atomic_write_json(run.path / MANIFEST, {**versions(), "created_utc": now,
                                                "updated_utc": now, "experiments": {}})
        return run

    @classmethod
    def open(cls, path: str | os.PathLike, *, log=None) -> RunDir:
        """Open an existing run directory for reading.

        Raises
        ------
        RunStoreError
            When ``path`` has no manifest.
        """
        run = cls(path, log=log)
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
        manifest = {**self.manifest, **jsonable(fields), "updated_utc": utc_now()}
        atomic_write_json(self.path / MANIFEST, manifest)
        return manifest

    @property
    def experiments(self) -> dict[str, dict]:
        """Per experiment kind: status, command, config digest, times, steps."""
        return self.manifest.get("experiments", {})

    def begin(self, kind: str, config_toml: str, *, config_digest: str, resume: bool = False,
              restart: bool = False, command: list[str] | None = None, **info) -> None:
        """Mark experiment ``kind`` as running, with the config that reproduces it.

        Raises
        ------
        RunStoreError
            The run already holds a ``kind`` experiment and neither ``resume`` nor
            ``restart`` is given.
        """
        previous = self.experiments.get(kind)
        if previous is not None and not (resume or restart):
            raise RunStoreError(
                f"{self.path} already holds a {kind} run ({previous.get('status')}); pass "
                "--resume to continue it (stored results whose settings match are reused), "
                "--restart to discard its results, or choose another --out")
        if previous is not None and restart:
            self.discard_steps(previous.get("steps", []))
        remove_temp_files(self.path)
        atomic_write_text(self.path / CONFIG, config_toml)
        atomic_write_text(self.path / "configs" / f"{kind}.toml", config_toml)
        entry = {"status": "running", "started_utc": utc_now(), "command": command or [],
                 "config_digest": config_digest, "config_file": f"configs/{kind}.toml",
                 "resumed": bool(previous is not None and resume), **info}
        if previous is not None and resume:
            entry["previous_steps"] = previous.get("steps", previous.get("previous_steps", []))
        self.update_manifest(experiments={**self.experiments, kind: jsonable(entry)})
        self._log(f"{kind}: {'resumed' if entry['resumed'] else 'started'}")

    def note(self, kind: str, **info) -> None:
        """Merge ``info`` into experiment ``kind``'s manifest entry."""
        exps = self.experiments
        self.update_manifest(experiments={**exps, kind: {**exps.get(kind, {}),
                                                         **jsonable(info)}})

    def end(self, kind: str, status: str = "finished", **info) -> None:
        """Mark experiment ``kind`` finished (or ``failed``, with ``error``)."""
        exps = self.experiments
        entry = {**exps.get(kind, {}), **jsonable(info), "status": status,
                 f"{status}_utc": utc_now()}
        self.update_manifest(experiments={**exps, kind: entry})
        self._log(f"{kind}: {status}")

    def current_entries(self, **meta) -> list[dict]:
        """Index entries of the results each experiment's current config produced (the
        steps it recorded when it ended; for a run still going, or killed, the steps it
        stored since it started), filtered by ``meta``. Results of earlier configs that
        are still on disk are not current."""
        found: dict[str, dict] = {}
        entries = self.steps.entries()
        for kind, exp in self.experiments.items():
            used = exp.get("steps")
            if used is not None and exp.get("status") in ("finished", "failed", "interrupted"):
                chosen = set(used)
                picked = [e for e in entries if e["digest"] in chosen]
            else:
                since, before = exp.get("started_utc", ""), set(exp.get("previous_steps", []))
                picked = [e for e in entries if e["digest"] in before or (
                    e.get("meta", {}).get("experiment") == kind
                    and e.get("created_utc", "") >= since)]
            for e in picked:
                found[e["digest"]] = e
        return [e for e in found.values()
                if all(e.get("meta", {}).get(k) == v for k, v in meta.items())]

    def discard_steps(self, digests) -> int:
        """Delete the files and index entries of the given steps; return how many."""
        n = 0
        for digest in digests:
            entry = self.steps.entry(digest)
            if entry is None:
                continue
            (self.path / entry["file"]).unlink(missing_ok=True)
            (self.path / STEPS_DIR / f"{digest}.json").unlink(missing_ok=True)
            n += 1
        return n

    # -- files --------------------------------------------------------------------------
    def file(self, relpath: str | os.PathLike) -> Path:
        """Absolute path of ``relpath`` inside the run."""
        return self.path / relpath

    def write_json(self, relpath: str | os.PathLike, obj) -> Path:
        """Write a JSON file atomically."""
        return atomic_write_json(self.file(relpath), obj)

    def _log(self, message: str) -> None:
        if self._log_extra is not None:
            self._log_extra(message)
        try:
            with open(self.path / LOG, "a", encoding="utf-8") as f:
                f.write(f"{utc_now()} {message}\n")
        except OSError:
            pass  # the log is a convenience; results and the manifest are what count

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
