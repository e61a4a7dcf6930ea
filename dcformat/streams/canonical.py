"""Huffman code lengths: the writer's construction, packing, Kraft sums (spec/FORMAT.md).

Everything here is per table (at most 65536 entries), not per symbol. ``code_lengths`` is
the writer's length-limited Huffman construction (package-merge, so optimal for its
limit; its levels are merged in :mod:`dcformat.kernels.canonical`, as numpy's sorts cost
a stream of a few hundred symbols more than coding it); the rest is shared by writer and
reader.
The canonical codes themselves come from
:func:`dcformat.kernels.huffman.reversed_canonical_codes`, called once per stream.
"""

from __future__ import annotations

import numpy as np

from ..format.constants import MAX_CODE_LENGTH
from ..kernels.canonical import package_merge


def code_lengths(freqs: np.ndarray, max_length: int) -> np.ndarray:
    """Optimal code lengths, each at most ``max_length``, for symbol frequencies.

    Symbols with frequency 0 get length 0. A lone used symbol gets length 1. The
    number of used symbols must be at most ``2**max_length``. Ties are broken by
    symbol number, so the result depends only on ``freqs``.

    Examples
    --------
    >>> code_lengths(np.array([10, 1, 1, 0, 5]), 15).tolist()
    [1, 3, 3, 0, 2]
    >>> code_lengths(np.array([8, 4, 2, 1]), 2).tolist()
    [2, 2, 2, 2]
    """
    freqs = np.asarray(freqs, dtype=np.int64)
    lengths = np.zeros(freqs.shape[0], dtype=np.uint8)
    used = np.flatnonzero(freqs)
    n = used.shape[0]
    if n == 0:
        return lengths
    if n == 1:
        lengths[used] = 1
        return lengths
    if n > (1 << max_length):
        raise ValueError(f"{n} symbols cannot have codes of at most {max_length} bits")
    # Leaves in ascending weight; equal weights in ascending symbol order. Package-merge
    # (coin collector) then gives each leaf its depth (dcformat.kernels.canonical).
    order = used[np.argsort(freqs[used], kind="stable")]
    depth = np.zeros(n, dtype=np.int64)
    package_merge(freqs[order], max_length, depth)
    lengths[order] = depth
    return lengths


def kraft_sum(lengths: np.ndarray) -> int:
    """Sum of ``2**(MAX_CODE_LENGTH - length)`` over coded symbols, as an exact int.

    The lengths form a prefix code exactly when this is at most ``2**MAX_CODE_LENGTH``.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    # at most 65536 terms of at most 2**15 each: exact in int64
    return int(np.sum(np.left_shift(1, MAX_CODE_LENGTH - lengths[lengths > 0])))


def pack_lengths(lengths: np.ndarray) -> bytes:
    """Two 4-bit lengths per byte, symbol ``2k`` in the low nibble; a zero high nibble pads."""
    lengths = np.asarray(lengths, dtype=np.uint8)
    if lengths.shape[0] % 2:
        lengths = np.append(lengths, np.uint8(0))
    return (lengths[0::2] | (lengths[1::2] << 4)).astype(np.uint8).tobytes()


def unpack_lengths(packed: np.ndarray, table_size: int) -> np.ndarray:
    """The ``table_size`` nibbles of ``packed`` (uint8, ``ceil(table_size/2)`` bytes)."""
    lengths = np.empty(2 * packed.shape[0], dtype=np.uint8)
    lengths[0::2] = packed & 15
    lengths[1::2] = packed >> 4
    return lengths[:table_size]
