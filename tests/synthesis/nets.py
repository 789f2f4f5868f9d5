"""Tiny hand-built networks with known answers, shared by the synthesis tests."""

from __future__ import annotations

import math

import torch
from torch import nn


def gabor_kernel(size_px: int, sf_cycles_per_px: float, orientation_deg: float,
                 sigma_px: float) -> torch.Tensor:
    """Even-symmetric, zero-mean Gabor; the carrier's wave vector points at
    ``orientation_deg`` (counter-clockwise from +x, image rows pointing down)."""
    r = (size_px - 1) / 2
    ys, xs = torch.meshgrid(torch.arange(size_px) - r, torch.arange(size_px) - r, indexing="ij")
    th = math.radians(orientation_deg)
    u = xs * math.cos(th) - ys * math.sin(th)
    g = torch.exp(-(xs ** 2 + ys ** 2) / (2 * sigma_px ** 2)) * torch.cos(2 * math.pi * sf_cycles_per_px * u)
    return g - g.mean()


class GaborCell(nn.Module):
    """One oriented Gabor filter on the gray level, then ReLU (a simple cell)."""

    def __init__(self, sf_cycles_per_px=0.125, orientation_deg=30.0, size_px=21, sigma_px=4.0):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, size_px, bias=False)
        k = gabor_kernel(size_px, sf_cycles_per_px, orientation_deg, sigma_px)
        with torch.no_grad():
            self.conv.weight.copy_(k.expand(1, 3, -1, -1) / 3)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(x))


class TinyNet(nn.Module):
    """conv-relu-conv-relu-pool-fc with seeded random weights; `head` raises if asked to."""

    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 8, 5, padding=2)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        self.fail_in_head = False
        self.head_calls = 0

    def forward(self, x):
        x = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        self.head_calls += 1
        if self.fail_in_head:
            raise RuntimeError("head failed")
        return self.fc(self.pool(x).flatten(1))


def hooks_left(model: nn.Module) -> list[str]:
    """Names of modules that still hold any forward / backward hook."""
    return [name for name, m in model.named_modules()
            if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
            or getattr(m, "_backward_pre_hooks", None)]
