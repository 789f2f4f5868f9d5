"""Diverse feature visualisations (Cadena et al. 2018) on toy cells whose answers are known.

Toy cells: a Gabor simple cell, an energy-model complex cell (exactly phase-invariant) and
a Hubel-Wiesel complex cell of 64 rectified simple cells whose pooling weights vary with the
subunit phase, ``w_i = pi / 64 (1 + 0.18 cos phi_i)`` (approximately invariant: one best
phase at 0 deg, every phase above ~0.75 of it). Images are 17 px (the cells' kernels,
+/- 3 sigma at 0.2 cycles/px). The Gabor phase of an image is
``atan2(<x, g_odd>, <x, g_even>)``, read from the cell's own quadrature pair at the centre
unit.

Jittered Hubel-Wiesel cells (the package's ``hubel_wiesel_cell(n_phases, weight_jitter=0.15,
seed)``: 4, 6 or 8 rectified subunits at even phase steps, pooling weights scaled by
``1 + 0.15 N(0, 1)``; 21 px) have several local maxima over phase; their diverse sets must
spread at the chosen lambda (largest gap between neighbouring phases <= 90 deg) with >= 90%
of every image's energy in the cell's Gabor pair (the span of the two quadrature filters at
the centre unit, all the cell can see).
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
from artiphys.recording.hooks import forward_to_layers
from artiphys.stimuli.patch_norm import natural_patch_norm
from artiphys.synthesis.diverse import (
    PAPER_LAMBDAS,
    DiverseRecipe,
    centre_unit,
    diverse_objective,
    diverse_sets,
)
from artiphys.synthesis.invariance import (
    TextureRecipe,
    invariance_indices,
    linear_combination_index,
    texture_window,
)
from artiphys.synthesis.priors import SpectralGaussianPrior, as_prior
from artiphys.synthesis.save import save_diverse

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
    c = x.shape[-1] // 2
    return np.degrees(np.arctan2(q[:, 1, c, c].numpy(), q[:, 0, c, c].numpy())) % 360


def gabor_pair_energy_fraction(spec, images: np.ndarray, size_px: int) -> np.ndarray:
    """``||P (x - 0.5)||^2 / ||x - 0.5||^2`` per image, ``P`` the projection onto the span of
    the gradients of the two quadrature responses at the centre unit (luminance x Gabor)."""
    x = torch.full((1, 3, size_px, size_px), 0.5, requires_grad=True)
    q = forward_to_layers(spec, spec.preprocessing.normalise(x), ["quadrature"])["quadrature"]
    c = size_px // 2
    rows = [torch.autograd.grad(q[0, k, c, c], x, retain_graph=True)[0].flatten()
            for k in range(2)]
    basis, _ = torch.linalg.qr(torch.stack(rows, 1))
    p = torch.from_numpy(np.asarray(images, dtype=np.float32)).reshape(len(images), -1) - 0.5
    return ((p @ basis).pow(2).sum(1) / p.pow(2).sum(1)).numpy()


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


def test_centre_unit_of_an_untraceable_model_warns_and_takes_the_map_centre():
    class Branchy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2, 3)

        def forward(self, x):
            return self.conv(x) if x.sum() > 0 else -self.conv(x)   # data-dependent: no fx

    with pytest.warns(UserWarning, match="map centre"):
        assert centre_unit(as_spec(Branchy()), "conv", 12) == (5, 5)
    spec = _spec(energy_cell(sf_cycles_per_px=SF, size_px=S))
    assert centre_unit(spec, "pool", S) == (S // 2, S // 2)   # traced: no warning


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


JITTER_S = 21
JITTER_NORM = 4.23  # natural_patch_norm(imagenet-sample-256, 21, mean 0.5, n_images=16)


@pytest.mark.parametrize("n_phases", [4, 6, 8])
def test_jittered_hubel_wiesel_sets_spread_and_stay_visible(n_phases):
    cell = hubel_wiesel_cell(sf_cycles_per_px=SF, size_px=JITTER_S, n_phases=n_phases,
                             weight_jitter=0.15, seed=0)
    spec = _spec(cell)
    recipe = DiverseRecipe(steps=300, patience=None, threshold=0.8,
                           lambdas=(0.0, 0.32, 1.28, 5.12))
    ds = diverse_sets(spec, "pool", [0], norm=JITTER_NORM, size_px=JITTER_S, recipe=recipe)
    mean = ds["mean_activation"].values[0]
    # lambda = 0 is the reference: no lambda's set drives the cell harder
    assert mean.max() <= mean[0] * (1 + 1e-6)
    assert float(ds["reference_excess"].values[0]) <= 1e-6
    chosen = int(ds["chosen_index"].values[0])
    assert float(ds["chosen_lambda"].values[0]) > 0
    images = ds["images"].values[0, chosen]
    assert largest_gap_deg(gabor_phases_deg(spec, images)) <= 90
    assert gabor_pair_energy_fraction(spec, images, JITTER_S).min() >= 0.9
    # every image drives the cell (none bought distance by leaving its view)
    assert ds["activation"].values[0, chosen].min() >= 0.6 * mean[0]
    # the lambda = 0 images coincide at the best phase: a finite gain, flagged
    assert bool(ds["lambda0_collapsed"].values[0])
    assert 5 < float(ds["diversity_gain"].values[0]) < 1 / recipe.gain_floor * 2


def test_unweighted_distance_lets_an_image_leave_the_cells_view():
    """The paper's plain distance at a large lambda: one image of six goes blank."""
    spec = _spec(hubel_wiesel_cell(sf_cycles_per_px=SF, size_px=JITTER_S, n_phases=8,
                                   weight_jitter=0.15, seed=0))
    recipe = DiverseRecipe(steps=300, patience=None, threshold=0.8, lambdas=(0.0, 5.12),
                           distance_weight="none")
    ds = diverse_sets(spec, "pool", [0], norm=JITTER_NORM, size_px=JITTER_S, recipe=recipe)
    energy = gabor_pair_energy_fraction(spec, ds["images"].values[0, 1], JITTER_S)
    assert energy.min() < 0.5 and np.sort(energy)[1] > 0.9


