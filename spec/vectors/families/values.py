"""Raw values: every dtype, NaN payloads, scalars and zero sizes, BOOL (R32)."""

from __future__ import annotations

import numpy as np

from dcformat import BankValues, CodebookValues, Dense, RawValues, Sparse

from .bases import base_bool, base_zero_size
from .common import BF16, E4M3, E5M2, HUFFMAN, PACKED, Rand, build, enc, from_bits, sparsify, u16
from .edits import patched, put_byte, seg_byte
from .model import parse, serialize
from .registry import invalid, valid


@valid("raw-every-dtype", "Every DType of Table A.1 stored DENSE RAW, with extreme values: integer "
       "minima and maxima, signed zeros, infinities, NaNs, subnormals, and all 256 bit patterns of "
       "both float8 types (E4M3 NaN 0x7F/0xFF included); ranks 1 to 3.")
def _raw_every_dtype():
    f64 = [0, 1 << 63, 0x3FF0000000000000, 0x400921FB54442D18, 0x7FF0000000000000,
           0xFFF0000000000000, 0x7FF8000000000000, 1, 0x800FFFFFFFFFFFFF, 0x7FEFFFFFFFFFFFFF]
    tensors = {
        "bool": np.array([True, False, False, True, True, False]).reshape(2, 3),
        "u8": np.array([0, 1, 127, 128, 254, 255], np.uint8),
        "i8": np.array([-128, -127, -1, 0, 1, 127], np.int8),
        "i16": np.array([-32768, -1, 0, 1, 0x1234, 32767], "<i2").reshape(3, 2),
        "u16": np.array([0, 1, 0x00FF, 0xFF00, 0x8000, 0xFFFF], "<u2"),
        "i32": np.array([-2**31, -1, 0, 1, 0x12345678, 2**31 - 1], "<i4").reshape(1, 2, 3),
        "u32": np.array([0, 1, 0xDEADBEEF, 0x80000000, 0xFFFFFFFF], "<u4"),
        "i64": np.array([-2**63, -1, 0, 1, 0x0123456789ABCDEF, 2**63 - 1], "<i8").reshape(2, 3),
        "u64": np.array([0, 1, 0xFEDCBA9876543210, 2**63, 2**64 - 1], "<u8"),
        "f16": from_bits(np.float16, [0x0000, 0x8000, 0x3C00, 0xC100, 0x7C00, 0xFC00, 0x7E00, 0x0001,
                                      0x8001, 0x03FF, 0x7BFF, 0xFBFF], (3, 4)),
        "bf16": from_bits(BF16, [0x0000, 0x8000, 0x3F80, 0xBFC0, 0x7F80, 0xFF80, 0x7FC0, 0x0001,
                                 0x807F, 0x7F7F]),
        "f32": from_bits(np.float32, [0, 0x80000000, 0x3F800000, 0xC0490FDB, 0x7F800000, 0xFF800000,
                                      0x7FC00000, 0x00000001, 0x807FFFFF, 0x7F7FFFFF], (5, 2)),
        "f64": from_bits(np.float64, f64),
        "f8_e4m3": from_bits(E4M3, range(256), (16, 16)),
        "f8_e5m2": from_bits(E5M2, range(256), (4, 8, 8)),
    }
    return build(tensors)


@valid("raw-zero-size-and-scalar", "Rank-0 scalars (one element), zero-size tensors (a zero "
       "dimension anywhere, N = 0, Length 0 segments), a rank-8 tensor (the maximum), and a last "
       "segment of Length 0 placed at an aligned offset past the end of the one before it, so the "
       "file ends in zero padding.")
def _raw_zero_size_and_scalar():
    tensors = {
        "scalar_f64": np.array(-0.0, "<f8"),
        "empty_i64": np.zeros(0, "<i8"),
        "scalar_bool": np.array(True),
        "empty_rank3_bf16": np.zeros((3, 0, 2), BF16),
        "rank8_i16": np.arange(8, dtype="<i2").reshape(1, 2, 1, 2, 1, 2, 1, 1),
        "scalar_u64": np.array(2**64 - 2, "<u8"),
        "scalar_f32": np.array(3.5, "<f4"),
        "empty_last_u8": np.zeros((0,), np.uint8),
    }
    data, expected, metadata = build(tensors)
    at = serialize(parse(data))[1]
    ref = at["tensor", len(tensors) - 1, "seg", "values"]
    assert ref[2] == 0 and ref[1] == len(data) and (ref[1] - at["data_offset"]) % 64 == 0
    return data, expected, metadata


@valid("bf16-nan-payloads", "NaN payloads (signalling and quiet, both signs) in BF16, F16, F32, F64 "
       "and the float8 types, stored RAW, as codebook entries (gathered by codes) and as sparse "
       "values: readers must copy bits, never convert through another float type.")
