"""Appendix B, "Order of checks": files that break two rules, and the one a reader reports."""

from __future__ import annotations

import numpy as np

from dcformat.format import constants as C

from .bases import base_bool, base_codebook, base_huge_sparse, base_raw, base_selectors
from .common import write_file
from .edits import (append_after, both, break_checksum, cut_after, edited, packed_symbol, patched, preamble,
                    put_byte, rename, seg_byte, set_attr)
from .handcrafted import HC_CODES, hc_stream, restream
from .huff import invalid_code_chunk, resize_chunk, set_bits, set_chunk
from .registry import order


order("version-before-header-checksum", "R3", "UnsupportedVersion", "R7",
      "Version_Major 2 and a Header_Checksum that does not match.", preamble("major", 2, fix_checksum=False))
order("required-feature-before-header-size", "R4", "UnsupportedFeature", "R5",
      "Required_Features bit 3 (unknown to v1.3) and Header_Size over the limit.",
      patched(base_raw, lambda p: (p.put(12, "I", 8), p.put(20, "Q", C.MAX_HEADER_SIZE + 1)), header_checksum=False))
order("header-checksum-before-fields", "R7", "ChecksumMismatch", "R13",
      "DType 15 in a tensor record, Header_Checksum not updated.",
      patched(base_raw, lambda p: p.set("tensor", "a", "dtype", "B", 15), header_checksum=False))
order("name-length-limit-before-header-end", "R10", "LimitExceeded", "R8",
      "The last tensor's name length is 4097 while only a few header bytes are left: the limit is "
      "checked on the length, before the bytes are read.",
      patched(base_raw, lambda p: p.set("tensor", "b", "name", "I", 4097)))
order("duplicate-key-before-its-value", "R12", "DuplicateName", "R11",
      "A repeated metadata key whose value is not UTF-8: the repetition is refused as soon as the key is read.",
      edited(lambda: write_file({"a": np.array([1], np.uint8)}, {"key": "1", "kez": "2"}),
             lambda m: m.metadata.__setitem__(1, (b"key", b"\xff"))))
order("duplicate-name-before-dtype", "R12", "DuplicateName", "R13",
      "A second tensor named 'a' whose DType is 15: the name is refused as soon as it is read.",
      edited(base_raw, both(rename("tensor", 1, b"a"), set_attr(lambda m: m.tensors[1], dtype=15))))
order("dtype-before-rank", "R13", "UnknownDType", "R10",
      "DType 15 and Rank 9 in the same record (DType comes first in the record).",
      edited(base_raw, set_attr(lambda m: m.tensor("a"), dtype=15, shape=[1] * 7 + [2, 3])))
order("codebook-size-before-entry-count", "R10", "LimitExceeded", "R15",
      "A SPARSE CODEBOOK tensor with Entry_Count over its units and Codebook_Size 65,537: Entry_Count is "
      "checked after the value parameters.",
      patched(base_selectors, lambda p: (p.set("tensor", "c", "entry_count", "Q", 6),
                                         p.set("tensor", "c", "codebook_size", "I", 65537))))
order("entry-count-before-segment-refs", "R15", "InvalidHeader", "R14",
      "Entry_Count 4 for 3 units, and the record's gaps Segment_Ref with Codec 7.",
      patched(base_codebook, lambda p: (p.set("tensor", "s", "entry_count", "Q", 13),
                                        p.put(p.segment("tensor", "s", "gaps")[0], "B", 7))))
order("header-before-data-section", "R16", "InvalidHeader", "R18",
      "Extension bytes with Version_Minor 0, and a byte after the last segment.",
      append_after(edited(base_raw, set_attr(lambda m: m, extension=b"x")), b"\x00"))
order("placement-before-file-end", "R18", "InvalidLayout", "R19",
      "A hole before the second segment, and the file one byte short.",
      cut_after(edited(base_raw, set_attr(lambda m: m.tensor("b").seg("values"), offset=128)), 1))
