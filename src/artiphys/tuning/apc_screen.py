"""Screened APC fit: the full fit's best model, without scoring every model exactly.

The full fit (:func:`artiphys.tuning.apc.fit_apc`) computes ``r = P q`` for every one of
the 65,536 models: ``P`` ``(n_models, S)`` holds the centred unit-norm predictions and
``q`` ``(S,)`` a unit's centred unit-norm responses. ``P`` has a low effective rank (on the
362 shapes, 48 of its dimensions hold 96% of ``||P||_F^2``), so a low-rank projection
with a bound on its error rules out most models, and only the rest need the product.

Bound
-----
Let ``V`` be an orthonormal basis of R^S whose leading columns are the top right singular
vectors of ``P`` (eigenvectors of ``P^T P``), ``c_m = V^T p_m`` and ``d = V^T q``. Then
``p_m . q = c_m . d`` exactly; splitting the coordinates into the leading block
``K = 1..k`` and groups ``G_1..G_n`` of the rest, Cauchy-Schwarz on each group gives

    p_m . q  <=  c_{m,K} . d_K + sum_j ||c_{m,G_j}|| ||d_{G_j}||  =  [c_{m,K} | E_m] . [d_K ; F]

(one group is the bound ``|p.q - (p V_k)(V_k^T q)| <= ||p - P_k p|| ||q - P_k q||``; more
groups of growing width, ``growth`` 1.5, are tighter because a unit's residual spreads
over the tail while a model's sits in its first dimensions). The per-model norms ``E`` are
computed once per prediction matrix (:func:`screen_basis`, cached), the per-unit norms
``F`` once per unit, so the bound of every model and unit is one matrix product with
``k + n`` columns instead of ``S``.

Algorithm
---------
Models are ordered into *tiles* of grid neighbours (4 values of each parameter: 256
models on the published grid). For every unit:

1. level 1: the rank-``k1`` bound (default 48 dimensions, 96% of ``||P||_F^2``, plus 5
   residual groups) of every model, reduced to its maximum per tile;
2. a lower bound ``L``: the exact score of the best model in the unit's best-bounded tile;
3. level 2: the bound of every model of each tile whose level-1 bound reaches
   ``L - delta_1``; by default at full rank, where the "bound" is the score itself up to
   rounding, so ``bound - rounding`` also raises ``L`` (most popular tiles first);
4. exact: every tile whose level-2 bound reaches the final ``L - delta_2`` is scored in
   float32 exactly as the full fit scores it (typically 4-9 of the 256 tiles);
5. the float32 winner is re-scored in float64 against its grid neighbours exactly as the
   full fit does (:func:`artiphys.tuning.apc._refine`).

Exactness
---------
A model pruned at a level has a bound below ``L - delta``, hence a real score below
``L - exact_margin`` (``delta`` adds the worst-case rounding of the bound,
:func:`level_margin`), hence a float32 score below that of the model that set ``L``
(:func:`exact_margin` is three worst-case float32 score errors). So a pruned model is
neither the true best model nor the full fit's float32 winner, and the screened fit
returns the full fit's model and r. Rounding bounds are the standard ones (``u = 2^-24``
for float32, ``2^-9`` for bfloat16; ``gamma_n = n u / (1 - n u)``; Higham 2002, Thm 3.4)
with every vector of norm <= 1.001. The two fits can differ only where two models that
are not grid neighbours tie within float32 rounding (about 1e-6), where either pick is
right to that rounding.

The screening products run in bfloat16 on CPUs whose oneDNN kernels support it (4-5x
the float32 rate; inputs rounded to bfloat16, products accumulated in float32, checked
once by :func:`screen_dtype`), else in float32; the margins follow the precision, so the
result does not depend on it, only the speed. Random responses (e.g. shuffle nulls) prune
worst: their best r is low and flat across models.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from artiphys.errors import ArtiphysError, StimulusError
from artiphys.tuning.apc import APCGrid, _normalise_rows, _refine

#: Leading ranks ``(k1, k2)`` of the two screening levels (capped at the stimulus count;
#: ``None`` = full rank, where the bound is the score itself up to rounding).
DEFAULT_RANKS = (48, None)
#: Grid values per parameter in one tile (4^4 = 256 models on the published grid).
TILE_SIDE = 4
#: Width ratio of successive residual groups after the leading rank.
GROUP_GROWTH = 1.5
#: ``method="auto"`` screens (on a CPU) grids of at least ``AUTO_MIN_MODELS`` models, for at
#: least ``AUTO_MIN_UNITS`` units, or ``AUTO_MIN_UNITS_CACHED`` once the basis is cached (it
#: costs about a full fit of 1,500 units; the screen saves about 2/3 of a full fit per unit).
AUTO_MIN_MODELS = 4096
AUTO_MIN_UNITS = 2048
AUTO_MIN_UNITS_CACHED = 128
METHODS = ("auto", "full", "screened")

_U32 = 2.0**-24  # unit roundoff of float32
_UNIT_BLOCK = 1024
_ROUNDOFF = {torch.float32: 2.0**-24, torch.bfloat16: 2.0**-9}


def _gamma(n: int) -> float:
    """``gamma_n = n u / (1 - n u)`` for float32 (Higham 2002, Lemma 3.1)."""
    return n * _U32 / (1 - n * _U32)


def exact_margin(n_stimuli: int) -> float:
    """Three times the worst-case error of a float32 score ``fl(p . fl(q))``.

    Both the full fit and the screen score a model as the float32 product of its
    float32 row ``p`` with the float32-rounded responses: error <= ``1.001 (gamma_S (1 +
    u) + u)`` (norms <= 1.001). A model whose real score is below ``L - 3 x that`` (``L``
    a float32 score of another model) scores below that model in float32 too.
    """
    return 3 * 1.001 * (_gamma(n_stimuli) * (1 + _U32) + _U32)


def level_margin(n_columns: int, n_stimuli: int, dtype: torch.dtype = torch.float32) -> float:
    """``delta`` of a screening level: rounding of its bound plus :func:`exact_margin`.

    The bound is a product of ``n_columns`` columns, each rounded from float64 to
    ``dtype`` (``u_in <= u + u_float32``: torch may round through float32), accumulated
    in float32 (``gamma_n``) and, for bfloat16, rounded once more on output (``u``):
    ``|error| <= 1.001 ((2 u_in + u_in^2) + gamma_n (1 + u_in)^2) (1 + u_out) + 1.001 u_out``
    (the sum of ``|terms|`` is at most ``||p|| ||q|| <= 1.001``).
    """
    u = _ROUNDOFF[dtype]
    u_in = u + (_U32 if dtype != torch.float32 else 0.0)
    u_out = u if dtype != torch.float32 else 0.0
    eps = 1.001 * ((2 * u_in + u_in**2) + _gamma(n_columns) * (1 + u_in) ** 2) * (1 + u_out)
    return eps + 1.001 * u_out + exact_margin(n_stimuli) + 1e-9


def screen_dtype(device=None) -> torch.dtype:
    """bfloat16 on a CPU whose oneDNN bfloat16 matmul is native and accumulates in float32
    (checked once: a sum of 512 ones, which bfloat16 accumulation would stop at 256, and
    a random product within :func:`level_margin`); float32 elsewhere (CUDA's bfloat16
    products may reduce in reduced precision)."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type != "cpu" or not _bf16_matmul_ok():
        return torch.float32
    return torch.bfloat16


