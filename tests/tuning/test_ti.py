"""Translation invariance: the metric's known answers and equivariant == brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from artiphys.errors import ResponseError
from artiphys.models.spec import ModelSpec, Preprocessing
from artiphys.tuning.ti import (
    in_rf_positions,
    position_sweep,
    sweep_responses,
    ti_agreement,
    ti_metric,
    translation_invariance,
)

POS = position_sweep(2, 20)  # 21 positions


def test_position_sweep_default_is_the_papers():
    p = position_sweep()
    assert p[0] == -50 and p[-1] == 50 and len(p) == 51 and np.all(np.diff(p) == 2)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), gain_floor=st.floats(0.05, 1.0))
def test_global_pooling_unit_has_ti_one(seed, gain_floor):
    """A unit whose shape preferences are the same at every position, up to a gain."""
    rng = np.random.default_rng(seed)
    tuning = rng.gamma(1.0, size=40)
    gain = gain_floor + np.exp(-(POS / 15.0) ** 2)
    resp = gain[:, None] * tuning[None] + 0.3  # blank response 0.3
    ds = ti_metric(resp, POS, blank=0.3, stimulus_width_px=8)
    assert float(ds.ti[0]) == pytest.approx(1.0, abs=1e-9)
    assert float(ds.position_correlation.sel(unit=0).min()) == pytest.approx(1.0)
    assert ds.n_in_rf[0] == len(POS) - 2  # everything responsive; the ends never count


def test_position_dependent_preferences_give_low_ti():
    rng = np.random.default_rng(1)
    resp = rng.gamma(1.0, size=(len(POS), 200, 5))  # unrelated tuning at each position
    ds = ti_metric(resp, POS, stimulus_width_px=8)
    assert (np.abs(ds.ti) < 0.1).all()
    c = ds.position_correlation.sel(position=POS.tolist().index(0))
    assert np.allclose(c, 1.0)


def test_in_rf_positions_need_responsive_neighbours_within_a_stimulus_width():
    pos = np.arange(-10, 11, 2)  # 11 positions
    prof = np.zeros((11, 1))
    prof[2:9] = 1.0  # responsive from -6 to +6
    mask = in_rf_positions(prof, pos, stimulus_width_px=4)[:, 0]
    # need every position within 4 px responsive: -2..+2
    assert pos[mask].tolist() == [-2, 0, 2]
    ds = ti_metric(np.random.default_rng(0).normal(size=(11, 30)) * prof, pos, stimulus_width_px=6)
    assert np.isnan(ds.ti[0]) and ds.flags[0] != 0 and ds.n_in_rf[0] == 1


def test_ti_agreement_between_axes():
    import xarray as xr

    a = xr.DataArray(np.linspace(0, 1, 20), dims="unit",
                     coords={"layer": ("unit", ["c2"] * 10 + ["c5"] * 10)})
    ag = ti_agreement(a, a * 0.5 + 0.1)
    assert ag.r.sel(group="all") == pytest.approx(1.0) and ag.n_units.sel(group="c5") == 10


# ---- responses: equivariant vs brute force ---------------------------------------------

class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 5, stride=2, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 6)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def _spec():
    return ModelSpec("tiny", TinyNet().eval(), Preprocessing(64, (0.5,) * 3, (0.25,) * 3),
                     condition="custom")


def _shapes(n=12, size=64, width=12, seed=0):
    """Random bright blobs of at most ``width`` px, centred, on a black background."""
    rng = np.random.default_rng(seed)
    imgs = torch.zeros(n, 3, size, size)
    c = size // 2
    for i in range(n):
        patch = torch.as_tensor(rng.random((width, width)) > 0.5, dtype=torch.float32)
        imgs[i, :, c - width // 2:c + width // 2, c - width // 2:c + width // 2] = patch
    return imgs


@pytest.mark.parametrize("layer", ["features.0", "features.2", "features.4"])
@pytest.mark.parametrize("axis", ["x", "y"])
def test_equivariant_and_brute_force_agree_on_conv_layers(layer, axis):
    spec, imgs = _spec(), _shapes()
    pos = position_sweep(2, 12)
    eq = sweep_responses(spec, imgs, layer, pos, axis=axis, method="equivariant", device="cpu")
    bf = sweep_responses(spec, imgs, layer, pos, axis=axis, method="brute", device="cpu")
    assert eq.attrs["method"] == "equivariant" and eq.attrs["stride_px"] in (2, 4)
    np.testing.assert_allclose(eq.responses.values, bf.responses.values, atol=1e-4, rtol=0)
    np.testing.assert_allclose(eq.blank.values, bf.blank.values, atol=1e-6)
    assert float(np.abs(bf.responses).max()) > 0.1  # the comparison is not vacuous


def test_global_pooling_unit_of_a_network_has_ti_near_one():
    """Known answer: global average pooling of a stride-1 conv map is shift invariant
    while the shapes stay clear of the borders, so TI = 1; ``auto`` must use brute force."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 8, 5, padding=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
    spec = ModelSpec("pooled", net.eval(), Preprocessing(64, (0.5,) * 3, (0.25,) * 3))
    imgs = _shapes(n=16)
    ds = translation_invariance(spec, imgs, "2", position_sweep(2, 12), stimulus_width_px=12,
                                device="cpu")
    assert ds.attrs["method"] == "brute"
    finite = ds.ti.values[np.isfinite(ds.ti.values)]
    assert finite.size >= 4 and np.allclose(finite, 1.0, atol=1e-4)


def test_non_equivariant_layers_refuse_the_equivariant_method_and_leave_no_hooks():
    spec, imgs = _spec(), _shapes(n=4)
    pos = position_sweep(2, 12)
    assert sweep_responses(spec, imgs, "pool", pos, device="cpu").attrs["method"] == "brute"
    with pytest.raises(ResponseError, match="equivariant"):
        sweep_responses(spec, imgs, "fc", pos, method="equivariant", device="cpu")
    for m in spec.module.modules():
        assert not m._forward_hooks


def test_ti_of_a_conv_layer_runs_end_to_end_and_labels_units():
    spec, imgs = _spec(), _shapes()
    ds = translation_invariance(spec, imgs, "features.4", position_sweep(2, 12),
                                stimulus_width_px=12, device="cpu")
    assert ds.sizes["unit"] == 16 and ds.layer.values[0] == "features.4"
    assert ds.channel.values.tolist() == list(range(16))
    finite = ds.ti.values[np.isfinite(ds.ti.values)]
    assert finite.size and (finite <= 1 + 1e-9).all()


@pytest.mark.slow
def test_equivariant_matches_brute_force_on_alexnet_conv2():
    from torchvision.models import alexnet

    torch.manual_seed(0)
    spec = ModelSpec("alexnet-untrained", alexnet().eval(), Preprocessing(227),
                     condition="untrained")
    imgs = _shapes(n=6, size=227, width=32)
    pos = position_sweep(2, 50)
    eq = sweep_responses(spec, imgs, "features.3", pos, method="equivariant", device="cpu")
    bf = sweep_responses(spec, imgs, "features.3", pos, method="brute", device="cpu")
    scale = float(np.abs(bf.responses).max())
    np.testing.assert_allclose(eq.responses.values, bf.responses.values, atol=1e-4 * max(scale, 1))
