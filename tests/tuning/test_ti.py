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
    FLAG_FEW_POSITIONS,
    FLAG_RF_SMALLER,
    in_rf_mask,
    position_sweep,
    responsive_mask,
    sweep_responses,
    ti_agreement,
    ti_from_sweep,
    ti_metric,
    ti_summary,
    translation_invariance,
)

POS = position_sweep(2, 20)  # 21 positions
WIDE_RF = (-100.0, 100.0)  # an RF that holds the stimulus at every position of POS


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
    ds = ti_metric(resp, POS, blank=0.3, rf_bounds_px=WIDE_RF, stimulus_width_px=8)
    assert float(ds.ti[0]) == pytest.approx(1.0, abs=1e-9)
    assert float(ds.position_correlation.sel(unit=0).min()) == pytest.approx(1.0)
    assert ds.n_in_rf[0] == len(POS)


def test_position_dependent_preferences_give_low_ti():
    rng = np.random.default_rng(1)
    resp = rng.gamma(1.0, size=(len(POS), 200, 5))  # unrelated tuning at each position
    ds = ti_metric(resp, POS, in_rf=np.ones(len(POS), bool))
    assert (np.abs(ds.ti) < 0.1).all()
    c = ds.position_correlation.sel(position=POS.tolist().index(0))
    assert np.allclose(c, 1.0)


@pytest.mark.parametrize("m", [2, 3, 5])
def test_two_orthogonal_tunings_give_the_analytic_ti(m):
    """Known profile: tuning t1 at the first m in-RF positions, t2 (orthogonal, centred, same
    norm) at the next m, anything outside the RF. Eq. 3 gives (m - 1) / (2m - 1)."""
    pos = np.arange(-20, 21, 2)
    t1 = np.array([1.0, -1.0, 0.0, 0.0])
    t2 = np.array([0.0, 0.0, 1.0, -1.0])
    rng = np.random.default_rng(m)
    resp = rng.normal(size=(len(pos), 4)) * 5  # outside the RF: unrelated, large
    rf = (-2.0 * m - 0.5, 2.0 * m + 1.5)  # a 3 px stimulus fits at d = -2m+2 .. 2m
    inside = in_rf_mask(pos, rf, (-1.5, 1.5))[:, 0]
    assert pos[inside].tolist() == list(range(-2 * m + 2, 2 * m + 1, 2))
    idx = np.flatnonzero(inside)
    resp[idx[:m]] = t1 + 7  # offsets common to all shapes vanish in the centring
    resp[idx[m:]] = t2 - 3
    ds = ti_metric(resp, pos, rf_bounds_px=rf, stimulus_extent_px=(-1.5, 1.5))
    assert float(ds.ti[0]) == pytest.approx((m - 1) / (2 * m - 1), abs=1e-12)
    assert int(ds.n_in_rf[0]) == 2 * m and ds.attrs["window"] == "rf"


def test_in_rf_mask_keeps_the_positions_where_the_stimulus_fits():
    """RF of width R centred on a stimulus of width w: |d| <= (R - w) / 2."""
    pos = np.arange(-30, 31)
    mask = in_rf_mask(pos, [(-20.5, 20.5), (-5.5, 5.5)], (-6.0, 6.0))
    assert pos[mask[:, 0]].min() == -14 and pos[mask[:, 0]].max() == 14
    assert not mask[:, 1].any()  # an 11 px RF cannot hold a 12 px stimulus
    # asymmetric stimulus extents shift the window
    mask = in_rf_mask(pos, (-20.5, 20.5), (-8.0, 4.0))[:, 0]
    assert pos[mask].min() == -12 and pos[mask].max() == 16


def test_units_the_stimulus_does_not_fit_get_nan_and_say_why():
    rng = np.random.default_rng(0)
    resp = rng.normal(size=(len(POS), 30, 4))
    resp[:, :, 3] = 1.0  # constant across shapes
    rf = [(-3.0, 3.0),  # narrower than the 8 px stimulus
          (-5.0, 5.0),  # holds it at d = -1..1: one sweep position (0)
          (-30.0, 30.0), (-30.0, 30.0)]
    ds = ti_metric(resp, POS, rf_bounds_px=rf, stimulus_width_px=8)
    assert np.isnan(ds.ti.values[[0, 1, 3]]).all() and np.isfinite(ds.ti.values[2])
    assert ds.flags.values.tolist() == [FLAG_RF_SMALLER, FLAG_FEW_POSITIONS, 0, 1]
    summary = ti_summary(ds)
    assert summary["n_units"] == 4 and summary["n_defined"] == 1
    assert summary["undefined"] == {"rf_smaller_than_stimulus": 1,
                                    "fewer_than_3_in_rf_positions": 1, "constant_response": 1}
    import json

    json.dumps(summary)  # JSON-able


