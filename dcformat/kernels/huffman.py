"""Canonical Huffman kernels: chunk costs, chunk encoding, table-driven chunk decoding.

Codes are stored bit-reversed (``rev_codes``) so that a code written most significant
bit first into the least-significant-first bit stream (spec/FORMAT.md, "Canonical
codes") is a plain OR at the writer's bit position, and so that the decoder can peek
``maxlen`` bits and index a table with them.

Decode table entries are ``(symbol << 5) | 16 | length``; a zero entry marks a bit
pattern that no code starts with. The decoders read only bytes in
``[begins[c], ends[c])`` of a chunk, write only ``out[firsts[c] : firsts[c] + counts[c]]``,
and report what they found per chunk in ``status`` (the ``STATUS_*`` values); they
never raise. Callers check every descriptor against the buffers first.
"""

from __future__ import annotations

import numpy as np

from .bitpack import load64, pack, unpack
from .config import kernel

#: The chunk decoded to its symbol count, filled its bytes exactly, zero trailing bits.
STATUS_OK = 0
#: A peeked bit pattern that no code starts with.
STATUS_INVALID_CODE = 1
#: A code needed bits past the chunk's last byte.
STATUS_PAST_END = 2
#: The chunk's byte length is not ceil(bits_read / 8).
STATUS_SIZE_MISMATCH = 3
#: Bits after the chunk's last code are not zero.
STATUS_NONZERO_PADDING = 4

_U8 = np.uint64(8)
_U16 = np.uint64(16)
_U24 = np.uint64(24)
_U32 = np.uint64(32)
_U40 = np.uint64(40)
_U48 = np.uint64(48)
_U56 = np.uint64(56)
_UFF = np.uint64(0xFF)
#: Decode-table entries hold the decoded value in their top 32 bits.
_VALUE_SHIFT = np.uint64(32)


#: Code lengths are 4-bit fields (spec/FORMAT.md, "Huffman streams").
_MAX_LENGTH = 15


@kernel
def reversed_canonical_codes(lengths, out):
    """``out[s]``: symbol ``s``'s canonical code, its ``lengths[s]`` bits in reverse order.

    The canonical assignment (FORMAT.md, "Canonical codes"; DEFLATE's): codes ordered by
    (length, symbol), each the previous plus one, shifted left by the difference in
    length. Reversed, a code written most significant bit first into the least
    significant first bit stream is a plain OR. Symbols of length 0 get 0. The caller
    has checked the Kraft inequality and that every length is at most 15.
    """
    per_length = np.zeros(_MAX_LENGTH + 1, np.int64)
    for s in range(lengths.shape[0]):
        per_length[lengths[s]] += 1
    per_length[0] = 0
    next_code = np.zeros(_MAX_LENGTH + 1, np.int64)
    code = 0
    for bits in range(1, _MAX_LENGTH + 1):
        code = (code + per_length[bits - 1]) << 1
        next_code[bits] = code
    for s in range(lengths.shape[0]):
        ln = np.int64(lengths[s])
        reversed_code = 0
        if ln:
            c = next_code[ln]
            next_code[ln] = c + 1
            for _ in range(ln):
                reversed_code = (reversed_code << 1) | (c & 1)
                c >>= 1
        out[s] = reversed_code


@kernel
def build_decode_table(lengths, values, maxlen, table):
    """Fill ``table`` (uint64, ``2**maxlen`` entries, zeroed) from a canonical code.

    Entry ``(values[s] << 32) | 16 | length`` at every pattern whose low bits are symbol
    ``s``'s reversed code. With ``values`` the identity the entry holds the symbol; the
    fused decoders of :mod:`dcformat.kernels.fused` pass a codebook's entries (as bits),
    so one set of readers serves both. A zero entry marks a pattern no code starts with.
    """
    rev_codes = np.empty(lengths.shape[0], np.int64)
    reversed_canonical_codes(lengths, rev_codes)
    size = 1 << maxlen
    for s in range(lengths.shape[0]):
        ln = np.int64(lengths[s])
        if ln == 0:
            continue
        entry = (np.uint64(values[s]) << _VALUE_SHIFT) | np.uint64(16 | ln)
        for i in range(rev_codes[s], size, 1 << ln):
            table[i] = entry


@kernel
def histogram(symbols, out):
    """Add the count of each symbol value to ``out`` (int64, longer than the largest symbol)."""
    for i in range(symbols.shape[0]):
        out[symbols[i]] += 1


