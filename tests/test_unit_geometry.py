"""One unit geometry across stages (issue 10): the centre unit, the call of a shared module
and the RF are decided once in models/, so recording, synthesis and TI read the same unit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from artiphys.models.spec import ModelSpec, Preprocessing
from artiphys.models.units import map_center
from artiphys.recording import record
from artiphys.recording.hooks import forward_to_layers
from artiphys.synthesis import objectives as O
from artiphys.tuning.ti import sweep_responses


def test_map_center():
    assert map_center(14, 14) == (7, 7) and map_center(13, 13) == (6, 6)
    assert map_center(1, 1) == (0, 0) and map_center(28, 5) == (14, 2)


@pytest.mark.slow
def test_vgg16_unit_objective_is_the_recorded_centre_unit():
    """On even maps (14x14, 28x28 at 224 px) ``objective="unit"`` (what ``visualize
    --objective unit`` optimises) and ``record(units="center")`` pick the same unit."""
    torch.manual_seed(0)
    spec = ModelSpec("vgg16", torchvision.models.vgg16().eval(), Preprocessing(224),
                     condition="untrained")
    imgs = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    layers = ["features.22", "features.29"]  # conv4_3 (28x28) and relu5_3 (14x14)
    rec = record(spec, imgs, layers)
    with torch.no_grad():
        acts = forward_to_layers(spec, spec.preprocessing.normalise(imgs), layers)
    channels = [0, 5, 300]
    for layer, side in zip(layers, (28, 14)):
        a = acts[layer]
        assert a.shape[-1] == side
        r = rec[layer]
        assert set(r.y.values) == {side // 2} and set(r.x.values) == {side // 2}
        batched = O.for_units(layer, channels, "unit")  # render_units(objective="unit")
        with torch.no_grad():
            score = batched({layer: a[[0, 0, 0]]}).numpy()
        np.testing.assert_allclose(score, r.values[0, channels], rtol=1e-5, atol=1e-6)
        for c in channels:
            with torch.no_grad():
                single = O.unit(layer, c)({layer: a}).numpy()
            np.testing.assert_allclose(single, r.values[:, c], rtol=1e-5, atol=1e-6)
        # discriminating: the old (H - 1) // 2 unit gives other values
        assert not np.allclose(a[:, channels, side // 2 - 1, side // 2 - 1].numpy(),
                               r.values[:, channels])


def test_resnet18_apc_and_ti_of_a_shared_relu_read_the_same_tensor():
    """``layer1.0.relu`` is called twice per BasicBlock; recording (APC), the TI sweep and
    forward_to_layers all read its last call: the block's output."""
    torch.manual_seed(0)
    spec = ModelSpec("resnet18", torchvision.models.resnet18().eval(), Preprocessing(64),
                     condition="untrained")
    imgs = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    layer = "layer1.0.relu"
    apc = record(spec, imgs, layer)[layer].values                       # (3, 64) centre units
    with torch.no_grad():
        acts = forward_to_layers(spec, spec.preprocessing.normalise(imgs),
                                 [layer, "layer1.0", "layer1.0.relu@0"])
    cy, cx = map_center(*acts[layer].shape[-2:])
    np.testing.assert_allclose(apc, acts[layer][:, :, cy, cx].numpy(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(acts[layer], acts["layer1.0"])
    assert not torch.allclose(acts[layer], acts["layer1.0.relu@0"])
    ti = sweep_responses(spec, imgs, layer, positions_px=[0], method="brute")
    assert set(ti.y.values) == {cy} and set(ti.x.values) == {cx}
    np.testing.assert_allclose(ti["responses"].values[0], apc, rtol=1e-5, atol=1e-6)
    # the linear sublayer: the same in recording and in the TI sweep (equivariant method)
    lin = record(spec, imgs, "layer1.0:linear")["layer1.0:linear"].values
    assert (lin < 0).any()
    ti_lin = sweep_responses(spec, imgs, "layer1.0:linear", positions_px=[-4, 0, 4])
    assert ti_lin.attrs["method"] == "equivariant"
    np.testing.assert_allclose(ti_lin["responses"].values[1], lin, rtol=1e-4, atol=1e-5)