def test_the_responsive_window_is_an_explicit_option():
    pos = np.arange(-10, 11, 2)  # 11 positions
    prof = np.zeros((11, 1))
    prof[2:9] = 1.0  # responsive from -6 to +6
    mask = responsive_mask(prof, pos, stimulus_width_px=4)[:, 0]
    # need every position within 4 px responsive: -2..+2
    assert pos[mask].tolist() == [-2, 0, 2]
    resp = np.random.default_rng(0).normal(size=(11, 30)) * prof
    ds = ti_metric(resp, pos, stimulus_width_px=6, window="responsive")
    assert np.isnan(ds.ti[0]) and ds.flags[0] == FLAG_FEW_POSITIONS and ds.n_in_rf[0] == 1
    with pytest.raises(ResponseError, match="RF"):
        ti_metric(resp, pos, stimulus_width_px=6)  # the default window needs the RF


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


def _box_spec(kernel_px: int) -> ModelSpec:
    """One linear unit summing its ``kernel_px`` square RF: known RF, and a response that
    is the same (the stimulus's summed contrast) wherever the stimulus lies wholly inside."""
    conv = nn.Conv2d(3, 1, kernel_px, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0 / (3 * kernel_px**2))
    return ModelSpec(f"box{kernel_px}", nn.Sequential(conv).eval(),
                     Preprocessing(64, (0.5,) * 3, (0.25,) * 3))


def test_a_box_unit_is_perfectly_invariant_over_the_positions_its_rf_holds_the_stimulus():
    """Known answer. The 21 px box on a 64 px input: centre unit 22 sees columns 22..42; the
    12 px blobs at columns 26..37 fit at d = -4..4 (5 positions) and there TI = 1 exactly.
    The older response-based window also counts positions where the blobs are cut by the
    RF edge, where the box's response is not invariant."""
    spec, imgs = _box_spec(21), _shapes(n=16, width=12)
    sweep = sweep_responses(spec, imgs, "0", position_sweep(2, 16), device="cpu")
    assert sweep.attrs["stimulus_extent_px"] == [25.5, 37.5]
    assert (float(sweep.rf_start_px[0]), float(sweep.rf_end_px[0])) == (21.5, 42.5)
    ds = ti_from_sweep(sweep)
    assert int(ds.n_in_rf[0]) == 5
    assert ds.position_px.values[ds.in_rf.values[:, 0]].tolist() == [-4, -2, 0, 2, 4]
    assert float(ds.ti[0]) == pytest.approx(1.0, abs=1e-6)
    old = ti_from_sweep(sweep, window="responsive", stimulus_width_px=12)
    assert int(old.n_in_rf[0]) > 5 and float(old.ti[0]) < 0.999


def test_a_unit_whose_rf_is_narrower_than_the_stimulus_gets_nan_and_the_flag():
    ds = translation_invariance(_box_spec(9), _shapes(n=8, width=12), "0", position_sweep(2, 8),
                                device="cpu")
    assert np.isnan(ds.ti[0]) and int(ds.flags[0]) == FLAG_RF_SMALLER and int(ds.n_in_rf[0]) == 0
    assert ti_summary(ds)["undefined"] == {"rf_smaller_than_stimulus": 1}


def test_recorded_sweeps_take_the_window_from_the_models_geometry():
    """The box unit recorded on a shapes_sweep: the 8 px shapes' union (10.5 px, from the
    boundaries) around x = 31.5 fits the RF (columns 22..42) at d = -4..4."""
    from artiphys.recording.record import record
    from artiphys.stimuli.shapes import shapes_sweep
    from artiphys.tuning.ti import ti_from_recorded

    spec = _box_spec(21)
    stim = shapes_sweep(step_px=2, extent_px=12, size_px=8, canvas_px=64, unique=False)
    da = record(spec, stim, ["0"], device="cpu")["0"]
    ds = ti_from_recorded(da, model=spec)
    assert ds.attrs["window"] == "rf" and int(ds.n_in_rf[0]) == 5
    lo, hi = ds.attrs["stimulus_extent_px"]
    assert (lo + hi) / 2 == pytest.approx(31.5) and hi - lo == pytest.approx(42.17 / 4, abs=0.01)
    assert float(ds.ti[0]) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("layer", ["features.0", "features.2", "features.4"])
@pytest.mark.parametrize("axis", ["x", "y"])
def test_equivariant_and_brute_force_agree_on_conv_layers(layer, axis):
    spec, imgs = _spec(), _shapes()
    pos = position_sweep(2, 12)
    eq = sweep_responses(spec, imgs, layer, pos, axis=axis, method="equivariant", device="cpu")
    bf = sweep_responses(spec, imgs, layer, pos, axis=axis, method="brute", device="cpu")
    assert eq.attrs["method"] == "equivariant" and eq.attrs["stride_px"] in (2, 4)
    assert eq.attrs["self_check"] == "passed"  # the fast path itself was right
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


