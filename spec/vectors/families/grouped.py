"""GROUPED values (v1.1, Required_Features bit 0): group sizes, offsets, rounding to
F32/F16/BF16 (ties, overflow); the record's rules R34-R39 and their order."""

from __future__ import annotations

import numpy as np

from dcformat import AffineCodebook, Dense, GroupedValues, Sparse
from dcformat.format import constants as C
from dcformat.streams import HuffmanCodec

from .common import HUFFMAN, PACKED, Rand, build, enc, from_bits, u16, write_file
from .edits import as_bank, edited, packed_symbol, patched, preamble
from .huff import huffman_modes
from .model import parse, serialize
from .registry import invalid, order, valid


def f32(values) -> np.ndarray:
    return np.asarray(values, "<f4")


def grouped(group_size, codebook, codes, scales, scale_codes, offsets=None, offset_codes=None,
            codec=PACKED, table_codec=PACKED) -> GroupedValues:
    book = codebook if isinstance(codebook, AffineCodebook) else f32(codebook)  # AFFINE: v1.3, families/affine.py
    return GroupedValues(group_size, book, u16(codes), f32(scales), u16(scale_codes),
                         None if offsets is None else f32(offsets),
                         None if offset_codes is None else u16(offset_codes), codec, table_codec)


def _check_grouped_preamble(data: bytes) -> None:
    m = parse(data)
    assert (m.minor, m.required) == (1, C.FEATURE_GROUPED), "a GROUPED file is a v1.1 file with bit 0"


# === valid ============================================================================


@valid("grouped-dense-f32", "DENSE GROUPED F32 tensors, PACKED streams: one group per row with offsets; "
       "23 units in groups of 5 (the last of 3) without offsets; Group_Size 1 (a scale and an offset per "
       "unit); Group_Size = U (one group); a rank-0 tensor; unused table entries.")
def _grouped_dense_f32():
    r = Rand(101)
    tensors = {
        "rows_offsets": enc("F32", (6, 10), Dense(), grouped(
            10, [-1.5, -0.5, 0.0, 0.5, 1.5, 2.5, 7.0], r.ints(60, 7), [0.25, 0.125, 3.0], r.ints(6, 3),
            [-1.0, 0.0, 0.75, 100.0], r.ints(6, 4))),
        "short_last_group": enc("F32", (23,), Dense(), grouped(
            5, [1.0, -2.0, 3.0], r.ints(23, 3), [0.5, 2.0, 1e-3, 7.0, 1e30], [4, 0, 1, 2, 3])),
        "group_size_1": enc("F32", (7,), Dense(), grouped(
            1, [1.0, 2.0], r.ints(7, 2), [1.0, 0.5, 4.0], r.ints(7, 3), [0.0, -3.0], r.ints(7, 2))),
        "one_group": enc("F32", (4, 5), Dense(), grouped(
            20, np.arange(16) - 8.0, r.ints(20, 16), [0.0625], [0], [0.5], [0])),
        "scalar": enc("F32", (), Dense(), grouped(1, [-4.0, 9.0], [1], [3.0, 0.5], [1])),
    }
    data, expected, metadata = build(tensors)
    _check_grouped_preamble(data)
    return data, expected, metadata


@valid("grouped-f16-bf16", "DENSE GROUPED F16 and BF16 tensors, with and without offsets, values "
       "computed in float32 and rounded to the DType.")
def _grouped_f16_bf16():
    r = Rand(102)
    book = np.linspace(-1, 1, 9)
    tensors = {
        "f16_offsets": enc("F16", (8, 12), Dense(), grouped(
            12, book, r.ints(96, 9), [0.1, 0.3, 1.7], r.ints(8, 3), [0.01, -0.2], r.ints(8, 2))),
        "f16_plain": enc("F16", (50,), Dense(), grouped(16, book, r.ints(50, 9), [3.3, 0.001], r.ints(4, 2))),
        "bf16_offsets": enc("BF16", (3, 7, 4), Dense(), grouped(
            28, book, r.ints(84, 9), [0.7, 1.3e5], r.ints(3, 2), [-0.3, 1e-3, 5.0], r.ints(3, 3))),
        "bf16_plain": enc("BF16", (33,), Dense(), grouped(8, book, r.ints(33, 9), [1.1], [0] * 5)),
    }
    return build(tensors)


