"""Multi-layer TI sweeps: one set of passes for several layers == one sweep per layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from artiphys.models.spec import ModelSpec, Preprocessing
from artiphys.tuning.ti import position_sweep, sweep_responses
from artiphys.tuning.ti_layers import _moved, sweep_center_px, sweep_layers

from .test_ti import _shapes, _spec


def _per_layer(spec, imgs, sweeps, pos, axis, method="auto"):
    """Each layer swept on its own, with the images moved onto its centre unit's RF."""
    fill = imgs[:, :, :1, :1]
    return {label: sweep_responses(spec, _moved(imgs, ds.attrs["shift_px"], fill), label, pos,
                                   axis=axis, method=method, device="cpu", check_rf=False)
            for label, ds in sweeps.items()}


def _assert_same(multi, single, atol):
    for label, ds in multi.items():
        one = single[label]
        scale = max(float(np.abs(one.responses).max()), 1.0)
        np.testing.assert_allclose(ds.responses.values, one.responses.values, atol=atol * scale,
                                   rtol=0, err_msg=label)
        np.testing.assert_allclose(ds.blank.values, one.blank.values, atol=atol * scale, rtol=0)
        np.testing.assert_array_equal(ds.rf_start_px.values, one.rf_start_px.values)
        np.testing.assert_array_equal(ds.rf_end_px.values, one.rf_end_px.values)
        assert ds.attrs["stimulus_extent_px"] == one.attrs["stimulus_extent_px"]
        assert ds.y.values.tolist() == one.y.values.tolist() if "y" in ds.coords else True


@pytest.mark.parametrize("axis", ["x", "y"])
def test_one_sweep_of_several_layers_equals_a_brute_force_sweep_of_each(axis):
    spec, imgs = _spec(), _shapes()
    pos = position_sweep(2, 12)
    layers = ["features.0", "features.2", "features.4", "pool", "fc"]
    multi = sweep_layers(spec, imgs, layers, pos, axis=axis, device="cpu")
    assert [multi[la].attrs["method"] for la in layers] == ["equivariant"] * 3 + ["brute"] * 2
    assert all(multi[la].attrs["self_check"] == "passed" for la in layers[:3])
    # features.2/4 (stride 4) and features.0 (stride 2) read the same phase passes;
    # the shapes sit 2 px off their centre units' RF centres, so they are moved
    assert multi["features.0"].attrs["shift_px"] == [0, 0]
    assert multi["features.4"].attrs["shift_px"] == [2, 2]
    _assert_same(multi, _per_layer(spec, imgs, multi, pos, axis, method="brute"), 1e-5)
    assert float(np.abs(multi["features.4"].responses).max()) > 0.1  # not vacuous
    for m in spec.module.modules():
        assert not m._forward_hooks


def test_the_deepest_strides_phases_serve_every_layer_and_every_pass_is_counted():
    spec, imgs = _spec(), _shapes()
    pos = position_sweep(2, 12)
    layers = ["features.0", "features.2", "features.4"]
    multi = sweep_layers(spec, imgs, layers, pos, device="cpu", check_rf=False)
    # stride 4, 2 px steps: phases {0, 2} on one canvas for all three layers
    costs = {ds.attrs["sweep_image_equivalents"] for ds in multi.values()}
    assert len(costs) == 1
    passes = 2 * len(imgs)  # two phases of every shape
    canvas = np.ptp(multi["features.4"].attrs["canvas_px"]) * np.ptp(
        multi["features.4"].attrs["canvas_across_px"]) / 64**2
    checks = 2 * (1 + 2.5 + 2 * 2.5)  # per axis: 64 px, 64 + 96 px, that shifted by 2 and 4
    assert costs.pop() == pytest.approx(passes * canvas + 1 + 1 + 2 * 2 * 3 + checks, rel=1e-6)


