import math

import numpy as np
import pytest
import torch

from artiphys.errors import ArtiphysError
from artiphys.synthesis import objectives as O
from artiphys.synthesis import transforms as T
from artiphys.synthesis.optimize import Stopper, Tracker, evaluate, optimize
from artiphys.synthesis.param import make_param

from .nets import GaborCell, TinyNet, hooks_left


def spectrum_peak(image: torch.Tensor, min_cycles: int = 0) -> tuple[float, float]:
    """(spatial frequency in cycles/px, orientation of the wave vector in degrees mod 180)
    of the strongest Fourier component of the gray image above ``min_cycles`` per image."""
    gray = image.mean(0).double()
    gray = gray - gray.mean()
    n = gray.shape[-1]
    power = torch.fft.fft2(gray).abs() ** 2
    k = torch.fft.fftfreq(n) * n
    power[(k[:, None] ** 2 + k[None, :] ** 2) <= min_cycles ** 2] = 0
    iy, ix = np.unravel_index(int(torch.argmax(power)), power.shape)
    fy = np.fft.fftfreq(n)[iy]
    fx = np.fft.fftfreq(n)[ix]
    # rows point down: the wave vector (fx, -fy) in the usual counter-clockwise frame
    return math.hypot(fx, fy), math.degrees(math.atan2(-fy, fx)) % 180


@pytest.mark.parametrize("orientation_deg", [30.0, 120.0])
@pytest.mark.parametrize("kind", ["pixel", "fourier"])
def test_gabor_maximal_image_is_grating_at_its_orientation_and_frequency(kind, orientation_deg):
    sf = 0.125
    model = GaborCell(sf_cycles_per_px=sf, orientation_deg=orientation_deg)
    param = make_param(kind, 1, 64, seed=1)
    res = optimize(model, O.channel("relu", 0), param, steps=40, lr=0.05, seed=0)
    # With 1/f scaling, Adam's per-coefficient step lets the lowest frequencies drift (a
    # luminance gradient the zero-mean filter ignores); look above 2 cycles per image.
    f, ori = spectrum_peak(res.images[0], min_cycles=2 if kind == "fourier" else 0)
    assert abs(f - sf) <= 1.5 / 64  # within 1.5 frequency bins
    d = abs(ori - orientation_deg) % 180
    assert min(d, 180 - d) < 8.0
    assert res.trace[-1, 0] > 10 * max(res.trace[0, 0], 1e-3)


OBJECTIVES = {
    "unit": lambda: O.unit("relu2", 1),
    "channel": lambda: O.channel("conv2", 2),
    "layer": lambda: O.layer("relu1"),
    "direction": lambda: O.direction("conv2", torch.linspace(-1, 1, 8)),
    "suppress": lambda: -O.channel("conv1", 3),
    "sum": lambda: O.channel("conv1", 0) + 0.5 * O.unit("conv2", 4),
}


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
@pytest.mark.parametrize("kind,color", [("pixel", "all"), ("fourier", "all"), ("pixel", "gray"),
                                        ("fourier", "g")])
def test_objective_rises_in_a_few_steps(objective, kind, color):
    model = TinyNet().eval()
    param = make_param(kind, 2, 24, color=color, seed=0)
    obj = O.per_image([OBJECTIVES[objective](), OBJECTIVES[objective]()])
    start = evaluate(model, obj, param.image_fn().detach()).numpy()
    res = optimize(model, obj, param, steps=8, lr=0.05)
    assert np.all(res.final > start + 1e-4), (res.final, start)
    assert hooks_left(model) == []
    assert model.head_calls == 1  # the head after conv2/relu2 ran only in the first pass


@pytest.mark.parametrize("kind", ["pixel", "fourier"])
@pytest.mark.parametrize("color", ["r", "g", "b"])
def test_single_colour_leaves_other_channels_exactly_zero(kind, color):
    model = TinyNet().eval()
    param = make_param(kind, 2, 16, color=color)
    res = optimize(model, O.channel("conv1", 0), param, steps=3, lr=0.1)
    keep = "rgb".index(color)
    for c in range(3):
        if c == keep:
            assert res.images[:, c].abs().sum() > 0
        else:
            assert torch.count_nonzero(res.images[:, c]) == 0


def test_gray_images_have_equal_channels():
    param = make_param("fourier", 1, 16, color="gray")
    res = optimize(TinyNet().eval(), O.channel("conv1", 0), param, steps=2)
    assert torch.equal(res.images[:, 0], res.images[:, 1])
    assert torch.equal(res.images[:, 0], res.images[:, 2])


