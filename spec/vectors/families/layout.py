"""The data section: Alignment (R9), padding (R17), placement and the file's end (R18, R19)."""

from __future__ import annotations

import numpy as np

from dcformat import CodebookValues, Dense

from .bases import base_empty_last, base_raw
from .common import PACKED, build, enc, u16, write_file
from .edits import cut, edited, patched, put_byte, set_attr
from .registry import invalid, valid


def _alignment_tensors() -> dict:
    return {"f32": np.array([1, 2, 3], "<f4"), "i8": np.array([-1, 2, -3, 4, -5], np.int8),
            "c": enc("U16", (9,), Dense(), CodebookValues(np.array([7, 700, 7000], "<u2"),
                                                          u16([0, 1, 2, 2, 1, 0, 0, 1, 2]), PACKED))}


@valid("alignment-8", "Alignment 8, the smallest: segments at multiples of 8.")
def _alignment_8():
    return build(_alignment_tensors(), alignment=8)


@valid("alignment-4096", "Alignment 4096, the largest: the data section and each segment start on a "
       "4096-byte boundary.")
def _alignment_4096():
    tensors = _alignment_tensors()
    del tensors["c"]
    return build(tensors, alignment=4096)


@valid("no-tensors", "No metadata, no bank, no tensor: a 64-byte file that ends at Data_Offset.")
def _no_tensors():
    data, expected, metadata = build({})
    assert len(data) == 64
    return data, expected, metadata


# R9 alignment
for _value, _what in ((0, "0"), (4, "4, below 8"), (96, "96, not a power of two"), (8192, "8192, above 4096"),
                      (0x80000000, "2^31, a power of two above 4096")):
    invalid(f"alignment-{_value}", "R9", "InvalidHeader", f"Alignment {_what} (checksum recomputed).",
            patched(base_raw, lambda p, v=_value: p.put(p.at["alignment"], "I", v)))


# R17 padding
invalid("header-padding-nonzero", "R17", "NonZeroPadding", "The first byte after the header is 0x01.",
        patched(base_raw, put_byte(lambda p: p.at["header_end"], lambda b: 1)))
invalid("header-padding-last-byte-nonzero", "R17", "NonZeroPadding", "The byte before Data_Offset is 0x80.",
        patched(base_raw, put_byte(lambda p: p.at["data_offset"] - 1, lambda b: 0x80)))
invalid("segment-padding-nonzero", "R17", "NonZeroPadding", "A padding byte between two segments is 0x01.",
        patched(base_raw, put_byte(lambda p: p.at["data_offset"] + 30, lambda b: 1)))
invalid("padding-before-empty-last-segment-nonzero", "R17", "NonZeroPadding",
        "The last byte of the file, padding before an empty segment at an aligned offset, is 0x01.",
        patched(base_empty_last, put_byte(lambda p: len(p.data) - 1, lambda b: 1)))

# R18 segment placement and the file's end
invalid("first-segment-not-at-zero", "R18", "InvalidLayout",
        "The first segment at Offset 64 (aligned) after 64 zero bytes: a hole.",
        edited(base_raw, set_attr(lambda m: m.tensor("a").seg("values"), offset=64)))
invalid("segment-misaligned", "R18", "InvalidLayout",
        "The second segment at Offset 32, after the first ends (24) but not on the 64-byte alignment.",
        edited(base_raw, set_attr(lambda m: m.tensor("b").seg("values"), offset=32)))
invalid("segment-hole", "R18", "InvalidLayout",
        "The second segment at Offset 128 instead of 64: an aligned hole of 64 zero bytes.",
        edited(base_raw, set_attr(lambda m: m.tensor("b").seg("values"), offset=128)))
invalid("segment-overlap", "R18", "InvalidLayout", "The second segment at Offset 0, on top of the first.",
        edited(base_raw, set_attr(lambda m: m.tensor("b").seg("values"), offset=0)))
invalid("segments-out-of-order", "R18", "InvalidLayout",
        "Both segments present and aligned but in the opposite order to their records.",
        edited(base_raw, lambda m: (set_attr(lambda m: m.tensor("a").seg("values"), offset=64)(m),
                                    set_attr(lambda m: m.tensor("b").seg("values"), offset=0)(m))))
invalid("segment-offset-u64-max", "R18", "InvalidLayout",
        "The second segment's Offset is 2^64 - 64 (aligned): refused, not wrapped.",
        patched(base_raw, lambda p: p.put(p.segment("tensor", "b", "values")[0] + 1, "Q", (1 << 64) - 64)))
invalid("empty-segment-misaligned", "R18", "InvalidLayout",
        "An empty segment at Offset 4 (right after the previous one) instead of 64; the file ends there.",
        edited(base_empty_last, set_attr(lambda m: m.tensor("e").seg("values"), offset=4)))
invalid("trailing-byte", "R18", "InvalidLayout", "One zero byte after the last segment.",
        lambda: base_raw() + b"\x00")
invalid("trailing-bytes-no-segments", "R18", "InvalidLayout",
        "A file without segments followed by 64 zero bytes after Data_Offset.",
        lambda: write_file({}) + bytes(64))

# R19 truncated data section
invalid("truncated-at-data-offset", "R19", "TruncatedError", "The file cut at Data_Offset: no segment bytes.",
        cut(base_raw, lambda at, d: at["data_offset"]))
invalid("truncated-in-header-padding", "R19", "TruncatedError",
        "The file cut 4 bytes after the header, before Data_Offset.", cut(base_raw, lambda at, d: at["header_end"] + 4))
invalid("truncated-in-first-segment", "R19", "TruncatedError", "The file cut in the middle of the first segment.",
        cut(base_raw, lambda at, d: at["data_offset"] + 12))
invalid("truncated-in-segment-padding", "R19", "TruncatedError",
        "The file cut in the padding between the two segments.", cut(base_raw, lambda at, d: at["data_offset"] + 40))
invalid("truncated-in-last-segment", "R19", "TruncatedError", "The file one byte short.",
        cut(base_raw, lambda at, d: len(d) - 1))
invalid("truncated-before-empty-last-segment", "R19", "TruncatedError",
        "The file one byte short of the aligned offset of its last, empty segment.",
        cut(base_empty_last, lambda at, d: len(d) - 1))
