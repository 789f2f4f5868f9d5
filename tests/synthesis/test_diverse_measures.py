"""Measures of diverse sets: seen weights, min distances, the chosen lambda, the gain."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from artiphys.synthesis.diverse import DiverseRecipe
from artiphys.synthesis.diverse_measures import (
    SetMeasures,
    choose_lambda,
    min_pairwise_distance,
    seen_weights,
    sets_dataset,
)

SETTINGS = {"layer": "x", "norm": 1.0, "distance": "pixel", "feature_layer": None,
            "unit_yx": [0, 0]}


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
    # weights: a pair counts as far as its less-weighted image
    w = torch.tensor([[1.0, 1.0, 0.1], [1.0, 0.5, 1.0]])
    # group 0: d01 = 5, d02 = 1 * 0.1, d12 = sqrt(18) * 0.1; group 1: 2 * .5, 4, 2 * .5
    assert min_pairwise_distance(f, w).tolist() == pytest.approx([0.1, 1.0])


def test_seen_weights():
    a = torch.tensor([[1.0, 1.0, 1.0, 0.2], [1.0, 2.0, 3.0, -1.0], [-1.0, -1.0, 2.0, 0.0]])
    s = seen_weights(a, 0.8)
    # mean 0.8 -> reference 0.64: 1/0.64 -> 1; 0.2/0.64
    assert s[0].tolist() == pytest.approx([1, 1, 1, 0.2 / 0.64])
    # mean 1.25 -> reference 1.0; a negative activation counts nothing
    assert s[1].tolist() == pytest.approx([1, 1, 1, 0])
    # mean 0: driving images count fully, the others not at all
    assert s[2].tolist() == pytest.approx([0, 0, 1, 0])
    a.requires_grad_(True)
    seen_weights(a, 0.8)[0, 3].backward()
    assert a.grad[0, 3] == pytest.approx(1 / 0.64) and a.grad[0, :3].abs().sum() == 0


def _measures(act, dist, rms=None):
    dist = np.asarray(dist, dtype=np.float32)
    rms = np.ones_like(dist) if rms is None else np.asarray(rms, dtype=np.float32)
    return SetMeasures(np.asarray(act, dtype=np.float32), dist, dist, rms)


def test_unresponsive_unit_gets_no_gain():
    act = np.zeros((2, 2, 3), dtype=np.float32)
    act[0] = [[1, 1, 1], [0.95, 0.95, 0.95]]
    ds = sets_dataset(torch.zeros(2, 2, 3, 3, 4, 4),
                      _measures(act, [[1.0, 3.0], [1.0, 2.0]]), [0, 1],
                      DiverseRecipe(n_images=3, lambdas=(0.0, 1.0)), SETTINGS)
    assert ds["chosen_lambda"].values.tolist() == [1.0, 0.0]
    assert ds["diversity_gain"].values[0] == pytest.approx(3.0)
    assert np.isnan(ds["diversity_gain"].values[1])
    assert ds["responsive"].values.tolist() == [True, False]
    assert ds["reference_excess"].values[0] == pytest.approx(0.0)


def test_gain_stays_finite_when_lambda0_images_coincide():
    act = np.ones((2, 2, 3), dtype=np.float32)
    # unit 0: lambda = 0 images coincide (d = 1e-10); unit 1: d(0) = 0.5 above the floor
    dist = [[1e-10, 0.8], [0.5, 1.0]]
    rms = [[2.0, 2.0], [2.0, 2.0]]
    recipe = DiverseRecipe(n_images=3, lambdas=(0.0, 1.0), gain_floor=0.05)
    ds = sets_dataset(torch.zeros(2, 2, 3, 3, 4, 4), _measures(act, dist, rms), [0, 1],
                      recipe, SETTINGS)
    # floor = 0.05 x rms(0) = 0.1: gain 0.8 / 0.1, not 0.8 / 1e-10
    assert ds["diversity_gain"].values.tolist() == pytest.approx([8.0, 2.0])
    assert ds["lambda0_collapsed"].values.tolist() == [True, False]
    assert ds["reference_distance"].values.tolist() == pytest.approx([0.1, 0.5])
    assert np.isfinite(ds["min_distance_rel"].values).all()


def test_reference_excess_reports_a_lambda_that_beats_lambda0():
    act = np.ones((1, 2, 3), dtype=np.float32)
    act[0, 1] = 1.02
    ds = sets_dataset(torch.zeros(1, 2, 3, 3, 4, 4), _measures(act, [[1.0, 2.0]]), [0],
                      DiverseRecipe(n_images=3, lambdas=(0.0, 1.0)), SETTINGS)
    assert ds["reference_excess"].values[0] == pytest.approx(0.02, rel=1e-4)


def test_recipe_rejects_bad_measure_settings():
    from artiphys.errors import ArtiphysError

    with pytest.raises(ArtiphysError, match="distance_weight"):
        DiverseRecipe(distance_weight="soft")
    with pytest.raises(ArtiphysError, match="gain_floor"):
        DiverseRecipe(gain_floor=0.0)
    with pytest.raises(ArtiphysError, match="reference_step_fraction"):
        DiverseRecipe(reference_step_fraction=0.5)
