"""PLANES values (v1.2, Required_Features bit 1): every float dtype's bits (NaN payloads,
signed zeros, subnormals, infinities) split into planes and joined back, blocks of every
size, SPARSE records, a codec per plane; the record's rules R40-R43 and their order."""

from __future__ import annotations

import numpy as np

from dcformat import CodebookValues, Dense, PlaneValues, Sparse
from dcformat.format import constants as C
from dcformat.format.dtypes import numpy_dtype
from dcformat.streams import HuffmanCodec

from .common import HUFFMAN, PACKED, Rand, build, enc, from_bits, sparsify, u16, write_file
from .edits import (as_bank, break_checksum, both, cut_after, edited, packed_symbol, patched, preamble, put_byte,
                    seg_byte, set_payload, to_front)
from .grouped import grouped
from .huff import huffman_modes, set_bits, stream_edited
from .model import parse, serialize
from .registry import invalid, order, valid

def planes(values, block_size: int = C.MAX_PLANE_BLOCK, codec=PACKED) -> PlaneValues:
    return PlaneValues(np.asarray(values), block_size, codec)


def bits_of(dtype: str, patterns) -> np.ndarray:
    """An array of wire dtype ``dtype`` holding exactly the bit patterns."""
    return from_bits(numpy_dtype(dtype), patterns)


def weights(r: Rand, count: int, scale: float, dtype: str) -> np.ndarray:
    """``count`` values shaped like trained weights (a sum of four uniforms, about normal,
    times ``scale``), rounded to ``dtype``: their exponents crowd a few values, their
    mantissas do not."""
    values = np.array([scale * (sum(r.u64() / 2.0 ** 64 for _ in range(4)) - 2.0) for _ in range(count)])
    return values.astype(np.float32).astype(numpy_dtype(dtype))


def roles(data: bytes, name: str) -> list[str]:
    """The segment roles of tensor ``name``, in order."""
    return [s.role for s in parse(data).tensor(name).segs]


def modes(data: bytes, name: str, role: str) -> list[int]:
    """The chunk Modes of a HUFFMAN plane."""
    return [c[0] for c in huffman_modes(data, "tensor", name, role).chunks]


def check_preamble(data: bytes, required: int = C.FEATURE_PLANES) -> None:
    m = parse(data)
    assert (m.minor, m.required) == (2, required), "a PLANES file is a v1.2 file with bit 1"


#: Bit patterns of each float dtype: +0, -0, the smallest and largest subnormals and a
#: negative one, the smallest normal, the largest finite of both signs, 1.0, -2.0, both
#: infinities, and NaNs with payloads (quiet, signalling, another, negative, all ones).
SPECIAL_BITS = {
    "F16": [0x0000, 0x8000, 0x0001, 0x03FF, 0x8001, 0x0400, 0x7BFF, 0xFBFF, 0x3C00, 0xC000,
            0x7C00, 0xFC00, 0x7E00, 0x7C01, 0x7D55, 0xFE00, 0xFFFF],
    "BF16": [0x0000, 0x8000, 0x0001, 0x007F, 0x8001, 0x0080, 0x7F7F, 0xFF7F, 0x3F80, 0xC000,
             0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0x7FD5, 0xFFC0, 0xFFFF],
    "F32": [0x00000000, 0x80000000, 0x00000001, 0x007FFFFF, 0x80000001, 0x00800000, 0x7F7FFFFF, 0xFF7FFFFF,
            0x3F800000, 0xC0000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0x7FA5A5A5, 0xFFC00000,
            0xFFFFFFFF],
    "F64": [0, 1 << 63, 1, (1 << 52) - 1, (1 << 63) | 1, 1 << 52, 0x7FEFFFFFFFFFFFFF, 0xFFEFFFFFFFFFFFFF,
            0x3FF0000000000000, 0xC000000000000000, 0x7FF0000000000000, 0xFFF0000000000000,
            0x7FF8000000000000, 0x7FF0000000000001, 0x7FF5A5A5A5A5A5A5, 0xFFF8000000000000, (1 << 64) - 1],
}


