"""Run directories, the step store, provenance, atomic writes, resume."""

from artiphys.store.atomic import (atomic_path, atomic_write_bytes, atomic_write_json,
                                   atomic_write_netcdf, atomic_write_text, make_folder,
                                   netcdf_engine, remove_temp_files, sha256_file, write_error)
from artiphys.store.rundir import RunDir, file_label, utc_now
from artiphys.store.steps import BadStepFile, Step, StepStore

__all__ = ["BadStepFile", "RunDir", "Step", "StepStore", "atomic_path", "atomic_write_bytes",
           "atomic_write_json", "atomic_write_netcdf", "atomic_write_text", "file_label",
           "make_folder", "netcdf_engine", "remove_temp_files", "sha256_file", "utc_now",
           "write_error"]
