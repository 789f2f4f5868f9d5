"""Record unit responses to a stimulus set into labelled arrays.

``record(model, stimuli, layers)`` returns, per layer, an ``xarray.DataArray`` with dims
``("stimulus", "unit")``; unit coords ``layer, channel, y, x``; every stimulus parameter a
``stimulus`` coord. :class:`Recorder` keeps the model hooked to record any number of
slices (the ``record`` experiment streams chunks of a set into a run directory with it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch import nn

from artiphys.errors import (ResponseError, StimulusError,
                             UnknownLayerError)
from artiphys.models.layers import LayerRef, resolve_layer
from artiphys.models.spec import ModelSpec, as_spec, default_device
from artiphys.recording.hooks import Capture
from artiphys.recording.units import (UnitSelector, check_units_mapping)
from artiphys.stimuli.base import StimulusSet, to_model_input

#: unit coords; stimulus parameters with these names are stored as ``stimulus_<name>``
UNIT_COORDS = ("layer", "channel", "y", "x")
_RESERVED = {"stimulus", "unit", *UNIT_COORDS}

Layers = str | LayerRef | nn.Module | Sequence[str | LayerRef | nn.Module]
Progress = Callable[[int], None]


# ---- inputs ------------------------------------------------------------------------------
def as_stimulus_set(stimuli, name: str = "images") -> StimulusSet:
    """Pass a StimulusSet through; wrap images ``(n, 3, H, H)`` / ``(n, H, H)`` in [0, 1].

    Raises
    ------
    StimulusError
        For an empty set, or arrays of another shape or with values outside [0, 1].
    """
    if isinstance(stimuli, StimulusSet):
        if len(stimuli) == 0:
            raise StimulusError(f"stimulus set {stimuli.name!r} is empty; give at least one "
                                "stimulus")
        return stimuli
    if torch.is_tensor(stimuli) or isinstance(stimuli, np.ndarray):
        images = torch.as_tensor(np.array(stimuli, copy=True) if isinstance(stimuli, np.ndarray)
                                 else stimuli)
        if not images.is_floating_point():
            raise StimulusError(f"images must be floats in [0, 1], got {images.dtype}; divide "
                                "8-bit images by 255")
        if images.numel() and (images.min() < 0 or images.max() > 1 or images.isnan().any()):
            raise StimulusError("image values must lie in [0, 1]; rescale them (8-bit images: "
                                "divide by 255)")
        return as_stimulus_set(StimulusSet.from_tensor(images, name=name))
    raise StimulusError(f"stimuli must be a StimulusSet or an image array, got "
                        f"{type(stimuli).__name__}; build one with artiphys.stimuli.make_stimuli")


def resolve_layers(spec: ModelSpec, layers: Layers) -> list[LayerRef]:
    """Resolve layer names / aliases / modules, dropping repeats (same label)."""
    if isinstance(layers, (str, LayerRef, nn.Module)):
        layers = [layers]
    refs: list[LayerRef] = []
    for layer in layers:
        ref = resolve_layer(spec, layer)
        if ref.label not in {r.label for r in refs}:
            refs.append(ref)
    if not refs:
        names = [n for n, _ in spec.module.named_modules() if n]
        raise UnknownLayerError(f"no layers given; name at least one, e.g. {names[0]!r}"
                                if names else "no layers given")
    return refs


def stimulus_coords(params: pd.DataFrame) -> dict[str, np.ndarray]:
    """Parameter columns as netCDF-safe numpy arrays.

    Numbers stay numbers (an object column of numbers and None becomes float with NaN for
    None); text, categories and mixed columns become ``str`` (None as ``""``).

    A parameter whose name clashes with a dim or unit coord (``x``, ``y``, ``layer``,
    ``channel``, ``unit``, ``stimulus``) is renamed ``stimulus_<name>``; spaces and ``/``
    in names become ``_`` (netCDF lists coords in a space-separated attribute and reads
    ``/`` as a group separator).
    """
    out = {}
    for col in params.columns:
        s = params[col]
        name = re.sub(r"[\s/]", "_", str(col))
        name = f"stimulus_{name}" if name in _RESERVED else name
        if name in out:
            raise StimulusError(f"stimulus parameters {col!r} and another column both map to "
                                f"coord {name!r}; rename one of them")
        dtype = s.dtype
        if isinstance(dtype, np.dtype) and dtype.kind in "iu":
            values = s.to_numpy().astype(np.int64)
        elif isinstance(dtype, np.dtype) and dtype.kind in "bfM":
            values = s.to_numpy()
        elif pd.api.types.is_bool_dtype(dtype) and not s.isna().any():
            values = s.to_numpy(dtype=bool)
        elif pd.api.types.is_numeric_dtype(dtype):
            values = s.to_numpy(dtype=float, na_value=np.nan)
        elif _all_numbers(s):  # e.g. positions that are None (= centred) or a number
            values = np.array([np.nan if _missing(v) else float(v) for v in s.tolist()])
        else:
            values = np.array(["" if v is None else str(v) for v in s.tolist()], dtype=object)
        out[name] = values
    return out


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _all_numbers(s: pd.Series) -> bool:
    """Object column of real numbers and missing values (None/NaN), not all missing."""
    vals = s.tolist()
    real = [v for v in vals if not _missing(v)]
    return bool(real) and all(isinstance(v, (int, float, np.integer, np.floating))
                              and not isinstance(v, (bool, np.bool_)) for v in real)


# ---- the recording loop ------------------------------------------------------------------
class _Session:
    """A model on its device with hooks on the requested layers (see :func:`_session`)."""

    def __init__(self, spec: ModelSpec, capture: Capture, device: torch.device,
                 dtype: torch.dtype):
        self.spec = spec
        self.capture = capture
        self.device = device
        self.dtype = dtype
        self._buffer: np.ndarray | None = None

    def model_input(self, images: torch.Tensor) -> torch.Tensor:
        """``to_model_input`` on the device; on the CPU, when no resizing is needed, the
        same arithmetic ``(x - mean) / std`` done into one reused buffer (a fresh 40 MB
        tensor per batch costs more in page faults than the arithmetic)."""
        prep = self.spec.preprocessing
        size = prep.input_size_px
        fast = (self.device.type == "cpu" and images.device.type == "cpu"
                and images.dtype == torch.float32 and self.dtype == torch.float32
                and prep.channel_order == "RGB" and images.ndim == 4 and images.shape[1] == 3
                and tuple(images.shape[-2:]) == (size, size))
        if not fast:
            return to_model_input(images.to(self.device, non_blocking=True), prep).to(self.dtype)
        n = images.shape[0]
        if self._buffer is None or self._buffer.shape[0] < n or self._buffer.shape[1:] != \
                tuple(images.shape[1:]):
            self._buffer = np.empty(tuple(images.shape), dtype=np.float32)
        out = self._buffer[:n]
        mean = np.asarray(prep.mean, dtype=np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(prep.std, dtype=np.float32).reshape(1, 3, 1, 1)
        np.subtract(images.detach().numpy(), mean, out=out)
        np.divide(out, std, out=out)
        return torch.from_numpy(out)

    def batches(self, stimuli: StimulusSet, start: int, stop: int, batch_size: int
                ) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
        """Yield ``(lo, hi, {label: float32 array (hi - lo, units)})`` for stimuli start:stop."""
        for lo in range(start, stop, batch_size):
            hi = min(lo + batch_size, stop)
            images = stimuli.images(lo, hi)
            if not torch.is_tensor(images):
                raise StimulusError(f"stimulus set {stimuli.name!r} rendered a "
                                    f"{type(images).__name__}, not a tensor")
            out = self.capture.run(self.model_input(images))
            arrays = {}
            for label, t in out.items():
                a = t.to(device="cpu", dtype=torch.float32).numpy()
                finite = np.isfinite(a)
                if not finite.all():
                    i = lo + int((~finite.all(axis=1)).argmax())
                    row = stimuli.params.iloc[i].to_dict()
                    shown = ", ".join(f"{k}={v}" for k, v in list(row.items())[:4])
                    raise ResponseError(
                        f"layer {label!r} gave NaN or infinite responses for stimulus {i} "
                        f"({shown}); check the model weights and that the stimuli are finite "
                        "values in [0, 1]")
                arrays[label] = a
            yield lo, hi, arrays


@contextmanager
def _session(spec: ModelSpec, refs: list[LayerRef], units, device) -> Iterator[_Session]:
    """Put the model in eval mode on ``device`` with hooks; restore everything after."""
    check_units_mapping(units, [(r.label, r.name, r.alias) for r in refs])
    module = spec.module
    device = default_device(device)
    param = next(iter(module.parameters()), None)
    home = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    was_training = module.training
    capture = Capture(module, refs, units, model=spec)
    try:
        module.eval()
        if home != device:
            module.to(device)
        with capture:
            yield _Session(spec, capture, device, dtype)
    finally:
        capture.remove()
        if home != device:
            module.to(home)
        module.train(was_training)


def _dataarray(values: np.ndarray, sel: UnitSelector, ref: LayerRef, stimuli: StimulusSet,
               start: int, stop: int, spec: ModelSpec, stim_coords: dict) -> xr.DataArray:
    """``stim_coords``: :func:`stimulus_coords` of rows ``start:stop`` (shared by layers)."""
    coords: dict = {"stimulus": ("stimulus", np.arange(start, stop, dtype=np.int64))}
    for name, col in stim_coords.items():
        coords[name] = ("stimulus", col)
    k = len(sel)
    coords["layer"] = ("unit", np.array([ref.label] * k, dtype=object))
    coords["channel"] = ("unit", sel.channel)
    coords["y"] = ("unit", sel.y)
    coords["x"] = ("unit", sel.x)
    attrs = {"layer": ref.label, "layer_path": ref.name, "units": sel.mode,
             "layer_shape_chw": list(sel.shape), "model": spec.name,
             "input_size_px": spec.preprocessing.input_size_px,
             "stimulus_set": stimuli.name, "stimulus_hash": stimuli.content_hash}
    return xr.DataArray(values, dims=("stimulus", "unit"), coords=coords, name=ref.label,
                        attrs=attrs)


def record(model: ModelSpec | nn.Module, stimuli, layers: Layers, units="center", *,
           batch_size: int = 64, device: str | torch.device | None = None,
           progress: Progress | None = None) -> dict[str, xr.DataArray]:
    """Record the responses of units in ``layers`` to every stimulus.

    Parameters
    ----------
    model : ModelSpec or torch.nn.Module
        A loaded model (``artiphys.models.load_model``) or any module (ImageNet
        preprocessing at 224 px is assumed for a bare module; wrap it with ``as_spec``).
    stimuli : StimulusSet or array
        Stimuli; an array ``(n, 3, H, H)`` in [0, 1] is wrapped with
        ``StimulusSet.from_tensor``. Images are resized to the model's input size.
    layers : str, LayerRef, module, or a list of them
        Module paths (``"features.0"``) or aliases (``"conv1"``).
    units : "center", "all", list, or dict
        ``"center"``: every channel at the map centre ``(H // 2, W // 2)`` (every unit of a
        1-D layer); ``"all"``: every channel x y x x; a list of channels (at the centre) or
        of ``(channel, y, x)``; or a dict giving one of these per layer.
    batch_size : int
        Stimuli per forward pass.
    device : str or torch.device, optional
        Default: CUDA when present, else CPU. The model is moved back afterwards.
    progress : callable, optional
        Called with the number of stimuli done so far after each batch.

    Returns
    -------
    dict of str to xarray.DataArray
        Per layer label (alias, else module path), float32 responses with dims
        ``("stimulus", "unit")``.

    Raises
    ------
    UnknownLayerError, UnknownUnitError, StimulusError, ResponseError
        Bad layer names, units outside a layer, badly shaped stimuli, or NaN responses
        (the message names the layer and the stimulus).

    Notes
    -----
    Runs under ``torch.inference_mode``; the forward stops after the last requested layer;
    each hook copies only the selected units, before any later in-place op can change them.
    """
    with Recorder(model, layers, units, batch_size=batch_size, device=device) as rec:
        return rec.record(stimuli, progress=progress)


def _positive(value, name: str) -> int:
    try:
        value = int(value)
    except (TypeError, ValueError):
        value = 0
    if value < 1:
        raise ResponseError(f"{name} must be a positive integer")
    return value


# ---- recording slices of a set with one hooked model ---------------------------------------

class Recorder:
    """A model hooked on ``layers``, recording any slice of any stimulus set.

    Use as a context manager (``with Recorder(spec, layers) as rec``); the hooks are
    removed and the model put back (device, train/eval mode) on exit, whatever happens.
    Each :meth:`record` call returns DataArrays like :func:`record`'s, with ``stimulus``
    coords ``start..stop-1`` (the stimuli's indices in the whole set).
    """

    def __init__(self, model: ModelSpec | nn.Module, layers: Layers, units="center", *,
                 batch_size: int = 64, device: str | torch.device | None = None):
        self.spec = as_spec(model)
        self.refs = resolve_layers(self.spec, layers)
        self.units = units
        self.batch_size = _positive(batch_size, "batch_size")
        self.device = device
        self._cm = None
        self._session: _Session | None = None

    def __enter__(self) -> Recorder:
        self._cm = _session(self.spec, self.refs, self.units, self.device)
        self._session = self._cm.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        cm, self._cm, self._session = self._cm, None, None
        cm.__exit__(*exc)

    @property
    def device_used(self) -> torch.device:
        return self._session.device if self._session else default_device(self.device)

    def record(self, stimuli, start: int = 0, stop: int | None = None, *,
               progress: Progress | None = None) -> dict[str, xr.DataArray]:
        """Responses of every hooked layer to stimuli ``start:stop`` (default all)."""
        if self._session is None:
            raise RuntimeError("use Recorder as a context manager: with Recorder(...) as rec")
        stimuli = as_stimulus_set(stimuli)
        stop = len(stimuli) if stop is None else min(int(stop), len(stimuli))
        buffers: dict[str, np.ndarray] = {}
        for lo, hi, arrays in self._session.batches(stimuli, start, stop, self.batch_size):
            for label, a in arrays.items():
                if label not in buffers:
                    buffers[label] = np.empty((stop - start, a.shape[1]), dtype=np.float32)
                buffers[label][lo - start:hi - start] = a
            if progress is not None:
                progress(hi - start)
        selectors = self._session.capture.selectors
        coords = stimulus_coords(stimuli.params.iloc[start:stop])
        return {ref.label: _dataarray(buffers[ref.label], selectors[ref.label], ref, stimuli,
                                      start, stop, self.spec, coords) for ref in self.refs}


def concat_chunks(parts: Sequence[xr.DataArray]) -> xr.DataArray:
    """Chunks of one layer's responses (in stimulus order) as one DataArray."""
    parts = list(parts)
    da = parts[0] if len(parts) == 1 else xr.concat(parts, dim="stimulus",
                                                    combine_attrs="drop_conflicts")
    for key in ("chunk", "chunk_start", "chunk_stop"):
        da.attrs.pop(key, None)
    return da


def restore_dtypes(da: xr.DataArray) -> xr.DataArray:
    """Undo what netCDF does to :func:`record`'s coords: int64 and object text back."""
    da = da.assign_coords({name: c.astype(np.int64) for name, c in da.coords.items()
                           if c.dtype.kind in "iu" and c.dtype != np.int64})
    da = da.assign_coords({name: c.astype(object) for name, c in da.coords.items()
                           if c.dtype.kind in "US"})
    if "layer_shape_chw" in da.attrs:
        da.attrs["layer_shape_chw"] = [int(v) for v in
                                       np.atleast_1d(da.attrs["layer_shape_chw"])]
    return da
