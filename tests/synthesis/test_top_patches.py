import numpy as np
import pytest
import torch
from PIL import Image

from artiphys.errors import ArtiphysError

from artiphys.models.spec import Preprocessing, as_spec
from artiphys.stimuli.base import StimulusSet
from artiphys.synthesis.geometry import measured_geometry, unit_geometry
from artiphys.synthesis.top_patches import (crop_box, guided_backprop,
                                            plot_top_patches, stream_top_k, top_patches)

from .nets import GaborCell, TinyNet, gabor_kernel, hooks_left

ORIENTATIONS = (0.0, 30.0, 60.0, 90.0, 120.0, 150.0)


@pytest.fixture(scope="module")
def grating_folder(tmp_path_factory):
    """Six full-contrast gratings (0.125 c/px) at known orientations plus a gray image."""
    d = tmp_path_factory.mktemp("gratings")
    for i, ori in enumerate(ORIENTATIONS):
        g = gabor_kernel(48, 0.125, ori, sigma_px=1e6)
        a = (127.5 + 127.5 * g / g.abs().max()).round().clamp(0, 255).byte().numpy()
        Image.fromarray(np.stack([a] * 3, -1)).save(d / f"g{i}_{int(ori):03d}.png")
    Image.fromarray(np.full((48, 64, 3), 128, np.uint8)).save(d / "z_gray.png")
    return d


def test_oriented_cell_top_image_is_its_grating(grating_folder):
    spec = as_spec(GaborCell(0.125, 60.0), Preprocessing(input_size_px=48))
    res = top_patches(spec, grating_folder, "relu", [0], k=3, batch_size=2)
    exc = res.table[(res.table.sign == "excitatory")].sort_values("rank")
    assert exc.iloc[0]["file"] == "g2_060"
    sup = res.table[(res.table.sign == "suppressive")].sort_values("rank")
    # read before the rectifier: the map minimum of a linear Gabor is deepest for its own
    # grating (the opposite phase lies somewhere on the map); no ties
    assert sup.iloc[0]["file"] == "g2_060" and (sup["response"] < 0).all()
    assert not sup["tied"].any() and set(sup["read_on"]) == {"relu:linear"}
    with pytest.warns(UserWarning, match="tied"):
        same = top_patches(spec, grating_folder, "relu", [0], k=3, batch_size=2,
                           suppressive="same")
    sup = same.table[same.table.sign == "suppressive"]
    assert (sup["response"] == 0).all() and sup["tied"].all()  # the old silent tie at 0
    assert res.patches.shape == (1, 2, 3, 3, 21, 21)
    assert res.features.shape == res.patches.shape
    assert hooks_left(spec.module) == []


def test_bounded_selection_equals_full_sort():
    torch.manual_seed(0)
    imgs = torch.rand(23, 3, 20, 20)
    stim = StimulusSet.from_tensor(imgs)
    model = TinyNet().eval()
    spec = as_spec(model, Preprocessing(input_size_px=20))
    vals, idx, pos = stream_top_k(spec, stim, "relu2", [1, 6], k=4, batch_size=5)
    with torch.no_grad():
        a = model.relu2(model.conv2(model.relu1(model.conv1(spec.preprocessing.normalise(imgs)))))
    for u, c in enumerate([1, 6]):
        mx = a[:, c].flatten(1).max(1).values
        mn = a[:, c].flatten(1).min(1).values
        np.testing.assert_allclose(vals[0, u], torch.sort(mx, descending=True).values[:4], rtol=1e-5)
        np.testing.assert_allclose(vals[1, u], torch.sort(mn).values[:4], rtol=1e-5)
        best = int(idx[0, u, 0])
        y, x = pos[0, u, 0].tolist()
        assert float(a[best, c, y, x]) == pytest.approx(float(vals[0, u, 0]), rel=1e-5)
    centre = stream_top_k(spec, stim, "relu2", [1], k=2, position="center")
    assert torch.all(centre[2] == 5)  # 10x10 map -> centre unit map_center(10, 10) = (5, 5)


def test_crop_is_zero_padded_outside_the_image():
    img = torch.ones(1, 3, 10, 10)
    out = crop_box(img, -3, 7, 6, fill=0.0)
    assert out.shape == (1, 3, 6, 6)
    assert torch.all(out[:, :, :3] == 0) and torch.all(out[:, :, :, 3:] == 0)
    assert torch.all(out[:, :, 3:, :3] == 1)