@valid("grouped-sparse", "SPARSE GROUPED tensors (no offsets): a unit's group is that of its position, "
       "unstored units are +0.0; PACKED and HUFFMAN gaps, groups of 7 over 40 units (the last of 5), "
       "a -0.0 codebook entry (stored -0.0), F16 and BF16, and Entry_Count 0.")
def _grouped_sparse():
    gaps = u16([0, 3, 6, 0, 9, 2, 1, 4, 6])  # units 0 4 11 12 22 25 27 32 39 (the last)
    assert int((gaps.astype(int) + 1).sum()) == 40
    book = [-0.0, 1.0, -2.5, 0.125]
    codes = [0, 1, 2, 3, 1, 2, 3, 0, 2]
    tensors = {
        "f32_packed_gaps": enc("F32", (40,), Sparse(4, gaps, PACKED), grouped(
            7, book, codes, [1.0, 0.5, 3.0], [0, 1, 2, 0, 1, 2])),
        "f16_huffman_gaps": enc("F16", (5, 8), Sparse(4, gaps, HUFFMAN), grouped(
            7, book, codes, [0.3, 7.0], [1, 0, 1, 1, 0, 0], codec=HUFFMAN, table_codec=HUFFMAN)),
        "bf16": enc("BF16", (40,), Sparse(4, gaps, PACKED), grouped(40, book, codes, [0.01], [0])),
        "empty": enc("F32", (3, 4), Sparse(2, u16([]), PACKED), grouped(5, [1.0], [], [2.0], [0, 0, 0])),
    }
    return build(tensors)


@valid("grouped-huffman-tables", "GROUPED tensors whose scale and offset codes are HUFFMAN streams as "
       "the writer makes them (one Huffman-coded chunk; several chunks of 16 groups), codes HUFFMAN too.")
def _grouped_huffman_tables():
    r = Rand(103)
    scales = [2.0 ** -k for k in range(12)]
    offsets = [k / 8 - 1 for k in range(16)]
    tensors = {
        "one_chunk": enc("F32", (300, 4), Dense(), grouped(
            4, np.arange(32) / 4 - 4, r.skewed(1200, 32), scales, r.skewed(300, 12), offsets, r.skewed(300, 16),
            codec=HUFFMAN, table_codec=HUFFMAN)),
        "many_chunks": enc("BF16", (100, 3), Dense(), grouped(
            3, [1.0, 2.0, 3.0], r.skewed(300, 3), scales, r.skewed(100, 12), offsets, r.skewed(100, 16),
            codec=HUFFMAN, table_codec=HuffmanCodec(chunk_symbols=16, chunk_multiple=1))),
    }
    data, expected, metadata = build(tensors)
    assert [c[0] for c in huffman_modes(data, "tensor", "one_chunk", "scale_codes").chunks] == [0]
    assert len(huffman_modes(data, "tensor", "many_chunks", "offset_codes").chunks) == 7
    return data, expected, metadata


@valid("grouped-zero-size", "GROUPED tensors without elements: G = 0 groups, empty PACKED and HUFFMAN "
       "scale and offset code streams, tables present all the same.")
def _grouped_zero_size():
    tensors = {
        "packed": enc("F32", (0, 3), Dense(), grouped(2, [1.0, 2.0], [], [1.5], [], [0.5], [])),
        "huffman": enc("F16", (4, 0), Dense(), grouped(1, [1.0], [], [2.0, 3.0], [], [1.0], [],
                                                       codec=HUFFMAN, table_codec=HUFFMAN)),
    }
    return build(tensors)


@valid("grouped-f32-arithmetic", "F32 GROUPED values pinning the arithmetic: a product rounded to "
       "nearest even; the product and the sum rounded separately, never fused ((1+2^-23)^2 - (1+2^-22) "
       "is 0, a fused multiply-add gives 2^-46); products past the float32 range are +inf and -inf; "
       "-0.0 x scale is -0.0, and -0.0 + 0.0 is +0.0.")
