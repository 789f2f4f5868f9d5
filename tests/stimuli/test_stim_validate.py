"""Builder parameters are checked when a set is built (stimuli/_validate.py), and rendered
stimuli that come out blank are flagged (stimuli/checks.py). Issue 14, item 6."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from artiphys.cli import main
from artiphys.errors import StimulusError
from artiphys.stimuli.base import StimulusSet
from artiphys.stimuli.checks import BlankCheck, blank_images, find_blank_stimuli, intended_blank
from artiphys.stimuli.registry import make_stimuli

NAN = float("nan")

BAD = [  # (set, options, words in the message)
    ("shapes", {"x_px": 5000}, "entirely outside the 227 px canvas"),
    ("shapes", {"dx_px": 1000}, "entirely outside"),
    ("shapes", {"size_px": NAN}, "size_px must be a finite number"),
    ("shapes", {"size_px": -2}, "size_px must be > 0"),
    ("shapes", {"y_px": NAN}, "y_px must be a finite number"),
    ("shapes", {"dx_px": ""}, "dx_px is an empty list"),
    ("shapes", {"canvas_px": "big"}, "canvas_px must be a number"),
    ("shapes", {"intensity": 300}, "intensity must be >= 0 and <= 255"),
    ("shapes_sweep", {"canvas_px": 65}, "shapes lie entirely outside the 65 px canvas"),
    ("shapes_sweep", {"step_px": NAN}, "step_px must be a finite number"),
    ("gratings", {"size_px": -3}, "size_px must be a whole number >= 1"),
    ("gratings", {"size_px": 0}, "size_px must be a whole number >= 1"),
    ("gratings", {"orientation_deg": ""}, "orientation_deg is an empty list"),
    ("gratings", {"sf_cycles_per_px": NAN}, "sf_cycles_per_px must be a finite number"),
    ("gratings", {"contrast": -1}, "contrast must be >= 0"),
    ("gratings", {"mean": 2}, "mean must be >= 0 and <= 1"),
    ("gratings", {"radius_px": 10, "x_px": 500}, "aperture at x_px=500"),
    ("gratings", {"radius_px": 0}, "radius_px must be > 0"),
    ("gabors", {"sigma_px": 0}, "sigma_px must be > 0"),
    ("gabors", {"x_px": 400, "sigma_px": 10}, "Gabor patch at x_px=400"),
    ("dog", {"center_sigma_px": 12, "surround_sigma_px": 4}, "smaller than every surround"),
    ("dog", {"polarity": 2}, "polarity must be 1"),
    ("dog", {"kind": "spot", "radius_px": [2, -1]}, "radius_px must be > 0"),
    ("dog", {"kind": "spot", "x_px": -50}, "spot at x_px=-50"),
    ("dog", {"kind": "annulus", "radius_px": 4, "inner_radius_px": 4}, "inner_radius_px must be smaller"),
    ("binarised_grating", {"size_px": 0}, "size_px must be a whole number >= 1"),
    ("binarised_grating", {"res": 0}, "res must be > 0"),
    ("binarised_grating", {"angle_deg": ""}, "angle_deg is an empty list"),
    ("noise", {"size_px": NAN}, "size_px must be a finite number"),
    ("noise", {"n": 0}, "n must be a whole number >= 1"),
    ("baselines", {"kind": ""}, "kind is an empty list"),
    ("baselines", {"sigma": -1}, "sigma must be >= 0"),
    ("probe", {"transform": "zoom", "values": ""}, "needs values"),
    ("probe", {"transform": "zoom", "values": "0;1"}, "values must be > 0"),
]


@pytest.mark.parametrize("name,options,words", BAD, ids=[f"{n}-{o}" for n, o, _ in BAD])
def test_bad_parameters_are_refused_at_construction(name, options, words):
    with pytest.raises(StimulusError) as excinfo:
        make_stimuli(name, **options)
    msg = str(excinfo.value)
    assert words in msg and "\n" not in msg, msg


def test_images_size_is_checked(imagenet_sample_dir):
    with pytest.raises(StimulusError, match="size_px must be a whole number"):
        make_stimuli("images", folder=imagenet_sample_dir, n=2, size_px=0)


def test_sets_within_the_canvas_are_still_accepted():
    assert len(make_stimuli("shapes", x_px=10, canvas_px=227)) == 362  # partly off: drawn
    assert len(make_stimuli("shapes_sweep", canvas_px=227)) == 362 * 51 + 1
    assert len(make_stimuli("gratings", radius_px=20, x_px=240)) == 4  # aperture overlaps
    assert len(make_stimuli("gratings", contrast=0, size_px=32)) == 4  # uniform on purpose
    assert len(make_stimuli("gabors", x_px=250, sigma_px=10)) == 4  # within 3.3 sigma
    assert make_stimuli("gratings", size_px=64.0).size_px == 64


@pytest.mark.parametrize("args", [
    ["stimuli", "gratings", "-o", "size_px=-3", "--json"],
    ["stimuli", "binarised_grating", "-o", "size_px=0", "--json"],
    ["stimuli", "shapes", "-o", "x_px=5000", "--json"],
    ["stimuli", "shapes", "-o", "size_px=nan"],
])
def test_cli_listing_refuses_them_in_one_line(args):
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and res.output.startswith("artiphys: error:"), res.output
    assert res.output.count("\n") == 1


@pytest.mark.parametrize("stimuli", ["binarised_grating:size_px=0", "shapes:dx_px=1000",
                                     "shapes:x_px=5000,canvas_px=65"])
def test_record_refuses_them_before_writing(tmp_path, stimuli):
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["record", "v1bank", "--stimuli", stimuli, "--layers", "simple.relu",
                                    "--out", str(out)])
    assert res.exit_code == 2 and res.output.startswith("artiphys: error:"), res.output
    assert res.output.count("\n") == 1 and not out.exists()


# ---- blank renderings ----------------------------------------------------------------------

def test_blank_images_float_and_uint8():
    x = torch.rand(4, 3, 8, 8)
    x[1] = 0.3
    x[2] = 0.3
    x[2, 0, 0, 0] = 0.3 + 1 / 255  # one gray level: not blank
    assert blank_images(x).tolist() == [False, True, False, False]
    u8 = np.zeros((2, 8, 8, 3), np.uint8)
    u8[1, 3, 3] = 1
    assert blank_images(u8).tolist() == [True, False]


def test_intended_blanks_are_not_flagged():
    shapes = make_stimuli("shapes", blank=True, canvas_px=65, size_px=20)
    assert intended_blank(shapes.params).sum() == 1 and intended_blank(shapes.params)[-1]
    assert find_blank_stimuli(shapes, batch_size=100).size == 0
    base = make_stimuli("baselines", size_px=16)
    assert list(intended_blank(base.params)) == [False, True, True]
    assert find_blank_stimuli(base).size == 0
    assert find_blank_stimuli(make_stimuli("gratings", contrast=[0, 1], size_px=32)).size == 0


def test_shapes_smaller_than_a_pixel_are_flagged():
    tiny = make_stimuli("shapes", size_px=0.4, canvas_px=32)  # most cover no pixel centre
    with pytest.warns(UserWarning, match="render as blank"):
        rows = find_blank_stimuli(tiny)
    assert 0 < len(rows) <= len(tiny)
    imgs = tiny.images()
    assert all(float(imgs[r].max()) == 0 for r in rows)


def test_blank_check_over_a_recorders_batches():
    x = torch.rand(10, 3, 8, 8)
    x[[2, 7]] = 0.5
    s = StimulusSet.from_tensor(x)
    check = BlankCheck(s)
    for rows, images in s.batches(4):
        check.update(rows.start, images)
    assert check.rows.tolist() == [2, 7]
    with pytest.warns(UserWarning, match="2 of 10 stimuli"):
        check.warn()


def test_uniform_image_file_is_flagged(tmp_path):
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(tmp_path / "flat.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
        tmp_path / "noise.png")
    s = make_stimuli("images", folder=tmp_path, size_px=32)
    with pytest.warns(UserWarning, match="render as blank"):
        assert find_blank_stimuli(s).tolist() == [0]


def test_contact_sheet_says_how_many_drawn_stimuli_are_blank(tmp_path):
    tiny = make_stimuli("shapes", size_px=0.4, canvas_px=32)
    with pytest.warns(UserWarning, match="drawn stimuli"):
        res = CliRunner().invoke(main, ["stimuli", "shapes:size_px=0.4,canvas_px=32", "--out",
                                        str(tmp_path / "s.png")])
    assert res.exit_code == 0 and "drawn stimuli are blank" in res.output
    assert len(tiny) == 362
