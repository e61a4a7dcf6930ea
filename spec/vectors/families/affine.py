"""AFFINE codebooks (v1.3, Required_Features bit 2): entries on a grid, computed in float32
without fused multiply-add and rounded to F32/F16/BF16 (ties, overflow); as a CODEBOOK
record's codebook (dense, sparse, in a bank) and a GROUPED record's; the rules R44-R45
and their order."""

from __future__ import annotations

import numpy as np

from dcformat import AffineCodebook, BankValues, CodebookValues, Dense, Sparse
from dcformat.format import constants as C

from .common import HUFFMAN, PACKED, Rand, build, enc, from_bits, u16, write_file
from .edits import edited, packed_symbol, patched, preamble, set_payload, to_front
from .grouped import grouped
from .model import parse, serialize
from .planes import base_planes
from .registry import invalid, order, valid

#: The Required_Features of a file with AFFINE codebooks and GROUPED values.
AFFINE_AND_GROUPED = C.FEATURE_AFFINE | C.FEATURE_GROUPED


def f32_bits(bits: int) -> float:
    """The float32 whose bits are ``bits``, as a Python float."""
    return float(from_bits("<f4", [bits])[0])


def affine_codebook(base: float, step: float, size: int, codes, codec=PACKED) -> CodebookValues:
    return CodebookValues(AffineCodebook(base, step, size), u16(codes), codec)


def check_preamble(data: bytes, required: int = C.FEATURE_AFFINE) -> None:
    m = parse(data)
    assert (m.minor, m.required) == (3, required), "a file with AFFINE codebooks is a v1.3 file with bit 2"


def build_affine(tensors: dict, banks: dict | None = None, required: int = C.FEATURE_AFFINE):
    data, expected, metadata = build(tensors, banks=banks)
    check_preamble(data, required)
    return data, expected, metadata


# === valid ============================================================================


@valid("affine-codebook-f32", "DENSE CODEBOOK F32 tensors with AFFINE codebooks: a grid of 50 entries, "
       "-1.25 + 0.05 i (0.05 is no float32: products and sums are rounded); one entry; a negative Step; Base and Step "
       "that a fused multiply-add would get wrong (entry 3 of -(3 + 2^-21) + (1 + 2^-23) i is 0, fused it "
       "is -2^-23); entries past the float32 range (+inf and -inf); 65,536 entries, codes 0 and 65,535 "
       "among them.")
def _affine_codebook_f32():
    r = Rand(301)
    no_fma_base, no_fma_step = -(3 + 2.0 ** -21), 1 + 2.0 ** -23
    tensors = {
        "grid": enc("F32", (6, 7), Dense(), affine_codebook(-1.25, 0.05, 50, r.ints(42, 50))),
        "single": enc("F32", (3,), Dense(), affine_codebook(0.75, 123.0, 1, [0, 0, 0])),
        "negative_step": enc("F32", (10,), Dense(), affine_codebook(2.5, -0.3, 17, r.ints(10, 17))),
        "no_fma": enc("F32", (4,), Dense(), affine_codebook(no_fma_base, no_fma_step, 4, [3, 0, 1, 2])),
        "overflow": enc("F32", (6,), Dense(), affine_codebook(3e38, 1e38, 4, [0, 1, 2, 3, 1, 0])),
        "negative_overflow": enc("F32", (3,), Dense(), affine_codebook(-3e38, -1e38, 3, [2, 1, 0])),
        "largest": enc("F32", (300,), Dense(), affine_codebook(-3.3, 1e-4, C.MAX_CODEBOOK_SIZE,
                                                        [0, C.MAX_CODEBOOK_SIZE - 1, *r.ints(298, 65536)])),
    }
    data, expected, metadata = build_affine(tensors)
    assert expected["no_fma"][0] == 0 and no_fma_base + no_fma_step * 3 == -(2.0 ** -23)  # float64: exact, as fused
    assert np.isposinf(expected["overflow"][1:4]).all() and np.isneginf(expected["negative_overflow"][:2]).all()
    assert expected["single"].tolist() == [0.75] * 3
    return data, expected, metadata


