"""The natural-patch norm (Cadena et al. 2018: half the mean norm of natural patches)."""

from __future__ import annotations

import math

import pytest

from artiphys.stimuli.patch_norm import default_natural_folder, natural_patch_norm


def test_natural_patch_norm(imagenet_sample_dir):
    size = 17
    norm = natural_patch_norm(imagenet_sample_dir, size, mean=(0.5, 0.5, 0.5), n_images=16)
    assert norm == pytest.approx(3.51, rel=0.01)   # measured once; seeded, so it repeats
    # half the norm of 17 px RGB patches around mid-grey: a per-pixel RMS of ~0.1-0.4
    rms = 2 * norm / math.sqrt(3 * size * size)
    assert 0.1 < rms < 0.4
    # twice the side: about twice the norm (per-pixel contrast does not depend on size)
    big = natural_patch_norm(imagenet_sample_dir, 2 * size, mean=(0.5, 0.5, 0.5), n_images=16)
    assert 1.6 < big / norm < 2.4


def test_default_natural_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("ARTIPHYS_NATURAL_IMAGES", str(tmp_path))
    assert default_natural_folder() == tmp_path
    monkeypatch.delenv("ARTIPHYS_NATURAL_IMAGES")
    monkeypatch.setenv("ARTIPHYS_SHARED", str(tmp_path))
    assert default_natural_folder() is None
    (tmp_path / "data" / "imagenet-sample-256").mkdir(parents=True)
    assert default_natural_folder() == tmp_path / "data" / "imagenet-sample-256"
