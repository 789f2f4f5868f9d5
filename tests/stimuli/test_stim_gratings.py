"""Gratings and friends, checked by their spectra and geometry."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from artiphys.errors import StimulusError
from artiphys.stimuli.gratings import (binarised_grating, disk, dog_pattern, gabor, grating,
                                       neuromatch_grating)
from artiphys.stimuli.registry import make_stimuli, parse_stimuli_arg

N = 128


def _spectral_peak(img):
    """(orientation_deg in [0, 180), frequency in cycles/px) of the FFT peak, y up."""
    f = np.abs(np.fft.fft2(img - img.mean()))
    r, c = np.unravel_index(np.argmax(f), f.shape)
    fy_down, fx = np.fft.fftfreq(img.shape[0])[r], np.fft.fftfreq(img.shape[1])[c]
    fy = -fy_down  # rows point down, the pattern frame points up
    return np.rad2deg(np.arctan2(fy, fx)) % 180, np.hypot(fx, fy)


@settings(max_examples=25, deadline=None)
@given(kx=st.integers(-20, 20), ky=st.integers(1, 20), phase=st.floats(0, 360))
def test_fft_peak_at_requested_orientation_and_frequency(kx, ky, phase):
    # wave vectors on the FFT grid (integer cycles per image) give an exact peak
    sf = np.hypot(kx, ky) / N
    ori = np.rad2deg(np.arctan2(ky, kx))
    img = grating(N, ori, sf, phase_deg=phase)
    got_ori, got_sf = _spectral_peak(img)
    assert got_sf == pytest.approx(sf, abs=1e-9)
    assert min(abs(got_ori - ori % 180), 180 - abs(got_ori - ori % 180)) < 1e-6


@pytest.mark.parametrize("waveform", ["sine", "square"])
def test_orientation_convention(waveform):
    vertical_bars = grating(N, 0, 8 / N, waveform=waveform)
    assert np.allclose(vertical_bars, vertical_bars[:1])  # constant down each column
    horizontal_bars = grating(N, 90, 8 / N, waveform=waveform)
    assert np.allclose(horizontal_bars, horizontal_bars[:, :1])
    # 45 deg (y up): the wave vector points up-right, so the bars run up-left to down-right
    d = grating(N, 45, 8 / N, waveform=waveform)
    assert np.allclose(d[1:, 1:], d[:-1, :-1], atol=1e-6)


@pytest.mark.parametrize("ori,shift", [(0, (0, 1)), (90, (-1, 0))])
def test_phase_shift_translates_the_pattern(ori, shift):
    sf = 1 / 16
    base = grating(N, ori, sf)
    for d_px in (1, 3, 5):
        moved = grating(N, ori, sf, phase_deg=-360 * sf * d_px)  # moves d_px along the wave vector
        expect = np.roll(base, (shift[0] * d_px, shift[1] * d_px), axis=(0, 1))
        assert np.allclose(moved, expect, atol=1e-5)


def test_square_wave_contrast_mean_and_aperture():
    sq = grating(N, 30, 0.05, waveform="square", contrast=0.5, mean=0.4)
    levels = np.unique(sq).astype(np.float64)
    assert all(np.isclose(levels[:, None], [0.2, 0.4, 0.6], atol=1e-6).any(1))
    f = np.abs(np.fft.fft2(grating(N, 0, 8 / N, waveform="square") - 0.5))[0]
    assert 0.3 < f[24] / f[8] < 0.4  # third harmonic about 1/3 (sampled square wave)
    assert f[16] < 1e-6 * f[8]
    ap = grating(N, 0, 0.1, radius_px=20, x_px=40, y_px=60)
    r, c = np.mgrid[:N, :N]
    outside = (c - 40) ** 2 + (r - 60) ** 2 > 20 ** 2
    assert np.all(ap[outside] == np.float32(0.5))
    assert ap[~outside].max() == pytest.approx(1, abs=0.01)


def test_gabor_and_dog_and_disks():
    g = gabor(N, 0, 0.1, sigma_px=6)
    assert g[N // 2, N // 2] == pytest.approx(0.5 * (1 + np.cos(2 * np.pi * 0.1 * 0.5)), abs=0.05)
    assert abs(g[5, 5] - 0.5) < 1e-3  # envelope decays to the mean
    got_ori, got_sf = _spectral_peak(gabor(N, 90, 16 / N, sigma_px=20))
    assert got_ori == pytest.approx(90) and got_sf == pytest.approx(16 / N)
    on = dog_pattern(N, 3, 9)
    c = (N - 1) / 2
    assert on.max() == on[int(c), int(c)] or on[int(c), int(c)] > 0.9
    ring = on[int(c), int(c) + 10]
    assert ring < 0.5  # dark surround
    off = dog_pattern(N, 3, 9, polarity=-1)
    assert off[int(c), int(c)] < 0.1
    spot = disk(N, radius_px=10, background=0, intensity=1)
    assert spot.sum() == pytest.approx(np.pi * 100, rel=0.01)
    ann = disk(N, radius_px=20, inner_radius_px=10, background=0, intensity=1)
    assert ann.sum() == pytest.approx(np.pi * 300, rel=0.01)
    assert ann[int(c), int(c)] == 0


def test_neuromatch_binarised_grating_matches_the_tutorial():
    g = neuromatch_grating(0)
    assert g.shape == (48, 64) and set(np.unique(g)) == {-0.5, 0.5}
    # angle from vertical: 0 deg varies along x only
    assert np.allclose(g, g[:1])
    square = binarised_grating(48, 0)
    assert np.array_equal(square - 0.5, neuromatch_grating(0)[:, :48])
    for a in (-45, 30, 90):
        assert np.array_equal(binarised_grating(48, a) - 0.5, neuromatch_grating(a)[:, :48])
    p = neuromatch_grating(30, patch=True)
    assert set(np.unique(p)) == {-0.5, 0.0, 0.5}


def test_sweeps_in_one_call():
    s = make_stimuli("gratings", orientation_deg=[0, 45, 90], sf_cycles_per_px="0.02;0.05",
                     phase_deg=[0, 180])
    assert len(s) == 12
    assert list(s.params.columns[:4]) == ["orientation_deg", "sf_cycles_per_px", "phase_deg", "contrast"]
    x = s.images()
    assert x.shape == (12, 3, 227, 227)
    assert np.allclose(x[0, 0].numpy(), grating(227, 0, 0.02))
    row = s.params.iloc[7]
    assert np.allclose(x[7, 0].numpy(), grating(227, row.orientation_deg, row.sf_cycles_per_px,
                                                row.phase_deg))
    assert len(make_stimuli("gabors", orientation_deg="0;90", sigma_px=[4, 8])) == 4
    assert len(parse_stimuli_arg("binarised_grating:angle_deg=0;45;90")) == 3
    assert len(make_stimuli("dog", kind="spot", radius_px=[2, 4, 8, 16])) == 4
    assert make_stimuli("dog", kind="annulus").images().shape == (1, 3, 227, 227)
    with pytest.raises(StimulusError):
        make_stimuli("gratings", waveform="triangle")
    with pytest.raises(StimulusError):
        make_stimuli("gratings", orientation_deg="zero")
