"""`stimuli shapes_sweep --out` stays under 2 GB however many stimuli (issue 14 case 1: it
was 17.4 GB at 18,463 and killed at 24 GB at 36,563)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_contact_sheet_of_36563_stimuli_under_2_gb(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "artiphys", "stimuli", "shapes_sweep",
                          "-o", "step_px=1", "--out", str(tmp_path / "s.png")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-500:]
    assert (tmp_path / "s.png").stat().st_size > 0
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert peak_kb < 2 * 1024 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB"