# === valid ============================================================================


@valid("planes-float-dtypes", "DENSE PLANES tensors of every float dtype, PACKED planes, one block each: "
       "F16, BF16, F32 and F64 hold +0, -0, subnormals (the smallest, the largest, a negative one), the "
       "smallest normal, the largest finite of both signs, both infinities and NaNs with payloads (quiet, "
       "signalling, negative, all ones), then 24 random bit patterns; F8_E4M3 and F8_E5M2 hold each of "
       "their 256 bit patterns once, shuffled. Every bit comes back.")
def _planes_float_dtypes():
    r = Rand(201)
    tensors = {}
    for dtype, special in SPECIAL_BITS.items():
        width = 8 * C.DTYPE_SIZE[C.DType[dtype]]
        patterns = special + [r.u64() >> (64 - width) for _ in range(24)]
        tensors[dtype.lower()] = enc(dtype, (len(patterns),), Dense(), planes(bits_of(dtype, patterns)))
    for dtype in ("F8_E4M3", "F8_E5M2"):
        tensors[dtype.lower()] = enc(dtype, (16, 16), Dense(), planes(bits_of(dtype, r.shuffle(range(256)))))
    data, expected, metadata = build(tensors)
    check_preamble(data)
    assert roles(data, "f64") == ["exponent[0]"] + [f"mantissa{k}[0]" for k in range(1, 8)]
    assert roles(data, "f16") == ["exponent[0]", "mantissa1[0]", "mantissa2[0]"]
    assert roles(data, "f8_e5m2") == ["exponent[0]", "mantissa1[0]"]
    return data, expected, metadata


@valid("planes-huffman", "DENSE PLANES tensors of weight-like values (F32, BF16, F16, F64), every plane "
       "HUFFMAN (a chunk stored raw where coding does not pay), in blocks of 256 "
       "units, the last shorter (257 units: a last block of one): exponent planes Huffman-coded, low "
       "mantissa planes raw, each block with tables of its own.")
def _planes_huffman():
    r = Rand(202)
    tensors = {
        "f32": enc("F32", (3, 200), Dense(), planes(weights(r, 600, 0.05, "F32"), 256, HUFFMAN)),
        "bf16": enc("BF16", (700,), Dense(), planes(weights(r, 700, 0.02, "BF16"), 256, HUFFMAN)),
        "f16": enc("F16", (300,), Dense(), planes(weights(r, 300, 1.0, "F16"), 256, HUFFMAN)),
        "f64": enc("F64", (257,), Dense(), planes(weights(r, 257, 1e-3, "F32").astype("<f8"), 256, HUFFMAN)),
    }
    data, expected, metadata = build(tensors)
    assert roles(data, "f32")[-4:] == ["exponent[2]", "mantissa1[2]", "mantissa2[2]", "mantissa3[2]"]
    assert len(roles(data, "f64")) == 2 * 8
    assert modes(data, "f32", "exponent[0]") == [C.ChunkMode.HUFFMAN]
    assert modes(data, "f32", "mantissa3[1]") == [C.ChunkMode.RAW]
    assert modes(data, "bf16", "exponent[1]") == [C.ChunkMode.HUFFMAN]
    return data, expected, metadata


@valid("planes-codec-per-plane", "PLANES tensors with a codec per plane: F32 with HUFFMAN exponent and "
       "low mantissa planes and PACKED middle ones; BF16 with a PACKED exponent and a HUFFMAN mantissa; "
       "an F16 exponent plane in Huffman chunks of 64 symbols, the chunks of one value Huffman-coded and "
       "those of random values stored raw, in one stream.")
