"""Contact sheets and the ``artiphys stimuli`` command."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

from artiphys.cli import main
from artiphys.stimuli.registry import make_stimuli
from artiphys.stimuli.sheet import contact_sheet, default_labels


def test_labels_name_shape_and_rotation():
    s = make_stimuli("shapes_sweep", step_px=10, extent_px=10)
    labels = default_labels(s.params)
    assert labels[0] == "0 r0 dx-10" and labels[-1] == "blank"
    g = make_stimuli("gratings", orientation_deg=[0, 90], sf_cycles_per_px=0.1)
    assert default_labels(g.params) == ["orientation=0", "orientation=90"]


def test_contact_sheet_grid_and_crop():
    s = make_stimuli("shapes")
    sheet = contact_sheet(s, ncols=20, limit=40)
    assert sheet.size[0] == 2 + 20 * (64 + 2) and sheet.size[1] == 2 + 2 * (64 + 12 + 2)
    arr = np.asarray(sheet)
    # first tile: the small circle, cropped around the union of content, white on black
    tile = arr[2:66, 2:66]
    assert tile.max() == 255 and tile[0, 0].tolist() == [0, 0, 0]


def test_cli_draws_all_362_shapes(tmp_path):
    out = tmp_path / "shapes.png"
    res = CliRunner().invoke(main, ["stimuli", "shapes", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "362 of 362" in res.output
    img = Image.open(out)
    n_cols = 20  # ceil(sqrt(362))
    assert img.size == (2 + n_cols * 66, 2 + 19 * 78)


def test_cli_json_and_options(tmp_path):
    res = CliRunner().invoke(main, ["stimuli", "shapes:size_px=64", "-o", "unique=false", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert len(rows) == 370 and rows[0]["size_px"] == 64 and rows[5]["rotation"] == 3
    res = CliRunner().invoke(main, ["stimuli", "gratings", "-o", "orientation_deg=0,45,90", "--json"])
    assert res.exit_code == 0 and [r["orientation_deg"] for r in json.loads(res.output)] == [0, 45, 90]
    res = CliRunner().invoke(main, ["stimuli", "--list"])
    assert "shapes_sweep" in res.output.split()


def test_cli_errors_are_one_line():
    for args in (["stimuli", "shapez"], ["stimuli", "shapes", "-o", "scale=huge"],
                 ["stimuli", "shapes", "-o", "size_px"], ["stimuli", "shapes", "--out", "/nonexistent/x.png"]):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 2, (args, res.output)
        assert res.output.startswith("artiphys: error:") and res.output.count("\n") == 1
