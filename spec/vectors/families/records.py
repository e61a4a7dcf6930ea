"""Record fields: DType (R13), enum codes (R14), field rules (R15), BYTES lengths (R20)."""

from __future__ import annotations

from dcformat.format import constants as C

from .bases import base_bank, base_codebook, base_raw
from .common import F32_ONE
from .edits import edited, extra_bank, patched, set_attr
from .handcrafted import hc_stream
from .huff import pack_symbols, set_chunk
from .model import Rec, Seg
from .registry import invalid


# R13 dtype
for _code in (15, 255):
    invalid(f"dtype-{_code}", "R13", "UnknownDType", f"A tensor with DType {_code}.",
            patched(base_raw, lambda p, c=_code: p.set("tensor", "a", "dtype", "B", c)))

# R14 enum codes
invalid("layout-2", "R14", "UnknownEncoding", "A tensor with Layout 2.",
        patched(base_raw, lambda p: p.set("tensor", "a", "layout", "B", 2)))
invalid("value-kind-5", "R14", "UnknownEncoding",
        "A tensor with Value_Kind 5 (3 is GROUPED, v1.1; 4 is PLANES, v1.2).",
        patched(base_raw, lambda p: p.set("tensor", "a", "value_kind", "B", 5)))
invalid("codec-4-on-stream-segment", "R14", "UnknownEncoding",
        "A codes Segment_Ref with Codec 4 (3 is AFFINE, v1.3).",
        patched(base_codebook, lambda p: p.put(p.segment("tensor", "w", "codes")[0], "B", 4)))
invalid("codec-255-on-values-segment", "R14", "UnknownEncoding",
        "A values Segment_Ref with Codec 255 (an unknown code, not merely a wrong known one).",
        patched(base_raw, lambda p: p.put(p.segment("tensor", "a", "values")[0], "B", 255)))
invalid("chunk-mode-2", "R14", "UnknownEncoding", "A Huffman chunk entry with Mode 2 (segment checksum recomputed).",
        hc_stream("codes", set_chunk(0, 0, 2)))
invalid("chunk-mode-255", "R14", "UnknownEncoding", "The raw chunk of a code stream with Mode 255.",
        hc_stream("codes", set_chunk(1, 0, 255)))

# R15 record fields
invalid("gap-bits-0", "R15", "InvalidHeader", "A SPARSE tensor with Gap_Bits 0.",
        patched(base_codebook, lambda p: p.set("tensor", "s", "gap_bits", "B", 0)))
invalid("gap-bits-17", "R15", "InvalidHeader", "A SPARSE tensor with Gap_Bits 17.",
        patched(base_codebook, lambda p: p.set("tensor", "s", "gap_bits", "B", 17)))
invalid("entry-count-over-units", "R15", "InvalidHeader",
        "A SPARSE tensor of 3 units with Entry_Count 4 (its gap and value segments hold 4 entries).",
        edited(base_codebook, lambda m: (
            set_attr(lambda m: m.tensor("s"), shape=[3], entry_count=4)(m),
            set_attr(lambda m: m.tensor("s").seg("gaps"), payload=pack_symbols([0, 0, 0, 0], 8))(m),
            set_attr(lambda m: m.tensor("s").seg("values"), payload=F32_ONE * 4)(m))))
invalid("codebook-size-0", "R15", "InvalidHeader", "A CODEBOOK tensor with Codebook_Size 0.",
        patched(base_codebook, lambda p: p.set("tensor", "w", "codebook_size", "I", 0)))
invalid("bank-index-out-of-range", "R15", "InvalidHeader", "Bank_Index 2 in a file with 2 banks.",
        patched(base_bank, lambda p: p.set("tensor", "t", "bank_index", "I", 2)))
invalid("bank-index-u32-max", "R15", "InvalidHeader", "Bank_Index 2^32 - 1.",
        patched(base_bank, lambda p: p.set("tensor", "t", "bank_index", "I", 0xFFFFFFFF)))
invalid("bank-dtype-mismatch", "R15", "InvalidHeader", "An I32 tensor selecting from an F32 bank.",
        patched(base_bank, lambda p: p.set("tensor", "t", "dtype", "B", C.DType.I32)))
