"""Layer table, paper aliases and the `artiphys layers` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision
from click.testing import CliRunner
from torch import nn

from artiphys.cli import main
from artiphys.errors import UnknownLayerError
from artiphys.models.layers import (
    LayerInfo,
    closest_rf_layer,
    default_aliases,
    format_layer_table,
    list_layers,
    resolve_layer,
    spec_with_aliases,
)
from artiphys.models.spec import ModelSpec, as_spec

ALEXNET_ALIASES = {
    "conv1": "features.0", "relu1": "features.1", "pool1": "features.2",
    "conv2": "features.3", "relu2": "features.4", "pool2": "features.5",
    "conv3": "features.6", "relu3": "features.7", "conv4": "features.8", "relu4": "features.9",
    "conv5": "features.10", "relu5": "features.11", "pool5": "features.12",
    "fc6": "classifier.1", "relu6": "classifier.2", "fc7": "classifier.4",
    "relu7": "classifier.5", "fc8": "classifier.6",
}
ALEXNET_RF = {"conv1": 11, "relu1": 11, "pool1": 19, "conv2": 51, "relu2": 51, "pool2": 67,
              "conv3": 99, "conv4": 131, "conv5": 163, "pool5": 195}


@pytest.fixture(scope="module")
def alexnet():
    module = torchvision.models.alexnet().eval()
    return ModelSpec("alexnet", module, aliases=default_aliases(module))


class CaffeAlexNet(nn.Module):
    """The paper's AlexNet layout (LRN after relu1/relu2, explicit softmax), single-tower."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(inplace=True), nn.LocalResponseNorm(5),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(inplace=True), nn.LocalResponseNorm(5),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
        self.classifier = nn.Sequential(
            nn.Linear(256 * 6 * 6, 64), nn.ReLU(inplace=True), nn.Dropout(),
            nn.Linear(64, 64), nn.ReLU(inplace=True), nn.Dropout(),
            nn.Linear(64, 10), nn.Softmax(dim=1))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


# ---- aliases ------------------------------------------------------------------------------

def test_alexnet_aliases_follow_the_paper(alexnet):
    assert alexnet.aliases == ALEXNET_ALIASES  # dropouts unaliased; no LRN/softmax in torchvision


def test_caffe_layout_gets_norm_and_prob():
    aliases = default_aliases(CaffeAlexNet())
    assert aliases["norm1"] == "features.2" and aliases["pool1"] == "features.3"
    assert aliases["norm2"] == "features.6" and aliases["pool2"] == "features.7"
    assert aliases["pool5"] == "features.14"
    assert aliases["fc6"] == "classifier.0" and aliases["fc8"] == "classifier.6"
    assert aliases["prob"] == "classifier.7"


def test_caffe_layout_rfs_with_lrn():
    rows = {r.alias: r for r in list_layers(CaffeAlexNet(), input_size_px=227) if r.alias}
    # the paper's numbers hold for the Caffe layout too (conv1 unpadded at 227 px)
    assert {a: rows[a].rf_size_px for a in ALEXNET_RF} == ALEXNET_RF
    assert rows["norm1"].kind == "norm" and rows["norm1"].rf_size_px == 11
    assert rows["pool5"].shape == (256, 6, 6)
    assert rows["prob"].kind == "softmax" and rows["prob"].shape == (10,)
    assert not rows["prob"].is_spatial


def test_vgg_aliases():
    aliases = default_aliases(torchvision.models.vgg19(init_weights=False))
    assert aliases["conv1_1"] == "features.0" and aliases["relu1_2"] == "features.3"
    assert aliases["pool1"] == "features.4" and aliases["conv2_1"] == "features.5"
    assert aliases["conv5_4"] == "features.34" and aliases["pool5"] == "features.36"
    assert aliases["fc6"] == "classifier.0" and aliases["fc8"] == "classifier.6"


@pytest.mark.parametrize("name", ["squeezenet1_0", "resnet18"])
def test_no_aliases_for_other_nets(name):
    assert default_aliases(getattr(torchvision.models, name)()) == {}


def test_plain_module_gets_default_aliases():
    module = torchvision.models.alexnet().eval()
    ref = resolve_layer(spec_with_aliases(module), "conv2")
    assert ref.name == "features.3" and ref.alias == "conv2"


# ---- the table --------------------------------------------------------------------------

def test_alexnet_table(alexnet):
    rows = list_layers(alexnet, input_size_px=227)
    assert all(isinstance(r, LayerInfo) for r in rows)
    names = [r.name for r in rows]
    expected = [f"features.{i}" for i in range(13)] + ["avgpool"] + [f"classifier.{i}" for i in range(7)]
    assert names == expected  # execution order
    by_alias = {r.alias: r for r in rows if r.alias}
    assert {a: by_alias[a].rf_size_px for a in ALEXNET_RF} == ALEXNET_RF
    assert by_alias["conv1"].kind == "conv" and by_alias["relu1"].kind == "relu"
    assert by_alias["pool1"].kind == "pool" and by_alias["fc6"].kind == "linear"
    assert by_alias["conv1"].shape == (64, 56, 56) and by_alias["conv2"].units == 192
    assert by_alias["pool5"].shape == (256, 6, 6) and by_alias["pool5"].stride_px == 32
    assert by_alias["fc7"].shape == (4096,) and not by_alias["fc7"].is_spatial
    assert by_alias["pool5"].same_as == ("features",)
    assert rows[14].kind == "dropout" and rows[14].alias is None


