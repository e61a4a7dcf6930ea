"""BANK values: kernels selected from file-level banks; selectors in range (R30)."""

from __future__ import annotations

import numpy as np

from dcformat import BankValues, CodebookValues, Dense, Sparse

from .bases import base_selectors
from .common import HUFFMAN, PACKED, Rand, build, enc, sparsify, u16
from .edits import packed_symbol, patched
from .handcrafted import hc_symbols
from .registry import invalid, valid


@valid("bank-dense", "DENSE BANK tensors: 3x3 kernels of a 4-kernel bank (PACKED selectors), a tensor "
       "that is one kernel (one unit), rows of a bank of vectors (HUFFMAN), a bank of rank 1 (scalar "
       "kernels, K = 1) used by a rank-2 and a rank-0 tensor, and a zero-unit tensor.")
def _bank_dense():
    k33 = (np.arange(36, dtype="<f4") - 10).reshape(4, 3, 3)
    k5 = (np.arange(15, dtype="<i2") * 99 - 700).reshape(3, 5)
    scalars = np.array([5, 10, 15, 20, 250], np.uint8)
    r = Rand(11)
    tensors = {
        "conv": enc("F32", (2, 3, 3, 3), Dense(), BankValues("k33", u16([3, 0, 1, 1, 2, 3]), PACKED)),
        "one_unit": enc("F32", (3, 3), Dense(), BankValues("k33", u16([2]), HUFFMAN)),
        "rows": enc("I16", (40, 5), Dense(), BankValues("k5", u16(r.skewed(40, 3)), HUFFMAN)),
        "scalar_kernels": enc("U8", (2, 3), Dense(), BankValues("scalars", u16([4, 0, 3, 1, 2, 4]), PACKED)),
        "scalar_tensor": enc("U8", (), Dense(), BankValues("scalars", u16([3]), PACKED)),
        "empty_units": enc("F32", (0, 3, 3), Dense(), BankValues("k33", u16([]), PACKED)),
    }
    return build(tensors, banks={"k33": k33, "k5": k5, "scalars": scalars})


@valid("bank-sparse", "SPARSE BANK tensors: selectors placed by gaps, fillers selecting the all-zero "
       "kernel 0, units that no entry reaches left zero.")
def _bank_sparse():
    r = Rand(12)
    bank = np.array([[[0, 0], [0, 0]], [[1, 2], [3, 4]], [[-1, -2], [-3, -4]]], "<f4")
    mask = r.mask(24, 30)
    mask[0] = mask[-1] = False
    gaps, units = sparsify(mask, 2)
    sels = np.array([1 + u % 2 if mask[u] else 0 for u in units])
    mask2 = np.zeros(10, dtype=bool)
    mask2[[1, 4, 9]] = True
    gaps2, units2 = sparsify(mask2, 1)
    sels2 = np.array([2 if mask2[u] else 0 for u in units2])
    tensors = {
        "conv": enc("F32", (6, 4, 2, 2), Sparse(2, gaps, HUFFMAN), BankValues("k", u16(sels), PACKED)),
        "rows": enc("F32", (10, 2, 2), Sparse(1, gaps2, PACKED), BankValues("k", u16(sels2), HUFFMAN)),
    }
    assert len(gaps) > mask.sum()
    return build(tensors, banks={"k": bank})


@valid("bank-codebook-quantized", "Banks that are themselves encoded: a DENSE CODEBOOK bank with "
       "HUFFMAN codes and a SPARSE CODEBOOK bank; tensors select kernels from their decoded values.")
def _bank_codebook_quantized():
    r = Rand(13)
    q = enc("F16", (8, 3, 3), Dense(), CodebookValues(np.array([0, 0.5, -0.25, 1.0], "<f2"),
                                                        u16(r.skewed(72, 4)), HUFFMAN))
    sq = enc("F32", (4, 2), Sparse(2, u16([1, 0, 3]), PACKED), CodebookValues(
        np.array([0.0, 1.5], "<f4"), u16([1, 1, 1]), PACKED))
    tensors = {
        "w": enc("F16", (4, 2, 3, 3), Dense(), BankValues("q", u16(r.ints(8, 8)), HUFFMAN)),
        "v": enc("F32", (3, 2), Dense(), BankValues("sq", u16([3, 0, 1]), PACKED)),
    }
    return build(tensors, banks={"q": q, "sq": sq})


@valid("bank-and-tensor-same-name", "A bank and a tensor named alike (allowed: names are distinct "
       "among banks and among tensors); the tensor selects from that bank.")
def _bank_and_tensor_same_name():
    tensors = {"k": enc("F32", (3, 2), Dense(), BankValues("k", u16([1, 0, 1]), PACKED))}
    return build(tensors, banks={"k": np.array([[1, 2], [3, 4]], "<f4")})


@valid("bank-only", "A bank that no tensor uses, and no tensor: the file decodes to no tensors, but "
       "the bank's segments are still checked.")
def _bank_only():
    return build({}, {"note": "bank only"}, banks={"unused": np.array([[1, 2, 3]], "<i4")})


# R30 selectors in range
invalid("selector-out-of-range-packed", "R30", "SelectorOutOfRange",
        "A PACKED selector 3 for a bank of L = 3 kernels.",
        patched(base_selectors, packed_symbol("tensor", "t", "selectors", 3, 3, 3)))
invalid("selector-out-of-range-raw-chunk", "R30", "SelectorOutOfRange",
        "A raw chunk of a HUFFMAN selector stream holding 3 for L = 3.", hc_symbols("sel", [1, 0, 1, 3, 0]))
