"""GROUPED values (v1.1): spec/FORMAT.md, "GROUPED values" (read :mod:`.decoder` first).

A GROUPED record's units share one codebook; each group of ``Group_Size`` consecutive
units (in C order, the last group possibly shorter) scales it, and optionally shifts it,
by entries of two small tables that per-group code streams select. This module holds
what the record adds to "Records" (R35-R37: its fields and its segments; the DTypes R34
allows, which :mod:`.decoder` checks with PLANES' R40) and to
"Decoding a record" (R38, R39, and the value of a unit, computed bit-exactly in float32
and rounded to the record's DType). Its codebook may be AFFINE (v1.3), its entries then
computed by :mod:`.affine`. :mod:`.decoder` calls it where a GROUPED record
differs from a CODEBOOK one; everything else (gaps, codes, placement) is shared.

The arithmetic is numpy float32 scalars (IEEE binary32, round to nearest even, one
operation at a time: no fused multiply-add); the rounding to F16 and BF16 is written out
below from the float32 bits, not left to numpy's casts.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

from ..format.constants import (
    MAX_CODEBOOK_SIZE,
    MAX_ELEMENTS,
    MAX_GROUP_TABLE_SIZE,
    DType,
    Layout,
    SegmentCodec,
)
from ..errors import CodeOutOfRange, InvalidHeader, InvalidValue, LimitExceeded
from .affine import affine_entries
from .primitives import ByteReader, ceil_div
from .streams import decode_stream

#: "DType must be F32, F16 or BF16" (R34, checked in :func:`.decoder.check_value_kind_record`).
GROUPED_DTYPES = (DType.F32, DType.F16, DType.BF16)
#: The table segments, in segment order, before a SPARSE record's gaps.
TABLE_ROLES = ("codebook", "scales", "scale_codes", "offsets", "offset_codes")


@dataclass(frozen=True)
class GroupedFields:
    """A GROUPED record's value parameters after Codebook_Size."""

    group_size: int
    scale_count: int
    offset_count: int

    def groups(self, units: int) -> int:
        """"G = ceil_div(U, Group_Size)" (0 when the tensor has no elements)."""
        return ceil_div(units, self.group_size)


# === Records ===========================================================================


def parse_grouped_parameters(reader: ByteReader, label: str, layout: Layout) -> tuple[int, GroupedFields]:
    """Codebook_Size, Group_Size, Scale_Count, Offset_Count, each checked when read
    (R35 InvalidHeader, R36 LimitExceeded)."""
    codebook_size = read_table_size(reader, label, "Codebook_Size", MAX_CODEBOOK_SIZE, least=1)
    group_size = reader.read_u64(f"{label} Group_Size")
    # "Group_Size (u64): from 1 to 2^48 else InvalidHeader/LimitExceeded"
    if group_size < 1:
        raise InvalidHeader(f"{label} Group_Size", "must be at least 1")
    if group_size > MAX_ELEMENTS:
        raise LimitExceeded(f"{label} Group_Size", group_size, MAX_ELEMENTS)
    scale_count = read_table_size(reader, label, "Scale_Count", MAX_GROUP_TABLE_SIZE, least=1)
    offset_count = read_table_size(reader, label, "Offset_Count", MAX_GROUP_TABLE_SIZE, least=0)
    # "A SPARSE record must have Offset_Count 0 else InvalidHeader."
    if offset_count and layout == Layout.SPARSE:
        raise InvalidHeader(f"{label} Offset_Count", "a SPARSE record has no offsets")
    return codebook_size, GroupedFields(group_size, scale_count, offset_count)


def read_table_size(reader: ByteReader, label: str, field: str, limit: int, least: int) -> int:
    """A u32 table size: at most ``limit`` (LimitExceeded), at least ``least`` (InvalidHeader)."""
    size = reader.read_u32(f"{label} {field}")
    if size > limit:
        raise LimitExceeded(f"{label} {field}", size, limit)
    if size < least:
        raise InvalidHeader(f"{label} {field}", f"must be at least {least}")
    return size


