"""The valid files most invalid vectors start from; each docstring says what it holds."""

from __future__ import annotations

import numpy as np

from dcformat import BankValues, CodebookValues, Dense, EncodedTensor, RawValues, Sparse
from dcformat.format.dtypes import numpy_dtype
from dcformat.streams import HuffmanCodec

from .common import EMPTY, HUFFMAN, PACKED, Rand, enc, u16, write_file
from .huff import huffman_modes
from .model import parse, serialize


def base_raw() -> bytes:
    """Metadata and two DENSE RAW tensors: a (F32, 24 bytes at 0) and b (I16, 10 bytes at 64)."""
    return write_file({"a": np.arange(6, dtype="<f4").reshape(2, 3), "b": np.array([1, -2, 3, -4, 5], "<i2")},
                      {"key": "value"})


def base_codebook() -> bytes:
    """w: U8 CODEBOOK (C = 5, 11 PACKED codes: 33 bits); s: F32 SPARSE, gaps 0 4 2 of 12 units."""
    return write_file({
        "w": enc("U8", (11,), Dense(), CodebookValues(np.array([10, 20, 30, 40, 50], np.uint8),
                                                     u16([0, 1, 2, 3, 4, 4, 3, 2, 1, 0, 2]), PACKED)),
        "s": enc("F32", (12,), Sparse(3, u16([0, 4, 2]), PACKED), RawValues(np.array([1, 2, 3], "<f4"))),
    })


def base_bank() -> bytes:
    """Banks k (F32 2x3x3) and k2 (unused, 1x3x3); t (2, 3, 3) selects k's kernels 1, 0."""
    k = np.arange(18, dtype="<f4").reshape(2, 3, 3)
    return write_file({"t": enc("F32", (2, 3, 3), Dense(), BankValues("k", u16([1, 0]), PACKED))},
                      banks={"k": k, "k2": k[:1] + 100})


def base_empty_last() -> bytes:
    """f (F32, 4 bytes) then e (U8, no element): e's empty segment sits at 64, the file ends in padding."""
    return write_file({"f": np.array([1.0], "<f4"), "e": np.zeros(0, np.uint8)})


def base_zero_size() -> bytes:
    """Zero-size tensors with segments: F32 codebook (PACKED codes), I16 codebook (HUFFMAN codes),
    F32 raw (an empty values segment), BOOL codebook."""
    return write_file({
        "cp": enc("F32", (0,), Dense(), CodebookValues(np.array([1, 2, 3], "<f4"), EMPTY, PACKED)),
        "ch": enc("I16", (0, 2), Dense(), CodebookValues(np.array([5, 6], "<i2"), EMPTY, HUFFMAN)),
        "r": np.zeros(0, "<f4"),
        "bool": enc("BOOL", (0,), Dense(), CodebookValues(np.array([False, True]), EMPTY, PACKED)),
    })


def base_sparse_empty() -> bytes:
    """Entry_Count 0 in 20 units: p with PACKED gaps, h with HUFFMAN gaps."""
    return write_file({
        "p": enc("F32", (4, 5), Sparse(2, EMPTY, PACKED), RawValues(np.zeros(0, "<f4"))),
        "h": enc("F32", (4, 5), Sparse(2, EMPTY, HUFFMAN), RawValues(np.zeros(0, "<f4"))),
    })


def base_all_raw_huffman() -> bytes:
    """A HUFFMAN code stream that the writer stores as raw chunks with Table_Size 0."""
    r = Rand(20)
    data = write_file({"r": enc("U8", (40,), Dense(), CodebookValues(
        np.arange(256, dtype=np.uint8), u16(r.ints(40, 256)), HuffmanCodec(chunk_symbols=16, chunk_multiple=1)))})
    huff = huffman_modes(data, "tensor", "r", "codes")
    assert huff.lengths == [] and [c[0] for c in huff.chunks] == [1, 1, 1]
    return data


def base_bool() -> bytes:
    """BOOL in each value kind: raw, codebook [0, 1, 1] (entry 2 unused), sparse raw (gaps 1 2 of 6
    units), a BOOL bank, and a sparse codebook (gaps 1 2 of 6 units)."""
    return write_file({
        "raw": np.array([True, False, True]),
        "book": enc("BOOL", (4,), Dense(), CodebookValues(np.array([False, True, True]), u16([0, 1, 1, 0]), PACKED)),
        "sparse": enc("BOOL", (6,), Sparse(2, u16([1, 2]), PACKED), RawValues(np.array([True, True]))),
        "sel": enc("BOOL", (2, 2), Dense(), BankValues("bits", u16([1, 0]), PACKED)),
        "sbook": enc("BOOL", (6,), Sparse(2, u16([1, 2]), PACKED),
                     CodebookValues(np.array([False, True]), u16([1, 1]), PACKED)),
    }, banks={"bits": np.array([[False, False], [True, False]])})


def empty_sparse(dtype: str, rank: int) -> EncodedTensor:
    """A SPARSE RAW record of ``rank`` dimensions of 1 without entries: it has no segment bytes."""
    return enc(dtype, (1,) * rank, Sparse(1, EMPTY, PACKED), RawValues(np.zeros(0, numpy_dtype(dtype))))


def reshaped(data: bytes, *, tensors: dict | None = None, banks: dict | None = None) -> bytes:
    """``data`` with the named tensors and banks given other shapes of the same rank.

    The writer refuses a file that readers would refuse under their default decode budget,
    so a huge record is written as :func:`empty_sparse` and reshaped here: no other byte of
    such a record depends on its shape. The header checksum is recomputed.
    """
    m = parse(data)
    for find, shapes in ((m.tensor, tensors or {}), (m.bank, banks or {})):
        for name, shape in shapes.items():
            rec = find(name)
            assert len(rec.shape) == len(shape), (name, shape)
            rec.shape = list(shape)
    return serialize(m)[0]


def base_huge_sparse(shape, dtype: str = "U8") -> bytes:
    """A SPARSE RAW tensor "huge" of the given shape with no entry: a tiny file, a huge tensor."""
    return reshaped(write_file({"huge": empty_sparse(dtype, len(shape))}), tensors={"huge": shape})


def base_selectors() -> bytes:
    """t selects from a bank of L = 3 kernels with PACKED 2-bit selectors; q is a bank whose codes are PACKED."""
    q = enc("F32", (3, 2), Dense(), CodebookValues(np.array([0, 1, 2], "<f4"), u16([0, 1, 2, 0, 1, 2]), PACKED))
    return write_file({"t": enc("F32", (4, 2), Dense(), BankValues("k", u16([0, 1, 2, 1]), PACKED)),
                       "c": enc("F32", (5,), Sparse(2, u16([0, 1, 0]), PACKED),
                                CodebookValues(np.array([0, 1, 2], "<f4"), u16([1, 2, 1]), PACKED))},
                      banks={"k": np.array([[1, 2], [3, 4], [5, 6]], "<f4"), "q": q})
