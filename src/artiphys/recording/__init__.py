"""Hooks and batched extraction of unit responses into labelled arrays."""

from artiphys.recording.hooks import hooks_left
from artiphys.recording.record import (as_stimulus_set, load_responses, load_run_responses,
                                       record, record_to_store, resolve_layers,
                                       stimulus_coords)
from artiphys.recording.units import UnitSelector

__all__ = ["UnitSelector", "as_stimulus_set", "hooks_left", "load_responses",
           "load_run_responses", "record", "record_to_store", "resolve_layers",
           "stimulus_coords"]
