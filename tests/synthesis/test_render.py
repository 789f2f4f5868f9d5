import numpy as np
import pytest

from artiphys.errors import ArtiphysError
from artiphys.models.spec import Preprocessing, as_spec
from artiphys.synthesis.render import Recipe, render_units, rf_size_px, yosinski_recipe

from .nets import GaborCell, TinyNet, hooks_left


def test_rf_size_of_known_nets():
    spec = as_spec(TinyNet().eval(), Preprocessing(input_size_px=32))
    assert rf_size_px(spec, "conv1") == 5
    assert rf_size_px(spec, "relu2") == 5 + 2  # 3x3 conv on a stride-1 map: +2 px
    assert rf_size_px(as_spec(GaborCell(), Preprocessing(input_size_px=48)), "relu") == 21


def test_render_units_batches_and_sizes():
    spec = as_spec(TinyNet().eval(), Preprocessing(input_size_px=20))
    res = render_units(spec, "conv2", [0, 1, 2], param="pixel", batch_size=2,
                       recipe=yosinski_recipe(steps=4))
    assert res.images.shape == (3, 3, 20, 20)
    assert res.trace.shape == (4, 3) and res.final.shape == (3,)
    assert res.settings["units"] == [0, 1, 2]
    rf = render_units(spec, "relu2", [1], objective="unit", size_px="rf",
                      recipe=Recipe(steps=3))
    assert rf.images.shape[-1] == 7
    with pytest.raises(ArtiphysError, match="--objective unit"):
        render_units(spec, "relu2", [1], objective="channel", size_px="rf")
    assert hooks_left(spec.module) == []


def test_negated_render_suppresses():
    spec = as_spec(GaborCell(), Preprocessing(input_size_px=32))
    up = render_units(spec, "conv", [0], param="pixel", recipe=yosinski_recipe(steps=10))
    down = render_units(spec, "conv", [0], param="pixel", negate=True,
                        recipe=yosinski_recipe(steps=10))
    assert up.final[0] > 0 and down.final[0] > 0  # final = the (negated) objective
    assert down.objectives == ["-channel(conv, 0)"]
    assert np.isfinite(up.trace).all()
