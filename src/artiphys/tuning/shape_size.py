"""Shape sizes per layer: ``"32"`` (px) or ``"rf:0.5"`` (a fraction of each layer's RF).

Pospisil et al. (2018) show the shapes at 32 px (big-circle diameter) to every AlexNet
layer. In a network whose early RFs are smaller than that (SqueezeNet ``fire2``: 11 and
19 px), the shapes never fit the RF, so TI is undefined there. A spec ``"rf:FRACTION"``
sizes the shapes per layer instead: big-circle diameter = ``FRACTION`` x the layer's RF
(the largest among its channels, along the sweep axis; the whole image for fully
connected layers). :func:`resolve_shape_sizes` returns, per layer, the size, the extent of
the union of the shapes at that size (:func:`artiphys.stimuli.shapes.shapes_extent_px`),
how many sweep positions the centre unit's RF holds them at (TI needs 3), and the input
size the sweep needs: the stimulus centred on the centre unit's RF must stay inside the
image at every sweep position.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from artiphys.errors import ArtiphysError, StimulusError


@dataclass(frozen=True)
class ShapeSize:
    """The shape size for one layer and what it implies for the TI sweep.

    Attributes
    ----------
    layer : str
        The layer's label.
    spec : str
        The spec it was resolved from (``"32"``, ``"rf:0.5"``).
    size_px : float
        Big-circle diameter (the ``size_px`` of :func:`artiphys.stimuli.shapes.shapes`).
    rf_size_px : tuple of int or None
        ``(smallest, largest)`` RF along the sweep axis over the layer's channels, clipped to
        the image; None when the geometry is unknown.
    stimulus_extent_px : tuple of float
        ``(lo, hi)`` reach of the union of the shapes around their centre, px.
    center_px : tuple of float
        ``(y, x)`` where the shapes are centred: the centre unit's RF centre (the image
        centre for non-spatial layers or unknown geometry).
    input_px : int
        The model's input side.
    input_px_needed : int
        The smallest input side that holds the stimulus at every sweep position with the
        shapes as far off the image centre as here.
    fits : bool
        ``input_px >= input_px_needed`` (exactly: the stimulus stays in the image at every
        sweep position).
    n_in_rf : tuple of int or None
        ``(fewest, most)`` sweep positions at which the centre unit's RF holds the whole
        stimulus, over channels (TI needs 3).
    note : str
        What to change when the sweep does not fit or TI cannot be defined; else ``""``.
    """

    layer: str
    spec: str
    size_px: float
    rf_size_px: tuple[int, int] | None
    stimulus_extent_px: tuple[float, float]
    center_px: tuple[float, float]
    input_px: int
    input_px_needed: int
    fits: bool
    n_in_rf: tuple[int, int] | None
    note: str = ""

    def to_dict(self) -> dict:
        """JSON-able form."""
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def parse_shape_size(spec) -> tuple[str, float]:
    """``"32"`` -> ``("px", 32.0)``; ``"rf:0.5"`` -> ``("rf", 0.5)``.

    Raises
    ------
    StimulusError
        For anything else, or a non-positive value.
    """
    text = str(spec).strip()
    kind, value = ("rf", text[3:]) if text.lower().startswith("rf:") else ("px", text)
    try:
        v = float(value)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise StimulusError(f"shape size {spec!r} not understood: give pixels (e.g. 32) or a "
                            "fraction of each layer's RF (e.g. rf:0.5), greater than 0")
    return kind, v


def resolve_shape_sizes(model, layers, spec="32", *, positions_px=None, axis: str = "x",
                        scale: str = "big_circle", input_size_px: int | None = None
                        ) -> dict[str, ShapeSize]:
    """Resolve a shape-size spec to a :class:`ShapeSize` per layer.

    Parameters
    ----------
    model : ModelSpec or nn.Module
    layers : iterable of layer names, aliases or LayerRefs
    spec : ``"PX"`` or ``"rf:FRACTION"`` (see :func:`parse_shape_size`)
    positions_px : the TI sweep (default :func:`artiphys.tuning.ti.position_sweep`)
    axis : the sweep axis
    scale : the shapes' scale convention (``shapes(scale=...)``)
    input_size_px : default the model's

    Raises
    ------
    StimulusError
        For a bad spec, or ``rf:`` on a layer whose RF is unknown.
    """
    from artiphys.models.layers import resolve_layer, spec_with_aliases
    from artiphys.tuning.ti_metric import position_sweep

    kind, value = parse_shape_size(spec)
    mspec = spec_with_aliases(model)
    size = int(input_size_px or mspec.preprocessing.input_size_px)
    pos = np.asarray(position_sweep() if positions_px is None else positions_px, float)
    out = {}
    for layer in layers:
        ref = resolve_layer(mspec, layer)
        rf, center = _centre_unit_rf(mspec, ref, size, axis)
        if kind == "rf" and rf is None:
            raise StimulusError(f"layer {ref.label!r} has no known receptive field, so "
                                f"{spec!r} cannot size its shapes; give the size in px")
        size_px = value * float(np.max(rf[:, 1] - rf[:, 0])) if kind == "rf" else value
        out[ref.label] = _plan(ref.label, str(spec), size_px, rf, center, size, pos, axis, scale)
    return out


def _centre_unit_rf(spec, ref, size: int, axis: str):
    """RF edges ``(C, 2)`` along ``axis`` of the centre unit's channels (clipped to the
    image) and its RF centre ``(y, x)``; ``(None, image centre)`` when unknown."""
    from artiphys.models.receptive_field import layer_geometry
    from artiphys.tuning.ti_window import rf_edges_px

    middle = ((size - 1) / 2, (size - 1) / 2)
    try:
        geo = layer_geometry(spec, ref, input_size_px=size)
    except ArtiphysError:
        return None, middle
    if not geo.known:
        return None, middle
    boxes = np.asarray(geo.bounds_px, dtype=np.int64).copy()
    center = middle
    if geo.is_spatial:
        _, h, w = geo.chw
        sy, sx = (geo.stride_px,) * 2 if np.ndim(geo.stride_px) == 0 else geo.stride_px
        boxes[:, :2] += int(sy) * (h // 2)
        boxes[:, 2:] += int(sx) * (w // 2)
        first = boxes[0]
        center = ((first[0] + first[1]) / 2, (first[2] + first[3]) / 2)
    cols = (2, 3) if axis == "x" else (0, 1)
    return rf_edges_px(boxes[:, cols[0]], boxes[:, cols[1]], size), center


def _plan(label, spec, size_px, rf, center, size, pos, axis, scale) -> ShapeSize:
    from artiphys.stimuli.shapes import shapes_extent_px
    from artiphys.tuning.ti_window import in_rf_mask

    lo, hi = shapes_extent_px(size_px, axis, scale=scale)
    c = center[1] if axis == "x" else center[0]
    first, last = c + pos.min() + lo, c + pos.max() + hi  # the stimulus's reach over the sweep
    fits = bool(first >= -0.5 - 1e-9 and last <= size - 0.5 + 1e-9)
    off_centre = abs(c - (size - 1) / 2)
    needed = math.ceil(hi - lo + np.ptp(pos) + 2 * off_centre - 1e-9)
    n_in = None
    notes = []
    if rf is not None:
        counts = in_rf_mask(pos, rf - c, (lo, hi)).sum(0)
        n_in = (int(counts.min()), int(counts.max()))
        if n_in[0] < 3:
            notes.append(f"the RF holds the {hi - lo:.0f} px stimulus at {n_in[0]} sweep "
                         "position(s) for some units (TI needs 3): use smaller shapes")
    if not fits:
        notes.append(f"the sweep needs a {needed} px input (stimulus {hi - lo:.0f} px + sweep "
                     f"{np.ptp(pos):.0f} px) and the model's is {size} px: use smaller shapes, "
                     "a shorter sweep or a larger input size")
    rf_size = None if rf is None else (round(float(np.min(rf[:, 1] - rf[:, 0]))),
                                       round(float(np.max(rf[:, 1] - rf[:, 0]))))
    return ShapeSize(label, spec, float(size_px), rf_size, (float(lo), float(hi)),
                     (float(center[0]), float(center[1])), size, needed, fits, n_in,
                     "; ".join(notes))
