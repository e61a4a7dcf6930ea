"""Fused decode kernels: Huffman chunks straight to values, and sparse rebuild per gap chunk.

These serve the fast paths of :mod:`dcformat.encodings.decode`. They are the
table-driven readers of :mod:`dcformat.kernels.huffman` with one change: the decode
table is uint64, entry ``(value << 32) | 16 | length``, so one lookup yields the stored
value itself (a codebook entry's bits, or the symbol for an identity table) and no
symbol array is written. A zero entry marks a bit pattern no code starts with.

Like the plain readers they never raise and never touch memory outside what the caller
proved: bytes ``[begins[c], ends[c])`` of a chunk, ``out[firsts[c]:firsts[c]+counts[c]]``
for dense output, and, for the sparse rebuild, only positions checked ``< out.shape[0]``
(``STATUS_OVERRUN`` otherwise). Raw chunks' symbols are checked against the value table
(``STATUS_RANGE``). Any status other than ``STATUS_OK`` makes the caller fall back to the
checked path, which raises the error the specification's order of checks names.
"""

from __future__ import annotations

import numpy as np

from .bitpack import load64, unpack
from .config import kernel
from .huffman import STATUS_INVALID_CODE, STATUS_NONZERO_PADDING, STATUS_OK, STATUS_PAST_END, STATUS_SIZE_MISMATCH

#: A raw chunk holds a symbol past the value table.
STATUS_RANGE = 5
#: A sparse position (or a chunk's Start_Position) is at or past the output's end.
STATUS_OVERRUN = 6

_SHIFT = np.uint64(32)

__all__ = ["STATUS_OK", "STATUS_INVALID_CODE", "STATUS_PAST_END", "STATUS_SIZE_MISMATCH",
           "STATUS_NONZERO_PADDING", "STATUS_RANGE", "STATUS_OVERRUN", "build_value_table",
           "decode_values", "sparse_rebuild"]


@kernel
def build_value_table(lengths, rev_codes, values, maxlen, table):
    """Fill ``table`` (uint64, ``2**maxlen`` entries, zeroed): entry ``(values[s] << 32) | 16 | len``."""
    size = 1 << maxlen
    for s in range(lengths.shape[0]):
        ln = np.int64(lengths[s])
        if ln == 0:
            continue
        entry = (np.uint64(values[s]) << _SHIFT) | np.uint64(16 | ln)
        for i in range(np.int64(rev_codes[s]), size, 1 << ln):
            table[i] = entry


@kernel
def _finish(data, table, mask, begin, ptr, end, bitbuf, bitcount, out, pos, stop):
    while pos < stop:
        while bitcount <= 56 and ptr < end:
            bitbuf |= np.uint64(data[ptr]) << np.uint64(bitcount)
            ptr += 1
            bitcount += 8
        e = table[bitbuf & mask]
        ln = np.int64(e & np.uint64(15))
        if ln == 0:
            return STATUS_INVALID_CODE
        if ln > bitcount:
            return STATUS_PAST_END
        out[pos] = e >> _SHIFT
        bitbuf >>= np.uint64(ln)
        bitcount -= ln
        pos += 1
    bits_read = (ptr - begin) * 8 - bitcount
    if end - begin != (bits_read + 7) >> 3:
        return STATUS_SIZE_MISMATCH
    if bitbuf != 0:
        return STATUS_NONZERO_PADDING
    return STATUS_OK


@kernel
def _rounds(ptr, end, pos, stop, per_refill):
    by_bytes = (end - ptr - 8) // 7 + 1
    by_symbols = (stop - pos - 1) // per_refill
    return max(0, min(by_bytes, by_symbols))


@kernel
def _refill(data, ptr, bitbuf, bitcount):
    bitbuf |= load64(data, ptr) << np.uint64(bitcount)
    return ptr + ((63 - bitcount) >> 3), bitbuf, bitcount | 56


@kernel
def _step(table, mask, bitbuf, bitcount, out, pos):
    e = table[bitbuf & mask]
    out[np.uint64(pos)] = e >> _SHIFT
    ln = np.int64(e & np.uint64(15))
    return bitbuf >> np.uint64(ln), bitcount - ln


@kernel
def _decode1(data, table, maxlen, begin, end, out, pos, count):
    mask = np.uint64((1 << maxlen) - 1)
    per_refill = 56 // maxlen
    stop = pos + count
    p = begin
    f = np.uint64(0)
    c = 0
    while True:
        rounds = _rounds(p, end, pos, stop, per_refill)
        if rounds == 0:
            break
        for _ in range(rounds):
            p, f, c = _refill(data, p, f, c)
            for _ in range(per_refill):
                f, c = _step(table, mask, f, c, out, pos)
                pos += 1
    return _finish(data, table, mask, begin, p, end, f, c, out, pos, stop)