@valid("affine-codebook-f16", "DENSE CODEBOOK F16 tensors with AFFINE codebooks whose float32 entries lie "
       "halfway between F16 values (ties to even, up and down, negative, subnormal), at the top (65512 rounds "
       "to 65504, 65520 to +inf, -65520 to -inf), and on a grid of steps no F16 holds.")
def _affine_codebook_f16():
    r = Rand(302)
    tensors = {
        "ties": enc("F16", (8,), Dense(), affine_codebook(1.0, 2.0 ** -11, 8, range(8))),
        "negative_ties": enc("F16", (4,), Dense(), affine_codebook(-1.0, -(2.0 ** -11), 4, range(4))),
        "subnormal_ties": enc("F16", (6,), Dense(), affine_codebook(0.0, 2.0 ** -25, 6, range(6))),
        "overflow": enc("F16", (5,), Dense(), affine_codebook(65504.0, 8.0, 5, range(5))),
        "negative_overflow": enc("F16", (2,), Dense(), affine_codebook(-65504.0, -16.0, 2, range(2))),
        "grid": enc("F16", (10, 10), Dense(), affine_codebook(-0.7, 0.0123, 100, r.ints(100, 100))),
    }
    data, expected, metadata = build_affine(tensors)
    ulp = 2.0 ** -10
    assert expected["ties"].astype(float).tolist() == [1, 1, 1 + ulp, 1 + 2 * ulp, 1 + 2 * ulp, 1 + 2 * ulp,
                                                       1 + 3 * ulp, 1 + 4 * ulp]
    assert (expected["subnormal_ties"].astype(float) / 2.0 ** -24).tolist() == [0, 0, 1, 2, 2, 2]
    top = expected["overflow"].astype(float)
    assert top[:2].tolist() == [65504, 65504] and np.isposinf(top[2:]).all()
    assert expected["negative_overflow"].astype(float)[0] == -65504 and np.isneginf(expected["negative_overflow"][1])
    return data, expected, metadata


@valid("affine-codebook-bf16", "DENSE CODEBOOK BF16 tensors with AFFINE codebooks whose float32 entries lie "
       "halfway between BF16 values (ties to even, up and down, negative, float32-subnormal), at the top (the "
       "largest float32 that rounds to the largest BF16, the tie above it and one past it round to +inf, a "
       "float32 sum past the range is +inf).")
def _affine_codebook_bf16():
    largest = f32_bits(0x7F7F0000)  # the largest BF16
    tensors = {
        "ties": enc("BF16", (8,), Dense(), affine_codebook(1.0, 2.0 ** -8, 8, range(8))),
        "negative_ties": enc("BF16", (4,), Dense(), affine_codebook(-1.0, -(2.0 ** -8), 4, range(4))),
        "subnormal_ties": enc("BF16", (4,), Dense(), affine_codebook(0.0, f32_bits(0x00008000), 4, range(4))),
        # entries 0x7F7F0000, 0x7F7F7FFF, 0x7F7FFFFE and one past float32's range
        "top": enc("BF16", (4,), Dense(), affine_codebook(largest, 0x7FFF * 2.0 ** 104, 4, range(4))),
        # entries 0x7F7F0000, 0x7F7F8000 (a tie, to even: +inf), then 2^128 (float32 +inf)
        "tie_to_inf": enc("BF16", (3,), Dense(), affine_codebook(largest, 2.0 ** 119, 3, range(3))),
    }
    data, expected, metadata = build_affine(tensors)
    bits = {name: expected[name].view(np.uint16).tolist() for name in expected}
    assert bits["ties"] == [0x3F80, 0x3F80, 0x3F81, 0x3F82, 0x3F82, 0x3F82, 0x3F83, 0x3F84], bits["ties"]
    assert bits["negative_ties"] == [0xBF80, 0xBF80, 0xBF81, 0xBF82], bits["negative_ties"]
    assert bits["subnormal_ties"] == [0x0000, 0x0000, 0x0001, 0x0002], bits["subnormal_ties"]
    assert bits["top"] == [0x7F7F, 0x7F7F, 0x7F80, 0x7F80] and bits["tie_to_inf"] == [0x7F7F, 0x7F80, 0x7F80]
    return data, expected, metadata


