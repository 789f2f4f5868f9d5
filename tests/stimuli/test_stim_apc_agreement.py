"""The package's APC features against the authors' table, where it matters: APC fits of
SqueezeNet's linear sublayers (real weights), and the limit any rotation-covariant
feature definition has against that table.

Issue 12 asks for the same best model as with the authors' features for >= 90% of units and
median |delta r| <= 0.005. That is not reached (see docs/stimuli.md); these tests pin what
is measured so that a change to the features shows up, and show why 90% is out of reach: the
authors' values change with the rotation of a shape (their angles sit on a 0.0075 rad grid
and a curvature deviates by up to 0.055 from its mean over the rotations of its shape), and replacing
them by the rotation-covariant version of the same table (every feature's angle and
curvature averaged over the rotations of its shape, rotated back) already gives the same
best model for only ~83-86% of the units.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from artiphys.models.registry import load_model
from artiphys.recording import record
from artiphys.stimuli.apc_features import apc_features, load_feature_table
from artiphys.stimuli.registry import make_stimuli
from artiphys.stimuli.shapes import shape_table
from artiphys.tuning.apc import APCGrid, fit_apc

LAYERS = (3, 5, 7)


@pytest.fixture(scope="module")
def linear_sublayers():
    """SqueezeNet fire3/5/7 linear sublayers (expand1x1 ++ expand3x3, before the ReLUs), centre
    units, at the model's default input size (224 px) with the default 32 px shapes."""
    spec = load_model("squeezenet1_0", pretrained=True)
    size = spec.preprocessing.input_size_px
    shapes = make_stimuli("shapes", canvas_px=size, size_px=32)
    names = [f"features.{n}.{e}" for n in LAYERS for e in ("expand1x1", "expand3x3")]
    out = record(spec, shapes, names, units="center")
    return shapes, {n: xr.concat([out[f"features.{n}.expand1x1"],
                                  out[f"features.{n}.expand3x3"]], dim="unit")
                    for n in LAYERS}


def _agreement(fit_a, fit_b, layer_of):
    """Per layer: fraction with the same best model, same mu_a, median |delta r|."""
    out = {}
    for n in LAYERS:
        s = (layer_of == n) & np.isfinite(fit_a.r.values) & np.isfinite(fit_b.r.values)
        out[n] = (float(np.mean(fit_a.model_index.values[s] == fit_b.model_index.values[s])),
                  float(np.mean(fit_a.mu_a_deg.values[s] == fit_b.mu_a_deg.values[s])),
                  float(np.median(np.abs(fit_a.r.values[s] - fit_b.r.values[s]))),
                  float(np.median(fit_a.r.values[s])), float(np.median(fit_b.r.values[s])))
    return out


def _rotation_covariant(table: pd.DataFrame) -> dict[int, np.ndarray]:
    """The authors' features made rotation covariant: each feature's angle (rotated back by
    k * 45 deg) and curvature averaged over the rotations of its shape, rotated forward again.
    Shapes whose rotations have different numbers of features are left as they are."""
    standard = shape_table(unique=False)
    groups = {int(k): g[["angular_position_rad", "curvature"]].to_numpy()
              for k, g in table.groupby("stimulus_index")}
    out = {}
    for _, rows in standard.groupby("shape_id"):
        stims, rots = rows.index_370.to_numpy(), rows.rotation.to_numpy()
        if len({len(groups[s]) for s in stims}) > 1:
            out.update({int(s): groups[int(s)] for s in stims})
            continue
        base = groups[int(stims[0])]
        aligned = []
        for s, k in zip(stims, rots):
            f = groups[int(s)]
            a = np.mod(f[:, 0] - k * np.pi / 4, 2 * np.pi)
            d = np.abs(np.mod(a[:, None] - base[None, :, 0] + np.pi, 2 * np.pi) - np.pi)
            j = d.argmin(axis=0)
            aligned.append(np.stack([a[j], f[j, 1]], axis=1))
        aligned = np.array(aligned)
        mean_a = np.angle(np.exp(1j * aligned[..., 0]).mean(axis=0))
        mean_c = aligned[..., 1].mean(axis=0)
        for s, k in zip(stims, rots):
            out[int(s)] = np.stack([np.mod(mean_a + k * np.pi / 4, 2 * np.pi), mean_c], axis=1)
    return out


@pytest.mark.slow
def test_package_features_against_the_authors_on_squeezenet(linear_sublayers, reference_dir):
    shapes, resp = linear_sublayers
    da = xr.concat([resp[n] for n in LAYERS], dim="unit")
    layer_of = np.concatenate([[n] * resp[n].sizes["unit"] for n in LAYERS])
    table = load_feature_table(reference_dir / "pc2001_370_apc_features.csv")
    grid = APCGrid.published()
    authors = fit_apc(da, table, grid, device="cpu")  # joined by index_370
    ours = fit_apc(da, apc_features(shapes), grid, device="cpu")
    covariant = _rotation_covariant(table)
    ceiling = fit_apc(da, [covariant[int(k)] for k in da.index_370.values], grid, device="cpu")
    got, best = _agreement(ours, authors, layer_of), _agreement(ceiling, authors, layer_of)
    for n in LAYERS:
        print(f"\nfeatures.{n}:linear  package vs authors: same model {got[n][0]:.3f}, same "
              f"mu_a {got[n][1]:.3f}, median |dr| {got[n][2]:.4f}, median r {got[n][3]:.3f} vs "
              f"{got[n][4]:.3f} | rotation-covariant authors' table: same model "
              f"{best[n][0]:.3f}, median |dr| {best[n][2]:.4f}")
    # what the package reaches (not the targets, which it does not reach)
    assert all(got[n][0] >= 0.10 and got[n][1] >= 0.33 for n in LAYERS)
    assert all(got[n][2] <= 0.03 and abs(got[n][3] - got[n][4]) <= 0.03 for n in LAYERS)
    # the limit of any rotation-covariant definition: |dr| can be small, 90% is out of reach
    assert all(best[n][2] <= 0.002 for n in LAYERS)
    assert max(best[n][0] for n in LAYERS) < 0.90


def test_the_authors_boundaries_are_the_package_spline_samples(reference_dir):
    """The disagreement is not in the boundary: the authors' 370 boundaries are this package's
    spline samples (closed), except shape 29 (the v4cnn variant differs)."""
    from artiphys.stimuli.apc_features import boundary_features

    data = np.load(reference_dir / "pc2001_370_boundaries.npz")
    points, offsets = data["points"], data["offsets"]
    table = shape_table(unique=False)
    differ = set()
    for i, (sid, rot) in enumerate(table[["shape_id", "rotation"]].to_numpy()):
        theirs = points[offsets[i]:offsets[i + 1]]
        ours = boundary_features(int(sid), int(rot)).points
        assert len(theirs) == len(ours) + 1
        if np.abs(theirs[:-1] - ours).max() > 1e-9:
            differ.add(int(sid))
    assert differ == {29}
