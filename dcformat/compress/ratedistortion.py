"""Global bit allocation by equal slope (rate-distortion), and the ECQ encode of one tensor.

The distortion of tensor ``t`` is its squared error relative to its mean square,
weighted by ``rd_weight``: ``D_t = w_t * ||w - r||**2 / (||w||**2 / n_t)``. For
entropy-coded uniform quantization at moderate rates, ``dD_t/dR_t`` is proportional to
``w_t * step_t**2 / rms_t**2``, so equal slopes mean ``step_t = rms_t * g / sqrt(w_t)``
for one global ``g``: every tensor at the same SQNR, shifted by ``10 log10 w_t`` dB.
:func:`allocate` finds the SQNR (by bisection on planned, not estimated, Huffman
sizes) whose total size meets a budget in bits; per-tensor floors
(``max_rel_error`` / ``min_sqnr_db``) cap a tensor's step below what the budget
would give it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .ecq import FINE, Histogram, Plan, plan, plan_for_distortion, stats, step_for_sqnr
from .settings import TensorSettings

#: Resolution of the planning histogram: rms / PLAN_BINS_PER_RMS.
PLAN_BINS_PER_RMS = 512


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
    _memo: dict = field(default_factory=dict)  # histogram step multiple -> planned bits

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

    def step(self, sqnr_db: float) -> float:
        """This tensor's step at the global SQNR ``sqnr_db``, capped by its own floor."""
        s = step_for_sqnr(self.rms, sqnr_db) / math.sqrt(self.settings.rd_weight)
        return min(s, self.floor_step)

    def planned_bits(self, step: float) -> float:
        """The planned stored size at ``step``, in bits (memoised: the bisection revisits steps).

        Only the size is kept, not the plan: a budget search visits hundreds of steps.
        """
        h = self.planning_hist()
        F = max(1, int(round(step / h.delta0)))
        bits = self._memo.get(F)
        if bits is None:
            # the plain uniform grid's rate is close enough at kappa 0
            iterations = 4 if self.settings.ecq_kappa > 0 else 0
            p = plan(h, F, self.settings.ecq_kappa, self.max_entries, iterations)
            bits = self._memo[F] = p.total_bits(self.value_bits)
        return bits


def allocate(cands: list[Candidate], budget_bits: float, lo_db: float = -20.0, hi_db: float = 120.0,
             steps: int = 30) -> float:
    """The highest global SQNR (dB) whose planned total size fits ``budget_bits``.

    Returns ``lo_db`` when even that does not fit (the budget cannot be met).
    """
    def total(db: float) -> float:
        return sum(c.planned_bits(c.step(db)) for c in cands)

    if not cands:
        return hi_db
    if total(lo_db) > budget_bits:
        return lo_db
    if total(hi_db) <= budget_bits:
        return hi_db
    for _ in range(steps):
        mid = 0.5 * (lo_db + hi_db)
        if total(mid) <= budget_bits:
            lo_db = mid
        else:
            hi_db = mid
        if hi_db - lo_db < 1e-3:
            break
    return lo_db


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
