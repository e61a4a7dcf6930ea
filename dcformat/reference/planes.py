"""PLANES values (v1.2): spec/FORMAT.md, "PLANES values" (read :mod:`.decoder` first).

A PLANES record stores its float values losslessly, each value's bits cut into planes:
the exponent, then the sign and mantissa eight bits at a time from the top. The stored
units fall into blocks of ``Block_Size``; every plane of every block is a stream of its
own. This module holds what the record adds to "Records" (the float DTypes R40 allows,
which :mod:`.decoder` checks with GROUPED's R34; Block_Size, R41-R42; the number of its
segments, R43) and to "Decoding a record" (the planes of each block joined back into
values). :mod:`.decoder` calls it where a PLANES record differs
from a RAW one; the gaps and the placement are shared.

The float layouts and the plane widths are written out below from the spec's tables,
not taken from dcformat, and the bits are joined with Python ints, one value at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..format.constants import MAX_PLANE_BLOCK, SEGMENT_REF_SIZE, DType, Layout
from ..errors import InvalidHeader, LimitExceeded, TruncatedError
from .primitives import ByteReader, ceil_div
from .streams import decode_stream

#: "The float layout": DType -> (W element bits, E exponent bits, M mantissa bits); the
#: sign is the top bit, so W = 1 + E + M. These are the DTypes PLANES values may have (R40,
#: checked in :func:`.decoder.check_value_kind_record`).
FLOAT_LAYOUTS = {
    DType.F16: (16, 5, 10),
    DType.BF16: (16, 8, 7),
    DType.F32: (32, 8, 23),
    DType.F64: (64, 11, 52),
    DType.F8_E4M3: (8, 4, 3),
    DType.F8_E5M2: (8, 5, 2),
}


@dataclass(frozen=True)
class PlanesFields:
    """A PLANES record's value parameter and what the spec derives from it."""

    block_size: int
    blocks: int  # B = ceil_div(S, Block_Size)


def plane_widths(dtype: DType) -> list[int]:
    """"plane 0, exponent, holds the E exponent bits; then t = (sign << M) | mantissa, a
    (W - E)-bit number, cut into fields of 8 bits from the top, the last field holding
    the remaining (W - E) mod 8 bits if nonzero" (BF16: 8 8; F16: 5 8 3)."""
    total, exponent_bits, _ = FLOAT_LAYOUTS[dtype]
    rest = total - exponent_bits
    widths = [exponent_bits] + [8] * (rest // 8)
    if rest % 8:
        widths.append(rest % 8)
    return widths


def plane_names(dtype: DType) -> list[str]:
    """"exponent", "mantissa1", "mantissa2", ... (the sign is the top bit of mantissa1)."""
    return ["exponent"] + [f"mantissa{k}" for k in range(1, len(plane_widths(dtype)))]


# === Records ===========================================================================


def parse_block_size(reader: ByteReader, label: str) -> int:
    """"Block_Size (u64): from 1 to 2^48: 0 is InvalidHeader (R41), above 2^48
    LimitExceeded (R42)", checked as soon as it is read."""
    block_size = reader.read_u64(f"{label} Block_Size")
    if block_size < 1:
        raise InvalidHeader(f"{label} Block_Size", "must be at least 1")
    if block_size > MAX_PLANE_BLOCK:
        raise LimitExceeded(f"{label} Block_Size", block_size, MAX_PLANE_BLOCK)
    return block_size


def plane_segments(reader: ByteReader, label: str, layout: Layout, dtype: DType, stored: int,
                   block_size: int) -> tuple[PlanesFields, list[tuple[str, None]]]:
    """The record's segments after its gaps: "for each block b in order, for each plane in
    order, one stream segment", named "exponent[b]", "mantissa1[b]", ...

    R43: "Before reading any of the record's Segment_Refs, a reader checks that all of
    them, 21 bytes each, fit in the rest of the header, else TruncatedError" (so the list
    below is never longer than what the header holds)."""
    blocks = ceil_div(stored, block_size)  # "B = ceil_div(S, Block_Size) blocks (0 when S = 0)"
    names = plane_names(dtype)
    count = (1 if layout == Layout.SPARSE else 0) + blocks * len(names)
    if count * SEGMENT_REF_SIZE > reader.remaining:
        raise TruncatedError(f"header: {label} Segment_Refs ({count} segments)", count * SEGMENT_REF_SIZE,
                             reader.remaining)
    roles = [(f"{name}[{b}]", None) for b in range(blocks) for name in names]
    return PlanesFields(block_size, blocks), roles


# === Decoding a record =================================================================


def read_plane_values(payloads: dict[str, bytes], record) -> list[bytes]:
    """The values of the stored units of ``record`` (a :class:`.decoder.Record`), as the
    DType's little-endian bytes: block by block, each block's planes in order (the
    stream rules of each, R22-R29), then each unit's bits joined from its planes."""
    widths = plane_widths(record.dtype)
    names = plane_names(record.dtype)
    block_size = record.planes.block_size
    values: list[bytes] = []
    for b in range(record.planes.blocks):
        # "block b holds stored units [b*Block_Size, min(S, (b+1)*Block_Size))"
        count = min(record.stored, (b + 1) * block_size) - b * block_size
        planes = []
        for name, width in zip(names, widths):
            role = f"{name}[{b}]"
            # "the block's n_b symbols of that plane, alphabet 2^width": no symbol can be
            # out of range (a Huffman code stands for a symbol below Table_Size <= A, a
            # packed symbol has exactly width bits).
            planes.append(decode_stream(payloads[role], record.segment(role).codec, count, 2 ** width,
                                        gap_stream=False, name=f"{record.label} {role}"))
        for symbols in zip(*planes):
            values.append(join_planes(record.dtype, symbols, widths))
    return values


def join_planes(dtype: DType, symbols: tuple[int, ...], widths: list[int]) -> bytes:
    """One value from its planes' symbols: "t is the concatenation of the mantissa planes'
    symbols, top first; x = ((t >> M) << (W - 1)) | (exponent << M) | (t & (2^M - 1))".
    Every bit pattern is a value (NaN payloads, -0.0, subnormals, infinities)."""
    total, _, mantissa_bits = FLOAT_LAYOUTS[dtype]
    exponent = symbols[0]
    t = 0
    for symbol, width in zip(symbols[1:], widths[1:]):
        t = (t << width) | symbol
    x = ((t >> mantissa_bits) << (total - 1)) | (exponent << mantissa_bits) | (t & (2 ** mantissa_bits - 1))
    return x.to_bytes(total // 8, "little")
