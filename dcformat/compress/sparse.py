"""Relative indices (Deep Compression stage 1, storage): positions <-> gaps with fillers.

Entry ``j`` is placed at ``p_j = cumsum(gap + 1)[j] - 1`` over the C-order units
(spec/FORMAT.md, "Decoding a record"). A gap wider than ``2**gap_bits - 1`` is bridged
by *filler* entries of gap ``2**gap_bits - 1`` whose value must decode to zero
("Fillers"): skipping ``d`` units takes ``d // 2**gap_bits`` fillers and a final gap
of ``d % 2**gap_bits``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidSettings
from ..kernels.placement import count_gap_entries, fill_gap_entries


@dataclass(frozen=True, eq=False)
class GapStream:
    """The gaps of a sparse layout and which of its entries are fillers.

    ``gaps`` (uint16) has one symbol per entry, fillers included; ``kept_index[i]`` is
    the entry that holds the i-th stored position, so ``entries[kept_index] = values``
    and every other entry is a filler.
    """

    gaps: np.ndarray
    kept_index: np.ndarray

    @property
    def entries(self) -> int:
        return int(self.gaps.size)

    @property
    def fillers(self) -> int:
        return int(self.gaps.size - self.kept_index.size)


def positions_to_gaps(positions: np.ndarray, gap_bits: int) -> GapStream:
    """Encode strictly increasing non-negative positions as gaps of ``gap_bits`` bits.

    Examples
    --------
    >>> g = positions_to_gaps(np.array([0, 2, 12]), 2)
    >>> g.gaps.tolist(), g.kept_index.tolist()
    ([0, 1, 3, 3, 1], [0, 1, 4])
    >>> gaps_to_positions(g.gaps).tolist()
    [0, 2, 6, 10, 12]
    """
    if isinstance(gap_bits, bool) or not isinstance(gap_bits, (int, np.integer)) or not 1 <= gap_bits <= 16:
        raise InvalidSettings(f"gap_bits must be an integer from 1 to 16, got {gap_bits!r}")
    p = np.ascontiguousarray(np.asarray(positions).ravel())
    if p.dtype.kind not in "iu":
        p = p.astype(np.int64)
    span = 1 << gap_bits  # units covered by one filler (max gap + 1)
    # two passes and no temporaries the size of the positions: a tensor's worth of int64
    # arrays was most of the peak memory of compressing a mostly-zero tensor
    entries = count_gap_entries(p, span)
    if entries < 0:
        raise InvalidSettings("positions must be non-negative and strictly increasing")
    gaps = np.empty(entries, dtype=np.uint16)
    kept_index = np.empty(p.size, dtype=np.int64)
    fill_gap_entries(p, span, gaps, kept_index)
    return GapStream(gaps, kept_index)


def gaps_to_positions(gaps: np.ndarray) -> np.ndarray:
    """The unit each entry goes to: ``cumsum(gaps + 1) - 1`` (int64)."""
    return np.cumsum(np.asarray(gaps, dtype=np.int64) + 1) - 1