def _grouped_f32_arithmetic():
    e23 = 1 + 2.0 ** -23
    tensors = {
        "product": enc("F32", (4,), Dense(), grouped(4, [e23, 3.0, 1.0 / 3, -0.0], [0, 1, 2, 3], [e23], [0])),
        "no_fma": enc("F32", (2,), Dense(), grouped(1, [e23], [0, 0], [e23, 1.0], [0, 1],
                                                     [-(1 + 2.0 ** -22), 0.0], [0, 1])),
        "overflow": enc("F32", (3,), Dense(), grouped(3, [2.0 ** 100, -(2.0 ** 100), 3e38], [0, 1, 2],
                                                      [2.0 ** 100], [0])),
        "negative_zero": enc("F32", (2,), Dense(), grouped(1, [-0.0], [0, 0], [5.0], [0, 0], [0.0, -0.0], [0, 1])),
    }
    data, expected, metadata = build(tensors)
    assert expected["no_fma"][0] == 0 and np.isinf(expected["overflow"][:2]).all()
    assert np.signbit(expected["negative_zero"]).tolist() == [False, True]
    return data, expected, metadata


@valid("grouped-f16-rounding", "F16 GROUPED values whose float32 results lie exactly halfway between two "
       "F16 values (ties to even, up and down, negative, subnormal), just past halfway, and at the top: "
       "65519 rounds to 65504, 65520 (a tie) to +inf, a float32 +inf stays +inf.")
def _grouped_f16_rounding():
    half = 2.0 ** -11  # half an F16 step at 1.0
    book = [2049, 2051, -2049, 2049.5, 2.0 ** -14, 3 * 2.0 ** -14, 65519 * 2048, 65520 * 2048, 2.0 ** 120]
    codes = list(range(len(book)))
    tensors = {
        "ties": enc("F16", (9,), Dense(), grouped(9, book, codes, [half], [0])),
        "tie_after_offset": enc("F16", (2,), Dense(), grouped(2, [1.0, 3.0], [0, 1], [half], [0], [1.0], [0])),
    }
    data, expected, metadata = build(tensors)
    ties = expected["ties"].astype(np.float32)
    assert ties[:3].tolist() == [1.0, 1 + 2.0 ** -9, -1.0] and ties[3] == np.float32(np.float16(1 + 2.0 ** -10))
    assert ties[4] == 0 and ties[5] == 2.0 ** -23 and ties[6] == 65504 and np.isinf(ties[7:]).all()
    return data, expected, metadata


@valid("grouped-bf16-rounding", "BF16 GROUPED values whose float32 results lie exactly halfway between "
       "two BF16 values (ties to even, up and down, negative, float32-subnormal), the largest float32 "
       "that rounds to the largest BF16, the tie above it (rounds to +inf), and float32 overflow.")
def _grouped_bf16_rounding():
    book = from_bits("<f4", [0x3F808000, 0x3F818000, 0xBF808000, 0x3F808001, 0x00008000, 0x00018000,
                             0x7F7F7FFF, 0x7F7F8000, 0x7F000000])
    tensors = {"ties": enc("BF16", (9,), Dense(), grouped(1, book, range(9), [1.0, 4.0], [0] * 8 + [1]))}
    data, expected, metadata = build(tensors)
    bits = expected["ties"].view(np.uint16).tolist()
    assert bits == [0x3F80, 0x3F82, 0xBF80, 0x3F81, 0x0000, 0x0002, 0x7F7F, 0x7F80, 0x7F80], [hex(b) for b in bits]
    return data, expected, metadata


@valid("grouped-feature-bit-without-grouped", "Version_Minor 1 and Required_Features bit 0 set, but no "
       "record is GROUPED (writers set the bit only when one is; readers accept it).")
def _grouped_bit_unused():
    data, expected, metadata = build({"a": np.arange(4, dtype="<f4")})
    m = parse(data)
    m.minor, m.required = 1, C.FEATURE_GROUPED
    return serialize(m)[0], expected, metadata


# === invalid ==========================================================================