def test_guided_feature_is_restricted_to_the_unit_rf():
    model = TinyNet().eval()
    spec = as_spec(model, Preprocessing(input_size_px=24))
    geo = unit_geometry(spec, "relu2")
    assert (geo.rf_size_px, geo.stride_px) == (7, 2)
    measured = measured_geometry(spec, "relu2")
    assert (measured.rf_size_px, measured.stride_px) == (7, 2)
    assert geo.box(3, 4) == measured.box(3, 4) == (3, 5, 7)
    torch.manual_seed(1)
    imgs = torch.rand(2, 3, 24, 24)
    with torch.no_grad():
        a = model.relu2(model.conv2(model.relu1(model.conv1(spec.preprocessing.normalise(imgs)))))
    # an active unit of channel 0 in each image, away from and at the border
    where = []
    for i in range(2):
        m = a[i, 0].clone()
        if i == 0:
            m[:, 1:] = -1  # force the left column: the RF leaves the image
        j = int(m.argmax())
        where.append((j // m.shape[1], j % m.shape[1]))
    g = guided_backprop(spec, imgs, "relu2", [0, 0], where)
    for i, (y, x) in enumerate(where):
        top, left, side = geo.box(y, x)
        inside = torch.zeros(24, 24, dtype=torch.bool)
        inside[max(top, 0):top + side, max(left, 0):left + side] = True
        assert g[i][:, inside].abs().sum() > 0
        assert torch.all(g[i][:, ~inside] == 0)
    assert hooks_left(model) == []


def test_guided_backprop_passes_only_positive_gradients():
    """Through conv -> relu -> conv with a negative second weight, plain gradients reach
    the input; guided ones are stopped at the ReLU."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 1, 1, bias=False), torch.nn.ReLU(),
                              torch.nn.Conv2d(1, 1, 1, bias=False))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[2].weight.fill_(-1.0)
    spec = as_spec(net.eval(), Preprocessing(input_size_px=4, mean=(0, 0, 0), std=(1, 1, 1)))
    g = guided_backprop(spec, torch.ones(1, 3, 4, 4), "2", [0], [(1, 1)])
    assert torch.count_nonzero(g) == 0
    g1 = guided_backprop(spec, torch.ones(1, 3, 4, 4), "1", [0], [(1, 1)])
    assert torch.count_nonzero(g1) == 3  # one pixel, three channels


def test_plot(grating_folder, tmp_path):
    spec = as_spec(GaborCell(0.125, 0.0), Preprocessing(input_size_px=48))
    res = top_patches(spec, grating_folder, "relu", [0], k=2)
    fig = plot_top_patches(res, 0)
    fig.savefig(tmp_path / "t.png")
    assert (tmp_path / "t.png").stat().st_size > 1000


def test_guided_hooks_removed_on_error():
    from artiphys.errors import UnknownLayerError

    model = TinyNet().eval()
    spec = as_spec(model, Preprocessing(input_size_px=16))
    with pytest.raises(UnknownLayerError):
        guided_backprop(spec, torch.rand(1, 3, 16, 16), "conv9", [0], [(0, 0)])
    with pytest.raises(IndexError):
        guided_backprop(spec, torch.rand(1, 3, 16, 16), "relu2", [0], [(99, 0)])
    assert hooks_left(model) == []


def test_suppressive_on_a_rectified_layer_reads_the_linear_sublayer():
    torch.manual_seed(1)
    stim = StimulusSet.from_tensor(torch.rand(12, 3, 20, 20))
    spec = as_spec(TinyNet().eval(), Preprocessing(input_size_px=20))
    res = top_patches(spec, stim, "relu2", [1, 6], k=4, batch_size=5)
    assert res.settings["suppressive_layer"] == "relu2:linear"
    for c in (1, 6):
        sup = res.table[(res.table.sign == "suppressive") & (res.table.unit == c)]
        assert set(sup["read_on"]) == {"relu2:linear"}
        assert sup["stimulus"].nunique() == 4  # distinct images
        assert (sup["response"] < 0).all() and sup["response"].nunique() == 4
        assert not sup["tied"].any()
        assert list(sup["response"]) == sorted(sup["response"])
    # on the rectified layer itself the minimum is a tie at 0: flagged, with a warning
    with pytest.warns(UserWarning, match="tied"):
        same = top_patches(spec, stim, "relu2", [1, 6], k=4,
                           batch_size=5, suppressive="same")
    sup = same.table[same.table.sign == "suppressive"]
    assert (sup["response"] == 0).all() and sup["tied"].all()
    assert same.settings["tied"]["suppressive"] == 2
    with pytest.raises(ArtiphysError, match="linear"):
        top_patches(spec, stim, "relu2", [1], suppressive="lowest")
