"""recording/record.py: record() known answers, coords, early stop, in-place ops, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from _recording_fakes import PLAIN, IdentityNet, tiny_spec
from torch import nn

from artiphys.errors import ResponseError, StimulusError, UnknownLayerError, UnknownUnitError
from artiphys.models.spec import ModelSpec, Preprocessing, as_spec
from artiphys.recording import hooks_left, record
from artiphys.stimuli.base import StimulusSet
from artiphys.stimuli.registry import make_stimuli


def images(n=5, size=16, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def alexnet():
    torch.manual_seed(0)
    return ModelSpec("alexnet", torchvision.models.alexnet().eval(), Preprocessing(227))


# ---- known answers ---------------------------------------------------------------------
def test_identity_net_gives_back_the_pixels():
    """A 1x1 identity conv's unit (c, y, x) answers with pixel (c, y, x) of the image."""
    spec = as_spec(IdentityNet(), PLAIN)
    imgs = images()
    out = record(spec, imgs, "conv", units="all", batch_size=2)["conv"]
    assert out.dims == ("stimulus", "unit") and out.shape == (5, 3 * 16 * 16)
    expected = imgs[:, out.channel.values, out.y.values, out.x.values].numpy()
    np.testing.assert_array_equal(out.values, expected)
    centre = record(spec, imgs, "conv")["conv"]
    np.testing.assert_array_equal(centre.values, imgs[:, :, 8, 8].numpy())
    assert list(centre.y.values) == [8] * 3 and list(centre.x.values) == [8] * 3


def test_explicit_units_and_per_layer_mapping():
    spec = as_spec(IdentityNet(), PLAIN)
    imgs = images()
    out = record(spec, imgs, ["conv", "pool"], units={"conv": [(2, 0, 15)], "pool": [1]})
    np.testing.assert_array_equal(out["conv"].values[:, 0], imgs[:, 2, 0, 15].numpy())
    np.testing.assert_allclose(out["pool"].values[:, 0], imgs[:, 1].mean((1, 2)).numpy(),
                               rtol=1e-6)
    with pytest.raises(UnknownUnitError, match="'flat'"):
        record(spec, imgs, "conv", units={"conv": [0], "flat": [0]})


def test_images_are_resized_to_the_input_size():
    spec = as_spec(IdentityNet(), Preprocessing(8, (0, 0, 0), (1, 1, 1)))
    out = record(spec, torch.full((2, 3, 32, 32), 0.25), "conv", units="all")["conv"]
    assert out.shape == (2, 3 * 8 * 8)
    np.testing.assert_allclose(out.values, 0.25, rtol=1e-6)


# ---- labels ------------------------------------------------------------------------------
def test_coords_carry_stimulus_params_and_unit_labels():
    params = pd.DataFrame({"orientation_deg": [0.0, 45.0, 90.0], "shape": ["a", "b", "c"],
                           "x": [1, 2, 3], "flag": [True, False, True]})
    stim = StimulusSet.from_tensor(images(3), params, name="p")
    spec = tiny_spec()
    spec.aliases = {"conv1": "features.0"}
    out = record(spec, stim, ["conv1", "classifier.1"])
    conv = out["conv1"]
    assert list(out) == ["conv1", "classifier.1"]
    assert list(conv.orientation_deg.values) == [0.0, 45.0, 90.0]
    assert list(conv["shape"].values) == ["a", "b", "c"]  # .shape is the array shape
    assert list(conv.stimulus_x.values) == [1, 2, 3]  # 'x' is a unit coord
    assert set(conv.layer.values) == {"conv1"} and conv.attrs["layer_path"] == "features.0"
    fc = out["classifier.1"]
    assert fc.shape == (3, 5) and set(fc.y.values) == {0}
    assert fc.sel(stimulus=fc["shape"] == "b").shape == (1, 5)


# ---- hot path ----------------------------------------------------------------------------
def test_inplace_relu_does_not_change_recorded_conv1(alexnet):
    """features.1 is ReLU(inplace=True): conv1 must still be recorded before it."""
    assert alexnet.module.features[1].inplace
    stim = make_stimuli("noise", n=3, size_px=227)
    out = record(alexnet, stim, ["features.0", "features.1"])
    conv, relu = out["features.0"].values, out["features.1"].values
    assert (conv < 0).any()
    np.testing.assert_array_equal(relu, np.maximum(conv, 0))


