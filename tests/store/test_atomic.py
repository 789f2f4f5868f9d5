"""store/atomic.py: writes are all-or-nothing and leave no temporary file behind."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from artiphys.errors import RunStoreError
from artiphys.store.atomic import (atomic_path, atomic_write_bytes, atomic_write_json,
                                   atomic_write_netcdf, atomic_write_text, atomic_write_with,
                                   file_in_the_way, is_temp_file, make_folder,
                                   remove_temp_files, sha256_file, temp_path_for)


def test_json_round_trip(tmp_path):
    f = atomic_write_json(tmp_path / "a" / "m.json", {"b": 1, "a": [1, 2], "p": tmp_path})
    assert json.loads(f.read_text()) == {"a": [1, 2], "b": 1, "p": str(tmp_path)}
    assert list(f.parent.iterdir()) == [f]


def test_failed_write_keeps_old_file_and_no_temp(tmp_path):
    f = atomic_write_text(tmp_path / "x.txt", "old")
    with pytest.raises(RuntimeError):
        with atomic_path(f) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("killed mid-write")
    assert f.read_text() == "old"
    assert list(tmp_path.iterdir()) == [f]


def test_netcdf_opens_with_plain_xarray(tmp_path):
    da = xr.DataArray(np.arange(6, dtype="float32").reshape(2, 3), dims=("stimulus", "unit"),
                      coords={"name": ("stimulus", np.array(["a", "b"], dtype=object))},
                      name="r")
    f = atomic_write_netcdf(tmp_path / "r.nc", da)
    with xr.open_dataset(f) as ds:
        np.testing.assert_array_equal(ds["r"].values, da.values)
        assert list(ds["name"].values) == ["a", "b"]


def test_remove_temp_files_only_removes_temps(tmp_path):
    keep = atomic_write_text(tmp_path / "sub" / "keep.nc", "x")
    tmp = temp_path_for(keep)
    tmp.write_text("partial")
    assert is_temp_file(tmp) and not is_temp_file(keep)
    assert remove_temp_files(tmp_path) == [tmp]
    assert keep.exists() and not tmp.exists()


def test_sha256_file(tmp_path):
    f = atomic_write_text(tmp_path / "f", "abc")
    assert sha256_file(f) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# ---- disk full, no permission, a file in the way (issue 14, item 2) -----------------------

def _one_line_store_error(excinfo, path, words):
    msg = str(excinfo.value)
    assert isinstance(excinfo.value, RunStoreError) and "\n" not in msg
    assert str(path) in msg and words in msg, msg
    return msg


def _no_temp_files(folder):
    return not [p for p in folder.rglob("*") if is_temp_file(p)]


def test_disk_full_at_the_write_keeps_the_old_file(tmp_path, monkeypatch):
    f = atomic_write_bytes(tmp_path / "data.bin", b"old")
    real_write, calls = os.write, []

    def write_then_fail(fd, data):  # the first block reaches the disk, the second does not
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write_then_fail)
    with pytest.raises(RunStoreError) as excinfo:
        atomic_write_bytes(f, b"x" * (3 << 20), what="responses of layer conv1")
    monkeypatch.undo()
    msg = _one_line_store_error(excinfo, f, "no space left")
    assert "responses of layer conv1" in msg and "--resume" in msg
    assert len(calls) == 2  # it failed half-way through
    assert f.read_bytes() == b"old" and _no_temp_files(tmp_path)


@pytest.mark.parametrize("code,words", [(errno.EACCES, "permission denied"),
                                        (errno.EROFS, "read-only"),
                                        (errno.EDQUOT, "quota")])
def test_unwritable_target_at_the_rename(tmp_path, monkeypatch, code, words):
    keep = atomic_write_json(tmp_path / "finished.json", {"done": 1})
    monkeypatch.setattr(os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(code, "no")))
    with pytest.raises(RunStoreError) as excinfo:
        atomic_write_json(tmp_path / "next.json", {"a": 1})
    monkeypatch.undo()
    _one_line_store_error(excinfo, tmp_path / "next.json", words)
    assert json.loads(keep.read_text()) == {"done": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["finished.json"]


def test_fsync_error_is_reported_and_the_partial_file_removed(tmp_path, monkeypatch):
    def fail(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(RunStoreError) as excinfo:
        atomic_write_text(tmp_path / "a.txt", "text")
    monkeypatch.undo()
    _one_line_store_error(excinfo, tmp_path / "a.txt", "input/output error")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("below", [(), ("sub",), ("sub", "deeper")])
def test_target_under_a_regular_file(tmp_path, below):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    target = blocker.joinpath(*below, "r.nc")
    with pytest.raises(RunStoreError) as excinfo:
        atomic_write_netcdf(target, xr.Dataset({"r": ("x", np.arange(3.0))}))
    _one_line_store_error(excinfo, blocker, "is a regular file, not a folder")
    assert blocker.read_text() == "a file, not a folder"
    assert file_in_the_way(target.parent) == blocker and file_in_the_way(tmp_path) is None
    with pytest.raises(RunStoreError, match="regular file"):
        make_folder(blocker / "run")


def test_other_errors_pass_through_and_leave_no_temp(tmp_path):
    with pytest.raises(ZeroDivisionError):
        atomic_write_with(tmp_path / "x.png", lambda tmp: tmp.write_bytes(b"half") and 1 / 0)
    with pytest.raises(FileNotFoundError):  # not a disk problem: left for the caller
        atomic_write_with(tmp_path / "y.txt",
                          lambda tmp: (tmp_path / "missing" / "z").read_text())
    assert list(tmp_path.iterdir()) == []


def _dataset(n=20_000):
    return xr.Dataset({"r": (("stimulus", "unit"), np.random.default_rng(0).random((n, 16),
                                                                            dtype=np.float32))},
                      coords={"name": ("stimulus", np.array([f"s{i}" for i in range(n)], dtype=object))})


@pytest.mark.parametrize("engine", ["h5netcdf", "scipy"])
def test_netcdf_disk_full_mid_file_is_one_error(tmp_path, monkeypatch, engine):
    """ENOSPC after the first MB of a netCDF file: one RunStoreError once the library has
    closed the file, the finished file beside it and the old target untouched."""
    if engine == "scipy":
        pytest.importorskip("scipy")
    ds = _dataset()
    finished = atomic_write_netcdf(tmp_path / "chunk-0.nc", ds, engine=engine)
    digest = sha256_file(finished)
    real_write, written = os.write, [0]

    def write_until_full(fd, data):
        if written[0] + len(data) > (1 << 20):
            raise OSError(errno.ENOSPC, "No space left on device")
        written[0] += len(data)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write_until_full)
    with pytest.raises(RunStoreError) as excinfo:
        atomic_write_netcdf(tmp_path / "chunk-1.nc", ds, engine=engine)
    monkeypatch.undo()
    _one_line_store_error(excinfo, tmp_path / "chunk-1.nc", "no space left")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunk-0.nc"]
    assert sha256_file(finished) == digest
    with xr.open_dataset(finished) as back:
        np.testing.assert_array_equal(back["r"].values, ds["r"].values)


_FILE_SIZE_LIMIT_CHILD = """
import resource, signal, sys
import numpy as np, xarray as xr
from artiphys.errors import RunStoreError
from artiphys.store.atomic import atomic_write_netcdf
ds = xr.Dataset({"r": (("s", "u"), np.random.default_rng(0).random((4000, 200)).astype("float32"))})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))
try:
    atomic_write_netcdf(sys.argv[1], ds)
except RunStoreError as exc:
    print("RunStoreError:", exc)
import gc; gc.collect()
print("exit cleanly")
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE")
def test_a_failed_netcdf_write_never_crashes_the_interpreter(tmp_path):
    """A write refused by the operating system inside HDF5 used to leave a half-closed
    file whose later ``__del__`` crashed Python (exit 139, 'three tracebacks'). The
    file-size limit makes the kernel refuse the write (EFBIG) the way a full disk does."""
    target = tmp_path / "r.nc"
    proc = subprocess.run([sys.executable, "-c", _FILE_SIZE_LIMIT_CHILD, str(target)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert "RunStoreError: cannot write netCDF file" in proc.stdout and "file-size limit" in proc.stdout
    assert "exit cleanly" in proc.stdout and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []
