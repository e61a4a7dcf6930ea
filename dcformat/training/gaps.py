"""The gap width of a pruned tensor's sparse layout, as the exporter will code it.

:class:`~dcformat.training.quantize.WeightSharing` asks which width a pruned weight will
be stored with (it decides whether a code slot is kept for the fillers' zero) and
:mod:`dcformat.training.export` stores it with that width; both import it from here, so
neither imports the other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from ..encodings.sparse import GapStream, code_gaps, positions_to_gaps
from ..streams.choose import CodedStream

__all__ = ["choose_gap_bits", "choose_gaps", "needs_fillers"]


def needs_fillers(mask: np.ndarray, gap_bits: int) -> bool:
    """Whether storing the True entries of ``mask`` with ``gap_bits``-bit gaps takes fillers."""
    return positions_to_gaps(np.flatnonzero(np.asarray(mask).ravel()), gap_bits).fillers > 0


def choose_gap_bits(mask: np.ndarray, candidates: Iterable[int] = range(2, 11)) -> int:
    """The gap width giving the smallest sparse layout of ``mask`` after entropy coding.

    Counts the gap stream as the exporter codes it (:func:`dcformat.encodings.sparse.code_gaps`,
    Huffman tables included) plus an estimate of the codes of
    the filler entries, ``log2(entries / fillers)`` bits each (what an entropy coder spends
    on a symbol of that frequency). Ties go to the narrower width.

    Examples
    --------
    >>> m = np.zeros(1000, bool); m[::10] = True
    >>> choose_gap_bits(m) >= 4
    True
    """
    return choose_gaps(np.flatnonzero(np.asarray(mask).ravel()), candidates)[0].gap_bits


def choose_gaps(positions: np.ndarray, candidates: Iterable[int] = range(2, 11)) -> tuple[GapStream, CodedStream]:
    """The gap stream of ``positions`` at the width :func:`choose_gap_bits` picks, with its
    coding (Huffman allowed), which :func:`dcformat.encodings.sparse.build_sparse` keeps.

    Examples
    --------
    >>> gaps, coded = choose_gaps(np.arange(0, 1000, 10))
    >>> gaps.gap_bits == coded.alphabet_size.bit_length() - 1 >= 4
    True
    """
    best, best_bits = None, math.inf
    for gb in candidates:
        gs = positions_to_gaps(positions, gb)
        coded = code_gaps(gs)
        bits = 8 * coded.nbytes
        if gs.fillers:
            bits += gs.fillers * max(1.0, math.log2(gs.entries / gs.fillers))
        if bits < best_bits:
            best, best_bits = (gs, coded), bits
    return best
