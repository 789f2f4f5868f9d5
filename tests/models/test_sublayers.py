"""models/sublayers.py and virtual ``:linear`` layers: the paper's major layers and
sublayers (Pospisil et al. 2018, Fig. 2C) in AlexNet and in networks the paper never saw."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision
from click.testing import CliRunner
from torch import nn

from artiphys.cli import main
from artiphys.models.layers import default_aliases, list_layers
from artiphys.models.receptive_field import layer_geometry
from artiphys.models.spec import ModelSpec, Preprocessing, as_spec
from artiphys.models.sublayers import (
    ALEXNET_MISSING_SUBLAYERS,
    first_sublayers,
    paper_sublayers,
)
from artiphys.models.taps import forward_to_layers
from artiphys.experiments.record import load_responses, record_to_store
from artiphys.recording import hooks_left, record


def _spec(name: str, size: int, **kwargs) -> ModelSpec:
    torch.manual_seed(0)
    module = getattr(torchvision.models, name)(**kwargs).eval()
    return ModelSpec(name, module, Preprocessing(size), condition="untrained",
                     aliases=default_aliases(module))


def _images(n: int, size: int) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))


# ---- AlexNet: the paper's own network -----------------------------------------------------

def _labels(rows):
    return [r.label for r in rows]


def test_torchvision_alexnet_has_18_of_the_papers_21_sublayers():
    spec = _spec("alexnet", 224)
    assert _labels(paper_sublayers(spec)) == [
        "conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "conv3", "relu3", "conv4",
        "relu4", "conv5", "relu5", "pool5", "fc6", "relu6", "fc7", "relu7", "fc8"]
    assert _labels(first_sublayers(spec)) == ["conv1", "conv2", "conv3", "conv4", "conv5",
                                              "fc6", "fc7", "fc8"]
    assert ALEXNET_MISSING_SUBLAYERS == ("norm1", "norm2", "prob8")
    rows = {r.name: r for r in list_layers(spec)}
    assert rows["avgpool"].sublayer is None  # 6x6 -> 6x6: an identity at 224 px
    assert rows["classifier.0"].sublayer is None and rows["classifier.0"].major == "features.10"
    assert rows["features.12"].major == "features.10" and rows["features.12"].sublayer == "pooled"


class CaffeLayout(nn.Module):
    """Pospisil et al.'s AlexNet layout: LRN after relu1/relu2, explicit softmax."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 11, stride=4), nn.ReLU(inplace=True), nn.LocalResponseNorm(5),
            nn.MaxPool2d(3, 2), nn.Conv2d(8, 8, 5, padding=2), nn.ReLU(inplace=True),
            nn.LocalResponseNorm(5), nn.MaxPool2d(3, 2), nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(inplace=True), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(), nn.Linear(8 * 6 * 6, 16), nn.ReLU(inplace=True),
            nn.Dropout(), nn.Linear(16, 16), nn.ReLU(inplace=True), nn.Linear(16, 10),
            nn.Softmax(dim=1))

    def forward(self, x):
        return self.classifier(self.features(x))


def test_the_caffe_layout_has_all_21():
    module = CaffeLayout().eval()
    spec = ModelSpec("caffe", module, Preprocessing(227), aliases=default_aliases(module))
    rows = paper_sublayers(spec)
    assert _labels(rows) == [
        "conv1", "relu1", "norm1", "pool1", "conv2", "relu2", "norm2", "pool2", "conv3",
        "relu3", "conv4", "relu4", "conv5", "relu5", "pool5", "fc6", "relu6", "fc7", "relu7",
        "fc8", "prob"]
    assert [r.sublayer for r in rows[:4]] == ["linear", "rectified", "normalised", "pooled"]
    assert rows[-1].sublayer == "softmax" and rows[-1].major == "classifier.7"


