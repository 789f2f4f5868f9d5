"""Atomic file writes: write a temporary file next to the target, fsync, then rename.

A reader (or a run killed half-way through a write) sees either the old file or the
complete new one, never a truncated file. Temporary files are named
``.<target-name>.tmp-<pid>-<random>`` so :func:`remove_temp_files` can clean up the
leftovers of a killed run.

Write failures caused by the disk or the path -- no space left (``ENOSPC``, ``EDQUOT``),
a file-size limit (``EFBIG``), no permission (``EACCES``, ``EPERM``), a read-only file
system (``EROFS``), a regular file where a folder should be (``ENOTDIR``, ``EEXIST``), an
I/O error -- raise :class:`~artiphys.errors.RunStoreError` with one line naming the file,
what was being written and what to do; the partial temporary file is removed and the
target (and every file finished before) is left as it was.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from artiphys.errors import ArtiphysError, RunStoreError

TEMP_MARKER = ".tmp-"
_WRITE_BLOCK = 1 << 20  # bytes per os.write call
_ADVICE = {  # errno -> (what went wrong, what to do)
    errno.ENOSPC: ("no space left on the device", "free some space or choose an --out on another disk, then run "
                   "the command again (finished files are kept; add --resume where the command "
                   "has it)"),
    getattr(errno, "EDQUOT", None): ("disk quota exceeded", "free some space or choose an --out "
                                     "on another disk, then run the command again (finished "
                                     "files are kept; add --resume where the command has it)"),
    errno.EFBIG: ("the file is larger than the file-size limit", "raise the limit (ulimit -f) or "
                  "choose an --out on another file system"),
    errno.EACCES: ("permission denied", "choose an --out in a folder you can write to, or change "
                   "its permissions"),
    errno.EPERM: ("operation not permitted", "choose an --out in a folder you can write to, or "
                  "change its permissions"),
    errno.EROFS: ("the file system is read-only", "choose an --out on a writable disk"),
    errno.EISDIR: ("a folder of that name is in the way", "choose another file name"),
    errno.EIO: ("input/output error from the disk", "check the disk, then run the command again"),
    errno.ENAMETOOLONG: ("the path is too long", "choose a shorter --out"),
}
_ADVICE.pop(None, None)  # EDQUOT is missing on some platforms
_IN_THE_WAY = (errno.ENOTDIR, errno.EEXIST)
_SUFFIX_KIND = {".nc": "netCDF file", ".json": "JSON file", ".csv": "table", ".png": "image",
                ".pdf": "figure", ".html": "page", ".txt": "text file"}


def temp_path_for(path: str | os.PathLike) -> Path:
    """A fresh temporary path in the same folder as ``path`` (same file system)."""
    path = Path(path)
    return path.with_name(f".{path.name}{TEMP_MARKER}{os.getpid()}-{secrets.token_hex(4)}")


def is_temp_file(path: str | os.PathLike) -> bool:
    """True for a temporary file left by an atomic write."""
    name = Path(path).name
    return name.startswith(".") and TEMP_MARKER in name


# ---- errors ------------------------------------------------------------------------------

def file_in_the_way(folder: str | os.PathLike) -> Path | None:
    """The regular file (or other non-folder) at ``folder`` or one of its parents, if any.

    ``Path("a.txt/sub").exists()`` is False when ``a.txt`` is a file; this finds ``a.txt``.
    """
    for p in (Path(folder), *Path(folder).parents):
        if os.path.lexists(p):
            return None if p.is_dir() else p
    return None


def _os_error_in(exc: BaseException) -> OSError | None:
    """The first OSError with an errno in ``exc`` or the exceptions it was raised from."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def write_error(exc: BaseException, path: str | os.PathLike, what: str) -> RunStoreError | None:
    """A one-line :class:`RunStoreError` for a failed write of ``what`` to ``path``, or None
    when ``exc`` is not a disk or path problem (it is then re-raised as it is)."""
    return _store_error(exc, f"cannot write {what} {path}", Path(path).parent)


