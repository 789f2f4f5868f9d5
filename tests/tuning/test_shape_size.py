"""Shape sizes per layer: px or a fraction of the RF, with the sweep's canvas needs."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from artiphys.errors import StimulusError
from artiphys.models.spec import ModelSpec, Preprocessing
from artiphys.stimuli.shapes import shapes, shapes_extent_px
from artiphys.tuning.shape_size import parse_shape_size, resolve_shape_sizes
from artiphys.tuning.ti import position_sweep


def _box_net() -> ModelSpec:
    """conv 21 px (RF 21, centre unit at 32 on a 64 px input), then a 1-D linear layer."""
    net = nn.Sequential(nn.Conv2d(3, 2, 21), nn.Flatten(), nn.Linear(2 * 44 * 44, 3))
    return ModelSpec("box", net.eval(), Preprocessing(64, (0.5,) * 3, (0.25,) * 3))


def test_parse_shape_size_accepts_px_and_rf_fractions_and_refuses_the_rest():
    assert parse_shape_size("32") == ("px", 32.0) and parse_shape_size(24.5) == ("px", 24.5)
    assert parse_shape_size("rf:0.5") == ("rf", 0.5) and parse_shape_size("RF:1") == ("rf", 1.0)
    for bad in ("rf:", "rf:-1", "0", "big", "rf:x"):
        with pytest.raises(StimulusError, match="rf:0.5"):
            parse_shape_size(bad)


def test_union_extent_of_the_shapes_matches_the_rendered_set():
    lo, hi = shapes_extent_px(32)
    assert hi - lo == pytest.approx(42.17, abs=0.01)
    im = shapes(size_px=32, canvas_px=227).images()
    cols = torch.nonzero((im[:, 0] > 0).any(0).any(0)).flatten()
    c = 113  # the shapes' centre on a 227 px canvas
    assert c + lo - 0.5 <= float(cols.min()) and float(cols.max()) <= c + hi + 0.5
    assert float(cols.min()) - 0.5 <= c + lo + 0.5  # the rendered reach is within a pixel


def test_rf_fraction_sizes_each_layer_and_predicts_the_ti_window():
    """Box RF 21: rf:0.5 -> 10.5 px shapes, a 13.8 px union, |d| <= 3.6 -> d in {-2, 0, 2}."""
    plan = resolve_shape_sizes(_box_net(), ["0", "2"], "rf:0.5", positions_px=position_sweep(2, 12))
    conv = plan["0"]
    assert conv.size_px == 10.5 and conv.rf_size_px == (21, 21) and conv.center_px == (32.0, 32.0)
    assert conv.n_in_rf == (3, 3) and conv.fits and conv.note == ""
    assert conv.stimulus_extent_px[1] - conv.stimulus_extent_px[0] == pytest.approx(
        42.17 * 10.5 / 32, abs=0.01)
    fc = plan["2"]  # the whole image is its RF: 32 px shapes, whose 42 px union + 24 px
    assert fc.rf_size_px == (64, 64) and fc.size_px == 32.0  # sweep need a 67 px input
    assert not fc.fits and fc.input_px_needed == 67 and "67 px input" in fc.note
    json.dumps({k: v.to_dict() for k, v in plan.items()})


def test_px_sizes_that_do_not_fit_say_what_to_change():
    plan = resolve_shape_sizes(_box_net(), ["0"], "32", positions_px=position_sweep(2, 50))
    conv = plan["0"]  # 42.2 px union + 100 px sweep + 2 x 0.5 px (centre unit off centre)
    assert conv.n_in_rf == (0, 0) and not conv.fits and conv.input_px_needed == 144
    assert "TI needs 3" in conv.note and "144 px input" in conv.note


@pytest.mark.slow
def test_squeezenet_fire2_rf_fraction():
    """fire2 (RF 11 / 19 px): at 32 px no unit can get a TI; rf:0.5 (9.5 px shapes) lets the
    3x3 branch hold them at 3 positions."""
    from torchvision.models import squeezenet1_0

    spec = ModelSpec("squeezenet", squeezenet1_0().eval(), Preprocessing(224))
    fixed = resolve_shape_sizes(spec, ["features.3"], "32")["features.3"]
    assert fixed.rf_size_px == (11, 19) and fixed.n_in_rf == (0, 0) and fixed.fits
    frac = resolve_shape_sizes(spec, ["features.3"], "rf:0.5")["features.3"]
    assert frac.size_px == 9.5 and frac.n_in_rf == (0, 3)