order("file-end-before-padding", "R19", "TruncatedError", "R17",
      "A non-zero byte after the header, and the file one byte short.",
      cut_after(patched(base_raw, put_byte(lambda p: p.at["header_end"], lambda b: 1)), 1))
order("trailing-bytes-before-padding", "R18", "InvalidLayout", "R17",
      "A non-zero padding byte between segments, and a byte after the last segment.",
      append_after(patched(base_raw, put_byte(lambda p: p.at["data_offset"] + 30, lambda b: 1)), b"\x00"))
order("padding-before-segment-checksum", "R17", "NonZeroPadding", "R21",
      "A non-zero byte after the header, and a segment whose Checksum does not match.",
      patched(base_raw, put_byte(lambda p: p.at["header_end"], lambda b: 1), then=break_checksum("tensor", "a", "values")))
order("layout-before-budget", "R18", "InvalidLayout", "R33",
      "A tensor over the decode budget, and a byte after the last segment.",
      append_after(lambda: base_huge_sparse((1 << 40,), "F32"), b"\x00"))
order("budget-before-segment-checksum", "R33", "DecodeLimitExceeded", "R21",
      "A tensor over the decode budget whose gaps Checksum does not match.",
      patched(lambda: base_huge_sparse((1 << 40,), "F32"), lambda p: None, then=break_checksum("tensor", "huge", "gaps")))
order("banks-before-tensors", "R32", "InvalidValue", "R21",
      "The first tensor's values Checksum does not match, and the bank (decoded first) holds a BOOL byte 0x02.",
      patched(base_bool, put_byte(seg_byte("bank", "bits", "values", 3), lambda b: 2),
              then=break_checksum("tensor", "raw", "values")))
order("tensors-in-header-order", "R32", "InvalidValue", "R21",
      "The first tensor holds a BOOL byte 0x02 and the second tensor's codebook Checksum does not match.",
      patched(base_bool, put_byte(seg_byte("tensor", "raw", "values", 1), lambda b: 2),
              then=break_checksum("tensor", "book", "codebook")))
order("all-checksums-before-contents", "R21", "ChecksumMismatch", "R32",
      "A BOOL codebook byte 0x02 (its Checksum updated) and a codes segment whose Checksum does not match: "
      "every checksum of a record is verified before any of its segments is decoded.",
      patched(base_bool, put_byte(seg_byte("tensor", "book", "codebook", 1), lambda b: 2),
              then=break_checksum("tensor", "book", "codes")))
order("codebook-before-gaps", "R32", "InvalidValue", "R31",
      "A SPARSE BOOL CODEBOOK tensor whose codebook holds 0x02 and whose gaps overrun the tensor.",
      patched(base_bool, both(put_byte(seg_byte("tensor", "sbook", "codebook", 1), lambda b: 2),
                              packed_symbol("tensor", "sbook", "gaps", 4, 0, 3),
                              packed_symbol("tensor", "sbook", "gaps", 4, 1, 3))))
order("gaps-before-values", "R31", "GapOverrun", "R32",
      "A SPARSE BOOL RAW tensor whose gaps overrun the tensor and whose values hold 0x02.",
      patched(base_bool, both(put_byte(seg_byte("tensor", "sparse", "values", 0), lambda b: 2),
                              packed_symbol("tensor", "sparse", "gaps", 4, 0, 3),
                              packed_symbol("tensor", "sparse", "gaps", 4, 1, 3))))
order("gap-overrun-before-code-range", "R31", "GapOverrun", "R30",
      "A SPARSE CODEBOOK tensor whose gaps overrun the tensor and whose codes hold one out of range.",
      patched(base_selectors, both(packed_symbol("tensor", "c", "gaps", 4, 2, 3),
                                   packed_symbol("tensor", "c", "codes", 3, 0, 3))))
