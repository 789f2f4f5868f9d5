"""Contact sheets and the ``artiphys stimuli`` command."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from artiphys.cli import main
from artiphys.errors import StimulusError
from artiphys.stimuli.registry import make_stimuli
from artiphys.stimuli.sheet import contact_sheet, default_labels, save_contact_sheet, sheet_rows


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


# ---- bounded memory, sampling, streaming listings (issue 14, item 1) -----------------------

def test_sheet_rows_sample_evenly_above_the_cap():
    assert list(sheet_rows(5)) == [0, 1, 2, 3, 4] and list(sheet_rows(5, limit=2)) == [0, 1]
    rows = sheet_rows(36563, max_tiles=1024)
    assert len(rows) == 1024 == len(set(rows)) and rows[0] == 0 and rows[-1] == 36562
    assert np.ptp(np.diff(rows)) <= 1  # evenly spaced
    with pytest.raises(StimulusError, match="limit"):
        sheet_rows(10, limit=0)


def test_large_set_is_drawn_as_a_stated_sample(tmp_path):
    s = make_stimuli("shapes_sweep", step_px=5, extent_px=10)  # 5 x 362 + 1 = 1811 stimuli
    info = save_contact_sheet(s, tmp_path / "s.png", max_tiles=100)
    assert info.n_drawn == 100 and info.sampled and info.n_total == 1811
    assert "100 of 1811 stimuli, an evenly spaced sample" in info.summary
    assert info.rows[0] == 0 and info.rows[-1] == 1810  # the blank row, last, is drawn
    img = np.asarray(Image.open(tmp_path / "s.png"))
    assert img.shape[0] == 2 + 14 + 10 * (64 + 14)  # a caption band above 10 rows of tiles
    caption = img[:14, :300]
    assert (np.abs(caption.astype(int) - [255, 160, 120]).sum(-1) < 60).any()  # caption text
    whole = save_contact_sheet(s, tmp_path / "all.png", limit=50)
    assert not whole.sampled and whole.summary.startswith("50 of 1811 stimuli")


def test_default_tiles_keep_large_images_small():
    big = make_stimuli("gratings", orientation_deg=list(range(0, 180, 5)) * 20, size_px=512)
    sheet = contact_sheet(big, crop=False)  # 720 images of 512 px: tiles shrink to fit 64 Mpx
    assert sheet.size[0] * sheet.size[1] <= 1 << 26
    with pytest.raises(StimulusError, match="smaller tile_px"):
        contact_sheet(big, crop=False, tile_px=2048, limit=100)


# Runs the command in a grandchild: a child's peak RSS starts at its parent's size at fork
# (Linux keeps the old high-water mark across exec), so it must fork from a small process.
_RSS_LAUNCHER = """
import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:])
print("peak_rss_kb", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(rc)
"""


def _peak_rss_mb(args):
    """Peak resident memory (MB) of ``python -m artiphys ARGS``, and its output."""
    proc = subprocess.run([sys.executable, "-c", _RSS_LAUNCHER, sys.executable, "-m", "artiphys",
                           *args], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    kb = int(proc.stdout.split("peak_rss_kb")[-1])
    scale = 1 / 1024 if sys.platform == "darwin" else 1  # ru_maxrss: bytes on macOS, KB on Linux
    return kb * scale / 1024, proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="needs the resource module")
def test_contact_sheet_memory_does_not_grow_with_the_set(tmp_path):
    """362 and 36,563 shapes (before: 1.0 GB and killed at 24 GB): the same peak."""
    small, _ = _peak_rss_mb(["stimuli", "shapes_sweep", "-o", "extent_px=0",
                             "--out", str(tmp_path / "small.png")])
    large, out = _peak_rss_mb(["stimuli", "shapes_sweep", "-o", "extent_px=50", "-o", "step_px=1",
                               "--out", str(tmp_path / "large.png")])
    print(f"\npeak RSS: {small:.0f} MB for 363 stimuli, {large:.0f} MB for 36,563")
    assert "1024 of 36563 stimuli, an evenly spaced sample" in out
    assert large < 2048 and large - small < 200


def test_cli_json_streams_the_same_table():
    s = make_stimuli("shapes_sweep", step_px=10, extent_px=20)
    text = "".join(s.iter_json(rows_per_piece=100))
    assert json.loads(text) == json.loads(s.params.to_json(orient="records", indent=1))
    res = CliRunner().invoke(main, ["stimuli", "shapes_sweep", "-o", "step_px=10",
                                    "-o", "extent_px=20", "--json"])
    assert res.exit_code == 0 and len(json.loads(res.output)) == len(s) == 362 * 5 + 1


def test_sheet_under_a_regular_file_is_one_line(tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("x")
    for out in (blocker / "s.png", blocker / "sub" / "s.png"):
        res = CliRunner().invoke(main, ["stimuli", "shapes", "--limit", "4", "--out", str(out)])
        assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
        assert "is a regular file, not a folder" in res.output and str(blocker) in res.output
    assert list(tmp_path.iterdir()) == [blocker]
