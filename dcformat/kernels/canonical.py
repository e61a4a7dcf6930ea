"""Package-merge for length-limited Huffman codes (the writer's construction,
:func:`dcformat.streams.canonical.code_lengths`), one linear merge per level.

Every level merges the leaves (ascending weight, ties by symbol) with the pairwise
packages of the level below; both lists are ascending, so a two-pointer merge that takes
a leaf on a tie is the stable sort of ``leaves + packages`` the construction specifies.
"""

from __future__ import annotations

import numpy as np

from .config import kernel


@kernel
def package_merge(leaves, max_length, depth):
    """Code lengths of ``leaves`` (weights, ascending; ``n >= 2`` of them, ``n <= 2**max_length``)
    into ``depth`` (int64, zeros, ``n`` long), the i-th for the i-th lightest leaf."""
    n = leaves.shape[0]
    width = 2 * n
    is_leaf = np.zeros((max_length, width), np.bool_)
    sizes = np.zeros(max_length, np.int64)
    current = leaves.copy()
    size = n
    for j in range(n):
        is_leaf[0, j] = True
    sizes[0] = n
    merged = np.empty(width, np.int64)
    for level in range(1, max_length):
        pairs = size // 2
        a = 0
        b = 0
        k = 0
        while a < n or b < pairs:
            if b >= pairs or (a < n and leaves[a] <= current[2 * b] + current[2 * b + 1]):
                merged[k] = leaves[a]
                is_leaf[level, k] = True
                a += 1
            else:
                merged[k] = current[2 * b] + current[2 * b + 1]
                b += 1
            k += 1
        size = k
        sizes[level] = size
        current = merged[:size].copy()
    # select the 2n - 2 cheapest items of the top level; each package selected at a level
    # selects its two items at the level below; leaves taken at a level are the lightest
    take = 2 * n - 2
    for level in range(max_length - 1, -1, -1):
        taken = 0
        for j in range(min(take, sizes[level])):
            if is_leaf[level, j]:
                taken += 1
        for j in range(taken):
            depth[j] += 1
        take = 2 * (take - taken)