@kernel
def chunk_bit_counts(symbols, lengths, chunk_symbols, out):
    """``out[c]`` = Huffman bits of symbols ``[c*chunk_symbols, (c+1)*chunk_symbols)``."""
    # Loops run over slices from 0: Numba's negative-index fix-up then folds away and
    # LLVM can vectorise (8x faster than indexing from a start of unknown sign).
    n = symbols.shape[0]
    for c in range(out.shape[0]):
        chunk = symbols[c * chunk_symbols:min(n, (c + 1) * chunk_symbols)]
        total = 0
        for i in range(chunk.shape[0]):
            total += np.int64(lengths[chunk[i]])
        out[c] = total


@kernel
def chunk_unit_sums(symbols, firsts, counts, out):
    """``out[c]`` = sum of ``symbols[j] + 1`` over chunk ``c`` (units a gap chunk covers)."""
    for c in range(firsts.shape[0]):
        chunk = symbols[firsts[c]:firsts[c] + counts[c]]
        total = 0
        for i in range(chunk.shape[0]):
            total += np.int64(chunk[i])
        out[c] = total + counts[c]


@kernel
def encode_chunks(symbols, rev_codes, lengths, chunk_symbols, modes, offsets, width, out):
    """Write chunk ``c`` (raw when ``modes[c]``) into ``out[offsets[c]:offsets[c+1]]``.

    ``offsets`` has one more entry than ``modes``; each Huffman chunk's slot is exactly
    ceil(bits / 8) bytes and each raw chunk's ceil(n * width / 8) bytes.
    """
    n = symbols.shape[0]
    for c in range(modes.shape[0]):
        start = c * chunk_symbols
        stop = min(n, start + chunk_symbols)
        b0 = offsets[c]
        b1 = offsets[c + 1]
        if modes[c] == 1:
            pack(symbols[start:stop], width, out[b0:b1])
            continue
        chunk = symbols[start:stop]
        acc = np.uint64(0)
        nbits = 0
        p = b0
        for i in range(chunk.shape[0]):
            s = chunk[i]
            acc |= np.uint64(rev_codes[s]) << np.uint64(nbits)
            nbits += np.int64(lengths[s])
            if nbits >= 32:
                out[p] = acc & _UFF
                out[p + 1] = (acc >> _U8) & _UFF
                out[p + 2] = (acc >> _U16) & _UFF
                out[p + 3] = (acc >> _U24) & _UFF
                p += 4
                acc >>= _U32
                nbits -= 32
        while p < b1:
            out[p] = acc & _UFF
            acc >>= _U8
            p += 1


@kernel
def _finish(data, table, mask, begin, ptr, end, bitbuf, bitcount, out, pos, stop):
    """Decode ``out[pos:stop]`` one symbol at a time from a reader state, then check the end.

    The state is a byte pointer and a bit buffer whose low ``bitcount`` bits are the
    next bits of the chunk; bits above them are zero or copies of the bytes at ``ptr``.
    """
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
        out[pos] = e >> _VALUE_SHIFT
        bitbuf >>= np.uint64(ln)
        bitcount -= ln
        pos += 1
    bits_read = (ptr - begin) * 8 - bitcount
    if end - begin != (bits_read + 7) >> 3:
        return STATUS_SIZE_MISMATCH
    # all bytes are loaded now, so the buffer holds exactly the trailing bits
    if bitbuf != 0:
        return STATUS_NONZERO_PADDING
    return STATUS_OK


@kernel
def _rounds(ptr, end, pos, stop, per_refill):
    """Refills that surely keep 8-byte loads inside the chunk and leave a symbol over.

    A refill advances the pointer at most 7 bytes and writes ``per_refill`` symbols.
    """
    by_bytes = (end - ptr - 8) // 7 + 1
    by_symbols = (stop - pos - 1) // per_refill
    return max(0, min(by_bytes, by_symbols))


@kernel
def _refill(data, ptr, bitbuf, bitcount):
    """Top the buffer up to at least 56 bits with one 8-byte load (``ptr + 8 <= len``)."""
    bitbuf |= load64(data, ptr) << np.uint64(bitcount)
    return ptr + ((63 - bitcount) >> 3), bitbuf, bitcount | 56


@kernel
def _step(table, mask, bitbuf, bitcount, out, pos):
    """Decode one symbol into ``out[pos]`` (the buffer holds at least ``maxlen`` bits).

    An invalid pattern writes symbol 0 and consumes nothing, so the reader stays on it.
    """
    e = table[bitbuf & mask]
    out[np.uint64(pos)] = e >> _VALUE_SHIFT
    ln = np.int64(e & np.uint64(15))
    return bitbuf >> np.uint64(ln), bitcount - ln