def test_seed_changes_the_starts_and_the_sets(norm):
    from artiphys.synthesis.loop import white_noise_param

    mean = torch.full((1, 3, 1, 1), 0.5)
    starts = [white_noise_param(4, S, norm, mean, seed, "cpu").params[0].detach()
              for seed in (1, 2, 1)]
    assert not torch.allclose(starts[0], starts[1]) and torch.equal(starts[0], starts[2])
    spec = _spec(energy_cell(sf_cycles_per_px=SF, size_px=S))

    def images(seed):
        recipe = DiverseRecipe(steps=3, lambdas=(0.0, 1.0), n_images=3, seed=seed)
        return diverse_sets(spec, "pool", [0], norm=norm, size_px=S, recipe=recipe,
                            feature_layer="quadrature")["images"].values

    one, two = images(1), images(2)
    assert not np.allclose(one, two)
    np.testing.assert_array_equal(one, images(1))


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
    from artiphys.report.results import run_results

    (res_,) = run_results(out, condition="analytic", layer="pool", result="diverse")
    ds = res_.load()
    assert ds.sizes["lambda"] == 2 and ds.sizes["image"] == 2
    bad = CliRunner().invoke(main, ["diverse", "energy_cell", "--layer", "pool", "--units", "0",
                                    "--lambdas", "1,2", "--norm", "3", "--out",
                                    str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "include 0" in bad.output
    seeded = []
    for seed in ("1", "2"):
        res = CliRunner().invoke(main, ["diverse", "energy_cell", "--layer", "pool", "--units",
                                        "0", "--n-images", "2", "--lambdas", "0,1", "--steps",
                                        "3", "--no-indices", "--norm", "3", "--seed", seed,
                                        "--out", str(tmp_path / f"seed{seed}")])
        assert res.exit_code == 0, res.output
        (found,) = run_results(tmp_path / f"seed{seed}", layer="pool", result="diverse")
        d = found.load()
        seeded.append(d["images"].values.copy())
        assert '"seed": ' + seed in d.attrs["settings"]
    assert not np.allclose(*seeded)


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
    from artiphys.report.results import run_results

    for cond in ("analytic", "untrained"):
        assert len(run_results(out, condition=cond, layer="pool", result="diverse")) == 1
        assert len(run_results(out, condition=cond, layer="pool",
                               result="diverse_indices")) == 1
    again = CliRunner().invoke(main, args + ["--resume"])
    log = (out / "run.log").read_text().split("diverse: resumed")[-1]
    assert again.exit_code == 0 and log.count("reused") == 4 and "computed" not in log

    groups = load_diverse_groups([out])
    assert [(g.model, g.condition, g.layer) for g in groups] == [
        ("energy_cell", "analytic", "pool"), ("energy_cell", "untrained", "pool")]
    table = diverse_summary(groups)
    (ind_,) = run_results(out, condition="analytic", layer="pool", result="diverse_indices")
    ind = ind_.load()
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
            (["--controls", "shuffle"], "unknown value 'shuffle'"),
            (["--untrained", "--controls", "untrained"], "conditions repeat")):
        bad = CliRunner().invoke(main, args[:-4] + bad_args + ["--out", str(tmp_path / "b")])
        assert bad.exit_code == 2 and message in bad.output, bad.output
    none = CliRunner().invoke(main, ["report", str(tmp_path / "cmp"), str(tmp_path / "cmp"),
                                     "--out", str(tmp_path / "c2")])
    assert none.exit_code == 2 and "none of these runs can be compared" in none.output
    assert "not an artiphys run" in none.output
    gone = CliRunner().invoke(main, ["report", str(out), str(tmp_path / "nope"), "--out",
                                     str(tmp_path / "c3")])
    assert gone.exit_code == 0 and f"not used: {tmp_path / 'nope'}: no such folder" in gone.output
    assert "no such folder" in (tmp_path / "c3" / "index.html").read_text()
    several = CliRunner().invoke(main, ["report", str(out), str(out)])
    assert several.exit_code == 2 and "needs --out" in several.output


def test_memory_budget_splits_the_sweep(norm):
    import json

    from artiphys.synthesis.loop import TRAINING_MEMORY_FACTOR, activation_bytes_per_image

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