def base_grouped() -> bytes:
    """d: F16 DENSE GROUPED (4, 6), Group_Size 6 (G = 4), C = 5, Scale_Count 3, Offset_Count 3,
    all PACKED; s: F32 SPARSE GROUPED (12,), Gap_Bits 3, gaps 0 4 2, Group_Size 4, C = 3, Scale_Count 3."""
    return write_file({
        "d": enc("F16", (4, 6), Dense(), grouped(
            6, [-1.0, -0.5, 0.0, 0.5, 1.0], [k % 5 for k in range(24)], [1.0, 2.0, 0.5], [0, 1, 2, 0],
            [0.0, 0.25, -0.25], [2, 1, 0, 0])),
        "s": enc("F32", (12,), Sparse(3, u16([0, 4, 2]), PACKED), grouped(4, [1.0, 2.0, 3.0], [0, 1, 2], [1.0, 0.5, 2.0],
                                                                          [0, 1, 2])),
    })


def _field(name: str, field: str, fmt: str, value):
    return patched(base_grouped, lambda p: p.set("tensor", name, field, fmt, value))


def _length(name: str, role: str, value: int):
    return patched(base_grouped, lambda p: p.put(p.segment("tensor", name, role)[0] + 9, "Q", value))


def _entry(name: str, role: str, index: int, bits: int):
    """Entry ``index`` of a table segment set to the float32 of ``bits``."""
    return lambda p: p.put(p.segment("tensor", name, role)[1] + 4 * index, "I", bits)


# R34: where GROUPED values may be
invalid("grouped-without-feature-bit", "R34", "InvalidHeader",
        "A GROUPED record in a file whose Required_Features has bit 0 clear (Version_Minor 1).",
        preamble("required", 0, base=base_grouped))
invalid("grouped-dtype-f64", "R34", "InvalidHeader", "A GROUPED record of DType F64.",
        _field("s", "dtype", "B", C.DType.F64))
invalid("grouped-dtype-i8", "R34", "InvalidHeader", "A GROUPED record of DType I8.",
        _field("d", "dtype", "B", C.DType.I8))
invalid("grouped-bank", "R34", "InvalidHeader", "A bank record with GROUPED values.",
        edited(base_grouped, as_bank("d")))
# R35: GROUPED fields
invalid("grouped-codebook-size-0", "R35", "InvalidHeader", "A GROUPED record with Codebook_Size 0.",
        _field("d", "codebook_size", "I", 0))
invalid("grouped-group-size-0", "R35", "InvalidHeader", "A GROUPED record with Group_Size 0.",
        _field("d", "group_size", "Q", 0))
invalid("grouped-scale-count-0", "R35", "InvalidHeader", "A GROUPED record with Scale_Count 0.",
        _field("s", "scale_count", "I", 0))
invalid("grouped-sparse-with-offsets", "R35", "InvalidHeader",
        "A SPARSE GROUPED record with Offset_Count 1 (its offsets segment still empty).",
        _field("s", "offset_count", "I", 1))
# R36: GROUPED limits
invalid("grouped-codebook-size-65537", "R36", "LimitExceeded", "A GROUPED record with Codebook_Size 65,537.",
        _field("d", "codebook_size", "I", C.MAX_CODEBOOK_SIZE + 1))
invalid("grouped-group-size-over-2-48", "R36", "LimitExceeded", "A GROUPED record with Group_Size 2^48 + 1.",
        _field("d", "group_size", "Q", C.MAX_ELEMENTS + 1))
invalid("grouped-group-size-u64-max", "R36", "LimitExceeded", "A GROUPED record with Group_Size 2^64 - 1.",
        _field("s", "group_size", "Q", (1 << 64) - 1))
invalid("grouped-scale-count-65537", "R36", "LimitExceeded", "A GROUPED record with Scale_Count 65,537.",
        _field("d", "scale_count", "I", C.MAX_GROUP_TABLE_SIZE + 1))
invalid("grouped-offset-count-65537", "R36", "LimitExceeded", "A GROUPED record with Offset_Count 65,537.",
        _field("d", "offset_count", "I", C.MAX_GROUP_TABLE_SIZE + 1))
# R37: GROUPED segment Lengths
invalid("grouped-codebook-length-of-dtype", "R37", "InvalidHeader",
        "An F16 GROUPED record whose codebook Length is 2 x C (its table is float32: 4 x C).",
        _length("d", "codebook", 10))
invalid("grouped-scales-length-short", "R37", "InvalidHeader", "A scales segment one entry short (8 bytes, 3 scales).",
        _length("s", "scales", 8))
