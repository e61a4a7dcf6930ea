"""Canonical Huffman kernels: chunk costs, chunk encoding, table-driven chunk decoding.

Codes are stored bit-reversed (``rev_codes``) so that a code written most significant
bit first into the least-significant-first bit stream (spec/FORMAT.md, "Canonical
codes") is a plain OR at the writer's bit position, and so that the decoder can peek
``maxlen`` bits and index a table with them.

Decode table entries are ``(value << 32) | 16 | length``; a zero entry marks a bit
pattern that no code starts with. A stream whose codes are at most ``MULTI_BITS`` long
can also get a multi-symbol table (:func:`build_multi_table`): one lookup of ``MULTI_BITS``
bits yields up to three values (exponent planes, at 2.7 bits a symbol, decode some 2x
faster into 4-byte values and 2.5x into 2-byte ones); an empty one selects the
single-symbol readers. The decoders read only bytes in
``[begins[c], ends[c])`` of a chunk, write only ``out[firsts[c] : firsts[c] + counts[c]]``,
and report what they found per chunk in ``status`` (the ``STATUS_*`` values); they
never raise. Callers check every descriptor against the buffers first.
"""

from __future__ import annotations

import numpy as np

from .bitpack import load64, pack, unpack
from .config import kernel, with_numba

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

_U1, _U2, _U3, _U8, _U16, _U24 = (np.uint64(k) for k in (1, 2, 3, 8, 16, 24))
_U32, _U40, _U48, _U54, _U56, _U62, _U63 = (np.uint64(k) for k in (32, 40, 48, 54, 56, 62, 63))
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
    """Add the count of each symbol value to ``out`` (int64, longer than the largest symbol).

    Four partial counts, one per position mod 4, then summed: a skewed stream (exponents)
    repeats symbols back to back, and one count array would make every increment wait for
    the one before (about 2x slower)."""
    n = symbols.shape[0]
    size = out.shape[0]
    if n < 4 * size:  # few symbols for the alphabet: the partial counts would cost more
        for i in range(n):
            out[symbols[i]] += 1
        return
    parts = np.zeros((4, size), np.int64)
    quads = n // 4
    for i in range(quads):
        j = 4 * i
        parts[0, symbols[j]] += 1
        parts[1, symbols[j + 1]] += 1
        parts[2, symbols[j + 2]] += 1
        parts[3, symbols[j + 3]] += 1
    for j in range(4 * quads, n):
        parts[0, symbols[j]] += 1
    for k in range(size):
        out[k] += parts[0, k] + parts[1, k] + parts[2, k] + parts[3, k]


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
def _rounds4(p0, e0, q0, s0, p1, e1, q1, s1, p2, e2, q2, s2, p3, e3, q3, s3, per_refill):
    """:func:`_rounds` that all four interleaved readers have room for."""
    return min(_rounds(p0, e0, q0, s0, per_refill), _rounds(p1, e1, q1, s1, per_refill),
               _rounds(p2, e2, q2, s2, per_refill), _rounds(p3, e3, q3, s3, per_refill))


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
        rounds = _rounds4(p0, e0, q0, s0, p1, e1, q1, s1, p2, e2, q2, s2, p3, e3, q3, s3, per_refill)
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


# --- multi-symbol decoding -------------------------------------------------------------
#
# One lookup of MULTI_BITS stream bits yields every whole code in them, up to three, with
# their count and total length; their values go out as one 8-byte store of four 2-byte
# lanes, or two of four 4-byte lanes. Lanes past the count are overwritten by the next
# lookup, so the fast loops run only while a round's lanes stay below the chunk's last
# symbol, and _finish decodes the rest one symbol at a time as the plain readers do.
#
# The reader keeps no bit count: each 8-byte load puts 56 stream bits under a marker bit,
# and after five lookups (at most 55 bits) the marker's place tells how many they used.
# A pattern no code starts with has a zero entry, which writes zeros and consumes nothing:
# the reader stays on it, the loops stop once a round makes no progress, and _finish
# re-peeks it and reports it.