def test_squeezenet_table_reports_per_channel_rf():
    rows = {r.name: r for r in list_layers(torchvision.models.squeezenet1_0().eval())}
    fire2 = rows["features.3"]
    assert fire2.kind == "concat" and fire2.shape == (128, 54, 54)
    assert isinstance(fire2.rf_size_px, np.ndarray)
    assert fire2.rf_size_range_px == (11, 19)
    d = fire2.to_dict()
    assert d["rf_size"] == [11] * 64 + [19] * 64 and d["rf_size_min"] == 11
    assert rows["features.3.expand3x3"].rf_size_px == 19
    assert rows["classifier.1"].rf_size_px == 155  # conv10 mixes both halves of fire9


def test_resnet_table_names_block_outputs():
    rows = list_layers(torchvision.models.resnet18().eval())
    block = next(r for r in rows if r.name == "layer1.0")
    assert block.kind == "block" and block.rf_size_px == 27
    assert block.same_as == ("layer1.0.relu",)
    # the plain name means the last call (the block's output): the first call is "@0"
    assert not any(r.name == "layer1.0.relu" for r in rows)
    first_relu = next(r for r in rows if r.name == "layer1.0.relu@0")
    assert first_relu.call == 0 and first_relu.rf_size_px == 19
    assert resolve_layer(as_spec(torchvision.models.resnet18()), first_relu.name).call == 0
    fc = rows[-1]
    assert fc.name == "fc" and fc.shape == (1000,) and not fc.is_spatial


def test_closest_rf_layer_matches_vgg_and_resnet():
    vgg = list_layers(torchvision.models.vgg19(init_weights=False).eval())
    conv3_1 = next(r for r in vgg if r.name == "features.10")
    assert conv3_1.rf_size_px == 24
    assert closest_rf_layer(None, 24, rows=vgg).name == "features.10"
    resnet = list_layers(torchvision.models.resnet50().eval())
    match = closest_rf_layer(None, 24, rows=resnet)   # 27 beats 19 (the earliest at 27)
    assert match.name == "layer1.1.conv2" and match.rf_size_px == 27
    assert closest_rf_layer(None, 24, kinds=("block",), rows=resnet).name == "layer1.1"
    with pytest.raises(UnknownLayerError):
        closest_rf_layer(None, 24, kinds=("nothing",), rows=resnet)


def test_text_table(alexnet):
    text = format_layer_table(list_layers(alexnet))
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["name", "alias", "kind"]
    assert "pool5" in text and "195" in text


def test_list_layers_leaves_no_hooks(alexnet):
    list_layers(alexnet)
    for m in alexnet.module.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks


# ---- CLI (through models.registry.load_model) ------------------------------------------------

@pytest.fixture
def no_weights(monkeypatch, tmp_path):
    """An empty weights folder: the layer table must not need trained weights."""
    monkeypatch.setenv("ARTIPHYS_WEIGHTS_DIR", str(tmp_path))


def _run(args):
    return CliRunner().invoke(main, args)


def test_cli_layers_alexnet_json(no_weights):
    result = _run(["layers", "alexnet", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {"name", "alias", "kind", "shape", "units", "rf_size", "stride"} <= set(rows[0])
    rf = {r["alias"]: r["rf_size"] for r in rows if r["alias"]}
    assert {a: rf[a] for a in ALEXNET_RF} == ALEXNET_RF
    pool5 = next(r for r in rows if r["alias"] == "pool5")
    assert pool5["stride"] == 32 and pool5["units"] == 256 and pool5["shape"][0] == 256


def test_cli_layers_vgg19_and_squeezenet_json(no_weights):
    rows = json.loads(_run(["layers", "vgg19", "--json"]).stdout)
    rf = {r["alias"]: r["rf_size"] for r in rows if r["alias"]}
    assert (rf["conv1_2"], rf["pool1"], rf["conv3_4"], rf["conv4_4"], rf["conv5_4"],
            rf["pool5"]) == (5, 6, 48, 116, 252, 268)
    rows = {r["name"]: r for r in json.loads(_run(["layers", "squeezenet1_0", "--json"]).stdout)}
    assert rows["features.0"]["rf_size"] == 7 and rows["features.2"]["rf_size"] == 11
    assert rows["features.3"]["rf_size"] == [11] * 64 + [19] * 64
    assert (rows["features.12"]["rf_size_min"], rows["features.12"]["rf_size_max"]) == (123, 155)


def test_cli_layers_table_and_one_layer(no_weights):
    result = _run(["layers", "alexnet", "--input-size", "227", "--layer", "conv2"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[1].split()[:3] == ["features.3", "conv2", "conv"]
    assert "51" in lines[1].split() and "192x27x27" in lines[1].split()


def test_cli_unknown_model_and_layer(no_weights):
    result = _run(["layers", "alexnett"])
    assert result.exit_code == 2
    assert result.stderr.startswith("artiphys: error:") and len(result.stderr.splitlines()) == 1
    result = _run(["layers", "alexnet", "--layer", "conv9"])
    assert result.exit_code == 2
    assert "Did you mean" in result.stderr and len(result.stderr.splitlines()) == 1


class _Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.relu = nn.ReLU()

    def forward(self, x):
        if x.sum() >= 0:  # data-dependent branch: torch.fx cannot trace it
            x = self.conv(x)
        return self.relu(x)


def test_untraceable_model_is_listed_without_geometry():
    model = _Untraceable().eval()
    rows = list_layers(model, input_size_px=16)
    assert [(r.name, r.kind, r.shape) for r in rows] == [("conv", "conv", (4, 14, 14)),
                                                          ("relu", "relu", (4, 14, 14))]
    assert rows[0].rf_size_px is None and "trace" in rows[0].note
    assert not model.conv._forward_hooks and not model.relu._forward_hooks
