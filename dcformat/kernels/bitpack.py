"""Fixed-width bit packing of uint16 symbols, least significant bit first.

Symbol ``j`` of width ``w`` occupies bits ``[j*w, (j+1)*w)`` of a little-endian bit
stream (spec/FORMAT.md, "Packed streams"). Callers check sizes first: ``pack`` needs
``len(out) == ceil(n*w/8)`` and ``unpack`` needs ``len(data) >= ceil(n*w/8)`` and
``len(out) >= n``. Widths 1, 2, 4, 8 and 16 take constant-shift paths; other widths
go through a 64-bit accumulator (pack) or four symbols per 8-byte load (unpack).
"""

from __future__ import annotations

import numpy as np

from .config import kernel


@kernel
def pack(symbols, width, out):
    """Write ``symbols`` (uint16) at ``width`` bits each into ``out`` (uint8), zero-padded."""
    n = symbols.shape[0]
    nbytes = out.shape[0]
    if width == 8:
        for i in range(n):
            out[i] = symbols[i]
    elif width == 16:
        for i in range(n):
            s = symbols[i]
            out[2 * i] = s & 0xFF
            out[2 * i + 1] = s >> 8
    elif width == 1 or width == 2 or width == 4:
        per = 8 // width
        full = n // per
        for b in range(full):
            acc = 0
            base = b * per
            for k in range(per):
                acc |= np.int64(symbols[base + k]) << (k * width)
            out[b] = acc
        if full < nbytes:
            acc = 0
            base = full * per
            for k in range(n - base):
                acc |= np.int64(symbols[base + k]) << (k * width)
            out[full] = acc
    else:
        acc = np.uint64(0)
        nbits = 0
        p = 0
        for i in range(n):
            acc |= np.uint64(symbols[i]) << np.uint64(nbits)
            nbits += width
            if nbits >= 32:
                out[p] = acc & np.uint64(0xFF)
                out[p + 1] = (acc >> np.uint64(8)) & np.uint64(0xFF)
                out[p + 2] = (acc >> np.uint64(16)) & np.uint64(0xFF)
                out[p + 3] = (acc >> np.uint64(24)) & np.uint64(0xFF)
                p += 4
                acc >>= np.uint64(32)
                nbits -= 32
        while p < nbytes:
            out[p] = acc & np.uint64(0xFF)
            acc >>= np.uint64(8)
            p += 1


@kernel
def unpack(data, count, width, out):
    """Read ``count`` symbols of ``width`` bits from ``data`` (uint8) into ``out`` (uint16)."""
    if width == 8:
        for i in range(count):
            out[i] = data[i]
    elif width == 16:
        for i in range(count):
            out[i] = np.uint16(data[2 * i]) | (np.uint16(data[2 * i + 1]) << np.uint16(8))
    elif width == 4:
        half = count // 2
        for b in range(half):
            v = data[b]
            out[2 * b] = v & 15
            out[2 * b + 1] = v >> 4
        if count & 1:
            out[count - 1] = data[half] & 15
    elif width == 2:
        full = count // 4
        for b in range(full):
            v = data[b]
            out[4 * b] = v & 3
            out[4 * b + 1] = (v >> 2) & 3
            out[4 * b + 2] = (v >> 4) & 3
            out[4 * b + 3] = v >> 6
        for i in range(4 * full, count):
            out[i] = (data[i >> 2] >> (2 * (i & 3))) & 3
    elif width == 1:
        full = count // 8
        for b in range(full):
            v = data[b]
            for k in range(8):
                out[8 * b + k] = (v >> k) & 1
        for i in range(8 * full, count):
            out[i] = (data[i >> 3] >> (i & 7)) & 1
    else:
        _unpack_generic(data, count, width, out)


@kernel
def _unpack_generic(data, count, width, out):
    """Any width up to 15: four symbols per little-endian 8-byte load (4w + 4 <= 64 bits)."""
    mask = np.uint64((1 << width) - 1)
    w = np.uint64(width)
    nbytes = (count * width + 7) >> 3
    # groups of four whose 8-byte window lies inside the data
    groups = 0
    if nbytes >= 8:
        groups = min(count // 4, ((nbytes - 8) * 8) // (4 * width) + 1)
    for g in range(groups):
        bit = g * 4 * width
        v = load64(data, bit >> 3) >> np.uint64(bit & 7)
        i = np.uint64(4 * g)
        out[i] = v & mask
        out[i + np.uint64(1)] = (v >> w) & mask
        out[i + np.uint64(2)] = (v >> (w + w)) & mask
        out[i + np.uint64(3)] = (v >> (w + w + w)) & mask
    for i in range(4 * groups, count):
        bit = i * width
        b = bit >> 3
        v = np.int64(data[b])
        if b + 1 < nbytes:
            v |= np.int64(data[b + 1]) << 8
        if b + 2 < nbytes:
            v |= np.int64(data[b + 2]) << 16
        out[i] = (v >> (bit & 7)) & np.int64(mask)


@kernel
def load64(data, p):
    """Little-endian u64 from ``data[p : p + 8]`` (the caller checks ``p + 8 <= len``).

    Unsigned indices spare Numba's negative-index fix-ups, so LLVM fuses the eight
    byte loads into one.
    """
    u = np.uint64(p)
    return (np.uint64(data[u]) | (np.uint64(data[u + np.uint64(1)]) << np.uint64(8))
            | (np.uint64(data[u + np.uint64(2)]) << np.uint64(16))
            | (np.uint64(data[u + np.uint64(3)]) << np.uint64(24))
            | (np.uint64(data[u + np.uint64(4)]) << np.uint64(32))
            | (np.uint64(data[u + np.uint64(5)]) << np.uint64(40))
            | (np.uint64(data[u + np.uint64(6)]) << np.uint64(48))
            | (np.uint64(data[u + np.uint64(7)]) << np.uint64(56)))
