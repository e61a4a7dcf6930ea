"""CRC-32 of the header (R7) and of every segment (R21)."""

from __future__ import annotations

import zlib

from .bases import base_bank, base_codebook, base_raw, base_zero_size
from .huff import pack_symbols
from .edits import patched, preamble, put_byte, seg_byte
from .registry import invalid


# R7 header checksum
invalid("header-checksum-wrong", "R7", "ChecksumMismatch", "Header_Checksum with its lowest bit flipped.",
        patched(base_raw, put_byte(lambda p: 28, lambda b: b ^ 1), header_checksum=False))
invalid("header-checksum-covers-preamble", "R7", "ChecksumMismatch",
        "Optional_Features changed to 1 (a change readers would otherwise ignore) without updating the "
        "checksum, which covers the first 28 bytes of the preamble.",
        preamble("optional", 1, fix_checksum=False))
invalid("header-checksum-covers-header", "R7", "ChecksumMismatch",
        "The metadata value 'value' changed to 'valuf' without updating the checksum.",
        patched(base_raw, put_byte(lambda p: p.at["meta", 0, "value"] + 8, lambda b: b + 1), header_checksum=False))


# R21 segment checksums
invalid("segment-checksum-payload", "R21", "ChecksumMismatch",
        "One bit of an F32 values segment flipped; its Checksum left as it was.",
        patched(base_raw, put_byte(seg_byte("tensor", "a", "values", 5), lambda b: b ^ 0x10), segment_checksums=False))
invalid("segment-checksum-field", "R21", "ChecksumMismatch",
        "A segment's Checksum field with one bit flipped (header checksum recomputed).",
        patched(base_raw, put_byte(lambda p: p.segment("tensor", "b", "values")[0] + 17, lambda b: b ^ 1),
                segment_checksums=False))
invalid("segment-checksum-bank", "R21", "ChecksumMismatch", "A byte of the bank a tensor selects from changed.",
        patched(base_bank, put_byte(seg_byte("bank", "k", "values", 7), lambda b: b ^ 0x01), segment_checksums=False))
invalid("segment-checksum-unused-bank", "R21", "ChecksumMismatch",
        "A byte of a bank that no tensor selects from changed: reading the whole file checks it.",
        patched(base_bank, put_byte(seg_byte("bank", "k2", "values", 7), lambda b: b ^ 0x01), segment_checksums=False))
invalid("segment-checksum-zero-size-codebook", "R21", "ChecksumMismatch",
        "A byte of the codebook of a zero-size tensor changed: the segment exists and is checked.",
        patched(base_zero_size, put_byte(seg_byte("tensor", "cp", "codebook", 0), lambda b: b ^ 0x01),
                segment_checksums=False))
invalid("segment-checksum-empty-segment", "R21", "ChecksumMismatch",
        "An empty values segment whose Checksum is 1 (the CRC-32 of no bytes is 0).",
        patched(base_zero_size, lambda p: p.put(p.segment("tensor", "r", "values")[0] + 17, "I", 1),
                segment_checksums=False))
invalid("segment-checksum-gaps", "R21", "ChecksumMismatch", "A PACKED gap stream whose Checksum is off by one.",
        patched(base_codebook, lambda p: p.put(p.segment("tensor", "s", "gaps")[0] + 17, "I",
                                               zlib.crc32(pack_symbols([0, 4, 2], 8)) ^ 1), segment_checksums=False))
