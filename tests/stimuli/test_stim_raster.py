"""Polygon rasterisation: coverage equals area, pixel-centre rule, outlines."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from artiphys.stimuli._raster import fill_polygon, paste, stroke_polygon


def _draw(win, size):
    canvas = np.zeros((size, size), np.float32)
    paste(canvas, *win, 1.0, 0.0)
    return canvas


@settings(max_examples=30, deadline=None)
@given(x0=st.integers(0, 30), y0=st.integers(0, 30), w=st.integers(1, 20), h=st.integers(1, 20),
       s=st.sampled_from([1, 2, 4]))
def test_rectangle_on_pixel_edges_is_exact(x0, y0, w, h, s):
    # pixel i spans [i - 0.5, i + 0.5): a rectangle on pixel edges covers whole pixels only
    xy = np.array([[x0 - 0.5, y0 - 0.5], [x0 + w - 0.5, y0 - 0.5], [x0 + w - 0.5, y0 + h - 0.5],
                   [x0 - 0.5, y0 + h - 0.5]])
    img = _draw(fill_polygon(xy, 64, s), 64)
    expect = np.zeros((64, 64), np.float32)
    expect[y0:y0 + h, x0:x0 + w] = 1
    assert np.array_equal(img, expect)


@settings(max_examples=30, deadline=None)
@given(cx=st.floats(15, 45), cy=st.floats(15, 45), r=st.floats(3, 12), n=st.integers(3, 40))
def test_supersampled_coverage_matches_polygon_area(cx, cy, r, n):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    xy = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1)
    area = 0.5 * abs(np.sum(xy[:, 0] * np.roll(xy[:, 1], -1) - np.roll(xy[:, 0], -1) * xy[:, 1]))
    img = _draw(fill_polygon(xy, 64, 8), 64)
    assert img.sum() == pytest.approx(area, abs=0.02 * area + 1.5)
    assert 0 <= img.min() and img.max() <= 1


def test_vertex_order_and_clipping():
    sq = np.array([[10, 10], [20, 10], [20, 20], [10, 20]], float)
    a = _draw(fill_polygon(sq, 32), 32)
    b = _draw(fill_polygon(sq[::-1], 32), 32)
    assert np.array_equal(a, b)
    # partly outside the image: clipped, no error
    big = _draw(fill_polygon(sq * 3 - 40, 32), 32)  # spans -10..20
    assert big[0, 0] == 1 and big.sum() == 20 * 20
    gone = fill_polygon(sq + 100, 32)
    assert gone[0].size == 0


def test_stroke_width():
    sq = np.array([[10, 10], [50, 10], [50, 50], [10, 50]], float)
    line = _draw(stroke_polygon(sq, 64, 2.0, supersample=4), 64)
    assert line.sum() == pytest.approx(4 * 40 * 2, rel=0.05)
    assert line[30, 30] == 0 and line[10, 30] == 1
