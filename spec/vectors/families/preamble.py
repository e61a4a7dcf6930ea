"""The preamble: magic, version, features, Header_Size (R1-R6), and what later minors may add."""

from __future__ import annotations

import numpy as np

from dcformat import CodebookValues, Dense
from dcformat.format import constants as C

from .bases import base_raw
from .common import M64, PACKED, build, enc, u16
from .edits import cut, preamble
from .model import parse, serialize
from .registry import invalid, valid


def _extension_base() -> tuple[bytes, dict, dict]:
    tensors = {"w": np.array([[1.5, -2.0], [0.25, 8.0]], "<f4"),
               "c": enc("I8", (5,), Dense(), CodebookValues(np.array([-1, 1], np.int8), u16([0, 1, 1, 0, 1]), PACKED))}
    return build(tensors, {"k": "v"})


@valid("minor-version-extension", "Version_Minor 1 with 13 Extension bytes after the last record "
       "(counted in Header_Size and covered by the checksum): a 1.0 reader must skip them.")
def _minor_version_extension():
    data, expected, metadata = _extension_base()
    model = parse(data)
    model.minor = 1
    model.extension = b"\x01\x02future\x00\xff\xfe\x03!"
    assert len(model.extension) == 13
    return serialize(model)[0], expected, metadata


@valid("minor-version-max", "Version_Minor 65535 and no Extension: a reader decodes every minor of "
       "its major.")
def _minor_version_max():
    data, expected, metadata = _extension_base()
    model = parse(data)
    model.minor = 0xFFFF
    return serialize(model)[0], expected, metadata


@valid("optional-feature-bit", "Every Optional_Features bit set (0xFFFFFFFF): readers ignore them all.")
def _optional_feature_bit():
    data, expected, metadata = _extension_base()
    model = parse(data)
    model.optional = 0xFFFFFFFF
    return serialize(model)[0], expected, metadata


# R1 magic
invalid("bad-magic-high-bit-stripped", "R1", "BadMagic",
        "The first byte is 0x09: the magic after a 7-bit transfer stripped its high bit.",
        lambda: b"\x09" + base_raw()[1:])
invalid("bad-magic-byte-reversed", "R1", "BadMagic",
        "The 8 magic bytes in reverse order (a byte-swapped reading of the magic).",
        lambda: C.MAGIC[::-1] + base_raw()[8:])
invalid("bad-magic-crlf-to-lf", "R1", "BadMagic",
        "The magic's CR LF turned into LF by a text-mode transfer (the file is one byte shorter).",
        lambda: base_raw().replace(b"\r\n", b"\n", 1))
invalid("bad-magic-lf-to-crlf", "R1", "BadMagic",
        "The magic's final LF turned into CR LF (the file is one byte longer).",
        lambda: base_raw()[:7] + b"\r\n" + base_raw()[8:])
invalid("empty-file", "R1", "BadMagic", "A file of 0 bytes.", lambda: b"")
invalid("shorter-than-magic", "R1", "BadMagic",
        "The first 5 bytes of a valid file: shorter than the magic.", lambda: base_raw()[:5])

# R2 preamble
invalid("truncated-after-magic", "R2", "TruncatedError",
        "Only the 8 magic bytes: the magic is right but the preamble is missing.", lambda: base_raw()[:8])
invalid("truncated-in-preamble", "R2", "TruncatedError",
        "The first 31 bytes: the preamble lacks the last byte of Header_Checksum.", lambda: base_raw()[:31])

# R3 major version
invalid("version-major-2", "R3", "UnsupportedVersion", "Version_Major 2 (checksum recomputed).",
        preamble("major", 2))
invalid("version-major-0", "R3", "UnsupportedVersion", "Version_Major 0 (checksum recomputed).",
        preamble("major", 0))
invalid("version-major-byte-swapped", "R3", "UnsupportedVersion",
        "Version_Major 256: the u16 1 written big-endian (checksum recomputed).", preamble("major", 0x0100))

# R4 required features
invalid("required-feature-bit-3", "R4", "UnsupportedFeature",
        "Required_Features bit 3 set: version 1.3 knows bits 0, 1 and 2 only (checksum recomputed).",
        preamble("required", 8))
invalid("required-feature-bit-31", "R4", "UnsupportedFeature",
        "Required_Features bit 31 set, Optional_Features clear (checksum recomputed).",
        preamble("required", 0x80000000))

# R5 header size limit
invalid("header-size-over-limit", "R5", "LimitExceeded",
        "Header_Size 104,857,601, one over MAX_HEADER_SIZE, in a small file: refused before reading "
        "or allocating the header.", preamble("header_size", C.MAX_HEADER_SIZE + 1, fix_checksum=False))
invalid("header-size-u64-max", "R5", "LimitExceeded",
        "Header_Size 2^64 - 1: refused by the limit, not by wrapping arithmetic.",
        preamble("header_size", M64, fix_checksum=False))

# R6 the file holds the header
invalid("header-size-at-limit-truncated", "R6", "TruncatedError",
        "Header_Size exactly 104,857,600 (allowed) in a small file: the header is not there.",
        preamble("header_size", C.MAX_HEADER_SIZE, fix_checksum=False))
invalid("header-size-past-file-end", "R6", "TruncatedError",
        "Header_Size one byte larger than what follows the preamble in the file.",
        preamble("header_size", lambda p: len(p.data) - C.PREAMBLE_SIZE + 1, fix_checksum=False))
invalid("truncated-in-header", "R6", "TruncatedError", "The file cut in the middle of the header.",
        cut(base_raw, lambda at, d: (C.PREAMBLE_SIZE + at["header_end"]) // 2))
