"""store/atomic.py: writes are all-or-nothing and leave no temporary file behind."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from artiphys.store.atomic import (atomic_path, atomic_write_json, atomic_write_netcdf,
                                   atomic_write_text, is_temp_file, remove_temp_files,
                                   sha256_file, temp_path_for)


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
