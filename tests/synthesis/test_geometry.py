"""synthesis/geometry.py: analytic geometry where the graph is known, the models' empirical
measurement where it is not; both agree on a traceable net."""

from __future__ import annotations

import torch
from torch import nn

from artiphys.models.spec import Preprocessing, as_spec
from artiphys.synthesis.geometry import measured_geometry, unit_geometry


class Untraceable(nn.Module):
    """conv 5x5 -> relu -> conv 3x3 stride 2, behind data-dependent control flow."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(3, 6, 5, padding=2)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(6, 6, 3, stride=2, padding=1)

    def forward(self, x):
        x = self.relu(self.conv1(x))
        return self.conv2(x) if x.sum() > -1e9 else x


def test_untraceable_model_is_measured():
    spec = as_spec(Untraceable().eval(), Preprocessing(input_size_px=32))
    geo = unit_geometry(spec, "conv2")  # fx cannot trace it: measured on the model
    assert (geo.rf_size_px, geo.stride_px, geo.out_hw) == (7, 2, (16, 16))
    # unit (8, 8) is centred at input pixel 16 (conv2 pad 1, stride 2; conv1 pad 2)
    assert geo.box(8, 8) == (13, 13, 7)


def test_measured_matches_analytic_on_a_traceable_net():
    net = nn.Sequential(nn.Conv2d(3, 4, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(4, 4, 3, padding=1)).eval()
    spec = as_spec(net, Preprocessing(input_size_px=32))
    a, m = unit_geometry(spec, "3"), measured_geometry(spec, "3")
    assert (a.rf_size_px, a.stride_px) == (m.rf_size_px, m.stride_px) == (10, 2)
    assert a.box(8, 8) == m.box(8, 8)