def test_a_bare_sequential():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3),
                        nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 3))
    rows = list_layers(net.eval(), input_size_px=16)
    assert [(r.name, r.major, r.sublayer) for r in rows] == [
        ("0", "0", "linear"), ("1", "0", "rectified"), ("2", "0", "pooled"),
        ("3", "3", None), ("4", "3", "linear"),  # the linear output is after batch norm
        ("5", "3", "rectified"), ("6", "3", None), ("7", "7", "linear")]
    d = rows[4].to_dict()
    assert (d["major"], d["sublayer"]) == ("3", "linear")


def test_vgg16_sublayers():
    spec = _spec("vgg16", 224)
    first = first_sublayers(spec)
    assert len(first) == 13 + 3 and all(r.kind in ("conv", "linear") for r in first)
    assert first[0].label == "conv1_1" and first[-1].label == "fc8"
    pooled = [r.label for r in paper_sublayers(spec) if r.sublayer == "pooled"]
    assert pooled == ["pool1", "pool2", "pool3", "pool4", "pool5"]  # avgpool: 7x7 -> 7x7
    # at 64 px the adaptive pool turns pool5's 2x2 map into 7x7: then it is a sublayer
    assert "avgpool" in [r.name for r in paper_sublayers(spec, input_size_px=64)]


# ---- branching blocks ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def squeezenet():
    return _spec("squeezenet1_0", 64)


def test_squeezenet_fire_linear_is_the_concatenated_expand_convs(squeezenet):
    imgs = _images(3, 64)
    layers = ["features.3:linear", "features.3.expand1x1", "features.3.expand3x3", "features.3"]
    out = record(squeezenet, imgs, layers, units="all")
    lin = out["features.3:linear"]
    e1, e3 = out["features.3.expand1x1"], out["features.3.expand3x3"]
    by_hand = np.concatenate([e1.values.reshape(3, 64, -1), e3.values.reshape(3, 64, -1)], 1)
    np.testing.assert_allclose(lin.values, by_hand.reshape(3, -1), rtol=1e-6)
    assert (lin.values < 0).any()  # before the ReLUs
    np.testing.assert_allclose(out["features.3"].values, np.maximum(lin.values, 0), rtol=1e-6)
    assert set(lin.layer.values) == {"features.3:linear"} and lin.channel.max() == 127
    geo = layer_geometry(squeezenet, "features.3:linear")
    assert list(geo.rf_size_px) == [11] * 64 + [19] * 64
    assert hooks_left(squeezenet.module) == {}


def test_squeezenet_table_and_first_sublayers(squeezenet):
    names = [r.name for r in first_sublayers(squeezenet)]
    assert names == ["features.0"] + [f"features.{i}:linear" for i in (3, 4, 5, 7, 8, 9, 10, 12)] \
        + ["classifier.1"]
    rows = {r.name: r for r in list_layers(squeezenet)}
    assert rows["features.3:linear"].kind == "concat" and rows["features.3"].sublayer == "rectified"
    assert rows["features.3.squeeze"].major == "features.3" and rows["features.3.squeeze"].sublayer \
        is None
    assert rows["features.6"].major == "features.5" and rows["features.6"].sublayer == "pooled"


def test_virtual_layer_with_gradients_and_in_the_store(squeezenet, tmp_path):
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    out = forward_to_layers(squeezenet, x, ["features.5:linear"])["features.5:linear"]
    assert out.shape == (2, 256, 14, 14)
    out[:, 200, 6, 6].sum().backward()
    assert x.grad.abs().sum() > 0
    run = record_to_store(squeezenet, _images(3, 64), ["features.3:linear"], tmp_path / "run",
                          units=[(0, 1, 2), (100, 3, 3)], chunk_size=2)
    back = load_responses(run, "features.3:linear")
    direct = record(squeezenet, _images(3, 64), ["features.3:linear"],
                    units=[(0, 1, 2), (100, 3, 3)])["features.3:linear"]
    np.testing.assert_allclose(back.values, direct.values, rtol=1e-5)  # batches of 2 vs 3
    assert list(back.channel.values) == [0, 100] and list(back.y.values) == [1, 3]
    assert set(back.layer.values) == {"features.3:linear"}


