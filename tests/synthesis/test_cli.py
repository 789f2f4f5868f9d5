import json

import numpy as np
import pytest
from click.testing import CliRunner

from artiphys.cli import main
from artiphys.report.results import run_results


@pytest.fixture()
def runner():
    return CliRunner()


def test_visualize_writes_images_gallery_probes_and_manifest(runner, tmp_path):
    out = tmp_path / "vis"
    args = ["visualize", "squeezenet1_0", "--untrained", "--input-size", "48",
            "--layer", "features.3,features.4", "--units", "0-2", "--units-per-batch", "2",
            "--steps", "2", "--out", str(out)]
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    for layer in ("features.3", "features.4"):
        assert (out / "synthesis" / layer / "gallery.png").is_file()
        batches = run_results(out, layer=layer, result="maximal_images")
        assert len(batches) == 2  # units 0-1, then 2: one step each
        ds = batches[0].load()
        assert ds["images"].shape == (2, 3, 48, 48) and ds["trace"].shape == (2, 2)
        assert json.loads(ds.attrs["settings_json"])["units"] == [0, 1]
        assert ds.attrs["model"] == "squeezenet1_0" and ds.attrs["layer"] == layer
        (probes,) = run_results(out, layer=layer, result="probes")
        assert list(probes.load().unit.values) == [0, 1, 2]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["experiments"]["visualize"]["status"] == "finished"
    again = runner.invoke(main, args)
    assert again.exit_code == 2 and "already holds a visualize run" in again.output
    resumed = runner.invoke(main, args + ["--resume"])
    assert resumed.exit_code == 0 and "computed" not in (out / "run.log").read_text().split(
        "visualize: resumed")[-1]


def test_visualize_single_colour_rf_size(runner, tmp_path):
    out = tmp_path / "vis"
    res = runner.invoke(main, ["visualize", "squeezenet1_0", "--untrained", "--input-size", "64",
                               "--layer", "features.3", "--units", "1", "--objective", "unit",
                               "--size", "rf", "--param", "pixel", "--color", "b", "--steps", "2",
                               "--suppress", "--no-probes", "--out", str(out)])
    assert res.exit_code == 0, res.output
    (batch,) = run_results(out, layer="features.3", result="maximal_images")
    ds = batch.load()
    assert ds["images"].shape[-1] == 19  # conv1 7 + pool 3 s2 + fire 3x3 at stride 4
    assert np.count_nonzero(ds["images"].sel(rgb=["r", "g"]).values) == 0


def test_bad_inputs_are_one_line_errors(runner, tmp_path):
    res = runner.invoke(main, ["visualize", "squeezenet1_0", "--untrained", "--layer", "features.99",
                               "--units", "0", "--steps", "1", "--out", str(tmp_path / "a")])
    assert res.exit_code == 2 and "Did you mean" in res.output
    res = runner.invoke(main, ["visualize", "squeezenet1_0", "--untrained", "--layer", "features.3",
                               "--units", "0", "--size", "huge", "--out", str(tmp_path / "b")])
    assert res.exit_code == 2 and "size" in res.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_top_patches_cli(runner, tmp_path, imagenet_sample_dir):
    out = tmp_path / "tp"
    res = runner.invoke(main, ["top-patches", "squeezenet1_0", "--untrained", "--input-size", "64",
                               "--images", str(imagenet_sample_dir), "--n-images", "10",
                               "--layer", "features.4", "--units", "0-1", "-k", "3",
                               "--out", str(out)])
    assert res.exit_code == 0, res.output
    (result,) = run_results(out, layer="features.4", result="top_patches")
    ds = result.load()
    assert ds["patches"].shape == (2, 2, 3, 3, 27, 27)
    assert ds.sizes["row"] == 2 * 2 * 3
    assert set(ds["table_sign"].values) == {"excitatory", "suppressive"}
    sup = ds["table_read_on"].values[ds["table_sign"].values == "suppressive"]
    assert set(sup) == {"features.4:linear"}


def test_top_patches_cli_method(runner, tmp_path, imagenet_sample_dir):
    import json

    feats = {}
    for method in ("deconv", "guided"):
        out = tmp_path / method
        args = ["top-patches", "squeezenet1_0", "--untrained", "--input-size", "64",
                "--images", str(imagenet_sample_dir), "--n-images", "4", "--layer",
                "features.4", "--units", "0", "-k", "2", "--out", str(out)]
        res = runner.invoke(main, args + ([] if method == "deconv" else ["--method", method]))
        assert res.exit_code == 0, res.output
        ds = run_results(out, layer="features.4", result="top_patches")[0].load()
        name = json.loads(ds.attrs["settings_json"])["method"]
        assert name == {"deconv": "deconvnet", "guided": "guided-backprop"}[method]
        feats[method] = ds["features"].values
    assert not (feats["deconv"] == feats["guided"]).all()
    res = runner.invoke(main, ["top-patches", "squeezenet1_0", "--method", "lrp"])
    assert res.exit_code != 0

    out = tmp_path / "same"
    res = runner.invoke(main, args[:-1] + [str(out), "--suppressive", "same"])
    assert res.exit_code == 0, res.output
    ds = run_results(out, layer="features.4", result="top_patches")[0].load()
    assert json.loads(ds.attrs["settings_json"])["suppressive_layer"] == "features.4"