#: Bits a multi-symbol table is indexed by; streams with longer codes use the plain readers.
MULTI_BITS = 11
_MULTI_MASK = np.uint64((1 << MULTI_BITS) - 1)
_MULTI_SIZE = 1 << MULTI_BITS
#: Lookups per 8-byte load: five of at most 11 bits fit in the 56 bits a load brings.
_MULTI_STEPS = 5
#: Symbols a round of lookups writes at most (three an entry, five entries).
_MULTI_ROUND = 3 * _MULTI_STEPS
_LOW56 = np.uint64((1 << 56) - 1)
_MARK56 = np.uint64(1 << 56)
_U32BITS = np.uint64(0xFFFFFFFF)


def multi_table_size(maxlen: int, itemsize: int) -> int:
    """Words of the multi-symbol table for codes up to ``maxlen`` bits decoded into values
    of ``itemsize`` bytes, or 0 where none applies (codes longer than ``MULTI_BITS``, or
    values neither 2 nor 4 bytes wide)."""
    if maxlen > MULTI_BITS or itemsize not in (2, 4):
        return 0
    return _MULTI_SIZE * (itemsize // 2)


@kernel
def build_multi_table(table, maxlen, multi):
    """Fill ``multi`` (uint64, :func:`multi_table_size` words) from the decode table ``table``.

    Entry ``i`` holds the codes read one after another from the low bits of ``i``, as many
    as fit whole in ``MULTI_BITS`` bits, up to three: their values ``v0``-``v2`` (0 past the
    count), their count ``n`` and their total length ``t``. For 2-byte values word ``i``
    is ``v0 | v1 << 16 | v2 << 32 | t << 48 | n << 54``; for 4-byte values word ``i`` is
    ``v0 | v1 << 32`` and word ``i + 2**MULTI_BITS`` is ``v2 | t << 32 | n << 62``. A
    pattern no code starts with gets zero. ``maxlen <= MULTI_BITS``, so every first code fits.
    """
    mask = (1 << maxlen) - 1
    wide = multi.shape[0] > _MULTI_SIZE
    vals = np.zeros(3, np.uint64)
    for i in range(_MULTI_SIZE):
        used = 0
        n = 0
        vals[:] = 0
        while n < 3:
            e = table[(i >> used) & mask]
            ln = np.int64(e & np.uint64(15))
            if ln == 0 or used + ln > MULTI_BITS:
                break
            vals[n] = e >> _VALUE_SHIFT
            used += ln
            n += 1
        t = np.uint64(used)
        if wide:
            multi[i] = (vals[0] & _U32BITS) | (vals[1] << _U32)
            multi[i + _MULTI_SIZE] = (vals[2] & _U32BITS) | (t << _U32) | (np.uint64(n) << _U62)
        else:
            lanes = (vals[0] & np.uint64(0xFFFF)) | ((vals[1] & np.uint64(0xFFFF)) << _U16)
            multi[i] = lanes | ((vals[2] & np.uint64(0xFFFF)) << _U32) | (t << _U48) | (np.uint64(n) << _U54)


@kernel
def _multi_step2(multi, bitbuf, out, pos):
    """One lookup into 2-byte ``out``: lanes ``out[pos:pos + 4]``, then the reader past the codes."""
    e = multi[bitbuf & _MULTI_MASK]
    p = np.uint64(pos)
    out[p] = e  # the four stores merge into one
    out[p + _U1] = e >> _U16
    out[p + _U2] = e >> _U32
    out[p + _U3] = e >> _U48
    return bitbuf >> ((e >> _U48) & _U63), pos + np.int64(e >> _U54)


@kernel
def _multi_step4(multi, bitbuf, out, pos):
    """One lookup into 4-byte ``out``: lanes ``out[pos:pos + 4]``, then the reader past the codes."""
    i = bitbuf & _MULTI_MASK
    lo = multi[i]
    hi = multi[i + np.uint64(_MULTI_SIZE)]
    p = np.uint64(pos)
    out[p] = lo  # two 8-byte stores
    out[p + _U1] = lo >> _U32
    out[p + _U2] = hi
    out[p + _U3] = hi >> _U32
    return bitbuf >> ((hi >> _U32) & _U63), pos + np.int64(hi >> _U62)


def _multi_step(multi, bitbuf, out, pos):
    """One multi-symbol lookup for ``out``'s item size (this body runs only without the JIT)."""
    if out.itemsize == 2:
        return _multi_step2(multi, bitbuf, out, pos)
    return _multi_step4(multi, bitbuf, out, pos)


def _multi_step_compiled(multi, bitbuf, out, pos):
    # chosen when compiling, so the lookup itself has no branch
    if out.dtype.bitwidth == 16:
        return lambda multi, bitbuf, out, pos: _multi_step2(multi, bitbuf, out, pos)
    return lambda multi, bitbuf, out, pos: _multi_step4(multi, bitbuf, out, pos)


def _bits_used(bitbuf):
    """Bits consumed since :func:`_multi_load`: how far the marker has fallen from bit 56
    (this body runs only without the JIT)."""
    return 57 - int(bitbuf).bit_length()


def _bits_used_compiled(bitbuf):
    return lambda bitbuf: np.int64(leading_zeros(bitbuf)) - 7


@with_numba
def _register_overloads() -> None:
    """The compiled bodies of the two helpers above, and the intrinsic one of them uses."""
    global leading_zeros
    from numba.cpython.unsafe.numbers import leading_zeros
    from numba.extending import overload

    overload(_multi_step)(_multi_step_compiled)
    overload(_bits_used)(_bits_used_compiled)


@kernel
def _multi_load(data, ptr, off):
    """The 56 stream bits from byte ``ptr``, bit ``off``, under a marker bit (``ptr + 8 <= len``)."""
    return ((load64(data, ptr) >> np.uint64(off)) & _LOW56) | _MARK56


@kernel
def _multi_advance(ptr, off, bitbuf):
    """The reader's byte and bit once the bits of ``bitbuf`` below its marker are consumed."""
    bit = off + _bits_used(bitbuf)
    return ptr + (bit >> 3), bit & 7


@kernel
def _multi1(data, table, maxlen, multi, begin, end, out, pos, stop, ptr, off):
    """Decode ``out[pos:stop]`` of a chunk from byte ``ptr``, bit ``off``; return its status."""
    mask = np.uint64((1 << maxlen) - 1)
    while True:
        rounds = _rounds(ptr, end, pos, stop, _MULTI_ROUND)
        if rounds == 0:
            break
        before = pos
        for _ in range(rounds):
            f = _multi_load(data, ptr, off)
            for _ in range(_MULTI_STEPS):
                f, pos = _multi_step(multi, f, out, pos)
            ptr, off = _multi_advance(ptr, off, f)
        if pos == before:  # on a pattern no code starts with
            break
    # _finish's state: the rest of byte ptr in the buffer (ptr < end here)
    bitbuf = np.uint64(0)
    bitcount = 0
    if off:
        bitbuf = np.uint64(data[ptr]) >> np.uint64(off)
        bitcount = 8 - off
        ptr += 1
    return _finish(data, table, mask, begin, ptr, end, bitbuf, bitcount, out, pos, stop)


@kernel
def _multi4(data, table, maxlen, multi, b0, e0, b1, e1, b2, e2, b3, e3, out, q0, n0, q1, n1, q2, n2, q3, n3):
    """Decode four Huffman chunks with interleaved multi-symbol readers; return their statuses.

    The rounds run while all four have room; each chunk then goes on alone.
    """
    s0, s1, s2, s3 = q0 + n0, q1 + n1, q2 + n2, q3 + n3
    p0, p1, p2, p3 = b0, b1, b2, b3
    o0 = o1 = o2 = o3 = 0
    while True:
        rounds = _rounds4(p0, e0, q0, s0, p1, e1, q1, s1, p2, e2, q2, s2, p3, e3, q3, s3, _MULTI_ROUND)
        if rounds == 0:
            break
        a0, a1, a2, a3 = q0, q1, q2, q3
        for _ in range(rounds):
            f0 = _multi_load(data, p0, o0)
            f1 = _multi_load(data, p1, o1)
            f2 = _multi_load(data, p2, o2)
            f3 = _multi_load(data, p3, o3)
            for _ in range(_MULTI_STEPS):
                f0, q0 = _multi_step(multi, f0, out, q0)
                f1, q1 = _multi_step(multi, f1, out, q1)
                f2, q2 = _multi_step(multi, f2, out, q2)
                f3, q3 = _multi_step(multi, f3, out, q3)
            p0, o0 = _multi_advance(p0, o0, f0)
            p1, o1 = _multi_advance(p1, o1, f1)
            p2, o2 = _multi_advance(p2, o2, f2)
            p3, o3 = _multi_advance(p3, o3, f3)
        if q0 == a0 or q1 == a1 or q2 == a2 or q3 == a3:  # one is on a pattern no code starts with
            break
    r0 = _multi1(data, table, maxlen, multi, b0, e0, out, q0, s0, p0, o0)
    r1 = _multi1(data, table, maxlen, multi, b1, e1, out, q1, s1, p1, o1)
    r2 = _multi1(data, table, maxlen, multi, b2, e2, out, q2, s2, p2, o2)
    r3 = _multi1(data, table, maxlen, multi, b3, e3, out, q3, s3, p3, o3)
    return r0, r1, r2, r3


@kernel
def decode_chunks(data, table, maxlen, multi, modes, begins, ends, firsts, counts, width, out, status):
    """Decode every chunk into ``out``; set ``status[c]`` for each Huffman chunk.

    Raw chunks (``modes[c] == 1``) are unpacked at ``width`` bits; their sizes and
    trailing bits are the caller's to check. Huffman chunks go four at a time through
    interleaved readers, through ``multi`` unless it is empty.
    """
    for c in range(modes.shape[0]):
        if modes[c] == 1:
            unpack(data[begins[c]:ends[c]], counts[c], width, out[firsts[c]:firsts[c] + counts[c]])
            status[c] = STATUS_OK
    decode_huffman_chunks(data, table, maxlen, multi, modes, begins, ends, firsts, counts, out, status)


@kernel
def decode_huffman_chunks(data, table, maxlen, multi, modes, begins, ends, firsts, counts, out, status):
    """Decode the Huffman chunks (``modes[c] == 0``) into ``out``, four at a time; skip raw ones.

    Each table entry's top 32 bits are written: the symbol (plain tables) or a
    codebook value's bits (the fused value tables). ``multi`` is empty or the
    :func:`build_multi_table` of ``table`` for ``out``'s item size (then ``maxlen <=
    MULTI_BITS``). The statuses and the symbols of every chunk that decodes are the
    same either way. ``status[c]`` is set per chunk.
    """
    pending = np.empty(4, np.int64)
    npending = 0
    many = multi.shape[0] != 0
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
            args = (begins[a], ends[a], begins[b], ends[b], begins[d], ends[d], begins[g], ends[g], out,
                    firsts[a], counts[a], firsts[b], counts[b], firsts[d], counts[d], firsts[g], counts[g])
            if many:
                ra, rb, rd, rg = _multi4(data, table, maxlen, multi, *args)
            else:
                ra, rb, rd, rg = _decode4(data, table, maxlen, *args)
            status[a] = ra
            status[b] = rb
            status[d] = rd
            status[g] = rg
            npending = 0
    for j in range(npending):
        c = pending[j]
        if many:
            status[c] = _multi1(data, table, maxlen, multi, begins[c], ends[c], out, firsts[c],
                                firsts[c] + counts[c], begins[c], 0)
        else:
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
