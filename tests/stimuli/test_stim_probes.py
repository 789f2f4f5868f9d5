"""Probe transforms (zoom, rotation, colour) and baseline images."""

from __future__ import annotations

import pytest
import torch

from artiphys.errors import StimulusError
from artiphys.stimuli.base import StimulusSet
from artiphys.stimuli.probes import (baseline_images, grayscale, keep_channel, permute_channels,
                                     probe_set, rotate, swap_channels, zoom)
from artiphys.stimuli.registry import make_stimuli, parse_stimuli_arg


def _dot(n=33, row=16, col=26):
    x = torch.zeros(1, 3, n, n)
    x[..., row, col] = 1
    return x


def _argmax_rc(img):
    return divmod(int(img[0, 0].argmax()), img.shape[-1])


def test_zoom_keeps_size_and_scales_about_the_centre():
    x = _dot()
    assert torch.allclose(zoom(x, 1.0, fill=0), x, atol=1e-6)
    assert _argmax_rc(zoom(x, 0.5, fill=0)) == (16, 21)  # 10 px right of centre -> 5 px
    big = zoom(_dot(col=20), 2.0, fill=0)
    assert big.shape == x.shape and _argmax_rc(big) == (16, 24)  # 4 px -> 8 px
    shrunk = zoom(torch.ones(1, 3, 32, 32), 0.5, fill=0.5)
    assert float(shrunk[0, 0, 0, 0]) == 0.5 and float(shrunk[0, 0, 16, 16]) == 1.0


def test_rotation_is_counter_clockwise_on_screen():
    x = _dot()  # right of centre
    assert _argmax_rc(rotate(x, 90, fill=0)) == (6, 16)  # -> above the centre
    assert _argmax_rc(rotate(x, -90, fill=0)) == (26, 16)
    assert torch.allclose(rotate(x, 360, fill=0), x, atol=1e-5)


def test_colour_probes():
    x = torch.rand(2, 3, 8, 8)
    g = keep_channel(x, "g")
    assert torch.equal(g[:, 1], x[:, 1]) and g[:, [0, 2]].abs().sum() == 0
    assert torch.equal(keep_channel(x, 2)[:, 2], x[:, 2])
    p = permute_channels(x, "brg")
    assert torch.equal(p[:, 0], x[:, 2]) and torch.equal(p[:, 1], x[:, 0])
    s = swap_channels(keep_channel(x, "r"), "r", "b")  # a red image becomes blue
    assert torch.equal(s[:, 2], x[:, 0]) and s[:, :2].abs().sum() == 0
    gray = grayscale(x)
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    assert torch.allclose(gray[:, 0], 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])
    with pytest.raises(StimulusError):
        keep_channel(x, "alpha")
    with pytest.raises(StimulusError):
        permute_channels(x, "rrg")


def test_baselines():
    assert torch.equal(baseline_images("white", 2, 16), torch.ones(2, 3, 16, 16))
    assert torch.equal(baseline_images("gray", 1, 16), torch.full((1, 3, 16, 16), 0.5))
    n1, n2 = baseline_images("noise", 2, 64, seed=5), baseline_images("noise", 2, 64, seed=5)
    assert torch.equal(n1, n2) and not torch.equal(n1[0], n1[1])
    assert float(n1.mean()) == pytest.approx(0.5, abs=0.01)
    s = make_stimuli("baselines", n=2, size_px=32)
    assert list(s.params.kind) == ["noise", "noise", "white", "white", "gray", "gray"]
    assert s.images().shape == (6, 3, 32, 32)


def test_probe_sets_transform_any_set():
    base = StimulusSet.from_tensor(_dot().repeat(2, 1, 1, 1))
    ps = probe_set(base, "rotate", [0, 90, 180])
    assert len(ps) == 6 and {"probe", "probe_value", "base_index"} <= set(ps.params.columns)
    imgs = ps.images()
    assert _argmax_rc(imgs[2:3]) == (6, 16)  # value 90, first base image
    sh = parse_stimuli_arg("probe:base=shapes,transform=zoom,values=0.5;2,unique=false")
    assert len(sh) == 740 and sh.params.probe_value.iloc[-1] == 2.0
    small, large = sh.images(1, 2), sh.images(371, 372)  # the big circle at zoom 0.5 and 2
    assert float(small[0, 0, 0, 0]) == 0.0  # shrinking pads with the border colour (black)
    ratio = float((large > 0.5).sum()) / float((small > 0.5).sum())
    assert ratio == pytest.approx(16, rel=0.1)
    gray = make_stimuli("probe", base="noise", transform="grayscale", n=2, size_px=16)
    assert len(gray) == 2 and torch.equal(gray.images()[:, 0], gray.images()[:, 2])
    with pytest.raises(StimulusError, match="unknown probe"):
        make_stimuli("probe", transform="melt", values=1)
    with pytest.raises(StimulusError, match="needs values"):
        make_stimuli("probe", transform="zoom")
