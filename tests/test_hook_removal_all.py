"""No forward or backward hook survives any public entry point that installs hooks, on normal
input, a bad target, or a module that raises inside forward (captum's
``test_hook_removal.py`` style: one table of entry points x cases)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from artiphys.errors import ArtiphysError
from artiphys.models.layer_table import list_layers
from artiphys.recording import record
from artiphys.synthesis import objectives
from artiphys.synthesis.diverse import DiverseRecipe, diverse_sets
from artiphys.synthesis.optimize import optimize
from artiphys.synthesis.param import pixel
from artiphys.synthesis.top_patches import guided_backprop
from artiphys.tuning.ti import sweep_responses
from artiphys.tuning.ti_layers import sweep_layers


class Boom(nn.Module):
    def forward(self, x):
        raise ValueError("bug inside forward")


class Net(nn.Module):
    def __init__(self, boom: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.tail = Boom() if boom else nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return self.tail(self.relu(self.conv(x)))


def all_hooks(model: nn.Module) -> dict[str, int]:
    out = {}
    for name, mod in model.named_modules():
        n = sum(len(getattr(mod, a)) for a in (
            "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"))
        if n:
            out[name] = n
    return out


def imgs(n=2, size=16):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))


ENTRY = {
    "record": lambda m, layer: record(m, imgs(), [layer], "center", batch_size=2),
    "optimize": lambda m, layer: optimize(m, objectives.channel(layer, 0), pixel(1, 16),
                                          steps=2),
    "guided_backprop": lambda m, layer: guided_backprop(m, imgs(), layer, [0, 1],
                                                        [(8, 8), (8, 8)]),
    "ti sweep": lambda m, layer: sweep_responses(m, imgs(1, 32), layer, [0, 2], check_rf=False),
    "ti sweep_layers": lambda m, layer: sweep_layers(m, imgs(1, 32), [layer], [0, 2]),
    "diverse_sets": lambda m, layer: diverse_sets(
        m, layer, [0], recipe=DiverseRecipe(n_images=2, lambdas=(0.0, 1.0), steps=2),
        size_px=16),
    "layer listing": lambda m, layer: list_layers(m, 16),
}
# case: (model has a failing module, layer, expected error)
CASES = {
    "normal": (False, "tail", None),
    "bad target": (False, "nope", ArtiphysError),
    "failing module": (True, "tail", Exception),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("entry", list(ENTRY))
def test_no_hook_survives(entry, case):
    boom, layer, error = CASES[case]
    model = Net(boom)
    if entry == "layer listing" and case == "bad target":
        pytest.skip("the listing takes no target")
    if error is None:
        ENTRY[entry](model, layer)
    else:
        with pytest.raises(error):
            ENTRY[entry](model, layer)
    assert all_hooks(model) == {}
