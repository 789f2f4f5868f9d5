"""Untrained and weight-shuffled twins (artiphys.models.controls)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from artiphys.models import load_model, reinitialize, untrained_twin, weight_shuffled_twin
from artiphys.models import weights as W


@pytest.fixture(autouse=True)
def never_download(monkeypatch):
    monkeypatch.setattr(W, "download_weights", lambda url, dest: pytest.fail(f"tried to download {url}"))


@pytest.fixture(scope="module")
def trained():
    return load_model("squeezenet1_0")  # real weights through ARTIPHYS_WEIGHTS_DIR


def states_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_untrained_twin_differs_and_is_reproducible_by_seed(trained):
    twin = untrained_twin(trained, seed=1)
    assert twin.condition == "untrained" and twin.seed == 1 and twin.weights_path is None
    assert twin.name == trained.name and twin.preprocessing == trained.preprocessing
    st, su = trained.module.state_dict(), twin.module.state_dict()
    assert st.keys() == su.keys() and all(st[k].shape == su[k].shape for k in st)
    assert not torch.equal(st["features.0.weight"], su["features.0.weight"])
    assert states_equal(twin.module, untrained_twin(trained, seed=1).module)
    assert not states_equal(twin.module, untrained_twin(trained, seed=2).module)
    assert trained.condition == "trained"  # the source is untouched


def test_untrained_twin_keeps_an_input_size_override():
    spec = load_model("squeezenet1_1", pretrained=False, input_size=227)
    assert untrained_twin(spec, seed=3).preprocessing.input_size_px == 227


def test_untrained_twin_of_a_plain_module():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(0.25)
    a, b = untrained_twin(net, seed=4), untrained_twin(net, seed=4)
    assert a.condition == "untrained" and states_equal(a.module, b.module)
    assert not torch.equal(a.module[0].weight, net[0].weight)
    assert float(net[0].weight.detach()[0, 0, 0, 0]) == 0.25


def test_reinitialize_warns_about_parameters_it_cannot_reset():
    class WithBareParameter(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)
            self.scale = nn.Parameter(torch.ones(1))

    with pytest.warns(UserWarning, match="scale"):
        reinitialize(WithBareParameter(), seed=0)


def test_shuffled_twin_keeps_each_tensors_values(trained):
    twin = weight_shuffled_twin(trained, seed=5)
    assert twin.condition == "weight-shuffled" and twin.seed == 5
    assert twin.weights_path == trained.weights_path  # provenance of the shuffled values
    changed = 0
    for (name, p), (_, q) in zip(trained.module.named_parameters(), twin.module.named_parameters()):
        assert p.shape == q.shape
        assert torch.equal(p.detach().flatten().sort().values, q.detach().flatten().sort().values), name
        changed += int(not torch.equal(p, q))
    assert changed == len(list(trained.module.parameters()))
    assert states_equal(twin.module, weight_shuffled_twin(trained, seed=5).module)
    assert not states_equal(twin.module, weight_shuffled_twin(trained, seed=6).module)
    assert not states_equal(twin.module, trained.module)


def test_shuffled_twin_leaves_buffers_and_source_alone():
    spec = load_model("resnet18", pretrained=False, seed=0)
    with torch.no_grad():
        spec.module.bn1.running_mean.uniform_()
    before = {k: v.clone() for k, v in spec.module.state_dict().items()}
    twin = weight_shuffled_twin(spec, seed=1)
    assert torch.equal(twin.module.bn1.running_mean, spec.module.bn1.running_mean)
    assert all(torch.equal(before[k], v) for k, v in spec.module.state_dict().items())


def test_twins_of_an_analytic_model():
    bank = load_model("v1bank")
    shuffled = weight_shuffled_twin(bank, seed=0)
    untrained = untrained_twin(bank, seed=0)
    assert shuffled.module.channels.equals(bank.module.channels)
    assert not torch.equal(shuffled.module.quadrature.weight, bank.module.quadrature.weight)
    assert untrained.condition == "untrained"
    x = torch.rand(1, 3, 65, 65)
    with torch.no_grad():
        assert shuffled.module(x).shape == untrained.module(x).shape == bank.module(x).shape