@valid("affine-codebook-sparse", "SPARSE CODEBOOK tensors with AFFINE codebooks, unstored units +0.0: F32 "
       "with PACKED gaps and codes, F16 with HUFFMAN gaps and codes, BF16 with a filler (the entry it selects "
       "is 0: Base = -4 Step), and Entry_Count 0.")
def _affine_codebook_sparse():
    gaps = u16([0, 3, 6, 0, 9, 2, 1, 4, 6])  # units 0 4 11 12 22 25 27 32 39 (the last)
    codes = [0, 1, 2, 3, 4, 2, 3, 0, 4]
    tensors = {
        "f32": enc("F32", (40,), Sparse(4, gaps, PACKED), affine_codebook(0.5, 0.25, 5, codes)),
        "f16_huffman": enc("F16", (5, 8), Sparse(4, gaps, HUFFMAN), affine_codebook(-2.0, 0.3, 5, codes, HUFFMAN)),
        # Gap_Bits 1, gaps 1 0 0: the first entry, of the widest gap, is a filler selecting entry 4 = -1 + 4 x 0.25
        "bf16_filler": enc("BF16", (6,), Sparse(1, u16([1, 0, 0]), PACKED), affine_codebook(-1.0, 0.25, 6, [4, 1, 5])),
        "empty": enc("F32", (3, 4), Sparse(2, u16([]), PACKED), affine_codebook(1.0, 1.0, 3, [])),
    }
    data, expected, metadata = build_affine(tensors)
    assert expected["bf16_filler"].astype(float).tolist() == [0, 0, -0.75, 0.25, 0, 0]
    assert not np.signbit(expected["f32"]).any() and not expected["empty"].any()
    return data, expected, metadata


@valid("affine-grouped", "GROUPED tensors whose shared codebook is AFFINE: F32 and F16 with offsets, BF16 "
       "without, SPARSE F32 (PACKED) and F16 (HUFFMAN codes and tables); entries computed in float32, then "
       "scaled and shifted, then rounded.")
def _affine_grouped():
    r = Rand(303)
    gaps = u16([0, 3, 6, 0, 9, 2, 1, 4, 6])
    tensors = {
        "f32_offsets": enc("F32", (6, 10), Dense(), grouped(
            10, AffineCodebook(-1.5, 0.1, 31), r.ints(60, 31), [0.25, 0.125, 3.0], r.ints(6, 3), [-1.0, 0.0, 0.75],
            r.ints(6, 3))),
        "f16_offsets": enc("F16", (8, 12), Dense(), grouped(
            12, AffineCodebook(-1.0, 0.125, 17), r.ints(96, 17), [0.1, 0.3, 1.7], r.ints(8, 3), [0.01, -0.2],
            r.ints(8, 2))),
        "bf16_plain": enc("BF16", (33,), Dense(), grouped(
            8, AffineCodebook(3.0, -0.5, 13), r.ints(33, 13), [1.1, 7.0], r.ints(5, 2))),
        "f32_sparse": enc("F32", (40,), Sparse(4, gaps, PACKED), grouped(
            7, AffineCodebook(0.0, 1.5, 6), r.ints(9, 6), [1.0, 0.5, 3.0], r.ints(6, 3))),
        "f16_sparse_huffman": enc("F16", (5, 8), Sparse(4, gaps, HUFFMAN), grouped(
            7, AffineCodebook(-3.0, 0.75, 9), r.ints(9, 9), [0.3, 7.0], r.ints(6, 2), codec=HUFFMAN,
            table_codec=HUFFMAN)),
    }
    return build_affine(tensors, required=AFFINE_AND_GROUPED)


