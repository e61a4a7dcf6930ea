"""SPARSE layouts: gaps of every width, fillers, empty streams; positions in range (R31)."""

from __future__ import annotations

import numpy as np

from dcformat import BankValues, CodebookValues, RawValues, Sparse
from dcformat.streams import HuffmanCodec

from .bases import base_codebook
from .common import F32_ONE, HUFFMAN, PACKED, Rand, build, enc, sparsify, u16, write_file
from .edits import edited, set_attr
from .handcrafted import HC_GAPS, hc_symbols
from .huff import huffman_modes, pack_symbols
from .model import parse, serialize
from .registry import invalid, valid


@valid("sparse-raw-values", "SPARSE RAW tensors: HUFFMAN and PACKED gap streams, entries on the first "
       "and the last unit, and 64-bit values.")
def _sparse_raw_values():
    r = Rand(9)
    mask = r.mask(120, 25)
    gaps, units = sparsify(mask, 5)
    vals = np.array([r.below(1 << 20) / 64 - 8000 for _ in units], "<f4")
    i32_gaps = u16([0, 3, 7, 2, 7, 0, 5, 7, 7, 2])  # first unit, ..., unit 49 = last
    assert int((i32_gaps.astype(int) + 1).sum()) == 50
    tensors = {
        "f32_huffman_gaps": enc("F32", (10, 12), Sparse(5, gaps, HUFFMAN), RawValues(vals)),
        "i32_packed_gaps": enc("I32", (50,), Sparse(3, i32_gaps, PACKED),
                               RawValues(np.arange(1, 11, dtype="<i4") * -7)),
        "u64_first_last": enc("U64", (7,), Sparse(4, u16([0, 5]), PACKED),
                              RawValues(np.array([2**64 - 1, 2**63], "<u8"))),
    }
    return build(tensors)


@valid("sparse-codebook-max-gap-filler", "SPARSE CODEBOOK tensors with Gap_Bits 3: runs of exactly "
       "7 zero units (the widest gap, no filler), and of 8, 15, 16, 20 and 23 zeros bridged by filler "
       "entries (gap 7, code 0 whose codebook value is 0.0); raw-valued fillers too; PACKED and HUFFMAN gaps.")
def _sparse_max_gap_filler():
    runs = [7, 8, 20, 15, 16, 0, 23, 7]
    dense, codes_dense = [], []
    for k, run in enumerate(runs):
        dense += [0] * run + [1]
        codes_dense += [0] * run + [1 + k % 3]
    dense += [0] * 5
    codes_dense += [0] * 5
    nonzero = np.array(dense, dtype=bool)
    gaps, units = sparsify(nonzero, 3)
    assert 7 in gaps and len(gaps) > nonzero.sum()
    codes = np.array(codes_dense)[units]
    book = np.array([0.0, 1.0, -2.0, 3.5], "<f4")
    n = nonzero.size
    raw_values = np.array([(u * 3) % 7 + 1 if nonzero[u] else 0 for u in units], "<i2")
    tensors = {
        "packed_gaps": enc("F32", (n,), Sparse(3, gaps, PACKED), CodebookValues(book, u16(codes), PACKED)),
        "huffman_gaps": enc("F32", (n,), Sparse(3, gaps, HUFFMAN), CodebookValues(book, u16(codes), HUFFMAN)),
        "raw_fillers": enc("I16", (n,), Sparse(3, gaps, PACKED), RawValues(raw_values)),
    }
    return build(tensors)


@valid("sparse-gap-bits-1", "Gap_Bits 1 (alphabet 2): every skip of more than one zero needs fillers; "
       "PACKED and HUFFMAN gap streams.")
def _sparse_gap_bits_1():
    r = Rand(10)
    mask = r.mask(40, 30)
    gaps, units = sparsify(mask, 1)
    raw = np.array([(7 * u) % 250 + 1 if mask[u] else 0 for u in units], np.uint8)
    codes = np.array([1 + u % 2 if mask[u] else 0 for u in units])
    tensors = {
        "packed_u8": enc("U8", (40,), Sparse(1, gaps, PACKED), RawValues(raw)),
        "huffman_codebook": enc("F16", (5, 8), Sparse(1, gaps, HUFFMAN),
                                CodebookValues(np.array([0, 1, -1], "<f2"), u16(codes), PACKED)),
    }
    return build(tensors)


@valid("sparse-gap-bits-16", "Gap_Bits 16 (alphabet 65536, 16-bit packed gaps) with small gaps, "
       "PACKED and HUFFMAN.")
def _sparse_gap_bits_16():
    gaps = u16([3, 0, 12, 40, 1])
    tensors = {
        "packed_f32": enc("F32", (70,), Sparse(16, gaps, PACKED), RawValues(np.arange(1, 6, dtype="<f4"))),
        "huffman_i8": enc("I8", (70,), Sparse(16, gaps, HUFFMAN), RawValues(np.arange(-5, 0, dtype=np.int8))),
    }
    return build(tensors)


