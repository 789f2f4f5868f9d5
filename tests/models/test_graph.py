"""Graph walking: a layer's own convolution, what feeds it and the window a unit reads."""

from __future__ import annotations

import torch

from artiphys.models.analytic import CONTRAST_PREPROCESSING, hubel_wiesel_cell
from artiphys.models.graph import (
    OwnConv,
    feature_window,
    own_conv,
    pre_rectifier_layer,
    preceding_layer,
)
from artiphys.models.spec import as_spec
from artiphys.recording.hooks import forward_to_layers


def test_preceding_layer_and_window():
    from artiphys.models.registry import load_model

    net = load_model("squeezenet1_0", pretrained=False)
    feeds = preceding_layer(net, "features.3.expand3x3_activation")
    assert feeds == "features.3.squeeze_activation"
    assert preceding_layer(net, "features.4.squeeze_activation") == "features.3"
    assert preceding_layer(net, "features.0") is None  # reads the image: pixel distance
    rows, cols = feature_window(net, "features.3.expand3x3_activation", (1, 1))
    assert (rows.start, rows.stop) == (0, 3) and (cols.start, cols.stop) == (0, 3)
    rows, _ = feature_window(net, "features.3.expand1x1_activation", (1, 1))
    assert (rows.start, rows.stop) == (1, 2)
    cell = as_spec(hubel_wiesel_cell(sf_cycles_per_px=0.2, size_px=17), CONTRAST_PREPROCESSING)
    assert preceding_layer(cell, "pool") == "relu"
    assert pre_rectifier_layer(net, "features.3.expand3x3_activation") == "features.3.expand3x3"
    assert pre_rectifier_layer(net, "features.3.expand3x3") is None  # already the conv
    assert pre_rectifier_layer(net, "features.6") is None  # pooling in between
    assert own_conv(cell, "relu").conv_path == "subunits"   # the convolution it rectifies
    assert own_conv(cell, "pool") == OwnConv("pool", "relu", False)


def test_untraceable_model_has_no_preceding_layer():
    class Branchy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2, 3)

        def forward(self, x):
            return self.conv(x) if x.sum() > 0 else -self.conv(x)   # data-dependent: no fx

    spec = as_spec(Branchy())
    assert own_conv(spec, "conv").conv_path is None
    assert preceding_layer(spec, "conv") is None and feature_window(spec, "conv", (0, 0)) is None


def test_preceding_layer_of_shared_modules_is_the_call_the_conv_reads():
    import torchvision

    r18 = as_spec(torchvision.models.resnet18().eval())
    # block 0 ends with the 2nd call of its shared relu: read it as the block's output
    assert preceding_layer(r18, "layer1.1.conv1") == "layer1.0"
    assert preceding_layer(r18, "layer1.0.conv2") == "layer1.0.relu@0"   # its 1st call
    r50 = as_spec(torchvision.models.resnet50().eval())
    # bottleneck conv3 reads the relu's 2nd call (of 3) inside the block
    assert preceding_layer(r50, "layer1.1.conv3") == "layer1.1.relu@1"
    feats = forward_to_layers(r50, torch.randn(1, 3, 32, 32),
                              ["layer1.0", "layer1.1.relu", "layer1.1.relu@1"])
    assert feats["layer1.0"].shape[1] == 256 and feats["layer1.1.relu@1"].shape[1] == 64
    assert feats["layer1.1.relu"].shape[1] == 256  # a plain name: the last call (block end)