def _store_error(exc: BaseException, doing: str, folder: Path) -> RunStoreError | None:
    """``"<doing>: <problem>; <what to do>"`` for the OSError behind ``exc``, else None."""
    if isinstance(exc, ArtiphysError) or not isinstance(exc, Exception):
        return None
    os_err = _os_error_in(exc)
    if os_err is None:
        return None
    if os_err.errno in _IN_THE_WAY:
        blocker = file_in_the_way(folder)
        if blocker is not None:
            return RunStoreError(f"{doing}: {blocker} is a regular file, not a folder; choose "
                                 "an --out outside it (or move that file away)")
    if os_err.errno not in _ADVICE:
        return None
    problem, todo = _ADVICE[os_err.errno]
    return RunStoreError(f"{doing}: {problem}; {todo}")


def describe_file(path: str | os.PathLike) -> str:
    """Default ``what`` of a file in error messages, from its suffix (``"netCDF file"``)."""
    return _SUFFIX_KIND.get(Path(path).suffix.lower(), "file")


def make_folder(folder: str | os.PathLike, purpose: str | None = None) -> Path:
    """``mkdir -p folder``, with disk and path problems as one-line :class:`RunStoreError`.

    ``purpose`` (e.g. ``"to write netCDF file chunk-00000.nc"``) is named in the message.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        doing = f"cannot create folder {folder}" + (f" ({purpose})" if purpose else "")
        err = _store_error(exc, doing, folder)
        if err is None:
            raise
        raise err from exc
    return folder


# ---- writing -----------------------------------------------------------------------------

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
    except OSError:  # the rename is done; a folder that cannot be synced is not an error
        pass
    finally:
        os.close(fd)


def _discard(tmp: Path) -> bool:
    """Remove a partial temporary file; False when it could not be removed."""
    try:
        tmp.unlink(missing_ok=True)
    except OSError:  # e.g. the folder became read-only: reported in the error message
        return False
    return True


@contextmanager
def atomic_path(path: str | os.PathLike, *, what: str | None = None) -> Iterator[Path]:
    """Context manager giving a temporary path to write; renamed onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched. Disk
    and path problems (see the module doc) become a one-line
    :class:`~artiphys.errors.RunStoreError` naming ``path`` and ``what`` (default from
    the suffix, e.g. ``"netCDF file"``).

    Examples
    --------
    >>> with atomic_path("out.nc") as tmp:          # doctest: +SKIP
    ...     dataset.to_netcdf(tmp, engine="h5netcdf")
    """
    path = Path(path)
    what = what or describe_file(path)
    make_folder(path.parent, f"to write {what} {path.name}")
    tmp = temp_path_for(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        removed = _discard(tmp)
        err = write_error(exc, path, what)
        if err is None:
            raise
        if not removed:
            err = RunStoreError(f"{err} (the partial file {tmp} could not be removed)")
        raise err from exc
    _fsync_dir(path.parent)


def _write_all(path: Path, data) -> None:
    """Write ``data`` to a new file ``path`` with ``os.write`` (short writes retried)."""
    view = memoryview(data).cast("B")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o666)
    try:
        while view:
            n = os.write(fd, view[:_WRITE_BLOCK])
            view = view[n:]
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, what: str | None = None) -> Path:
    """Write ``data`` to ``path`` atomically; return ``path``."""
    with atomic_path(path, what=what) as tmp:
        _write_all(tmp, data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, *, what: str | None = None) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; return ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"), what=what)


def atomic_write_json(path: str | os.PathLike, obj, *, indent: int = 2,
                      what: str | None = None) -> Path:
    """Write ``obj`` as JSON (keys sorted, non-JSON values as ``str``) atomically."""
    text = json.dumps(obj, indent=indent, sort_keys=True, default=str) + "\n"
    return atomic_write_text(path, text, what=what)


def netcdf_engine() -> str:
    """``"h5netcdf"`` (netCDF4/HDF5) when h5py is installed, else ``"scipy"`` (netCDF3).

    h5netcdf >= 1.8 no longer pulls in h5py; without it only netCDF3 can be written. Both
    formats open with plain ``xarray.open_dataset(path)``.
    """
    import importlib.util

    if importlib.util.find_spec("h5netcdf") and importlib.util.find_spec("h5py"):
        return "h5netcdf"
    return "scipy"


class _DiskSink(io.RawIOBase):
    """A binary file that never reports a disk error to its writer.

    HDF5 (through h5py's file-object driver) writes a netCDF4 file into this object,
    which writes through to ``path`` with ``os.write``. After the first disk error
    (``ENOSPC`` ...) it keeps the rest of the file in memory, so the library finishes
    and closes its file normally; :meth:`raise_error` then raises that error. A failed
    write reported to HDF5 itself leaves a half-closed file whose next access (often
    from ``__del__``, at interpreter exit) crashes with a segmentation fault
    (h5netcdf 1.8, h5py 3.16, HDF5 2.0).
    """

    def __init__(self, path: Path):
        super().__init__()
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
        self._fd = os.open(path, flags, 0o666)
        self._pos = self._size = 0
        self._memory: bytearray | None = None  # the whole file, once the disk failed
        self.error: OSError | None = None

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def _fail(self, exc: OSError) -> None:
        """Keep ``exc`` and carry on in memory from what is on disk so far."""
        self.error = exc
        os.lseek(self._fd, 0, os.SEEK_SET)
        data = bytearray()
        while block := os.read(self._fd, _WRITE_BLOCK):
            data += block
        data.extend(bytes(max(0, self._size - len(data))))
        self._memory = data

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        if self._memory is None:
            try:
                os.lseek(self._fd, self._pos, os.SEEK_SET)
                done = 0
                while done < len(view):
                    done += os.write(self._fd, view[done:done + _WRITE_BLOCK])
            except OSError as exc:
                self._fail(exc)
        if self._memory is not None:
            end = self._pos + len(view)
            self._memory.extend(bytes(max(0, end - len(self._memory))))
            self._memory[self._pos:end] = view
        self._pos += len(view)
        self._size = max(self._size, self._pos)
        return len(view)

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self._size - self._pos))
        if self._memory is not None:
            view[:n] = self._memory[self._pos:self._pos + n]
        elif n:
            os.lseek(self._fd, self._pos, os.SEEK_SET)
            got = os.read(self._fd, n)
            view[:len(got)] = got
            view[len(got):n] = bytes(n - len(got))  # a hole past what reached the disk
        self._pos += n
        return n

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else int(size)
        if self._memory is None:
            try:
                os.ftruncate(self._fd, size)
            except OSError as exc:
                self._fail(exc)
        if self._memory is not None:
            del self._memory[size:]
            self._memory.extend(bytes(size - len(self._memory)))
        self._size = size
        return size

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
            self._memory = None
        super().close()

    def raise_error(self) -> None:
        """Raise the disk error met while writing, if any."""
        if self.error is not None:
            raise self.error


def atomic_write_netcdf(path: str | os.PathLike, data, *, engine: str | None = None,
                        encoding: dict | None = None, what: str | None = None) -> Path:
    """Write an ``xarray.Dataset`` or named ``DataArray`` as netCDF to ``path`` atomically.

    The file opens with plain ``xarray.open_dataset(path)``. ``engine`` defaults to
    :func:`netcdf_engine`. The library writes into a :class:`_DiskSink`, so a full disk
    is reported here, once the file is closed, as a :class:`RunStoreError` (never as a
    crash inside HDF5).
    """
    import xarray as xr

    engine = engine or netcdf_engine()

    if isinstance(data, xr.DataArray):
        data = data.to_dataset(name=data.name or "data")
    with atomic_path(path, what=what) as tmp:
        with _DiskSink(tmp) as sink:
            data.to_netcdf(sink, engine=engine, encoding=encoding)
            sink.raise_error()
    return Path(path)


def atomic_write_with(path: str | os.PathLike, write: Callable[[Path], None], *,
                      what: str | None = None) -> Path:
    """Call ``write(tmp_path)`` and rename the result onto ``path`` atomically."""
    with atomic_path(path, what=what) as tmp:
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
