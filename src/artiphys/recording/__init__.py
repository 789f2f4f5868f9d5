"""Hooks and batched extraction of unit responses into labelled arrays.

``record`` (in memory) and ``record_to_store`` (chunked netCDF in a run directory,
resumable) give per layer a DataArray ``("stimulus", "unit")``; ``load_responses``,
``load_run_responses`` and ``iter_response_chunks`` read stored runs back.
"""

from artiphys.recording.hooks import hooks_left
from artiphys.recording.record import (as_stimulus_set, iter_response_chunks, load_responses,
                                       load_run_responses, record, record_to_store,
                                       resolve_layers, stimulus_coords)
from artiphys.recording.units import UnitSelector

__all__ = ["UnitSelector", "as_stimulus_set", "hooks_left", "iter_response_chunks",
           "load_responses", "load_run_responses", "record", "record_to_store",
           "resolve_layers", "stimulus_coords"]
