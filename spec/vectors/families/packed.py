"""Packed streams (R22)."""

from __future__ import annotations

from .bases import base_codebook, base_sparse_empty, base_zero_size
from .edits import edited, patched, put_byte, seg_byte, set_attr
from .registry import invalid


# R22 packed streams
invalid("packed-length-plus-one", "R22", "CorruptStream", "A PACKED code stream of 33 bits stored in 6 bytes.",
        edited(base_codebook, lambda m: setattr(m.tensor("w").seg("codes"), "payload", m.tensor("w").seg("codes").payload + b"\x00")))
invalid("packed-length-minus-one", "R22", "CorruptStream", "A PACKED code stream of 33 bits stored in 4 bytes.",
        edited(base_codebook, lambda m: setattr(m.tensor("w").seg("codes"), "payload", m.tensor("w").seg("codes").payload[:-1])))
invalid("packed-trailing-bits", "R22", "NonZeroPadding",
        "A PACKED code stream of 33 bits whose last bit (bit 39) is set.",
        patched(base_codebook, put_byte(seg_byte("tensor", "w", "codes", -1), lambda b: b | 0x80)))
invalid("packed-gaps-trailing-bits", "R22", "NonZeroPadding",
        "A PACKED gap stream of 9 bits whose bit 15 is set.",
        patched(base_codebook, put_byte(seg_byte("tensor", "s", "gaps", -1), lambda b: b | 0x80)))
invalid("packed-empty-stream-one-byte", "R22", "CorruptStream",
        "The PACKED code stream of a zero-size tensor holds one byte (it must be empty).",
        edited(base_zero_size, set_attr(lambda m: m.tensor("cp").seg("codes"), payload=b"\x00")))
invalid("packed-empty-gaps-one-byte", "R22", "CorruptStream",
        "The PACKED gap stream of a SPARSE tensor with no entries holds one byte.",
        edited(base_sparse_empty, set_attr(lambda m: m.tensor("p").seg("gaps"), payload=b"\x00")))
