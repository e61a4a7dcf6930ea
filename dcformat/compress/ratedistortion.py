"""Global bit allocation by equal slope (rate-distortion), and the ECQ encode of one tensor.

The distortion of tensor ``t`` is its squared error relative to its mean square,
weighted by ``rd_weight``: ``D_t = w_t * ||w - r||**2 / (||w||**2 / n_t)``. For
entropy-coded uniform quantization at moderate rates, ``dD_t/dR_t`` is proportional to
``w_t * step_t**2 / rms_t**2``, so equal slopes mean ``step_t = rms_t * g / sqrt(w_t)``
for one global ``g``: every tensor at the same SQNR, shifted by ``10 log10 w_t`` dB.
Per-tensor floors (``max_rel_error`` / ``min_sqnr_db``) cap a tensor's step below what
the budget would give it.

:func:`allocate` finds the SQNR whose total size meets a budget in bytes. The size of a
tensor at a step (:meth:`Candidate.cost`) is what the final encode
(:func:`final_plan`, then the pipeline's dense-or-sparse choice) will store, predicted
from the tensor's planning summary, a fine histogram kept as cumulative sums: the cells
of the final quantizer, their counts and so the Huffman-coded code stream; the sparse
layout where the zero code dominates (gaps as if the zeros fell at random); the
codebook, the record and the padding (:mod:`dcformat.compress.budget`).
:class:`Allocation` then keeps the file on the budget while the tensors are encoded,
with what each one really took.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..format import constants as C
from ..format.constants import AFFINE_CODEBOOK_BYTES
from . import budget, uniform
from ._dtypes import numpy_dtype
from .ecq import (
    FINE,
    MAX_BINS,
    SPARSE_GAP_BITS,
    SPARSE_TRY_ZERO_SHARE,
    ZERO_SNAP_ERROR_SHARE,
    Histogram,
    Plan,
    plan,
    plan_for_distortion,
    stats,
    step_for_sqnr,
)
from .settings import TensorSettings

#: Resolution of the planning histogram: rms / PLAN_BINS_PER_RMS.
PLAN_BINS_PER_RMS = 512
#: No tensor is quantized coarser than the step of this SQNR (dB): quantization noise as
#: strong as the weights (step ``sqrt(12) * rms``). Coarser, a tensor keeps next to
#: nothing (at a step spanning its range it is stored as zeros), so a budget that needs
#: that is one the model cannot meet.
COARSEST_SQNR_DB = 0.0
#: Global SQNRs (dB) at which every tensor is at its coarsest (``COARSEST_SQNR_DB`` or its
#: own floor, whatever its ``rd_weight``), and at its finest (its codebook cap).
LOWEST_DB, HIGHEST_DB = -100.0, 200.0
#: The slope is solved again, over the tensors still to come, once the corrections of
#: :class:`Allocation` have moved it this far (dB): beyond it they are no longer linear.
RESOLVE_DB = 1.5
#: Most bins of the histogram on which an ``ecq_kappa > 0`` plan is predicted as the encode makes it.
LLOYD_BINS = 1 << 13
#: Bytes at a real-over-predicted ratio of 1 that the ratio of the tensors encoded so far is
#: taken with, as a share of the budget.
RATIO_PRIOR_SHARE = 0.05
#: Share of the budget's tolerance within which the tensors still to come keep their slope.
DEADBAND = 0.25
#: Encodes at most of the last ECQ tensor, while the file would miss its budget.
LAST_TRIES = 4


@dataclass
class Candidate:
    """One tensor for the ECQ encoder: its values and what the planner knows of it."""

    name: str
    x: np.ndarray  # flat work array (float32 or float64)
    settings: TensorSettings
    value_bits: int
    shape: tuple = ()
    wire: str = "F32"
    vmin: float = 0.0
    vmax: float = 0.0
    energy: float = 0.0
    hist: Histogram | None = None
    floor_step: float = math.inf  # largest step meeting the tensor's own error bound
    size: int = 0  # elements (kept apart from ``x``, which the pipeline may drop after planning)
    #: The planning histogram as (delta0, lo, cumulative counts, sums, squares): what
    #: :meth:`cost` reads once :meth:`summarize` has dropped the values.
    grid: tuple | None = None
    #: Row scales (``groups="rows"``): ``x`` is then every row divided by its scale, the
    #: codebook is float32 and the record holds GROUPED values (:mod:`.grouped`).
    scales: object = None
    #: The budget's weight of this tensor for its size (``tensor_balance``), on top of its rd_weight.
    balance: float = 1.0
    _memo: dict = field(default_factory=dict)  # step -> predicted bytes

    def __post_init__(self):
        self.vmin, self.vmax, self.energy = stats(self.x)
        self.size = int(self.x.size)

    @property
    def rms(self) -> float:
        return math.sqrt(self.energy / self.size)

    @property
    def max_entries(self) -> int:
        # An error floor outranks the codebook cap (as with kmeans, up to 16 bits).
        return 1 << (16 if self.settings.max_relative_error is not None else self.settings.code_bits)

    @property
    def max_distortion(self) -> float | None:
        bound = self.settings.max_relative_error
        return None if bound is None else (bound * 0.999) ** 2 * self.energy

    def planning_hist(self) -> Histogram:
        if self.hist is None:
            d0 = self.rms / PLAN_BINS_PER_RMS if self.rms > 0 else 1.0
            self.hist = Histogram.build(self.x, d0, self.vmin, self.vmax, self.energy)
            if self.max_distortion is not None:
                _, p = plan_for_distortion(self.x, self.hist, self.max_distortion, self.settings.ecq_kappa,
                                           self.max_entries, iterations=8 if self.settings.ecq_kappa > 0 else 0)
                self.floor_step = p.delta
        return self.hist

    def summarize(self) -> "Candidate":
        """Keep what planning reads (statistics, floor step, the histogram's cumulative sums), not the values.

        Built here, the values can go, so that planning holds one tensor at a time.
        """
        h = self.planning_hist()
        self.grid = (h.delta0, h.lo) + tuple(np.concatenate(([0], np.cumsum(a))) for a in
                                             (h.counts, h.sums, h.squares))
        self.hist = None
        self.x = None  # the encode pass reads the tensor again
        return self

    def step(self, sqnr_db: float) -> float:
        """This tensor's step at the global SQNR ``sqnr_db``, capped by its own floor and by
        the coarsest step (:data:`COARSEST_SQNR_DB`)."""
        if self.rms == 0.0:
            return 1.0  # all zeros: one cell at any step
        s = step_for_sqnr(self.rms, sqnr_db) / math.sqrt(self.settings.rd_weight * self.balance)
        return min(s, self.floor_step, step_for_sqnr(self.rms, COARSEST_SQNR_DB))

    def cost(self, step: float) -> float:
        """The bytes the final encode at ``step`` will store: the record, its segments, their padding.

        Memoised: the allocation revisits steps.
        """
        got = self._memo.get(step)
        if got is None:
            cells = self._cells(step) if self.settings.ecq_kappa == 0 else self._lloyd_cells(step)
            got = self._memo[step] = self._stored_bytes(*cells)
        return got

    # -- what the final encode will do, from the planning summary ------------------------

    def _final_grid(self, step: float) -> tuple[float, int, int, int]:
        """(bin width, first and last bin, step in bins) of the histogram ``final_plan`` builds
        at ``step`` (``step / FINE`` wide, coarsened like :meth:`Histogram.build`)."""
        d = step / FINE
        while True:
            lo, hi = round(self.vmin / d), round(self.vmax / d)
            if hi - lo + 1 <= MAX_BINS:
                return d, lo, hi, max(1, round(step / d))
            d *= 2.0

    def _cells(self, step: float):
        """(count, sum, sum of squares of each cell, the cell of zero or None) of ``final_plan``
        at ``step`` with ``ecq_kappa = 0``: the cells of the histogram it builds, read off the
        planning histogram."""
        d, lo, hi, F = self._final_grid(step)
        while True:  # as plan(): widen the step until the codebook cap holds the range
            cmin, cmax = (lo + F // 2) // F, (hi + F // 2) // F
            if cmax - cmin + 1 <= self.max_entries:
                break
            F = max(F + 1, math.ceil(F * (cmax - cmin + 1) / self.max_entries))
        # fine bin g holds rint(x / d) = g; cell c the bins c*F - F//2 .. c*F - F//2 + F - 1
        edges = (np.arange(cmin + 1, cmax + 1, dtype=np.float64) * F - F // 2 - 0.5) * d
        n, s, q = self._below(edges)
        n, s, q = (np.diff(np.concatenate(([0.0], a, [total]))) for a, total in
                   zip((n, s, q), (self.size, self._total(3), self._total(4))))
        zero = -cmin if cmin <= 0 <= cmax else None
        points = np.arange(cmin, cmax + 1, dtype=np.float64) * (F * d)  # the cells' grid points
        return n, s, q, zero, points

    def _total(self, i: int) -> float:
        return float(self.grid[i][-1])

    def _below(self, values: np.ndarray):
        """(count, sum, sum of squares) of the values below each of ``values``, with the
        values of a planning bin taken as spread evenly over it."""
        d0, lo, cn, cs, cq = self.grid
        nb = cn.size - 1
        u = values / d0 - lo + 0.5  # planning bin k covers [k, k + 1) in these units
        k = np.clip(np.floor(u), 0, nb - 1).astype(np.int64)
        f = np.clip(u - k, 0.0, 1.0)
        return tuple(a[k] + f * (a[k + 1] - a[k]) for a in (cn, cs, cq))

    def _lloyd_cells(self, step: float):
        """The cells of ``final_plan``'s entropy-constrained plan (``ecq_kappa > 0``): on the
        histogram it builds, read off the planning histogram, when that has at most
        :data:`LLOYD_BINS` bins (coarse steps, where the plan decides the layout), else on
        the planning histogram itself, with fewer iterations."""
        d, lo, hi, F = self._final_grid(step)
        if hi - lo + 1 <= LLOYD_BINS:
            n, s, q = self._below((np.arange(lo, hi + 2, dtype=np.float64) - 0.5) * d)
            counts = np.diff(np.rint(n)).astype(np.int64)
            held = counts > 0
            s, q = np.where(held, np.diff(s), 0.0), np.where(held, np.diff(q), 0.0)
            h, iterations = Histogram(d, lo, counts, s, q, self.size, self.energy), 20
        else:
            d0, lo, cn, cs, cq = self.grid
            h, F, iterations = Histogram(d0, lo, np.diff(cn), np.diff(cs), np.diff(cq), self.size, self.energy), \
                max(1, int(round(step / d0))), 4
        p: Plan = plan(h, F, self.settings.ecq_kappa, self.max_entries, iterations=iterations)
        n = p.counts.astype(np.float64)
        s = p.codebook * n
        q = s * p.codebook + p.distortion / max(p.entries, 1)
        return n, s, q, int(np.argmin(np.abs(p.codebook))), None

    def _stored_bytes(self, n: np.ndarray, s: np.ndarray, q: np.ndarray, zero: int | None,
                      points: np.ndarray | None = None) -> float:
        """What the pipeline stores for cells holding ``n`` values (sums ``s``, squares ``q``;
        ``points``: the cells' grid points, None when the cells are not a grid's)."""
        alive = n >= 0.5
        counts = n[alive]
        error = float(np.sum(np.maximum(q[alive] - s[alive] ** 2 / counts, 0.0)))
        zero_code = int(np.count_nonzero(alive[:zero])) if zero is not None and alive[zero] else None
        centroid = float(s[zero] / n[zero]) if zero_code is not None else 0.0
        # centroids that round to one value of the codebook's dtype share a code (as in the encode)
        values = (s[alive] / counts).astype(np.float32 if self.scales is not None else numpy_dtype(self.wire))
        merged, inverse = np.unique(values, return_inverse=True)
        if merged.size < counts.size:
            counts = np.bincount(inverse.ravel(), weights=counts)
            zero_code = None if zero_code is None else int(inverse.ravel()[zero_code])
        # a cell expected to hold less than half a value now and then holds one: its entry counts
        entries = float(counts.size + np.sum(-np.expm1(-n[~alive])))
        table_bytes = entries * self.value_bits / 8
        held = np.flatnonzero(alive)
        # a few values spread thin over fine cells (no cell expects a whole one) keep the table
        if held.size and uniform.worth_trying(round(entries), self.value_bits, self.size, self.wire):
            # on an AFFINE codebook (what the encode chooses when it pays): a code for every
            # cell from the first held to the last, the empty ones too, and 8 bytes of grid
            span = n[held[0]:held[-1] + 1]
            grid_zero = zero - held[0] if zero is not None and held[0] <= zero <= held[-1] else None
            grid = self._record_bytes(AFFINE_CODEBOOK_BYTES, span, grid_zero, 0.0, error)
            table = self._record_bytes(table_bytes, counts, zero_code, centroid, error)
            if points is None:
                return min(grid, table)
            # the encode's choice: the grid's bytes against the error of reconstructing at its points
            grid_error = float(np.sum(np.maximum(q - 2.0 * s * points + n * points ** 2, 0.0)))
            return grid if uniform.better(table, error, grid, grid_error, self.size) else table
        return self._record_bytes(table_bytes, counts, zero_code, centroid, error)

    def _record_bytes(self, cb_bytes: float, counts: np.ndarray, zero_code: int | None, centroid: float,
                      error: float) -> float:
        """The record of codes with these ``counts`` (the alphabet: one symbol each) and a
        codebook of ``cb_bytes``: dense, or sparse where the zero code dominates."""
        alphabet = max(int(counts.size), 1)
        huffman = self.settings.huffman
        codes = budget.stream_bytes(counts, alphabet, huffman=huffman)
        layout, gaps = C.Layout.DENSE, None
        if zero_code is not None:
            n0 = float(counts[zero_code])
            if n0 >= SPARSE_TRY_ZERO_SHARE * self.size and n0 * centroid ** 2 <= ZERO_SNAP_ERROR_SHARE * error:
                sparse = self._sparse_bytes(counts, zero_code, n0, alphabet, huffman)
                if budget.sparse_beats_dense(sparse[0], sparse[1], codes):
                    layout, (gaps, codes) = C.Layout.SPARSE, sparse
        segments = [cb_bytes, codes] if gaps is None else [cb_bytes, gaps, codes]
        if self.scales is not None:  # and the scale table, the scale codes, no offsets
            return (budget.record_bytes(self.name, len(self.shape), layout, C.ValueKind.GROUPED, len(segments) + 4)
                    + sum(budget.padded(b) for b in segments) + self.scales.side_bytes(self.settings.huffman))
        return (budget.record_bytes(self.name, len(self.shape), layout, C.ValueKind.CODEBOOK, len(segments))
                + sum(budget.padded(b) for b in segments))

    def _sparse_bytes(self, counts: np.ndarray, zero_code: int, n0: float, alphabet: int,
                      huffman: bool) -> tuple[float, float]:
        """(gap stream, code stream) bytes of the sparse layout at its best gap width."""
        kept = self.size - n0
        best = None
        for gb in SPARSE_GAP_BITS:
            gap_freqs, fillers = budget.gap_frequencies(self.size, kept, gb)
            values = counts.copy()
            values[zero_code] = fillers
            pair = (budget.stream_bytes(gap_freqs, 1 << gb, huffman=huffman),
                    budget.stream_bytes(values, alphabet, huffman=huffman))
            if best is None or sum(pair) < sum(best):
                best = pair
        return best


def balance(cands: list[Candidate], exponent: float) -> None:
    """Weigh each candidate by ``(n_max / n) ** exponent`` for its size (``tensor_balance``)."""
    if exponent and cands:
        largest = max(c.size for c in cands)
        for c in cands:
            c.balance = (largest / max(c.size, 1)) ** exponent
            c._memo.clear()


def total_cost(cands: list[Candidate], sqnr_db: float) -> float:
    """Bytes the candidates take at the global SQNR ``sqnr_db``."""
    return sum(c.cost(c.step(sqnr_db)) for c in cands)


def allocate(cands: list[Candidate], budget_bytes: float, lo_db: float = LOWEST_DB,
             hi_db: float = HIGHEST_DB) -> float:
    """The highest global SQNR (dB) whose predicted total size fits ``budget_bytes``.

    Returns ``lo_db`` when even that does not fit (the budget cannot be met) and ``hi_db``
    when that fits (nothing more can be spent). Bisection while the bracket is wide, then
    the secant (regula falsi) on the sizes, until the size is within 0.01 % of the budget.
    """
    if not cands:
        return hi_db
    t_lo, t_hi = total_cost(cands, lo_db), total_cost(cands, hi_db)
    if t_lo > budget_bytes:
        return lo_db
    if t_hi <= budget_bytes:
        return hi_db
    for _ in range(60):
        if hi_db - lo_db < 1e-4 or budget_bytes - t_lo <= 1e-4 * budget_bytes:
            break
        if hi_db - lo_db > 8.0:
            mid = 0.5 * (lo_db + hi_db)
        else:
            w = (budget_bytes - t_lo) / (t_hi - t_lo)
            mid = lo_db + min(max(w, 0.05), 0.95) * (hi_db - lo_db)
        t = total_cost(cands, mid)
        if t <= budget_bytes:
            lo_db, t_lo = mid, t
        else:
            hi_db, t_hi = mid, t
    return lo_db


class Allocation:
    """Keeps the ECQ tensors on a budget in bytes while they are encoded, one at a time, in order.

    The slope is solved once on the predicted sizes. Then, before each tensor, the
    sizes of those still to come are taken as linear around the solution (each changes
    by a known number of bytes per dB), scaled by what the tensors encoded so far really
    took against their predictions, and the slope is moved so that they fill what is
    left (solved again when that moves it more than :data:`RESOLVE_DB`): what the
    predictions miss is made up by the tensors after them. The last
    one is encoded again, at most :data:`LAST_TRIES` - 1 times, while the file misses the
    budget by more than half of ``tolerance_bytes``.
    """

    def __init__(self, cands: list[Candidate], tolerance_bytes: float):
        self._cands = {c.name: c for c in cands}
        self._pending = [c.name for c in cands]
        self.tolerance = tolerance_bytes
        self.budget = 0.0
        self.spent = 0.0
        self._predicted = 0.0  # what the tensors encoded so far were predicted to take

    def __contains__(self, name: str) -> bool:
        return name in self._cands

    @property
    def smallest(self) -> float:
        """Bytes of every candidate at its coarsest."""
        return total_cost(list(self._cands.values()), LOWEST_DB)

    @property
    def largest(self) -> float:
        """Bytes of every candidate at its finest."""
        return total_cost(list(self._cands.values()), HIGHEST_DB)

    def start(self, budget_bytes: float) -> "Allocation":
        """Solve the slope for ``budget_bytes``, before the first tensor is encoded."""
        self.budget = budget_bytes
        self._solve()
        return self

    @property
    def _ratio(self) -> float:
        """Real over predicted bytes of the tensors encoded so far, taken with
        :data:`RATIO_PRIOR_SHARE` of the budget at 1 (1 before the first): a bias of a few
        hundred bytes says little of how the predictions of the big tensors after it err."""
        prior = RATIO_PRIOR_SHARE * self.budget
        return min(max((self.spent + prior) / (self._predicted + prior), 0.5), 2.0) if self._predicted > 0 else 1.0

    def _solve(self) -> None:
        rest = [self._cands[name] for name in self._pending]
        self.db = allocate(rest, (self.budget - self.spent) / self._ratio)
        self._base = {c.name: c.cost(c.step(self.db)) for c in rest}
        self._slope = {}
        for c in rest:  # bytes per dB around the solution
            up, down = c.cost(c.step(min(self.db + 0.5, HIGHEST_DB))), c.cost(c.step(max(self.db - 0.5, LOWEST_DB)))
            self._slope[c.name] = max(up - down, 0.0)

    def _db(self) -> float:
        r = self._ratio
        slope = r * sum(self._slope[name] for name in self._pending)
        missing = self.budget - self.spent - r * sum(self._base[name] for name in self._pending)
        # the file may land within DEADBAND of the tolerance: only a miss beyond it moves the
        # slope, so that a small tensor late in the file is not crushed for a few bytes
        slack = DEADBAND * self.tolerance
        missing = math.copysign(max(abs(missing) - slack, 0.0), missing)
        db = self.db + (missing / slope if slope > 0 else 0.0)
        if abs(db - self.db) > RESOLVE_DB:
            self._solve()
            db = self.db
        return min(max(db, LOWEST_DB), HIGHEST_DB)

    def encode(self, name: str, encode):
        """``encode(step)`` -> ``(value, bytes stored)``: the value for ``name``, kept on the budget."""
        cand = self._cands[name]
        db = self._db()
        value, stored = encode(cand.step(db))
        tries = [(db, stored)]
        if self._pending == [name]:  # the last one: nothing after it can make up for a miss
            goal = self.budget - self.spent
            while len(tries) < LAST_TRIES and abs(stored - goal) > self.tolerance / 2:
                db = self._retry_db(cand, tries, goal)
                if db is None:
                    break
                again, size = encode(cand.step(db))
                tries.append((db, size))
                if abs(size - goal) < abs(stored - goal):
                    value, stored = again, size
                del again
        self._pending.remove(name)
        self.spent += stored
        used = min(tries, key=lambda t: abs(t[1] - stored))[0]
        self._predicted += cand.cost(cand.step(used))
        return value

    def _retry_db(self, cand: Candidate, tries: list, goal: float) -> float | None:
        """The SQNR of another try of the last tensor: its predicted sizes shifted by what the
        first try missed, then the secant through the two latest tries' real sizes."""
        if len(tries) == 1:
            db, stored = tries[0]
            offset = stored - cand.cost(cand.step(db))
            new = allocate([cand], goal - offset)
        else:
            (d1, s1), (d2, s2) = tries[-2:]
            if s1 == s2:
                return None
            new = d2 + (goal - s2) * (d2 - d1) / (s2 - s1)
        new = min(max(new, LOWEST_DB), HIGHEST_DB)
        return None if any(abs(new - t[0]) < 1e-6 for t in tries) else new


def final_plan(c: Candidate, step: float | None) -> tuple[Histogram, Plan]:
    """The plan to encode with: at ``step`` (or the tensor's own floor), on a fine enough histogram."""
    s = c.settings
    bound = c.max_distortion
    if step is None or not math.isfinite(step):
        if bound is None:
            from ..errors import InvalidSettings

            raise InvalidSettings(f"tensor {c.name!r}: the ecq quantizer needs max_rel_error, min_sqnr_db "
                                  "or a bits_per_param budget")
        step = c.step(math.inf) if c.hist is not None else None
    if step is None or not math.isfinite(step) or step <= 0.0:
        # Only a floor: search on a histogram sized for it.
        rel = math.sqrt(bound / c.energy) if c.energy > 0 else 1.0
        step = max(c.rms * rel * math.sqrt(12.0), 1e-300)
    h = c.hist
    if h is None or step / h.delta0 < FINE:
        h = Histogram.build(c.x, step / FINE, c.vmin, c.vmax, c.energy)
    F = max(1, int(round(step / h.delta0)))
    # kappa 0: the uniform grid with centroid reconstruction. Lloyd reassignment would
    # lower the error but raise the entropy more than it is worth at these rates.
    iterations = 20 if s.ecq_kappa > 0 else 0
    p = plan(h, F, s.ecq_kappa, c.max_entries, iterations=iterations)
    if bound is not None and p.distortion > bound:
        h, p = plan_for_distortion(c.x, h, bound, s.ecq_kappa, c.max_entries, iterations=iterations)
    return h, p