def _planes_codec_per_plane():
    r = Rand(203)
    chunked = HuffmanCodec(chunk_symbols=64, chunk_multiple=1)
    runs = [np.full(64, 1.5), np.array([r.u64() / 2.0 ** 64 * 2.0 ** (r.below(30) - 15) for _ in range(64)]),
            np.full(64, -0.75), np.array([2.0 ** (r.below(30) - 15) for _ in range(64)]), np.full(20, 3.0)]
    f16 = np.concatenate(runs).astype("<f2")
    tensors = {
        "f32": enc("F32", (128,), Dense(), planes(weights(r, 128, 0.1, "F32"), 64, (HUFFMAN, PACKED, PACKED, HUFFMAN))),
        "bf16": enc("BF16", (2, 40), Dense(), planes(weights(r, 80, 4.0, "BF16"), 1 << 20, (PACKED, HUFFMAN))),
        "f16": enc("F16", (f16.size,), Dense(), planes(f16, 1000, (chunked, PACKED, HUFFMAN))),
    }
    data, expected, metadata = build(tensors)
    codecs = {s.role: s.codec for s in parse(data).tensor("f32").segs}
    assert [codecs[f"{p}[1]"] for p in ("exponent", "mantissa1", "mantissa2", "mantissa3")] == [2, 1, 1, 2]
    assert modes(data, "f16", "exponent[0]") == [0, 1, 0, 1, 0], modes(data, "f16", "exponent[0]")
    return data, expected, metadata


@valid("planes-blocks", "PLANES tensors pinning the blocks: Block_Size 1 (every unit its own planes: 15 "
       "segments for 5 F16 units); 10 units in blocks of 4 (the last of 2); Block_Size = S; Block_Size > S "
       "(one block); Block_Size 2^48 (the largest); a rank-0 tensor; tensors without elements (S = 0: no "
       "plane segments at all); HUFFMAN planes in blocks of 16.")
def _planes_blocks():
    r = Rand(204)
    tensors = {
        "block_1": enc("F16", (5,), Dense(), planes(weights(r, 5, 1.0, "F16"), 1)),
        "short_last": enc("F32", (2, 5), Dense(), planes(weights(r, 10, 1.0, "F32"), 4)),
        "block_s": enc("BF16", (3, 4), Dense(), planes(weights(r, 12, 1.0, "BF16"), 12)),
        "block_over_s": enc("F64", (3,), Dense(), planes(np.array([1.0, -0.0, np.pi]), 1000)),
        "block_max": enc("F8_E5M2", (4,), Dense(),
                         planes(bits_of("F8_E5M2", [0x3C, 0x7C, 0xFF, 0x01]), C.MAX_PLANE_BLOCK)),
        "scalar": enc("F32", (), Dense(), planes(np.array(-1.25, "<f4"), 1)),
        "empty": enc("F32", (0, 5), Dense(), planes(np.zeros((0, 5), "<f4"), 3)),
        "empty_huffman": enc("BF16", (4, 0), Dense(), planes(np.zeros((4, 0), "<f4").astype(numpy_dtype("BF16")),
                                                             1, HUFFMAN)),
        "huffman_blocks": enc("F32", (40,), Dense(), planes(weights(r, 40, 0.5, "F32"), 16, HUFFMAN)),
    }
    data, expected, metadata = build(tensors)
    assert len(roles(data, "block_1")) == 15 and roles(data, "block_1")[-1] == "mantissa2[4]"
    assert roles(data, "short_last")[-1] == "mantissa3[2]" and len(roles(data, "block_over_s")) == 8
    assert roles(data, "empty") == roles(data, "empty_huffman") == []
    return data, expected, metadata


@valid("planes-sparse", "SPARSE PLANES tensors: F32 with PACKED gaps, 9 entries in blocks of 4 (a -0.0 "
       "and a NaN stored; unstored units +0.0); BF16 with Gap_Bits 2 and filler entries (gap 3, stored "
       "value +0.0) in blocks of 3; F16 with HUFFMAN gaps and planes; Entry_Count 0 (a gaps segment and no "
       "planes).")