@kernel
def _decode1(data, table, maxlen, begin, end, out, pos, count):
    """Decode one Huffman chunk; return its status."""
    mask = np.uint64((1 << maxlen) - 1)
    per_refill = 56 // maxlen
    stop = pos + count
    p = begin
    f = np.uint64(0)
    c = 0
    # Fast loop: whole 8-byte loads inside the chunk, ``per_refill`` codes per load.
    # It always leaves at least one symbol to _finish, which re-peeks the same bits, so
    # an invalid pattern (which consumes nothing here) is caught there.
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
    """Decode four Huffman chunks with interleaved bit readers; return their statuses.

    The fast loop is written out for 5, 4 and 3 codes per refill (the most that 56
    bits hold for codes of up to 11, 14 and 15 bits): a constant trip count lets
    LLVM unroll it, about 12 % faster than a variable one.
    """
    mask = np.uint64((1 << maxlen) - 1)
    per_refill = 56 // maxlen
    if per_refill > 5:
        per_refill = 5
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
def decode_chunks(data, table, maxlen, modes, begins, ends, firsts, counts, width, out, status):
    """Decode every chunk into ``out``; set ``status[c]`` for each Huffman chunk.

    Raw chunks (``modes[c] == 1``) are unpacked at ``width`` bits; their sizes and
    trailing bits are the caller's to check. Huffman chunks go four at a time through
    interleaved readers.
    """
    for c in range(modes.shape[0]):
        if modes[c] == 1:
            unpack(data[begins[c]:ends[c]], counts[c], width, out[firsts[c]:firsts[c] + counts[c]])
            status[c] = STATUS_OK
    decode_huffman_chunks(data, table, maxlen, modes, begins, ends, firsts, counts, out, status)


@kernel
def decode_huffman_chunks(data, table, maxlen, modes, begins, ends, firsts, counts, out, status):
    """Decode the Huffman chunks (``modes[c] == 0``) into ``out``, four at a time; skip raw ones.

    Each table entry's top 32 bits are written: the symbol (plain tables) or a
    codebook value's bits (the fused value tables). ``status[c]`` is set per chunk.
    """
    pending = np.empty(4, np.int64)
    npending = 0
    for c in range(modes.shape[0]):
        if modes[c] == 1:
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


# --- chunk entries ------------------------------------------------------------------------
#
# A stream's chunk entries (FORMAT.md, "Huffman streams") are checked here in one pass
# rather than by a dozen numpy calls: most streams have a handful of chunks, and the
# per-call cost of numpy was most of a small tensor's decode time. Reasons are returned,
# never raised; the stream module turns them into the specified errors.

#: Reasons :func:`check_entries` and :func:`first_seen_bad` return (0: none).
ENTRY_UNKNOWN_MODE = 1
ENTRY_HUFFMAN_WITHOUT_CODES = 2
ENTRY_BAD_OFFSET = 3
ENTRY_BAD_FIRST = 4
CHUNK_RAW_SIZE = 5
CHUNK_RAW_PADDING = 6
CHUNK_TOO_SHORT = 7

@kernel
def check_entries(modes, offsets, firsts, count, total, has_codes):
    """Check the chunk entries one at a time, in order; (chunk, reason) of the first rule
    broken, or (-1, 0).

    Each entry's Mode (known; Huffman only with codes), then its Byte_Offset (0 first,
    non-decreasing, at most ``total``), then its First_Symbol (0 first, increasing, below
    ``count``), before the next entry's. ``offsets``, ``firsts``, ``count`` and ``total``
    are uint64, so no comparison goes through floats.
    """
    for c in range(modes.shape[0]):
        if modes[c] > 1:
            return c, ENTRY_UNKNOWN_MODE
        if modes[c] == 0 and not has_codes:
            return c, ENTRY_HUFFMAN_WITHOUT_CODES
        if offsets[c] > total or (c == 0 and offsets[c] != 0) or (c > 0 and offsets[c] < offsets[c - 1]):
            return c, ENTRY_BAD_OFFSET
        if firsts[c] >= count or (c == 0 and firsts[c] != 0) or (c > 0 and firsts[c] <= firsts[c - 1]):
            return c, ENTRY_BAD_FIRST
    return -1, 0


@kernel
def first_seen_bad(bits, modes, begins, ends, counts, width):
    """(chunk, reason) of the first chunk found bad without decoding it, or (-1, 0).

    A raw chunk must be exactly ``ceil(n * width / 8)`` bytes with zero trailing bits
    (R27); a Huffman chunk of ``n`` symbols needs at least ``ceil(n / 8)`` bytes, a bit
    per symbol, or it must read past its end (R28).
    """
    for c in range(modes.shape[0]):
        size = ends[c] - begins[c]
        if modes[c] == 1:
            used = counts[c] * width
            if size != (used + 7) // 8:
                return c, CHUNK_RAW_SIZE
            tail = used % 8
            if tail and np.int64(bits[ends[c] - 1]) >> tail:
                return c, CHUNK_RAW_PADDING
        elif counts[c] > 8 * size:
            return c, CHUNK_TOO_SHORT
    return -1, 0
