"""Shared plumbing: stacking layers for one analysis call and splitting the result."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from artiphys.errors import ResponseError
from artiphys.tuning._arrays import FLAG_CONSTANT, response_flags, split_layers, stack_layers
from artiphys.tuning.sparsity import sparsity


def test_stack_then_split_keeps_each_layers_units():
    rng = np.random.default_rng(0)
    a = xr.DataArray(rng.random((20, 3)), dims=("stimulus", "unit"),
                     coords={"layer": ("unit", ["conv2"] * 3), "channel": ("unit", [0, 1, 2])})
    b = xr.DataArray(rng.random((20, 2)), dims=("stimulus", "unit"),
                     coords={"channel": ("unit", [5, 6])})
    stacked = stack_layers({"conv2": a, "fc7": b})
    assert stacked.layer.values.tolist() == ["conv2"] * 3 + ["fc7"] * 2
    parts = split_layers(sparsity(stacked))
    assert list(parts) == ["conv2", "fc7"] and parts["fc7"].channel.values.tolist() == [5, 6]
    np.testing.assert_allclose(parts["conv2"].kurtosis, sparsity(a).kurtosis)
    with pytest.raises(ResponseError, match="same stimuli"):
        stack_layers({"a": a, "b": b.isel(stimulus=slice(0, 5))})


def test_response_flags_constant_and_nonfinite():
    x = np.array([[1.0, 2.0, np.nan], [1.0, 3.0, 1.0]])
    assert response_flags(x).tolist() == [FLAG_CONSTANT, 0, 2]
