"""A ``Conv2d`` computed through the FFT, for the analytic models' large fixed kernels.

The Gabor and DoG kernels of :mod:`artiphys.models.analytic` are up to 47 px wide on a
65 px input; a direct convolution costs ``k^2`` multiply-adds per output pixel, the FFT
route ``O(log n)``. :class:`FFTConv2d` is a plain :class:`torch.nn.Conv2d` in every other
respect (weights, padding, geometry), so receptive-field rules and hooks see a Conv2d; the
graph tracer keeps it a leaf (:mod:`artiphys.models.rf_trace`). Other settings (stride,
dilation, groups, non-zero padding modes) fall back to the direct convolution.
"""

from __future__ import annotations

import torch
from scipy.fft import next_fast_len
from torch import nn


class FFTConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose stride-1, zero-padded, ungrouped forward runs through the FFT
    (the same cross-correlation as the direct route, to float rounding; differentiable)."""

    #: Kernels at least this wide go through the FFT (smaller ones are faster direct).
    min_kernel_px = 9

    def _fft_applies(self, weight: torch.Tensor) -> bool:
        return (self.stride == (1, 1) and self.dilation == (1, 1) and self.groups == 1
                and self.padding_mode == "zeros" and isinstance(self.padding, tuple)
                and min(weight.shape[-2:]) >= self.min_kernel_px)

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias):
        if not self._fft_applies(weight):
            return super()._conv_forward(x, weight, bias)
        (h, w), (kh, kw), (ph, pw) = x.shape[-2:], weight.shape[-2:], self.padding
        # At least the full linear convolution (no wrap-around), at sizes the FFT is fast at.
        size = (next_fast_len(h + kh - 1, real=True), next_fast_len(w + kw - 1, real=True))
        fx = torch.fft.rfft2(x, s=size)
        fk = torch.fft.rfft2(weight.flip(-2, -1), s=size)  # correlation = flipped convolution
        full = torch.fft.irfft2(torch.einsum("nihw,oihw->nohw", fx, fk), s=size)
        # Output o of the padded correlation is full-convolution index o + k - 1 - p.
        top, left = kh - 1 - ph, kw - 1 - pw
        out = full[..., top:top + h + 2 * ph - kh + 1, left:left + w + 2 * pw - kw + 1]
        out = out.contiguous()
        return out if bias is None else out + bias.view(1, -1, 1, 1)


__all__ = ["FFTConv2d"]
