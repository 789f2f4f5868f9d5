import pytest
import torch
from torch import nn

from artiphys.errors import ArtiphysError
from artiphys.synthesis import objectives as O
from artiphys.synthesis.optimize import optimize
from artiphys.synthesis.param import make_param
from artiphys.synthesis.render import Recipe, render_units
from artiphys.synthesis.rescue import redirected_relu

from .nets import hooks_left


def silent_net() -> nn.Sequential:
    """conv (all weights +1, bias -40) then an in-place ReLU: silent for a gray image."""
    conv = nn.Conv2d(3, 2, 3, padding=1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(-40.0)
    return nn.Sequential(conv, nn.ReLU(inplace=True)).eval()


def start_image(param) -> torch.Tensor:
    with torch.no_grad():
        return param.image_fn().clone()


def test_silent_unit_gets_an_image_with_rescue_and_stays_gray_without():
    model = silent_net()
    obj = O.channel("1", 0)
    gray = make_param("pixel", 1, 16, seed=3)
    init = start_image(gray)
    with torch.no_grad():
        assert model(init).max() == 0  # silent at the start
    plain = optimize(model, obj, gray, steps=24, rescue_steps=0)
    assert torch.equal(plain.images, init)  # no gradient: the image never moves
    assert plain.final[0] == 0
    rescued_param = make_param("pixel", 1, 16, seed=3)
    rescued = optimize(model, obj, rescued_param, steps=24, rescue_steps=16)
    assert rescued.final[0] > 1.0
    assert (rescued.images - init).abs().max() > 0.1
    assert rescued.settings["rescue_steps"] == 16
    assert hooks_left(model) == []
    assert model[1].inplace is True


def test_recipe_rescues_by_default_in_render_units():
    res = render_units(silent_net(), "1", [0, 1], objective="channel", param="pixel",
                       recipe=Recipe(steps=24, clip=True))
    assert (res.final > 1.0).all()
    off = render_units(silent_net(), "1", [0, 1], objective="channel", param="pixel",
                       recipe=Recipe(steps=24, clip=True, rescue_steps=0))
    assert (off.final == 0).all()


def test_forward_unchanged_and_backward_redirected_only_upwards():
    relu = nn.ReLU()
    # batch element 0 has a live unit (plain gradient kept); element 1 is all silent
    x = torch.tensor([[-1.0, -1.0, 2.0], [-1.0, -1.0, -3.0]], requires_grad=True)
    g_out = torch.tensor([[-1.0, 1.0, 1.0], [-1.0, 1.0, -2.0]])
    with redirected_relu(relu) as n:
        y = relu(x)
        assert n == 1
        torch.testing.assert_close(y, x.clamp_min(0))
        (g,) = torch.autograd.grad(y, x, g_out)
    torch.testing.assert_close(g[0], torch.tensor([0.0, 0.0, 1.0]))
    # silent units with loss gradient < 0 (raising them helps) pass; + 1 is blocked
    torch.testing.assert_close(g[1], torch.tensor([-1.0, 0.0, -2.0]))
    (g,) = torch.autograd.grad(relu(x), x, g_out)
    torch.testing.assert_close(g[1], torch.zeros(3))  # plain ReLU again


def test_hooks_removed_and_inplace_restored_on_error():
    model = silent_net()
    with pytest.raises(RuntimeError), redirected_relu(model):
        assert model[1].inplace is False
        raise RuntimeError("boom")
    assert hooks_left(model) == [] and model[1].inplace is True
    with pytest.raises(ArtiphysError):
        optimize(model, O.channel("1", 99), make_param("pixel", 1, 8), steps=2, rescue_steps=4)
    assert hooks_left(model) == [] and model[1].inplace is True
    with pytest.raises(ArtiphysError):
        optimize(model, O.channel("1", 0), make_param("pixel", 1, 8), steps=2, rescue_steps=-1)
