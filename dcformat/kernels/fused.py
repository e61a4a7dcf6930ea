"""Fused decode kernels: Huffman chunks straight to values, and sparse rebuild per gap chunk.

These serve the fast paths of :mod:`dcformat.encodings.decode`. They run the
table-driven readers of :mod:`dcformat.kernels.huffman` over a value table: entry
``(value << 32) | 16 | length`` (the plain decoder's layout, with a codebook entry's bits
as the value instead of the symbol), so one lookup yields the stored value itself and no
symbol array is written. A zero entry marks a bit pattern no code starts with. Given a
non-empty multi-symbol table of that value table
(:func:`dcformat.kernels.huffman.build_multi_table`), the readers take up to three
values a lookup.

Like the plain readers they never raise and never touch memory outside what the caller
proved: bytes ``[begins[c], ends[c])`` of a chunk, ``out[firsts[c]:firsts[c]+counts[c]]``
for dense output, and, for the sparse rebuild, only positions checked ``< out.shape[0]``
(``STATUS_OVERRUN`` otherwise). Raw chunks' symbols are checked against the value table
(``STATUS_RANGE``). Any status other than ``STATUS_OK`` makes the caller fall back to the
checked path, which raises the error the specification's order of checks names.
"""

from __future__ import annotations

import numpy as np

from .bitpack import unpack
from .config import kernel
from .huffman import (
    STATUS_INVALID_CODE,
    STATUS_NONZERO_PADDING,
    STATUS_OK,
    STATUS_PAST_END,
    STATUS_SIZE_MISMATCH,
    decode_huffman_chunks,
)

#: A raw chunk holds a symbol past the value table.
STATUS_RANGE = 5
#: A sparse position (or a chunk's Start_Position) is at or past the output's end.
STATUS_OVERRUN = 6

__all__ = ["STATUS_OK", "STATUS_INVALID_CODE", "STATUS_PAST_END", "STATUS_SIZE_MISMATCH",
           "STATUS_NONZERO_PADDING", "STATUS_RANGE", "STATUS_OVERRUN", "decode_values", "sparse_rebuild"]


@kernel
def _raw_chunk(data, begin, end, count, width, values, out, pos, scratch):
    """Unpack a raw chunk through ``scratch`` (at least ``count`` long) and map it through ``values``."""
    sym = scratch[:count]
    unpack(data[begin:end], count, width, sym)
    n = values.shape[0]
    for i in range(count):
        s = sym[i]
        if s >= n:
            return STATUS_RANGE
        out[pos + i] = values[s]
    return STATUS_OK


@kernel
def decode_values(data, table, maxlen, multi, modes, begins, ends, firsts, counts, width, values, out, status,
                  scratch):
    """Decode chunks into ``out`` as values: ``out[firsts[c] + i] = values[symbol]``.

    Huffman chunks go four at a time through interleaved readers (through ``multi``
    unless it is empty) and write the table's value directly; raw chunks are unpacked
    through ``scratch`` (uint16, as long as the longest raw chunk) and each symbol
    checked against ``values``.
    """
    for c in range(modes.shape[0]):
        if modes[c] == 1:
            status[c] = _raw_chunk(data, begins[c], ends[c], counts[c], width, values, out, firsts[c], scratch)
    decode_huffman_chunks(data, table, maxlen, multi, modes, begins, ends, firsts, counts, out, status)


@kernel
def _scatter_chunk(gaps, start, codes, cb, out):
    """Place one gap chunk: returns (status, units covered)."""
    units = out.shape[0]
    if start > units:
        return STATUS_OVERRUN, 0
    pos = np.int64(start) - 1
    for i in range(gaps.shape[0]):
        pos += np.int64(gaps[i]) + 1
        if pos >= units:
            return STATUS_OVERRUN, 0
        out[pos] = cb[codes[i]]
    return STATUS_OK, pos + 1 - np.int64(start)


@kernel
def sparse_rebuild(data, table, maxlen, multi, modes, begins, ends, firsts, counts, width, ident, starts,
                   codes, cb, out, status, covered, scratch):
    """Rebuild a zeroed sparse output from gap chunks, four chunks at a time.

    For each group of up to four gap chunks: Huffman-decode their gaps into ``scratch``
    (cache-resident, as long as four chunks), then walk each chunk from its
    ``Start_Position`` ``starts[c]`` placing ``cb[codes[firsts[c] + i]]``. ``codes`` are
    proven ``< len(cb)``; every position is checked ``< len(out)``. ``covered[c]`` gets
    the units chunk ``c`` covers, for the caller's Start_Position check.
    """
    n = modes.shape[0]
    local = np.empty(4, np.int64)
    g0 = 0
    while g0 < n:
        g1 = min(n, g0 + 4)
        off = 0
        for c in range(g0, g1):
            local[c - g0] = off
            off += counts[c]
        decode_values(data, table, maxlen, multi, modes[g0:g1], begins[g0:g1], ends[g0:g1], local[:g1 - g0],
                      counts[g0:g1], width, ident, scratch, status[g0:g1], scratch[off:])
        for c in range(g0, g1):
            if status[c] != STATUS_OK:
                return
            f = firsts[c]
            k = counts[c]
            o = local[c - g0]
            st, cov = _scatter_chunk(scratch[o:o + k], starts[c], codes[f:f + k], cb, out)
            status[c] = st
            covered[c] = cov
            if st != STATUS_OK:
                return
        g0 = g1