def test_a_layer_whose_rf_reaches_the_padding_is_swept_by_brute_force():
    """Zero padding beyond the border is part of its response; no canvas reproduces it."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 9, padding=4), nn.ReLU(),
                        nn.Conv2d(4, 4, 9, stride=2, padding=4), nn.ReLU(),
                        nn.Conv2d(4, 4, 9, padding=4))
    spec = ModelSpec("pad", net.eval(), Preprocessing(32, (0.5,) * 3, (0.25,) * 3))
    imgs = torch.zeros(4, 3, 32, 32)
    imgs[:, :, 12:20, 12:20] = (torch.rand(4, 1, 8, 8) > 0.5).float()
    pos = position_sweep(2, 8)
    multi = sweep_layers(spec, imgs, ["0", "4"], pos, device="cpu")
    assert multi["0"].attrs["method"] == "equivariant"
    assert multi["4"].attrs["method"] == "brute" and "border" in multi["4"].attrs["brute_reason"]
    _assert_same(multi, _per_layer(spec, imgs, multi, pos, "x", method="brute"), 1e-5)
    # the single-layer sweep's self-check finds the same and falls back to brute force
    one = sweep_responses(spec, imgs, "4", pos, method="equivariant", device="cpu")
    assert one.attrs["self_check"] == "failed; brute force"


def test_shapes_drawn_at_the_sweep_centre_sit_on_every_layers_rf_centre():
    from artiphys.models.receptive_field import layer_geometry, unit_center_px

    spec = _spec()
    layers = ["features.0", "features.2", "features.4", "fc"]
    cy, cx = sweep_center_px(spec, layers)
    geo = layer_geometry(spec, "features.4")
    assert (cy, cx) == unit_center_px(geo, geo.chw[1] // 2, geo.chw[2] // 2)
    imgs = torch.zeros(3, 3, 64, 64)
    imgs[:, :, int(cy) - 4:int(cy) + 5, int(cx) - 4:int(cx) + 5] = 1.0
    multi = sweep_layers(spec, imgs, layers, position_sweep(2, 6), center_px=(cy, cx),
                         device="cpu", check_rf=False)
    assert all(ds.attrs["stimulus_offset_px"] == [0.0, 0.0] for ds in multi.values())


@pytest.mark.slow
def test_alexnet_conv1_to_fc6_in_one_sweep_equals_the_per_layer_sweeps():
    from torchvision.models import alexnet

    torch.manual_seed(0)
    spec = ModelSpec("alexnet-untrained", alexnet().eval(), Preprocessing(227),
                     condition="untrained")
    imgs = _shapes(n=2, size=227, width=32)
    pos = position_sweep(2, 10)  # 11 positions, 11 of pool5's 16 phases
    layers = ["features.0", "features.2", "features.3", "features.5", "features.6",
              "features.8", "features.10", "features.12", "classifier.1"]
    multi = sweep_layers(spec, imgs, layers, pos, device="cpu", check_rf=False)
    assert [multi[la].attrs["method"] for la in layers] == ["equivariant"] * 8 + ["brute"]
    _assert_same(multi, _per_layer(spec, imgs, multi, pos, "x"), 1e-4)


@pytest.mark.slow
def test_squeezenet_fire_layers_in_one_sweep_equal_the_per_layer_sweeps():
    from torchvision.models import squeezenet1_0

    torch.manual_seed(0)
    spec = ModelSpec("squeezenet-untrained", squeezenet1_0().eval(), Preprocessing(224),
                     condition="untrained")
    imgs = _shapes(n=2, size=224, width=24)
    pos = position_sweep(2, 12)
    layers = ["features.3", "features.7.expand3x3", "features.7", "features.12"]
    multi = sweep_layers(spec, imgs, layers, pos, axis="y", device="cpu", check_rf=False)
    assert all(multi[la].attrs["method"] == "equivariant" for la in layers)
    _assert_same(multi, _per_layer(spec, imgs, multi, pos, "y"), 1e-4)