def test_resnet18_block_linear_is_the_sum_before_the_last_relu():
    spec = _spec("resnet18", 64)
    m = spec.module
    x = torch.randn(2, 3, 64, 64)
    out = forward_to_layers(spec, x, ["layer1.0:linear", "layer2.0:linear", "layer2.0"])
    with torch.no_grad():
        stem = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        b = m.layer1[0]
        s1 = b.bn2(b.conv2(b.relu(b.bn1(b.conv1(stem))))) + stem
        x1 = m.layer1[1](torch.relu(s1))
        c = m.layer2[0]
        s2 = c.bn2(c.conv2(c.relu(c.bn1(c.conv1(x1))))) + c.downsample(x1)
    torch.testing.assert_close(out["layer1.0:linear"], s1)
    torch.testing.assert_close(out["layer2.0:linear"], s2)
    torch.testing.assert_close(out["layer2.0"], torch.relu(s2))
    rows = {r.name: r for r in list_layers(spec)}
    assert rows["layer1.0:linear"].kind == "add" and rows["layer1.0:linear"].sublayer == "linear"
    assert rows["layer1.0"].sublayer == "rectified" and rows["layer1.0.conv1"].sublayer is None
    assert [r.name for r in first_sublayers(spec)][:3] == ["bn1", "layer1.0:linear",
                                                          "layer1.1:linear"]


def test_mobilenet_v2_blocks_are_already_linear():
    spec = _spec("mobilenet_v2", 64)
    first = [r.name for r in first_sublayers(spec)]
    assert first == ["features.0.1"] + [f"features.{i}" for i in range(1, 18)] + [
        "features.18.1", "classifier.1"]
    assert not any(r.name.endswith(":linear") for r in list_layers(spec))
    x = torch.randn(1, 3, 64, 64)
    out = forward_to_layers(spec, x, ["features.3:linear", "features.3", "features.2"])
    torch.testing.assert_close(out["features.3:linear"], out["features.3"])
    assert out["features.2"].min() < 0  # no residual, and still no rectifier at the end


@pytest.mark.slow
def test_googlenet_inception_linear_concatenates_the_branch_batch_norms():
    spec = _spec("googlenet", 96, init_weights=False, aux_logits=False)
    parts = ["inception3a.branch1.bn", "inception3a.branch2.1.bn", "inception3a.branch3.1.bn",
             "inception3a.branch4.1.bn"]
    x = torch.randn(2, 3, 96, 96)
    out = forward_to_layers(spec, x, ["inception3a:linear", "inception3a", *parts])
    torch.testing.assert_close(out["inception3a:linear"], torch.cat([out[p] for p in parts], 1))
    torch.testing.assert_close(out["inception3a"], torch.relu(out["inception3a:linear"]))
    rows = {r.name: r for r in paper_sublayers(spec)}
    assert rows["inception3a:linear"].sublayer == "linear"
    assert rows["conv1.bn"].sublayer == "linear" and rows["conv1.bn"].major == "conv1"
    rf = layer_geometry(spec, "inception3a:linear").rf_size_px
    assert set(rf[:64]) == {27} and set(rf[64:]) == {43}


def test_untraceable_model_gets_sublayers_from_its_modules():
    class DataDependent(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3)
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.relu(self.conv(x)) if x.sum() > -1e9 else x

    rows = list_layers(as_spec(DataDependent().eval()), input_size_px=16)
    assert [(r.name, r.sublayer) for r in rows] == [("conv", "linear"), ("relu", "rectified")]


def test_cli_layers_json_has_major_and_sublayer(monkeypatch, tmp_path):
    monkeypatch.setenv("ARTIPHYS_WEIGHTS_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["layers", "squeezenet1_0", "--json", "--input-size", "64"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["features.3:linear"]["sublayer"] == "linear"
    assert rows["features.3:linear"]["major"] == "features.3"
    assert rows["features.3:linear"]["rf_size"] == [11] * 64 + [19] * 64
