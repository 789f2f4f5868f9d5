"""Angular position and curvature (APC) features of the Pasupathy & Connor shapes.

The APC model (Pasupathy & Connor 2001; Pospisil et al. 2018) describes each shape by
points on its boundary, each with an angular position and a curvature. Computed here
from the B-spline of :mod:`artiphys.stimuli.shapes` (50 samples per segment).

Conventions
-----------
- Shape coordinates, **y up**, as in :mod:`artiphys.stimuli.shapes`; a rotated shape's
  features are those of the rotated spline (rotation by k*45 deg adds k*pi/4 to every
  angular position).
- ``angular_position_rad``: angle of the boundary point around the shape's centre,
  ``atan2(y - cy, x - cx)`` wrapped to ``[0, 2 pi)``: 0 = right (+x), pi/2 = top,
  counter-clockwise. Position in the image and scale do not change it. The centre is, by
  default (``center="pc2001"``), the one of the authors' feature table: the centre of
  mass of the unrotated shape filled on a 0.05-unit grid (:func:`pc2001_center`),
  rotated with the shape; ``center="centroid"`` uses the polygon centroid of the spline.
- ``curvature``: signed curvature ``kappa = (x' y'' - y' x'') / |C'|^3`` of the spline in
  shape units (1 / shape unit), signed so that **convex is positive** and concave negative
  (whatever the traversal direction). A circle of radius rho has kappa = 1/rho.
- ``curvature_norm``: the normalised curvature of the APC model, ``tanh(kappa / 4)`` in
  (-1, 1); a circle of radius rho gives ``tanh(1 / (4 rho))``.
- Extrema: the local maxima and minima of curvature along the boundary (the 4-8 points per
  shape the published fits used). The curvature of a cubic B-spline ripples between
  knots, so extrema are found on the curvature smoothed circularly with a Gaussian of
  ``smooth_samples`` samples and kept when their prominence exceeds ``min_prominence``
  (normalised units); each sits at the middle of its plateau (flat sides and arcs have
  no single extreme point) and the value reported is the unsmoothed ``curvature_norm``
  at that sample. A shape without such extrema (the circles) gets one feature per
  control point. Settings chosen against the authors' feature table (see
  :func:`compare_with_reference`): about 88% of their features are matched.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from artiphys.errors import StimulusError
from artiphys.stimuli.shapes import (SAMPLES_PER_SEGMENT, _get_shape, _rotation_matrix,
                                     polygon_centroid, shape_table, spline_samples)

SMOOTH_SAMPLES = 15.0
MIN_PROMINENCE = 0.03
PLATEAU_FRACTION = 0.25


@dataclass(frozen=True)
class BoundaryFeatures:
    """Dense boundary description of one stimulus (see module doc for conventions).

    Attributes
    ----------
    shape_id, rotation : int
    points : ndarray (N, 2)
        Boundary samples in shape units (y up), not closed, rotation applied, not centred.
    centroid : ndarray (2,)
        Polygon centroid of the boundary.
    center : ndarray (2,)
        The point the angular positions are measured around (see ``center`` of
        :func:`boundary_features`).
    angular_position_rad : ndarray (N,)
    curvature : ndarray (N,)
        Signed curvature in 1 / shape unit, convex positive.
    curvature_norm : ndarray (N,)
        ``tanh(curvature / 4)``.
    extrema : ndarray (K,) of int
        Indices of the curvature extrema (the APC features), in boundary order.
    """

    shape_id: int
    rotation: int
    points: np.ndarray
    centroid: np.ndarray
    center: np.ndarray
    angular_position_rad: np.ndarray
    curvature: np.ndarray
    curvature_norm: np.ndarray
    extrema: np.ndarray

    def extrema_features(self) -> np.ndarray:
        """``(K, 2)``: angular position (rad), normalised curvature at each extremum."""
        return np.stack([self.angular_position_rad[self.extrema],
                         self.curvature_norm[self.extrema]], 1)

    def dense_features(self) -> np.ndarray:
        """``(N, 2)``: angular position (rad), normalised curvature at every sample."""
        return np.stack([self.angular_position_rad, self.curvature_norm], 1)


def curvature_extrema(curvature_norm: np.ndarray, smooth_samples: float = SMOOTH_SAMPLES,
                      min_prominence: float = MIN_PROMINENCE,
                      plateau_fraction: float = PLATEAU_FRACTION,
                      samples_per_segment: int = SAMPLES_PER_SEGMENT) -> np.ndarray:
    """Indices of the local maxima and minima of a closed curvature profile (sorted).

    The profile is smoothed circularly (Gaussian, ``smooth_samples``); peaks and troughs
    with prominence above ``min_prominence`` are kept. Each is placed at the middle of its
    plateau: the run of samples around it within ``plateau_fraction`` x its prominence of
    the extreme value (a flat side or an arc of constant curvature has no single
    extreme point). Falls back to one index per segment start (control point) when fewer
    than two extrema are found (circles).
    """
    k = np.asarray(curvature_norm, np.float64)
    n = len(k)
    ks = gaussian_filter1d(k, smooth_samples, mode="wrap") if smooth_samples > 0 else k
    wrapped = np.concatenate([ks, ks, ks])  # peaks near the seam see both neighbours
    found: set[int] = set()
    for sign in (1.0, -1.0):
        w = sign * wrapped
        peaks, props = find_peaks(w, prominence=min_prominence)
        for i, prom in zip(peaks, props["prominences"]):
            if not n <= i < 2 * n:
                continue
            floor = w[i] - plateau_fraction * prom
            lo = hi = int(i)
            while lo > i - n // 2 and w[lo - 1] >= floor:
                lo -= 1
            while hi < i + n // 2 and w[hi + 1] >= floor:
                hi += 1
            found.add(((lo + hi) // 2) % n)
    if len(found) < 2:
        return np.arange(0, n, samples_per_segment)
    return np.array(sorted(found), dtype=np.int64)


PC2001_CELL = 0.05   # grid cell of the authors' centre of mass, shape units
PC2001_GRID = 64     # cells per side (the grid spans +-1.6 shape units)


@functools.lru_cache(maxsize=128)
def pc2001_center(shape_id: int, v4cnn_shape29: bool = False) -> np.ndarray:
    """Centre of the unrotated shape as the authors' feature table measures it, shape units.

    The angular positions of Pasupathy & Connor's feature table (the one Pospisil et al.
    2018 fit) are measured around a centre of mass computed on a coarse grid (the
    ``comass.m`` routine in deanpospisil/v4cnn, ``analysis/code/anitha_matlab_analysis``,
    re-implemented from its description): the spline is sampled 25 times
    per segment; each sample marks grid cell ``(32 + trunc(y / 0.05), 32 + trunc(x / 0.05))``
    (1-based, truncation towards zero, so the cells on the axes are twice as wide); the
    outline is then filled by one raster scan (rows, then columns, 2..63), a cell becoming
    filled when its left and upper neighbours are filled and some cell below it in its
    column is filled (the original's extra rules for the border rows and columns are left
    out: no shape reaches them); the centre is ``0.05 * (mean filled index - 32)`` per axis. It is
    computed on the unrotated shape and rotated with it. It lies up to 0.04 shape units
    from the polygon centroid; fitted to the authors' table (angle, radius of each
    feature), the implied centre of every shape is within 0.008 of this one (median
    0.001) and 0.01-0.036 from the centroid for 15 of the 51 shapes.
    """
    pts = spline_samples(_get_shape(shape_id, v4cnn_shape29).control_points, 25)
    half = PC2001_GRID // 2
    rows = half + np.trunc(pts[:, 1] / PC2001_CELL).astype(int)
    cols = half + np.trunc(pts[:, 0] / PC2001_CELL).astype(int)
    grid = np.zeros((PC2001_GRID + 2, PC2001_GRID + 2), dtype=bool)  # 1-based, padded
    grid[rows, cols] = True
    below = np.zeros_like(grid)  # below[i, j]: some cell of column j in rows > i is filled
    for i in range(2, PC2001_GRID):
        below[i] = grid[i + 1:PC2001_GRID + 1].any(axis=0)
        for j in range(2, PC2001_GRID):
            if not grid[i, j] and grid[i, j - 1] and grid[i - 1, j] and below[i, j]:
                grid[i, j] = True
    r, c = np.nonzero(grid[1:PC2001_GRID + 1, 1:PC2001_GRID + 1])
    out = np.array([(c.mean() + 1 - half), (r.mean() + 1 - half)]) * PC2001_CELL
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=1024)
def boundary_features(shape_id: int, rotation: int = 0, *, smooth_samples: float = SMOOTH_SAMPLES,
                      min_prominence: float = MIN_PROMINENCE, plateau_fraction: float = PLATEAU_FRACTION,
                      center: str = "pc2001", v4cnn_shape29: bool = False) -> BoundaryFeatures:
    """Angular position and curvature at every boundary sample, and the extrema.

    Parameters
    ----------
    shape_id, rotation : int
        Shape 0..50, rotation k (counter-clockwise k*45 deg).
    smooth_samples, min_prominence, plateau_fraction : float
        Extremum detection (see :func:`curvature_extrema`).
    center : {"pc2001", "centroid"}
        Centre of the angular positions: the authors' gridded centre of mass
        (:func:`pc2001_center`, the centre of their feature table) or the polygon centroid.
    v4cnn_shape29 : bool
        Use the v4cnn variant of shape 29 (see :func:`artiphys.stimuli.shapes.shape_library`).
    """
    s = _get_shape(shape_id, v4cnn_shape29)
    if not 0 <= int(rotation) < s.n_rotations:
        raise StimulusError(f"shape {shape_id} has rotations 0..{s.n_rotations - 1}, not {rotation}")
    p0, d1, d2 = spline_samples(s.control_points, derivatives=True)
    # curvature is rotation invariant: compute it unrotated so that every rotation of a
    # shape gets bit-identical curvature (and hence the same extrema)
    x0, y0 = p0.T
    signed_area = 0.5 * np.sum(x0 * np.roll(y0, -1) - np.roll(x0, -1) * y0)
    # counter-clockwise traversal: cross(d1, d2) > 0 on convex parts; flip for clockwise
    kappa = (d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]) / np.hypot(d1[:, 0], d1[:, 1]) ** 3
    kappa *= np.sign(signed_area)
    p = p0 @ _rotation_matrix(int(rotation)).T
    x, y = p.T
    g = polygon_centroid(p)
    if center == "pc2001":
        c = _rotation_matrix(int(rotation)) @ pc2001_center(int(shape_id), v4cnn_shape29)
    elif center == "centroid":
        c = g
    else:
        raise StimulusError(f"center must be 'pc2001' or 'centroid', not {center!r}")
    ang = np.mod(np.arctan2(y - c[1], x - c[0]), 2 * np.pi)
    ang[ang >= 2 * np.pi] = 0.0  # mod of a tiny negative angle rounds to 2 pi
    kn = np.tanh(kappa / 4)
    ext = curvature_extrema(kn, smooth_samples, min_prominence, plateau_fraction)
    for a in (p, g, c, ang, kappa, kn, ext):
        a.setflags(write=False)
    return BoundaryFeatures(int(shape_id), int(rotation), p, g, c, ang, kappa, kn, ext)


def _rows(stimuli) -> pd.DataFrame:
    if stimuli is None:
        return shape_table(unique=True)
    params = getattr(stimuli, "params", stimuli)
    if not isinstance(params, pd.DataFrame) or not {"shape_id", "rotation"} <= set(params.columns):
        raise StimulusError("apc_features needs a shape StimulusSet or a table with columns "
                            "shape_id and rotation (e.g. make_stimuli('shapes'))")
    if "probe" in params.columns and (params["probe"] == "rotate").any():
        raise StimulusError("the stimuli were rotated by a probe, so the shapes' APC features do "
                            "not describe them; compute features of the unrotated set")
    return params


def apc_features(stimuli=None, which: str = "extrema", **options) -> list[np.ndarray]:
    """APC features of every stimulus of a shape set.

    Parameters
    ----------
    stimuli : StimulusSet, DataFrame or None
        A shape set (``shapes``, ``shapes_sweep`` ...) or its parameter table (columns
        ``shape_id``, ``rotation``); None means the 362 unique shapes.
    which : {"extrema", "dense"}
        Features at the curvature extrema (4-8 per stimulus) or at every boundary sample.
    **options
        ``smooth_samples``, ``min_prominence``, ``plateau_fraction``, ``center``,
        ``v4cnn_shape29`` for :func:`boundary_features`.

    Returns
    -------
    list of ndarray (k_i, 2), one per stimulus row, in row order: column 0 angular
    position in radians (0..2 pi, counter-clockwise from +x around the centre, y up),
    column 1 normalised curvature ``tanh(kappa / 4)`` (convex positive). Blank rows
    (``shape_id < 0``) get an empty ``(0, 2)`` array. :func:`pad_features` turns the
    list into a padded array and a mask.
    """
    if which not in ("extrema", "dense"):
        raise StimulusError(f"which must be 'extrema' or 'dense', not {which!r}")
    rows = _rows(stimuli)
    out = []
    for sid, rot in zip(rows["shape_id"].to_numpy(), rows["rotation"].to_numpy()):
        if sid < 0:
            out.append(np.zeros((0, 2)))
            continue
        bf = boundary_features(int(sid), int(rot), **options)
        out.append(bf.extrema_features() if which == "extrema" else bf.dense_features())
    return out


def pad_features(features: list[np.ndarray], fill: float = np.nan) -> tuple[np.ndarray, np.ndarray]:
    """Ragged features -> ``(values (n, K, 2), mask (n, K))``; ``mask`` True where real."""
    kmax = max((len(f) for f in features), default=0)
    values = np.full((len(features), kmax, 2), fill, dtype=np.float64)
    mask = np.zeros((len(features), kmax), dtype=bool)
    for i, f in enumerate(features):
        values[i, :len(f)] = f
        mask[i, :len(f)] = True
    return values, mask


def compare_with_reference(reference: pd.DataFrame, angle_tol_rad: float = 0.35,
                           curvature_tol: float = 0.15, **options) -> pd.DataFrame:
    """Match a reference feature table to ours, for validation.

    ``reference`` has columns ``stimulus_index`` (0..369, standard order),
    ``angular_position_rad`` and ``curvature`` (normalised). Each reference feature is
    paired with our extremum of the same stimulus that minimises
    ``|d angle| / angle_tol_rad + |d curvature| / curvature_tol``; it counts as matched
    when both errors are within tolerance.

    Returns
    -------
    DataFrame, one row per reference feature: ``stimulus_index, shape_id, rotation,
    angle_error_rad, curvature_error, matched, n_ours, n_reference``.
    """
    table = shape_table(unique=False)
    rows = []
    for idx, group in reference.groupby("stimulus_index"):
        sid, rot = (int(v) for v in table.loc[int(idx), ["shape_id", "rotation"]])
        ours = boundary_features(sid, rot, **options).extrema_features()
        for a, k in group[["angular_position_rad", "curvature"]].to_numpy():
            da = np.abs(np.mod(ours[:, 0] - a + np.pi, 2 * np.pi) - np.pi)
            dk = np.abs(ours[:, 1] - k)
            j = int(np.argmin(da / angle_tol_rad + dk / curvature_tol))
            rows.append((int(idx), sid, rot, da[j], dk[j], bool(da[j] <= angle_tol_rad and dk[j] <= curvature_tol),
                         len(ours), len(group)))
    return pd.DataFrame(rows, columns=["stimulus_index", "shape_id", "rotation", "angle_error_rad",
                                       "curvature_error", "matched", "n_ours", "n_reference"])


# ---- per-stimulus feature tables (a user's CSV, the authors' table) ---------------------

FEATURE_TABLE_COLUMNS = ("stimulus_index", "angular_position_rad", "curvature")
N_STANDARD = 370


def check_feature_table(table: pd.DataFrame, source: str = "the feature table") -> pd.DataFrame:
    """Validate a per-stimulus APC feature table and return its essential columns.

    A feature table has one row per boundary feature: ``stimulus_index`` (the stimulus in
    the standard 370 numbering of Pasupathy & Connor (2001): shape-major, rotation-minor,
    the ``index_370`` coordinate of a shape set), ``angular_position_rad`` and
    ``curvature`` (normalised, convex positive). Other columns are ignored.

    Returns
    -------
    DataFrame with columns ``stimulus_index`` (int), ``angular_position_rad``,
    ``curvature`` (float), in the table's row order.

    Raises
    ------
    StimulusError
        Missing columns, non-integer or out-of-range stimulus indices, non-finite values
        or an empty table (the message names the offending rows).
    """
    if not isinstance(table, pd.DataFrame):
        raise StimulusError(f"{source} must be a DataFrame, not {type(table).__name__}")
    missing = [c for c in FEATURE_TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise StimulusError(f"{source} lacks the columns {', '.join(missing)} (it has "
                            f"{', '.join(map(str, table.columns)) or 'none'}); an APC feature "
                            f"table needs columns {', '.join(FEATURE_TABLE_COLUMNS)}")
    if len(table) == 0:
        raise StimulusError(f"{source} has no rows; give at least one feature per stimulus")
    values = {}
    for col in FEATURE_TABLE_COLUMNS:
        v = pd.to_numeric(table[col], errors="coerce").to_numpy(np.float64)
        bad = np.flatnonzero(~np.isfinite(v))
        if len(bad):
            raise StimulusError(f"{source}: column {col} is not a finite number in rows "
                                f"{bad[:5].tolist()}; fix or drop those rows")
        values[col] = v
    idx = values["stimulus_index"]
    bad = np.flatnonzero((idx != np.round(idx)) | (idx < 0) | (idx >= N_STANDARD))
    if len(bad):
        raise StimulusError(f"{source}: stimulus_index must be an integer 0..{N_STANDARD - 1} "
                            f"(standard 370 numbering, the index_370 coordinate), rows "
                            f"{bad[:5].tolist()} have {idx[bad[:5]].tolist()}")
    return pd.DataFrame({"stimulus_index": idx.astype(np.int64),
                         "angular_position_rad": values["angular_position_rad"],
                         "curvature": values["curvature"]})


def load_feature_table(path) -> pd.DataFrame:
    """Read a per-stimulus APC feature table from a CSV file and validate it.

    The CSV needs a header with ``stimulus_index`` (standard 370 numbering),
    ``angular_position_rad`` and ``curvature``; other columns are ignored. See
    :func:`check_feature_table` for the result and the errors. Join the table to responses
    with :func:`features_by_index_370` (``fit_apc`` does this by the responses'
    ``index_370`` coordinate).
    """
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise StimulusError(f"feature table {path} does not exist; give the path of a CSV file")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise StimulusError(f"feature table {path} is not a readable CSV file "
                            f"({str(exc).splitlines()[0]})") from None
    return check_feature_table(table, source=f"feature table {path.name}")


def features_by_index_370(table: pd.DataFrame, index_370) -> list[np.ndarray]:
    """Join a feature table to stimuli by identity: one ``(k_i, 2)`` array per stimulus.

    Parameters
    ----------
    table : DataFrame
        A feature table (see :func:`check_feature_table`).
    index_370 : array of int
        The stimuli, in the standard 370 numbering (a shape set's ``index_370`` column or
        the responses' ``index_370`` coordinate), in the order wanted.

    Returns
    -------
    list of ndarray ``(k_i, 2)``: ``[angular_position_rad, curvature]`` of the table's rows
    for ``index_370[i]``, in table order.

    Raises
    ------
    StimulusError
        When some of the stimuli have no rows in the table (named in the message).
    """
    table = check_feature_table(table)
    wanted = np.asarray(index_370).ravel()
    groups = {int(k): g[["angular_position_rad", "curvature"]].to_numpy(np.float64)
              for k, g in table.groupby("stimulus_index", sort=False)}
    missing = sorted({int(k) for k in wanted if int(k) not in groups})
    if missing:
        n_missing = int(sum(int(k) not in groups for k in wanted))
        blank = " (index_370 = -1 is a blank, which has no features)" if -1 in missing else ""
        listed = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise StimulusError(f"the feature table has no rows for index_370 = {listed} "
                            f"({n_missing} of {len(wanted)} stimuli){blank}; add their features "
                            f"or fit only the stimuli the table covers")
    return [groups[int(k)] for k in wanted]