@valid("sparse-gap-bits-16-max-gap", "Gap_Bits 16 with a gap of exactly 65535 (the widest), then "
       "gap 0, in a U8 tensor of 65538 units.")
def _sparse_gap_bits_16_max():
    tensors = {"u8": enc("U8", (65538,), Sparse(16, u16([65535, 0]), PACKED),
                         RawValues(np.array([17, 42], np.uint8)))}
    return build(tensors)


@valid("sparse-empty", "SPARSE records with Entry_Count 0: all-zero tensors with empty PACKED and "
       "HUFFMAN gap streams (Chunk_Count 0), an empty code stream, a tensor of zero units, and BANK "
       "selectors.")
def _sparse_empty():
    empty = u16([])
    tensors = {
        "packed_f32": enc("F32", (4, 5), Sparse(1, empty, PACKED), RawValues(np.zeros(0, "<f4"))),
        "huffman_i8": enc("I8", (3, 3), Sparse(7, empty, HUFFMAN), RawValues(np.zeros(0, np.int8))),
        "codebook_f16": enc("F16", (2, 8), Sparse(2, empty, HUFFMAN),
                            CodebookValues(np.array([1.0, 2.0], "<f2"), empty, HUFFMAN)),
        "zero_units_u8": enc("U8", (0, 3), Sparse(1, empty, PACKED), RawValues(np.zeros(0, np.uint8))),
        "bank_f32": enc("F32", (3, 2), Sparse(2, empty, HUFFMAN), BankValues("b", empty, PACKED)),
    }
    return build(tensors, banks={"b": np.array([[1, 2], [3, 4]], "<f4")})


@valid("sparse-gaps-multi-chunk", "A HUFFMAN gap stream of 16-symbol chunks, some Huffman-coded and "
       "some raw, whose Start_Positions (units covered by the entries before each chunk) are non-zero; "
       "CODEBOOK values with HUFFMAN codes in chunks too.")
def _sparse_gaps_multi_chunk():
    r = Rand(16)
    dense = np.concatenate([r.mask(200, 40), r.mask(200, 8), r.mask(100, 60)])
    gaps, units = sparsify(dense, 4)
    codes = r.skewed(len(units), 6)
    codes[~dense[units]] = 0
    codes[dense[units] & (codes == 0)] = 5
    tensors = {"w": enc("F32", (500,), Sparse(4, gaps, HuffmanCodec(chunk_symbols=16, chunk_multiple=1)),
                        CodebookValues(np.array([0, 1, 2, 3, 4, -1], "<f4"), u16(codes), HuffmanCodec(chunk_symbols=64, chunk_multiple=1)))}
    data, expected, metadata = build(tensors)
    huff = huffman_modes(data, "tensor", "w", "gaps")
    assert len(huff.chunks) > 4 and {c[0] for c in huff.chunks} == {0, 1}, [c[0] for c in huff.chunks]
    assert all(c[3] > 0 for c in huff.chunks[1:])
    return data, expected, metadata


# R31 sparse positions
invalid("gap-overrun-by-one", "R31", "GapOverrun",
        "PACKED gaps 0 4 6 in a tensor of 12 units: the last entry lands on unit 12.",
        edited(base_codebook, set_attr(lambda m: m.tensor("s").seg("gaps"), payload=pack_symbols([0, 4, 6], 8))))
invalid("gap-overrun-huffman", "R31", "GapOverrun",
        "The hand-made gap stream with its last gap 6 instead of 5: the last entry lands on unit 40 of 40 "
        "(Start_Positions consistent).", hc_symbols("gaps", HC_GAPS[:-1] + [6]))
invalid("gap-overrun-fillers", "R31", "GapOverrun",
        "Two entries of the widest gap (7) in a tensor of 10 units: the second lands on unit 15.",
        edited(base_codebook, lambda m: (
            set_attr(lambda m: m.tensor("s"), shape=[10], entry_count=2)(m),
            set_attr(lambda m: m.tensor("s").seg("gaps"), payload=pack_symbols([7, 7], 8))(m),
            set_attr(lambda m: m.tensor("s").seg("values"), payload=F32_ONE * 2)(m))))
def _gap_far() -> bytes:
    data = write_file({"u8": enc("U8", (5,), Sparse(16, u16([3]), PACKED), RawValues(np.array([9], np.uint8)))})
    m = parse(data)
    m.tensor("u8").seg("gaps").payload = pack_symbols([0xFFFF], 1 << 16)
    return serialize(m)[0]


invalid("gap-overrun-far", "R31", "GapOverrun",
        "One entry of gap 65535 (Gap_Bits 16) in a U8 tensor of 5 units.", _gap_far)
