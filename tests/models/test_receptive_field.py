"""Receptive-field geometry: analytic numbers checked against the gradient support of a unit.

The exact empirical measure (``gradient_support_px(..., weights="positive")``) runs a copy of
the network with positive weights and average-pools in place of max-pools, so the bounding
box of the non-zero input gradient of one unit is exactly the set of pixels it depends on.
Units are chosen so their field lies inside the image; the box must then equal the analytic
RF (size and centre). On the model as it is (``weights="model"``) the box pooled over random
inputs lies inside the analytic one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from artiphys.errors import UnknownLayerError, UnknownUnitError
from artiphys.models.layers import default_aliases
from artiphys.models.receptive_field import (
    GeometryError,
    RFGeometry,
    gradient_support_px,
    layer_geometry,
    unit_center_px,
)
from artiphys.models.spec import ModelSpec


def _spec(name: str, **kwargs) -> ModelSpec:
    torch.manual_seed(0)
    module = getattr(torchvision.models, name)(**kwargs).eval()
    return ModelSpec(name, module, aliases=default_aliases(module), condition="untrained")


@pytest.fixture(scope="module")
def alexnet():
    return _spec("alexnet")


@pytest.fixture(scope="module")
def vgg19():
    return _spec("vgg19")


@pytest.fixture(scope="module")
def squeezenet():
    return _spec("squeezenet1_0")


@pytest.fixture(scope="module")
def resnet18():
    return _spec("resnet18")


@pytest.fixture(scope="module")
def googlenet():
    return _spec("googlenet", init_weights=False, aux_logits=False)


def inner_unit(geom: RFGeometry, size_px: int, channel: int = 0) -> tuple[int, int]:
    """The unit whose RF centre is closest to the image centre."""
    _, h, w = geom.out_shape
    offset = np.asarray(geom.offset_px, dtype=float)
    oy, ox = offset[channel] if offset.ndim == 2 else offset
    s = geom.stride_px
    y = int(np.clip(round(((size_px - 1) / 2 - oy) / s), 0, h - 1))
    x = int(np.clip(round(((size_px - 1) / 2 - ox) / s), 0, w - 1))
    return y, x


def check_against_gradient(spec, layer, size_px, channel=0) -> RFGeometry:
    """Analytic RF of an interior unit == bounding box of its input gradient."""
    geom = layer_geometry(spec, layer, input_size_px=size_px)
    y, x = inner_unit(geom, size_px, channel)
    analytic = geom.unit_bounds_px(y, x, channel)
    y0, y1, x0, x1 = analytic
    assert y0 >= 0 and x0 >= 0 and y1 < size_px and x1 < size_px, (
        f"test set-up: {layer} unit RF {analytic} not inside a {size_px}px image")
    measured = gradient_support_px(spec, layer, channel, y, x, input_size_px=size_px,
                                   weights="positive")
    assert measured == analytic, f"{layer} ch{channel}: gradient {measured} != analytic {analytic}"
    cy, cx = unit_center_px(geom, y, x, channel)
    assert ((measured[0] + measured[1]) / 2, (measured[2] + measured[3]) / 2) == (cy, cx)
    return geom


def rf_of(geom: RFGeometry, channel: int = 0) -> int:
    rf = geom.rf_size_px
    return int(rf[channel]) if isinstance(rf, np.ndarray) else int(rf)


# ---- AlexNet: Pospisil, Pasupathy & Bair 2018 ---------------------------------------------

ALEXNET_RF = [("conv1", 11, 4), ("relu1", 11, 4), ("pool1", 19, 8), ("conv2", 51, 8),
              ("pool2", 67, 16), ("conv3", 99, 16), ("conv4", 131, 16), ("conv5", 163, 16),
              ("pool5", 195, 32)]


@pytest.mark.parametrize("layer,rf,stride", ALEXNET_RF)
def test_alexnet_rf_matches_paper_and_gradient(alexnet, layer, rf, stride):
    geom = check_against_gradient(alexnet, layer, size_px=259)
    assert geom.rf_size_px == rf
    assert geom.stride_px == stride
    assert geom.is_spatial


def test_alexnet_border_unit_is_clipped_by_padding(alexnet):
    # conv2's unit (0, 0) starts left of the image (conv1 pad 2, conv2 pad 2): offset < RF/2.
    geom = layer_geometry(alexnet, "conv2", input_size_px=227)
    bounds = geom.unit_bounds_px(0, 0)
    assert bounds[0] == -18 and bounds[1] == 32  # 51 px centred on 7
    assert unit_center_px(geom, 0, 0) == (7.0, 7.0)
    measured = gradient_support_px(alexnet, "conv2", 5, 0, 0, input_size_px=227,
                                   weights="positive")
    assert measured == (0, 32, 0, 32)
    measured = gradient_support_px(alexnet, "conv2", 5, 0, 3, input_size_px=227,
                                   weights="positive")
    assert measured == (0, 32, 6, 56)


def test_alexnet_fc_layers_are_not_spatial(alexnet):
    geom = layer_geometry(alexnet, "fc6", input_size_px=227)
    assert geom.out_shape == (4096,) and not geom.is_spatial and geom.stride_px is None
    # every fc6 unit sees the whole extent of pool5's 6x6 map: 195 + 32 * 5 px
    assert geom.rf_size_px == 195 + 32 * 5
    assert layer_geometry(alexnet, "pool5", input_size_px=227).out_shape == (256, 6, 6)


def test_alexnet_centre_unit_formula(alexnet):
    geom = layer_geometry(alexnet, "conv1", input_size_px=227)
    assert geom.out_shape == (64, 56, 56)
    # conv1: k=11, s=4, padding 2 -> unit 0 sees -2..8, centre 3
    assert geom.offset_px == (3.0, 3.0)
    h = geom.out_shape[1]
    assert unit_center_px(geom, int(h / 2), int(h / 2)) == (3 + 4 * 28, 3 + 4 * 28)


# ---- VGG19 ------------------------------------------------------------------------------

@pytest.mark.parametrize("layer,rf,stride,size", [
    ("conv1_2", 5, 1, 32), ("pool1", 6, 2, 32), ("conv2_2", 14, 2, 48), ("pool2", 16, 4, 48),
    ("conv3_4", 48, 4, 80), ("pool3", 52, 8, 80), ("conv4_4", 116, 8, 144),
])
def test_vgg19_rf(vgg19, layer, rf, stride, size):
    geom = check_against_gradient(vgg19, layer, size_px=size)
    assert (geom.rf_size_px, geom.stride_px) == (rf, stride)


@pytest.mark.slow
@pytest.mark.parametrize("layer,rf,stride", [("conv5_4", 252, 16), ("pool5", 268, 32)])
def test_vgg19_rf_deep(vgg19, layer, rf, stride):
    geom = check_against_gradient(vgg19, layer, size_px=300)
    assert (geom.rf_size_px, geom.stride_px) == (rf, stride)


# ---- SqueezeNet 1.0: fire modules concatenate 1x1 and 3x3 expands -------------------------

@pytest.mark.parametrize("layer,rf_1x1,rf_3x3,split,size", [
    ("features.3", 11, 19, 64, 64),      # fire2
    ("features.5", 27, 35, 128, 64),     # fire4
    ("features.10", 91, 107, 256, 160),  # fire8
])
def test_squeezenet_fire_per_channel_rf(squeezenet, layer, rf_1x1, rf_3x3, split, size):
    geom = layer_geometry(squeezenet, layer, input_size_px=size)
    assert isinstance(geom.rf_size_px, np.ndarray)
    assert set(geom.rf_size_px[:split]) == {rf_1x1}
    assert set(geom.rf_size_px[split:]) == {rf_3x3}
    check_against_gradient(squeezenet, layer, size, channel=0)
    check_against_gradient(squeezenet, layer, size, channel=split)


def test_squeezenet_pool_after_fire_keeps_channel_rfs(squeezenet):
    geom = check_against_gradient(squeezenet, "features.6", 96, channel=200)
    assert rf_of(geom, 0) == 35 and rf_of(geom, 200) == 43 and geom.stride_px == 8


@pytest.mark.slow
def test_squeezenet_fire9_and_conv10(squeezenet):
    geom = check_against_gradient(squeezenet, "features.12", 224, channel=300)
    assert rf_of(geom, 0) == 123 and rf_of(geom, 300) == 155
    check_against_gradient(squeezenet, "features.12", 224, channel=0)
    assert layer_geometry(squeezenet, "classifier.1").rf_size_px == 155


# ---- ResNet18: residual additions ------------------------------------------------------

@pytest.mark.parametrize("layer,rf,stride,size", [
    ("maxpool", 11, 4, 48), ("layer1.0", 27, 4, 64), ("layer1.1", 43, 4, 80),
    ("layer2.0", 67, 8, 112), ("layer2.0.downsample.0", 43, 8, 112),
])
def test_resnet18_rf(resnet18, layer, rf, stride, size):
    geom = check_against_gradient(resnet18, layer, size_px=size)
    assert (geom.rf_size_px, geom.stride_px) == (rf, stride)


@pytest.mark.slow
def test_resnet18_layer3(resnet18):
    geom = check_against_gradient(resnet18, "layer3.0", size_px=224)
    assert (geom.rf_size_px, geom.stride_px) == (147, 16)


def test_module_run_twice_means_its_last_call(resnet18):
    # BasicBlock applies self.relu twice: after conv1 (RF 19) and after the addition (27)
    assert layer_geometry(resnet18, "layer1.0.relu").rf_size_px == 27
    assert layer_geometry(resnet18, "layer1.0.relu@1").rf_size_px == 27
    assert layer_geometry(resnet18, "layer1.0.relu@0").rf_size_px == 19
    with pytest.raises(UnknownLayerError, match="@0..@1"):
        layer_geometry(resnet18, "layer1.0.relu@2")
    # the sum before the last relu has the block's geometry
    linear = check_against_gradient(resnet18, "layer1.0:linear", size_px=64)
    assert (linear.rf_size_px, linear.stride_px) == (27, 4)


def test_real_model_support_lies_inside_the_analytic_box(alexnet, resnet18):
    """``weights="model"``: the pooled support of the untouched model; for conv stacks it
    reaches the analytic box (and never beyond it)."""
    for spec, layer, size in [(alexnet, "conv2", 99), (resnet18, "layer1.0", 64)]:
        geom = layer_geometry(spec, layer, input_size_px=size)
        y, x = inner_unit(geom, size)
        y0, y1, x0, x1 = geom.unit_bounds_px(y, x)
        box = gradient_support_px(spec, layer, None, y, x, input_size_px=size, n_images=8)
        assert y0 <= box[0] <= box[1] <= y1 and x0 <= box[2] <= box[3] <= x1
        assert box[1] - box[0] >= 0.8 * (y1 - y0)   # most of the field is reached
    tiny = nn.Sequential(nn.Conv2d(3, 4, 5, padding=2), nn.ReLU(), nn.Conv2d(4, 2, 3)).eval()
    geom = layer_geometry(tiny, "2", input_size_px=20)
    assert gradient_support_px(tiny, "2", None, 5, 6, input_size_px=20, n_images=8) == \
        geom.unit_bounds_px(5, 6)
    with pytest.raises(GeometryError, match="weights"):
        gradient_support_px(tiny, "2", weights="unit")


# ---- GoogLeNet: inception concatenation ------------------------------------------------

def test_googlenet_inception_per_channel_rf(googlenet):
    geom = layer_geometry(googlenet, "inception3a", input_size_px=96)
    rf = geom.rf_size_px
    assert geom.out_shape[0] == 256 and geom.stride_px == 8
    assert set(rf[:64]) == {27}  # 1x1 branch
    assert set(rf[64:]) == {43}  # 1x1->3x3, 1x1->3x3 (torchvision's "5x5"), pool3->1x1
    for channel in (0, 64, 200, 255):
        check_against_gradient(googlenet, "inception3a", 96, channel=channel)


@pytest.mark.slow
def test_googlenet_inception4a(googlenet):
    geom = layer_geometry(googlenet, "inception4a", input_size_px=160)
    assert sorted(set(geom.rf_size_px.tolist())) == [75, 107]
    for channel in (0, 300):
        check_against_gradient(googlenet, "inception4a", 160, channel=channel)


@pytest.mark.slow
def test_inception_v3_functional_pools_and_non_square_kernels():
    spec = _spec("inception_v3", init_weights=False, aux_logits=False)
    # Mixed_6a concatenates a 3x3/2 conv, a 3x3-3x3-3x3/2 tower and an F.max_pool2d branch
    geom = layer_geometry(spec, "Mixed_6a", input_size_px=299)
    assert geom.stride_px == 16
    assert (rf_of(geom, 0), rf_of(geom, 384), rf_of(geom, 480)) == (143, 159, 111)
    check_against_gradient(spec, "Mixed_6a", 299, channel=480)  # the max-pool branch
    # a 1x7 conv after a 1x1 that mixes all of Mixed_6a (159 px): 159 tall, 159 + 16 * 6 wide
    geom = check_against_gradient(spec, "Mixed_6b.branch7x7_2.conv", 299, channel=0)
    assert geom.rf_size_px == (159, 159 + 16 * 6)


def test_convnext_channels_last_blocks():
    spec = _spec("convnext_tiny")
    # stem 4x4/4 -> 4 px; each block's 7x7 depthwise conv adds 4 * 6 px
    for layer, rf in [("features.0.0", 4), ("features.1.0", 28), ("features.1.1", 52)]:
        geom = check_against_gradient(spec, layer, size_px=80, channel=5)
        assert (geom.rf_size_px, geom.stride_px) == (rf, 4)
    # inside the block the MLP runs on (H, W, C) tensors
    geom = check_against_gradient(spec, "features.1.0.block.3", size_px=64, channel=7)
    assert geom.channels_last and geom.out_shape == (16, 16, 384) and geom.rf_size_px == 28


# ---- hand-built networks and properties -------------------------------------------------

def test_known_answer_tiny_net():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(2, 2, 5, stride=2, dilation=2)).eval()
    geom = layer_geometry(net, "3", input_size_px=64)
    # conv 3 -> 3; pool 2 -> 3 + 1*1 = 4 (stride 2); conv 5 dil 2 -> 4 + 2*2*4 = 20 (stride 4)
    assert (geom.rf_size_px, geom.stride_px) == (20, 4)
    # unit 0: conv1 sees -1..1; pool -1..2; conv2 -1..2 + 2*8 -> -1..18
    assert geom.unit_bounds_px(0, 0) == (-1, 18, -1, 18)
    check_against_gradient(net, "3", 64)


def test_non_square_kernels_and_grouped_convs():
    net = nn.Sequential(nn.Conv2d(4, 4, (1, 7), padding=(0, 3), groups=4),
                        nn.Conv2d(4, 8, (5, 1), padding=(2, 0))).eval()
    geom = check_against_gradient(net, "1", 32)
    assert geom.rf_size_px == (5, 7)


class _TwoBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 2, 1)
        self.b = nn.Conv2d(3, 3, 5, padding=2)
        self.mix = nn.Conv2d(5, 1, 1)

    def forward(self, x):
        return self.mix(torch.cat([self.a(x), self.b(x)], 1))


def test_concat_then_mix_takes_the_union():
    net = _TwoBranch().eval()
    cat = layer_geometry(net, "a", input_size_px=16)
    assert cat.rf_size_px == 1
    mix = check_against_gradient(net, "mix", 16)
    assert mix.rf_size_px == 5


@settings(max_examples=25, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(["conv", "max", "avg"]), st.integers(1, 5),
                          st.integers(1, 3), st.integers(0, 2), st.integers(1, 2)),
                min_size=1, max_size=4))
def test_random_stacks_compose(layers):
    """RF of random conv/pool stacks: r' = r + S*d*(k-1), S' = S*s; matches the gradient."""
    modules, r, s_cum = [], 1, 1
    for kind, k, s, p, d in layers:
        p = min(p, k // 2)
        if kind == "conv":
            modules.append(nn.Conv2d(2, 2, k, stride=s, padding=p, dilation=d))
        elif kind == "max":  # undilated, so the empirical copy can average-pool it
            d = 1
            modules.append(nn.MaxPool2d(k, s, p))
        else:
            d = 1
            modules.append(nn.AvgPool2d(k, s, p))
        r += s_cum * d * (k - 1)
        s_cum *= s
    net = nn.Sequential(nn.Conv2d(3, 2, 1), *modules).eval()
    size = 2 * r + 4 * s_cum + 8
    geom = check_against_gradient(net, str(len(modules)), size)
    assert (geom.rf_size_px, geom.stride_px) == (r, s_cum)


# ---- errors and hygiene -------------------------------------------------------------------

def test_unknown_layer_lists_close_matches(alexnet):
    with pytest.raises(UnknownLayerError, match="conv5"):
        layer_geometry(alexnet, "conv6")


def test_unit_outside_map_is_an_error(alexnet):
    geom = layer_geometry(alexnet, "pool5", input_size_px=227)
    with pytest.raises(UnknownUnitError):
        unit_center_px(geom, 6, 0)
    with pytest.raises(UnknownUnitError):
        geom.unit_bounds_px(0, 0, channel=256)


def test_untraceable_model_fails_clearly():
    class DataDependent(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 1, 3)

        def forward(self, x):
            return self.conv(x) if x.sum() > 0 else x

    with pytest.raises(GeometryError, match="trace"):
        layer_geometry(DataDependent(), "conv")


def test_no_hooks_left_and_model_untouched(alexnet):
    before = {k: v.clone() for k, v in alexnet.module.state_dict().items()}
    layer_geometry(alexnet, "conv2")
    gradient_support_px(alexnet, "conv2", input_size_px=67)
    with pytest.raises(UnknownLayerError):
        gradient_support_px(alexnet, "nope")
    for m in alexnet.module.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
    assert isinstance(alexnet.module.features[2], nn.MaxPool2d)
    after = alexnet.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.requires_grad for p in alexnet.module.parameters())


def test_layer_given_as_module_or_container(alexnet):
    by_module = layer_geometry(alexnet, alexnet.module.features[3], input_size_px=227)
    assert by_module.rf_size_px == 51
    # the `features` Sequential returns pool5's output
    assert layer_geometry(alexnet, "features", input_size_px=227).rf_size_px == 195


def test_table_and_layer_geometry_agree(resnet18):
    from artiphys.models.layers import list_layers

    for row in list_layers(resnet18, input_size_px=64):
        if row.call is None:
            geom = layer_geometry(resnet18, row.name, input_size_px=64)
            assert np.array_equal(np.asarray(geom.rf_size_px), np.asarray(row.rf_size_px))
            assert geom.stride_px == row.stride_px and geom.out_shape == row.shape


def test_equivariant_stride_known_answers():
    from artiphys.models.receptive_field import equivariant_stride

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(),
                        nn.Conv2d(4, 4, 3, stride=2), nn.AdaptiveAvgPool2d(1)).eval()
    assert equivariant_stride(net, "2", axis="x", input_size_px=32) == 4
    assert equivariant_stride(net, "1", axis="y", input_size_px=32) == 2
    assert equivariant_stride(net, "3", input_size_px=32) is None  # global pooling
    with pytest.raises(GeometryError, match="axis"):
        equivariant_stride(net, "2", axis="z", input_size_px=32)
