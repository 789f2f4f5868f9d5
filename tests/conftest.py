"""Shared fixtures: where ../shared is, real weights through ARTIPHYS_WEIGHTS_DIR."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _find_shared() -> Path:
    """``$ARTIPHYS_SHARED``, else the first ``shared/`` beside the checkout or an ancestor
    (a git worktree may sit deeper than ``<checkout>/..``)."""
    if os.environ.get("ARTIPHYS_SHARED"):
        return Path(os.environ["ARTIPHYS_SHARED"]).resolve()
    for parent in ROOT.parents:
        if (parent / "shared" / "data").is_dir():
            return (parent / "shared").resolve()
    return (ROOT.parent / "shared").resolve()


SHARED = _find_shared()
os.environ.setdefault("ARTIPHYS_WEIGHTS_DIR", str(SHARED / "weights"))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"shared data folder not found at {SHARED}; set ARTIPHYS_SHARED")
    return SHARED


@pytest.fixture(scope="session")
def weights_dir(shared_dir) -> Path:
    return Path(os.environ["ARTIPHYS_WEIGHTS_DIR"])


@pytest.fixture(scope="session")
def imagenet_sample_dir(shared_dir) -> Path:
    return shared_dir / "data" / "imagenet-sample-256"


@pytest.fixture(scope="session")
def reference_dir(shared_dir) -> Path:
    return shared_dir / "data" / "reference"
