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


# ---- every PIL mode at its true range (issue 14, item 5) -----------------------------------

def _const(mode, value, n=16):
    """A ``n x n`` image of one value in ``mode``."""
    return Image.new(mode, (n, n), value)


def _load(tmp_path, im, name, n=16, **save):
    path = tmp_path / name
    im.save(path, **save)
    return load_image(path, n).numpy()


def test_sixteen_bit_noise_png_keeps_its_range(tmp_path):
    """The issue's case: before, mean 0.998 with 98.6% of the pixels clipped at 1."""
    noise = np.random.default_rng(0).integers(0, 65536, (64, 64), dtype=np.uint16)
    Image.fromarray(noise).save(tmp_path / "n16.png")
    assert Image.open(tmp_path / "n16.png").mode == "I;16"
    img = load_image(tmp_path / "n16.png", 64).numpy()
    assert img.mean() == pytest.approx(noise.mean() / 65535, abs=1e-4)
    assert abs(img.mean() - 0.5) < 0.01 and (img == 1).mean() < 0.001
    np.testing.assert_allclose(img[0], noise / 65535, atol=1e-6)  # exact levels, same size
    assert np.array_equal(img[0], img[2])


@pytest.mark.parametrize("mode,suffix,value,expect", [
    ("I;16", ".png", 1000, 1000 / 65535),
    ("I;16", ".tif", 65535, 1.0),
    ("I;16B", ".tif", 40000, 40000 / 65535),
    ("I", ".tif", 30000, 30000 / 65535),
    ("F", ".tif", 0.25, 0.25),
    ("L", ".png", 128, 128 / 255),
    ("1", ".png", 1, 1.0),
    ("1", ".png", 0, 0.0),
])
def test_gray_modes(tmp_path, mode, suffix, value, expect):
    img = _load(tmp_path, _const(mode, value), "g" + suffix)
    assert Image.open(tmp_path / ("g" + suffix)).mode == mode
    np.testing.assert_allclose(img, expect, atol=1e-6)


@pytest.mark.parametrize("mode,suffix,value,expect_rgb", [
    ("LA", ".png", (200, 0), (200, 200, 200)),          # alpha dropped, not composited
    ("LA", ".png", (200, 255), (200, 200, 200)),
    ("RGBA", ".png", (50, 100, 150, 0), (50, 100, 150)),
    ("RGBA", ".png", (50, 100, 150, 128), (50, 100, 150)),
    ("CMYK", ".tif", (0, 0, 0, 0), (255, 255, 255)),    # white
    ("CMYK", ".tif", (0, 0, 0, 255), (0, 0, 0)),
    ("CMYK", ".tif", (255, 0, 0, 0), (0, 255, 255)),    # full cyan
    ("YCbCr", ".tif", (128, 128, 128), (128, 128, 128)),
])
def test_colour_and_alpha_modes(tmp_path, mode, suffix, value, expect_rgb):
    img = _load(tmp_path, _const(mode, value), "c" + suffix)
    assert Image.open(tmp_path / ("c" + suffix)).mode == mode
    got = img[:, 0, 0] * 255
    np.testing.assert_allclose(got, expect_rgb, atol=1.01)
    assert (img == img[:, :1, :1]).all()  # uniform, as written


def _palette_image(mode="P"):
    im = Image.new(mode, (16, 16), 0 if mode == "P" else (0, 255))
    im.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    im.paste(1 if mode == "P" else (1, 0), (0, 0, 8, 16))  # left half: colour 1
    return im


def test_palette_modes_with_and_without_transparency(tmp_path):
    left, right = np.array([200, 100, 50]) / 255, np.array([10, 20, 30]) / 255
    plain = _load(tmp_path, _palette_image(), "p.png")
    np.testing.assert_allclose(plain[:, 0, 0], left, atol=1e-6)
    np.testing.assert_allclose(plain[:, 0, 15], right, atol=1e-6)
    see_through = _load(tmp_path, _palette_image(), "pt.png", transparency=1)
    assert "transparency" in Image.open(tmp_path / "pt.png").info
    np.testing.assert_allclose(see_through, plain, atol=1e-6)  # alpha dropped: stored colours
    pa = _load(tmp_path, _palette_image("PA"), "pa.tif")
    assert Image.open(tmp_path / "pa.tif").mode == "PA"
    np.testing.assert_allclose(pa, plain, atol=1e-6)


def test_out_of_range_wide_modes_are_clipped_with_a_warning(tmp_path):
    with pytest.warns(UserWarning, match="clipped"):
        img = _load(tmp_path, _const("I", 70000), "big.tif")
    assert np.all(img == 1)
    with pytest.warns(UserWarning, match="clipped"):
        img = _load(tmp_path, _const("F", 1.5), "over.tif")
    assert np.all(img == 1)
    with pytest.raises(StimulusError, match="NaN"):
        _load(tmp_path, _const("F", float("nan")), "nan.tif")


def test_sixteen_bit_resize_keeps_fine_levels(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (64, 1))
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    img = load_image(tmp_path / "ramp.png", 32).numpy()[0]
    assert img.min() < 0.02 and img.max() > 0.98
    assert len(np.unique(img)) > 20  # a smooth ramp, not a few 8-bit levels


def test_tiff_files_are_found_in_folders(tmp_path):
    Image.fromarray(np.full((20, 20), 30000, np.uint16)).save(tmp_path / "a.tif")
    Image.fromarray(np.full((20, 20, 3), 90, np.uint8)).save(tmp_path / "b.TIFF")
    s = make_stimuli("images", folder=tmp_path, size_px=16)
    assert list(s.params.path) == ["a.tif", "b.TIFF"]
    x = s.images().numpy()
    np.testing.assert_allclose(x[0], 30000 / 65535, atol=1e-6)
    np.testing.assert_allclose(x[1], 90 / 255, atol=1e-6)