def _planes_sparse():
    r = Rand(205)
    gaps = u16([0, 3, 6, 0, 9, 2, 1, 4, 6])  # units 0 4 11 12 22 25 27 32 39 (the last)
    assert int((gaps.astype(int) + 1).sum()) == 40
    f32 = np.array([1.0, -0.0, 2.5, np.nan, -3.0, 1e-40, 7.0, -1e30, 0.125], "<f4")
    dense = np.zeros(30, np.float32)
    for u in (1, 9, 10, 21, 29):
        dense[u] = r.below(1000) / 64 - 8
    filler_gaps, units = sparsify(dense != 0, 2)
    assert 3 in filler_gaps and len(filler_gaps) > 5
    bf16 = dense[units].astype(numpy_dtype("BF16"))
    tensors = {
        "f32": enc("F32", (40,), Sparse(4, gaps, PACKED), planes(f32, 4)),
        "bf16_fillers": enc("BF16", (30,), Sparse(2, filler_gaps, PACKED), planes(bf16, 3)),
        "f16_huffman": enc("F16", (5, 8), Sparse(4, gaps, HUFFMAN), planes(weights(r, 9, 2.0, "F16"), 5, HUFFMAN)),
        "empty": enc("F64", (3, 4), Sparse(3, u16([]), PACKED), planes(np.zeros(0, "<f8"), 2)),
    }
    data, expected, metadata = build(tensors)
    assert roles(data, "f32")[:2] == ["gaps", "exponent[0]"] and roles(data, "f32")[-1] == "mantissa3[2]"
    assert roles(data, "empty") == ["gaps"]
    return data, expected, metadata


@valid("planes-with-grouped-and-raw", "A file of PLANES, GROUPED, CODEBOOK and RAW records: Version_Minor 2 "
       "(the largest minor among the features used) and Required_Features bits 0 and 1.")
def _planes_with_grouped():
    r = Rand(206)
    tensors = {
        "raw": np.array([0.5, -1.0, np.inf], "<f4"),
        "planes": enc("BF16", (4, 8), Dense(), planes(weights(r, 32, 0.1, "BF16"), 8, HUFFMAN)),
        "grouped": enc("F16", (2, 6), Dense(), grouped(6, [-1.0, 0.0, 1.0], r.ints(12, 3), [0.5, 2.0], [1, 0])),
        "codebook": enc("U8", (5,), Dense(), CodebookValues(np.array([7, 9], np.uint8), u16([0, 1, 1, 0, 1]), PACKED)),
    }
    data, expected, metadata = build(tensors, {"format": "mixed"})
    check_preamble(data, C.FEATURE_GROUPED | C.FEATURE_PLANES)
    return data, expected, metadata


@valid("planes-feature-bit-without-planes", "Version_Minor 2 and Required_Features bit 1 set, but no "
       "record is PLANES (writers set the bit only when one is; readers accept it).")
def _planes_bit_unused():
    data, expected, metadata = build({"a": np.arange(4, dtype="<f4")})
    m = parse(data)
    m.minor, m.required = 2, C.FEATURE_PLANES
    return serialize(m)[0], expected, metadata


@valid("planes-version-minor-0", "A PLANES record with Required_Features bit 1 in a file whose Version_Minor "
       "is 0 (and no Extension): a reader does not compare Version_Minor with the features.")
def _planes_minor_0():
    data, expected, metadata = build({"p": enc("F32", (3,), Dense(), planes(np.array([1.0, -2.0, 0.5], "<f4")))})
    m = parse(data)
    m.minor = 0
    return serialize(m)[0], expected, metadata


# === invalid ==========================================================================