def _run(seed, model):
    param = make_param("fourier", 2, 24, seed=seed)
    tr = T.compose([T.pad(2), T.jitter(3), T.scale([0.9, 1.0, 1.1]), T.rotate([-5, 0, 5])])
    return optimize(model, O.per_image([O.channel("conv2", 0), O.unit("conv2", 1)]),
                    param, steps=5, transform=tr, seed=seed)


def test_deterministic_on_cpu_for_a_seed():
    model = TinyNet().eval()
    state = torch.random.get_rng_state()
    a, b, c = _run(3, model), _run(3, model), _run(4, model)
    assert torch.equal(a.images, b.images)
    np.testing.assert_array_equal(a.trace, b.trace)
    assert not torch.equal(a.images, c.images)
    assert torch.equal(torch.random.get_rng_state(), state)  # caller's RNG untouched


def test_batch_elements_are_independent():
    """Element i of a batched run equals a run of element i alone (same init, no random
    transforms): batching changes nothing but speed."""
    model = TinyNet().eval()
    objs = [O.channel("conv2", c) for c in (0, 3)]
    batch = make_param("pixel", 2, 16, seed=0)
    init = batch.params[0].detach().clone()
    res = optimize(model, O.per_image(objs), batch, steps=4)
    for i, o in enumerate(objs):
        single = make_param("pixel", 1, 16)
        with torch.no_grad():
            single.params[0].copy_(init[i:i + 1])
        alone = optimize(model, o, single, steps=4)
        torch.testing.assert_close(alone.images[0], res.images[i], atol=1e-5, rtol=0)


def test_no_hook_survives_error_paths():
    model = TinyNet().eval()
    model.fail_in_head = True
    param = make_param("pixel", 1, 16)
    with pytest.raises(RuntimeError):
        optimize(model, O.unit("fc", 0), param, steps=2)
    with pytest.raises(ArtiphysError):
        optimize(model, O.channel("conv2", 99), param, steps=2)
    with pytest.raises(ArtiphysError):
        optimize(model, O.per_image([O.channel("conv2", 0)] * 3), param, steps=2)
    assert hooks_left(model) == []
    assert all(p.grad is None for p in model.parameters())


def test_weights_unchanged_and_without_grad():
    model = TinyNet().eval()
    before = [p.detach().clone() for p in model.parameters()]
    optimize(model, O.channel("conv2", 0), make_param("pixel", 1, 16), steps=3)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.grad is None for p in model.parameters())


def test_channels_last_gives_the_same_images_and_restores_the_weights():
    model = TinyNet().eval()
    before = [p.detach().clone() for p in model.parameters()]
    runs = []
    for cl in (False, True):
        param = make_param("pixel", 2, 16, seed=0)
        runs.append(optimize(model, O.channel("conv2", 1), param, steps=4, channels_last=cl))
    torch.testing.assert_close(runs[0].images, runs[1].images, atol=1e-5, rtol=0)
    assert runs[1].settings["channels_last"] is True
    for a, b in zip(before, model.parameters()):
        assert torch.equal(a, b) and b.is_contiguous()


def test_stopper_patience_stops_a_flat_objective():
    const = O.Objective(lambda acts: acts["conv1"].sum((1, 2, 3)) * 0 + 1.0, ("conv1",), "flat")
    tracker = Tracker()
    res = optimize(TinyNet().eval(), const, make_param("pixel", 1, 8), steps=100,
                   stopper=Stopper(patience=5), tracker=tracker)
    assert res.steps_run == 6
    assert tracker.trace.shape == (6, 1)


def test_projections_and_preconditioner_run():
    model = GaborCell()
    proj = T.compose([T.l2_decay(0.01), T.blur_every(0.5, every=4), T.clip_pixels(),
                      T.norm_constraint(5.0)])
    param = make_param("pixel", 1, 32)
    res = optimize(model, O.channel("relu", 0), param, steps=6, projection=proj,
                   preconditioner=T.fourier_preconditioner(), regulariser=T.total_variation(0.01),
                   optimizer="sgd", lr=1.0)
    assert float(param.params[0].detach().norm()) == pytest.approx(5.0, rel=1e-4)
    assert res.final[0] > res.trace[0, 0]
    with pytest.raises(ArtiphysError, match="pixel"):
        optimize(model, O.channel("relu", 0), make_param("fourier", 1, 32), steps=1,
                 projection=T.blur_every(1.0))
