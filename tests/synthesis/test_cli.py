import json

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from artiphys.cli import main


@pytest.fixture()
def runner():
    return CliRunner()


def test_visualize_writes_gallery_probes_and_manifest(runner, tmp_path):
    out = tmp_path / "vis"
    res = runner.invoke(main, ["visualize", "squeezenet1_0", "--untrained", "--input-size", "48",
                               "--layer", "features.3,features.4", "--units", "0-2",
                               "--steps", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    for layer in ("features.3", "features.4"):
        d = out / "synthesis" / layer
        assert (d / "gallery.png").is_file() and (d / "unit_0002.png").is_file()
        ds = xr.open_dataset(d / "images.nc")
        assert ds["images"].shape == (3, 3, 48, 48) and ds["trace"].shape == (2, 3)
        assert json.loads(ds.attrs["settings_json"])["units"] == [0, 1, 2]
        probes = xr.open_dataset(d / "probes.nc")
        assert list(probes.unit.values) == [0, 1, 2]
        assert (d / "probes.csv").read_text().startswith("unit,family,value,max,mean")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "synthesis" and manifest["finished"] is True
    again = runner.invoke(main, ["visualize", "squeezenet1_0", "--untrained", "--input-size", "48",
                                 "--layer", "features.3", "--units", "0", "--steps", "1",
                                 "--out", str(out)])
    assert again.exit_code == 2 and "already holds a run" in again.output


def test_visualize_single_colour_rf_size(runner, tmp_path):
    out = tmp_path / "vis"
    res = runner.invoke(main, ["visualize", "squeezenet1_0", "--untrained", "--input-size", "64",
                               "--layer", "features.3", "--units", "1", "--objective", "unit",
                               "--size", "rf", "--param", "pixel", "--color", "b", "--steps", "2",
                               "--suppress", "--no-probes", "--out", str(out)])
    assert res.exit_code == 0, res.output
    ds = xr.open_dataset(out / "synthesis" / "features.3" / "images.nc")
    assert ds["images"].shape[-1] == 19  # conv1 7 + pool 3 s2 + fire 3x3 at stride 4
    assert np.count_nonzero(ds["images"].sel(rgb=["r", "g"]).values) == 0


def test_bad_inputs_are_one_line_errors(runner, tmp_path):
    res = runner.invoke(main, ["visualize", "squeezenet1_0", "--untrained", "--layer", "features.99",
                               "--units", "0", "--steps", "1", "--out", str(tmp_path / "a")])
    assert res.exit_code == 2 and "Did you mean" in res.output
    res = runner.invoke(main, ["visualize", "squeezenet1_0", "--untrained", "--layer", "features.3",
                               "--units", "0", "--size", "huge", "--out", str(tmp_path / "b")])
    assert res.exit_code == 2 and "--size" in res.output


def test_top_patches_cli(runner, tmp_path, imagenet_sample_dir):
    out = tmp_path / "tp"
    res = runner.invoke(main, ["top-patches", "squeezenet1_0", "--untrained", "--input-size", "64",
                               "--images", str(imagenet_sample_dir), "--n-images", "10",
                               "--layer", "features.4", "--units", "0-1", "-k", "3",
                               "--out", str(out)])
    assert res.exit_code == 0, res.output
    d = out / "top_patches" / "features.4"
    import pandas as pd

    table = pd.read_csv(d / "table.csv")
    assert len(table) == 2 * 2 * 3
    assert set(table["sign"]) == {"excitatory", "suppressive"}
    ds = xr.open_dataset(d / "patches.nc")
    assert ds["patches"].shape == (2, 2, 3, 3, 27, 27)
    assert (d / "unit_0001.png").is_file()
