"""Synthesis test fixtures.

* Tiny networks run on one thread: on a shared 2-core machine, 2 OpenMP threads on a 64 px
  image spend far longer waiting for each other than working.
* ``shared_dir`` also finds ``../shared`` from a git worktree (``/work/wt/<name>``), where
  the root conftest's default (``<repo>/../shared``) does not exist; ARTIPHYS_SHARED
  still wins when set.
"""

import os
from pathlib import Path

import pytest
import torch


def _find_shared() -> Path | None:
    if os.environ.get("ARTIPHYS_SHARED"):
        return Path(os.environ["ARTIPHYS_SHARED"]).resolve()
    for parent in Path(__file__).resolve().parents[2:5]:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared"
    return None


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    found = _find_shared()
    if found is None or not found.is_dir():
        pytest.fail("shared data folder not found; set ARTIPHYS_SHARED")
    weights = os.environ.get("ARTIPHYS_WEIGHTS_DIR")
    if not weights or not Path(weights).is_dir():
        os.environ["ARTIPHYS_WEIGHTS_DIR"] = str(found / "weights")
    return found


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