def table_segments(codebook_size: int, fields: GroupedFields) -> list[tuple[str, int | None]]:
    """The table segments and the Length each must have (None: a stream), R37: "codebook
    4 x C; scales 4 x Scale_Count; offsets 4 x Offset_Count; offset_codes 0 when
    Offset_Count is 0". The tables are float32 whatever the record's DType. (An AFFINE
    codebook has 8 bytes instead, R44: see :func:`.decoder.parse_segment_ref`.)"""
    return [("codebook", 4 * codebook_size), ("scales", 4 * fields.scale_count), ("scale_codes", None),
            ("offsets", 4 * fields.offset_count), ("offset_codes", None if fields.offset_count else 0)]


# === Decoding a record =================================================================


@dataclass(frozen=True)
class GroupTables:
    """The decoded tables: the codebook, and each group's scale and offset (None: none)."""

    codebook: list[np.float32]
    group_scales: list[np.float32]
    group_offsets: list[np.float32] | None


def read_group_tables(payloads: dict[str, bytes], record) -> GroupTables:
    """The table segments' contents of ``record`` (a :class:`.decoder.Record`), in segment
    order: codebook and scales (R38), scale codes (stream rules, then R39), offsets
    (R38), offset codes (stream rules, then R39)."""
    fields = record.grouped
    groups = fields.groups(record.units)
    codebook = read_codebook_table(payloads["codebook"], record)
    scales = read_float32_table(payloads["scales"], record.name, "scales")
    # "every scale must be greater than 0 else InvalidValue"
    if not all(scale > 0 for scale in scales):
        raise InvalidValue(record.name, "GROUPED scales must be positive")
    scale_codes = read_group_codes(payloads, record, "scale_codes", groups, fields.scale_count)
    group_offsets = None
    # "When Offset_Count is 0 there are no offsets" (and both segments are empty).
    if fields.offset_count:
        offsets = read_float32_table(payloads["offsets"], record.name, "offsets")
        offset_codes = read_group_codes(payloads, record, "offset_codes", groups, fields.offset_count)
        group_offsets = [offsets[code] for code in offset_codes]
    return GroupTables(codebook, [scales[code] for code in scale_codes], group_offsets)


def read_codebook_table(payload: bytes, record) -> list[np.float32]:
    """The shared codebook: stored (BYTES), or the entries of an AFFINE codebook (R45 first:
    "checked where the codebook's contents are ..., before R32 or R38 would be"); "A GROUPED
    record's codebook is the e_i themselves, which R38 requires to be finite"."""
    if record.segment("codebook").codec == SegmentCodec.AFFINE:
        codebook = affine_entries(payload, record.name, record.codebook_size)
    else:
        codebook = float32_values(payload)
    check_finite(codebook, record.name, "codebook")
    return codebook


def read_float32_table(payload: bytes, name: str, role: str) -> list[np.float32]:
    """A table segment: little-endian float32 values, each finite else InvalidValue (R38)."""
    table = float32_values(payload)
    check_finite(table, name, role)
    return table


def float32_values(payload: bytes) -> list[np.float32]:
    return [np.float32(value) for (value,) in struct.iter_unpack("<f", payload)]


def check_finite(table: list[np.float32], name: str, role: str) -> None:
    """R38: "every codebook value must be finite, every scale finite ..., every offset
    finite, else InvalidValue (every entry, used or not)"."""
    for i, value in enumerate(table):
        if not math.isfinite(value):
            raise InvalidValue(name, f"GROUPED {role} entry {i} is {value}, must be finite")