def test_forward_stops_after_the_deepest_requested_layer():
    spec = tiny_spec()
    calls = []
    spec.module.classifier.register_forward_pre_hook(lambda m, i: calls.append(1))
    out = record(spec, images(6), "features.0", batch_size=2)
    assert out["features.0"].shape == (6, 4)
    assert len(calls) == 1  # only the first batch, which learns the firing order, runs on


def test_batch_size_does_not_change_responses():
    spec = tiny_spec()
    a = record(spec, images(7), "classifier.1", batch_size=7)["classifier.1"]
    b = record(spec, images(7), "classifier.1", batch_size=3)["classifier.1"]
    np.testing.assert_allclose(a.values, b.values, rtol=1e-5, atol=1e-6)


class SharedReLU(nn.Module):
    """One ReLU module called twice, on maps of different channel counts."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 2, 1)
        self.b = nn.Conv2d(2, 6, 1)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.b(self.relu(self.a(x))))


def test_module_called_twice_is_recorded_at_its_last_call():
    spec = as_spec(SharedReLU(), PLAIN)
    imgs = images(4)
    out = record(spec, imgs, "relu", units=[5], batch_size=2)["relu"]
    with torch.no_grad():
        m = spec.module
        expected = m.relu(m.b(m.relu(m.a(imgs))))[:, 5, 8, 8]
    np.testing.assert_allclose(out.values[:, 0], expected.numpy(), rtol=1e-6)


def test_model_device_and_mode_are_restored():
    spec = tiny_spec()
    spec.module.train()
    record(spec, images(2), "features.0", device="cpu")
    assert spec.module.training


# ---- errors ------------------------------------------------------------------------------
class NaNForWhite(nn.Module):
    """Its layer ``conv`` gives NaN for all-white images."""

    class Gate(nn.Conv2d):
        def forward(self, x):
            white = x.amin((1, 2, 3)).view(-1, 1, 1, 1) == 1
            return torch.where(white, float("nan"), super().forward(x))

    def __init__(self):
        super().__init__()
        self.conv = self.Gate(3, 2, 3)

    def forward(self, x):
        return self.conv(x)


def test_nan_names_layer_and_stimulus():
    spec = as_spec(NaNForWhite(), PLAIN)
    imgs = images(5)
    imgs[3] = 1.0
    with pytest.raises(ResponseError, match=r"layer 'conv'.*stimulus 3 \(index=3"):
        record(spec, imgs, "conv", batch_size=2)


def test_layer_not_in_forward():
    spec = tiny_spec()
    spec.module.unused = nn.ReLU()
    with pytest.raises(ResponseError, match="'unused' did not run"):
        record(spec, images(2), ["features.0", "unused"])


def test_unknown_layer_lists_close_matches():
    with pytest.raises(UnknownLayerError, match="Did you mean: .*features.0"):
        record(tiny_spec(), images(2), "features.O")


@pytest.mark.parametrize("bad", [torch.rand(2, 4, 16, 16), torch.rand(2, 3, 16, 12),
                                 torch.rand(3, 16, 16, 3), torch.rand(2, 3, 16, 16) * 255,
                                 torch.rand(0, 3, 16, 16)])
def test_wrong_user_images(bad):
    with pytest.raises(StimulusError):
        record(tiny_spec(), bad, "features.0")


def test_input_too_small_for_the_model(alexnet):
    with pytest.raises(ResponseError, match="input size"):
        record(alexnet.with_input_size(32), images(1, 32), "classifier.6")
    assert hooks_left(alexnet.module) == {}


@pytest.mark.parametrize("size, order", [(16, "RGB"), (20, "RGB"), (16, "BGR")])
def test_input_is_exactly_to_model_input(size, order):
    """The CPU fast path (normalising into a reused buffer) is bit-for-bit to_model_input."""
    from dataclasses import replace

    from artiphys.stimuli.base import to_model_input

    spec = replace(tiny_spec(), preprocessing=Preprocessing(16, channel_order=order))
    imgs = images(6, size)
    got = record(spec, imgs, "classifier.1", batch_size=6)["classifier.1"].values
    with torch.inference_mode():
        expected = spec.module(to_model_input(imgs, spec.preprocessing)).numpy()
    np.testing.assert_array_equal(got, expected)
