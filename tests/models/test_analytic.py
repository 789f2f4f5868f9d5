"""Known answers of the analytic cells (artiphys.models.analytic)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from artiphys.models import analytic as A
from artiphys.models import load_model

SIZE = 65
PREP = A.CONTRAST_PREPROCESSING


def centre_response(module, images):
    """Responses of every channel's centre unit to a list of (3, H, W) images."""
    with torch.no_grad():
        out = module(PREP.normalise(torch.stack(images)))
    return out[:, :, out.shape[2] // 2, out.shape[3] // 2]


@pytest.mark.parametrize("ori, sf, phase", [(45.0, 0.125, 90.0), (0.0, 0.25, 0.0), (112.5, 0.1, 270.0)])
def test_simple_cell_prefers_its_grating(ori, sf, phase):
    cell = A.simple_cell(ori, sf, phase)
    oris = np.arange(0.0, 180.0, 22.5)
    sfs = [sf / 2, sf, sf * 1.5]
    phases = np.arange(0.0, 360.0, 90.0)
    grid = [(o, s, p) for o in oris for s in sfs for p in phases]
    r = centre_response(cell, [A.sinusoid(SIZE, o, s, p) for o, s, p in grid])[:, 0]
    best = grid[int(r.argmax())]
    assert best[0] == pytest.approx(ori % 180) and best[1] == pytest.approx(sf)
    assert best[2] == pytest.approx(phase % 360)
    assert float(r.max()) == pytest.approx(1.0, abs=1e-3)  # documented normalisation


def test_simple_cell_is_half_wave_rectified_and_phase_selective():
    cell = A.simple_cell(0.0, 0.125, 0.0)
    r = centre_response(cell, [A.sinusoid(SIZE, 0.0, 0.125, p) for p in (0.0, 90.0, 180.0)])[:, 0]
    assert r[0] == pytest.approx(1.0, abs=1e-3)
    assert abs(float(r[1])) < 1e-3 and float(r[2]) == 0.0


def test_linear_stage_is_the_gabor_kernel():
    cell = A.simple_cell(30.0, 0.15, 60.0)
    img = torch.rand(3, 41, 41)
    with torch.no_grad():
        lin = cell.linear(cell.quadrature(cell.luminance(PREP.normalise(img[None]))))[0, 0, 20, 20]
    k = A.gabor_kernel(30.0, 0.15, 60.0)
    lum = (torch.tensor(A.LUMA_RGB).view(3, 1, 1) * PREP.normalise(img[None])[0]).sum(0)
    half = k.shape[-1] // 2
    padded = torch.nn.functional.pad(lum, (half, half, half, half))
    expected = (padded[20:20 + k.shape[0], 20:20 + k.shape[1]].double() * k).sum()
    assert float(lin) == pytest.approx(float(expected), rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("ori, sf", [(0.0, 0.1), (67.5, 0.25)])
def test_energy_cell_is_phase_invariant(ori, sf):
    cell = A.energy_cell(ori, sf)
    r = centre_response(cell, [A.sinusoid(SIZE, ori, sf, p) for p in np.arange(0, 360, 10)])[:, 0]
    assert float((r.max() - r.min()) / r.max()) < 1e-5
    assert float(r.mean()) == pytest.approx(1.0, abs=1e-3)
    off = centre_response(cell, [A.sinusoid(SIZE, ori + 90, sf, 0.0)])[0, 0]
    assert float(off) < 0.05  # still orientation selective


def test_hubel_wiesel_cell_is_approximately_phase_invariant():
    phases = np.arange(0, 360, 5)
    exact = A.hubel_wiesel_cell(0.0, 0.125, n_phases=8)
    r = centre_response(exact, [A.sinusoid(SIZE, 0.0, 0.125, p) for p in phases])[:, 0]
    assert float(r.min() / r.max()) == pytest.approx(np.cos(np.pi / 8), abs=0.01)  # 1 - ripple
    jittered = A.hubel_wiesel_cell(0.0, 0.125, weight_jitter=0.2, phase_jitter_deg=10.0, seed=3)
    rj = centre_response(jittered, [A.sinusoid(SIZE, 0.0, 0.125, p) for p in phases])[:, 0]
    assert 0.6 < float(rj.min() / rj.max()) < float(r.min() / r.max())  # approximate only
    simple = centre_response(A.simple_cell(0.0, 0.125), [A.sinusoid(SIZE, 0.0, 0.125, p) for p in phases])
    assert float(simple.min()) == 0.0  # whereas a simple cell is silenced by some phases


def test_hubel_wiesel_jitter_is_seeded():
    a = A.hubel_wiesel_cell(weight_jitter=0.3, phase_jitter_deg=10, seed=1)
    b = A.hubel_wiesel_cell(weight_jitter=0.3, phase_jitter_deg=10, seed=1)
    c = A.hubel_wiesel_cell(weight_jitter=0.3, phase_jitter_deg=10, seed=2)
    assert torch.equal(a.pool.weight, b.pool.weight) and torch.equal(a.subunits.weight, b.subunits.weight)
    assert not torch.equal(a.pool.weight, c.pool.weight)


def test_dog_on_centre_prefers_a_centred_spot():
    cell = A.dog_cell(2.0)
    radii = [1, 2, 3, 4, 6, 10, 20]
    r = centre_response(cell, [A.spot(SIZE, rad) for rad in radii])[:, 0]
    assert 1 <= int(r.argmax()) <= 4 and float(r.max()) == pytest.approx(1.0, abs=0.05)
    assert float(r[-1]) < 0.2 * float(r.max())  # surround suppression: a big disc is weak
    shifted = centre_response(cell, [A.spot(SIZE, 3, center_px=(SIZE // 2, SIZE // 2 + d)) for d in (0, 3, 6, 12)])[:, 0]
    assert shifted[0] > shifted[1] > shifted[2] >= shifted[3]
    uniform = centre_response(cell, [torch.ones(3, SIZE, SIZE)])[0, 0]
    assert float(uniform) == pytest.approx(0.0, abs=1e-5)  # balanced
    off = centre_response(A.dog_cell(2.0, polarity="off"), [A.spot(SIZE, 3), A.spot(SIZE, 3, contrast=-1)])
    assert float(off[0, 0]) == 0.0 and float(off[1, 0]) > 0.5


def test_v1bank_layers_and_channel_metadata():
    bank = A.V1Bank()
    names = dict(bank.named_modules())
    for layer in ("simple", "complex_energy", "complex_hw", "dog", "quadrature", "simple.linear"):
        assert layer in names
    x = PREP.normalise(torch.stack([A.sinusoid(SIZE, 45.0, 0.125, 0.0)]))
    with torch.no_grad():
        out = bank(x)
    assert out.shape == (1, len(bank.channels), SIZE, SIZE)
    n_simple = len(bank.simple.channels)
    assert n_simple == 8 * 4 * 2 and list(bank.simple.channels.columns[:5]) == [
        "cell_type", "orientation_deg", "phase_deg", "sf_cycles_per_px", "sigma_px"]
    simple = out[0, :n_simple, SIZE // 2, SIZE // 2]
    best = bank.simple.channels.iloc[int(simple.argmax())]
    assert (best.orientation_deg, best.phase_deg, best.sf_cycles_per_px) == (45.0, 0.0, 0.125)
    energy = out[0, n_simple:n_simple + len(bank.complex_energy.channels), SIZE // 2, SIZE // 2]
    best = bank.complex_energy.channels.iloc[int(energy.argmax())]
    assert (best.orientation_deg, best.sf_cycles_per_px) == (45.0, 0.125)
    assert A.channel_table(bank.complex_hw).cell_type.eq("complex_hw").all()
    assert all(not p.requires_grad for p in bank.parameters())


def test_bank_families_match_standalone_cells():
    bank = A.V1Bank(orientations_deg=(30.0,), sfs_cycles_per_px=(0.12,), phases_deg=(45.0,))
    x = PREP.normalise(torch.rand(2, 3, 48, 48))
    with torch.no_grad():
        q = bank.quadrature(bank.luminance(x))
        assert torch.allclose(bank.simple(q), A.simple_cell(30.0, 0.12, 45.0)(x), atol=1e-5)
        assert torch.allclose(bank.complex_energy(q), A.energy_cell(30.0, 0.12)(x), atol=1e-5)


def test_neuromatch_filters_follow_the_tutorial():
    filters, table = A.neuromatch_filters(6, 7)
    assert filters.shape == (6, 7, 7)
    assert torch.allclose(filters[1], -filters[0])
    assert torch.allclose(filters.mean(dim=(1, 2)), torch.zeros(6), atol=1e-6)
    assert list(table.cell_type) == ["center_surround_on", "center_surround_off"] + ["gabor"] * 4
    assert float(filters[0, 3, 3]) == float(filters[0].max())  # positive centre
    # an oriented channel prefers a grating at the orientation its table row gives
    model = A.NeuromatchConv()
    for ch in range(2, 6):
        row = table.iloc[ch]
        oris = np.arange(0.0, 180.0, 45.0)
        resp = []
        for o in oris:
            imgs = [A.sinusoid(SIZE, o, row.sf_cycles_per_px, p) for p in np.arange(0, 360, 30)]
            resp.append(float(centre_response(model, imgs)[:, ch].max()))
        assert oris[int(np.argmax(resp))] == pytest.approx(row.orientation_deg)


def test_factories_validate_arguments():
    with pytest.raises(ValueError):
        A.gabor_kernel(0.0, -0.1)
    with pytest.raises(ValueError):
        A.dog_cell(2.0, polarity="sideways")
    with pytest.raises(ValueError):
        A.hubel_wiesel_cell(n_phases=0)


@pytest.mark.parametrize("name", sorted(A.ANALYTIC_FACTORIES))
def test_registered_analytic_models_load(name):
    spec = load_model(name)
    assert spec.condition == "analytic" and spec.preprocessing.input_size_px == SIZE
    with torch.no_grad():
        out = spec.module(torch.zeros(1, 3, SIZE, SIZE))
    assert out.shape[-2:] == (SIZE, SIZE)
