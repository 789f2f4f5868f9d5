import pytest
import torch

from artiphys.errors import ArtiphysError, UnknownLayerError, UnknownUnitError
from artiphys.synthesis import objectives as O
from artiphys.recording.hooks import forward_to_layers

from .nets import TinyNet, hooks_left


@pytest.fixture()
def net():
    return TinyNet().eval()


def acts_of(net, x, layers):
    return forward_to_layers(net, x, layers)


def test_unit_channel_layer_direction_values(net):
    x = torch.rand(2, 3, 16, 16)
    a = acts_of(net, x, ["conv2"])["conv2"]  # (2, 8, 8, 8)
    acts = {"conv2": a}
    torch.testing.assert_close(O.unit("conv2", 3)(acts), a[:, 3, 4, 4])  # map_center(8, 8)
    torch.testing.assert_close(O.unit("conv2", 3, 1, 5)(acts), a[:, 3, 1, 5])
    torch.testing.assert_close(O.channel("conv2", 2)(acts), a[:, 2].mean((1, 2)))
    torch.testing.assert_close(O.layer("conv2")(acts), a.mean((1, 2, 3)))
    v = torch.zeros(8)
    v[4] = 2.0
    torch.testing.assert_close(O.direction("conv2", v)(acts), 2 * a[:, 4].mean((1, 2)))


def test_algebra(net):
    x = torch.rand(2, 3, 16, 16)
    acts = acts_of(net, x, ["conv1", "conv2"])
    a, b = O.channel("conv1", 0), O.channel("conv2", 1)
    torch.testing.assert_close((a + 2 * b - a)(acts), 2 * b(acts))
    torch.testing.assert_close((-a)(acts), -a(acts))
    torch.testing.assert_close(sum([a, b])(acts), a(acts) + b(acts))
    assert (a + b).layers == ("conv1", "conv2")
    assert (a + a).layers == ("conv1",)


def test_per_image_scores_each_element_with_its_own_objective(net):
    x = torch.rand(3, 3, 16, 16)
    acts = acts_of(net, x, ["conv2"])
    obj = O.per_image([O.channel("conv2", c) for c in (5, 0, 7)])
    expected = torch.stack([acts["conv2"][i, c].mean() for i, c in enumerate((5, 0, 7))])
    torch.testing.assert_close(obj(acts), expected)
    assert len(O.parts(obj)) == 3
    neg = -obj
    torch.testing.assert_close(neg(acts), -expected)
    assert [p.name for p in O.parts(neg)][0] == "-channel(conv2, 5)"
    torch.testing.assert_close((2 * obj)(acts), 2 * expected)
    assert len(O.parts(2 * obj)) == 3
    # the vectorised path (one gather) and the per-slice path agree
    units = O.per_image([O.unit("conv2", c, 2, 3) for c in (5, 0, 7)])
    torch.testing.assert_close(units(acts), acts["conv2"][[0, 1, 2], [5, 0, 7], 2, 3])
    mixed = O.per_image([O.channel("conv2", 5), O.unit("conv2", 0), O.layer("conv2")])
    a = acts["conv2"]
    torch.testing.assert_close(mixed(acts), torch.stack([a[0, 5].mean(), a[1, 0, 4, 4], a[2].mean()]))
    with pytest.raises(UnknownUnitError):
        O.per_image([O.channel("conv2", 1), O.channel("conv2", 99), O.channel("conv2", 2)])(acts)
    with pytest.raises(ArtiphysError, match="per-image objectives"):
        obj(acts_of(net, torch.rand(2, 3, 16, 16), ["conv2"]))


def test_bad_unit_and_layer_errors(net):
    acts = acts_of(net, torch.rand(1, 3, 16, 16), ["conv2"])
    with pytest.raises(UnknownUnitError, match="8 channels"):
        O.channel("conv2", 8)(acts)
    with pytest.raises(UnknownUnitError, match="outside"):
        O.unit("conv2", 0, 9, 0)(acts)
    with pytest.raises(UnknownLayerError, match="Did you mean"):
        forward_to_layers(net, torch.rand(1, 3, 16, 16), ["conv3"])
    assert hooks_left(net) == []


def test_forward_stops_after_deepest_needed_layer(net):
    # the first pass at an input shape runs to the end: it learns how often each module runs
    forward_to_layers(net, torch.rand(1, 3, 16, 16), ["conv1", "relu2"])
    assert net.head_calls == 1
    net.fail_in_head = True  # the head would raise if it ran
    out = forward_to_layers(net, torch.rand(1, 3, 16, 16), ["conv1", "relu2"])
    assert set(out) == {"conv1", "relu2"}
    assert net.head_calls == 1
    assert hooks_left(net) == []


def test_hooks_removed_when_forward_raises(net):
    net.fail_in_head = True
    with pytest.raises(RuntimeError, match="head failed"):
        forward_to_layers(net, torch.rand(1, 3, 16, 16), ["fc"])
    assert hooks_left(net) == []
    with pytest.raises(RuntimeError):
        forward_to_layers(net, torch.rand(1, 5, 16, 16), ["conv2"])  # wrong channels
    assert hooks_left(net) == []


def test_layer_never_called_is_an_error(net):
    net.extra = torch.nn.Conv2d(1, 1, 1)  # registered but unused
    with pytest.raises(UnknownLayerError, match="no output"):
        forward_to_layers(net, torch.rand(1, 3, 16, 16), ["extra"])
    assert hooks_left(net) == []