def base_planes() -> bytes:
    """d: F32 DENSE (10,), Block_Size 4 (blocks of 4, 4, 2: 12 PACKED planes); s: F16 SPARSE (12,),
    Gap_Bits 3, gaps 0 4 2, Block_Size 2 (blocks of 2 and 1: gaps and 6 PACKED planes); h: F16 DENSE
    (45,) in [1, 2), one block of HUFFMAN planes (its exponent plane one Huffman-coded chunk)."""
    data = write_file({
        "d": enc("F32", (10,), Dense(), planes(np.arange(10, dtype="<f4") * 0.75 - 2, 4)),
        "s": enc("F16", (12,), Sparse(3, u16([0, 4, 2]), PACKED), planes(np.array([1.5, -0.25, 3e-5], "<f2"), 2)),
        "h": enc("F16", (45,), Dense(), planes(1 + np.arange(45, dtype="<f2") / 64, 45, HUFFMAN)),
    })
    assert len(roles(data, "d")) == 12 and roles(data, "s")[-1] == "mantissa2[1]"
    assert modes(data, "h", "exponent[0]") == [C.ChunkMode.HUFFMAN]
    return data


def _field(name: str, field: str, fmt: str, value):
    return patched(base_planes, lambda p: p.set("tensor", name, field, fmt, value))


def _trailing_bit(name: str, role: str):
    """Set the top bit of a PACKED plane's last byte (bits after its last symbol)."""
    return put_byte(seg_byte("tensor", name, role, -1), lambda b: b | 0x80)


def _refs_past_header(p) -> None:
    """d's Block_Size set to 1: 40 Segment_Refs, more than the rest of the header holds."""
    p.set("tensor", "d", "block_size", "Q", 1)
    assert p.at["header_end"] - (p.field("tensor", "d", "block_size") + 8) < 40 * C.SEGMENT_REF_SIZE


def _budget_base() -> bytes:
    """One F32 PLANES record of 4 units in one block."""
    return write_file({"big": enc("F32", (4,), Dense(), planes(np.ones(4, "<f4"), 4))})


# R40: where PLANES values may be
invalid("planes-without-feature-bit", "R40", "InvalidHeader",
        "A PLANES record in a file whose Required_Features is 0 (Version_Minor 2).",
        preamble("required", 0, base=base_planes))
invalid("planes-with-grouped-bit-only", "R40", "InvalidHeader",
        "A PLANES record in a file whose Required_Features has bit 0 (GROUPED) set, not bit 1.",
        preamble("required", C.FEATURE_GROUPED, base=base_planes))
invalid("planes-dtype-i32", "R40", "InvalidHeader", "A PLANES record of DType I32 (F32's size).",
        _field("d", "dtype", "B", C.DType.I32))
invalid("planes-dtype-u16", "R40", "InvalidHeader", "A SPARSE PLANES record of DType U16 (F16's size).",
        _field("s", "dtype", "B", C.DType.U16))
invalid("planes-dtype-bool", "R40", "InvalidHeader", "A PLANES record of DType BOOL.",
        _field("h", "dtype", "B", C.DType.BOOL))
invalid("planes-bank", "R40", "InvalidHeader", "A bank record (shape (10,): 10 scalar kernels) with PLANES values.",
        edited(base_planes, as_bank("d")))
# R41, R42: Block_Size
invalid("planes-block-size-0", "R41", "InvalidHeader", "A PLANES record with Block_Size 0.",
        _field("d", "block_size", "Q", 0))
invalid("planes-sparse-block-size-0", "R41", "InvalidHeader", "A SPARSE PLANES record with Block_Size 0.",
        _field("s", "block_size", "Q", 0))
invalid("planes-block-size-over-2-48", "R42", "LimitExceeded", "A PLANES record with Block_Size 2^48 + 1.",
        _field("s", "block_size", "Q", C.MAX_PLANE_BLOCK + 1))
invalid("planes-block-size-u64-max", "R42", "LimitExceeded", "A PLANES record with Block_Size 2^64 - 1.",
        _field("d", "block_size", "Q", (1 << 64) - 1))
