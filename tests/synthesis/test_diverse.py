"""Diverse feature visualisations (Cadena et al. 2018) on toy cells whose answers are known.

Toy cells: a Gabor simple cell, an energy-model complex cell (exactly phase-invariant) and
a Hubel-Wiesel complex cell of 64 rectified simple cells whose pooling weights vary with the
subunit phase, ``w_i = pi / 64 (1 + 0.18 cos phi_i)`` (approximately invariant: one best
phase at 0 deg, every phase above ~0.75 of it). Images are 17 px (the cells' kernels,
+/- 3 sigma at 0.2 cycles/px). The Gabor phase of an image is
``atan2(<x, g_odd>, <x, g_even>)``, read from the cell's own quadrature pair at the centre
unit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr

from artiphys.errors import ArtiphysError
from artiphys.models.analytic import (
    CONTRAST_PREPROCESSING,
    energy_cell,
    hubel_wiesel_cell,
    simple_cell,
)
from artiphys.models.spec import as_spec
from artiphys.synthesis.diverse import (
    PAPER_LAMBDAS,
    DiverseRecipe,
    TextureRecipe,
    choose_lambda,
    diverse_objective,
    diverse_sets,
    feature_window,
    invariance_indices,
    linear_combination_index,
    min_pairwise_distance,
    natural_patch_norm,
    pre_rectifier_layer,
    preceding_layer,
    save_diverse,
    texture_window,
)
from artiphys.recording.hooks import forward_to_layers
from artiphys.synthesis.priors import SpectralGaussianPrior, as_prior

S = 17
SF = 0.2
HW_LAMBDAS = (0.0, 0.16, 0.32, 0.64, 1.28, 2.56)
N_IMAGES = 6


def _spec(module):
    return as_spec(module, CONTRAST_PREPROCESSING)


def _hw_cell():
    cell = hubel_wiesel_cell(sf_cycles_per_px=SF, size_px=S, n_phases=64)
    phases = torch.tensor([math.radians(p) for p in cell.subunits.channels.phase_deg])
    with torch.no_grad():
        cell.pool.weight.copy_((math.pi / 64 * (1 + 0.18 * torch.cos(phases))).view(1, -1, 1, 1))
    return _spec(cell)


def gabor_phases_deg(spec, images: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(np.asarray(images, dtype=np.float32))
    with torch.no_grad():
        q = forward_to_layers(spec, spec.preprocessing.normalise(x), ["quadrature"])["quadrature"]
    c = S // 2
    return np.degrees(np.arctan2(q[:, 1, c, c].numpy(), q[:, 0, c, c].numpy())) % 360


def largest_gap_deg(phases_deg: np.ndarray) -> float:
    p = np.sort(np.mod(phases_deg, 360))
    return float(np.diff(np.r_[p, p[0] + 360]).max())


MEASURED_NORM = 3.51  # natural_patch_norm(imagenet-sample-256, 17, mean 0.5, n_images=16)


@pytest.fixture(scope="module")
def norm(request):
    """Half the mean norm of natural 23 px patches; the measured value where the shared
    images are not found (the toy tests do not depend on the folder)."""
    try:
        folder = request.getfixturevalue("imagenet_sample_dir")
    except pytest.fail.Exception:
        return MEASURED_NORM
    return natural_patch_norm(folder, S, mean=(0.5, 0.5, 0.5), n_images=16)


@pytest.fixture(scope="module")
def hw_result(norm):
    spec = _hw_cell()
    ds = diverse_sets(spec, "pool", [0], norm=norm, size_px=S,
                      recipe=DiverseRecipe(steps=200, threshold=0.8, lambdas=HW_LAMBDAS,
                                           patience=None))
    return spec, ds


def _small_sweep(spec, layer, norm):
    recipe = DiverseRecipe(steps=200, threshold=0.8, lambdas=(0.0, 0.16, 0.64, 2.56),
                           patience=None)
    return diverse_sets(spec, layer, [0], norm=norm, size_px=S, recipe=recipe,
                        feature_layer="quadrature")


@pytest.fixture(scope="module")
def energy_result(norm):
    spec = _spec(energy_cell(sf_cycles_per_px=SF, size_px=S))
    return spec, _small_sweep(spec, "pool", norm)


@pytest.fixture(scope="module")
def simple_result(norm):
    spec = _spec(simple_cell(sf_cycles_per_px=SF, size_px=S))
    return spec, _small_sweep(spec, "relu", norm)


def _phases_at(spec, ds, lam_index):
    return gabor_phases_deg(spec, ds["images"].values[0, lam_index])


# ---- pieces ----------------------------------------------------------------------------

def test_paper_lambdas():
    assert len(PAPER_LAMBDAS) == 12
    assert PAPER_LAMBDAS[0] == 0.0 and PAPER_LAMBDAS[1] == 0.02
    assert PAPER_LAMBDAS[-1] == pytest.approx(20.48)


def test_recipe_rejects_bad_settings():
    with pytest.raises(ArtiphysError, match="include 0"):
        DiverseRecipe(lambdas=(0.1, 1.0))
    with pytest.raises(ArtiphysError, match="n_images"):
        DiverseRecipe(n_images=1)
    with pytest.raises(ArtiphysError, match="optimizer"):
        DiverseRecipe(optimizer="lbfgs")


def test_choose_lambda_takes_largest_before_first_drop():
    lams = [0.0, 0.1, 0.2, 0.4]
    act = np.array([[1.0, 0.95, 0.91, 0.5],    # -> 0.2
                    [1.0, 0.85, 0.95, 0.95],   # drop at 0.1 -> 0
                    [1.0, 1.0, 1.0, 0.9]])     # all kept -> 0.4
    assert [lams[i] for i in choose_lambda(lams, act, 0.9)] == [0.2, 0.0, 0.4]


def test_min_pairwise_distance_known_answer():
    f = torch.tensor([[[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]],
                      [[0.0, 0.0], [2.0, 0.0], [4.0, 0.0]]])
    assert min_pairwise_distance(f).tolist() == pytest.approx([1.0, 2.0])


def test_groups_do_not_interact():
    """Changing one group's images leaves the other group's scores unchanged."""
    spec = _spec(energy_cell(sf_cycles_per_px=SF, size_px=S))
    obj = diverse_objective("pool", torch.tensor([0, 0]), S // 2, S // 2,
                            torch.tensor([0.0, 1.0]), 3, feature_layer="quadrature")
    x = 0.5 + 0.1 * torch.randn(6, 3, S, S, generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[:3] = 0.5 + 0.1 * torch.randn(3, 3, S, S)

    def scores(imgs):
        acts = forward_to_layers(spec, spec.preprocessing.normalise(imgs), obj.layers)
        return obj(acts)

    assert torch.allclose(scores(x)[3:], scores(y)[3:])
    assert not torch.allclose(scores(x)[:3], scores(y)[:3])


def test_preceding_layer_and_window():
    from artiphys.models.registry import load_model

    net = load_model("squeezenet1_0", pretrained=False)
    feeds = preceding_layer(net, "features.3.expand3x3_activation")
    assert feeds == "features.3.squeeze_activation"
    assert preceding_layer(net, "features.4.squeeze_activation") == "features.3"
    assert preceding_layer(net, "features.0") is None  # reads the image: pixel distance
    rows, cols = feature_window(net, "features.3.expand3x3_activation", (1, 1))
    assert (rows.start, rows.stop) == (0, 3) and (cols.start, cols.stop) == (0, 3)
    rows, _ = feature_window(net, "features.3.expand1x1_activation", (1, 1))
    assert (rows.start, rows.stop) == (1, 2)
    assert preceding_layer(_hw_cell(), "pool") == "relu"
    assert pre_rectifier_layer(net, "features.3.expand3x3_activation") == "features.3.expand3x3"
    assert pre_rectifier_layer(net, "features.3.expand3x3") is None  # already the conv
    assert pre_rectifier_layer(net, "features.6") is None  # pooling in between


def test_preceding_layer_of_shared_modules_is_the_call_the_conv_reads():
    import torchvision

    r18 = as_spec(torchvision.models.resnet18().eval())
    # block 0 ends with the 2nd call of its shared relu: read it as the block's output
    assert preceding_layer(r18, "layer1.1.conv1") == "layer1.0"
    assert preceding_layer(r18, "layer1.0.conv2") == "layer1.0.relu@0"   # its 1st call
    r50 = as_spec(torchvision.models.resnet50().eval())
    # bottleneck conv3 reads the relu's 2nd call (of 3) inside the block
    assert preceding_layer(r50, "layer1.1.conv3") == "layer1.1.relu@1"
    feats = forward_to_layers(r50, torch.randn(1, 3, 32, 32),
                              ["layer1.0", "layer1.1.relu", "layer1.1.relu@1"])
    assert feats["layer1.0"].shape[1] == 256 and feats["layer1.1.relu@1"].shape[1] == 64
    assert feats["layer1.1.relu"].shape[1] == 256  # a plain name: the last call (block end)


def test_natural_patch_norm(norm):
    assert norm == pytest.approx(MEASURED_NORM, rel=0.01)
    # half the norm of 17 px RGB patches around mid-grey: a per-pixel RMS of ~0.1-0.4
    rms = 2 * norm / math.sqrt(3 * S * S)
    assert 0.1 < rms < 0.4


def test_texture_window():
    w = texture_window(25)
    assert float(w[12, 12]) == pytest.approx(1.0)
    sigma = 25 / 2.4
    assert float(w[12, 0]) == pytest.approx(math.exp(-(12 / sigma) ** 4), rel=1e-5)


def test_spectral_prior_prefers_natural_spectrum():
    prior = SpectralGaussianPrior()
    g = torch.Generator().manual_seed(0)
    white = torch.randn(4, 3, 32, 32, generator=g)
    f = torch.sqrt(torch.fft.fftfreq(32)[:, None] ** 2 + torch.fft.rfftfreq(32)[None] ** 2)
    pink = torch.fft.irfft2(torch.fft.rfft2(white) / f.clamp(min=1 / 32), s=(32, 32))
    pink = pink * (white.flatten(1).norm(dim=1) / pink.flatten(1).norm(dim=1)).view(-1, 1, 1, 1)
    assert (prior(pink) > prior(white)).all()
    wrapped = as_prior(prior, offset=0.0, scale=2.0)
    assert torch.allclose(wrapped(pink), prior(2.0 * pink))


def test_prior_term_runs_and_hooks_are_removed(norm):
    spec = _spec(energy_cell(sf_cycles_per_px=SF, size_px=S))
    ds = diverse_sets(spec, "pool", [0], norm=norm, size_px=S, prior=SpectralGaussianPrior(),
                      feature_layer="quadrature",
                      recipe=DiverseRecipe(steps=5, lambdas=(0.0, 1.0), alpha=0.01,
                                           n_images=3))
    assert ds.attrs["analysis"] == "diverse"
    assert np.isfinite(ds["activation"].values).all()
    for m in spec.module.modules():
        assert not m._forward_hooks
    with pytest.raises(ArtiphysError, match="prior"):
        diverse_sets(spec, "pool", [0], norm=norm, size_px=S,
                     recipe=DiverseRecipe(steps=1, alpha=0.1))


def test_images_keep_the_norm(energy_result, norm):
    _, ds = energy_result
    p = ds["images"].values - 0.5
    norms = np.sqrt((p ** 2).reshape(*p.shape[:3], -1).sum(-1))
    assert norms == pytest.approx(np.full_like(norms, norm), rel=1e-4)


# ---- known answers on toy cells -----------------------------------------------------------

def test_hubel_wiesel_collapses_at_zero_and_spreads_at_chosen_lambda(hw_result):
    spec, ds = hw_result
    gap0 = largest_gap_deg(_phases_at(spec, ds, 0))
    chosen = int(ds["chosen_index"].values[0])
    gap = largest_gap_deg(_phases_at(spec, ds, chosen))
    assert float(ds["chosen_lambda"].values[0]) > 0
    # lambda = 0: every image at the single best phase (~0 deg) -> one big empty arc
    assert gap0 > 240
    # chosen lambda: phases around the circle, no gap much beyond the even 360 / n
    assert gap < 2 * 360 / N_IMAGES
    assert float(ds["mean_activation_rel"].values[0, chosen]) >= 0.8
    assert float(ds["diversity_gain"].values[0]) > 5


def test_energy_cell_spreads(energy_result):
    spec, ds = energy_result
    chosen = int(ds["chosen_index"].values[0])
    assert float(ds["chosen_lambda"].values[0]) > 0
    assert largest_gap_deg(_phases_at(spec, ds, chosen)) < 2 * 360 / N_IMAGES
    # exact invariance: diversity costs nothing in activation
    assert float(ds["mean_activation_rel"].values[0, chosen]) > 0.8


def test_simple_cell_gains_little_diversity(simple_result, energy_result, hw_result):
    spec, ds = simple_result
    chosen = int(ds["chosen_index"].values[0])
    # images that drive the cell stay near its phase (0 deg; activation ~ cos of the offset);
    # an image that starts where the ReLU is silent gets no gradient and may stay there
    act = ds["activation"].values[0, chosen]
    phases = _phases_at(spec, ds, chosen)
    driving = act > 0.5 * act.max()
    assert driving.sum() >= N_IMAGES - 1
    assert (np.minimum(phases, 360 - phases)[driving] < 60).all()
    simple = float(ds["min_distance_scaled"].values[0, chosen])
    for _, other in (energy_result, hw_result):
        i = int(other["chosen_index"].values[0])
        assert simple < 0.6 * float(other["min_distance_scaled"].values[0, i])


def test_phase_invariance_index_energy_vs_simple(energy_result, simple_result):
    recipe = TextureRecipe(steps=150, crops_per_step=8, patience=None)
    energy = invariance_indices(energy_result[0], energy_result[1], texture=recipe)
    simple = invariance_indices(simple_result[0], simple_result[1], texture=recipe)
    pe = float(energy["phase_invariance_index"].values[0])
    ps = float(simple["phase_invariance_index"].values[0])
    assert pe > 0.6
    assert ps < 0.5
    assert pe - ps > 0.3
    assert energy.attrs["analysis"] == "diverse_indices"


def test_indices_for_several_units_at_once(norm):
    spec = _spec(energy_cell(sf_cycles_per_px=SF, size_px=S))
    ds = diverse_sets(spec, "pool", [0, 0, 0], norm=norm, size_px=S, feature_layer="quadrature",
                      recipe=DiverseRecipe(steps=3, lambdas=(0.0, 1.0), n_images=3))
    ind = invariance_indices(spec, ds, texture=TextureRecipe(steps=3, crops_per_step=4))
    assert ind.sizes["unit"] == 3 and ind.sizes["pair"] == 3
    assert np.isfinite(ind["phase_invariance_index"].values).all()
    assert ind["texture"].shape == (3, 3, 2 * S - 1, 2 * S - 1)


def test_linear_combination_index_energy(energy_result):
    spec, ds = energy_result
    lc = linear_combination_index(spec, ds)
    assert lc.sizes["pair"] == N_IMAGES * (N_IMAGES - 1) // 2
    # averages of Gabors at different phases are Gabors at the mid phase: still driving
    assert float(lc["linear_combination_index"].values[0]) > 0.8


def test_save_and_reopen(energy_result, tmp_path):
    _, ds = energy_result
    (path,) = save_diverse(tmp_path, ds, name="energy")
    back = xr.open_dataset(path)
    assert back.attrs["analysis"] == "diverse"
    np.testing.assert_allclose(back["mean_activation"].values, ds["mean_activation"].values)
    back.close()


def test_report_figures(energy_result):
    import matplotlib.pyplot as plt

    from artiphys.report.figures import figures_for

    spec, ds = energy_result
    ind = invariance_indices(spec, ds, texture=TextureRecipe(steps=2, crops_per_step=2))
    assert ind.attrs["texture_steps_run"] == 2 and ind.attrs["eval_offsets"] > 0
    figs = figures_for(ds) + figures_for(ind)
    assert [t for t, _, _ in figs] == ["Diversity vs activation trade-off", "Diverse sets",
                                       "Sets at every lambda: pool:0", "Invariance indices"]
    for _, _, fig in figs:
        plt.close(fig)


def test_cli_diverse(tmp_path):
    from click.testing import CliRunner

    from artiphys.cli import main

    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["diverse", "energy_cell", "--layer", "pool", "--units", "0",
                                    "--n-images", "2", "--lambdas", "0,1", "--steps", "3",
                                    "--no-indices", "--norm", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "manifest.json").exists()
    ds = xr.open_dataset(out / "analytic" / "diverse_pool.nc")
    assert ds.sizes["lambda"] == 2 and ds.sizes["image"] == 2
    ds.close()
    bad = CliRunner().invoke(main, ["diverse", "energy_cell", "--layer", "pool", "--units", "0",
                                    "--lambdas", "1,2", "--norm", "3", "--out",
                                    str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "include 0" in bad.output


def test_cli_diverse_controls_resume_and_reports(tmp_path):
    from click.testing import CliRunner

    from artiphys.cli import main
    from artiphys.report.diverse_figures import diverse_summary, load_diverse_groups

    out = tmp_path / "run"
    args = ["diverse", "energy_cell", "--layer", "pool", "--units", "0", "--n-images", "2",
            "--lambdas", "0,1", "--steps", "3", "--texture-steps", "2", "--norm", "3",
            "--controls", "untrained", "--out", str(out)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    for cond in ("analytic", "untrained"):
        assert (out / cond / "diverse_pool.nc").exists()
        assert (out / cond / "diverse_pool.indices.nc").exists()
    again = CliRunner().invoke(main, args + ["--resume"])
    assert again.exit_code == 0 and again.output.count("kept from the earlier run") == 2

    groups = load_diverse_groups([out])
    assert [(g.model, g.condition, g.layer) for g in groups] == [
        ("energy_cell", "analytic", "pool"), ("energy_cell", "untrained", "pool")]
    table = diverse_summary(groups)
    with xr.open_dataset(out / "analytic" / "diverse_pool.indices.nc") as ind:
        assert table["phase_invariance_median"][0] == pytest.approx(
            float(ind["phase_invariance_index"][0]))

    rep = CliRunner().invoke(main, ["report", str(out)])
    assert rep.exit_code == 0, rep.output
    page = (out / "report" / "index.html").read_text()
    assert "Activation-diversity trade-off, normalised" in page
    assert "Invariance indices by layer and condition" in page
    tests = (out / "report" / "diverse_condition_tests.csv").read_text().splitlines()
    assert len(tests) == 4 and tests[1].startswith("energy_cell,pool,diversity_gain,analytic,"
                                                   "untrained")
    cmp = CliRunner().invoke(main, ["report", str(out), str(out), "--out",
                                    str(tmp_path / "cmp")])
    assert cmp.exit_code == 0, cmp.output
    rows = (tmp_path / "cmp" / "diverse_summary.csv").read_text().splitlines()
    assert rows[0].startswith("model,condition,layer,rf_px") and len(rows) == 5
    assert "Invariance against receptive-field size" in (tmp_path / "cmp" / "index.html"
                                                         ).read_text()

    for bad_args, message in (
            (["--controls", "shuffle"], "unknown control"),
            (["--untrained", "--controls", "untrained"], "conditions repeat")):
        bad = CliRunner().invoke(main, args[:-4] + bad_args + ["--out", str(tmp_path / "b")])
        assert bad.exit_code == 2 and message in bad.output, bad.output
    none = CliRunner().invoke(main, ["report", str(tmp_path / "cmp"), str(tmp_path / "cmp"),
                                     "--out", str(tmp_path / "c2")])
    assert none.exit_code == 2 and "none of these runs holds diverse results" in none.output
    gone = CliRunner().invoke(main, ["report", str(out), str(tmp_path / "nope"), "--out",
                                     str(tmp_path / "c3")])
    assert gone.exit_code == 2 and "does not exist" in gone.output
    several = CliRunner().invoke(main, ["report", str(out), str(out)])
    assert several.exit_code == 2 and "needs --out" in several.output


def test_memory_budget_splits_the_sweep(norm):
    import json

    from artiphys.synthesis.diverse import TRAINING_MEMORY_FACTOR, activation_bytes_per_image

    spec = _spec(energy_cell(sf_cycles_per_px=SF, size_px=S))
    per = activation_bytes_per_image(spec, ["pool"], S)
    # conv (2 maps) -> square -> sum -> ... : at least the two S' x S' quadrature maps
    assert per >= 2 * 4
    per *= TRAINING_MEMORY_FACTOR
    recipe = DiverseRecipe(steps=2, lambdas=(0.0, 1.0), n_images=2, patience=None)
    for budget, split in ((per * 8, [2, 2]), (per * 4, [1, 2]), (per * 2, [1, 1])):
        ds = diverse_sets(spec, "pool", [0, 0], norm=norm, size_px=S, recipe=recipe,
                          feature_layer="pool", memory_budget=budget)
        settings = json.loads(ds.attrs["settings"])
        assert [settings["batch_units"], settings["lambda_batch"]] == split
        assert ds.sizes["unit"] == 2 and ds.sizes["lambda"] == 2


def test_unresponsive_unit_gets_no_gain():
    from artiphys.synthesis.diverse import DiverseRecipe as R, _sets_dataset

    act = np.zeros((2, 2, 3), dtype=np.float32)
    act[0] = [[1, 1, 1], [0.95, 0.95, 0.95]]
    dist = np.array([[1.0, 3.0], [1.0, 2.0]], dtype=np.float32)
    imgs = torch.zeros(2, 2, 3, 3, 4, 4)
    settings = {"layer": "x", "norm": 1.0, "distance": "pixel", "feature_layer": None,
                "unit_yx": [0, 0]}
    ds = _sets_dataset(imgs, act, dist, np.ones_like(dist), [0, 1],
                       R(n_images=3, lambdas=(0.0, 1.0)), settings)
    assert ds["chosen_lambda"].values.tolist() == [1.0, 0.0]
    assert ds["diversity_gain"].values[0] == pytest.approx(3.0)
    assert np.isnan(ds["diversity_gain"].values[1])
    assert ds["responsive"].values.tolist() == [True, False]
