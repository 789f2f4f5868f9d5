"""SqueezeNet 1.0 with the real ImageNet weights: galleries and top patches for 64 channels.

Slow (minutes on 2 CPU cores); run with ``pytest -m slow tests/synthesis``.
"""

import numpy as np
import pytest
import torch

from artiphys.models.registry import load_model
from artiphys.stimuli.base import to_model_input
from artiphys.stimuli.natural import images as natural_images
from artiphys.recording.hooks import forward_to_layers
from artiphys.synthesis.render import fourier_recipe, render_units
from artiphys.synthesis.top_patches import top_patches

from .nets import hooks_left

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def squeezenet(weights_dir):
    return load_model("squeezenet1_0", pretrained=True)


def test_gallery_64_channels_objective_rises(squeezenet):
    res = render_units(squeezenet, "features.4", range(64), recipe=fourier_recipe(steps=12),
                       size_px=128)
    assert res.images.shape == (64, 3, 128, 128)
    # channels silent for the near-gray start get no gradient (rectified fire outputs);
    # every other channel's objective rises
    alive = res.trace[0] > 0
    assert alive.mean() >= 0.8
    assert np.mean(res.final[alive] > res.trace[0][alive]) >= 0.95, (res.trace[0], res.final)
    assert hooks_left(squeezenet.module) == []


def test_top_patches_over_1000_sample_images(squeezenet, imagenet_sample_dir):
    stimuli = natural_images(imagenet_sample_dir, size_px=224)
    assert len(stimuli) == 1000
    res = top_patches(squeezenet, stimuli, "features.7", range(64), k=5, batch_size=50)
    assert res.patches.shape == (64, 2, 5, 3, 59, 59)
    assert len(res.table) == 64 * 2 * 5
    exc = res.table[res.table.sign == "excitatory"]
    for _, g in exc.groupby("unit"):
        assert np.all(np.diff(g.sort_values("rank")["response"].to_numpy()) <= 0)
    # recorded responses are the unit's activation at the recorded position
    for _, row in exc[exc["rank"] == 0].head(3).iterrows():
        img = stimuli.images(int(row.stimulus), int(row.stimulus) + 1)
        with torch.no_grad():
            a = forward_to_layers(squeezenet, to_model_input(img, squeezenet.preprocessing),
                                  ["features.7"])["features.7"]
        assert float(a[0, int(row.unit), int(row.y), int(row.x)]) == pytest.approx(row.response, rel=1e-4)
        assert float(a[0, int(row.unit)].max()) == pytest.approx(row.response, rel=1e-4)
    # suppressive patches are read before the rectifiers (not ties at 0)
    sup = res.table[res.table.sign == "suppressive"]
    assert set(sup["read_on"]) == {"features.7:linear"} and (sup["response"] < 0).all()
    # the deconvnet features of excitatory patches are non-zero
    assert np.all(np.abs(res.features[:, 0]).reshape(64, 5, -1).sum(-1) > 0)
    assert hooks_left(squeezenet.module) == []
