"""Limits on counts, lengths, rank, N, codebook and bank sizes (R10), and values at them."""

from __future__ import annotations

import numpy as np

from dcformat import BankValues, CodebookValues, Dense, RawValues, Sparse
from dcformat.format import constants as C

from .bases import base_bank, base_codebook, base_huge_sparse, base_raw
from .common import EMPTY, M64, PACKED, build, enc, u16, write_file
from .edits import edited, patched, rename, set_attr, shape_at
from .model import Rec, Seg
from .registry import invalid, valid


@valid("zero-size-huge-dims", "Zero-size tensors whose other dimensions are as large as allowed: "
       "the product of the non-zero dimensions is exactly 2^48.")
def _zero_size_huge_dims():
    tensors = {
        "u8": np.zeros((0, 1 << 48), np.uint8),
        "f64": np.zeros((1 << 24, 0, 1 << 24), "<f8"),
        "codebook": enc("I16", (1 << 47, 2, 0), Dense(), CodebookValues(np.array([1, 2], "<i2"), EMPTY, PACKED)),
    }
    return build(tensors)


@valid("limits-at-maximum", "Values at their limits: a 4096-byte tensor name and metadata key, rank 8, "
       "and a bank of L = 65536 kernels (SPARSE, no entries) selected with 16-bit selectors including 65535.")
def _limits_at_maximum():
    long_name = "n" * 4092 + "🚀"
    assert len(long_name.encode()) == 4096
    key = "k" * 4094 + "é"
    assert len(key.encode()) == 4096
    bank = enc("U8", (65536, 1), Sparse(16, u16([]), PACKED), RawValues(np.zeros(0, np.uint8)))
    tensors = {
        long_name: np.array([1, 2], "<i4"),
        "rank8": np.arange(256, dtype="<u2").reshape(2, 2, 2, 2, 2, 2, 2, 2),
        "sel": enc("U8", (3, 1), Dense(), BankValues("big", u16([0, 65535, 32768]), PACKED)),
    }
    return build(tensors, {key: "max"}, banks={"big": bank})


# R10 limits
invalid("rank-9", "R10", "LimitExceeded",
        "A DENSE RAW tensor of rank 9, shape (1, 1, 1, 1, 1, 1, 1, 2, 3): everything else consistent.",
        edited(base_raw, set_attr(lambda m: m.tensor("a"), shape=[1] * 7 + [2, 3])))
invalid("tensor-name-4097-bytes", "R10", "LimitExceeded", "A tensor name of 4097 bytes (the limit is 4096).",
        edited(base_raw, rename("tensor", 0, b"a" * 4097)))
invalid("bank-name-4097-bytes", "R10", "LimitExceeded", "A bank name of 4097 bytes (the limit is 4096).",
        edited(base_bank, rename("bank", 1, b"k" * 4097)))
invalid("metadata-key-4097-bytes", "R10", "LimitExceeded", "A metadata key of 4097 bytes (the limit is 4096).",
        edited(base_raw, lambda m: m.metadata.__setitem__(0, (b"k" * 4097, b"value"))))
invalid("metadata-value-length-over-limit", "R10", "LimitExceeded",
        "A metadata value whose length field says 16,777,217 bytes (the limit is 16,777,216) in a "
        "small header: refused when the length is read, before its bytes.",
        patched(base_raw, lambda p: p.put(p.at["meta", 0, "value"], "I", C.MAX_METADATA_VALUE_BYTES + 1)))
invalid("metadata-count-over-limit", "R10", "LimitExceeded",
        "Metadata_Count 65,537 (the limit is 65,536): refused when the count is read.",
        patched(base_raw, lambda p: p.put(p.at["metadata_count"], "I", C.MAX_METADATA_ENTRIES + 1)))
invalid("bank-count-over-limit", "R10", "LimitExceeded", "Bank_Count 1025 (the limit is 1024).",
        patched(base_raw, lambda p: p.put(p.at["bank_count"], "I", C.MAX_BANKS + 1)))
invalid("tensor-count-over-limit", "R10", "LimitExceeded", "Tensor_Count 1,048,577 (the limit is 1,048,576).",
        patched(base_raw, lambda p: p.put(p.at["tensor_count"], "I", C.MAX_TENSORS + 1)))
invalid("elements-over-2-48", "R10", "LimitExceeded",
        "A SPARSE tensor without entries of shape (2^24, 2^24 + 1): N = 2^48 + 2^24 > 2^48.",
        patched(lambda: base_huge_sparse((1 << 24, 1 << 24)), lambda p: p.put(shape_at("huge", 1)(p), "Q", (1 << 24) + 1)))
invalid("elements-product-wraps-u64", "R10", "LimitExceeded",
        "A DENSE RAW F32 tensor of shape (2, 2^63 + 3) with 6 values: N = 2^64 + 6, which is 6 if "
        "the product wraps at 64 bits.",
        patched(base_raw, lambda p: p.put(shape_at("a", 1)(p), "Q", (1 << 63) + 3)))
invalid("codebook-size-65537", "R10", "LimitExceeded",
        "Codebook_Size 65,537 (the limit is 65,536); the codebook segment keeps its 5 bytes: the field "
        "is refused as soon as it is read, before its Segment_Ref (Appendix B, order of checks).",
        patched(base_codebook, lambda p: p.set("tensor", "w", "codebook_size", "I", C.MAX_CODEBOOK_SIZE + 1)))
invalid("bank-size-65537", "R10", "LimitExceeded",
        "A bank of L = 65,537 kernels of shape (1,), SPARSE without entries (so its segments are tiny).",
        edited(lambda: write_file({}, banks={"big": enc("U8", (65536, 1), Sparse(16, EMPTY, PACKED),
                                                        RawValues(np.zeros(0, np.uint8)))}),
               set_attr(lambda m: m.bank("big"), shape=[65537, 1])))


# R10: every dimension is bounded, even when another is zero
invalid("zero-dim-with-dim-over-2-48", "R10", "LimitExceeded",
        "A DENSE RAW U8 tensor of shape (0, 2^48 + 1): N = 0, but the product of the non-zero "
        "dimensions is over 2^48.",
        edited(base_raw, lambda m: m.tensors.append(Rec(b"z", C.DType.U8, [0, (1 << 48) + 1], 0, 0, [Seg("values", 0, b"")]))))
invalid("zero-dim-with-dim-u64-max", "R10", "LimitExceeded",
        "A DENSE RAW F32 tensor of shape (2^64 - 1, 0).",
        edited(base_raw, lambda m: m.tensors.append(Rec(b"z", C.DType.F32, [M64, 0], 0, 0, [Seg("values", 0, b"")]))))
