"""Kernels that place decoded values: codebook gathers, sparse positions, scatters.

Values travel as unsigned integers of their element width (``dtypes.storage_view``), so
one compiled kernel per width serves every dtype bit-exactly. Callers prove every index
in range first: codes and selectors below the table length, positions below the output
length.
"""

from __future__ import annotations

import numpy as np

from .config import kernel


@kernel
def gather(table, indices, out):
    """out[i] = table[indices[i]]."""
    for i in range(indices.shape[0]):
        out[i] = table[indices[i]]


@kernel
def gather_rows(table, indices, out):
    """out[i, :] = table[indices[i], :] for a 2-D table of kernels."""
    width = table.shape[1]
    for i in range(indices.shape[0]):
        row = indices[i]
        for k in range(width):
            out[i, k] = table[row, k]


@kernel
def gap_positions(gaps, positions):
    """positions[j] = sum_{i <= j} (gaps[i] + 1) - 1; returns the unit count covered."""
    covered = np.int64(0)
    for j in range(gaps.shape[0]):
        covered += np.int64(gaps[j]) + 1
        positions[j] = covered - 1
    return covered


@kernel
def scatter(values, positions, out):
    """out[positions[j]] = values[j]."""
    for j in range(positions.shape[0]):
        out[positions[j]] = values[j]


@kernel
def scatter_gather(table, indices, positions, out):
    """out[positions[j]] = table[indices[j]]: a sparse codebook tensor in one pass."""
    for j in range(positions.shape[0]):
        out[positions[j]] = table[indices[j]]


@kernel
def scatter_rows(values, positions, out):
    """out[positions[j], :] = values[j, :]."""
    width = out.shape[1]
    for j in range(positions.shape[0]):
        p = positions[j]
        for k in range(width):
            out[p, k] = values[j, k]


@kernel
def scatter_gather_rows(table, indices, positions, out):
    """out[positions[j], :] = table[indices[j], :]: sparse bank selectors."""
    width = out.shape[1]
    for j in range(positions.shape[0]):
        p = positions[j]
        row = indices[j]
        for k in range(width):
            out[p, k] = table[row, k]


@kernel
def max_symbol(symbols):
    """The largest symbol (0 for an empty stream)."""
    m = 0
    for i in range(symbols.shape[0]):
        if symbols[i] > m:
            m = symbols[i]
    return m


@kernel
def count_gap_entries(positions, span):
    """Entries (stored positions plus fillers) that relative indices of ``span - 1`` at
    most need for ``positions``; -1 unless they are non-negative and strictly increasing."""
    total = np.int64(0)
    previous = np.int64(-1)
    for i in range(positions.shape[0]):
        skip = np.int64(positions[i]) - previous - 1
        if skip < 0:
            return -1
        total += skip // span + 1
        previous = np.int64(positions[i])
    return total


@kernel
def fill_gap_entries(positions, span, gaps, kept_index):
    """Write the gaps (fillers of gap ``span - 1`` where a skip is too wide) and, for each
    position, the entry that holds it; ``gaps`` is as long as :func:`count_gap_entries`."""
    j = 0
    previous = np.int64(-1)
    for i in range(positions.shape[0]):
        skip = np.int64(positions[i]) - previous - 1
        for _ in range(skip // span):
            gaps[j] = span - 1
            j += 1
        gaps[j] = skip % span
        kept_index[i] = j
        j += 1
        previous = np.int64(positions[i])
