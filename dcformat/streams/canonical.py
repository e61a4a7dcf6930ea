"""Huffman code lengths: the writer's construction, packing, Kraft sums (spec/FORMAT.md).

Pure numpy, no Numba: everything here is per table (at most 65536 entries), not per
symbol. ``code_lengths`` is the writer's length-limited Huffman construction
(package-merge, so optimal for its limit); the rest is shared by writer and reader.
The canonical codes themselves come from
:func:`dcformat.kernels.huffman.reversed_canonical_codes`, called once per stream.
"""

from __future__ import annotations

import numpy as np

from ..format.constants import MAX_CODE_LENGTH


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
    # Leaves in ascending weight; equal weights in ascending symbol order.
    order = used[np.argsort(freqs[used], kind="stable")]
    leaves = freqs[order]
    # Package-merge (coin collector). Level max_length holds the leaves alone; each
    # level above merges the leaves with the pairwise packages of the level below.
    # Leaves come before packages of the same weight, so the merge is deterministic.
    is_leaf_levels = []
    current = leaves
    current_is_leaf = np.ones(n, dtype=bool)
    for _ in range(max_length - 1):
        is_leaf_levels.append(current_is_leaf)
        pairs = current.shape[0] // 2
        packages = current[0:2 * pairs:2] + current[1:2 * pairs:2]
        merged = np.concatenate([leaves, packages])
        pick = np.argsort(merged, kind="stable")
        current = merged[pick]
        current_is_leaf = pick < n
    is_leaf_levels.append(current_is_leaf)
    # Select the 2n - 2 cheapest items of the top level; each package selected at a
    # level selects its two items at the level below. The leaves chosen at a level
    # are always the lightest ones, so a leaf's length is the number of levels whose
    # selected prefix holds it.
    depth = np.zeros(n, dtype=np.int64)
    take = 2 * n - 2
    for level_is_leaf in reversed(is_leaf_levels):
        prefix = level_is_leaf[:take]
        leaves_taken = int(np.count_nonzero(prefix))
        depth[:leaves_taken] += 1
        take = 2 * (take - leaves_taken)
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