@valid("affine-zero-size", "CODEBOOK and GROUPED tensors without elements whose codebooks are AFFINE.")
def _affine_zero_size():
    tensors = {
        "codebook": enc("F32", (0, 4), Dense(), affine_codebook(1.0, 2.0, 3, [])),
        "grouped": enc("F16", (3, 0), Dense(), grouped(2, AffineCodebook(1.0, 2.0, 3), [], [1.0], [])),
    }
    return build_affine(tensors, required=AFFINE_AND_GROUPED)


@valid("affine-mixed-codebooks", "AFFINE and BYTES codebooks side by side: a bank whose codebook is AFFINE and "
       "a BANK-valued tensor selecting from it, AFFINE and stored codebooks of CODEBOOK and GROUPED tensors, a "
       "RAW tensor; Version_Minor 3, Required_Features bits 0 and 2.")
def _affine_mixed():
    r = Rand(304)
    banks = {"k": enc("F32", (4, 3), Dense(), affine_codebook(-1.0, 0.5, 5, r.ints(12, 5)))}
    tensors = {
        "bank_valued": enc("F32", (2, 3), Dense(), BankValues("k", u16([3, 0]), PACKED)),
        "affine_bf16": enc("BF16", (20,), Dense(), affine_codebook(-0.3, 0.07, 9, r.ints(20, 9))),
        "bytes_f16": enc("F16", (20,), Dense(), CodebookValues(np.array([0.5, -1.0, 3.0], np.float16),
                                                              u16(r.ints(20, 3)), PACKED)),
        "grouped_bytes": enc("F32", (12,), Dense(), grouped(4, [1.0, -2.0], r.ints(12, 2), [0.5, 2.0], [0, 1, 0])),
        "grouped_affine": enc("F32", (12,), Dense(), grouped(4, AffineCodebook(-2.0, 0.5, 9), r.ints(12, 9),
                                                             [0.5, 2.0], [1, 0, 1])),
        "raw": np.arange(5, dtype=np.int8),
    }
    data, expected, metadata = build_affine(tensors, banks, required=AFFINE_AND_GROUPED)
    codecs = [s.codec for rec in parse(data).banks + parse(data).tensors for s in rec.segs if s.role == "codebook"]
    assert codecs == [C.SegmentCodec.AFFINE, C.SegmentCodec.AFFINE, C.SegmentCodec.BYTES, C.SegmentCodec.BYTES,
                      C.SegmentCodec.AFFINE], codecs
    return data, expected, metadata


@valid("affine-feature-bit-without-affine", "Version_Minor 3 and Required_Features bit 2 set, but no codebook "
       "is AFFINE (writers set the bit only when one is; readers accept it).")
def _affine_bit_unused():
    data, expected, metadata = build({"a": np.arange(4, dtype="<f4"), "c": enc(
        "F32", (3,), Dense(), CodebookValues(np.array([2.0, -1.0], np.float32), u16([1, 0, 1]), PACKED))})
    m = parse(data)
    assert (m.minor, m.required) == (0, 0)
    m.minor, m.required = 3, C.FEATURE_AFFINE
    return serialize(m)[0], expected, metadata


# === invalid ==========================================================================


def base_affine() -> bytes:
    """c: F16 DENSE CODEBOOK (3, 4), AFFINE (-1 + 0.25 i, C = 9), PACKED codes; g: F32 DENSE GROUPED (2, 6),
    Group_Size 6, AFFINE (-2 + 0.5 i, C = 9), Scale_Count 3, Offset_Count 2; s: BF16 SPARSE CODEBOOK (12,),
    Gap_Bits 3, gaps 0 4 2, AFFINE (1 - 0.5 i, C = 4); r: F32 RAW (2,), 8 bytes. Required_Features 0b101."""
    return write_file({
        "c": enc("F16", (3, 4), Dense(), affine_codebook(-1.0, 0.25, 9, [k % 9 for k in range(12)])),
        "g": enc("F32", (2, 6), Dense(), grouped(6, AffineCodebook(-2.0, 0.5, 9), [k % 9 for k in range(12)],
                                                        [1.0, 2.0, 0.5], [0, 2], [0.0, 0.5], [1, 0])),
        "s": enc("BF16", (12,), Sparse(3, u16([0, 4, 2]), PACKED), affine_codebook(1.0, -0.5, 4, [0, 1, 3])),
        "r": np.array([1.0, 2.0], "<f4"),
    })


