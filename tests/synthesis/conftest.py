"""Synthesis test fixtures.

* Tiny networks run on one thread: on a shared 2-core machine, 2 OpenMP threads on a 64 px
  image spend far longer waiting for each other than working.
"""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
