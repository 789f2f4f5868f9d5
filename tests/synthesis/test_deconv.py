import pytest
import torch
from torch import nn

from artiphys.errors import ArtiphysError
from artiphys.models.spec import Preprocessing, as_spec
from artiphys.synthesis.top_patches import deconvnet, guided_backprop, unit_features

from .nets import hooks_left

IDENTITY = Preprocessing(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), input_size_px=12)


def one_conv(bias: float = 0.0) -> nn.Sequential:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 2, 5)
    with torch.no_grad():
        conv.bias.fill_(bias)
    return nn.Sequential(conv, nn.ReLU(inplace=True)).eval()


def placed(weight: torch.Tensor, y: int, x: int, size: int = 12) -> torch.Tensor:
    out = torch.zeros(3, size, size)
    out[:, y:y + weight.shape[-2], x:x + weight.shape[-1]] = weight
    return out


@pytest.mark.parametrize("layer", ["0", "1"])
def test_deconv_of_a_unit_is_its_filter_at_its_rf(layer):
    # bias -100: every unit silent, so guided backprop gives nothing; the deconvnet
    # ignores the forward mask and still shows the filter
    model = one_conv(bias=-100.0)
    spec = as_spec(model, IDENTITY)
    images = torch.rand(2, 3, 12, 12)
    feats = deconvnet(spec, images, layer, [1, 0], [(3, 4), (7, 0)])
    w = model[0].weight.detach()
    torch.testing.assert_close(feats[0], placed(w[1], 3, 4))
    torch.testing.assert_close(feats[1], placed(w[0], 7, 0))
    if layer == "1":
        assert guided_backprop(spec, images, layer, [1], [(3, 4)]).abs().max() == 0
    assert hooks_left(model) == [] and model[1].inplace is True


def test_deconv_unpools_to_the_switch_and_rectifies():
    conv = nn.Conv2d(3, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(-1.0)  # the top unit's transposed filter is negative
    spec = as_spec(nn.Sequential(nn.MaxPool2d(2), conv, nn.ReLU()).eval(),
                   Preprocessing(mean=(0.0,) * 3, std=(1.0,) * 3, input_size_px=4))
    image = torch.zeros(1, 3, 4, 4)
    image[0, :, 1, 0] = 1.0  # the switch of pooled unit (0, 0)
    expect = torch.zeros(1, 3, 4, 4)
    expect[0, :, 1, 0] = -1.0  # unpooled to the switch, nowhere else in the pool
    torch.testing.assert_close(deconvnet(spec, image, "2", [0], [(0, 0)]), expect)
    # a ReLU below the conv rectifies the negative signal away
    rect = as_spec(nn.Sequential(nn.MaxPool2d(2), nn.ReLU(), conv).eval(), spec.preprocessing)
    assert deconvnet(rect, image, "2", [0], [(0, 0)]).abs().max() == 0


def test_unknown_method_is_refused():
    with pytest.raises(ArtiphysError, match="deconv"):
        unit_features(as_spec(one_conv(), IDENTITY), torch.rand(1, 3, 12, 12), "1", [0],
                      [(0, 0)], method="lrp")
