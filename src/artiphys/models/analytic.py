"""Built-in analytic models of early vision whose right answers are known.

Every model here is an ``nn.Module`` whose parameters are set by formula (no training, no
weights file), made of convolutions with stride 1 and "same" padding, so that unit
``(y, x)`` of every channel looks at input pixel ``(y, x)`` and the *centre unit* is
``(H // 2, W // 2)``.

Conventions (shared by every filter and by :func:`sinusoid`; the same as the gratings of
``artiphys.stimuli``, whose patterns are centred on ``(size - 1) / 2``, the centre unit
for the odd default input size)
------------------------------------------------------------------------------------------
Input
    RGB images in [0, 1], normalised with ``CONTRAST_PREPROCESSING`` (mean 0.5, std 0.5), so
    that model input is *contrast*: mid-grey is 0 and a full-contrast grating swings
    between -1 and +1. The first convolution of every model reads luminance as
    ``0.299 R + 0.587 G + 0.114 B`` (Rec. 601 weights, summing to 1); zero padding is
    therefore mid-grey.
Coordinates
    ``x`` is the column offset from the unit's centre in px (rightwards), ``y`` the row
    offset *upwards* (``y = -(row - row_centre)``).
Orientation
    ``orientation_deg`` is the direction of the carrier's wave vector (the normal to the
    stripes), counter-clockwise from +x: 0 deg = vertical stripes (luminance varies along
    x), 90 deg = horizontal stripes. Orientations are equivalent modulo 180 deg up to a
    phase sign.
Spatial frequency and phase
    ``sf_cycles_per_px`` in cycles per pixel; ``phase_deg`` is the carrier phase at the
    unit's centre: a filter ``cos(2 pi f x' + phase)`` is best driven by the grating
    ``cos(2 pi f x' + phase)`` with ``x' = x cos(theta) + y sin(theta)``.

Models
------
:class:`SimpleCells`
    Gabor filter then ReLU (Jones & Palmer 1987 linear filter, Movshon et al. 1978
    half-wave rectification).
:class:`EnergyComplexCells`
    Sum of squares of a quadrature pair of Gabors (Adelson & Bergen 1985).
:class:`HubelWieselComplexCells`
    Weighted sum of rectified simple cells at several phases (Hubel & Wiesel 1962), with
    optional, seeded jitter of the pooling weights and phases (Cadena et al. 2018, Fig. 1B).
:class:`DoGCells`
    Difference of Gaussians, on- and off-centre, rectified (Rodieck 1965; Enroth-Cugell &
    Robson 1966).
:class:`V1Bank`
    All four families side by side (the default model of ``make demo``).
:class:`NeuromatchConv`
    The single convolutional layer of hand-designed centre-surround and Gabor filters of
    the Neuromatch Academy W1D5 tutorial 2, followed by a ReLU.

Every cell family carries a ``channels`` attribute (a ``pandas.DataFrame``, one row per
output channel) with the parameters of each channel, so analyses can label channels; use
:func:`channel_table`. Each family's output is normalised so that the optimal full-contrast
grating (or, for DoG cells, the optimal spot) gives a response of about 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from artiphys.models.analytic_kernels import (  # noqa: F401 - also importable from here
    DEFAULT_TRUNCATE_SIGMAS,
    _centred_grid,
    _odd_size,
    dog_kernel,
    gabor_kernel,
    sigma_from_bandwidth,
    sinusoid,
    spot,
)
from artiphys.models.fft_conv import FFTConv2d
from artiphys.models.spec import Preprocessing

LUMA_RGB = (0.299, 0.587, 0.114)
"""Rec. 601 luminance weights used by the first convolution of every analytic model."""

CONTRAST_PREPROCESSING = Preprocessing(input_size_px=65, mean=(0.5, 0.5, 0.5),
                                       std=(0.5, 0.5, 0.5), channel_order="RGB")
"""Images in [0, 1] -> contrast in [-1, 1] (mid-grey = 0). The input size is odd (65 px) so
that the centre unit (32, 32) sits exactly on the image centre ``(size - 1) / 2`` that the
stimulus library centres patterns on."""


# ---- building blocks ----------------------------------------------------------------------

def luminance_conv() -> nn.Conv2d:
    """Fixed 1x1 convolution ``RGB -> 0.299 R + 0.587 G + 0.114 B`` (one channel).

    Every layer here is a plain ``torch.nn`` module (the large kernels an ``nn.Conv2d``
    subclass that torch.fx keeps a leaf), so receptive-field geometry can be read from the
    graph.
    """
    conv = nn.Conv2d(3, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(LUMA_RGB).view(1, 3, 1, 1))
    return conv


class Square(nn.Module):
    """Elementwise square (the energy model's nonlinearity)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


def _fixed_conv(kernels: Sequence[torch.Tensor]) -> nn.Conv2d:
    """A fixed ``Conv2d(1, C, k, padding=k // 2, bias=False)`` holding the given kernels;
    kernels of different sizes are zero-padded (centred) to the largest. Large kernels are
    applied through the FFT (:class:`~artiphys.models.fft_conv.FFTConv2d`)."""
    size = max(int(k.shape[-1]) for k in kernels)
    stacked = torch.zeros(len(kernels), size, size, dtype=torch.float64)
    for i, k in enumerate(kernels):
        off = (size - k.shape[-1]) // 2
        stacked[i, off:off + k.shape[-1], off:off + k.shape[-1]] = k
    conv = FFTConv2d(1, len(kernels), size, padding=size // 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(stacked[:, None].to(conv.weight.dtype))
    return conv


def _pointwise(weights: torch.Tensor, groups: int = 1) -> nn.Conv2d:
    """A fixed 1x1 convolution with weight matrix ``(out, in // groups)``."""
    n_out, n_in = weights.shape
    conv = nn.Conv2d(n_in * groups, n_out, 1, groups=groups, bias=False)
    with torch.no_grad():
        conv.weight.copy_(weights.view(n_out, n_in, 1, 1).to(conv.weight.dtype))
    return conv


def _freeze(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


def _as_tuple(values, name: str) -> tuple[float, ...]:
    out = tuple(float(v) for v in (values if isinstance(values, Sequence) else [values]))
    if not out:
        raise ValueError(f"{name} must not be empty")
    return out


def channel_table(module: nn.Module) -> pd.DataFrame | None:
    """The per-channel parameters of an analytic layer (``module.channels``), else None."""
    table = getattr(module, "channels", None)
    return table.copy() if isinstance(table, pd.DataFrame) else None


def quadrature_filters(orientations_deg=(0.0,), sfs_cycles_per_px=(0.125,), *,
                       bandwidth_oct: float = 1.0, sigma_px: float | None = None,
                       aspect_ratio: float = 1.0, size_px: int | None = None) -> nn.Conv2d:
    """Fixed ``Conv2d(1, 2 n, k)`` of quadrature Gabor pairs, one pair per orientation x sf
    (orientation slowest): channel ``2 i`` has phase 0 deg (even), ``2 i + 1`` phase 90 deg.

    Any phase follows exactly from the pair, ``g_phi = cos(phi) g_0 + sin(phi) g_90``, so
    every Gabor family is built on this one convolution. Its ``channels`` table has one row
    per output channel and its ``pairs`` table one row per pair.
    """
    pairs, kernels, rows = [], [], []
    for ori in _as_tuple(orientations_deg, "orientations_deg"):
        for sf in _as_tuple(sfs_cycles_per_px, "sfs_cycles_per_px"):
            sigma = float(sigma_px) if sigma_px else sigma_from_bandwidth(sf, bandwidth_oct)
            pair = dict(orientation_deg=ori % 360.0, sf_cycles_per_px=sf, sigma_px=sigma)
            pairs.append(pair)
            for ph in (0.0, 90.0):
                kernels.append(gabor_kernel(ori, sf, ph, sigma_px=sigma, aspect_ratio=aspect_ratio,
                                            size_px=size_px))
                rows.append(dict(cell_type="gabor_linear", phase_deg=ph, **pair))
    conv = _fixed_conv(kernels)
    conv.channels = pd.DataFrame(rows)
    conv.pairs = pd.DataFrame(pairs)
    return conv


class _GaborFamily(nn.Module):
    """Shared plumbing: standalone (image in, owns ``luminance`` and ``quadrature``) or a
    head inside :class:`V1Bank` (quadrature responses in, given the pair table)."""

    def _front(self, pairs: pd.DataFrame | None, filter_kwargs: dict) -> pd.DataFrame:
        if pairs is None:
            self.luminance = luminance_conv()
            self.quadrature = quadrature_filters(**filter_kwargs)
            return self.quadrature.pairs
        self.register_module("luminance", None)
        self.register_module("quadrature", None)
        return pairs

    def _quadrature(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.quadrature is None else self.quadrature(self.luminance(x))


class SimpleCells(_GaborFamily):
    """Gabor simple cells: ``r = relu(g_phi * luminance)``, one channel per
    orientation x phase x sf (orientation slowest, sf fastest).

    Submodules: ``luminance``, ``quadrature`` (standalone only), ``linear`` (the Gabor
    responses at each cell's phase, exactly ``cos(phi) g_0 + sin(phi) g_90`` of the
    quadrature pair), ``relu``. The matched full-contrast grating gives ~1 (see
    :func:`gabor_kernel`).
    """

    def __init__(self, orientations_deg=(0.0,), phases_deg=(0.0,), sfs_cycles_per_px=(0.125,), *,
                 bandwidth_oct: float = 1.0, sigma_px: float | None = None,
                 aspect_ratio: float = 1.0, size_px: int | None = None,
                 pairs: pd.DataFrame | None = None):
        super().__init__()
        pairs = self._front(pairs, dict(orientations_deg=orientations_deg,
                                        sfs_cycles_per_px=sfs_cycles_per_px,
                                        bandwidth_oct=bandwidth_oct, sigma_px=sigma_px,
                                        aspect_ratio=aspect_ratio, size_px=size_px))
        index = {(p.orientation_deg, p.sf_cycles_per_px): i
                 for i, p in enumerate(pairs.itertuples())}
        rows, weights = [], []
        for ori in _as_tuple(orientations_deg, "orientations_deg"):
            for ph in _as_tuple(phases_deg, "phases_deg"):
                for sf in _as_tuple(sfs_cycles_per_px, "sfs_cycles_per_px"):
                    i = index[(ori % 360.0, sf)]
                    w = torch.zeros(2 * len(pairs), dtype=torch.float64)
                    w[2 * i], w[2 * i + 1] = math.cos(math.radians(ph)), math.sin(math.radians(ph))
                    weights.append(w)
                    rows.append(dict(cell_type="simple", orientation_deg=ori % 360.0,
                                     phase_deg=ph % 360.0, sf_cycles_per_px=sf,
                                     sigma_px=float(pairs.sigma_px[i])))
        self.linear = _pointwise(torch.stack(weights))
        self.relu = nn.ReLU()
        self.channels = pd.DataFrame(rows)
        self.linear.channels = self.channels
        _freeze(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.linear(self._quadrature(x)))


class EnergyComplexCells(_GaborFamily):
    """Energy-model complex cells: ``r = (g_0 * I)^2 + (g_90 * I)^2`` for a quadrature pair
    of Gabors, one channel per orientation x sf.

    For a grating the response does not depend on the grating's phase, up to terms of
    order ``exp(-2 (2 pi f sigma)^2)`` (2e-11 at one octave); a full-contrast optimal
    grating gives ~1. Submodules: ``luminance``, ``quadrature`` (standalone only),
    ``square``, ``pool`` (fixed 1x1 sum over each pair).
    """

    def __init__(self, orientations_deg=(0.0,), sfs_cycles_per_px=(0.125,), *,
                 bandwidth_oct: float = 1.0, sigma_px: float | None = None,
                 aspect_ratio: float = 1.0, size_px: int | None = None,
                 pairs: pd.DataFrame | None = None):
        super().__init__()
        pairs = self._front(pairs, dict(orientations_deg=orientations_deg,
                                        sfs_cycles_per_px=sfs_cycles_per_px,
                                        bandwidth_oct=bandwidth_oct, sigma_px=sigma_px,
                                        aspect_ratio=aspect_ratio, size_px=size_px))
        self.square = Square()
        self.pool = _pointwise(torch.ones(len(pairs), 2), groups=len(pairs))
        self.channels = pairs.assign(cell_type="complex_energy")[
            ["cell_type", "orientation_deg", "sf_cycles_per_px", "sigma_px"]]
        self.pool.channels = self.channels
        _freeze(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.square(self._quadrature(x)))


class HubelWieselComplexCells(_GaborFamily):
    """Hubel-Wiesel complex cells: ``r = sum_i w_i relu(g_{phi_i} * I)`` over ``n_phases``
    simple-cell subunits with phases ``phi_i = 360 i / n`` deg, one channel per
    orientation x sf.

    Without jitter ``w_i = pi / n``, so the response to the optimal full-contrast grating
    is ~1 at every phase, with a ripple of ``1 - cos(180 / n deg)`` (8% for n = 8).
    ``weight_jitter`` multiplies each ``w_i`` by ``max(0, 1 + weight_jitter * N(0, 1))`` and
    ``phase_jitter_deg`` adds ``phase_jitter_deg * N(0, 1)`` to each ``phi_i`` (drawn from a
    generator seeded with ``seed``), which makes the invariance only approximate, as in
    Cadena et al. (2018, Fig. 1C). Submodules: ``luminance``, ``quadrature`` (standalone
    only), ``subunits`` (fixed 1x1 grouped conv giving each subunit's Gabor response from its
    pair), ``relu``,
    ``pool`` (fixed 1x1 grouped conv holding ``w``).
    """

    def __init__(self, orientations_deg=(0.0,), sfs_cycles_per_px=(0.125,), *, n_phases: int = 8,
                 weight_jitter: float = 0.0, phase_jitter_deg: float = 0.0, seed: int = 0,
                 bandwidth_oct: float = 1.0, sigma_px: float | None = None,
                 aspect_ratio: float = 1.0, size_px: int | None = None,
                 pairs: pd.DataFrame | None = None):
        super().__init__()
        if n_phases < 1:
            raise ValueError("n_phases must be at least 1")
        pairs = self._front(pairs, dict(orientations_deg=orientations_deg,
                                        sfs_cycles_per_px=sfs_cycles_per_px,
                                        bandwidth_oct=bandwidth_oct, sigma_px=sigma_px,
                                        aspect_ratio=aspect_ratio, size_px=size_px))
        gen = torch.Generator().manual_seed(int(seed))
        sub_rows, mix, pool = [], [], []
        for i, pair in enumerate(pairs.itertuples()):
            dphi = phase_jitter_deg * torch.randn(n_phases, generator=gen, dtype=torch.float64)
            dw = weight_jitter * torch.randn(n_phases, generator=gen, dtype=torch.float64)
            for j in range(n_phases):
                ph = math.radians(360.0 * j / n_phases + float(dphi[j]))
                mix.append(torch.tensor([math.cos(ph), math.sin(ph)], dtype=torch.float64))
                pool.append(math.pi / n_phases * max(0.0, 1.0 + float(dw[j])))
                sub_rows.append(dict(cell_type="hw_subunit", orientation_deg=pair.orientation_deg,
                                     phase_deg=math.degrees(ph) % 360.0,
                                     sf_cycles_per_px=pair.sf_cycles_per_px,
                                     sigma_px=pair.sigma_px, pool_weight=pool[-1]))
        # Subunit i * n_phases + j mixes only pair i's two quadrature channels: one group
        # per pair (16x fewer multiply-adds than a dense 1x1 convolution for the bank).
        self.subunits = _pointwise(torch.stack(mix), groups=len(pairs))
        self.relu = nn.ReLU()
        self.pool = _pointwise(torch.tensor(pool).view(len(pairs), n_phases), groups=len(pairs))
        self.channels = pairs.assign(cell_type="complex_hw", n_phases=n_phases,
                                     weight_jitter=weight_jitter,
                                     phase_jitter_deg=phase_jitter_deg, seed=int(seed))[
            ["cell_type", "orientation_deg", "sf_cycles_per_px", "sigma_px", "n_phases",
             "weight_jitter", "phase_jitter_deg", "seed"]]
        self.subunits.channels = pd.DataFrame(sub_rows)
        self.pool.channels = self.channels
        _freeze(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.relu(self.subunits(self._quadrature(x))))


class DoGCells(nn.Module):
    """Centre-surround cells: ``r = relu(+/- dog * luminance)`` (on- and off-centre), one
    channel per centre sigma x polarity (see :func:`dog_kernel`; balanced, so a uniform field
    gives 0).

    Responses are scaled so that the optimal centred full-contrast spot (searched over radii
    in 0.25 px steps at construction) gives 1. Submodules: ``luminance`` (standalone only),
    ``linear`` (conv), ``relu``. Inside :class:`V1Bank` the input is the bank's luminance.
    """

    def __init__(self, center_sigmas_px=(2.0,), *, surround_ratio: float = 3.0,
                 surround_weight: float = 1.0, polarities: Sequence[str] = ("on", "off"),
                 size_px: int | None = None, standalone: bool = True):
        super().__init__()
        if standalone:
            self.luminance = luminance_conv()
        else:
            self.register_module("luminance", None)
        rows, kernels = [], []
        for sigma in _as_tuple(center_sigmas_px, "center_sigmas_px"):
            k = dog_kernel(sigma, surround_ratio * sigma, surround_weight=surround_weight,
                           size_px=size_px)
            x, y = _centred_grid(k.shape[-1])
            r = torch.sqrt(x ** 2 + y ** 2)
            radii = np.arange(0.5, float(r.max()) + 0.5, 0.25)
            best = max(float(k[r <= rad].sum()) for rad in radii)
            for polarity in polarities:
                if polarity not in ("on", "off"):
                    raise ValueError(f"polarity must be 'on' or 'off', not {polarity!r}")
                sign = 1.0 if polarity == "on" else -1.0
                kernels.append(sign * k / best)
                rows.append(dict(cell_type=f"dog_{polarity}", polarity=polarity,
                                 center_sigma_px=sigma, surround_sigma_px=surround_ratio * sigma,
                                 surround_weight=surround_weight))
        self.linear = _fixed_conv(kernels)
        self.relu = nn.ReLU()
        self.channels = pd.DataFrame(rows)
        self.linear.channels = self.channels
        _freeze(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.luminance is not None:
            x = self.luminance(x)
        return self.relu(self.linear(x))


class V1Bank(nn.Module):
    """A bank of model V1 and LGN cells sharing one front end.

    ``luminance`` -> ``quadrature`` (Gabor pairs, one per orientation x sf) feeds the
    ``simple``, ``complex_energy`` and ``complex_hw`` families; ``luminance`` also feeds
    ``dog``. The output concatenates the four families' channels in that order (listed in
    ``channels``); record a family by its name. Building every phase from one quadrature
    pair is exact and keeps the bank fast (one large convolution for all Gabor cells).

    Defaults: 8 orientations (22.5 deg steps), 4 simple-cell phases, sf 0.125 and 0.25
    cycles/px at one octave bandwidth (sigma 4.5 and 2.25 px; kernels 47 and 25 px),
    Hubel-Wiesel cells over 8 phases, DoG centre sigmas 1 and 2 px with surround 3x.
    Input size 65 px.
    """

    def __init__(self, orientations_deg=tuple(np.arange(0.0, 180.0, 22.5)),
                 phases_deg=(0.0, 90.0, 180.0, 270.0), sfs_cycles_per_px=(0.125, 0.25), *,
                 bandwidth_oct: float = 1.0, n_hw_phases: int = 8, hw_weight_jitter: float = 0.0,
                 hw_phase_jitter_deg: float = 0.0, seed: int = 0,
                 dog_center_sigmas_px=(1.0, 2.0), dog_surround_ratio: float = 3.0):
        super().__init__()
        self.luminance = luminance_conv()
        self.quadrature = quadrature_filters(orientations_deg, sfs_cycles_per_px,
                                             bandwidth_oct=bandwidth_oct)
        pairs = self.quadrature.pairs
        self.simple = SimpleCells(orientations_deg, phases_deg, sfs_cycles_per_px, pairs=pairs)
        self.complex_energy = EnergyComplexCells(pairs=pairs)
        self.complex_hw = HubelWieselComplexCells(
            n_phases=n_hw_phases, weight_jitter=hw_weight_jitter,
            phase_jitter_deg=hw_phase_jitter_deg, seed=seed, pairs=pairs)
        self.dog = DoGCells(dog_center_sigmas_px, surround_ratio=dog_surround_ratio,
                            standalone=False)
        self.channels = pd.concat([self.simple.channels, self.complex_energy.channels,
                                   self.complex_hw.channels, self.dog.channels], ignore_index=True)
        _freeze(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lum = self.luminance(x)
        q = self.quadrature(lum)
        return torch.cat([self.simple(q), self.complex_energy(q), self.complex_hw(q),
                          self.dog(lum)], dim=1)


def neuromatch_filters(out_channels: int = 6,
                       kernel_px: int = 7) -> tuple[torch.Tensor, pd.DataFrame]:
    """The hand-designed filters of the Neuromatch W1D5 tutorial 2, ``(C, K, K)`` float32.

    As written in the tutorial: on a grid of ``K`` points spanning ``[-K/2, K/2]`` (spacing
    ``K / (K - 1)`` px), with ``r`` the distance from the centre and ``sigma = 1.1``,
    channel 0 is ``exp(-r / (2 sigma^2)) - 0.5 exp(-r / (2 (2 sigma)^2))`` (note: ``r``, not
    ``r^2``, so these envelopes are exponentials, not Gaussians), channel 1 its negative,
    and channels 2.. are ``exp(-r / (2 (0.4 sigma)^2)) cos(2 pi u / 10 + pi / 2)`` with ``u``
    the coordinate along ``theta`` = 0, 180/(C-2), ... deg measured from the row axis.
    Each filter is then divided by its maximum absolute value and made zero-mean.
    The table gives each channel's orientation and phase in this module's conventions.
    """
    if out_channels < 3 or kernel_px < 2:
        raise ValueError("need out_channels >= 3 and kernel_px >= 2")
    grid = torch.linspace(-kernel_px / 2, kernel_px / 2, kernel_px, dtype=torch.float64)
    along_rows, along_cols = torch.meshgrid(grid, grid, indexing="ij")
    r = torch.sqrt(along_rows ** 2 + along_cols ** 2)
    sigma = 1.1
    cs = torch.exp(-r / (2 * sigma ** 2)) - 0.5 * torch.exp(-r / (2 * (2 * sigma) ** 2))
    envelope = torch.exp(-r / (2 * (0.4 * sigma) ** 2))
    wavelength = 10.0
    spacing = kernel_px / (kernel_px - 1)
    filters = [cs, -cs]
    rows = [dict(cell_type="center_surround_on", orientation_deg=np.nan, phase_deg=np.nan,
                 sf_cycles_per_px=np.nan),
            dict(cell_type="center_surround_off", orientation_deg=np.nan, phase_deg=np.nan,
                 sf_cycles_per_px=np.nan)]
    for theta in np.linspace(0.0, 180.0, out_channels - 1)[:-1]:
        t = math.radians(theta)
        u = along_rows * math.cos(t) + along_cols * math.sin(t)
        filters.append(envelope * torch.cos(2 * math.pi * u / wavelength + math.pi / 2))
        # u = x cos(o) + y sin(o) with x = col, y = -row gives o = theta - 90 deg; folding o
        # into [0, 180) flips the carrier, turning phase +90 into -90 (= 270).
        o = (theta - 90.0) % 360.0
        phase = 90.0 if o < 180.0 else 270.0
        rows.append(dict(cell_type="gabor", orientation_deg=o % 180.0, phase_deg=phase,
                         sf_cycles_per_px=spacing / wavelength))
    out = torch.stack(filters)
    out = out / out.abs().amax(dim=(1, 2), keepdim=True)
    out = out - out.mean(dim=(1, 2), keepdim=True)
    return out.float(), pd.DataFrame(rows)


class NeuromatchConv(nn.Module):
    """One convolutional layer of hand-designed filters (:func:`neuromatch_filters`), stride 1,
    padding ``K // 2``, zero bias, applied to luminance, then a ReLU.

    Submodules: ``luminance``, ``conv`` (the linear responses shown in the tutorial), ``relu``.
    """

    def __init__(self, out_channels: int = 6, kernel_px: int = 7):
        super().__init__()
        filters, table = neuromatch_filters(out_channels, kernel_px)
        self.luminance = luminance_conv()
        self.conv = _fixed_conv(list(filters.double()))
        self.relu = nn.ReLU()
        self.channels = table
        self.conv.channels = table
        _freeze(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(self.luminance(x)))


# ---- single-cell toy models ---------------------------------------------------------------

def simple_cell(orientation_deg: float = 0.0, sf_cycles_per_px: float = 0.125,
                phase_deg: float = 0.0, *, sigma_px: float | None = None,
                aspect_ratio: float = 1.0, size_px: int | None = None) -> SimpleCells:
    """One Gabor simple cell (one output channel)."""
    return SimpleCells((orientation_deg,), (phase_deg,), (sf_cycles_per_px,), sigma_px=sigma_px,
                       aspect_ratio=aspect_ratio, size_px=size_px)


def energy_cell(orientation_deg: float = 0.0, sf_cycles_per_px: float = 0.125, *,
                sigma_px: float | None = None, aspect_ratio: float = 1.0,
                size_px: int | None = None) -> EnergyComplexCells:
    """One energy-model complex cell (one output channel)."""
    return EnergyComplexCells((orientation_deg,), (sf_cycles_per_px,), sigma_px=sigma_px,
                              aspect_ratio=aspect_ratio, size_px=size_px)


def hubel_wiesel_cell(orientation_deg: float = 0.0, sf_cycles_per_px: float = 0.125, *,
                      n_phases: int = 8, weight_jitter: float = 0.0,
                      phase_jitter_deg: float = 0.0, seed: int = 0,
                      sigma_px: float | None = None, aspect_ratio: float = 1.0,
                      size_px: int | None = None) -> HubelWieselComplexCells:
    """One Hubel-Wiesel complex cell (one output channel), optionally jittered (seeded)."""
    return HubelWieselComplexCells((orientation_deg,), (sf_cycles_per_px,), n_phases=n_phases,
                                   weight_jitter=weight_jitter, phase_jitter_deg=phase_jitter_deg,
                                   seed=seed, sigma_px=sigma_px, aspect_ratio=aspect_ratio,
                                   size_px=size_px)


def dog_cell(center_sigma_px: float = 2.0, *, surround_ratio: float = 3.0,
             polarity: str = "on", surround_weight: float = 1.0) -> DoGCells:
    """One difference-of-Gaussians cell (one output channel), on- or off-centre."""
    return DoGCells((center_sigma_px,), surround_ratio=surround_ratio,
                    surround_weight=surround_weight, polarities=(polarity,))


ANALYTIC_FACTORIES = {
    "v1bank": V1Bank,
    "neuromatch_conv": NeuromatchConv,
    "simple_cell": simple_cell,
    "energy_cell": energy_cell,
    "hw_cell": lambda: hubel_wiesel_cell(weight_jitter=0.1, phase_jitter_deg=5.0, seed=0),
    "dog_cell": dog_cell,
}
"""Registered analytic models (built with their defaults; ``hw_cell`` is jittered, seed 0)."""