def _bf16_nan_payloads():
    r = Rand(3)
    bf16_book = from_bits(BF16, [0x7FC3, 0xFF82, 0x8000, 0x0000, 0x7F81, 0x3F80])
    codes = r.ints(15, 6)
    gaps = u16([1, 0, 3, 2])
    tensors = {
        "bf16_raw": from_bits(BF16, [0x7F81, 0xFF81, 0x7FC1, 0xFFC1, 0x7FFF, 0xFFFF, 0x7FA5, 0x7F80]),
        "bf16_codebook": enc("BF16", (3, 5), Dense(), CodebookValues(bf16_book, u16(codes), PACKED)),
        "bf16_sparse": enc("BF16", (12,), Sparse(2, gaps, PACKED),
                           RawValues(from_bits(BF16, [0xFFC5, 0x7F82, 0x8000, 0x7FFE]))),
        "f16_raw": from_bits(np.float16, [0x7C01, 0xFC01, 0x7E01, 0x7FFF, 0xFFFF, 0x7D55]),
        "f32_raw": from_bits(np.float32, [0x7F800001, 0xFF800001, 0x7FC00001, 0x7FFFFFFF, 0xFFBFFFFF]),
        "f64_raw": from_bits(np.float64, [0x7FF0000000000001, 0xFFF8000000000001, 0x7FFFFFFFFFFFFFFF]),
        "f8_e5m2_codebook": enc("F8_E5M2", (2, 4), Dense(),
                                CodebookValues(from_bits(E5M2, [0x7D, 0x7E, 0xFF, 0x7C]), u16([0, 1, 2, 3, 3, 2, 1, 0]),
                                               HUFFMAN)),
        "f8_e4m3_codebook": enc("F8_E4M3", (5,), Dense(),
                                CodebookValues(from_bits(E4M3, [0x7F, 0xFF, 0x80]), u16([0, 1, 2, 1, 0]), PACKED)),
    }
    return build(tensors)


@valid("zero-size-encoded", "Zero-size tensors that still have segments: CODEBOOK with PACKED and "
       "HUFFMAN empty code streams (the codebook is stored), SPARSE with no units, BANK with no units.")
def _zero_size_encoded():
    empty = u16([])
    tensors = {
        "codebook_packed": enc("F32", (0,), Dense(), CodebookValues(np.array([1, 2, 3], "<f4"), empty, PACKED)),
        "codebook_huffman": enc("I16", (2, 0), Dense(), CodebookValues(np.array([5, 6], "<i2"), empty, HUFFMAN)),
        "sparse_raw": enc("F64", (0, 4), Sparse(3, empty, HUFFMAN), RawValues(np.zeros(0, "<f8"))),
        "bank": enc("F32", (0, 2), Dense(), BankValues("b", empty, HUFFMAN)),
        "bool_codebook": enc("BOOL", (0,), Dense(), CodebookValues(np.array([False, True]), empty, PACKED)),
    }
    return build(tensors, banks={"b": np.array([[1, 2]], "<f4")})


@valid("bool-encodings", "BOOL in every value kind: RAW, CODEBOOK (PACKED and HUFFMAN), SPARSE RAW "
       "with false fillers, and a BOOL bank.")
def _bool_encodings():
    r = Rand(15)
    mask = r.mask(30, 20)
    gaps, units = sparsify(mask, 2)
    book = np.array([False, True])
    tensors = {
        "raw": np.array([True, False, True, True]),
        "codebook_packed": enc("BOOL", (3, 4), Dense(), CodebookValues(book, u16(r.ints(12, 2)), PACKED)),
        "codebook_huffman": enc("BOOL", (60,), Dense(), CodebookValues(book, u16(r.skewed(60, 2)), HUFFMAN)),
        "sparse": enc("BOOL", (30,), Sparse(2, gaps, PACKED), RawValues(mask[units])),
        "bank": enc("BOOL", (4, 3), Dense(), BankValues("bits", u16([1, 0, 1, 1]), PACKED)),
    }
    return build(tensors, banks={"bits": np.array([[False, False, False], [True, False, True]])})


# R32 BOOL bytes
invalid("bool-raw-byte-2", "R32", "InvalidValue", "A BOOL RAW value byte 0x02.",
        patched(base_bool, put_byte(seg_byte("tensor", "raw", "values", 1), lambda b: 2)))
invalid("bool-raw-byte-ff", "R32", "InvalidValue", "A BOOL RAW value byte 0xFF.",
        patched(base_bool, put_byte(seg_byte("tensor", "raw", "values", 2), lambda b: 0xFF)))
invalid("bool-codebook-byte-2", "R32", "InvalidValue", "A BOOL codebook entry 0x02 that codes select.",
        patched(base_bool, put_byte(seg_byte("tensor", "book", "codebook", 1), lambda b: 2)))
invalid("bool-codebook-unused-entry", "R32", "InvalidValue",
        "A BOOL codebook entry 0x02 that no code selects: every stored byte must be 0 or 1.",
        patched(base_bool, put_byte(seg_byte("tensor", "book", "codebook", 2), lambda b: 2)))
invalid("bool-sparse-raw-byte-2", "R32", "InvalidValue", "A BOOL SPARSE RAW value byte 0x02.",
        patched(base_bool, put_byte(seg_byte("tensor", "sparse", "values", 0), lambda b: 2)))
invalid("bool-bank-byte-2", "R32", "InvalidValue", "A byte 0x02 in a BOOL bank a tensor selects from.",
        patched(base_bool, put_byte(seg_byte("bank", "bits", "values", 3), lambda b: 2)))
invalid("bool-codebook-zero-size-tensor", "R32", "InvalidValue",
        "A BOOL codebook entry 0x02 in a zero-size tensor: the codebook is stored, so it is checked.",
        patched(base_zero_size, put_byte(seg_byte("tensor", "bool", "codebook", 1), lambda b: 2)))