order("table-size-before-nibble", "R23", "InvalidHuffmanTable", "R23 (padding)",
      "Table_Size 7 for alphabet 6 and the unused high nibble set.",
      hc_stream("codes", both(lambda h: h.lengths.append(0), lambda h: setattr(h, "high_nibble", 3))))
order("nibble-before-kraft", "R23", "NonZeroPadding", "R24",
      "The unused high nibble set and code lengths breaking the Kraft inequality (1 1 3 0 3).",
      hc_stream("gaps", both(lambda h: setattr(h, "high_nibble", 1), lambda h: h.lengths.__setitem__(1, 1),
                             lambda h: h.lengths.__setitem__(0, 1))))
order("kraft-before-chunk-count", "R24", "InvalidHuffmanTable", "R25",
      "Code lengths breaking the Kraft inequality and Chunk_Count 0.",
      hc_stream("codes", both(lambda h: h.lengths.__setitem__(0, 1), lambda h: setattr(h, "chunk_count", 0))))
order("chunk-table-before-entries", "R25", "TruncatedError", "R14",
      "Chunk_Count 20 while the segment holds 3 entries, and chunk 0 (present in full) with Mode 2: "
      "the whole chunk table must be present before any entry is read.",
      hc_stream("codes", both(lambda h: setattr(h, "chunk_count", 20), set_chunk(0, 0, 2))))
order("chunk-entries-one-at-a-time", "R26", "CorruptStream", "R14",
      "Chunk 0 with First_Symbol 1 and chunk 1 with Mode 2: each entry is checked completely before the next.",
      hc_stream("codes", both(set_chunk(0, 2, 1), set_chunk(1, 0, 2))))
order("chunk-mode-before-byte-offset", "R14", "UnknownEncoding", "R26",
      "Chunk 0 with Mode 2 and Byte_Offset 1: an entry's Mode is checked before its Byte_Offset.",
      hc_stream("codes", both(set_chunk(0, 1, 1), set_chunk(0, 0, 2))))
order("chunk-entries-before-chunks", "R26", "CorruptStream", "R28",
      "Chunk 0 has non-zero bits after its last code, and the last chunk's First_Symbol equals the count.",
      hc_stream("codes", both(set_bits(0, -1, 0x80), set_chunk(2, 2, 24))))
order("chunks-decoded-in-order", "R28", "NonZeroPadding", "R27",
      "Chunk 0 (Huffman) has non-zero bits after its last code and chunk 1 (raw) is one byte too long: "
      "chunks are decoded in order.",
      hc_stream("codes", both(set_bits(0, -1, 0x80), resize_chunk(1, 1))))
order("huffman-chunk-before-later-raw-chunk", "R28", "CorruptStream", "R27 (padding)",
      "Gap chunk 0 (Huffman) holds a bit pattern no code starts with, and raw chunk 2 has non-zero "
      "trailing bits: chunk 0 is decoded first.",
      hc_stream("gaps", both(invalid_code_chunk, set_bits(2, -1, 0x80))))
order("chunks-before-start-position", "R28", "NonZeroPadding", "R29",
      "A gap chunk with a wrong Start_Position, and chunk 0 with non-zero bits after its last code.",
      hc_stream("gaps", both(set_chunk(1, 3, 12), set_bits(0, -1, 0x80))))
order("chunks-before-symbol-range", "R28", "NonZeroPadding", "R30",
      "A code out of range in raw chunk 1, and the last chunk with non-zero bits after its last code.",
      hc_stream("codes", both(restream("codes", HC_CODES[:8] + [6] + HC_CODES[9:]), set_bits(2, -1, 0x80))))
order("start-position-before-symbol-range", "R29", "CorruptStream", "R30",
      "A code out of range in raw chunk 1, and chunk 1's Start_Position 8 in a code stream.",
      hc_stream("codes", both(restream("codes", HC_CODES[:8] + [6] + HC_CODES[9:]), set_chunk(1, 3, 8))))
