"""Recording generated stimuli keeps peak memory bounded independently of their number:
the stimuli are rendered batch by batch, so 50,000 need no more peak RSS than 5,000 beyond
the responses themselves (50,000 x 64 float32 = 12.8 MB). Each size runs in a fresh
process (``ru_maxrss`` is a process's lifetime peak)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SRC = Path(__file__).resolve().parents[2] / "src"
SCRIPT = """
import resource, sys
import numpy as np, pandas as pd, torch
from artiphys.models import load_model
from artiphys.recording import record
from artiphys.stimuli.base import StimulusSet

n = int(sys.argv[1])

def render(rows):
    g = torch.Generator().manual_seed(int(rows.index[0]))
    return torch.rand((len(rows), 3, 32, 32), generator=g)

stim = StimulusSet("noise", pd.DataFrame({"i": np.arange(n)}), render, 32)
spec = load_model("v1bank", input_size=32)
out = record(spec, stim, "simple.relu", batch_size=256, device="cpu")
assert out["simple.relu"].shape == (n, 64)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak_kib(n: int) -> int:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(n)], env=env, check=True,
                          capture_output=True, text=True, timeout=900)
    return int(done.stdout.split()[-1])


@pytest.mark.slow
def test_peak_rss_of_50k_generated_stimuli_is_that_of_5k():
    small, large = _peak_kib(5_000), _peak_kib(50_000)
    responses_kib = 45_000 * 64 * 4 // 1024  # what the extra responses must take
    assert large - small <= responses_kib + 32 * 1024, (small, large)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_recording_on_cuda_equals_cpu_within_float_tolerance():
    from artiphys.models import load_model
    from artiphys.recording import record

    spec = load_model("v1bank", input_size=32)
    x = torch.rand((64, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    cpu = record(spec, x, "simple.relu", device="cpu")["simple.relu"].values
    gpu = record(spec, x, "simple.relu", device="cuda")["simple.relu"].values
    assert abs(cpu - gpu).max() <= 1e-4 * max(1.0, abs(cpu).max())
