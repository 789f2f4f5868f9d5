"""Hooks and batched extraction of unit responses into labelled arrays.

``record`` gives per layer a DataArray ``("stimulus", "unit")``; ``Recorder`` keeps a
model hooked to record slices of stimulus sets (the ``record`` experiment in
``artiphys.experiments.record`` streams them into a run directory).
"""

from artiphys.recording.hooks import hooks_left
from artiphys.recording.record import (Recorder, as_stimulus_set, record, resolve_layers,
                                       stimulus_coords)
from artiphys.recording.units import UnitSelector

__all__ = ["Recorder", "UnitSelector", "as_stimulus_set", "hooks_left", "record",
           "resolve_layers", "stimulus_coords"]
