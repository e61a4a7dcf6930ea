"""The header: reads within Header_Size (R8), strings (R11), names (R12), Extension (R16)."""

from __future__ import annotations

import unicodedata

import numpy as np

from dcformat import CodebookValues, Dense

from .bases import base_bank, base_raw
from .common import BF16, PACKED, Rand, build, enc, u16, write_file
from .edits import edited, header_size, patched, preamble, rename, set_attr
from .registry import invalid, valid


@valid("metadata-unicode", "Metadata and tensor names in UTF-8: CJK, emoji, an empty key and an "
       "empty value, NUL and newline inside strings, and NFC and NFD forms of the same text, which "
       "are different names (readers compare bytes, never normalise); an empty tensor name.")
def _metadata_unicode():
    nfc, nfd = "caf\u00e9", unicodedata.normalize("NFD", "caf\u00e9")
    assert nfc != nfd
    metadata = {"format": "pt", "": "empty key", "empty value": "", "ünï": "✓ ∑ 🚀 层",
                nfc: "nfc", nfd: "nfd", "nul\x00inside": "a\x00b", "lines": "x\ny\r\n"}
    tensors = {
        "层.weight": np.array([1.0, 2.0], "<f4"),
        "emoji🚀": np.array([3], np.int8),
        nfc: np.array([1], np.uint8),
        nfd: np.array([2], np.uint8),
        "": np.array([True]),
        "tab\tnul\x00": np.array([-1], "<i2"),
    }
    return build(tensors, metadata)


@valid("many-tensors", "300 small tensors in a shuffled name order (readers keep header order), "
       "several dtypes, RAW and PACKED CODEBOOK.")
def _many_tensors():
    r = Rand(14)
    names = r.shuffle([f"layer{i:03d}.{part}" for i in range(150) for part in ("weight", "bias")])
    dtypes = ["<f4", "<i2", np.uint8, "<f8", BF16]
    tensors = {}
    for i, name in enumerate(names):
        if i % 7 == 3:
            tensors[name] = enc("U8", (3,), Dense(), CodebookValues(
                np.array([i % 256, 255 - i % 256], np.uint8), u16([0, 1, i % 2]), PACKED))
        else:
            dt = np.dtype(dtypes[i % len(dtypes)])
            tensors[name] = np.array([i, -i, i // 2][: 1 + i % 3]).astype(dt) if dt.kind != "u" else \
                np.array([i % 256, 7][: 1 + i % 2], dt)
    return build(tensors, {"count": "300"})


# R8 reads within Header_Size
invalid("header-size-zero", "R8", "TruncatedError",
        "Header_Size 0 (checksum recomputed over the preamble alone): Alignment cannot be read.",
        preamble("header_size", 0))
invalid("header-size-cuts-last-record", "R8", "TruncatedError",
        "Header_Size 10 bytes short: the last Segment_Ref runs past the header (checksum recomputed "
        "over the shorter header).", preamble("header_size", lambda p: header_size(p) - 10))
invalid("name-length-past-header", "R8", "TruncatedError",
        "The last tensor's name length is 4000 (within the 4096 limit), past the end of the header.",
        patched(base_raw, lambda p: p.set("tensor", "b", "name", "I", 4000)))
invalid("tensor-count-past-header", "R8", "TruncatedError",
        "Tensor_Count one more than the records present: the extra record starts at the header's end.",
        patched(base_raw, lambda p: p.put(p.at["tensor_count"], "I", 3)))


# R11 UTF-8
for _name, _bytes, _what in (("invalid-utf8", b"\xff\xfe", "bytes FF FE"),
                             ("overlong-utf8", b"\xc0\xaf", "an overlong encoding of '/'"),
                             ("utf8-surrogate", b"\xed\xa0\x80", "an encoded UTF-16 surrogate (U+D800)"),
                             ("truncated-utf8", b"ok\xe2\x82", "a 3-byte sequence cut after 2 bytes"),
                             ("utf8-above-max", b"\xf4\x90\x80\x80", "a code point above U+10FFFF")):
    invalid(f"tensor-name-{_name}", "R11", "InvalidHeader", f"A tensor name holding {_what}.",
            edited(base_raw, rename("tensor", 1, _bytes)))
invalid("bank-name-invalid-utf8", "R11", "InvalidHeader", "A bank name holding the byte 0x80.",
        edited(base_bank, rename("bank", 1, b"k\x80")))
invalid("metadata-key-invalid-utf8", "R11", "InvalidHeader", "A metadata key starting with a continuation byte.",
        edited(base_raw, lambda m: m.metadata.__setitem__(0, (b"\x80key", b"value"))))
invalid("metadata-value-invalid-utf8", "R11", "InvalidHeader", "A metadata value holding the byte 0xFF.",
        edited(base_raw, lambda m: m.metadata.__setitem__(0, (b"key", b"val\xffue"))))

# R12 duplicate names
invalid("duplicate-tensor-name", "R12", "DuplicateName", "Two tensors named 'a'.",
        edited(base_raw, rename("tensor", 1, b"a")))
invalid("duplicate-bank-name", "R12", "DuplicateName", "Two banks named 'k'.",
        edited(base_bank, rename("bank", 1, b"k")))
invalid("duplicate-metadata-key", "R12", "DuplicateName", "Two metadata entries with the key 'key'.",
        edited(lambda: write_file({"a": np.array([1], np.uint8)}, {"key": "1", "kez": "2"}),
               lambda m: m.metadata.__setitem__(1, (b"key", b"2"))))


# R16 Extension with minor 0
invalid("extension-zero-byte-minor-0", "R16", "InvalidHeader",
        "Version_Minor 0 and one zero byte after the last record, counted in Header_Size.",
        edited(base_raw, set_attr(lambda m: m, extension=b"\x00")))
invalid("extension-bytes-minor-0", "R16", "InvalidHeader",
        "Version_Minor 0 and 6 Extension bytes after the last record.",
        edited(base_raw, set_attr(lambda m: m, extension=b"future")))
