"""Natural images from a folder: order, sampling, crop, and bad files."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from artiphys.errors import StimulusError
from artiphys.models.spec import Preprocessing
from artiphys.stimuli.base import to_model_input
from artiphys.stimuli.natural import load_image
from artiphys.stimuli.registry import make_stimuli


def test_sample_of_imagenet_folder_is_seeded_and_sorted(imagenet_sample_dir):
    a = make_stimuli("images", folder=imagenet_sample_dir, n=6, seed=0)
    b = make_stimuli("images", folder=str(imagenet_sample_dir), n=6, seed=0)
    c = make_stimuli("images", folder=imagenet_sample_dir, n=6, seed=1)
    assert list(a.params.path) == list(b.params.path) == sorted(a.params.path)
    assert list(a.params.path) != list(c.params.path)
    assert a.content_hash == b.content_hash != c.content_hash
    x = a.images()
    assert x.shape == (6, 3, 224, 224) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert torch.equal(x, b.images())
    m = to_model_input(x, Preprocessing(input_size_px=224))
    assert abs(float(m.mean())) < 1.5


def test_all_images_in_deterministic_order(imagenet_sample_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the sample folder is clean: no warning
        s = make_stimuli("images", folder=imagenet_sample_dir, size_px=227)
    assert len(s) == 1000
    assert s.params.path.iloc[0] == "n01440764_tench.jpg"
    assert list(s.params.path) == sorted(s.params.path)
    assert s.images(0, 2).shape == (2, 3, 227, 227)


def test_resize_shorter_side_then_centre_crop(tmp_path):
    arr = np.zeros((60, 120, 3), np.uint8)
    arr[:, 30:90] = 255  # bright central square of a 2:1 image
    Image.fromarray(arr).save(tmp_path / "wide.png")
    img = load_image(tmp_path / "wide.png", 30).numpy()
    assert img.shape == (3, 30, 30)
    assert img[:, :, 2:-2].min() > 0.99  # the crop is the central square


def test_bad_files_are_skipped_with_one_warning(tmp_path, imagenet_sample_dir):
    good = sorted(imagenet_sample_dir.glob("*.jpg"))[:3]
    (tmp_path / "sub").mkdir()
    shutil.copy(good[0], tmp_path / "a.jpg")
    shutil.copy(good[1], tmp_path / "sub" / "b.JPEG")
    Image.fromarray(np.full((40, 50, 3), 128, np.uint8)).save(tmp_path / "sub" / "c.png")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "broken.jpg").write_bytes(b"this is not a jpeg")
    data = good[2].read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning) as record:
        s = make_stimuli("images", folder=tmp_path, size_px=64)
    assert len(record) == 1
    msg = str(record[0].message)
    for name in ("notes.txt", "broken.jpg", "truncated.jpg"):
        assert name in msg
    assert list(s.params.path) == ["a.jpg", "sub/b.JPEG", "sub/c.png"]
    assert s.images().shape == (3, 3, 64, 64)
    with pytest.warns(UserWarning):
        assert len(make_stimuli("images", folder=tmp_path, n=2, seed=3)) == 2
    with pytest.raises(StimulusError, match="only 3 readable"):
        make_stimuli("images", folder=tmp_path, n=10)
    with pytest.raises(StimulusError, match="does not exist"):
        make_stimuli("images", folder=tmp_path / "nope")
