"""The Pasupathy & Connor (2001) shape set, as used by Pospisil, Pasupathy & Bair (2018).

Geometry
--------
Each of the 51 shapes is a closed uniform cubic B-spline through its control points
(embedded in ``artiphys/data/pasupathy_shapes.json``, see ``ATTRIBUTION.md``), sampled 50
times per segment; sample ``50 i`` is the spline point of control point ``i``,
``(P[i-1] + 4 P[i] + P[i+1]) / 6``. Rotation ``k`` turns the shape counter-clockwise by
``k * 45`` degrees about the origin of shape coordinates. The standard set has 370
stimuli (shape-major, rotation-minor); the unique set of Pospisil et al. (2018) has 362
(rotations 4-7 of shape ids 3 and 44 dropped: they repeat rotations 0-3).

Coordinates
-----------
*Shape units*: x to the right, **y up** (the control points' frame; the big circle,
shape id 1, has control-point radius 1.6 and sampled radius about 1.444).
*Image pixels*: ``(col, row)`` with x to the right and **y down**; pixel centres at integer
coordinates. A shape placed at ``(x_px, y_px)`` maps shape point ``(X, Y)`` to
``col = x_px + s X``, ``row = y_px - s Y`` with ``s`` pixels per shape unit, so a feature
at the top of a shape is drawn at the top of the image.

Scale conventions (``scale=``)
------------------------------
``"big_circle"`` (default): the paper's text -- ``size_px`` is the diameter of the big
circle (shape id 1), so the big circle spans ``size_px`` pixels.
``"bbox_370"``: the paper's code -- ``size_px`` is the larger side of the bounding box of
all 370 centred shapes; the big circle then spans about 0.76 ``size_px`` (24.3 px
for ``size_px=32``).
Both use one common scale for all shapes, and shapes are centred on the centroid of
their boundary polygon (``center="centroid"``; ``"bbox"`` or ``"origin"`` are options).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd
import torch

from artiphys.errors import StimulusError
from artiphys.stimuli import _validate as V
from artiphys.stimuli._raster import fill_polygon, paste, stroke_polygon
from artiphys.stimuli.base import StimulusSet
from artiphys.stimuli.registry import register_set

SAMPLES_PER_SEGMENT = 50
ROTATION_STEP_DEG = 45.0
BIG_CIRCLE_ID = 1
SCALES = ("big_circle", "bbox_370")
CENTERS = ("centroid", "bbox", "origin")
# Shape id 29 as drawn by the original v4cnn code (Pospisil et al. 2018): control point 0
# (and its closing copy) is (-0.467, +0.102) instead of the published (-0.467, -0.102)
# (noted with the data), and control point 14 is (0.570, -1.131) instead of (0.571, -1.131)
# (found here: it is the only other difference from the reference boundaries, 6.7e-4 at
# the sample of that control point).
_V4CNN_SHAPE29_POINTS = {0: (-0.467, 0.102), 14: (0.570, -1.131)}


@dataclass(frozen=True)
class PCShape:
    """One of the 51 Pasupathy & Connor (2001) shapes.

    Attributes
    ----------
    id : int
        0..50, in the order of the published figure.
    control_points : ndarray (m + 1, 2)
        Closed list of B-spline control points in shape units (y up), first repeated last.
    n_rotations : int
        Rotations in the standard 370-stimulus set (1, 2, 4 or 8).
    n_unique_rotations : int
        Rotations in the 362-stimulus unique set of Pospisil et al. (2018).
    """

    id: int
    control_points: np.ndarray
    n_rotations: int
    n_unique_rotations: int


@functools.lru_cache(maxsize=2)
def shape_library(v4cnn_shape29: bool = False) -> tuple[PCShape, ...]:
    """The 51 shapes from the embedded control points.

    Parameters
    ----------
    v4cnn_shape29 : bool
        Use shape id 29 as in the boundaries of the original v4cnn code: first/last
        control point (-0.467, +0.102) instead of the published (-0.467, -0.102), and
        control point 14 at x = 0.570 instead of 0.571.
    """
    text = resources.files("artiphys").joinpath("data/pasupathy_shapes.json").read_text()
    data = json.loads(text)
    out = []
    for s in data["shapes"]:
        cp = np.asarray(s["control_points"], dtype=np.float64)
        if v4cnn_shape29 and s["id"] == 29:
            cp = cp.copy()
            for i, xy in _V4CNN_SHAPE29_POINTS.items():
                cp[i] = xy
            cp[-1] = cp[0]
        cp.setflags(write=False)
        out.append(PCShape(int(s["id"]), cp, int(s["n_rotations"]), int(s["n_unique_rotations"])))
    return tuple(out)


def shape_table(unique: bool = True) -> pd.DataFrame:
    """One row per stimulus: ``shape_id``, ``rotation`` (k), ``rotation_deg``, ``index_370``.

    ``unique=True`` gives the 362 stimuli of Pospisil et al. (2018), ``False`` the
    standard 370; both shape-major, rotation-minor. ``index_370`` is the position in
    the standard set (the row of the reference boundaries and feature table).
    """
    rows = []
    idx = 0
    for s in shape_library():
        n_keep = s.n_unique_rotations if unique else s.n_rotations
        for k in range(s.n_rotations):
            if k < n_keep:
                rows.append((s.id, k, k * ROTATION_STEP_DEG, idx))
            idx += 1
    return pd.DataFrame(rows, columns=["shape_id", "rotation", "rotation_deg", "index_370"])


# ---- spline geometry ---------------------------------------------------------------------

def _basis(samples_per_segment: int):
    t = np.arange(samples_per_segment) / samples_per_segment
    b0 = np.stack([(1 - t) ** 3, 3 * t ** 3 - 6 * t ** 2 + 4, -3 * t ** 3 + 3 * t ** 2 + 3 * t + 1,
                   t ** 3], 1) / 6
    b1 = np.stack([-3 * (1 - t) ** 2, 9 * t ** 2 - 12 * t, -9 * t ** 2 + 6 * t + 3, 3 * t ** 2], 1) / 6
    b2 = np.stack([6 * (1 - t), 18 * t - 12, -18 * t + 6, 6 * t], 1) / 6
    return b0, b1, b2


def spline_samples(control_points: np.ndarray, samples_per_segment: int = SAMPLES_PER_SEGMENT,
                   derivatives: bool = False):
    """Sample a closed uniform cubic B-spline.

    Segment ``i`` (between control points ``i`` and ``i + 1``) is
    ``C(t) = sum_j B_j(t) P[i - 1 + j]``, ``t = 0, 1/n, ..., (n-1)/n`` with the uniform cubic
    B-spline basis ``B_j``; indices wrap.

    Parameters
    ----------
    control_points : ndarray (m + 1, 2) or (m, 2)
        Closed list (first point repeated last) or open list of the m distinct points.
    samples_per_segment : int
    derivatives : bool
        Also return the first and second derivatives with respect to the segment parameter.

    Returns
    -------
    ndarray (m * n, 2), or a tuple (points, d1, d2) when ``derivatives``. The curve is
    not closed (the first sample is not repeated; see :func:`shape_boundary`).
    """
    cp = np.asarray(control_points, dtype=np.float64)
    if len(cp) > 1 and np.allclose(cp[0], cp[-1]):
        cp = cp[:-1]
    m = len(cp)
    if m < 3:
        raise StimulusError(f"a closed B-spline needs at least 3 control points, got {m}")
    idx = (np.arange(m)[:, None] + np.arange(-1, 3)[None]) % m
    bases = _basis(int(samples_per_segment))
    outs = [np.einsum("tk,mkd->mtd", b, cp[idx]).reshape(-1, 2) for b in bases]
    return tuple(outs) if derivatives else outs[0]


def _rotation_matrix(rotation: int) -> np.ndarray:
    a = np.deg2rad(rotation * ROTATION_STEP_DEG)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def _get_shape(shape_id: int, v4cnn_shape29: bool = False) -> PCShape:
    lib = shape_library(v4cnn_shape29)
    if not 0 <= int(shape_id) < len(lib):
        raise StimulusError(f"shape id {shape_id} does not exist: use 0..{len(lib) - 1}")
    return lib[int(shape_id)]


def shape_boundary(shape_id: int, rotation: int = 0, *, samples_per_segment: int = SAMPLES_PER_SEGMENT,
                   closed: bool = True, center: str = "origin",
                   v4cnn_shape29: bool = False) -> np.ndarray:
    """Sampled boundary of shape ``shape_id`` at rotation ``k`` (counter-clockwise k*45 deg).

    Parameters
    ----------
    shape_id, rotation : int
    samples_per_segment : int
        50 as in the original code.
    closed : bool
        Repeat the first sample at the end (the layout of the reference boundaries).
    center : {"origin", "centroid", "bbox"}
        ``"origin"`` leaves shape coordinates as they are (rotation about the origin, as the
        reference boundaries); ``"centroid"`` subtracts the polygon centroid, ``"bbox"``
        the bounding-box centre.
    v4cnn_shape29 : bool
        See :func:`shape_library`.

    Returns
    -------
    ndarray (N, 2) in shape units, y up.
    """
    s = _get_shape(shape_id, v4cnn_shape29)
    if not 0 <= int(rotation) < s.n_rotations:
        raise StimulusError(f"shape {shape_id} has rotations 0..{s.n_rotations - 1}, not {rotation}")
    pts = spline_samples(s.control_points, samples_per_segment) @ _rotation_matrix(rotation).T
    pts = pts - shape_center(pts, center)
    if closed:
        pts = np.vstack([pts, pts[:1]])
    return pts


def polygon_centroid(xy: np.ndarray) -> np.ndarray:
    """Area centroid of a closed polygon (vertices ``(n, 2)``; closing edge implied).

    ``C = 1/(6A) sum (p_i + p_{i+1}) (x_i y_{i+1} - x_{i+1} y_i)`` with signed area ``A``.
    """
    x, y = np.asarray(xy, np.float64).T
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    area = cross.sum() / 2
    if abs(area) < 1e-15:
        return np.array([x.mean(), y.mean()])
    return np.array([((x + x1) * cross).sum(), ((y + y1) * cross).sum()]) / (6 * area)


def shape_center(xy: np.ndarray, center: str = "centroid") -> np.ndarray:
    """The point a shape is centred on: ``"centroid"``, ``"bbox"`` centre, or ``"origin"``."""
    if center == "centroid":
        return polygon_centroid(xy)
    if center == "bbox":
        return (xy.min(0) + xy.max(0)) / 2
    if center == "origin":
        return np.zeros(2)
    raise StimulusError(f"unknown center {center!r}: use one of {', '.join(CENTERS)}")


@functools.lru_cache(maxsize=4096)
def _centred_boundary(shape_id: int, rotation: int, center: str, samples_per_segment: int) -> np.ndarray:
    pts = shape_boundary(shape_id, rotation, samples_per_segment=samples_per_segment,
                         closed=False, center=center)
    pts.setflags(write=False)
    return pts


def big_circle_diameter() -> float:
    """Diameter of the sampled big circle (shape id 1) in shape units (about 2.887)."""
    b = _centred_boundary(BIG_CIRCLE_ID, 0, "centroid", SAMPLES_PER_SEGMENT)
    return float(np.ptp(b[:, 0]))


@functools.lru_cache(maxsize=8)
def bbox_370_extent(center: str = "centroid") -> float:
    """Larger side of the bounding box of all 370 centred shapes, in shape units."""
    x_lo, x_hi, y_lo, y_hi = _union_extent(center, False)
    return float(max(x_hi - x_lo, y_hi - y_lo))


@functools.lru_cache(maxsize=16)
def _union_extent(center: str, unique: bool,
                  stimuli: tuple | None = None) -> tuple[float, float, float, float]:
    """``(x_lo, x_hi, y_lo, y_hi)`` over the centred boundaries of the set (or of the
    ``(shape_id, rotation)`` pairs in ``stimuli``), shape units."""
    pairs = stimuli if stimuli is not None else tuple(
        (int(r.shape_id), int(r.rotation)) for r in shape_table(unique=unique).itertuples())
    lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
    for shape_id, rotation in pairs:
        if int(shape_id) < 0:
            continue  # the blank
        b = _centred_boundary(int(shape_id), int(rotation), center, SAMPLES_PER_SEGMENT)
        lo, hi = np.minimum(lo, b.min(0)), np.maximum(hi, b.max(0))
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def shapes_extent_px(size_px: float = 32, axis: str = "x", *, scale: str = "big_circle",
                     center: str = "centroid", unique: bool = True,
                     stimuli=None) -> tuple[float, float]:
    """Reach ``(lo, hi)`` in px of the union of the set's shapes along ``axis``, relative to
    the point the shapes are centred on (image columns for ``"x"``, rows, y down, for
    ``"y"``): every shape of the set at ``size_px`` lies within ``[x + lo, x + hi]``.

    ``stimuli``: ``(shape_id, rotation)`` pairs instead of the whole (unique or standard)
    set. The union, not the widest single shape: the shapes share a centre (their
    centroids), so asymmetric shapes reach further on one side. For the 362 unique shapes
    at ``size_px=32`` (big-circle diameter) it is about (-21.1, 21.1), i.e. 42.2 px, while
    the widest single shape is 34.6 px across.
    """
    if axis not in ("x", "y"):
        raise StimulusError(f"axis must be 'x' or 'y', got {axis!r}")
    pairs = None if stimuli is None else tuple(sorted({(int(a), int(b)) for a, b in stimuli}))
    x_lo, x_hi, y_lo, y_hi = _union_extent(center, bool(unique), pairs)
    if not np.isfinite(x_lo):
        raise StimulusError("no shapes to measure (only blanks)")
    ppu = px_per_shape_unit(size_px, scale, center)
    if axis == "x":
        return x_lo * ppu, x_hi * ppu
    return -y_hi * ppu, -y_lo * ppu  # shape y is up, image rows go down


def px_per_shape_unit(size_px: float, scale: str = "big_circle", center: str = "centroid") -> float:
    """Pixels per shape unit for ``size_px`` under a scale convention (see module doc)."""
    if scale == "big_circle":
        return float(size_px) / big_circle_diameter()
    if scale == "bbox_370":
        return float(size_px) / bbox_370_extent(center)
    raise StimulusError(f"unknown shape scale {scale!r}: use 'big_circle' (size = diameter of "
                        "the big circle, the paper's text) or 'bbox_370' (size = bounding box of "
                        "all 370 shapes, the paper's code)")


# ---- rendering ---------------------------------------------------------------------------

def shape_to_pixels(points: np.ndarray, x_px: float, y_px: float, px_per_unit: float) -> np.ndarray:
    """Map shape coordinates (y up) to image pixel coordinates ``(col, row)`` (y down)."""
    pts = np.asarray(points, np.float64)
    return np.stack([x_px + px_per_unit * pts[:, 0], y_px - px_per_unit * pts[:, 1]], 1)


def render_shape(shape_id: int, rotation: int = 0, *, canvas_px: int = 227, x_px: float | None = None,
                 y_px: float | None = None, px_per_unit: float | None = None, size_px: float = 32,
                 scale: str = "big_circle", intensity: float = 255, background: float = 0,
                 outline: bool = False, line_width_px: float = 1.0, supersample: int = 1,
                 center: str = "centroid", out: np.ndarray | None = None) -> np.ndarray:
    """One shape as a gray image ``(canvas_px, canvas_px)`` float32 in [0, 1].

    Pixel value = ``background/255 + coverage * (intensity - background) / 255``. See the
    module doc for the coordinate and scale conventions. ``shape_id=-1`` draws a blank.
    ``out`` (optional) is a canvas to draw into.
    """
    if supersample < 1:
        raise StimulusError(f"supersample must be >= 1, got {supersample}")
    cx = (canvas_px - 1) / 2 if x_px is None else float(x_px)
    cy = (canvas_px - 1) / 2 if y_px is None else float(y_px)
    if px_per_unit is None:
        px_per_unit = px_per_shape_unit(size_px, scale, center)
    bg = float(background) / 255.0
    if out is None:
        out = np.empty((canvas_px, canvas_px), np.float32)
    out.fill(bg)
    if int(shape_id) < 0:
        return out
    b = _centred_boundary(int(shape_id), int(rotation), center, SAMPLES_PER_SEGMENT)
    xy = shape_to_pixels(b, cx, cy, px_per_unit)
    if outline:
        win = stroke_polygon(xy, canvas_px, line_width_px, supersample)
    else:
        win = fill_polygon(xy, canvas_px, supersample)
    paste(out, *win, float(intensity) / 255.0, bg)
    return out


def _render_rows(rows: pd.DataFrame) -> torch.Tensor:
    """Gray renderings expanded to 3 channels (a read-only view: copy before writing)."""
    n = len(rows)
    side = int(rows["canvas_px"].iloc[0]) if n else 0
    gray = np.empty((n, side, side), np.float32)
    for i, r in enumerate(rows.itertuples()):
        render_shape(r.shape_id, r.rotation, canvas_px=side, x_px=r.x_px, y_px=r.y_px,
                     px_per_unit=r.px_per_unit, intensity=r.intensity, background=r.background,
                     outline=bool(r.outline), line_width_px=r.line_width_px,
                     supersample=int(r.supersample), center=r.center, out=gray[i])
    return torch.from_numpy(gray)[:, None].expand(-1, 3, -1, -1)


def _require_on_canvas(params: pd.DataFrame, ppu: float, center: str, canvas_px: int,
                       margin_px: float) -> None:
    """Refuse shape rows whose bounding box lies entirely outside the canvas ``[-0.5,
    canvas_px - 0.5]`` (they would render as blank images)."""
    keys = params[["shape_id", "rotation"]].drop_duplicates()
    boxes = []
    for sid, rot in keys.itertuples(index=False):
        b = _centred_boundary(int(sid), int(rot), center, SAMPLES_PER_SEGMENT)
        boxes.append((sid, rot, *b.min(0), *b.max(0)))
    box = params[["shape_id", "rotation"]].merge(
        pd.DataFrame(boxes, columns=["shape_id", "rotation", "x0", "y0", "x1", "y1"]), how="left")
    x, y = params["x_px"].to_numpy(), params["y_px"].to_numpy()
    lo, hi = -0.5 - margin_px, canvas_px - 0.5 + margin_px
    off = ((x + ppu * box["x1"].to_numpy() < lo) | (x + ppu * box["x0"].to_numpy() > hi)
           | (y - ppu * box["y0"].to_numpy() < lo) | (y - ppu * box["y1"].to_numpy() > hi))
    if off.any():
        where = params.loc[off, ["x_px", "y_px"]].drop_duplicates()
        shown = ", ".join(f"({r.x_px:g}, {r.y_px:g})" for r in where.head(3).itertuples())
        raise StimulusError(
            f"{int(off.sum())} of {len(params)} shapes lie entirely outside the {canvas_px} px "
            f"canvas (centres at x_px, y_px = {shown}{', ...' if len(where) > 3 else ''}); keep "
            f"the positions (x_px, y_px plus dx_px, dy_px or a sweep's extent_px) within "
            f"0..{canvas_px - 1}, or enlarge canvas_px")


@register_set("shapes")
def shapes(size_px: float = 32, scale: str = "big_circle", intensity: float = 255,
           background: float = 0, canvas_px: int = 227, x_px: float | None = None,
           y_px: float | None = None, dx_px=0, dy_px=0, unique: bool = True,
           outline: bool = False, line_width_px: float = 1.0, supersample: int = 1,
           center: str = "centroid", blank: bool = False) -> StimulusSet:
    """The Pasupathy & Connor (2001) shapes, white on black, as in Pospisil et al. (2018).

    Parameters
    ----------
    size_px : float
        Size under the ``scale`` convention (default 32; the paper's large set: 64).
    scale : {"big_circle", "bbox_370"}
        ``"big_circle"``: the big circle is ``size_px`` across (the paper's text);
        ``"bbox_370"``: all 370 centred shapes fit a ``size_px`` box (the paper's code;
        the big circle is then about 24 px for 32).
    intensity, background : float
        Shape and background gray levels on a 0..255 scale (the paper's dim set: 100).
    canvas_px : int
        Image side (227 for AlexNet as in the paper).
    x_px, y_px : float or None
        Image position (col, row; y down) of the shape centre; default the canvas centre
        ``(canvas_px - 1) / 2``.
    dx_px, dy_px : float or list of float
        Offsets added to the position; lists give every (dy, dx) combination, positions
        outer, shapes inner (see also the ``shapes_sweep`` set).
    unique : bool
        362 unique stimuli (True) or the standard 370 (False).
    outline : bool
        Draw only the boundary, ``line_width_px`` wide.
    supersample : int
        Anti-aliasing: sub-pixels per pixel side (1 = none, binary images).
    center : {"centroid", "bbox", "origin"}
        Which point of the shape sits at (x_px, y_px).
    blank : bool
        Append one blank (background only) stimulus, ``shape_id == -1``.

    Returns
    -------
    StimulusSet with columns ``shape_id, rotation, rotation_deg, index_370, x_px, y_px,
    dx_px, dy_px, size_px, scale, px_per_unit, intensity, background, outline,
    line_width_px, supersample, center, canvas_px, blank``.
    """
    canvas_px = V.count("canvas_px", canvas_px, 227, minimum=8)
    size_px = V.positive("size_px", size_px, 32)
    intensity = V.number("intensity", intensity, 255, low=0, high=255)
    background = V.number("background", background, 0, low=0, high=255)
    supersample = V.count("supersample", supersample, 4)
    if supersample > 16:
        raise StimulusError(f"supersample must be 1..16, got {supersample}")
    line_width_px = V.positive("line_width_px", line_width_px, 1) if outline else float(line_width_px)
    ppu = px_per_shape_unit(size_px, scale, center)
    x0 = (canvas_px - 1) / 2 if x_px is None else V.optional_number("x_px", x_px, 113)
    y0 = (canvas_px - 1) / 2 if y_px is None else V.optional_number("y_px", y_px, 113)
    table = shape_table(unique=bool(unique))
    blocks = []
    for dy in V.sweep("dy_px", dy_px, "-10,0,10", V.finite):
        for dx in V.sweep("dx_px", dx_px, "-10,0,10", V.finite):
            t = table.copy()
            t["x_px"], t["y_px"], t["dx_px"], t["dy_px"] = x0 + dx, y0 + dy, dx, dy
            blocks.append(t)
    params = pd.concat(blocks, ignore_index=True)
    _require_on_canvas(params, ppu, center, canvas_px, line_width_px / 2 if outline else 0.0)
    params["blank"] = False
    if blank:
        params = pd.concat([params, pd.DataFrame([{"shape_id": -1, "rotation": -1, "rotation_deg": np.nan,
                                                   "index_370": -1, "x_px": x0, "y_px": y0,
                                                   "dx_px": 0.0, "dy_px": 0.0, "blank": True}])],
                           ignore_index=True)
    params = params.assign(size_px=float(size_px), scale=scale, px_per_unit=ppu,
                           intensity=float(intensity), background=float(background),
                           outline=bool(outline), line_width_px=float(line_width_px),
                           supersample=int(supersample), center=center, canvas_px=canvas_px)
    meta = {"source": "Pasupathy & Connor 2001 shapes (embedded control points)",
            "samples_per_segment": SAMPLES_PER_SEGMENT, "unique": bool(unique)}
    return StimulusSet("shapes", params, _render_rows, canvas_px, meta)


@register_set("shapes_sweep")
def shapes_sweep(axis: str = "x", step_px: float = 2, extent_px: float = 50, blank: bool = True,
                 **options) -> StimulusSet:
    """Shapes at a sweep of positions, for translation invariance.

    Offsets ``-extent_px .. +extent_px`` in steps of ``step_px`` along ``axis`` ("x",
    "y" or "xy" for the grid), around (x_px, y_px); every other option as in ``shapes``.
    Parameter columns ``x_px, y_px, dx_px, dy_px`` give each stimulus's position; with
    ``blank`` one background-only row (``shape_id == -1``) is appended.
    """
    step_px = V.positive("step_px", step_px, 2)
    extent_px = V.number("extent_px", extent_px, 50, low=0)
    offs = np.arange(-extent_px, extent_px + step_px / 2, step_px, dtype=np.float64)
    if axis not in ("x", "y", "xy"):
        raise StimulusError(f"unknown sweep axis {axis!r}: use x, y or xy")
    dx = list(offs) if "x" in axis else [0.0]
    dy = list(offs) if "y" in axis else [0.0]
    for key in ("dx_px", "dy_px"):
        if key in options:
            raise StimulusError(f"shapes_sweep sets {key} itself; use axis/step_px/extent_px")
    s = shapes(dx_px=dx, dy_px=dy, blank=blank, **options)
    s.name = "shapes_sweep"
    s.meta.update({"axis": axis, "step_px": float(step_px), "extent_px": float(extent_px)})
    return s


@register_set("shapes_large")
def shapes_large(**options) -> StimulusSet:
    """The paper's large-shape variant: ``shapes`` with ``size_px=64``."""
    options.setdefault("size_px", 64)
    return shapes(**options)


@register_set("shapes_dim")
def shapes_dim(**options) -> StimulusSet:
    """The paper's dim-shape variant: ``shapes`` with ``intensity=100``."""
    options.setdefault("intensity", 100)
    return shapes(**options)