def _field(name: str, field: str, fmt: str, value):
    return patched(base_affine, lambda p: p.set("tensor", name, field, fmt, value))


def _codec(name: str, role: str, codec: int):
    return lambda p: p.put(p.segment("tensor", name, role)[0], "B", codec)


def _length(name: str, value: int):
    """The Length of ``name``'s codebook Segment_Ref (its payload unchanged)."""
    return lambda p: p.put(p.segment("tensor", name, "codebook")[0] + 9, "Q", value)


def _parameter(name: str, index: int, bits: int):
    """Base (``index`` 0) or Step (1) of ``name``'s AFFINE codebook set to the float32 of ``bits``."""
    return lambda p: p.put(p.segment("tensor", name, "codebook")[1] + 4 * index, "I", bits)


def _header_ends(offset):
    """Header_Size made to end the header at the absolute offset ``offset(p)``."""
    return lambda p: p.put(20, "Q", offset(p) - C.PREAMBLE_SIZE)


def _after_codebook_codec(name: str):
    """The offset just past the Codec of ``name``'s codebook Segment_Ref."""
    return lambda p: p.segment("tensor", name, "codebook")[0] + 1


CLEAR_AFFINE_BIT = lambda p: p.put(12, "I", C.FEATURE_GROUPED)  # noqa: E731
NAN, INF, NEG_INF, SIGNALING_NAN = 0x7FC00000, 0x7F800000, 0xFF800000, 0xFF800001

# R44: the feature bit and the DType, right after the Codec
invalid("affine-without-feature-bit", "R44", "InvalidHeader",
        "An AFFINE codebook (of the first tensor, CODEBOOK F16) in a file whose Required_Features has bit 2 "
        "clear (bit 0 set, Version_Minor 3).", preamble("required", C.FEATURE_GROUPED, base=base_affine))
invalid("affine-grouped-without-feature-bit", "R44", "InvalidHeader",
        "A GROUPED record's AFFINE codebook, the file's first, with Required_Features bit 2 clear.",
        patched(edited(base_affine, to_front("g")), CLEAR_AFFINE_BIT))
invalid("affine-codebook-dtype-f64", "R44", "InvalidHeader", "An AFFINE codebook of a CODEBOOK record of DType F64.",
        _field("c", "dtype", "B", C.DType.F64))
invalid("affine-codebook-dtype-i8", "R44", "InvalidHeader", "An AFFINE codebook of a CODEBOOK record of DType I8.",
        _field("c", "dtype", "B", C.DType.I8))
invalid("affine-codebook-dtype-f8-e4m3", "R44", "InvalidHeader",
        "An AFFINE codebook of a SPARSE CODEBOOK record of DType F8_E4M3 (a float, but not rounded from float32 "
        "by the spec).", _field("s", "dtype", "B", C.DType.F8_E4M3))
# R44: the Length, right after the Segment_Ref
invalid("affine-length-7", "R44", "InvalidHeader", "An AFFINE codebook segment of 7 bytes (Step cut short).",
        edited(base_affine, set_payload("c", "codebook", lambda b: b[:7])))
invalid("affine-length-9", "R44", "InvalidHeader", "An AFFINE codebook segment of 9 bytes.",
        edited(base_affine, set_payload("c", "codebook", lambda b: b + b"\x00")))
invalid("affine-length-0", "R44", "InvalidHeader", "An empty AFFINE codebook segment.",
        edited(base_affine, set_payload("s", "codebook", lambda b: b"")))
invalid("affine-grouped-length-of-table", "R44", "InvalidHeader",
        "A GROUPED record's AFFINE codebook holding its 9 float32 entries, 4 x C = 36 bytes (a BYTES codebook's "
        "Length).", edited(base_affine, set_payload("g", "codebook", lambda b: np.arange(9, dtype="<f4").tobytes())))
