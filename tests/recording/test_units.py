"""recording/units.py: unit selection by mode, order of units, copies not views."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from artiphys.errors import ResponseError, UnknownUnitError
from artiphys.recording.units import UnitSelector, output_shape

OUT = torch.arange(2 * 3 * 5 * 4, dtype=torch.float32).view(2, 3, 5, 4)


def test_center_is_every_channel_at_half_height_and_width():
    sel = UnitSelector("center", (3, 5, 4), "l", spatial=True)
    assert list(sel.channel) == [0, 1, 2] and set(sel.y) == {2} and set(sel.x) == {2}
    torch.testing.assert_close(sel.take(OUT), OUT[:, :, 2, 2])


def test_all_units_follow_their_coords():
    sel = UnitSelector("all", (3, 5, 4), "l", spatial=True)
    got = sel.take(OUT)
    assert got.shape == (2, 60)
    expected = OUT[:, torch.as_tensor(sel.channel), torch.as_tensor(sel.y), torch.as_tensor(sel.x)]
    torch.testing.assert_close(got, expected)


def test_explicit_triples_and_channels():
    sel = UnitSelector([(1, 0, 3), (2, 4, 0)], (3, 5, 4), "l", spatial=True)
    torch.testing.assert_close(sel.take(OUT), OUT[:, [1, 2], [0, 4], [3, 0]])
    sel = UnitSelector([2, 0], (3, 5, 4), "l", spatial=True)
    assert list(sel.y) == [2, 2]
    torch.testing.assert_close(sel.take(OUT), OUT[:, [2, 0], 2, 2])


@pytest.mark.parametrize("mode", ["center", "all", [1]])
def test_take_is_a_copy(mode):
    out = OUT.clone()
    got = UnitSelector(mode, (3, 5, 4), "l", spatial=True).take(out)
    before = got.clone()
    out.mul_(-1)  # what a later in-place op would do
    torch.testing.assert_close(got, before)


def test_one_d_layers_are_one_by_one_maps():
    out = torch.randn(2, 7)
    assert output_shape(out, "fc") == (7, 1, 1)
    sel = UnitSelector("center", (7, 1, 1), "fc", spatial=False)
    assert len(sel) == 7 and set(sel.y) == {0} and set(sel.x) == {0}
    torch.testing.assert_close(sel.take(out), out)
    torch.testing.assert_close(UnitSelector([(3, 0, 0)], (7, 1, 1), "fc", False).take(out),
                               out[:, [3]])


@pytest.mark.parametrize("units, match", [
    ([(3, 0, 0)], "channel < 3"), ([(0, 5, 0)], "y < 5"), ([9], "outside layer 'l'"),
    ("middle", "'center', 'all'"), ([], "empty"), ([1, (1, 2, 3)], "all be channels"),
])
def test_bad_units_say_what_to_do(units, match):
    with pytest.raises(UnknownUnitError, match=match):
        UnitSelector(units, (3, 5, 4), "l", spatial=True)


def test_unsupported_outputs():
    with pytest.raises(ResponseError, match="one tensor"):
        output_shape((OUT, OUT), "l")
    with pytest.raises(ResponseError, match=r"\(n, C, H, W\)"):
        output_shape(torch.zeros(2, 3, 4), "l")
    assert np.array_equal(UnitSelector("all", (1, 1, 1), "l", True).channel, [0])


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def layer_and_units(draw):
    C, H, W = (draw(st.integers(1, 6)) for _ in range(3))
    kind = draw(st.sampled_from(["center", "all", "channels", "triples"]))
    if kind == "channels":
        units = draw(st.lists(st.integers(0, C - 1), min_size=1, max_size=8))
    elif kind == "triples":
        units = draw(st.lists(st.tuples(st.integers(0, C - 1), st.integers(0, H - 1),
                                        st.integers(0, W - 1)), min_size=1, max_size=8))
    else:
        units = kind
    return (C, H, W), units


@settings(max_examples=60, deadline=None)
@given(layer_and_units(), st.booleans())
def test_take_matches_the_unit_coords(case, on_torch_path):
    """Column k of take() is the output at (channel[k], y[k], x[k]), on both copy paths."""
    (C, H, W), units = case
    out = torch.randn(3, C, H, W, dtype=torch.float64)
    if on_torch_path:
        out = out.to(torch.bfloat16)  # numpy has no bfloat16: the torch path is taken
    sel = UnitSelector(units, (C, H, W), "l", spatial=True)
    got = sel.take(out)
    expected = out[:, torch.as_tensor(sel.channel), torch.as_tensor(sel.y), torch.as_tensor(sel.x)]
    assert torch.equal(got, expected)
    if units == "all":  # every unit exactly once
        assert len({*zip(sel.channel, sel.y, sel.x)}) == C * H * W == len(sel)