@functools.lru_cache(maxsize=1)
def _bf16_matmul_ok() -> bool:
    if not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
            and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        return False
    ones = torch.ones((64, 512), dtype=torch.bfloat16)
    if not bool(((ones @ ones.T) == 512).all()):
        return False
    gen = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn((256, 362), generator=gen, dtype=torch.float64), dim=1)
    b = torch.nn.functional.normalize(torch.randn((512, 362), generator=gen, dtype=torch.float64), dim=1)
    got = (a.to(torch.bfloat16) @ b.to(torch.bfloat16).T).double()
    return float((got - a @ b.T).abs().max()) <= level_margin(362, 362, torch.bfloat16)


def group_edges(rank: int, n_stimuli: int, growth: float = GROUP_GROWTH) -> tuple[int, ...]:
    """Boundaries ``(k, e_1, ..., S)`` of the residual groups after the leading ``rank``."""
    edges = [min(int(rank), n_stimuli)]
    while edges[-1] < n_stimuli:
        edges.append(min(n_stimuli, max(edges[-1] + 1, math.ceil(edges[-1] * growth))))
    return tuple(edges)


def tile_order(shape: tuple[int, ...], side=TILE_SIDE) -> np.ndarray:
    """``(n_tiles, tile_size)`` model indices: grid boxes of ``side`` values per parameter.

    ``side`` is one int or one per parameter. Boxes at the end of an axis with fewer than
    ``side`` values repeat its last value (a duplicate row changes no maximum).
    """
    sides = np.broadcast_to(np.asarray(side, dtype=int), (len(shape),))
    blocks = [min(int(b), n) for b, n in zip(sides, shape)]
    n_tiles = [math.ceil(n / b) for n, b in zip(shape, blocks)]
    nd = len(shape)
    subs = []
    for i, (n, b, t) in enumerate(zip(shape, blocks, n_tiles)):
        idx = np.minimum(np.arange(t)[:, None] * b + np.arange(b)[None, :], n - 1)  # (t, b)
        view = [1] * (2 * nd)
        view[i], view[nd + i] = t, b
        subs.append(np.broadcast_to(idx.reshape(view), tuple(n_tiles) + tuple(blocks)))
    flat = np.ravel_multi_index(tuple(subs), shape)
    return flat.reshape(int(np.prod(n_tiles)), int(np.prod(blocks)))


