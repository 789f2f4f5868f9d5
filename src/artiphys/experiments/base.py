"""What every experiment shares: the model and execution settings, and the run session.

:func:`run_experiment` is the one way an experiment runs: it opens (or creates) the run
directory, takes its lock, records the experiment as running with the ``config.toml``
that reproduces it, calls the experiment's body with a :class:`Session` (the run, its
step store, the progress display, the device), and records the experiment as finished
(with the steps it used) or failed (with the error). A run killed at any point keeps
every finished step; ``resume`` continues it, ``restart`` discards its results first.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from artiphys.config import Config, option
from artiphys.errors import ArtiphysError
from artiphys.progress import Progress
from artiphys.store.rundir import RunDir
from artiphys.store.executor import make_executor
from artiphys.store.steps import Step


@dataclass(frozen=True)
class ModelConfig(Config):
    """Which model, with which weights, at which input size."""

    kind = "model"
    name: str = option("v1bank", help="torchvision name, timm:<name>, package.module:factory "
                       "or a built-in analytic model (see `artiphys models`).")
    pretrained: bool | None = option(None, cli_no="--untrained",
                                     help="Trained weights (default for zoo models) or a "
                                          "random-init twin (--untrained).")
    weights_path: str | None = option(None, cli="--weights",
                                      help="Explicit weights file (.pth state dict).")
    seed: int = option(0, help="Seed of random initialisation.")
    input_size_px: int | None = option(None, cli="--input-size",
                                       help="Input size in px (227 for Pospisil et al.'s AlexNet).")

    def validate(self):
        if not self.name.strip():
            self.fail("name", "give a model name, e.g. alexnet (see `artiphys models`)")
        if self.input_size_px is not None and self.input_size_px < 1:
            self.fail("input_size_px", f"must be a positive number of px, not {self.input_size_px}")
        if self.weights_path is not None and self.pretrained is False:
            self.fail("weights_path", "both untrained (--untrained, pretrained = false) and a "
                      "weights file (--weights) were asked for; drop one")

    def load(self):
        """The :class:`~artiphys.models.spec.ModelSpec` (CPU, eval mode)."""
        from artiphys.models import load_model

        return load_model(self.name, pretrained=self.pretrained, weights=self.weights_path,
                          seed=self.seed, input_size=self.input_size_px)


@dataclass(frozen=True)
class ExecutionConfig(Config):
    """Where and how fast: none of these change results (they are not in step keys)."""

    kind = "execution"
    device: str | None = option(None, key=False,
                                help="torch device (default: cuda when present, else cpu).")
    batch_size: int = option(64, key=False, help="Images per forward pass.")
    executor: Literal["local", "dask"] = option(
        "local", key=False, help="local: every step in this process; dask: independent steps "
        "as dask.distributed tasks (pip install 'artiphys[dask]').")
    scheduler: str = option("", key=False,
                            help="Address of a dask.distributed scheduler to join (empty: a "
                                 "LocalCluster on this machine; --executor dask only).")
    workers: int = option(2, key=False, help="Worker processes of the LocalCluster "
                          "(--executor dask without --scheduler).")
    threads: int = option(1, key=False, help="Threads per dask worker process.")

    def validate(self):
        if self.batch_size < 1:
            self.fail("batch_size", f"must be a positive integer, not {self.batch_size}")
        for name in ("workers", "threads"):
            if getattr(self, name) < 1:
                self.fail(name, f"must be a positive integer, not {getattr(self, name)}")
        if self.executor == "dask":
            import importlib.util

            if importlib.util.find_spec("distributed") is None:
                self.fail("executor", "dask is not installed; pip install 'artiphys[dask]' "
                          "or use --executor local")
        if self.scheduler and self.executor != "dask":
            self.fail("scheduler", "a scheduler address needs --executor dask; add it or "
                      "drop --scheduler")


def model_inputs(spec) -> dict:
    """The part of a model's provenance that determines its results (step-key inputs)."""
    prov = dict(spec.provenance())
    prov.pop("weights_path", None)  # where the file lies does not matter; its sha256 does
    return prov


class Session:
    """One experiment's view of its run: steps, progress, device, batch size."""

    def __init__(self, run: RunDir, kind: str, execution: ExecutionConfig, progress: Progress):
        from artiphys.models.spec import default_device

        self.run = run
        self.store = run.steps
        self.kind = kind
        self.progress = progress
        self.device = default_device(execution.device)
        self.batch_size = execution.batch_size
        self.executor = make_executor(execution)

    def step(self, name: str, version: int, *, inputs: dict, settings: dict, path: str,
             **meta) -> Step:
        """A :class:`Step` of this experiment (``meta`` gets ``experiment=<kind>``)."""
        return Step(name, version, inputs, settings, path, {"experiment": self.kind, **meta})


def run_experiment(config: Config, out: str | os.PathLike,
                   body: Callable[[Session], dict | None], *, resume: bool = False,
                   restart: bool = False, progress: Progress | None = None,
                   command: list[str] | None = None,
                   prepare: Callable[[], object] | None = None) -> RunDir:
    """Run ``body(session)`` (or ``body(session, prepare())``) as experiment ``config.kind``
    in run directory ``out``.

    ``prepare`` loads what the body needs (model, stimuli, layers); it runs before the run
    directory is touched, so bad input leaves nothing behind. ``body`` returns a JSON-able
    summary (stored in the manifest's experiment entry). Errors are recorded in the
    manifest (status ``failed``) and raised again; a run this call created that failed
    before finishing any step is removed, so the same command can simply be run again.
    """
    if resume and restart:
        raise ArtiphysError("--resume and --restart contradict each other; pass one")
    progress = progress or Progress()
    prepared = prepare() if prepare is not None else None
    out = Path(out)
    created = not (out / "manifest.json").is_file()
    run = RunDir.open_or_create(out)
    execution = getattr(config, "execution", None) or ExecutionConfig()
    with run.lock():
        run.begin(config.kind, config.to_toml(), config_digest=config.digest(), resume=resume,
                  restart=restart, command=command)
        session = Session(run, config.kind, execution, progress)
        try:
            summary = body(session) if prepare is None else body(session, prepared)
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            run.end(config.kind, status, error=f"{type(exc).__name__}: {exc}"[:500],
                    steps=list(session.store.used))
            if created and isinstance(exc, ArtiphysError) and not session.store.entries():
                _remove_new_run(run)
            raise
        finally:
            session.executor.close()
        run.end(config.kind, "finished", steps=list(session.store.used),
                summary=summary if summary is not None else {})
    return run


def _remove_new_run(run: RunDir) -> None:
    """Delete a run directory this process created, which holds no finished step."""
    import shutil

    for name in ("manifest.json", "config.toml", "run.log", ".lock"):
        (run.path / name).unlink(missing_ok=True)
    for name in ("configs", ".steps"):
        shutil.rmtree(run.path / name, ignore_errors=True)
    for folder in sorted((p for p in run.path.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    if run.path.is_dir() and not any(run.path.iterdir()):
        run.path.rmdir()


__all__ = ["ExecutionConfig", "ModelConfig", "Session", "model_inputs", "run_experiment"]
