import numpy as np
import pytest
import torch

from artiphys.errors import StimulusError
from artiphys.models.spec import as_spec
from artiphys.recording.hooks import forward_to_layers
from artiphys.synthesis.probes import (baselines, plot_probes, probe_responses, probe_table,
                                       probe_variants)

from .nets import GaborCell, TinyNet, gabor_kernel, hooks_left


def grating(size, sf, ori_deg):
    k = gabor_kernel(size, sf, ori_deg, sigma_px=1e6)
    k = 0.5 + 0.5 * k / k.abs().max()
    return k.expand(1, 3, -1, -1).clone()


def test_variant_table_and_colours():
    img = torch.rand(1, 3, 8, 8)
    v, table = probe_variants(img, zooms=(0.5, 1.0, 2.0), rotations_deg=(0.0, 90.0))
    assert v.shape[:2] == (1, len(table))
    assert torch.equal(v[0, 0], img[0])
    zoom_out = v[0, table.index[(table.family == "zoom") & (table.value == "0.5")][0]]
    assert torch.all(zoom_out[:, 0] == 0.5)  # mid-gray padding
    r90 = v[0, table.index[(table.family == "rotation") & (table.value == "90")][0]]
    torch.testing.assert_close(r90, torch.rot90(img[0], 1, dims=(-2, -1)), atol=1e-5, rtol=0)
    gray = v[0, table.index[table.value == "gray"][0]]
    assert torch.equal(gray[0], gray[2])
    only_g = v[0, table.index[(table.value == "only_g")][0]]
    assert torch.count_nonzero(only_g[[0, 2]]) == 0
    swap = v[0, table.index[(table.value == "swap_bgr")][0]]
    assert torch.equal(swap, img[0].flip(0))
    base, names = baselines(8)
    assert names == ["noise", "white", "gray"] and torch.all(base[1] == 1)


def test_oriented_cell_prefers_its_rotation():
    """A 0 deg grating rotated by 90 deg drives a 90 deg Gabor cell best at rotation 90."""
    model = GaborCell(sf_cycles_per_px=0.125, orientation_deg=90.0)
    ds = probe_responses(model, "relu", grating(48, 0.125, 0.0), units=[0],
                         rotations_deg=(0.0, 45.0, 90.0, 135.0))
    rot = ds["max"].where(ds.family == "rotation", drop=True)
    best = rot["value"].values[int(rot.values[0].argmax())]
    assert best == "90"
    gray_idx = int(np.flatnonzero(ds["value"].values == "gray")[-1])
    assert float(ds["max"][0, gray_idx]) == pytest.approx(0.0, abs=1e-5)  # uniform: no drive
    assert hooks_left(model) == []


def test_probe_tables_layer_scope_and_plot(tmp_path):
    model = TinyNet().eval()
    imgs = torch.rand(3, 3, 16, 16)
    ds = probe_responses(model, "relu2", imgs, units=[0, 4, 7], batch_size=7)
    assert ds["max"].dims == ("unit", "probe")
    assert list(ds.unit.values) == [0, 4, 7]
    assert set(ds.family.values) == {"original", "zoom", "rotation", "color", "baseline"}
    assert np.all(ds["max"].values >= ds["mean"].values - 1e-6)
    # the 'original' probe equals a direct measurement of that unit's channel
    spec = as_spec(model)
    with torch.no_grad():
        a = forward_to_layers(spec, spec.preprocessing.normalise(imgs), ["relu2"])["relu2"]
    orig = int(np.flatnonzero(ds["family"].values == "original")[0])
    assert float(ds["max"].sel(unit=4)[orig]) == pytest.approx(float(a[1, 4].max()), rel=1e-5)
    assert float(ds["mean"].sel(unit=7)[orig]) == pytest.approx(float(a[2, 7].mean()), rel=1e-5)
    df = probe_table(ds)
    assert len(df) == 3 * ds.sizes["probe"]
    layer_ds = probe_responses(model, "relu2", imgs, units=None)
    assert layer_ds.attrs["scope"] == "layer"
    fig = plot_probes(ds)
    fig.savefig(tmp_path / "p.png")
    fig = plot_probes(ds, unit=4)
    assert (tmp_path / "p.png").stat().st_size > 1000
    with pytest.raises(StimulusError):
        probe_responses(model, "relu2", imgs, units=[0])