invalid("tensor-rank-below-kernel-rank", "R15", "InvalidHeader",
        "A tensor of shape (18,) selecting from a bank of 3x3 kernels (rank 1 < kernel rank 2).",
        edited(base_bank, set_attr(lambda m: m.tensor("t"), shape=[18])))
invalid("tensor-shape-not-ending-with-kernel", "R15", "InvalidHeader",
        "A tensor of shape (3, 3, 2) selecting from a bank of 3x3 kernels (same N, wrong trailing dims).",
        patched(base_bank, lambda p: p.put(p.field("tensor", "t", "shape"), "3Q", 3, 3, 2)))
invalid("bank-rank-0", "R15", "InvalidHeader", "A bank of rank 0 (one F32 value).",
        edited(base_bank, extra_bank(Rec(b"s", C.DType.F32, [], 0, 0, [Seg("values", 0, F32_ONE)]))))
invalid("bank-size-0", "R15", "InvalidHeader", "A bank of shape (0, 3): L = 0.",
        edited(base_bank, extra_bank(Rec(b"z", C.DType.F32, [0, 3], 0, 0, [Seg("values", 0, b"")]))))
invalid("bank-kernel-dim-0", "R15", "InvalidHeader", "A bank of shape (2, 0): a zero kernel dimension.",
        edited(base_bank, extra_bank(Rec(b"z", C.DType.F32, [2, 0], 0, 0, [Seg("values", 0, b"")]))))
invalid("bank-valued-bank", "R15", "InvalidHeader",
        "A bank record with Value_Kind BANK (selecting from bank 0).",
        edited(base_bank, extra_bank(Rec(b"bb", C.DType.F32, [1, 3, 3], 0, 2,
                                          [Seg("selectors", 1, pack_symbols([1], 2))], bank_index=0))))
invalid("bytes-codec-on-stream-segment", "R15", "InvalidHeader", "A codes segment with Codec BYTES.",
        patched(base_codebook, lambda p: p.put(p.segment("tensor", "w", "codes")[0], "B", 0)))
invalid("packed-codec-on-values-segment", "R15", "InvalidHeader", "A values segment with Codec PACKED.",
        patched(base_raw, lambda p: p.put(p.segment("tensor", "a", "values")[0], "B", 1)))
invalid("huffman-codec-on-codebook-segment", "R15", "InvalidHeader", "A codebook segment with Codec HUFFMAN.",
        patched(base_codebook, lambda p: p.put(p.segment("tensor", "w", "codebook")[0], "B", 2)))


# R20 BYTES segment lengths
invalid("values-length-plus-one", "R20", "InvalidHeader", "An F32 values segment of 25 bytes for 6 values.",
        edited(base_raw, lambda m: setattr(m.tensor("a").seg("values"), "payload", m.tensor("a").seg("values").payload + b"\x00")))
invalid("values-length-minus-one", "R20", "InvalidHeader", "An F32 values segment of 23 bytes for 6 values.",
        edited(base_raw, lambda m: setattr(m.tensor("a").seg("values"), "payload", m.tensor("a").seg("values").payload[:-1])))
invalid("values-length-one-value-short", "R20", "InvalidHeader", "An I16 values segment of 4 values for 5 elements.",
        edited(base_raw, lambda m: setattr(m.tensor("b").seg("values"), "payload", m.tensor("b").seg("values").payload[:-2])))
invalid("codebook-length-short", "R20", "InvalidHeader", "A U8 codebook segment of 4 bytes for Codebook_Size 5.",
        edited(base_codebook, lambda m: setattr(m.tensor("w").seg("codebook"), "payload", b"\x0a\x14\x1e\x28")))
invalid("sparse-values-length-wrong", "R20", "InvalidHeader",
        "A SPARSE RAW values segment of 4 values for Entry_Count 3.",
        edited(base_codebook, lambda m: setattr(m.tensor("s").seg("values"), "payload", m.tensor("s").seg("values").payload + F32_ONE)))