invalid("affine-header-cut-after-codec", "R8", "TruncatedError",
        "Header_Size ends the header right after the Codec (AFFINE, allowed) of c's codebook Segment_Ref.",
        patched(base_affine, _header_ends(_after_codebook_codec("c"))))

# R15: AFFINE is for codebooks only
invalid("affine-codec-on-values-segment", "R15", "InvalidHeader",
        "A RAW record's values segment (8 bytes) with Codec AFFINE.", patched(base_affine, _codec("r", "values", 3)))
invalid("affine-codec-on-scales-segment", "R15", "InvalidHeader",
        "A GROUPED record's scales segment with Codec AFFINE.", patched(base_affine, _codec("g", "scales", 3)))
invalid("affine-codec-on-offsets-segment", "R15", "InvalidHeader",
        "A GROUPED record's offsets segment (8 bytes) with Codec AFFINE.", patched(base_affine, _codec("g", "offsets", 3)))
invalid("affine-codec-on-codes-segment", "R15", "InvalidHeader",
        "A codes segment with Codec AFFINE.", patched(base_affine, _codec("c", "codes", 3)))
invalid("affine-codec-on-gaps-segment", "R15", "InvalidHeader",
        "A gaps segment with Codec AFFINE.", patched(base_affine, _codec("s", "gaps", 3)))
invalid("affine-codec-on-plane", "R15", "InvalidHeader",
        "A plane Segment_Ref (exponent[0] of d) with Codec AFFINE.",
        patched(base_planes, lambda p: p.put(p.segment("tensor", "d", "exponent[0]")[0], "B", 3)))

# R45: Base and Step finite
invalid("affine-base-nan", "R45", "InvalidValue", "A CODEBOOK record's AFFINE Base is NaN.",
        patched(base_affine, _parameter("c", 0, NAN)))
invalid("affine-step-inf", "R45", "InvalidValue", "A CODEBOOK record's AFFINE Step is +inf.",
        patched(base_affine, _parameter("c", 1, INF)))
invalid("affine-base-negative-inf", "R45", "InvalidValue", "A SPARSE CODEBOOK record's AFFINE Base is -inf.",
        patched(base_affine, _parameter("s", 0, NEG_INF)))
invalid("affine-step-signaling-nan", "R45", "InvalidValue",
        "A SPARSE CODEBOOK record's AFFINE Step is a negative signaling NaN (0xFF800001).",
        patched(base_affine, _parameter("s", 1, SIGNALING_NAN)))
invalid("affine-grouped-base-inf", "R45", "InvalidValue", "A GROUPED record's AFFINE Base is +inf.",
        patched(base_affine, _parameter("g", 0, INF)))
invalid("affine-grouped-step-nan", "R45", "InvalidValue", "A GROUPED record's AFFINE Step is NaN.",
        patched(base_affine, _parameter("g", 1, NAN)))
invalid("affine-zero-size-base-nan", "R45", "InvalidValue",
        "The AFFINE Base of a CODEBOOK record without elements is NaN: its codebook is checked all the same.",
        patched(lambda: write_file({"e": enc("F32", (0, 4), Dense(), affine_codebook(1.0, 2.0, 3, []))}),
                _parameter("e", 0, NAN)))
# R38 on a GROUPED record's entries
invalid("affine-grouped-entry-overflow", "R38", "InvalidValue",
        "A GROUPED record's AFFINE Step 2^127 with Base -2: entry 2 is past the float32 range, +inf (a CODEBOOK "
        "record's entries may be infinite, a GROUPED one's may not).",
        patched(base_affine, _parameter("g", 1, 0x7F000000)))

# Appendix B, "Order of checks", for AFFINE codebooks
order("header-checksum-before-affine", "R7", "ChecksumMismatch", "R44",
      "Required_Features bit 2 cleared with an AFFINE codebook in the file, Header_Checksum not updated.",
      preamble("required", C.FEATURE_GROUPED, fix_checksum=False, base=base_affine))