@kernel
def _decode4(data, table, maxlen, b0, e0, b1, e1, b2, e2, b3, e3, out, q0, n0, q1, n1, q2, n2, q3, n3):
    mask = np.uint64((1 << maxlen) - 1)
    per_refill = min(56 // maxlen, 5)
    s0 = q0 + n0
    s1 = q1 + n1
    s2 = q2 + n2
    s3 = q3 + n3
    p0 = b0
    p1 = b1
    p2 = b2
    p3 = b3
    f0 = np.uint64(0)
    f1 = np.uint64(0)
    f2 = np.uint64(0)
    f3 = np.uint64(0)
    c0 = 0
    c1 = 0
    c2 = 0
    c3 = 0
    while True:
        rounds = min(_rounds(p0, e0, q0, s0, per_refill), _rounds(p1, e1, q1, s1, per_refill),
                     _rounds(p2, e2, q2, s2, per_refill), _rounds(p3, e3, q3, s3, per_refill))
        if rounds == 0:
            break
        if per_refill == 5:
            for _ in range(rounds):
                p0, f0, c0 = _refill(data, p0, f0, c0)
                p1, f1, c1 = _refill(data, p1, f1, c1)
                p2, f2, c2 = _refill(data, p2, f2, c2)
                p3, f3, c3 = _refill(data, p3, f3, c3)
                for _ in range(5):
                    f0, c0 = _step(table, mask, f0, c0, out, q0)
                    f1, c1 = _step(table, mask, f1, c1, out, q1)
                    f2, c2 = _step(table, mask, f2, c2, out, q2)
                    f3, c3 = _step(table, mask, f3, c3, out, q3)
                    q0 += 1
                    q1 += 1
                    q2 += 1
                    q3 += 1
        elif per_refill == 4:
            for _ in range(rounds):
                p0, f0, c0 = _refill(data, p0, f0, c0)
                p1, f1, c1 = _refill(data, p1, f1, c1)
                p2, f2, c2 = _refill(data, p2, f2, c2)
                p3, f3, c3 = _refill(data, p3, f3, c3)
                for _ in range(4):
                    f0, c0 = _step(table, mask, f0, c0, out, q0)
                    f1, c1 = _step(table, mask, f1, c1, out, q1)
                    f2, c2 = _step(table, mask, f2, c2, out, q2)
                    f3, c3 = _step(table, mask, f3, c3, out, q3)
                    q0 += 1
                    q1 += 1
                    q2 += 1
                    q3 += 1
        else:
            for _ in range(rounds):
                p0, f0, c0 = _refill(data, p0, f0, c0)
                p1, f1, c1 = _refill(data, p1, f1, c1)
                p2, f2, c2 = _refill(data, p2, f2, c2)
                p3, f3, c3 = _refill(data, p3, f3, c3)
                for _ in range(3):
                    f0, c0 = _step(table, mask, f0, c0, out, q0)
                    f1, c1 = _step(table, mask, f1, c1, out, q1)
                    f2, c2 = _step(table, mask, f2, c2, out, q2)
                    f3, c3 = _step(table, mask, f3, c3, out, q3)
                    q0 += 1
                    q1 += 1
                    q2 += 1
                    q3 += 1
    r0 = _finish(data, table, mask, b0, p0, e0, f0, c0, out, q0, s0)
    r1 = _finish(data, table, mask, b1, p1, e1, f1, c1, out, q1, s1)
    r2 = _finish(data, table, mask, b2, p2, e2, f2, c2, out, q2, s2)
    r3 = _finish(data, table, mask, b3, p3, e3, f3, c3, out, q3, s3)
    return r0, r1, r2, r3


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
def decode_values(data, table, maxlen, modes, begins, ends, firsts, counts, width, values, out, status, scratch):
    """Decode chunks into ``out`` as values: ``out[firsts[c] + i] = values[symbol]``.

    Huffman chunks go four at a time through interleaved readers and write the table's
    value directly; raw chunks are unpacked through ``scratch`` (uint16, as long as the
    longest raw chunk) and each symbol checked against ``values``.
    """
    pending = np.empty(4, np.int64)
    npending = 0
    for c in range(modes.shape[0]):
        if modes[c] == 1:
            status[c] = _raw_chunk(data, begins[c], ends[c], counts[c], width, values, out, firsts[c], scratch)
            continue
        pending[npending] = c
        npending += 1
        if npending == 4:
            a = pending[0]
            b = pending[1]
            d = pending[2]
            g = pending[3]
            ra, rb, rd, rg = _decode4(data, table, maxlen,
                                      begins[a], ends[a], begins[b], ends[b],
                                      begins[d], ends[d], begins[g], ends[g], out,
                                      firsts[a], counts[a], firsts[b], counts[b],
                                      firsts[d], counts[d], firsts[g], counts[g])
            status[a] = ra
            status[b] = rb
            status[d] = rd
            status[g] = rg
            npending = 0
    for j in range(npending):
        c = pending[j]
        status[c] = _decode1(data, table, maxlen, begins[c], ends[c], out, firsts[c], counts[c])


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
def sparse_rebuild(data, table, maxlen, modes, begins, ends, firsts, counts, width, ident, starts,
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
        decode_values(data, table, maxlen, modes[g0:g1], begins[g0:g1], ends[g0:g1], local[:g1 - g0],
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