invalid("grouped-offsets-length-long", "R37", "InvalidHeader", "An offsets segment of 16 bytes for Offset_Count 3.",
        _length("d", "offsets", 16))
invalid("grouped-offsets-without-offset-count", "R37", "InvalidHeader",
        "Offset_Count 0 and an offsets segment of 4 bytes.", _length("s", "offsets", 4))
invalid("grouped-offset-codes-without-offset-count", "R37", "InvalidHeader",
        "Offset_Count 0 and an offset_codes segment of 1 byte.", _length("s", "offset_codes", 1))
# R38: finite tables, positive scales
invalid("grouped-codebook-nan", "R38", "InvalidValue", "A NaN in a GROUPED codebook.",
        patched(base_grouped, _entry("d", "codebook", 4, 0x7FC00000)))
invalid("grouped-codebook-inf", "R38", "InvalidValue", "-inf in a GROUPED codebook.",
        patched(base_grouped, _entry("s", "codebook", 0, 0xFF800000)))
invalid("grouped-scale-zero", "R38", "InvalidValue", "A scale of +0.0.", patched(base_grouped, _entry("d", "scales", 1, 0)))
invalid("grouped-scale-negative-zero", "R38", "InvalidValue", "A scale of -0.0 (not greater than 0).",
        patched(base_grouped, _entry("d", "scales", 2, 0x80000000)))
invalid("grouped-scale-negative", "R38", "InvalidValue", "A scale of -1.0.",
        patched(base_grouped, _entry("s", "scales", 0, 0xBF800000)))
invalid("grouped-scale-inf", "R38", "InvalidValue", "A scale of +inf.",
        patched(base_grouped, _entry("s", "scales", 1, 0x7F800000)))
invalid("grouped-offset-nan", "R38", "InvalidValue", "A NaN offset.",
        patched(base_grouped, _entry("d", "offsets", 2, 0xFFC00000)))
# R39: per-group codes in range
invalid("grouped-scale-code-out-of-range", "R39", "CodeOutOfRange",
        "A PACKED scale code 3 for Scale_Count 3 (2-bit codes).",
        patched(base_grouped, packed_symbol("tensor", "d", "scale_codes", 3, 1, 3)))
invalid("grouped-offset-code-out-of-range", "R39", "CodeOutOfRange",
        "A PACKED offset code 3 for Offset_Count 3, the last group's.",
        patched(base_grouped, packed_symbol("tensor", "d", "offset_codes", 3, 3, 3)))
invalid("grouped-code-out-of-range", "R30", "CodeOutOfRange", "A GROUPED code 5 for Codebook_Size 5.",
        patched(base_grouped, packed_symbol("tensor", "d", "codes", 5, 23, 5)))

# Appendix B, "Order of checks", for GROUPED records
order("grouped-record-before-layout-parameters", "R34", "InvalidHeader", "R8",
      "The first record, SPARSE GROUPED, in a file without Required_Features bit 0, the header cut right "
      "after its Value_Kind: R34 is checked as soon as Value_Kind is read, before Gap_Bits.",
      patched(edited(base_grouped, lambda m: m.tensors.reverse()), lambda p: (p.put(12, "I", 0), p.put(20, "Q", p.field("tensor", "s", "value_kind") + 1
                                                               - C.PREAMBLE_SIZE))))
order("grouped-tables-before-gaps", "R38", "InvalidValue", "R31",
      "A SPARSE GROUPED record with a scale of 0 and a gap past the last unit.",
      patched(base_grouped, lambda p: (_entry("s", "scales", 0, 0)(p),
                                       packed_symbol("tensor", "s", "gaps", 8, 2, 7)(p))))
order("grouped-scale-codes-before-offsets", "R39", "CodeOutOfRange", "R38",
      "A scale code out of range and a NaN offset.",
      patched(base_grouped, lambda p: (packed_symbol("tensor", "d", "scale_codes", 3, 0, 3)(p),
                                       _entry("d", "offsets", 0, 0x7FC00000)(p))))
order("grouped-offsets-before-codes", "R38", "InvalidValue", "R30",
      "A NaN offset and a code out of range.",
      patched(base_grouped, lambda p: (_entry("d", "offsets", 1, 0x7FC00000)(p),
                                       packed_symbol("tensor", "d", "codes", 5, 0, 6)(p))))
