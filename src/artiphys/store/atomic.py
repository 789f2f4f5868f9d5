"""Atomic file writes: write a temporary file next to the target, fsync, then rename.

A reader (or a run killed half-way through a write) sees either the old file or the
complete new one, never a truncated file. Temporary files are named
``.<target-name>.tmp-<pid>-<random>`` so :func:`remove_temp_files` can clean up the
leftovers of a killed run.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_MARKER = ".tmp-"


def temp_path_for(path: str | os.PathLike) -> Path:
    """A fresh temporary path in the same folder as ``path`` (same file system)."""
    path = Path(path)
    return path.with_name(f".{path.name}{TEMP_MARKER}{os.getpid()}-{secrets.token_hex(4)}")


def is_temp_file(path: str | os.PathLike) -> bool:
    """True for a temporary file left by an atomic write."""
    name = Path(path).name
    return name.startswith(".") and TEMP_MARKER in name


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # folders cannot be opened on some platforms (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Context manager giving a temporary path to write; renamed onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched.

    Examples
    --------
    >>> with atomic_path("out.nc") as tmp:          # doctest: +SKIP
    ...     dataset.to_netcdf(tmp, engine="h5netcdf")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; return ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON (keys sorted, non-JSON values as ``str``) atomically."""
    text = json.dumps(obj, indent=indent, sort_keys=True, default=str) + "\n"
    return atomic_write_text(path, text)


def netcdf_engine() -> str:
    """``"h5netcdf"`` (netCDF4/HDF5) when h5py is installed, else ``"scipy"`` (netCDF3).

    h5netcdf >= 1.8 no longer pulls in h5py; without it only netCDF3 can be written. Both
    formats open with plain ``xarray.open_dataset(path)``.
    """
    import importlib.util

    if importlib.util.find_spec("h5netcdf") and importlib.util.find_spec("h5py"):
        return "h5netcdf"
    return "scipy"


def atomic_write_netcdf(path: str | os.PathLike, data, *, engine: str | None = None,
                        encoding: dict | None = None) -> Path:
    """Write an ``xarray.Dataset`` or named ``DataArray`` as netCDF to ``path`` atomically.

    The file opens with plain ``xarray.open_dataset(path)``. ``engine`` defaults to
    :func:`netcdf_engine`.
    """
    import xarray as xr

    engine = engine or netcdf_engine()

    if isinstance(data, xr.DataArray):
        data = data.to_dataset(name=data.name or "data")
    with atomic_path(path) as tmp:
        data.to_netcdf(tmp, engine=engine, encoding=encoding)
    return Path(path)


def atomic_write_with(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and rename the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def remove_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files of atomic writes under ``folder`` (recursively); return them."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.rglob(f".*{TEMP_MARKER}*"):
        if p.is_file() and is_temp_file(p):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def sha256_file(path: str | os.PathLike, *, block_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(block_size), b""):
            h.update(block)
    return h.hexdigest()
