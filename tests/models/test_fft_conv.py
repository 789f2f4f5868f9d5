"""FFTConv2d equals the direct convolution (values and gradients), falls back where the
FFT route does not apply, and stays a leaf with a Conv2d's geometry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from artiphys.models.fft_conv import FFTConv2d


@pytest.mark.parametrize("kernel,padding,dtype,size", [
    (47, 23, torch.float32, (65, 65)), (25, 12, torch.float64, (63, 58)),
    (9, 0, torch.float32, (40, 41)), (11, 3, torch.float64, (30, 30))])
def test_fft_route_equals_direct_convolution(kernel, padding, dtype, size):
    torch.manual_seed(kernel)
    direct = nn.Conv2d(2, 5, kernel, padding=padding, bias=True).to(dtype)
    fft = FFTConv2d(2, 5, kernel, padding=padding, bias=True).to(dtype)
    fft.load_state_dict(direct.state_dict())
    x = torch.rand(3, 2, *size, dtype=dtype, requires_grad=True)
    a, b = direct(x), fft(x)
    assert a.shape == b.shape
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    ga, = torch.autograd.grad(a.square().sum(), x)
    gb, = torch.autograd.grad(b.square().sum(), x)
    a, b = a.detach(), b.detach()
    assert float((a - b).abs().max()) <= tol * float(a.abs().max())
    assert float((ga - gb).abs().max()) <= 10 * tol * float(ga.abs().max())


@pytest.mark.parametrize("kwargs", [dict(stride=2), dict(groups=2), dict(dilation=2),
                                    dict(padding_mode="reflect")])
def test_other_settings_fall_back_to_the_direct_route(kwargs):
    torch.manual_seed(0)
    direct = nn.Conv2d(2, 4, 9, padding=4, **kwargs)
    fft = FFTConv2d(2, 4, 9, padding=4, **kwargs)
    fft.load_state_dict(direct.state_dict())
    x = torch.rand(1, 2, 30, 30)
    assert not fft._fft_applies(fft.weight)
    assert torch.equal(direct(x), fft(x))


def test_v1bank_geometry_reads_the_fft_convolution_as_a_conv():
    from artiphys.models.receptive_field import layer_geometry
    from artiphys.models.registry import load_model

    spec = load_model("v1bank")
    assert isinstance(spec.module.quadrature, FFTConv2d)
    geo = layer_geometry(spec, "quadrature")
    assert geo.rf_size_px == 47 and geo.stride_px == 1 and geo.note == ""