# R43: every Segment_Ref in the header
invalid("planes-segment-refs-past-header", "R43", "TruncatedError",
        "A PLANES record of 10 F32 units with Block_Size 1: 40 plane Segment_Refs, more than the rest of "
        "the header holds.", patched(base_planes, _refs_past_header))
invalid("planes-segment-refs-huge-count", "R43", "TruncatedError",
        "A PLANES record of 2^40 F32 units with Block_Size 1: 2^42 Segment_Refs, refused from the count "
        "alone (never listed).",
        patched(base_planes, lambda p: (p.set("tensor", "d", "shape", "Q", 1 << 40),
                                        p.set("tensor", "d", "block_size", "Q", 1))))
invalid("planes-sparse-segment-refs-huge-count", "R43", "TruncatedError",
        "A SPARSE PLANES record of 2^48 units, Entry_Count 2^48 and Block_Size 1: its gaps and 3 x 2^48 plane "
        "Segment_Refs.", patched(base_planes, lambda p: (p.set("tensor", "s", "shape", "Q", C.MAX_ELEMENTS),
                                                          p.set("tensor", "s", "entry_count", "Q", C.MAX_ELEMENTS),
                                                          p.set("tensor", "s", "block_size", "Q", 1))))
# Segment codecs: plane segments are streams
invalid("planes-bytes-codec-on-plane", "R15", "InvalidHeader", "A plane Segment_Ref (mantissa2[1]) with Codec BYTES.",
        patched(base_planes, lambda p: p.put(p.segment("tensor", "d", "mantissa2[1]")[0], "B", C.SegmentCodec.BYTES)))
invalid("planes-codec-4-on-plane", "R14", "UnknownEncoding",
        "A plane Segment_Ref (exponent[1] of s) with Codec 4 (3 is AFFINE, v1.3).",
        patched(base_planes, lambda p: p.put(p.segment("tensor", "s", "exponent[1]")[0], "B", 4)))
# Plane streams
invalid("planes-packed-plane-short", "R22", "CorruptStream",
        "The PACKED exponent plane of d's last block (2 symbols of 8 bits) cut to 1 byte.",
        edited(base_planes, set_payload("d", "exponent[2]", lambda b: b[:-1])))
invalid("planes-packed-plane-long", "R22", "CorruptStream",
        "The PACKED mantissa2 plane of s's block 0 (2 symbols of 3 bits) given a second byte.",
        edited(base_planes, set_payload("s", "mantissa2[0]", lambda b: b + b"\x00")))
invalid("planes-packed-plane-trailing-bits", "R22", "NonZeroPadding",
        "The PACKED exponent plane of s's block 0 (2 symbols of 5 bits) with bit 7 set.",
        patched(base_planes, _trailing_bit("s", "exponent[0]")))
invalid("planes-huffman-plane-chunk-count-0", "R25", "CorruptStream",
        "The HUFFMAN exponent plane of h (45 symbols) with Chunk_Count 0.",
        stream_edited(base_planes, "h", "exponent[0]", lambda huff: setattr(huff, "chunk_count", 0)))
invalid("planes-huffman-plane-trailing-bits", "R28", "NonZeroPadding",
        "The Huffman-coded chunk of h's exponent plane (45 one-bit codes) with bit 47, after its last code, set.",
        stream_edited(base_planes, "h", "exponent[0]", set_bits(0, -1, 0x80)))
invalid("planes-plane-checksum", "R21", "ChecksumMismatch",
        "The Checksum of d's mantissa3[2] plane (the record's last segment) does not match.",
        patched(base_planes, lambda p: None, then=break_checksum("tensor", "d", "mantissa3[2]")))
invalid("planes-truncated-in-last-plane", "R19", "TruncatedError",
        "The file cut one byte short, in h's last plane (the file's last segment).", cut_after(base_planes, 1))
