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

from ..compress.sparse import positions_to_gaps
from ..streams import stream_codec

__all__ = ["choose_gap_bits", "needs_fillers"]


def _stream_bytes(symbols: np.ndarray, alphabet: int, gap_stream: bool) -> int:
    codec = stream_codec(symbols, alphabet, gap_stream=gap_stream)
    return len(codec.encode(symbols, alphabet, gap_stream=gap_stream))


def needs_fillers(mask: np.ndarray, gap_bits: int) -> bool:
    """Whether storing the True entries of ``mask`` with ``gap_bits``-bit gaps takes fillers."""
    return positions_to_gaps(np.flatnonzero(np.asarray(mask).ravel()), gap_bits).fillers > 0


def choose_gap_bits(mask: np.ndarray, candidates: Iterable[int] = range(2, 11)) -> int:
    """The gap width giving the smallest sparse layout of ``mask`` after entropy coding.

    Counts the gap stream as the exporter codes it (:func:`dcformat.streams.stream_codec`,
    Huffman tables included) plus an estimate of the codes of
    the filler entries, ``log2(entries / fillers)`` bits each (what an entropy coder spends
    on a symbol of that frequency). Ties go to the narrower width.

    Examples
    --------
    >>> m = np.zeros(1000, bool); m[::10] = True
    >>> choose_gap_bits(m) >= 4
    True
    """
    positions = np.flatnonzero(np.asarray(mask).ravel())
    best, best_bits = None, math.inf
    for gb in candidates:
        gs = positions_to_gaps(positions, gb)
        bits = 8 * _stream_bytes(gs.gaps, 1 << gb, True)
        if gs.fillers:
            bits += gs.fillers * max(1.0, math.log2(gs.entries / gs.fillers))
        if bits < best_bits:
            best, best_bits = gb, bits
    return int(best)