def test_shuffle_control_destroys_ti_but_keeps_the_rf_profile():
    from artiphys.tuning.ti import ti_from_sweep

    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 8, 5, padding=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
    spec = ModelSpec("pooled", net.eval(), Preprocessing(64, (0.5,) * 3, (0.25,) * 3))
    sweep = sweep_responses(spec, _shapes(n=24), "2", position_sweep(2, 12), device="cpu")
    real = ti_from_sweep(sweep, stimulus_width_px=12)
    null = ti_from_sweep(sweep, stimulus_width_px=12, shuffle_seed=0)
    assert float(real.ti.median()) > 0.99 > 0.5 > float(null.ti.median())
    np.testing.assert_allclose(null.rf_profile.values, real.rf_profile.values, equal_nan=True)


def test_ti_of_a_conv_layer_runs_end_to_end_and_labels_units():
    """features.4 has a 15 px RF: 6 px shapes fit at d = -4..4 (5 positions), 12 px shapes
    at d = 0 only, so every unit is NaN and flagged."""
    spec = _spec()
    ds = translation_invariance(spec, _shapes(width=6), "features.4", position_sweep(2, 12),
                                device="cpu")
    assert ds.sizes["unit"] == 16 and ds.layer.values[0] == "features.4"
    assert ds.channel.values.tolist() == list(range(16))
    assert ds.n_in_rf.values.tolist() == [5] * 16 and ds.attrs["rf_source"] == "analytic, checked"
    finite = ds.ti.values[np.isfinite(ds.ti.values)]
    assert finite.size and (finite <= 1 + 1e-9).all()
    wide = translation_invariance(spec, _shapes(width=12), "features.4", position_sweep(2, 12),
                                  device="cpu")
    assert np.isnan(wide.ti).all() and (wide.flags == FLAG_FEW_POSITIONS).all()
    assert ti_summary(wide)["undefined"] == {"fewer_than_3_in_rf_positions": 16}


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
    assert eq.attrs["self_check"] == "passed" and eq.attrs["crop_px"] > 0


def test_ti_from_recorded_sweep_matches_the_array_metric():
    import xarray as xr

    from artiphys.tuning.ti import ti_from_recorded

    rng = np.random.default_rng(5)
    pos = position_sweep(2, 10)
    n_shapes, n_units = 7, 3
    resp = rng.gamma(1.0, size=(len(pos), n_shapes, n_units))
    rows = [(s, 0, d) for d in pos for s in range(n_shapes)]
    values = resp.reshape(-1, n_units)
    order = rng.permutation(len(rows))  # stimuli in any order: matched by coords
    blank = np.array([[0.1, 0.2, 0.3]])
    sid = np.r_[[r[0] for r in rows], -1][np.r_[order, len(rows)]]
    dx = np.r_[[r[2] for r in rows], 0][np.r_[order, len(rows)]]
    da = xr.DataArray(np.vstack([values[order], blank]), dims=("stimulus", "unit"),
                      coords={"shape_id": ("stimulus", sid), "rotation": ("stimulus", sid * 0),
                              "dx_px": ("stimulus", dx),
                              "size_px": ("stimulus", np.full(len(sid), 4.0))})
    got = ti_from_recorded(da)  # no RF known: the responsive window, and it says so
    want = ti_metric(resp, pos, blank=blank[0], stimulus_width_px=4, window="responsive")
    np.testing.assert_allclose(got.ti.values, want.ti.values)
    assert got.attrs["window"].startswith("responsive (the RF is unknown")
    rf = np.array([(-6.0, 6.0), (-4.0, 8.0), (-1.0, 1.0)])
    got = ti_from_recorded(da, rf_bounds_px=rf)
    want = ti_metric(resp, pos, blank=blank[0], rf_bounds_px=rf, stimulus_extent_px=(-2, 2))
    np.testing.assert_allclose(got.ti.values, want.ti.values)
    assert got.n_in_rf.values.tolist() == [5, 5, 0] and got.flags.values[2] == FLAG_RF_SMALLER
    with pytest.raises(ResponseError, match="sweep"):
        ti_from_recorded(da.isel(stimulus=np.flatnonzero(dx == 0)))


def test_hooks_are_removed_when_the_forward_pass_fails():
    net = nn.Sequential(nn.Conv2d(3, 4, 5), nn.ReLU())  # a 3 px input is too small
    spec = ModelSpec("broken", net.eval(), Preprocessing(3, (0.5,) * 3, (0.25,) * 3))
    with pytest.raises(RuntimeError):
        sweep_responses(spec, torch.zeros(2, 3, 3, 3), "1", [-2, 0, 2], device="cpu")
    assert all(not m._forward_hooks for m in net.modules())