invalid("planes-header-cut-in-block-size", "R8", "TruncatedError",
        "Header_Size ends the header 4 bytes into d's Block_Size.",
        patched(base_planes, lambda p: p.put(20, "Q", p.field("tensor", "d", "block_size") + 4 - C.PREAMBLE_SIZE)))
invalid("planes-decode-budget", "R33", "DecodeLimitExceeded",
        "A PLANES record of 2^40 F32 units in one block (Block_Size 2^40): 4 TiB, over the decode budget, "
        "refused before its planes are read.",
        patched(_budget_base, lambda p: (p.set("tensor", "big", "shape", "Q", 1 << 40),
                                         p.set("tensor", "big", "block_size", "Q", 1 << 40))))

# Appendix B, "Order of checks", for PLANES records
order("planes-record-before-layout-parameters", "R40", "InvalidHeader", "R8",
      "The first record, SPARSE PLANES, in a file without Required_Features bit 1, the header cut right "
      "after its Value_Kind: R40 is checked as soon as Value_Kind is read, before Gap_Bits.",
      patched(edited(base_planes, to_front("s")),
              lambda p: (p.put(12, "I", 0),
                         p.put(20, "Q", p.field("tensor", "s", "value_kind") + 1 - C.PREAMBLE_SIZE))))
order("planes-block-size-before-entry-count", "R42", "LimitExceeded", "R15",
      "A SPARSE PLANES record with Block_Size 2^48 + 1 and Entry_Count 13 for 12 units: Block_Size is checked "
      "when read, Entry_Count after the value parameters.",
      patched(base_planes, lambda p: (p.set("tensor", "s", "entry_count", "Q", 13),
                                      p.set("tensor", "s", "block_size", "Q", C.MAX_PLANE_BLOCK + 1))))
order("planes-segment-count-before-segment-refs", "R43", "TruncatedError", "R14",
      "d's Block_Size 1 (more Segment_Refs than the header holds) and its first Segment_Ref with Codec 7: "
      "the count is checked before any Segment_Ref is read.",
      patched(base_planes, lambda p: (p.put(p.segment("tensor", "d", "exponent[0]")[0], "B", 7),
                                      p.set("tensor", "d", "block_size", "Q", 1))))
order("planes-checksums-before-planes", "R21", "ChecksumMismatch", "R22",
      "d's first plane cut short (its Checksum updated) and its last plane's Checksum wrong: every checksum "
      "of the record is verified before any plane is decoded.",
      patched(edited(base_planes, set_payload("d", "exponent[0]", lambda b: b[:-1])), lambda p: None,
              then=break_checksum("tensor", "d", "mantissa3[2]")))
order("planes-gaps-before-planes", "R31", "GapOverrun", "R22",
      "A SPARSE PLANES record whose gaps overrun the tensor and whose first plane has a bit set after its "
      "last symbol.",
      patched(base_planes, both(packed_symbol("tensor", "s", "gaps", 8, 2, 7), _trailing_bit("s", "exponent[0]"))))
order("planes-planes-in-order", "R22", "CorruptStream", "R22 (padding)",
      "In s's block 0, the mantissa1 plane one byte short and the later mantissa2 plane with a bit set after "
      "its last symbol: a block's planes are decoded in order.",
      patched(edited(base_planes, set_payload("s", "mantissa1[0]", lambda b: b[:-1])), _trailing_bit("s", "mantissa2[0]")))
order("planes-blocks-in-order", "R22", "NonZeroPadding", "R22 (length)",
      "Block 0's last plane (mantissa2[0]) with a bit set after its last symbol and block 1's exponent plane "
      "one byte short: every plane of block 0 comes before any of block 1.",
      patched(edited(base_planes, set_payload("s", "exponent[1]", lambda b: b[:-1])), _trailing_bit("s", "mantissa2[0]")))
