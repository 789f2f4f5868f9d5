"""models/taps.py and the layer-name rule: a plain name is a module's last call, ``@k`` call
k, ``:linear`` the output before the rectifier; recording and forward_to_layers agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from artiphys.errors import UnknownLayerError
from artiphys.models.layers import LayerRef, layer_name, resolve_layer
from artiphys.models.spec import Preprocessing, as_spec
from artiphys.models.taps import forward_to_layers
from artiphys.recording import hooks_left, record

PLAIN = Preprocessing(input_size_px=12, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


class Shared(nn.Module):
    """One ReLU module called twice, on maps of different channel counts, then a head that
    counts its calls (and can be made to fail)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(3, 2, 1)
        self.b = nn.Conv2d(2, 6, 1)
        self.relu = nn.ReLU()
        self.head = nn.Conv2d(6, 1, 1)
        self.head_calls = 0
        self.fail = False

    def forward(self, x):
        x = self.relu(self.b(self.relu(self.a(x))))
        self.head_calls += 1
        if self.fail:
            raise RuntimeError("head failed")
        return self.head(x)


def _by_hand(net, x):
    with torch.no_grad():
        first = torch.relu(net.a(x))
        return first, torch.relu(net.b(first))


def test_layer_names_parse_into_refs():
    spec = as_spec(Shared(), PLAIN)
    ref = resolve_layer(spec, "relu@0")
    assert (ref.name, ref.path, ref.call, ref.view, ref.label) == ("relu@0", "relu", 0, None,
                                                                 "relu@0")
    assert ref.module is spec.module.relu and not ref.is_plain
    lin = resolve_layer(spec, "relu:linear")
    assert (lin.path, lin.call, lin.view) == ("relu", None, "linear")
    assert resolve_layer(spec, "relu").is_plain
    assert layer_name("layer1.0", 2, "linear") == "layer1.0@2:linear"
    spec.aliases = {"act": "relu"}
    assert resolve_layer(spec, "act@1").label == "act@1"
    with pytest.raises(UnknownLayerError, match=":linear"):
        resolve_layer(spec, "relu:rectified")
    with pytest.raises(UnknownLayerError, match="Did you mean"):
        resolve_layer(spec, "rel@0")
    assert isinstance(resolve_layer(spec, spec.module.relu), LayerRef)


def test_plain_name_is_the_last_call_everywhere():
    net = Shared().eval()
    spec = as_spec(net, PLAIN)
    x = torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    first, last = _by_hand(net, x)
    out = forward_to_layers(spec, x, ["relu", "relu@0", "relu@1"])
    torch.testing.assert_close(out["relu"], last)
    torch.testing.assert_close(out["relu@1"], last)
    torch.testing.assert_close(out["relu@0"], first)
    rec = record(spec, x, ["relu", "relu@0"], units="all")
    np.testing.assert_allclose(rec["relu"].values, last.reshape(3, -1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(rec["relu@0"].values, first.reshape(3, -1).numpy(), rtol=1e-6)
    assert rec["relu@0"].attrs["layer_path"] == "relu@0"
    with pytest.raises(UnknownLayerError, match=r"runs 2 time\(s\).*@0..@1"):
        forward_to_layers(spec, x, ["relu@2"])
    assert hooks_left(net) == {}


def test_first_pass_learns_call_counts_then_stops_early():
    net = Shared().eval()
    x = torch.rand(1, 3, 12, 12)
    forward_to_layers(net, x, ["relu@0"])   # call 0 is known without counting: stops there
    assert net.head_calls == 0
    forward_to_layers(net, x, ["relu"])     # the last call needs the count: a full pass
    assert net.head_calls == 1
    net.fail = True                         # from now on the head is never reached
    out = forward_to_layers(net, x, ["relu"])
    torch.testing.assert_close(out["relu"], _by_hand(net, x)[1])
    # a count learnt at one input shape serves another
    forward_to_layers(net, torch.rand(1, 3, 20, 20), ["relu"])
    assert net.head_calls == 1


def test_a_failure_past_every_requested_layer_still_gives_them():
    net = Shared().eval()
    net.fail = True
    x = torch.rand(2, 3, 12, 12)
    out = forward_to_layers(net, x, ["a", "relu"])  # first pass: the head fails after both
    torch.testing.assert_close(out["relu"], _by_hand(net, x)[1])
    with pytest.raises(RuntimeError, match="head failed"):
        forward_to_layers(net, x, ["head"])
    assert hooks_left(net) == {}


def test_outputs_stay_differentiable_and_untouched_by_inplace_ops():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), nn.Conv2d(4, 2, 1)).eval()
    x = torch.randn(2, 3, 10, 10, requires_grad=True)
    out = forward_to_layers(net, x, ["0", "1:linear", "2"])
    with torch.no_grad():
        conv = net[0](x)
    torch.testing.assert_close(out["0"], conv)
    torch.testing.assert_close(out["1:linear"], conv)  # the input of the (in-place) ReLU
    assert out["0"].min() < 0
    out["1:linear"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
