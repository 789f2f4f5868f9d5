"""Which stored results a report draws: the current results of a run directory.

A run holds, per experiment, the steps its current config produced (see
:meth:`artiphys.store.rundir.RunDir.current_entries`); results of earlier configs that are
still on disk are not drawn. Folders without a step index (results written by hand or by
older versions) are read by scanning for netCDF files with an ``analysis`` attribute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import xarray as xr


@dataclass(frozen=True)
class Result:
    """One stored result: its file, analysis kind and labels (condition, layer, ...)."""

    path: Path
    kind: str
    meta: dict = field(default_factory=dict)

    def load(self, drop=()) -> xr.Dataset:
        from artiphys.store.steps import from_netcdf

        with xr.open_dataset(self.path) as ds:
            return from_netcdf(ds.drop_vars(list(drop), errors="ignore").load())


def run_results(run_dir: str | Path, **meta) -> list[Result]:
    """The current results of ``run_dir`` (filtered by ``meta``), in creation order."""
    from artiphys.store.rundir import MANIFEST, RunDir

    run_dir = Path(run_dir)
    if (run_dir / MANIFEST).is_file() and (run_dir / ".steps").is_dir():
        run = RunDir.open(run_dir)
        entries = sorted(run.current_entries(**meta), key=lambda e: (e["created_utc"],
                                                                      e["file"]))
        return [Result(run_dir / e["file"], e.get("analysis") or e["step"], e.get("meta", {}))
                for e in entries if e["file"].endswith(".nc")]
    return [r for r in _scan(run_dir) if all(r.meta.get(k) == v for k, v in meta.items())]


def example_units(run_dir: str | Path) -> dict[str, list[dict]]:
    """``{layer label: [{"channel", "reason"}, ...]}``: the battery's example units of each
    layer (its ``examples`` step; ``{}`` when the run has none)."""
    import json

    from artiphys.store.rundir import MANIFEST, RunDir

    run_dir = Path(run_dir)
    if not ((run_dir / MANIFEST).is_file() and (run_dir / ".steps").is_dir()):
        return {}
    entries = [e for e in RunDir.open(run_dir).current_entries()
               if e.get("step") == "examples" and e["file"].endswith(".json")]
    if not entries:
        return {}
    latest = max(entries, key=lambda e: e["created_utc"])
    return json.loads((run_dir / latest["file"]).read_text()).get("layers", {})


def _scan(run_dir: Path) -> list[Result]:
    found = []
    for path in sorted(run_dir.rglob("*.nc")):
        if any(part.startswith((".", "_")) for part in path.relative_to(run_dir).parts):
            continue
        with xr.open_dataset(path) as ds:
            kind = ds.attrs.get("analysis")
            meta = {k: str(ds.attrs[k]) for k in ("condition", "layer", "model")
                    if k in ds.attrs}
        if kind:
            found.append(Result(path, str(kind), meta))
    return found


__all__ = ["Result", "example_units", "run_results"]
