"""Fixtures of the tuning tests: APC features of the 362 shapes from the reference table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

# Pospisil et al. (2018) drop rotations 4-7 of shapes 3 and 44 (standard indices below).
DROPPED_370 = [14, 15, 16, 17, 318, 319, 320, 321]


@pytest.fixture(scope="session")
def features_362(reference_dir) -> list[np.ndarray]:
    """APC features (angle rad, curvature) of the 362 stimuli, read from the reference CSV."""
    table = pd.read_csv(reference_dir / "pc2001_370_apc_features.csv")
    keep = [i for i in range(370) if i not in DROPPED_370]
    groups = {k: g[["angular_position_rad", "curvature"]].to_numpy(float)
              for k, g in table.groupby("stimulus_index")}
    return [groups[i] for i in keep]


@pytest.fixture(scope="session")
def published_predictions(features_362):
    """Predictions of the published 65,536-model grid for the 362 shapes (computed once)."""
    from artiphys.tuning.apc import APCGrid, apc_predictions

    return apc_predictions(features_362, APCGrid.published(), device="cpu")
