"""Small models for recording tests, importable from a subprocess (the kill test).

``python tests/recording/_recording_fakes.py record tiny ...`` runs the CLI with
``artiphys.models.load_model`` replaced by :func:`load_fake_model`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from torch import nn

from artiphys.errors import UnknownModelError
from artiphys.models.spec import ModelSpec, Preprocessing

PLAIN = Preprocessing(input_size_px=16, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


class TinyNet(nn.Module):
    """conv(3->4, 3x3, pad 1) -> ReLU(inplace) -> maxpool 2 -> flatten -> fc(4*8*8 -> 5)."""

    def __init__(self, seed: int = 0, sleep_s: float = 0.0):
        super().__init__()
        torch.manual_seed(seed)
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(4 * 8 * 8, 5))
        self.sleep_s = sleep_s

    def forward(self, x):
        if self.sleep_s:
            time.sleep(self.sleep_s)
        return self.classifier(self.features(x))


class IdentityNet(nn.Module):
    """A 1x1 conv with identity weights: its output is the input image, pixel for pixel."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()

    def forward(self, x):
        return self.flat(self.pool(self.conv(x)))


def tiny_spec(seed: int = 0, sleep_s: float = 0.0) -> ModelSpec:
    return ModelSpec("tiny", TinyNet(seed, sleep_s).eval(), PLAIN, condition="untrained",
                     weights_sha256=None, seed=seed)


def load_fake_model(name, *, pretrained=None, weights=None, seed=0, input_size=None):
    """Stand-in for ``artiphys.models.load_model``: ``tiny`` and ``slowtiny`` only."""
    if name not in {"tiny", "slowtiny"}:
        raise UnknownModelError(f"unknown model {name!r}; use tiny or slowtiny")
    spec = tiny_spec(seed, sleep_s=0.05 if name == "slowtiny" else 0.0)
    spec.name = name
    return spec.with_input_size(input_size) if input_size else spec


def main() -> None:
    import artiphys.models
    from artiphys.cli import main as cli_main

    artiphys.models.load_model = load_fake_model
    sys.argv[0] = "artiphys"
    cli_main()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
    main()
