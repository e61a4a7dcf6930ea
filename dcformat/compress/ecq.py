"""Entropy-constrained scalar quantization (ECQ) of one tensor, planned on a fine histogram.

The quantizer starts uniform (a mid-tread grid of step ``delta``: cell ``j`` holds the
values nearest ``j * delta``) and is refined by entropy-constrained Lloyd iterations:
each value goes to the cell minimising ``(x - c_j)**2 + lam * L_j``, where ``c_j`` is the
cell's centroid (the mean of its values) and ``L_j`` its Huffman code length in bits,
``lam = kappa * delta**2``; then centroids and code lengths are recomputed. With
``kappa = 0`` this is plain Lloyd from a uniform start. Since the codes are Huffman
coded afterwards, ``sum(count_j * L_j)`` is the size of the code stream.

Everything is planned on a histogram of the tensor at a finer resolution ``delta0``
(``delta`` is a whole number of fine bins): per fine bin, the count, sum and sum of
squares of its values, so the distortion of any quantizer whose thresholds fall on
fine-bin edges is exact, and trying a step size costs O(bins), not O(elements). The
data is read three times: once for its RMS, once for the histogram, once to emit the
codes (a bin-to-code lookup).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..kernels.ecq import cell_totals, emit_codes, fine_histogram, grid_cells, minmax_energy
from ..streams.canonical import code_lengths

#: Most fine bins per histogram.
MAX_BINS = 1 << 20
#: Fine bins per quantizer step in the final encode.
FINE = 16
#: Cost in bits of one codebook entry besides its value: its 4-bit code length.
TABLE_BITS = 4
#: Rough per-tensor overhead in bits (header record, chunk entries, alignment), for
#: :meth:`Plan.total_bits`; the budget planner counts the framing itself (:mod:`.budget`).
TENSOR_OVERHEAD_BITS = 8 * 320
#: The sparse layout is tried when at least this share of the codes is the zero code.
SPARSE_TRY_ZERO_SHARE = 0.4
#: Relative-index widths tried for it.
SPARSE_GAP_BITS = (2, 4, 8)
#: The code nearest zero is made exactly 0.0 (so that a sparse layout can leave it out)
#: when that adds at most this share to the squared error.
ZERO_SNAP_ERROR_SHARE = 0.01


def stats(x: np.ndarray) -> tuple[float, float, float]:
    """(min, max, sum of squares) of a non-empty 1-D float array, in float64."""
    lo, hi, e = minmax_energy(x)
    return float(lo), float(hi), float(e)


@dataclass
class Histogram:
    """Fine histogram of a tensor: bin ``b`` holds the values nearest ``(lo + b) * delta0``."""

    delta0: float
    lo: int
    counts: np.ndarray  # int64
    sums: np.ndarray  # float64
    squares: np.ndarray  # float64
    n: int
    energy: float

    @classmethod
    def build(cls, x: np.ndarray, delta0: float, vmin: float, vmax: float, energy: float) -> "Histogram":
        """Histogram ``x`` at resolution ``delta0``; coarsened until it has at most MAX_BINS bins."""
        delta0 = float(delta0)
        while True:
            lo = int(np.rint(vmin / delta0))
            hi = int(np.rint(vmax / delta0))
            if hi - lo + 1 <= MAX_BINS:
                break
            delta0 *= 2.0
        nbins = hi - lo + 1
        counts = np.zeros(nbins, np.int64)
        sums = np.zeros(nbins, np.float64)
        squares = np.zeros(nbins, np.float64)
        fine_histogram(x, 1.0 / delta0, lo, nbins, counts, sums, squares)
        return cls(delta0, lo, counts, sums, squares, int(x.size), energy)


@dataclass
class Plan:
    """A quantizer planned on a histogram: fine bin -> code, the codebook, its cost."""

    code_of_bin: np.ndarray  # int64 per fine bin
    codebook: np.ndarray  # float64, ascending
    counts: np.ndarray  # per code
    lengths: np.ndarray  # Huffman code length per code
    distortion: float  # sum of squared errors
    code_bits: float  # sum(counts * lengths)
    delta: float
    kappa: float

    @property
    def entries(self) -> int:
        return int(self.codebook.size)

    def total_bits(self, value_bits: int = 32) -> float:
        """Estimated stored size: codes, codebook values and their code-length table, overhead."""
        return self.code_bits + self.entries * (value_bits + TABLE_BITS) + TENSOR_OVERHEAD_BITS


def _lengths(counts: np.ndarray) -> np.ndarray:
    used = int(np.count_nonzero(counts))
    limit = 11
    while used > (1 << limit):
        limit += 1
    if used > (1 << 15):
        return np.where(counts > 0, 16, 0).astype(np.float64)  # stored raw
    return code_lengths(counts, limit).astype(np.float64)


def plan(h: Histogram, step_bins: int, kappa: float = 0.0, max_entries: int = 4096,
         iterations: int = 20, reach: int = 2) -> Plan:
    """Plan an ECQ quantizer of step ``step_bins * h.delta0`` with at most ``max_entries`` codes."""
    F = max(1, int(step_bins))
    nb = h.counts.size
    used = np.flatnonzero(h.counts)
    gmin, gmax = h.lo + int(used[0]), h.lo + int(used[-1])
    while True:
        # The codebook cap bounds range / step: widen the step until the range fits.
        cmin, cmax = (gmin + F // 2) // F, (gmax + F // 2) // F
        if cmax - cmin + 1 <= max_entries:
            break
        F = max(F + 1, int(math.ceil(F * (cmax - cmin + 1) / max_entries)))
    delta = F * h.delta0
    cell = np.empty(nb, np.int64)
    grid_cells(h.lo, F, cmin, cmax, cell)
    ncell = cmax - cmin + 1
    N, S, Q = h.counts, h.sums, h.squares
    lam = float(kappa) * delta * delta
    assign = cell
    if iterations:  # each bin's candidate cells (kappa 0 encodes plan none: the grid's cells stand)
        Nf = N.astype(np.float64)
        offsets = np.arange(-reach, reach + 1)
        cand = np.clip(cell[:, None] + offsets[None, :], 0, ncell - 1)
    for _ in range(iterations):
        Nc = np.bincount(assign, weights=Nf, minlength=ncell)
        Sc = np.bincount(assign, weights=S, minlength=ncell)
        alive = Nc > 0
        cent = np.where(alive, Sc / np.where(alive, Nc, 1.0), 0.0)
        L = _lengths(np.rint(Nc).astype(np.int64))
        pen = np.where(alive, cent * cent + lam * L, np.inf)
        with np.errstate(invalid="ignore"):
            cost = Nf[:, None] * pen[cand] - 2.0 * S[:, None] * cent[cand]
        cost[N == 0] = 0.0
        new = cand[np.arange(nb), np.argmin(cost, axis=1)]
        new[N == 0] = assign[N == 0]
        if np.array_equal(new, assign):
            break
        assign = new
    Nc, Sc, Qc = np.zeros(ncell), np.zeros(ncell), np.zeros(ncell)
    cell_totals(assign, N, S, Q, Nc, Sc, Qc)
    alive = Nc > 0
    rank = np.cumsum(alive) - 1
    Nk, Sk, Qk = Nc[alive], Sc[alive], Qc[alive]
    cb = Sk / Nk
    distortion = float(np.maximum(Qk - Sk * cb, 0.0).sum())
    counts = np.rint(Nk).astype(np.int64)
    L = _lengths(counts)
    code_of_bin = rank[assign]
    # Empty bins between cells: point them at the nearest stored code (never read for data).
    return Plan(code_of_bin.astype(np.int64), cb, counts, L, distortion, float(np.dot(counts, L)),
                delta, float(kappa))


def step_for_sqnr(rms: float, sqnr_db: float) -> float:
    """The uniform step whose noise (step**2 / 12) is ``sqnr_db`` below ``rms**2``."""
    return rms * math.sqrt(12.0) * 10.0 ** (-sqnr_db / 20.0)


def plan_for_distortion(x, h: Histogram, max_distortion: float, kappa: float, max_entries: int,
                        iterations: int = 20) -> tuple[Histogram, Plan]:
    """The coarsest plan whose distortion is at most ``max_distortion``.

    Searches the step (a whole number of fine bins) by bisection; refines the histogram
    when even one fine bin per step is too coarse.
    """
    vmin, vmax = h.lo * h.delta0, (h.lo + h.counts.size - 1) * h.delta0
    for _ in range(8):
        best = None
        p = plan(h, 1, kappa, max_entries, iterations)
        if p.distortion <= max_distortion:
            best = p
            lo, hi = 1, 2
            while True:  # grow until it fails
                p = plan(h, hi, kappa, max_entries, iterations)
                if p.distortion > max_distortion or hi > h.counts.size:
                    break
                best, lo, hi = p, hi, hi * 2
            while hi - lo > 1:
                mid = (lo + hi) // 2
                p = plan(h, mid, kappa, max_entries, iterations)
                if p.distortion <= max_distortion:
                    best, lo = p, mid
                else:
                    hi = mid
            return h, best
        if h.delta0 < 1e-30:
            return h, p
        h = Histogram.build(x, h.delta0 / 8.0, vmin, vmax, h.energy)
    return h, p


def emit(x: np.ndarray, h: Histogram, p: Plan, codebook: np.ndarray) -> tuple[np.ndarray, float]:
    """The codes (uint16) of ``x`` under plan ``p`` and their squared error against ``codebook``."""
    out = np.empty(x.size, np.uint16)
    err = emit_codes(x, 1.0 / h.delta0, h.lo, np.ascontiguousarray(p.code_of_bin),
                np.ascontiguousarray(codebook, dtype=np.float64), out)
    return out, float(err)
