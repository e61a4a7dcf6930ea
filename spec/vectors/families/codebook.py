"""CODEBOOK values: codes at every width, codebooks of 1 to 4096 entries; codes in range (R30)."""

from __future__ import annotations

import numpy as np

from dcformat import CodebookValues, Dense
from dcformat.streams import HuffmanCodec

from .bases import base_codebook, base_selectors
from .common import HUFFMAN, PACKED, Rand, build, enc, u16
from .edits import packed_symbol, patched
from .handcrafted import HC_CODES, hc_symbols
from .huff import huffman_modes
from .registry import invalid, valid


@valid("codebook-packed", "DENSE CODEBOOK tensors with PACKED codes at widths 1, 2, 3, 4 and 8 bits "
       "(alphabets 2, 3, 5, 16, 256), symbols crossing byte boundaries, zero trailing bits in the "
       "last byte, codebook entries never used, and a rank-0 tensor holding one code.")
def _codebook_packed():
    r = Rand(4)
    tensors = {
        "c16_f32": enc("F32", (6, 7), Dense(), CodebookValues(
            (np.arange(16, dtype="<f4") * 0.25 - 2), u16(r.ints(42, 16)), PACKED)),
        "c5_f64": enc("F64", (11,), Dense(), CodebookValues(
            np.array([0.0, -1.0, 2.5, 1e300, -1e-300], "<f8"), u16([0, 1, 2, 3, 4, 4, 3, 2, 1, 0, 2]), PACKED)),
        "c2_i16": enc("I16", (19,), Dense(), CodebookValues(
            np.array([-7, 300], "<i2"), u16(r.ints(19, 2)), PACKED)),
        "c3_u8_scalar": enc("U8", (), Dense(), CodebookValues(np.array([9, 8, 7], np.uint8), u16([2]), PACKED)),
        "c256_u8": enc("U8", (3, 3), Dense(), CodebookValues(
            (255 - np.arange(256)).astype(np.uint8), u16([0, 255, 1, 254, 128, 127, 3, 3, 200]), PACKED)),
        "c16_unused_i32": enc("I32", (4,), Dense(), CodebookValues(
            np.arange(16, dtype="<i4") * -1000, u16([15, 15, 0, 15]), PACKED)),
    }
    return build(tensors)


@valid("codebook-huffman", "DENSE CODEBOOK tensors with HUFFMAN codes as the writer makes them: one "
       "Huffman-coded chunk, and two chunks whose last is shorter than the first.")
def _codebook_huffman():
    r = Rand(5)
    tensors = {
        "skewed_f16": enc("F16", (40, 25), Dense(), CodebookValues(
            (np.arange(32, dtype="<f2") - 16) / 8, u16(r.skewed(1000, 32)), HUFFMAN)),
        "two_chunks_f32": enc("F32", (700,), Dense(), CodebookValues(
            np.linspace(-1, 1, 8, dtype="<f4"), u16(r.skewed(700, 8)), HuffmanCodec(chunk_symbols=512, chunk_multiple=1))),
    }
    data, expected, metadata = build(tensors)
    assert [c[0] for c in huffman_modes(data, "tensor", "skewed_f16", "codes").chunks] == [0]
    assert [c[0] for c in huffman_modes(data, "tensor", "two_chunks_f32", "codes").chunks] == [0, 0]
    return data, expected, metadata


@valid("codebook-12bit", "Codebooks of 4096 entries (12-bit symbols): PACKED codes using the first "
       "and last entries; a HUFFMAN stream whose Table_Size is far below the alphabet (symbols from "
       "Table_Size to C-1 have no code); and a HUFFMAN stream of raw chunks at width 12 (Table_Size 0).")
def _codebook_12bit():
    r = Rand(6)
    big = (np.arange(4096, dtype=np.int64) * 7 - 14000).astype("<i2")
    low = (np.arange(4096) % 251).astype(np.uint8)
    codes = r.ints(50, 4096)
    codes[0], codes[-1] = 0, 4095
    tensors = {
        "packed_i16": enc("I16", (5, 10), Dense(), CodebookValues(big, u16(codes), PACKED)),
        "huffman_low_u8": enc("U8", (200,), Dense(), CodebookValues(low, u16(r.skewed(200, 10)), HUFFMAN)),
        "huffman_raw_u8": enc("U8", (40,), Dense(), CodebookValues(low, u16(r.ints(40, 4096)), HUFFMAN)),
    }
    data, expected, metadata = build(tensors)
    huff = huffman_modes(data, "tensor", "huffman_low_u8", "codes")
    assert len(huff.lengths) <= 10 and huff.chunks[0][0] == 0
    huff = huffman_modes(data, "tensor", "huffman_raw_u8", "codes")
    assert huff.lengths == [] and huff.chunks[0][0] == 1
    return data, expected, metadata


@valid("codebook-single-entry", "Codebook_Size 1: codes are 1-bit zeros (width max(1, bitlength(0)) "
       "= 1), PACKED and HUFFMAN (stored as raw chunks with Table_Size 0), including a scalar.")
def _codebook_single_entry():
    tensors = {
        "packed_f32": enc("F32", (3, 4), Dense(), CodebookValues(np.array([-1.5], "<f4"), u16([0] * 12), PACKED)),
        "huffman_f32": enc("F32", (100,), Dense(), CodebookValues(np.array([2.25], "<f4"), u16([0] * 100), HUFFMAN)),
        "scalar_i8": enc("I8", (), Dense(), CodebookValues(np.array([-3], np.int8), u16([0]), PACKED)),
    }
    return build(tensors)


# R30 codes in range
invalid("code-out-of-range-packed", "R30", "CodeOutOfRange",
        "A PACKED code 5 for Codebook_Size 5 (3-bit codes).",
        patched(base_codebook, packed_symbol("tensor", "w", "codes", 5, 0, 5)))
invalid("code-out-of-range-packed-max", "R30", "CodeOutOfRange",
        "A PACKED code 7, the largest 3-bit value, for Codebook_Size 5 (the last symbol).",
        patched(base_codebook, packed_symbol("tensor", "w", "codes", 5, 10, 7)))
invalid("code-out-of-range-sparse", "R30", "CodeOutOfRange", "A SPARSE CODEBOOK tensor with a code 3 for C = 3.",
        patched(base_selectors, packed_symbol("tensor", "c", "codes", 3, 2, 3)))
invalid("code-out-of-range-bank-codebook", "R30", "CodeOutOfRange",
        "A CODEBOOK-valued bank (no tensor selects from it) with a code 3 for C = 3.",
        patched(base_selectors, packed_symbol("bank", "q", "codes", 3, 4, 3)))
invalid("code-out-of-range-raw-chunk", "R30", "CodeOutOfRange",
        "A raw chunk of a HUFFMAN code stream holding 6 for Codebook_Size 6.",
        hc_symbols("codes", HC_CODES[:8] + [6] + HC_CODES[9:]))