@contextlib.contextmanager
def _one_thread():
    """Run small products on one thread (restored afterwards).

    The per-tile products are small (a few hundred units x S x 256), so threads gain little on them, and
    where cores are shared, each of the hundreds of calls can stall at a thread barrier
    (measured here: 2 threads on 2 busy cores made a screen of 60 units 20x slower).
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@dataclass(frozen=True)
class ScreenBasis:
    """What the screen needs of one prediction matrix (build with :func:`screen_basis`).

    Rows are models in tile order: row ``i`` is model ``order[i]``.

    Attributes
    ----------
    order : LongTensor ``(n_rows,)``
    tile_size : int
    pred_norm : float32 ``(n_rows, S)`` centred unit-norm predictions (the full fit's).
    basis : float64 ``(S, S)`` orthonormal, leading right singular vectors of ``P`` first.
    level1, level2 : float32 ``(n_rows, k + n_groups)`` ``[c_K | E]`` of each level.
    edges1, edges2 : group boundaries of each level (:func:`group_edges`).
    n_models : int
        Models of the grid.
    energy1, energy2 : float
        Fraction of ``||P||_F^2`` in the leading ``k1`` / ``k2`` dimensions.
    dtype : torch dtype of the screening products (``level1``, ``level2``).
    """

    order: torch.Tensor
    tile_size: int
    pred_norm: torch.Tensor
    basis: torch.Tensor
    level1: torch.Tensor
    level2: torch.Tensor
    edges1: tuple[int, ...]
    edges2: tuple[int, ...]
    n_models: int
    energy1: float
    energy2: float
    dtype: torch.dtype

    @property
    def n_tiles(self) -> int:
        return self.pred_norm.shape[0] // self.tile_size

    @property
    def n_stimuli(self) -> int:
        return self.pred_norm.shape[1]

    @property
    def ranks(self) -> tuple[int, int]:
        return self.edges1[0], self.edges2[0]


def _level_columns(c: torch.Tensor, edges: tuple[int, ...]) -> torch.Tensor:
    """``[c[:, :k] | ||c[:, G_j]||]`` for coordinates ``c`` ``(n, S)`` (any float dtype)."""
    norms = [torch.linalg.vector_norm(c[:, a:b], dim=1, keepdim=True)
             for a, b in itertools.pairwise(edges)]
    return torch.cat([c[:, :edges[0]]] + norms, dim=1)


def screen_basis(predictions, grid: APCGrid | None = None, ranks: tuple[int, int] = DEFAULT_RANKS,
                 *, tile_side=TILE_SIDE, growth: float = GROUP_GROWTH,
                 dtype: torch.dtype | None = None) -> ScreenBasis:
    """Tile order, orthonormal basis and per-model bound columns of a prediction matrix.

    Parameters
    ----------
    predictions : tensor ``(grid.n_models, n_stimuli)`` (:func:`~artiphys.tuning.apc.apc_predictions`)
    grid : APCGrid, default the published grid
    ranks : ``(k1, k2)`` leading ranks of the two screening levels, ``k1 <= k2``
    tile_side : grid values per parameter in a tile
    growth : width ratio of successive residual groups
    dtype : torch dtype of the screening products, default :func:`screen_dtype` (bfloat16
        where its products are exact-accumulating and fast, else float32); the margins
        follow it, so the result does not depend on it

    Costs about two ``n_models x S x S`` products (the Gram matrix in float32, the
    coordinates in float64); reuse it for every layer and condition of one stimulus set
    (:func:`cached_screen_basis` does).
    """
    grid = grid or APCGrid.published()
    preds = torch.as_tensor(predictions)
    if preds.ndim != 2 or preds.shape[0] != grid.n_models:
        raise StimulusError(f"predictions have shape {tuple(preds.shape)}, expected "
                            f"(n_models={grid.n_models}, n_stimuli)")
    dtype = dtype or screen_dtype(preds.device)
    if dtype not in _ROUNDOFF:
        raise ArtiphysError(f"screening dtype must be one of {list(_ROUNDOFF)}, got {dtype}")
    n_stim = preds.shape[1]
    k1, k2 = (n_stim if k is None else min(int(k), n_stim) for k in ranks)
    if not 1 <= k1 <= k2:
        raise ArtiphysError(f"screening ranks must satisfy 1 <= k1 <= k2, got {ranks}")
    pred_norm, _ = _normalise_rows(preds.to(torch.float32))  # exactly the full fit's rows
    tiles = tile_order(grid.shape, tile_side)
    order = torch.as_tensor(tiles.ravel(), device=preds.device)
    pn = pred_norm[order].contiguous()
    # only the quality of the basis (how much it prunes) depends on the Gram's precision;
    # the bound holds for any orthonormal V, and eigh in float64 makes V orthonormal
    with _one_thread():  # a small problem; threads only stall on shared cores
        eigval, eigvec = torch.linalg.eigh((pred_norm.T @ pred_norm).double())
    eigval, basis = eigval.flip(0).clamp(min=0), eigvec.flip(1).contiguous()
    edges1, edges2 = group_edges(k1, n_stim, growth), group_edges(k2, n_stim, growth)
    lv1 = torch.empty((len(pn), len(edges1) - 1 + edges1[0]), dtype=dtype, device=pn.device)
    lv2 = torch.empty((len(pn), len(edges2) - 1 + edges2[0]), dtype=dtype, device=pn.device)
    for lo in range(0, len(pn), 8192):
        c = pn[lo:lo + 8192].double() @ basis  # exact coordinates, float64
        lv1[lo:lo + 8192] = _level_columns(c, edges1)
        lv2[lo:lo + 8192] = _level_columns(c, edges2)
    total = float(eigval.sum()) or 1.0
    return ScreenBasis(order=order, tile_size=tiles.shape[1], pred_norm=pn, basis=basis, level1=lv1, level2=lv2,
                       edges1=edges1, edges2=edges2, n_models=grid.n_models,
                       energy1=float(eigval[:edges1[0]].sum()) / total,
                       energy2=float(eigval[:edges2[0]].sum()) / total, dtype=dtype)


_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 2


def _cache_key(preds: torch.Tensor, grid: APCGrid, ranks, tile_side) -> tuple:
    return (id(preds), preds.data_ptr(), preds._version, tuple(preds.shape), preds.dtype,
            str(preds.device), grid, tuple(ranks), tile_side)


def cached_screen_basis(predictions: torch.Tensor, grid: APCGrid | None = None,
                        ranks: tuple[int, int] = DEFAULT_RANKS, *,
                        tile_side: int = TILE_SIDE) -> ScreenBasis:
    """:func:`screen_basis`, kept for the last two prediction tensors (by identity).

    An entry is used only while the very same tensor object is alive and unmodified (its
    in-place version counter unchanged), so a changed or new tensor gets a new basis.
    """
    grid = grid or APCGrid.published()
    key = _cache_key(predictions, grid, ranks, tile_side)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is predictions:
        _CACHE.move_to_end(key)
        return hit[1]
    basis = screen_basis(predictions, grid, ranks, tile_side=tile_side)
    _CACHE[key] = (weakref.ref(predictions), basis)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return basis


def is_cached(predictions, grid: APCGrid | None = None, ranks=DEFAULT_RANKS,
              tile_side: int = TILE_SIDE) -> bool:
    """Whether :func:`cached_screen_basis` holds a basis for this very tensor."""
    if not isinstance(predictions, torch.Tensor):
        return False
    hit = _CACHE.get(_cache_key(predictions, grid or APCGrid.published(), ranks, tile_side))
    return hit is not None and hit[0]() is predictions


@dataclass(frozen=True)
class ScreenStats:
    """How much a screened fit computed, in (tile, unit) pairs per unit.

    ``level2_tiles``: tiles bounded by level 2; ``exact_tiles``: tiles scored exactly (the
    first lower bound's tile included); ``work_fraction``: multiply-adds relative to the
    full product (``n_models x S`` per unit), whatever their precision.
    """

    n_units: int
    n_tiles: int
    level2_tiles: float
    exact_tiles: float
    work_fraction: float

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _unit_columns(resp_norm: torch.Tensor, basis: ScreenBasis):
    d = resp_norm @ basis.basis  # (U, S) float64
    return (_level_columns(d, basis.edges1).to(basis.dtype),
            _level_columns(d, basis.edges2).to(basis.dtype))


def _tile_max(y: torch.Tensor, tile_size: int) -> torch.Tensor:
    """Float32 max over consecutive groups of ``tile_size`` columns of ``y`` ``(n, rows)``
    (a float32 reduction is faster than a bfloat16 one on a CPU, even with the cast)."""
    return y.view(len(y), -1, tile_size).to(torch.float32).amax(2)


def _level1_tiles(level1: torch.Tensor, b1: torch.Tensor, tile_size: int,
                  max_chunk_mb: float) -> torch.Tensor:
    """``(U, n_tiles)`` maximum level-1 bound over each tile (blocks as the full fit)."""
    n_rows, n_units = level1.shape[0], b1.shape[0]
    out = torch.empty((n_units, n_rows // tile_size), dtype=torch.float32, device=b1.device)
    unit_block = min(n_units, _UNIT_BLOCK)
    budget = max(1, int(max_chunk_mb * 2**20 / b1.element_size())) // unit_block
    model_block = max(1, budget // tile_size) * tile_size
    for u0 in range(0, n_units, unit_block):
        bu = b1[u0:u0 + unit_block]
        for m0 in range(0, n_rows, model_block):
            y = bu @ level1[m0:m0 + model_block].T  # (units, rows)
            t0 = m0 // tile_size
            out[u0:u0 + unit_block, t0:t0 + y.shape[1] // tile_size] = _tile_max(y, tile_size)
    return out


class _Exact:
    """Exact float32 scores of (tile, unit) pairs, as the full fit computes them.

    Scores are collected tile by tile and combined once at the end (few, large torch
    calls): each unit's best score, exact ties to the lowest model index (the full fit's
    first maximum).
    """

    def __init__(self, basis: ScreenBasis, q32: torch.Tensor):
        self.basis, self.q32 = basis, q32
        self.units, self.vals, self.models = [], [], []

    def score(self, tile: int, units: torch.Tensor) -> torch.Tensor:
        """Scores of ``units`` on ``tile``'s best model (kept for :meth:`best`)."""
        size = self.basis.tile_size
        rows = slice(tile * size, (tile + 1) * size)
        # model indices increase along a tile's rows, so the first maximum is the lowest
        vals, idx = torch.max(self.q32.index_select(0, units) @ self.basis.pred_norm[rows].T, 1)
        self.units.append(units)
        self.vals.append(vals)
        self.models.append(self.basis.order[rows].index_select(0, idx))
        return vals

    def best(self, n_units: int) -> tuple[torch.Tensor, torch.Tensor]:
        units, vals, models = (torch.cat(x) for x in (self.units, self.vals, self.models))
        r = torch.full((n_units,), -torch.inf, dtype=vals.dtype, device=vals.device)
        r = r.scatter_reduce(0, units, vals, "amax")
        top = vals == r.index_select(0, units)
        big = torch.iinfo(torch.long).max
        m = torch.full((n_units,), big, dtype=torch.long, device=vals.device)
        m = m.scatter_reduce(0, units[top], models[top], "amin")
        return r, m


def _by_tile(tiles: torch.Tensor, units: torch.Tensor, n_tiles: int):
    """``(tile, units of that tile)`` for pairs ``(tiles, units)``, tiles in order."""
    order = torch.argsort(tiles, stable=True)
    counts = torch.bincount(tiles, minlength=n_tiles).tolist()
    parts = torch.split(units.index_select(0, order), counts)
    return [(t, u) for t, (u, n) in enumerate(zip(parts, counts)) if n]


def screened_best(resp_norm: torch.Tensor, basis: ScreenBasis, *,
                  max_chunk_mb: float | None = None) -> tuple[torch.Tensor, torch.Tensor, ScreenStats]:
    """Float32 best score and model of each unit, as the full product would find them.

    Parameters
    ----------
    resp_norm : float64 ``(U, S)`` centred unit-norm responses (rows), no constant units.
    basis : :class:`ScreenBasis` of the predictions
    max_chunk_mb : block of bounds held at once in level 1 (default as the full fit)

    Returns
    -------
    (r float32 ``(U,)``, model index ``(U,)``, :class:`ScreenStats`)
    """
    from artiphys.tuning.apc import CPU_CHUNK_MB, GPU_CHUNK_MB

    if max_chunk_mb is None:
        max_chunk_mb = CPU_CHUNK_MB if resp_norm.device.type == "cpu" else GPU_CHUNK_MB
    n_units, n_stim = resp_norm.shape
    if n_stim != basis.n_stimuli:
        raise StimulusError(f"responses have {n_stim} stimuli, the screening basis "
                            f"{basis.n_stimuli}; build it from the same stimuli's predictions")
    b1, b2 = _unit_columns(resp_norm, basis)
    t1 = _level1_tiles(basis.level1, b1, basis.tile_size, max_chunk_mb)  # (U, n_tiles)
    with _one_thread():
        r, m, n_pairs, n_exact = _screen_tiles(basis, resp_norm, t1, b2)
    return r, m, _stats(basis, n_units, n_pairs, n_exact)


def _screen_tiles(basis: ScreenBasis, resp_norm: torch.Tensor, t1: torch.Tensor,
                  b2: torch.Tensor):
    """Steps 2-4 of the module doc: lower bound, level 2, exact scores."""
    n_units, n_stim = resp_norm.shape
    exact = _Exact(basis, resp_norm.to(torch.float32))
    first = t1.argmax(1)
    all_units = torch.arange(n_units, device=t1.device)
    low = torch.empty(n_units, dtype=torch.float32, device=t1.device)
    for t, units in _by_tile(first, all_units, basis.n_tiles):  # the first lower bound
        low.index_copy_(0, units, exact.score(t, units))
    keep = t1 >= (low - level_margin(basis.level1.shape[1], n_stim, basis.dtype))[:, None]
    keep[all_units, first] = False
    units, tiles = torch.nonzero(keep, as_tuple=True)
    upper = _level2(basis, b2, tiles, units, low)
    alive = upper >= low.index_select(0, units) - level_margin(basis.level2.shape[1], n_stim,
                                                               basis.dtype)
    for t, u in _by_tile(tiles[alive], units[alive], basis.n_tiles):
        exact.score(t, u)
    r, m = exact.best(n_units)
    return r, m, len(units), int(alive.sum())


def _level2(basis: ScreenBasis, b2: torch.Tensor, tiles: torch.Tensor, units: torch.Tensor,
            low: torch.Tensor) -> torch.Tensor:
    """Level-2 bound (max over the tile) of each pair ``(tiles[i], units[i])``.

    When level 2 has full rank its bound is the score itself up to rounding, so ``bound -
    rounding`` is also a lower bound of the unit's best r, and ``low`` is raised in place.
    """
    order = torch.argsort(tiles, stable=True)
    counts = torch.bincount(tiles, minlength=basis.n_tiles).tolist()
    size = basis.tile_size
    parts = []
    for t, u in enumerate(torch.split(units.index_select(0, order), counts)):
        if len(u):
            y = b2.index_select(0, u) @ basis.level2[t * size:(t + 1) * size].T
            parts.append(_tile_max(y, size)[:, 0])
    upper = torch.empty(len(units), dtype=torch.float32, device=units.device)
    if parts:
        upper[order] = torch.cat(parts)
    if len(basis.edges2) == 1:  # full rank
        rounding = level_margin(basis.level2.shape[1], basis.n_stimuli, basis.dtype) \
            - exact_margin(basis.n_stimuli)
        low.scatter_reduce_(0, units, upper - rounding, "amax")
    return upper


def _stats(basis: ScreenBasis, n_units: int, n_l2: int, n_exact: int) -> ScreenStats:
    rows, size, s = basis.pred_norm.shape[0], basis.tile_size, basis.n_stimuli
    work = (n_units * rows * basis.level1.shape[1] + n_l2 * size * basis.level2.shape[1]
            + (n_exact + n_units) * size * s)
    per = max(n_units, 1)
    return ScreenStats(n_units=n_units, n_tiles=basis.n_tiles, level2_tiles=n_l2 / per,
                       exact_tiles=1 + n_exact / per,
                       work_fraction=work / max(n_units * basis.n_models * s, 1))


def fit_arrays_screened(resp: np.ndarray, preds: torch.Tensor, grid: APCGrid, *,
                        refine: bool = True, max_chunk_mb: float | None = None,
                        basis: ScreenBasis | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Best model and its r for each column of ``resp`` ``(S, U)``: same contract and
    result as the full fit's ``artiphys.tuning.apc._fit_arrays`` (no flag handling)."""
    r, m, _ = screened_fit_stats(resp, preds, grid, refine=refine, max_chunk_mb=max_chunk_mb,
                                 basis=basis)
    return r, m


def screened_fit_stats(resp: np.ndarray, preds: torch.Tensor, grid: APCGrid, *,
                       refine: bool = True, max_chunk_mb: float | None = None,
                       basis: ScreenBasis | None = None):
    """:func:`fit_arrays_screened` and its :class:`ScreenStats` (for benchmarks)."""
    basis = basis or cached_screen_basis(preds, grid)
    dev = basis.pred_norm.device
    resp_norm, _ = _normalise_rows(torch.as_tensor(resp.T, dtype=torch.float64, device=dev))
    r, m, stats = screened_best(resp_norm, basis, max_chunk_mb=max_chunk_mb)
    if not refine or len(m) == 0:
        return r.double().cpu().numpy(), m.cpu().numpy(), stats
    r64, m64 = _refine(preds.to(dev), grid, m, resp_norm)
    return r64, m64, stats


def choose_method(method: str, preds: torch.Tensor, grid: APCGrid, n_units: int) -> str:
    """``"full"`` or ``"screened"`` for :func:`~artiphys.tuning.apc.fit_apc`'s ``method``.

    ``"auto"`` screens on a CPU when the grid has at least ``AUTO_MIN_MODELS`` models and
    there are ``AUTO_MIN_UNITS`` units, or ``AUTO_MIN_UNITS_CACHED`` with a cached basis
    for these very predictions; both methods give the same models.
    """
    if method not in METHODS:
        raise ArtiphysError(f"unknown APC fit method {method!r}: use one of {', '.join(METHODS)}")
    if method != "auto":
        return method
    if preds.device.type != "cpu" or grid.n_models < AUTO_MIN_MODELS:
        return "full"
    if n_units >= AUTO_MIN_UNITS or (n_units >= AUTO_MIN_UNITS_CACHED and is_cached(preds, grid)):
        return "screened"
    return "full"


__all__ = ["DEFAULT_RANKS", "ScreenBasis", "ScreenStats", "cached_screen_basis", "choose_method",
           "exact_margin", "fit_arrays_screened", "group_edges", "level_margin", "screen_basis",
           "screened_best", "screened_fit_stats", "tile_order"]