order("codebook-size-before-affine", "R10", "LimitExceeded", "R44",
      "c's Codebook_Size 65,537 and its AFFINE codebook without Required_Features bit 2: Codebook_Size is "
      "checked when read, before the Segment_Refs.",
      patched(base_affine, lambda p: (CLEAR_AFFINE_BIT(p), p.set("tensor", "c", "codebook_size", "I", 65537))))
order("affine-codec-before-truncation", "R44", "InvalidHeader", "R8",
      "Required_Features bit 2 clear and Header_Size ending the header right after the Codec (AFFINE) of c's "
      "codebook Segment_Ref: R44's feature part is checked when the Codec is read, before the rest of the "
      "Segment_Ref.", patched(base_affine, lambda p: (CLEAR_AFFINE_BIT(p), _header_ends(_after_codebook_codec("c"))(p))))
order("segment-ref-before-affine-length", "R8", "TruncatedError", "R44",
      "c's AFFINE codebook Length 9 and Header_Size ending the header 2 bytes into that Segment_Ref's Checksum: "
      "the Length is checked once the whole Segment_Ref is read.",
      patched(base_affine, lambda p: (_length("c", 9)(p),
                                      _header_ends(lambda p: p.segment("tensor", "c", "codebook")[0] + 19)(p))))
order("affine-dtype-before-codes-codec", "R44", "InvalidHeader", "R14",
      "c of DType F64 (its codebook AFFINE) and its codes Segment_Ref with Codec 7.",
      patched(base_affine, lambda p: (p.set("tensor", "c", "dtype", "B", C.DType.F64), _codec("c", "codes", 7)(p))))
order("affine-length-before-layout", "R44", "InvalidHeader", "R18",
      "c's AFFINE codebook Length 2^40, its payload 8 bytes (the next segment's Offset no longer follows it): "
      "R44 is a header rule, checked before the data section's placement.", patched(base_affine, _length("c", 1 << 40)))
order("checksums-before-affine", "R21", "ChecksumMismatch", "R45",
      "c's AFFINE Base NaN, the segment's Checksum not updated.",
      patched(base_affine, _parameter("c", 0, NAN), segment_checksums=False))
order("affine-before-codes", "R45", "InvalidValue", "R30",
      "c's AFFINE Step +inf and a PACKED code 15 for Codebook_Size 9.",
      patched(base_affine, lambda p: (_parameter("c", 1, INF)(p), packed_symbol("tensor", "c", "codes", 9, 4, 15)(p))))
order("affine-before-codes-stream", "R45", "InvalidValue", "R22",
      "c's AFFINE Base NaN and its PACKED codes segment one byte short.",
      patched(edited(base_affine, set_payload("c", "codes", lambda b: b[:-1])), _parameter("c", 0, NAN)))
order("affine-before-gaps", "R45", "InvalidValue", "R31",
      "s's AFFINE Base -inf and a gap past its last unit.",
      patched(base_affine, lambda p: (_parameter("s", 0, NEG_INF)(p), packed_symbol("tensor", "s", "gaps", 8, 2, 7)(p))))
order("affine-grouped-before-scales", "R45", "InvalidValue", "R38",
      "g's AFFINE Step NaN and a scale of 0: the codebook's contents come first.",
      patched(base_affine, lambda p: (_parameter("g", 1, NAN)(p),
                                      p.put(p.segment("tensor", "g", "scales")[1], "I", 0))))
order("affine-grouped-before-scale-codes", "R45", "InvalidValue", "R39",
      "g's AFFINE Base +inf and a scale code 3 for Scale_Count 3.",
      patched(base_affine, lambda p: (_parameter("g", 0, INF)(p),
                                      packed_symbol("tensor", "g", "scale_codes", 3, 1, 3)(p))))
order("affine-entries-before-scale-codes", "R38", "InvalidValue", "R39",
      "g's AFFINE Step 2^127 (entry 2 is +inf) and a scale code 3 for Scale_Count 3: the entries are checked "
      "where the codebook is.",
      patched(base_affine, lambda p: (_parameter("g", 1, 0x7F000000)(p),
                                      packed_symbol("tensor", "g", "scale_codes", 3, 1, 3)(p))))
