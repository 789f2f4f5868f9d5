"""Shared plumbing of the tuning analyses: labelled responses in, labelled results out.

Analyses accept ``xr.DataArray`` responses with dims ``("stimulus", "unit")`` (as
:func:`artiphys.recording.record` returns them) or plain ``(n_stimuli, n_units)`` arrays,
and return ``xr.Dataset`` results on the ``unit`` dim that keep every unit coordinate of
the input (``layer``, ``channel``, ``y``, ``x``...).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from artiphys.errors import ResponseError

# Bits of the ``flags`` variable of every per-unit result.
FLAG_CONSTANT = 1  # responses identical for every stimulus: correlations undefined
FLAG_NONFINITE = 2  # NaN or inf among the responses
FLAG_EXCLUDED = 4  # excluded by a user filter (e.g. kurtosis >= 42, Pospisil et al. 2018)
FLAG_ATTRS = {
    "flag_masks": [FLAG_CONSTANT, FLAG_NONFINITE, FLAG_EXCLUDED],
    "flag_meanings": "constant_response nonfinite_response excluded_by_filter",
    "long_name": "why a unit's result is NaN (bit mask; 0 = analysed)",
}


def as_responses(responses, *, name: str = "responses") -> xr.DataArray:
    """Return ``responses`` as a float ``DataArray`` with dims ``("stimulus", "unit")``.

    Plain 2-D arrays are read as ``(n_stimuli, n_units)``; 1-D arrays as one unit.
    """
    if isinstance(responses, xr.DataArray):
        da = responses
        if da.ndim == 1 and "stimulus" in da.dims:
            da = da.expand_dims(unit=[0], axis=1)
        if set(da.dims) != {"stimulus", "unit"}:
            raise ResponseError(
                f"{name} must have dims ('stimulus', 'unit'), got {da.dims}; stack the other "
                "dims into 'unit' first (e.g. da.stack(unit=['channel', 'y', 'x']))")
        da = da.transpose("stimulus", "unit")
    else:
        arr = np.asarray(responses)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise ResponseError(f"{name} must be 2-D (n_stimuli, n_units), got shape {arr.shape}")
        da = xr.DataArray(arr, dims=("stimulus", "unit"),
                          coords={"stimulus": np.arange(arr.shape[0]),
                                  "unit": np.arange(arr.shape[1])})
    if not np.issubdtype(da.dtype, np.number):
        raise ResponseError(f"{name} must be numeric, got dtype {da.dtype}")
    return da


def unit_coords(da: xr.DataArray) -> dict:
    """The coordinates of ``da`` that live on the ``unit`` dim only (MultiIndex-safe)."""
    if isinstance(da.indexes.get("unit"), pd.MultiIndex):
        da = da.reset_index("unit")
    out = {}
    for name, coord in da.coords.items():
        if coord.dims == ("unit",):
            out[name] = ("unit", coord.values)
    if "unit" not in out:
        out["unit"] = ("unit", np.arange(da.sizes["unit"]))
    return out


def unit_dataset(da: xr.DataArray, data_vars: dict, attrs: dict | None = None) -> xr.Dataset:
    """A Dataset on the ``unit`` dim of ``da`` with its unit coords and ``data_vars``."""
    return xr.Dataset(data_vars, coords=unit_coords(da), attrs=attrs or {})


def response_flags(values: np.ndarray, *, axis: int = 0) -> np.ndarray:
    """Per-unit flag bits for ``values`` ``(n_stimuli, n_units)``: constant / non-finite."""
    values = np.asarray(values, dtype=np.float64)
    flags = np.zeros(values.shape[1 - axis], dtype=np.int8)
    finite = np.isfinite(values).all(axis=axis)
    flags[~finite] |= FLAG_NONFINITE
    if values.shape[axis] == 0:
        return flags | FLAG_CONSTANT
    clean = np.where(np.isfinite(values), values, 0.0)
    spread = clean.max(axis=axis) - clean.min(axis=axis)
    scale = np.abs(clean).max(axis=axis)
    const = ~(spread > 1e-6 * np.maximum(scale, np.finfo(np.float32).tiny))
    flags[const & finite] |= FLAG_CONSTANT
    return flags
