"""Run directories, provenance, atomic writes, resume."""

from artiphys.store.atomic import (atomic_path, atomic_write_bytes, atomic_write_json,
                                   atomic_write_netcdf, atomic_write_text, make_folder,
                                   netcdf_engine, remove_temp_files, sha256_file, write_error)
from artiphys.store.rundir import RunDir, utc_now

__all__ = ["RunDir", "atomic_path", "atomic_write_bytes", "atomic_write_json",
           "atomic_write_netcdf", "atomic_write_text", "make_folder", "netcdf_engine",
           "remove_temp_files", "sha256_file", "utc_now", "write_error"]
