"""A file model: parse a well-formed file, edit it, write it back.

:func:`parse` reads the writer's output into a :class:`Model`; :func:`serialize` writes a
model back, deriving what is left None (offsets, lengths, checksums) and saying where
each field landed; :class:`Patch` changes bytes at those offsets and recomputes the
checksums the change affects. Nothing here validates: the vectors break rules on purpose.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from typing import Callable

from dcformat.format import constants as C


@dataclass
class Seg:
    """A Segment_Ref and its payload. None fields are derived when the file is written."""

    role: str
    codec: int
    payload: bytes
    offset: int | None = None    # None: align_up(end of the previous segment)
    length: int | None = None    # None: len(payload)
    checksum: int | None = None  # None: CRC-32 of the payload


@dataclass
class Rec:
    """A bank or tensor record; optional fields are written when not None."""

    name: bytes
    dtype: int
    shape: list
    layout: int
    value_kind: int
    segs: list
    gap_bits: int | None = None
    entry_count: int | None = None
    codebook_size: int | None = None
    bank_index: int | None = None
    rank: int | None = None  # None: len(shape)
    group_size: int | None = None    # GROUPED: with codebook_size, scale_count, offset_count
    scale_count: int | None = None
    offset_count: int | None = None
    block_size: int | None = None    # PLANES

    def seg(self, role: str) -> Seg:
        return next(s for s in self.segs if s.role == role)


@dataclass
class Model:
    metadata: list  # (key bytes, value bytes)
    banks: list
    tensors: list
    alignment: int = C.DEFAULT_ALIGNMENT
    magic: bytes = C.MAGIC
    major: int = C.VERSION_MAJOR
    minor: int = C.BASE_VERSION_MINOR
    required: int = 0
    optional: int = 0
    extension: bytes = b""
    header_size: int | None = None      # None: the header's length
    header_checksum: int | None = None  # None: computed
    trailing: bytes = b""               # bytes after the last segment

    def tensor(self, name: str) -> Rec:
        return next(r for r in self.tensors if r.name == name.encode())

    def bank(self, name: str) -> Rec:
        return next(r for r in self.banks if r.name == name.encode())


#: (Layout, Value_Kind) -> the record's segment roles; a PLANES record's: :func:`plane_roles`.
_ROLES = {(layout, kind): roles for layout in (0, 1) for kind in (0, 1, 2, 3)
          for roles in [[r for r, keep in (("codebook", kind in (1, 3)), ("scales", kind == 3),
                                            ("scale_codes", kind == 3), ("offsets", kind == 3),
                                            ("offset_codes", kind == 3), ("gaps", layout == 1),
                                            ("values", kind == 0), ("codes", kind in (1, 3)),
                                            ("selectors", kind == 2)) if keep]]}


def plane_roles(layout: int, dtype: int, stored: int, block_size: int) -> list:
    """A PLANES record's roles: SPARSE's gaps, then "exponent[b]", "mantissa1[b]", ... for
    each of its ceil(S / Block_Size) blocks b (FORMAT.md, "PLANES values")."""
    planes = len(C.plane_widths(C.DType(dtype)))
    names = ["exponent"] + [f"mantissa{k}" for k in range(1, planes)]
    blocks = -(-stored // block_size)
    return ["gaps"] * (layout == C.Layout.SPARSE) + [f"{n}[{b}]" for b in range(blocks) for n in names]


def parse(data: bytes) -> Model:
    """The model of a well-formed file (the writer's output); no validation."""
    magic, major, minor, required, optional, header_size, checksum = struct.unpack_from(C.PREAMBLE_FORMAT, data)
    pos = [C.PREAMBLE_SIZE]

    def take(fmt: str):
        values = struct.unpack_from("<" + fmt, data, pos[0])
        pos[0] += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def string() -> bytes:
        n = take("I")
        pos[0] += n
        return bytes(data[pos[0] - n:pos[0]])

    def record() -> Rec:
        name, dtype, rank = string(), take("B"), take("B")
        shape = [take("Q") for _ in range(rank)]
        rec = Rec(name, dtype, shape, take("B"), take("B"), [])
        if rec.layout == C.Layout.SPARSE:
            rec.gap_bits, rec.entry_count = take("B"), take("Q")
        if rec.value_kind == C.ValueKind.CODEBOOK:
            rec.codebook_size = take("I")
        elif rec.value_kind == C.ValueKind.BANK:
            rec.bank_index = take("I")
        elif rec.value_kind == C.ValueKind.GROUPED:
            rec.codebook_size, rec.group_size, rec.scale_count, rec.offset_count = take("IQII")
        elif rec.value_kind == C.ValueKind.PLANES:
            rec.block_size = take("Q")
        if rec.value_kind == C.ValueKind.PLANES:
            stored = rec.entry_count if rec.layout == C.Layout.SPARSE else math.prod(shape)
            roles = plane_roles(rec.layout, rec.dtype, stored, rec.block_size)
        else:
            roles = _ROLES[rec.layout, rec.value_kind]
        for role in roles:
            codec, offset, length, crc = take("BQQI")
            rec.segs.append(Seg(role, codec, b"", offset, length, crc))
        return rec

    alignment = take("I")
    metadata = [(string(), string()) for _ in range(take("I"))]
    banks = [record() for _ in range(take("I"))]
    tensors = [record() for _ in range(take("I"))]
    extension = bytes(data[pos[0]:C.PREAMBLE_SIZE + header_size])
    data_offset = C.align_up(C.PREAMBLE_SIZE + header_size, alignment)
    for rec in banks + tensors:
        for seg in rec.segs:
            seg.payload = bytes(data[data_offset + seg.offset:data_offset + seg.offset + seg.length])
            seg.offset = seg.length = seg.checksum = None
    model = Model(metadata, banks, tensors, alignment, magic, major, minor, required, optional, extension)
    assert serialize(model)[0] == bytes(data), "the file model does not reproduce the file"
    return model


def serialize(m: Model) -> tuple[bytes, dict]:
    """The file's bytes, and where each field landed (absolute offsets)."""
    at: dict = {}
    offsets, end, size = {}, 0, 0
    for kind, recs in (("bank", m.banks), ("tensor", m.tensors)):
        for i, rec in enumerate(recs):
            for seg in rec.segs:
                offsets[id(seg)] = C.align_up(end, m.alignment) if seg.offset is None else seg.offset
                end = offsets[id(seg)] + len(seg.payload)
                size = max(size, end)
    header = bytearray()

    def put(key, fmt: str, *values) -> None:
        if key is not None:
            at[key] = C.PREAMBLE_SIZE + len(header)
        header.extend(struct.pack("<" + fmt, *values))

    put("alignment", "I", m.alignment)
    put("metadata_count", "I", len(m.metadata))
    for j, (key, value) in enumerate(m.metadata):
        put(("meta", j, "key"), "I", len(key))
        header.extend(key)
        put(("meta", j, "value"), "I", len(value))
        header.extend(value)
    refs = []
    for kind, recs in (("bank", m.banks), ("tensor", m.tensors)):
        put(kind + "_count", "I", len(recs))
        for i, rec in enumerate(recs):
            put((kind, i, "name"), "I", len(rec.name))
            header.extend(rec.name)
            put((kind, i, "dtype"), "B", rec.dtype)
            put((kind, i, "rank"), "B", len(rec.shape) if rec.rank is None else rec.rank)
            put((kind, i, "shape"), f"{len(rec.shape)}Q", *rec.shape)
            put((kind, i, "layout"), "B", rec.layout)
            put((kind, i, "value_kind"), "B", rec.value_kind)
            if rec.gap_bits is not None:
                put((kind, i, "gap_bits"), "B", rec.gap_bits)
                put((kind, i, "entry_count"), "Q", rec.entry_count)
            if rec.codebook_size is not None:
                put((kind, i, "codebook_size"), "I", rec.codebook_size)
            if rec.bank_index is not None:
                put((kind, i, "bank_index"), "I", rec.bank_index)
            for key, fmt in (("group_size", "Q"), ("scale_count", "I"), ("offset_count", "I"), ("block_size", "Q")):
                if getattr(rec, key) is not None:
                    put((kind, i, key), fmt, getattr(rec, key))
            for seg in rec.segs:
                length = len(seg.payload) if seg.length is None else seg.length
                crc = zlib.crc32(seg.payload) if seg.checksum is None else seg.checksum
                refs.append(((kind, i, "seg", seg.role), C.PREAMBLE_SIZE + len(header), offsets[id(seg)], length))
                put(None, "BQQI", seg.codec, offsets[id(seg)], length, crc)
    at["extension"] = C.PREAMBLE_SIZE + len(header)
    header.extend(m.extension)
    at["header_end"] = C.PREAMBLE_SIZE + len(header)
    data_offset = C.align_up(C.PREAMBLE_SIZE + len(header), m.alignment)
    at["data_offset"] = data_offset
    for key, ref_at, offset, length in refs:
        at[key] = (ref_at, data_offset + offset, length)
    header_size = len(header) if m.header_size is None else m.header_size
    preamble = struct.pack(C.PREAMBLE_FORMAT[:-1], m.magic, m.major, m.minor, m.required, m.optional, header_size)
    crc = zlib.crc32(header, zlib.crc32(preamble)) if m.header_checksum is None else m.header_checksum
    body = bytearray(size)
    for kind, recs in (("bank", m.banks), ("tensor", m.tensors)):
        for rec in recs:
            for seg in rec.segs:
                body[offsets[id(seg)]:offsets[id(seg)] + len(seg.payload)] = seg.payload
    padding = bytes(data_offset - C.PREAMBLE_SIZE - len(header))
    return preamble + struct.pack("<I", crc) + bytes(header) + padding + bytes(body) + m.trailing, at


class Patch:
    """Byte patches on a well-formed file at offsets the model locates, then checksums fixed.

    Fields are addressed as in :func:`serialize`: ``("tensor", i, "dtype")``, or by name
    with :meth:`field`. ``done()`` recomputes every segment checksum over the patched
    payload bytes and then the header checksum, unless told not to.
    """

    def __init__(self, data: bytes):
        self.model = parse(data)
        original, self.at = serialize(self.model)
        self.data = bytearray(original)

    def index(self, kind: str, name: str) -> int:
        recs = self.model.banks if kind == "bank" else self.model.tensors
        return next(i for i, r in enumerate(recs) if r.name == name.encode())

    def field(self, kind: str, name: str, field: str) -> int:
        return self.at[kind, self.index(kind, name), field]

    def segment(self, kind: str, name: str, role: str) -> tuple[int, int, int]:
        """(Segment_Ref offset, payload offset, payload length), absolute."""
        return self.at[kind, self.index(kind, name), "seg", role]

    def put(self, at: int, fmt: str, *values) -> "Patch":
        struct.pack_into("<" + fmt, self.data, at, *values)
        return self

    def set(self, kind: str, name: str, field: str, fmt: str, *values) -> "Patch":
        return self.put(self.field(kind, name, field), fmt, *values)

    def done(self, *, segment_checksums: bool = True, header_checksum: bool = True,
             then: Callable[["Patch"], object] | None = None) -> bytes:
        """The patched file; ``then(self)`` runs after the segment checksums are fixed."""
        if segment_checksums:
            for key, value in self.at.items():
                if isinstance(key, tuple) and key[2:3] == ("seg",):
                    ref_at, start, length = value
                    struct.pack_into("<I", self.data, ref_at + 17, zlib.crc32(self.data[start:start + length]))
        if then is not None:
            then(self)
        if header_checksum:
            fix_header_checksum(self.data)
        return bytes(self.data)


def fix_header_checksum(data: bytearray) -> bytearray:
    header_size = struct.unpack_from("<Q", data, 20)[0]
    end = C.PREAMBLE_SIZE + header_size
    if end <= len(data):
        struct.pack_into("<I", data, 28, zlib.crc32(data[C.PREAMBLE_SIZE:end], zlib.crc32(data[:28])))
    return data
