"""What the pipeline did to each tensor, for the CLI's table and for tests."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

#: TensorReport.kind values.
EXACT = "exact"
CODEBOOK = "codebook"
SPARSE_CODEBOOK = "sparse codebook"
#: One codebook shared by the rows, each scaled (GROUPED values).
GROUPED_ROWS = "codebook, row scales"
SPARSE_GROUPED_ROWS = "sparse codebook, row scales"


@dataclass(frozen=True)
class TensorReport:
    """One tensor's outcome.

    ``kept`` counts the stored weights (for a sparse tensor: surviving, non-zero,
    fillers not included; otherwise every element). ``entries`` counts the stored
    entries, fillers included. ``rel_rms_error`` is ``||w - r|| / ||w||`` and
    ``sqnr_db`` is ``10 log10(||w||^2 / ||w - r||^2)`` for the reconstruction ``r``
    (0 and inf when exact). ``reason`` says why a tensor was kept exact.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    kind: str
    elements: int
    kept: int
    entries: int = 0
    fillers: int = 0
    code_bits: int | None = None
    gap_bits: int | None = None
    codebook_size: int | None = None
    rel_rms_error: float = 0.0
    sqnr_db: float = math.inf
    reason: str | None = None

    @property
    def kept_percent(self) -> float:
        """Stored weights as a percentage of the elements (100 for an empty tensor)."""
        return 100.0 * self.kept / self.elements if self.elements else 100.0

    def to_dict(self) -> dict:
        """A JSON-safe dict (infinite SQNR becomes ``None``), with ``kept_percent``."""
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["kept_percent"] = self.kept_percent
        if not math.isfinite(d["sqnr_db"]):
            d["sqnr_db"] = None
        return d


def error_measures(signal_energy: float, error_energy: float) -> tuple[float, float]:
    """(relative RMS error, SQNR in dB) from sums of squares of the weights and errors."""
    error_energy = max(error_energy, 0.0)
    if error_energy == 0.0:
        return 0.0, math.inf
    if signal_energy == 0.0:
        return math.inf, -math.inf
    # the ratio's logarithm as a difference: the ratio itself overflows for a tiny error
    return math.sqrt(error_energy / signal_energy), 10.0 * (math.log10(signal_energy) - math.log10(error_energy))