def read_group_codes(payloads: dict[str, bytes], record, role: str, groups: int, table_size: int) -> list[int]:
    """A per-group code stream: "G symbols, alphabet Scale_Count" (or Offset_Count);
    "a code not below its table's size is CodeOutOfRange" (R39)."""
    name = f"{record.label} {role}"
    codes = decode_stream(payloads[role], record.segment(role).codec, groups, table_size, gap_stream=False,
                          name=name)
    for code in codes:
        if code >= table_size:
            raise CodeOutOfRange(name, code, table_size)
    return codes


def unit_value(tables: GroupTables, code: int, group: int, dtype: DType) -> bytes:
    """The value of a stored unit of group ``group`` holding ``code``, as the DType's
    little-endian bytes: "v = f32(codebook[code] x scale_g), then, when Offset_Count >
    0, v = f32(v + offset_g): two separately rounded binary32 operations; then v rounded
    to the DType"."""
    with np.errstate(over="ignore"):  # "a result beyond the binary32 range is an infinity"
        value = tables.codebook[code] * tables.group_scales[group]
        if tables.group_offsets is not None:
            value = value + tables.group_offsets[group]
    return float32_as_dtype(value, dtype)


def float32_as_dtype(value: np.float32, dtype: DType) -> bytes:
    """A float32 ``value`` "rounded to the DType: F32 as is; F16 (binary16) and BF16 to
    nearest, ties to even, a magnitude that rounds past the largest finite value becoming
    an infinity of its sign", as the DType's little-endian bytes (GROUPED values, and the
    entries of a CODEBOOK record's AFFINE codebook)."""
    assert isinstance(value, np.float32)  # float32 operands give a float32 result
    bits = int(np.array(value, dtype=np.float32).view(np.uint32))
    if dtype == DType.F32:
        return struct.pack("<I", bits)
    if dtype == DType.F16:
        return struct.pack("<H", round_float32_bits(bits, exponent_bits=5, fraction_bits=10))
    return struct.pack("<H", round_float32_bits(bits, exponent_bits=8, fraction_bits=7))


def round_float32_bits(bits: int, *, exponent_bits: int, fraction_bits: int) -> int:
    """The binary32 value ``bits`` rounded to a narrower IEEE-style binary format (F16:
    5 and 10 bits; BF16: 8 and 7), "round to nearest, ties to even", as that format's
    bits. Magnitudes that round to or past 2^(bias+1) become infinity; NaN cannot arise
    (the tables and an AFFINE codebook's Base and Step are finite)."""
    sign = bits >> 31
    biased = (bits >> 23) & 0xFF
    fraction = bits & 0x7FFFFF
    infinity = ((1 << exponent_bits) - 1) << fraction_bits
    if biased == 0xFF:  # an infinity (a product or sum past the binary32 range)
        return sign << (exponent_bits + fraction_bits) | infinity
    # The binary32 value is exactly significand x 2^exponent.
    significand = fraction | (1 << 23) if biased else fraction
    exponent = max(biased, 1) - 127 - 23
    if significand == 0:
        return sign << (exponent_bits + fraction_bits)
    bias = (1 << (exponent_bits - 1)) - 1
    binade = significand.bit_length() - 1 + exponent  # floor(log2 |v|)
    # The target's spacing at this magnitude is 2^quantum (subnormals: the smallest).
    quantum = max(binade, 1 - bias) - fraction_bits
    shift = quantum - exponent
    if shift <= 0:  # exactly representable
        steps = significand << -shift
    else:  # |v| / 2^quantum rounded to the nearest integer, ties to even
        steps, remainder = significand >> shift, significand & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        if remainder > half or (remainder == half and steps & 1):
            steps += 1
    # |v| ~ steps x 2^quantum. A normal number's leading bit is implicit; a carry out of
    # the fraction moves into the exponent field, as in the format itself.
    if binade < 1 - bias:
        magnitude = steps
    else:
        magnitude = ((binade + bias) << fraction_bits) + steps - (1 << fraction_bits)
    return sign << (exponent_bits + fraction_bits) | min(magnitude, infinity)
