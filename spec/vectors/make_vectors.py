#!/usr/bin/env python3
"""Write the dcformat conformance vectors (spec/FORMAT.md, Appendix C).

    python spec/vectors/make_vectors.py           # write the vectors; never replace a file that differs
    python spec/vectors/make_vectors.py --force   # replace vectors whose bytes differ, drop stale ones
    python spec/vectors/make_vectors.py --check   # regenerate in memory, compare with the files; exit 1 on any difference

**Valid** vectors (``valid/NAME.dcf``) are written by the real writer
(:class:`dcformat.container.writer.ContainerWriter`) from inputs fixed here, except where
a vector needs something the writer never produces (a higher minor version, Extension
bytes, hand-made Huffman chunks); then the writer's file is edited with the small file
model below. Their expected tensors (``valid/NAME.expected.safetensors``) are computed
here with plain numpy from the same inputs, never by decoding the file.

**Invalid** vectors (``invalid/NAME.dcf``) each start from a valid file and change one
thing: a field patched at the offset the parser below locates, or a structure rebuilt
with the file model. Every checksum the change affects is then recomputed, so the file
breaks the rule it names and only that one; only the checksum vectors keep a wrong
checksum.

``MANIFEST.json`` lists every vector: its file, kind, description and, for invalid
ones, the error class (``dcformat/errors.py``) and rule (FORMAT.md, Appendix B).

Nothing is random: inputs come from a fixed splitmix64 generator (not numpy's, whose
streams may change between releases), so two runs write identical bytes. The valid
files also depend on the writer's choices (Huffman code lengths, raw-chunk fallback);
``--check`` fails if those change. Changing the bytes of a committed vector is a format
change (Appendix C): do it with ``--force`` only on purpose.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import struct
import sys
import unicodedata
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import ml_dtypes
import numpy as np

HERE = Path(__file__).resolve().parent
try:
    import dcformat  # noqa: F401
except ImportError:  # run from a checkout that is not installed
    sys.path.insert(0, str(HERE.parent.parent))

from dcformat import BankValues, CodebookValues, Dense, EncodedTensor, RawValues, Sparse  # noqa: E402
from dcformat.format import constants as C  # noqa: E402
from dcformat.container.writer import ContainerWriter  # noqa: E402
from dcformat.format.dtypes import dtype_of, numpy_dtype  # noqa: E402
from dcformat.streams import HuffmanCodec, PackedCodec  # noqa: E402

M64 = (1 << 64) - 1
BF16 = ml_dtypes.bfloat16
E4M3 = ml_dtypes.float8_e4m3fn
E5M2 = ml_dtypes.float8_e5m2
PACKED = PackedCodec()
HUFFMAN = HuffmanCodec()


# === inputs ============================================================================


class Rand:
    """splitmix64: a generator whose stream is fixed here, forever."""

    def __init__(self, seed: int):
        self.state = seed & M64

    def u64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & M64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        return self.u64() % n

    def ints(self, count: int, high: int) -> np.ndarray:
        """``count`` integers uniform in [0, high)."""
        return np.array([self.below(high) for _ in range(count)], dtype=np.int64)

    def skewed(self, count: int, high: int) -> np.ndarray:
        """``count`` integers in [0, high), symbol k drawn with probability about 2^-(k+1)."""
        out = []
        for _ in range(count):
            x = self.u64() | (1 << 63)
            out.append(min(high - 1, (x & -x).bit_length() - 1))
        return np.array(out, dtype=np.int64)

    def mask(self, count: int, percent: int) -> np.ndarray:
        return np.array([self.below(100) < percent for _ in range(count)], dtype=bool)

    def shuffle(self, items: list) -> list:
        items = list(items)
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]
        return items


def from_bits(dtype, patterns, shape=None) -> np.ndarray:
    """An array of ``dtype`` holding exactly the given bit patterns."""
    dt = np.dtype(dtype)
    array = np.array([int(p) for p in patterns], dtype=np.dtype(f"<u{dt.itemsize}")).view(dt)
    return array.reshape(shape) if shape is not None else array


def sparsify(nonzero: np.ndarray, gap_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaps (fillers included) reaching the units where ``nonzero`` holds, and their units.

    FORMAT.md, "Fillers": a skip longer than 2^Gap_Bits - 1 units is bridged by entries
    with the maximal gap whose value decodes to zero.
    """
    widest = (1 << gap_bits) - 1
    gaps, units, last = [], [], -1
    for p in np.flatnonzero(nonzero.reshape(-1)):
        while p - last - 1 > widest:
            last += widest + 1
            gaps.append(widest)
            units.append(last)
        gaps.append(p - last - 1)
        units.append(p)
        last = p
    return np.array(gaps, dtype=np.uint16), np.array(units, dtype=np.int64)


# === writing through the real writer, and the expected tensors ========================


def write_file(tensors: dict, metadata: dict | None = None, banks: dict | None = None,
               *, alignment: int = C.DEFAULT_ALIGNMENT) -> bytes:
    writer = ContainerWriter(metadata, alignment=alignment)
    for name, bank in (banks or {}).items():
        writer.add_bank(name, bank)
    for name, tensor in tensors.items():
        writer.add_tensor(name, tensor)
    return writer.to_bytes()


def _uint(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    return array.reshape(-1).view(np.dtype(f"<u{array.dtype.itemsize}"))


def expected_tensor(tensor, banks: dict[str, np.ndarray]) -> np.ndarray:
    """What a record decodes to (FORMAT.md, "Decoding a record"), computed from its inputs."""
    if not isinstance(tensor, EncodedTensor):
        array = np.asarray(tensor)
        return array.astype(array.dtype.newbyteorder("<"), order="C", copy=True)
    dtype = numpy_dtype(tensor.dtype)
    n = math.prod(tensor.shape)
    values = tensor.values
    if isinstance(values, BankValues):
        bank = banks[values.bank]
        k = math.prod(bank.shape[1:])
        rows = _uint(bank).reshape(bank.shape[0], k)[np.asarray(values.selectors, dtype=np.int64)]
    elif isinstance(values, CodebookValues):
        k = 1
        rows = _uint(values.codebook)[np.asarray(values.codes, dtype=np.int64).reshape(-1)].reshape(-1, 1)
    else:
        k = 1
        rows = _uint(values.values).reshape(-1, 1)
    out = np.zeros((n // k, k), dtype=np.dtype(f"<u{dtype.itemsize}"))
    if isinstance(tensor.layout, Sparse):
        positions = np.cumsum(np.asarray(tensor.layout.gaps, dtype=np.int64) + 1) - 1
        out[positions] = rows
    else:
        out[...] = rows
    return out.reshape(-1).view(dtype).reshape(tensor.shape)


def build(tensors: dict, metadata: dict | None = None, banks: dict | None = None,
          *, alignment: int = C.DEFAULT_ALIGNMENT) -> tuple[bytes, dict, dict]:
    """A file from the writer, with its expected tensors and metadata."""
    data = write_file(tensors, metadata, banks, alignment=alignment)
    decoded_banks = {name: expected_tensor(bank, {}) for name, bank in (banks or {}).items()}
    expected = {name: expected_tensor(t, decoded_banks) for name, t in tensors.items()}
    return data, expected, dict(metadata or {})


def safetensors_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """A safetensors file holding ``tensors`` in order (dtype names are the wire names)."""
    header: dict = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    payloads, offset = [], 0
    for name, array in tensors.items():
        raw = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": dtype_of(array).name, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        payloads.append(raw)
        offset += len(raw)
    text = json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(payloads)


# === a file model: parse a file, edit it, write it back ===============================


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
    minor: int = C.VERSION_MINOR
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


_ROLES = {(layout, kind): roles for layout in (0, 1) for kind in (0, 1, 2)
          for roles in [[r for r, keep in (("codebook", kind == 1), ("gaps", layout == 1),
                                            ("values", kind == 0), ("codes", kind == 1),
                                            ("selectors", kind == 2)) if keep]]}


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
        for role in _ROLES[rec.layout, rec.value_kind]:
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


# === Huffman stream payloads ==========================================================


@dataclass
class Huff:
    """A Huffman stream segment (FORMAT.md, "Huffman streams"); chunks are
    ``[Mode, Byte_Offset, First_Symbol, Start_Position]``."""

    lengths: list
    chunks: list
    bits: bytes
    table_size: int | None = None   # None: len(lengths)
    chunk_count: int | None = None  # None: len(chunks)
    high_nibble: int = 0            # the unused nibble when the table size is odd

    def to_bytes(self) -> bytes:
        nibbles = list(self.lengths) + ([self.high_nibble] if len(self.lengths) % 2 else [])
        packed = bytes(nibbles[k] | nibbles[k + 1] << 4 for k in range(0, len(nibbles), 2))
        table_size = len(self.lengths) if self.table_size is None else self.table_size
        count = len(self.chunks) if self.chunk_count is None else self.chunk_count
        entries = b"".join(struct.pack(C.CHUNK_ENTRY_FORMAT, *c) for c in self.chunks)
        return struct.pack("<I", table_size) + packed + struct.pack("<I", count) + entries + bytes(self.bits)

    def chunk_bytes(self, c: int) -> tuple[int, int]:
        """[begin, end) of chunk c within the bit streams."""
        end = self.chunks[c + 1][1] if c + 1 < len(self.chunks) else len(self.bits)
        return self.chunks[c][1], end


def parse_huff(payload: bytes) -> Huff:
    t = struct.unpack_from("<I", payload)[0]
    packed = payload[4:4 + (t + 1) // 2]
    lengths = [(packed[s // 2] >> (4 * (s % 2))) & 15 for s in range(t)]
    pos = 4 + (t + 1) // 2
    n = struct.unpack_from("<I", payload, pos)[0]
    chunks = [list(struct.unpack_from(C.CHUNK_ENTRY_FORMAT, payload, pos + 4 + 25 * c)) for c in range(n)]
    huff = Huff(lengths, chunks, payload[pos + 4 + 25 * n:], high_nibble=packed[-1] >> 4 if t % 2 else 0)
    assert huff.to_bytes() == bytes(payload)
    return huff


def canonical_codes(lengths) -> list:
    """DEFLATE canonical codes (RFC 1951, 3.2.2), None for symbols without a code."""
    count = [0] * 16
    for n in lengths:
        count[n] += 1
    count[0] = 0
    code, first = 0, [0] * 16
    for bits in range(1, 16):
        code = (code + count[bits - 1]) << 1
        first[bits] = code
    codes = []
    for n in lengths:
        codes.append(first[n] if n else None)
        if n:
            first[n] += 1
    return codes


class BitWriter:
    """A least-significant-bit-first bit stream."""

    def __init__(self):
        self.bits: list[int] = []

    def uint(self, value: int, width: int) -> None:
        self.bits += [(value >> k) & 1 for k in range(width)]

    def code(self, code: int, length: int) -> None:  # most significant bit first
        self.bits += [(code >> k) & 1 for k in reversed(range(length))]

    def raw(self, bits: str) -> None:
        self.bits += [int(b) for b in bits]

    def to_bytes(self) -> bytes:
        bits = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(sum(bits[i + k] << k for k in range(8)) for i in range(0, len(bits), 8))


def craft_huffman(symbols, alphabet: int, lengths, firsts, modes, *, gap_stream: bool) -> Huff:
    """A Huffman stream written by hand: the given code lengths, chunk cuts and modes."""
    symbols = [int(s) for s in symbols]
    width = C.symbol_width(alphabet)
    codes = canonical_codes(lengths)
    chunks, bits = [], b""
    for c, first in enumerate(firsts):
        stop = firsts[c + 1] if c + 1 < len(firsts) else len(symbols)
        out = BitWriter()
        for s in symbols[first:stop]:
            if modes[c] == C.ChunkMode.RAW:
                out.uint(s, width)
            else:
                out.code(codes[s], lengths[s])
        start = sum(g + 1 for g in symbols[:first]) if gap_stream else 0
        chunks.append([modes[c], len(bits), first, start])
        bits += out.to_bytes()
    return Huff(list(lengths), chunks, bits)


def huffman_bits_used(huff: Huff, c: int, symbols) -> int:
    """Bits the codes of Huffman chunk c take (to find its slack)."""
    lengths = huff.lengths
    first = huff.chunks[c][2]
    stop = huff.chunks[c + 1][2] if c + 1 < len(huff.chunks) else len(symbols)
    return sum(lengths[s] for s in symbols[first:stop])


def pack_symbols(symbols, alphabet: int) -> bytes:
    out = BitWriter()
    for s in symbols:
        out.uint(int(s), C.symbol_width(alphabet))
    return out.to_bytes()


# === registry =========================================================================


@dataclass
class Vector:
    name: str
    kind: str  # "valid" or "invalid"
    description: str
    make: Callable
    error: str = ""
    rule: str = ""


VECTORS: list[Vector] = []


def valid(name: str, description: str):
    """Register a valid vector: ``make()`` returns (file bytes, expected tensors, metadata)."""
    def register(make):
        VECTORS.append(Vector(name, "valid", description, make))
        return make
    return register


def invalid(name: str, rule: str, error: str, description: str, make: Callable) -> None:
    """Register an invalid vector: ``make()`` returns the file bytes."""
    VECTORS.append(Vector(name, "invalid", description, make, error, rule))


def enc(dtype: str, shape, layout, values) -> EncodedTensor:
    return EncodedTensor(dtype, tuple(shape), layout, values)


def u16(symbols) -> np.ndarray:
    return np.asarray(symbols, dtype=np.uint16)


EMPTY = u16([])


def huffman_modes(data: bytes, kind: str, name: str, role: str) -> Huff:
    """The Huffman structure of one segment of a file (to assert what a vector pins)."""
    model = parse(data)
    rec = model.bank(name) if kind == "bank" else model.tensor(name)
    seg = rec.seg(role)
    assert seg.codec == C.SegmentCodec.HUFFMAN, (name, role, seg.codec)
    return parse_huff(seg.payload)


# === valid vectors ====================================================================


@valid("raw-every-dtype", "Every DType of Table A.1 stored DENSE RAW, with extreme values: integer "
       "minima and maxima, signed zeros, infinities, NaNs, subnormals, and all 256 bit patterns of "
       "both float8 types (E4M3 NaN 0x7F/0xFF included); ranks 1 to 3.")
def _raw_every_dtype():
    f64 = [0, 1 << 63, 0x3FF0000000000000, 0x400921FB54442D18, 0x7FF0000000000000,
           0xFFF0000000000000, 0x7FF8000000000000, 1, 0x800FFFFFFFFFFFFF, 0x7FEFFFFFFFFFFFFF]
    tensors = {
        "bool": np.array([True, False, False, True, True, False]).reshape(2, 3),
        "u8": np.array([0, 1, 127, 128, 254, 255], np.uint8),
        "i8": np.array([-128, -127, -1, 0, 1, 127], np.int8),
        "i16": np.array([-32768, -1, 0, 1, 0x1234, 32767], "<i2").reshape(3, 2),
        "u16": np.array([0, 1, 0x00FF, 0xFF00, 0x8000, 0xFFFF], "<u2"),
        "i32": np.array([-2**31, -1, 0, 1, 0x12345678, 2**31 - 1], "<i4").reshape(1, 2, 3),
        "u32": np.array([0, 1, 0xDEADBEEF, 0x80000000, 0xFFFFFFFF], "<u4"),
        "i64": np.array([-2**63, -1, 0, 1, 0x0123456789ABCDEF, 2**63 - 1], "<i8").reshape(2, 3),
        "u64": np.array([0, 1, 0xFEDCBA9876543210, 2**63, 2**64 - 1], "<u8"),
        "f16": from_bits(np.float16, [0x0000, 0x8000, 0x3C00, 0xC100, 0x7C00, 0xFC00, 0x7E00, 0x0001,
                                      0x8001, 0x03FF, 0x7BFF, 0xFBFF], (3, 4)),
        "bf16": from_bits(BF16, [0x0000, 0x8000, 0x3F80, 0xBFC0, 0x7F80, 0xFF80, 0x7FC0, 0x0001,
                                 0x807F, 0x7F7F]),
        "f32": from_bits(np.float32, [0, 0x80000000, 0x3F800000, 0xC0490FDB, 0x7F800000, 0xFF800000,
                                      0x7FC00000, 0x00000001, 0x807FFFFF, 0x7F7FFFFF], (5, 2)),
        "f64": from_bits(np.float64, f64),
        "f8_e4m3": from_bits(E4M3, range(256), (16, 16)),
        "f8_e5m2": from_bits(E5M2, range(256), (4, 8, 8)),
    }
    return build(tensors)


@valid("raw-zero-size-and-scalar", "Rank-0 scalars (one element), zero-size tensors (a zero "
       "dimension anywhere, N = 0, Length 0 segments), a rank-8 tensor (the maximum), and a last "
       "segment of Length 0 placed at an aligned offset past the end of the one before it, so the "
       "file ends in zero padding.")
def _raw_zero_size_and_scalar():
    tensors = {
        "scalar_f64": np.array(-0.0, "<f8"),
        "empty_i64": np.zeros(0, "<i8"),
        "scalar_bool": np.array(True),
        "empty_rank3_bf16": np.zeros((3, 0, 2), BF16),
        "rank8_i16": np.arange(8, dtype="<i2").reshape(1, 2, 1, 2, 1, 2, 1, 1),
        "scalar_u64": np.array(2**64 - 2, "<u8"),
        "scalar_f32": np.array(3.5, "<f4"),
        "empty_last_u8": np.zeros((0,), np.uint8),
    }
    data, expected, metadata = build(tensors)
    at = serialize(parse(data))[1]
    ref = at["tensor", len(tensors) - 1, "seg", "values"]
    assert ref[2] == 0 and ref[1] == len(data) and (ref[1] - at["data_offset"]) % 64 == 0
    return data, expected, metadata


@valid("bf16-nan-payloads", "NaN payloads (signalling and quiet, both signs) in BF16, F16, F32, F64 "
       "and the float8 types, stored RAW, as codebook entries (gathered by codes) and as sparse "
       "values: readers must copy bits, never convert through another float type.")
def _bf16_nan_payloads():
    r = Rand(3)
    bf16_book = from_bits(BF16, [0x7FC3, 0xFF82, 0x8000, 0x0000, 0x7F81, 0x3F80])
    codes = r.ints(15, 6)
    gaps = u16([1, 0, 3, 2])
    tensors = {
        "bf16_raw": from_bits(BF16, [0x7F81, 0xFF81, 0x7FC1, 0xFFC1, 0x7FFF, 0xFFFF, 0x7FA5, 0x7F80]),
        "bf16_codebook": enc("BF16", (3, 5), Dense(), CodebookValues(bf16_book, u16(codes), PACKED)),
        "bf16_sparse": enc("BF16", (12,), Sparse(2, gaps, PACKED),
                           RawValues(from_bits(BF16, [0xFFC5, 0x7F82, 0x8000, 0x7FFE]))),
        "f16_raw": from_bits(np.float16, [0x7C01, 0xFC01, 0x7E01, 0x7FFF, 0xFFFF, 0x7D55]),
        "f32_raw": from_bits(np.float32, [0x7F800001, 0xFF800001, 0x7FC00001, 0x7FFFFFFF, 0xFFBFFFFF]),
        "f64_raw": from_bits(np.float64, [0x7FF0000000000001, 0xFFF8000000000001, 0x7FFFFFFFFFFFFFFF]),
        "f8_e5m2_codebook": enc("F8_E5M2", (2, 4), Dense(),
                                CodebookValues(from_bits(E5M2, [0x7D, 0x7E, 0xFF, 0x7C]), u16([0, 1, 2, 3, 3, 2, 1, 0]),
                                               HUFFMAN)),
        "f8_e4m3_codebook": enc("F8_E4M3", (5,), Dense(),
                                CodebookValues(from_bits(E4M3, [0x7F, 0xFF, 0x80]), u16([0, 1, 2, 1, 0]), PACKED)),
    }
    return build(tensors)


@valid("codebook-packed", "DENSE CODEBOOK tensors with PACKED codes at widths 1, 2, 3, 4 and 8 bits "
       "(alphabets 2, 3, 5, 16, 256), symbols crossing byte boundaries, zero trailing bits in the "
       "last byte, codebook entries never used, and a rank-0 tensor holding one code.")
def _codebook_packed():
    r = Rand(4)
    tensors = {
        "c16_f32": enc("F32", (6, 7), Dense(), CodebookValues(
            (np.arange(16, dtype="<f4") * 0.25 - 2), u16(r.ints(42, 16)), PACKED)),
        "c5_f64": enc("F64", (11,), Dense(), CodebookValues(
            np.array([0.0, -1.0, 2.5, 1e300, -1e-300], "<f8"), u16([0, 1, 2, 3, 4, 4, 3, 2, 1, 0, 2]), PACKED)),
        "c2_i16": enc("I16", (19,), Dense(), CodebookValues(
            np.array([-7, 300], "<i2"), u16(r.ints(19, 2)), PACKED)),
        "c3_u8_scalar": enc("U8", (), Dense(), CodebookValues(np.array([9, 8, 7], np.uint8), u16([2]), PACKED)),
        "c256_u8": enc("U8", (3, 3), Dense(), CodebookValues(
            (255 - np.arange(256)).astype(np.uint8), u16([0, 255, 1, 254, 128, 127, 3, 3, 200]), PACKED)),
        "c16_unused_i32": enc("I32", (4,), Dense(), CodebookValues(
            np.arange(16, dtype="<i4") * -1000, u16([15, 15, 0, 15]), PACKED)),
    }
    return build(tensors)


@valid("codebook-huffman", "DENSE CODEBOOK tensors with HUFFMAN codes as the writer makes them: one "
       "Huffman-coded chunk, and two chunks whose last is shorter than the first.")
def _codebook_huffman():
    r = Rand(5)
    tensors = {
        "skewed_f16": enc("F16", (40, 25), Dense(), CodebookValues(
            (np.arange(32, dtype="<f2") - 16) / 8, u16(r.skewed(1000, 32)), HUFFMAN)),
        "two_chunks_f32": enc("F32", (700,), Dense(), CodebookValues(
            np.linspace(-1, 1, 8, dtype="<f4"), u16(r.skewed(700, 8)), HuffmanCodec(chunk_symbols=512, chunk_multiple=1))),
    }
    data, expected, metadata = build(tensors)
    assert [c[0] for c in huffman_modes(data, "tensor", "skewed_f16", "codes").chunks] == [0]
    assert [c[0] for c in huffman_modes(data, "tensor", "two_chunks_f32", "codes").chunks] == [0, 0]
    return data, expected, metadata


@valid("huffman-chunks-in-fours", "HUFFMAN streams split as the writer splits them by default: a "
       "multiple of four nearly equal chunks, so that readers decode four at a time. A code stream "
       "of 701 symbols with at most 512 per chunk (four chunks, 176 symbols each but the last, 173) "
       "and a gap stream in eight chunks whose Start_Positions follow from that split.")
def _huffman_chunks_in_fours():
    r = Rand(21)
    dense = np.concatenate([r.mask(300, 30), r.mask(300, 6)])
    gaps, units = sparsify(dense, 3)
    codes = r.skewed(len(units), 5)
    tensors = {
        "codes_f32": enc("F32", (701,), Dense(), CodebookValues(
            np.linspace(-1, 1, 8, dtype="<f4"), u16(r.skewed(701, 8)), HuffmanCodec(chunk_symbols=512))),
        "gaps_f32": enc("F32", (600,), Sparse(3, gaps, HuffmanCodec(chunk_symbols=30)),
                        CodebookValues(np.linspace(0.5, 2.5, 5, dtype="<f4"), u16(codes), HUFFMAN)),
    }
    data, expected, metadata = build(tensors)
    chunks = huffman_modes(data, "tensor", "codes_f32", "codes").chunks
    assert [c[2] for c in chunks] == [0, 176, 352, 528], chunks
    chunks = huffman_modes(data, "tensor", "gaps_f32", "gaps").chunks
    assert len(chunks) % 4 == 0 and len({c[2] - p[2] for p, c in zip(chunks, chunks[1:])}) == 1, chunks
    assert all(c[3] > 0 for c in chunks[1:])
    return data, expected, metadata


@valid("codebook-12bit", "Codebooks of 4096 entries (12-bit symbols): PACKED codes using the first "
       "and last entries; a HUFFMAN stream whose Table_Size is far below the alphabet (symbols from "
       "Table_Size to C-1 have no code); and a HUFFMAN stream of raw chunks at width 12 (Table_Size 0).")
def _codebook_12bit():
    r = Rand(6)
    big = (np.arange(4096, dtype=np.int64) * 7 - 14000).astype("<i2")
    low = (np.arange(4096) % 251).astype(np.uint8)
    codes = r.ints(50, 4096)
    codes[0], codes[-1] = 0, 4095
    tensors = {
        "packed_i16": enc("I16", (5, 10), Dense(), CodebookValues(big, u16(codes), PACKED)),
        "huffman_low_u8": enc("U8", (200,), Dense(), CodebookValues(low, u16(r.skewed(200, 10)), HUFFMAN)),
        "huffman_raw_u8": enc("U8", (40,), Dense(), CodebookValues(low, u16(r.ints(40, 4096)), HUFFMAN)),
    }
    data, expected, metadata = build(tensors)
    huff = huffman_modes(data, "tensor", "huffman_low_u8", "codes")
    assert len(huff.lengths) <= 10 and huff.chunks[0][0] == 0
    huff = huffman_modes(data, "tensor", "huffman_raw_u8", "codes")
    assert huff.lengths == [] and huff.chunks[0][0] == 1
    return data, expected, metadata


@valid("codebook-single-entry", "Codebook_Size 1: codes are 1-bit zeros (width max(1, bitlength(0)) "
       "= 1), PACKED and HUFFMAN (stored as raw chunks with Table_Size 0), including a scalar.")
def _codebook_single_entry():
    tensors = {
        "packed_f32": enc("F32", (3, 4), Dense(), CodebookValues(np.array([-1.5], "<f4"), u16([0] * 12), PACKED)),
        "huffman_f32": enc("F32", (100,), Dense(), CodebookValues(np.array([2.25], "<f4"), u16([0] * 100), HUFFMAN)),
        "scalar_i8": enc("I8", (), Dense(), CodebookValues(np.array([-3], np.int8), u16([0]), PACKED)),
    }
    return build(tensors)


@valid("huffman-multi-chunk-with-raw-fallback", "One HUFFMAN code stream cut into chunks of 100 "
       "symbols (the last shorter): skewed chunks are Huffman-coded, uniform ones stored raw at "
       "width 6 with the same stream's code table.")
def _huffman_multi_chunk():
    r = Rand(7)
    parts = [r.skewed(100, 64), r.skewed(100, 64), r.ints(100, 64), r.skewed(100, 64),
             r.ints(100, 64), r.skewed(100, 64), r.ints(50, 64)]
    codes = np.concatenate(parts)
    book = (np.arange(64) * 1031 % 65536).astype("<u2")
    tensors = {"codes_u16": enc("U16", (13, 50), Dense(),
                                CodebookValues(book, u16(codes), HuffmanCodec(chunk_symbols=100, chunk_multiple=1)))}
    data, expected, metadata = build(tensors)
    modes = [c[0] for c in huffman_modes(data, "tensor", "codes_u16", "codes").chunks]
    assert len(modes) == 7 and 0 in modes and 1 in modes, modes
    return data, expected, metadata


@valid("huffman-single-symbol", "HUFFMAN streams using one symbol: a single code of length 1 (the "
       "incomplete code FORMAT.md allows), one bit per symbol, for a code stream (alphabet 256) and "
       "a gap stream (every third unit, gap 2).")
def _huffman_single_symbol():
    n = 600
    gaps = u16([2] * (n // 3))
    tensors = {
        "codes_u8": enc("U8", (500,), Dense(), CodebookValues(np.arange(256, dtype=np.uint8)[::-1].copy(),
                                                             u16([200] * 500), HUFFMAN)),
        "gaps_f32": enc("F32", (n,), Sparse(4, gaps, HUFFMAN),
                        RawValues(np.arange(1, n // 3 + 1, dtype="<f4"))),
    }
    data, expected, metadata = build(tensors)
    for name, role, symbol in (("codes_u8", "codes", 200), ("gaps_f32", "gaps", 2)):
        huff = huffman_modes(data, "tensor", name, role)
        assert huff.lengths == [0] * symbol + [1] and [c[0] for c in huff.chunks] == [0], huff.lengths
    return data, expected, metadata


@valid("huffman-code-length-15", "A HUFFMAN stream with Fibonacci symbol frequencies whose codes "
       "reach the maximum length, 15 bits, in chunks of 1000 symbols.")
def _huffman_code_length_15():
    r = Rand(8)
    counts = [1, 1]
    while len(counts) < 17:
        counts.append(counts[-1] + counts[-2])
    symbols = r.shuffle([s for s, n in enumerate(counts) for _ in range(n)])
    tensors = {"fib_u8": enc("U8", (len(symbols),), Dense(), CodebookValues(
        (np.arange(17) * 13).astype(np.uint8), u16(symbols), HuffmanCodec(chunk_symbols=1000, max_code_length=15, chunk_multiple=1)))}
    data, expected, metadata = build(tensors)
    huff = huffman_modes(data, "tensor", "fib_u8", "codes")
    assert max(huff.lengths) == 15 and all(c[0] == 0 for c in huff.chunks), huff.lengths
    return data, expected, metadata


@valid("huffman-handcrafted", "HUFFMAN streams written by hand (the base of most stream vectors in "
       "invalid/): a code stream with Huffman, raw, Huffman chunks; an incomplete gap code with an odd "
       "Table_Size, three chunks, non-zero Start_Positions, a raw last chunk holding symbols that have "
       "no code, and an entry on the last unit; a selector stream whose Table_Size is below the bank size.")
def _huffman_handcrafted():
    data, expected, metadata, _ = handcrafted()
    return data, expected, metadata


#: The symbols of the hand-made streams of "huffman-handcrafted" (see handcrafted()).
HC_CODES = [0, 1, 2, 3, 4, 5, 0, 1,   5, 4, 3, 2, 1, 0, 1, 2,   2, 2, 0, 1, 3, 0, 0, 1]
HC_CODE_LENGTHS = [2, 2, 2, 3, 4, 4]
HC_GAPS = [0, 2, 4, 1,   4, 2, 4, 1,   7, 5]
HC_GAP_LENGTHS = [2, 2, 3, 0, 3]  # symbols 0 1 2 4 coded (Kraft 3/4), 3 and 5-7 not
HC_SELECTORS = [1, 0, 1,   2, 0]


def handcrafted() -> tuple[bytes, dict, dict, dict[str, Huff]]:
    """The writer's file for the "huffman-handcrafted" inputs, its streams replaced by hand-made ones."""
    book = np.array([0.0, 1.5, -2.0, 3.25, 4.0, -5.5], "<f4")
    kernels = np.array([[0, 0], [1, 2], [3, 4]], "<f4")
    values = np.array([100, -200, 300, -400, 500, -600, 700, -800, 900, -1000], "<i2")
    tensors = {
        "codes": enc("F32", (4, 6), Dense(), CodebookValues(book, u16(HC_CODES), PACKED)),
        "gaps": enc("I16", (5, 8), Sparse(3, u16(HC_GAPS), PACKED), RawValues(values)),
        "sel": enc("F32", (5, 2), Dense(), BankValues("k", u16(HC_SELECTORS), PACKED)),
    }
    data, expected, metadata = build(tensors, banks={"k": kernels})
    streams = {
        "codes": craft_huffman(HC_CODES, 6, HC_CODE_LENGTHS, [0, 8, 16], [0, 1, 0], gap_stream=False),
        "gaps": craft_huffman(HC_GAPS, 8, HC_GAP_LENGTHS, [0, 4, 8], [0, 0, 1], gap_stream=True),
        "sel": craft_huffman(HC_SELECTORS, 3, [1, 1], [0, 3], [0, 1], gap_stream=False),
    }
    # the slack bits and byte counts the invalid vectors rely on
    codes, gaps = streams["codes"], streams["gaps"]
    assert [huffman_bits_used(codes, c, HC_CODES) for c in (0, 2)] == [21, 17]
    assert [codes.chunk_bytes(c) for c in range(3)] == [(0, 3), (3, 6), (6, 9)]
    assert [gaps.chunk_bytes(c) for c in range(3)] == [(0, 2), (2, 4), (4, 5)]
    model = parse(data)
    for name, role in (("codes", "codes"), ("gaps", "gaps"), ("sel", "selectors")):
        seg = model.tensor(name).seg(role)
        seg.codec = C.SegmentCodec.HUFFMAN
        seg.payload = streams[name].to_bytes()
    assert np.flatnonzero(np.cumsum(np.array(HC_GAPS) + 1) - 1)[-1] == len(HC_GAPS) - 1
    assert (np.cumsum(np.array(HC_GAPS) + 1) - 1)[-1] == 39
    return serialize(model)[0], expected, metadata, streams


def hc_model() -> Model:
    return parse(handcrafted()[0])


@valid("sparse-raw-values", "SPARSE RAW tensors: HUFFMAN and PACKED gap streams, entries on the first "
       "and the last unit, and 64-bit values.")
def _sparse_raw_values():
    r = Rand(9)
    mask = r.mask(120, 25)
    gaps, units = sparsify(mask, 5)
    vals = np.array([r.below(1 << 20) / 64 - 8000 for _ in units], "<f4")
    i32_gaps = u16([0, 3, 7, 2, 7, 0, 5, 7, 7, 2])  # first unit, ..., unit 49 = last
    assert int((i32_gaps.astype(int) + 1).sum()) == 50
    tensors = {
        "f32_huffman_gaps": enc("F32", (10, 12), Sparse(5, gaps, HUFFMAN), RawValues(vals)),
        "i32_packed_gaps": enc("I32", (50,), Sparse(3, i32_gaps, PACKED),
                               RawValues(np.arange(1, 11, dtype="<i4") * -7)),
        "u64_first_last": enc("U64", (7,), Sparse(4, u16([0, 5]), PACKED),
                              RawValues(np.array([2**64 - 1, 2**63], "<u8"))),
    }
    return build(tensors)


@valid("sparse-codebook-max-gap-filler", "SPARSE CODEBOOK tensors with Gap_Bits 3: runs of exactly "
       "7 zero units (the widest gap, no filler), and of 8, 15, 16, 20 and 23 zeros bridged by filler "
       "entries (gap 7, code 0 whose codebook value is 0.0); raw-valued fillers too; PACKED and HUFFMAN gaps.")
def _sparse_max_gap_filler():
    runs = [7, 8, 20, 15, 16, 0, 23, 7]
    dense, codes_dense = [], []
    for k, run in enumerate(runs):
        dense += [0] * run + [1]
        codes_dense += [0] * run + [1 + k % 3]
    dense += [0] * 5
    codes_dense += [0] * 5
    nonzero = np.array(dense, dtype=bool)
    gaps, units = sparsify(nonzero, 3)
    assert 7 in gaps and len(gaps) > nonzero.sum()
    codes = np.array(codes_dense)[units]
    book = np.array([0.0, 1.0, -2.0, 3.5], "<f4")
    n = nonzero.size
    raw_values = np.array([(u * 3) % 7 + 1 if nonzero[u] else 0 for u in units], "<i2")
    tensors = {
        "packed_gaps": enc("F32", (n,), Sparse(3, gaps, PACKED), CodebookValues(book, u16(codes), PACKED)),
        "huffman_gaps": enc("F32", (n,), Sparse(3, gaps, HUFFMAN), CodebookValues(book, u16(codes), HUFFMAN)),
        "raw_fillers": enc("I16", (n,), Sparse(3, gaps, PACKED), RawValues(raw_values)),
    }
    return build(tensors)


@valid("sparse-gap-bits-1", "Gap_Bits 1 (alphabet 2): every skip of more than one zero needs fillers; "
       "PACKED and HUFFMAN gap streams.")
def _sparse_gap_bits_1():
    r = Rand(10)
    mask = r.mask(40, 30)
    gaps, units = sparsify(mask, 1)
    raw = np.array([(7 * u) % 250 + 1 if mask[u] else 0 for u in units], np.uint8)
    codes = np.array([1 + u % 2 if mask[u] else 0 for u in units])
    tensors = {
        "packed_u8": enc("U8", (40,), Sparse(1, gaps, PACKED), RawValues(raw)),
        "huffman_codebook": enc("F16", (5, 8), Sparse(1, gaps, HUFFMAN),
                                CodebookValues(np.array([0, 1, -1], "<f2"), u16(codes), PACKED)),
    }
    return build(tensors)


@valid("sparse-gap-bits-16", "Gap_Bits 16 (alphabet 65536, 16-bit packed gaps) with small gaps, "
       "PACKED and HUFFMAN.")
def _sparse_gap_bits_16():
    gaps = u16([3, 0, 12, 40, 1])
    tensors = {
        "packed_f32": enc("F32", (70,), Sparse(16, gaps, PACKED), RawValues(np.arange(1, 6, dtype="<f4"))),
        "huffman_i8": enc("I8", (70,), Sparse(16, gaps, HUFFMAN), RawValues(np.arange(-5, 0, dtype=np.int8))),
    }
    return build(tensors)


@valid("sparse-gap-bits-16-max-gap", "Gap_Bits 16 with a gap of exactly 65535 (the widest), then "
       "gap 0, in a U8 tensor of 65538 units.")
def _sparse_gap_bits_16_max():
    tensors = {"u8": enc("U8", (65538,), Sparse(16, u16([65535, 0]), PACKED),
                         RawValues(np.array([17, 42], np.uint8)))}
    return build(tensors)


@valid("sparse-empty", "SPARSE records with Entry_Count 0: all-zero tensors with empty PACKED and "
       "HUFFMAN gap streams (Chunk_Count 0), an empty code stream, a tensor of zero units, and BANK "
       "selectors.")
def _sparse_empty():
    empty = u16([])
    tensors = {
        "packed_f32": enc("F32", (4, 5), Sparse(1, empty, PACKED), RawValues(np.zeros(0, "<f4"))),
        "huffman_i8": enc("I8", (3, 3), Sparse(7, empty, HUFFMAN), RawValues(np.zeros(0, np.int8))),
        "codebook_f16": enc("F16", (2, 8), Sparse(2, empty, HUFFMAN),
                            CodebookValues(np.array([1.0, 2.0], "<f2"), empty, HUFFMAN)),
        "zero_units_u8": enc("U8", (0, 3), Sparse(1, empty, PACKED), RawValues(np.zeros(0, np.uint8))),
        "bank_f32": enc("F32", (3, 2), Sparse(2, empty, HUFFMAN), BankValues("b", empty, PACKED)),
    }
    return build(tensors, banks={"b": np.array([[1, 2], [3, 4]], "<f4")})


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


@valid("bank-and-tensor-same-name", "A bank and a tensor named alike (allowed: names are distinct "
       "among banks and among tensors); the tensor selects from that bank.")
def _bank_and_tensor_same_name():
    tensors = {"k": enc("F32", (3, 2), Dense(), BankValues("k", u16([1, 0, 1]), PACKED))}
    return build(tensors, banks={"k": np.array([[1, 2], [3, 4]], "<f4")})


@valid("no-tensors", "No metadata, no bank, no tensor: a 64-byte file that ends at Data_Offset.")
def _no_tensors():
    data, expected, metadata = build({})
    assert len(data) == 64
    return data, expected, metadata


@valid("bank-only", "A bank that no tensor uses, and no tensor: the file decodes to no tensors, but "
       "the bank's segments are still checked.")
def _bank_only():
    return build({}, {"note": "bank only"}, banks={"unused": np.array([[1, 2, 3]], "<i4")})


@valid("zero-size-encoded", "Zero-size tensors that still have segments: CODEBOOK with PACKED and "
       "HUFFMAN empty code streams (the codebook is stored), SPARSE with no units, BANK with no units.")
def _zero_size_encoded():
    empty = u16([])
    tensors = {
        "codebook_packed": enc("F32", (0,), Dense(), CodebookValues(np.array([1, 2, 3], "<f4"), empty, PACKED)),
        "codebook_huffman": enc("I16", (2, 0), Dense(), CodebookValues(np.array([5, 6], "<i2"), empty, HUFFMAN)),
        "sparse_raw": enc("F64", (0, 4), Sparse(3, empty, HUFFMAN), RawValues(np.zeros(0, "<f8"))),
        "bank": enc("F32", (0, 2), Dense(), BankValues("b", empty, HUFFMAN)),
        "bool_codebook": enc("BOOL", (0,), Dense(), CodebookValues(np.array([False, True]), empty, PACKED)),
    }
    return build(tensors, banks={"b": np.array([[1, 2]], "<f4")})


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


@valid("bool-encodings", "BOOL in every value kind: RAW, CODEBOOK (PACKED and HUFFMAN), SPARSE RAW "
       "with false fillers, and a BOOL bank.")
def _bool_encodings():
    r = Rand(15)
    mask = r.mask(30, 20)
    gaps, units = sparsify(mask, 2)
    book = np.array([False, True])
    tensors = {
        "raw": np.array([True, False, True, True]),
        "codebook_packed": enc("BOOL", (3, 4), Dense(), CodebookValues(book, u16(r.ints(12, 2)), PACKED)),
        "codebook_huffman": enc("BOOL", (60,), Dense(), CodebookValues(book, u16(r.skewed(60, 2)), HUFFMAN)),
        "sparse": enc("BOOL", (30,), Sparse(2, gaps, PACKED), RawValues(mask[units])),
        "bank": enc("BOOL", (4, 3), Dense(), BankValues("bits", u16([1, 0, 1, 1]), PACKED)),
    }
    return build(tensors, banks={"bits": np.array([[False, False, False], [True, False, True]])})


@valid("sparse-gaps-multi-chunk", "A HUFFMAN gap stream of 16-symbol chunks, some Huffman-coded and "
       "some raw, whose Start_Positions (units covered by the entries before each chunk) are non-zero; "
       "CODEBOOK values with HUFFMAN codes in chunks too.")
def _sparse_gaps_multi_chunk():
    r = Rand(16)
    dense = np.concatenate([r.mask(200, 40), r.mask(200, 8), r.mask(100, 60)])
    gaps, units = sparsify(dense, 4)
    codes = r.skewed(len(units), 6)
    codes[~dense[units]] = 0
    codes[dense[units] & (codes == 0)] = 5
    tensors = {"w": enc("F32", (500,), Sparse(4, gaps, HuffmanCodec(chunk_symbols=16, chunk_multiple=1)),
                        CodebookValues(np.array([0, 1, 2, 3, 4, -1], "<f4"), u16(codes), HuffmanCodec(chunk_symbols=64, chunk_multiple=1)))}
    data, expected, metadata = build(tensors)
    huff = huffman_modes(data, "tensor", "w", "gaps")
    assert len(huff.chunks) > 4 and {c[0] for c in huff.chunks} == {0, 1}, [c[0] for c in huff.chunks]
    assert all(c[3] > 0 for c in huff.chunks[1:])
    return data, expected, metadata


# === invalid vectors: the files they start from =======================================



def base_raw() -> bytes:
    """Metadata and two DENSE RAW tensors: a (F32, 24 bytes at 0) and b (I16, 10 bytes at 64)."""
    return write_file({"a": np.arange(6, dtype="<f4").reshape(2, 3), "b": np.array([1, -2, 3, -4, 5], "<i2")},
                      {"key": "value"})


def base_codebook() -> bytes:
    """w: U8 CODEBOOK (C = 5, 11 PACKED codes: 33 bits); s: F32 SPARSE, gaps 0 4 2 of 12 units."""
    return write_file({
        "w": enc("U8", (11,), Dense(), CodebookValues(np.array([10, 20, 30, 40, 50], np.uint8),
                                                     u16([0, 1, 2, 3, 4, 4, 3, 2, 1, 0, 2]), PACKED)),
        "s": enc("F32", (12,), Sparse(3, u16([0, 4, 2]), PACKED), RawValues(np.array([1, 2, 3], "<f4"))),
    })


def base_bank() -> bytes:
    """Banks k (F32 2x3x3) and k2 (unused, 1x3x3); t (2, 3, 3) selects k's kernels 1, 0."""
    k = np.arange(18, dtype="<f4").reshape(2, 3, 3)
    return write_file({"t": enc("F32", (2, 3, 3), Dense(), BankValues("k", u16([1, 0]), PACKED))},
                      banks={"k": k, "k2": k[:1] + 100})


def base_empty_last() -> bytes:
    """f (F32, 4 bytes) then e (U8, no element): e's empty segment sits at 64, the file ends in padding."""
    return write_file({"f": np.array([1.0], "<f4"), "e": np.zeros(0, np.uint8)})


def base_zero_size() -> bytes:
    """Zero-size tensors with segments: F32 codebook (PACKED codes), I16 codebook (HUFFMAN codes),
    F32 raw (an empty values segment), BOOL codebook."""
    return write_file({
        "cp": enc("F32", (0,), Dense(), CodebookValues(np.array([1, 2, 3], "<f4"), EMPTY, PACKED)),
        "ch": enc("I16", (0, 2), Dense(), CodebookValues(np.array([5, 6], "<i2"), EMPTY, HUFFMAN)),
        "r": np.zeros(0, "<f4"),
        "bool": enc("BOOL", (0,), Dense(), CodebookValues(np.array([False, True]), EMPTY, PACKED)),
    })


def base_sparse_empty() -> bytes:
    """Entry_Count 0 in 20 units: p with PACKED gaps, h with HUFFMAN gaps."""
    return write_file({
        "p": enc("F32", (4, 5), Sparse(2, EMPTY, PACKED), RawValues(np.zeros(0, "<f4"))),
        "h": enc("F32", (4, 5), Sparse(2, EMPTY, HUFFMAN), RawValues(np.zeros(0, "<f4"))),
    })


def base_all_raw_huffman() -> bytes:
    """A HUFFMAN code stream that the writer stores as raw chunks with Table_Size 0."""
    r = Rand(20)
    data = write_file({"r": enc("U8", (40,), Dense(), CodebookValues(
        np.arange(256, dtype=np.uint8), u16(r.ints(40, 256)), HuffmanCodec(chunk_symbols=16, chunk_multiple=1)))})
    huff = huffman_modes(data, "tensor", "r", "codes")
    assert huff.lengths == [] and [c[0] for c in huff.chunks] == [1, 1, 1]
    return data


def base_bool() -> bytes:
    """BOOL in each value kind: raw, codebook [0, 1, 1] (entry 2 unused), sparse raw (gaps 1 2 of 6
    units), a BOOL bank, and a sparse codebook (gaps 1 2 of 6 units)."""
    return write_file({
        "raw": np.array([True, False, True]),
        "book": enc("BOOL", (4,), Dense(), CodebookValues(np.array([False, True, True]), u16([0, 1, 1, 0]), PACKED)),
        "sparse": enc("BOOL", (6,), Sparse(2, u16([1, 2]), PACKED), RawValues(np.array([True, True]))),
        "sel": enc("BOOL", (2, 2), Dense(), BankValues("bits", u16([1, 0]), PACKED)),
        "sbook": enc("BOOL", (6,), Sparse(2, u16([1, 2]), PACKED),
                     CodebookValues(np.array([False, True]), u16([1, 1]), PACKED)),
    }, banks={"bits": np.array([[False, False], [True, False]])})


def base_huge_sparse(shape, dtype: str = "U8") -> bytes:
    """SPARSE RAW tensors of the given shape with no entry: a tiny file, a huge tensor."""
    return write_file({"huge": enc(dtype, shape, Sparse(1, EMPTY, PACKED), RawValues(np.zeros(0, numpy_dtype(dtype))))})


def patched(base: Callable[[], bytes], change: Callable[[Patch], object], **done) -> Callable[[], bytes]:
    """A vector maker: patch bytes of ``base()`` in place, then fix checksums (unless told not to)."""
    def make() -> bytes:
        p = Patch(base())
        change(p)
        return p.done(**done)
    return make


def edited(base: Callable[[], bytes], change: Callable[[Model], object]) -> Callable[[], bytes]:
    """A vector maker: edit the model of ``base()`` and write it back (layout and checksums derived)."""
    def make() -> bytes:
        m = parse(base())
        change(m)
        return serialize(m)[0]
    return make


def hc_stream(tensor: str, change: Callable[[Huff], object]) -> Callable[[], bytes]:
    """A vector maker: "huffman-handcrafted" with one hand-made stream changed."""
    role = {"codes": "codes", "gaps": "gaps", "sel": "selectors"}[tensor]

    def make() -> bytes:
        data, _, _, streams = handcrafted()
        m = parse(data)
        huff = parse_huff(m.tensor(tensor).seg(role).payload)
        change(huff)
        m.tensor(tensor).seg(role).payload = huff.to_bytes()
        return serialize(m)[0]
    return make


def hc_symbols(tensor: str, symbols) -> Callable[[], bytes]:
    """"huffman-handcrafted" with one stream re-made from other symbols (same code, chunks, modes)."""
    spec = {"codes": (6, HC_CODE_LENGTHS, [0, 8, 16], [0, 1, 0], False),
            "gaps": (8, HC_GAP_LENGTHS, [0, 4, 8], [0, 0, 1], True),
            "sel": (3, [1, 1], [0, 3], [0, 1], False)}[tensor]

    def change(huff: Huff) -> None:
        alphabet, lengths, firsts, modes, gap = spec
        new = craft_huffman(symbols, alphabet, lengths, firsts, modes, gap_stream=gap)
        huff.chunks, huff.bits = new.chunks, new.bits
    return hc_stream(tensor, change)


def set_chunk(c: int, column: int, value) -> Callable[[Huff], None]:
    def change(huff: Huff) -> None:
        huff.chunks[c][column] = value(huff) if callable(value) else value
    return change


def put_byte(where: Callable[[Patch], int], update: Callable[[int], int]) -> Callable[[Patch], None]:
    def change(p: Patch) -> None:
        at = where(p)
        p.data[at] = update(p.data[at])
    return change


def seg_byte(kind: str, name: str, role: str, index: int) -> Callable[[Patch], int]:
    """The absolute offset of byte ``index`` (negative: from the end) of a segment's payload."""
    def where(p: Patch) -> int:
        _, start, length = p.segment(kind, name, role)
        return start + (index % length)
    return where


def shape_at(name: str, dim: int) -> Callable[[Patch], int]:
    return lambda p: p.field("tensor", name, "shape") + 8 * dim


PRE = {"major": (8, "H"), "minor": (10, "H"), "required": (12, "I"), "optional": (16, "I"),
       "header_size": (20, "Q"), "header_checksum": (28, "I")}


def preamble(field: str, value, *, fix_checksum: bool = True, base=base_raw) -> Callable[[], bytes]:
    at, fmt = PRE[field]
    return patched(base, lambda p: p.put(at, fmt, value(p) if callable(value) else value),
                   header_checksum=fix_checksum)


def header_size(p: Patch) -> int:
    return p.at["header_end"] - C.PREAMBLE_SIZE


def cut(base: Callable[[], bytes], where: Callable[[dict, bytes], int]) -> Callable[[], bytes]:
    """A vector maker: ``base()`` cut short at an offset computed from its field offsets."""
    def make() -> bytes:
        data = base()
        at = serialize(parse(data))[1]
        return data[:where(at, data)]
    return make


def _rename(kind: str, index: int, name: bytes) -> Callable[[Model], None]:
    def change(m: Model) -> None:
        (m.banks if kind == "bank" else m.tensors)[index].name = name
    return change


def _set_attr(getter: Callable[[Model], object], **values) -> Callable[[Model], None]:
    def change(m: Model) -> None:
        obj = getter(m)
        for key, value in values.items():
            setattr(obj, key, value)
    return change


def _extra_bank(rec: Rec) -> Callable[[Model], None]:
    return lambda m: m.banks.append(rec)


F32_ONE = np.array([1.0], "<f4").tobytes()


# === invalid vectors, rule by rule (FORMAT.md, Appendix B) ============================

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
invalid("required-feature-bit-0", "R4", "UnsupportedFeature",
        "Required_Features bit 0 set: version 1.0 knows no feature (checksum recomputed).",
        preamble("required", 1))
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

# R9 alignment
for _value, _what in ((0, "0"), (4, "4, below 8"), (96, "96, not a power of two"), (8192, "8192, above 4096"),
                      (0x80000000, "2^31, a power of two above 4096")):
    invalid(f"alignment-{_value}", "R9", "InvalidHeader", f"Alignment {_what} (checksum recomputed).",
            patched(base_raw, lambda p, v=_value: p.put(p.at["alignment"], "I", v)))

# R10 limits
invalid("rank-9", "R10", "LimitExceeded",
        "A DENSE RAW tensor of rank 9, shape (1, 1, 1, 1, 1, 1, 1, 2, 3): everything else consistent.",
        edited(base_raw, _set_attr(lambda m: m.tensor("a"), shape=[1] * 7 + [2, 3])))
invalid("tensor-name-4097-bytes", "R10", "LimitExceeded", "A tensor name of 4097 bytes (the limit is 4096).",
        edited(base_raw, _rename("tensor", 0, b"a" * 4097)))
invalid("bank-name-4097-bytes", "R10", "LimitExceeded", "A bank name of 4097 bytes (the limit is 4096).",
        edited(base_bank, _rename("bank", 1, b"k" * 4097)))
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
               _set_attr(lambda m: m.bank("big"), shape=[65537, 1])))

# R11 UTF-8
for _name, _bytes, _what in (("invalid-utf8", b"\xff\xfe", "bytes FF FE"),
                             ("overlong-utf8", b"\xc0\xaf", "an overlong encoding of '/'"),
                             ("utf8-surrogate", b"\xed\xa0\x80", "an encoded UTF-16 surrogate (U+D800)"),
                             ("truncated-utf8", b"ok\xe2\x82", "a 3-byte sequence cut after 2 bytes"),
                             ("utf8-above-max", b"\xf4\x90\x80\x80", "a code point above U+10FFFF")):
    invalid(f"tensor-name-{_name}", "R11", "InvalidHeader", f"A tensor name holding {_what}.",
            edited(base_raw, _rename("tensor", 1, _bytes)))
invalid("bank-name-invalid-utf8", "R11", "InvalidHeader", "A bank name holding the byte 0x80.",
        edited(base_bank, _rename("bank", 1, b"k\x80")))
invalid("metadata-key-invalid-utf8", "R11", "InvalidHeader", "A metadata key starting with a continuation byte.",
        edited(base_raw, lambda m: m.metadata.__setitem__(0, (b"\x80key", b"value"))))
invalid("metadata-value-invalid-utf8", "R11", "InvalidHeader", "A metadata value holding the byte 0xFF.",
        edited(base_raw, lambda m: m.metadata.__setitem__(0, (b"key", b"val\xffue"))))

# R12 duplicate names
invalid("duplicate-tensor-name", "R12", "DuplicateName", "Two tensors named 'a'.",
        edited(base_raw, _rename("tensor", 1, b"a")))
invalid("duplicate-bank-name", "R12", "DuplicateName", "Two banks named 'k'.",
        edited(base_bank, _rename("bank", 1, b"k")))
invalid("duplicate-metadata-key", "R12", "DuplicateName", "Two metadata entries with the key 'key'.",
        edited(lambda: write_file({"a": np.array([1], np.uint8)}, {"key": "1", "kez": "2"}),
               lambda m: m.metadata.__setitem__(1, (b"key", b"2"))))

# R13 dtype
for _code in (15, 255):
    invalid(f"dtype-{_code}", "R13", "UnknownDType", f"A tensor with DType {_code}.",
            patched(base_raw, lambda p, c=_code: p.set("tensor", "a", "dtype", "B", c)))

# R14 enum codes
invalid("layout-2", "R14", "UnknownEncoding", "A tensor with Layout 2.",
        patched(base_raw, lambda p: p.set("tensor", "a", "layout", "B", 2)))
invalid("value-kind-3", "R14", "UnknownEncoding", "A tensor with Value_Kind 3.",
        patched(base_raw, lambda p: p.set("tensor", "a", "value_kind", "B", 3)))
invalid("codec-3-on-stream-segment", "R14", "UnknownEncoding", "A codes Segment_Ref with Codec 3.",
        patched(base_codebook, lambda p: p.put(p.segment("tensor", "w", "codes")[0], "B", 3)))
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
            _set_attr(lambda m: m.tensor("s"), shape=[3], entry_count=4)(m),
            _set_attr(lambda m: m.tensor("s").seg("gaps"), payload=pack_symbols([0, 0, 0, 0], 8))(m),
            _set_attr(lambda m: m.tensor("s").seg("values"), payload=F32_ONE * 4)(m))))
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
        edited(base_bank, _set_attr(lambda m: m.tensor("t"), shape=[18])))
invalid("tensor-shape-not-ending-with-kernel", "R15", "InvalidHeader",
        "A tensor of shape (3, 3, 2) selecting from a bank of 3x3 kernels (same N, wrong trailing dims).",
        patched(base_bank, lambda p: p.put(p.field("tensor", "t", "shape"), "3Q", 3, 3, 2)))
invalid("bank-rank-0", "R15", "InvalidHeader", "A bank of rank 0 (one F32 value).",
        edited(base_bank, _extra_bank(Rec(b"s", C.DType.F32, [], 0, 0, [Seg("values", 0, F32_ONE)]))))
invalid("bank-size-0", "R15", "InvalidHeader", "A bank of shape (0, 3): L = 0.",
        edited(base_bank, _extra_bank(Rec(b"z", C.DType.F32, [0, 3], 0, 0, [Seg("values", 0, b"")]))))
invalid("bank-kernel-dim-0", "R15", "InvalidHeader", "A bank of shape (2, 0): a zero kernel dimension.",
        edited(base_bank, _extra_bank(Rec(b"z", C.DType.F32, [2, 0], 0, 0, [Seg("values", 0, b"")]))))
invalid("bank-valued-bank", "R15", "InvalidHeader",
        "A bank record with Value_Kind BANK (selecting from bank 0).",
        edited(base_bank, _extra_bank(Rec(b"bb", C.DType.F32, [1, 3, 3], 0, 2,
                                          [Seg("selectors", 1, pack_symbols([1], 2))], bank_index=0))))
invalid("bytes-codec-on-stream-segment", "R15", "InvalidHeader", "A codes segment with Codec BYTES.",
        patched(base_codebook, lambda p: p.put(p.segment("tensor", "w", "codes")[0], "B", 0)))
invalid("packed-codec-on-values-segment", "R15", "InvalidHeader", "A values segment with Codec PACKED.",
        patched(base_raw, lambda p: p.put(p.segment("tensor", "a", "values")[0], "B", 1)))
invalid("huffman-codec-on-codebook-segment", "R15", "InvalidHeader", "A codebook segment with Codec HUFFMAN.",
        patched(base_codebook, lambda p: p.put(p.segment("tensor", "w", "codebook")[0], "B", 2)))

# R16 Extension with minor 0
invalid("extension-zero-byte-minor-0", "R16", "InvalidHeader",
        "Version_Minor 0 and one zero byte after the last record, counted in Header_Size.",
        edited(base_raw, _set_attr(lambda m: m, extension=b"\x00")))
invalid("extension-bytes-minor-0", "R16", "InvalidHeader",
        "Version_Minor 0 and 6 Extension bytes after the last record.",
        edited(base_raw, _set_attr(lambda m: m, extension=b"future")))

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
        edited(base_raw, _set_attr(lambda m: m.tensor("a").seg("values"), offset=64)))
invalid("segment-misaligned", "R18", "InvalidLayout",
        "The second segment at Offset 32, after the first ends (24) but not on the 64-byte alignment.",
        edited(base_raw, _set_attr(lambda m: m.tensor("b").seg("values"), offset=32)))
invalid("segment-hole", "R18", "InvalidLayout",
        "The second segment at Offset 128 instead of 64: an aligned hole of 64 zero bytes.",
        edited(base_raw, _set_attr(lambda m: m.tensor("b").seg("values"), offset=128)))
invalid("segment-overlap", "R18", "InvalidLayout", "The second segment at Offset 0, on top of the first.",
        edited(base_raw, _set_attr(lambda m: m.tensor("b").seg("values"), offset=0)))
invalid("segments-out-of-order", "R18", "InvalidLayout",
        "Both segments present and aligned but in the opposite order to their records.",
        edited(base_raw, lambda m: (_set_attr(lambda m: m.tensor("a").seg("values"), offset=64)(m),
                                    _set_attr(lambda m: m.tensor("b").seg("values"), offset=0)(m))))
invalid("segment-offset-u64-max", "R18", "InvalidLayout",
        "The second segment's Offset is 2^64 - 64 (aligned): refused, not wrapped.",
        patched(base_raw, lambda p: p.put(p.segment("tensor", "b", "values")[0] + 1, "Q", (1 << 64) - 64)))
invalid("empty-segment-misaligned", "R18", "InvalidLayout",
        "An empty segment at Offset 4 (right after the previous one) instead of 64; the file ends there.",
        edited(base_empty_last, _set_attr(lambda m: m.tensor("e").seg("values"), offset=4)))
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
        edited(base_zero_size, _set_attr(lambda m: m.tensor("cp").seg("codes"), payload=b"\x00")))
invalid("packed-empty-gaps-one-byte", "R22", "CorruptStream",
        "The PACKED gap stream of a SPARSE tensor with no entries holds one byte.",
        edited(base_sparse_empty, _set_attr(lambda m: m.tensor("p").seg("gaps"), payload=b"\x00")))

# R23 Huffman table size
invalid("huffman-table-size-over-alphabet", "R23", "InvalidHuffmanTable",
        "A code stream (alphabet 6) whose Table_Size is 7.",
        hc_stream("codes", lambda h: h.lengths.append(0)))
invalid("huffman-gap-table-size-over-alphabet", "R23", "InvalidHuffmanTable",
        "A gap stream (alphabet 8) whose Table_Size is 9.",
        hc_stream("gaps", lambda h: h.lengths.extend([0, 0, 0, 0])))
invalid("huffman-odd-table-high-nibble", "R23", "NonZeroPadding",
        "Table_Size 5 and the unused high nibble of the last Code_Lengths byte set to 1.",
        hc_stream("gaps", lambda h: setattr(h, "high_nibble", 1)))

# R24 Kraft, and Huffman chunks need codes
invalid("huffman-kraft-over-one", "R24", "InvalidHuffmanTable",
        "Code lengths 1 2 2 3 4 4: the Kraft sum is 5/4.",
        hc_stream("codes", lambda h: h.lengths.__setitem__(0, 1)))


def _huff_edit(payload: bytes, change: Callable[[Huff], object]) -> bytes:
    huff = parse_huff(payload)
    change(huff)
    return huff.to_bytes()


def _kraft_plus(data: bytes) -> bytes:
    m = parse(data)
    seg = m.tensor("fib_u8").seg("codes")
    huff = parse_huff(seg.payload)
    huff.lengths[huff.lengths.index(15)] = 14
    seg.payload = huff.to_bytes()
    return serialize(m)[0]


invalid("huffman-kraft-over-one-by-2-15", "R24", "InvalidHuffmanTable",
        "The complete 15-bit code of 'huffman-code-length-15' with one length 15 made 14: the Kraft "
        "sum is 1 + 2^-15.", lambda: _kraft_plus(_huffman_code_length_15()[0]))
invalid("huffman-coded-chunk-without-codes", "R24", "InvalidHuffmanTable",
        "Table_Size 0 and a chunk of Mode 0 (Huffman-coded).",
        edited(base_all_raw_huffman, lambda m: setattr(m.tensor("r").seg("codes"), "payload", _huff_edit(
            m.tensor("r").seg("codes").payload, set_chunk(0, 0, 0)))))
invalid("huffman-coded-chunk-zero-lengths", "R24", "InvalidHuffmanTable",
        "Table_Size 3 with every length 0, and a chunk of Mode 0.",
        edited(base_all_raw_huffman, lambda m: setattr(m.tensor("r").seg("codes"), "payload", _huff_edit(
            m.tensor("r").seg("codes").payload, lambda h: (h.lengths.extend([0, 0, 0]), set_chunk(0, 0, 0)(h))))))


# R25 chunk count
invalid("huffman-chunk-count-zero", "R25", "CorruptStream", "Chunk_Count 0 for a stream of 24 symbols.",
        hc_stream("codes", lambda h: setattr(h, "chunk_count", 0)))
invalid("huffman-chunk-count-over-symbols", "R25", "CorruptStream", "Chunk_Count 6 for a stream of 5 symbols.",
        hc_stream("sel", lambda h: setattr(h, "chunk_count", 6)))
invalid("huffman-chunk-count-for-empty-stream", "R25", "CorruptStream",
        "Chunk_Count 1 for the gap stream of a SPARSE tensor with no entries (payload of 8 bytes).",
        edited(base_sparse_empty, lambda m: setattr(m.tensor("h").seg("gaps"), "payload", struct.pack("<II", 0, 1))))
invalid("huffman-chunk-count-for-zero-size-tensor", "R25", "CorruptStream",
        "Chunk_Count 1 for the code stream of a zero-size tensor (payload of 8 bytes).",
        edited(base_zero_size, lambda m: setattr(m.tensor("ch").seg("codes"), "payload", struct.pack("<II", 0, 1))))
invalid("huffman-chunk-table-truncated", "R25", "TruncatedError",
        "Chunk_Count 20 (at most the 24 symbols) but the segment holds only 3 entries and the bits.",
        hc_stream("codes", lambda h: setattr(h, "chunk_count", 20)))

# R26 chunk offsets and first symbols
invalid("huffman-first-byte-offset-nonzero", "R26", "CorruptStream", "Chunk 0 with Byte_Offset 1.",
        hc_stream("gaps", set_chunk(0, 1, 1)))
invalid("huffman-byte-offsets-decreasing", "R26", "CorruptStream",
        "Chunk 2's Byte_Offset one below chunk 1's.", hc_stream("codes", set_chunk(2, 1, lambda h: h.chunks[1][1] - 1)))
invalid("huffman-byte-offset-past-end", "R26", "CorruptStream",
        "The last chunk's Byte_Offset one past the end of the bit streams.",
        hc_stream("codes", set_chunk(2, 1, lambda h: len(h.bits) + 1)))
invalid("huffman-byte-offset-u64-max", "R26", "CorruptStream", "The last chunk's Byte_Offset is 2^64 - 1.",
        hc_stream("codes", set_chunk(2, 1, M64)))
invalid("huffman-first-symbol-nonzero", "R26", "CorruptStream", "Chunk 0 with First_Symbol 1.",
        hc_stream("codes", set_chunk(0, 2, 1)))
invalid("huffman-first-symbols-equal", "R26", "CorruptStream", "Chunks 1 and 2 with the same First_Symbol.",
        hc_stream("codes", set_chunk(2, 2, 8)))
invalid("huffman-first-symbol-past-count", "R26", "CorruptStream",
        "The last chunk's First_Symbol equals the symbol count (24).", hc_stream("codes", set_chunk(2, 2, 24)))


def _resize_chunk(c: int, delta: int) -> Callable[[Huff], None]:
    """Grow (zero bytes) or shrink chunk c's bytes, moving the later Byte_Offsets."""
    def change(h: Huff) -> None:
        begin, end = h.chunk_bytes(c)
        h.bits = h.bits[:end] + bytes(delta) + h.bits[end:] if delta > 0 else h.bits[:end + delta] + h.bits[end:]
        for later in h.chunks[c + 1:]:
            later[1] += delta
    return change


def _set_bits(c: int, index: int, mask: int) -> Callable[[Huff], None]:
    def change(h: Huff) -> None:
        begin, end = h.chunk_bytes(c)
        at = (end if index < 0 else begin) + index
        h.bits = h.bits[:at] + bytes([h.bits[at] | mask]) + h.bits[at + 1:]
    return change


def _invalid_code_chunk(h: Huff) -> None:
    """Gap chunk 0 (2 bytes): the code of gap 0 ('00'), then '110', which no code starts with."""
    out = BitWriter()
    out.raw("00110")
    out.raw("0" * 11)
    h.bits = out.to_bytes() + h.bits[2:]


# R27 raw chunks
invalid("huffman-raw-chunk-too-long", "R27", "CorruptStream",
        "The raw chunk (8 symbols at 3 bits: 3 bytes) given a fourth, zero byte.", hc_stream("codes", _resize_chunk(1, 1)))
invalid("huffman-raw-chunk-too-short", "R27", "CorruptStream",
        "The raw chunk (8 symbols at 3 bits: 3 bytes) cut to 2 bytes.", hc_stream("codes", _resize_chunk(1, -1)))
invalid("huffman-raw-chunk-trailing-bits", "R27", "NonZeroPadding",
        "A raw gap chunk of 2 symbols at 3 bits whose bit 7 is set.", hc_stream("gaps", _set_bits(2, -1, 0x80)))

# R28 Huffman chunks
invalid("huffman-chunk-reads-past-end", "R28", "CorruptStream",
        "The last chunk (17 bits of codes, 3 bytes) cut to 2 bytes: its last code runs past the chunk.",
        hc_stream("codes", _resize_chunk(2, -1)))
invalid("huffman-invalid-code", "R28", "CorruptStream",
        "An incomplete gap code (lengths 2 2 3 0 3) and a chunk holding the bits 110, which no code starts with.",
        hc_stream("gaps", _invalid_code_chunk))


def _single_symbol_flip() -> bytes:
    data = _huffman_single_symbol()[0]
    m = parse(data)
    seg = m.tensor("codes_u8").seg("codes")
    huff = parse_huff(seg.payload)
    _set_bits(0, 3, 0x01)(huff)
    seg.payload = huff.to_bytes()
    return serialize(m)[0]


invalid("huffman-single-symbol-invalid-code", "R28", "CorruptStream",
        "The one-symbol code of 'huffman-single-symbol' (code 0) and a 1 bit in its chunk.", _single_symbol_flip)
invalid("huffman-chunk-too-long", "R28", "CorruptStream",
        "The last chunk (17 bits of codes) given a fourth, zero byte.", hc_stream("codes", _resize_chunk(2, 1)))
invalid("huffman-chunk-trailing-bits", "R28", "NonZeroPadding",
        "Chunk 0 (21 bits of codes in 3 bytes) with bit 23 set.", hc_stream("codes", _set_bits(0, -1, 0x80)))
invalid("huffman-last-chunk-trailing-bits", "R28", "NonZeroPadding",
        "The last chunk (17 bits of codes in 3 bytes) with bit 23 set.", hc_stream("codes", _set_bits(2, -1, 0x80)))

# R29 Start_Position
invalid("huffman-gap-start-position-wrong", "R29", "CorruptStream",
        "Gap chunk 1's Start_Position one more than the 11 units its predecessors cover.",
        hc_stream("gaps", set_chunk(1, 3, 12)))
invalid("huffman-gap-first-start-position-nonzero", "R29", "CorruptStream", "Gap chunk 0 with Start_Position 1.",
        hc_stream("gaps", set_chunk(0, 3, 1)))
invalid("huffman-gap-raw-chunk-start-position-wrong", "R29", "CorruptStream",
        "The raw gap chunk with Start_Position 25 instead of 26.", hc_stream("gaps", set_chunk(2, 3, 25)))
invalid("huffman-codes-start-position-nonzero", "R29", "CorruptStream",
        "Chunk 1 of a code stream (not a gap stream) with Start_Position 8.", hc_stream("codes", set_chunk(1, 3, 8)))

# R30 codes and selectors in range


def _packed_symbol(kind: str, name: str, role: str, alphabet: int, index: int, value: int):
    """Patch symbol ``index`` of a PACKED stream to ``value`` (checksums recomputed)."""
    def change(p: Patch) -> None:
        _, start, length = p.segment(kind, name, role)
        width = C.symbol_width(alphabet)
        bits = int.from_bytes(p.data[start:start + length], "little")
        bits &= ~(((1 << width) - 1) << (index * width))
        bits |= value << (index * width)
        p.data[start:start + length] = bits.to_bytes(length, "little")
    return change


def base_selectors() -> bytes:
    """t selects from a bank of L = 3 kernels with PACKED 2-bit selectors; q is a bank whose codes are PACKED."""
    q = enc("F32", (3, 2), Dense(), CodebookValues(np.array([0, 1, 2], "<f4"), u16([0, 1, 2, 0, 1, 2]), PACKED))
    return write_file({"t": enc("F32", (4, 2), Dense(), BankValues("k", u16([0, 1, 2, 1]), PACKED)),
                       "c": enc("F32", (5,), Sparse(2, u16([0, 1, 0]), PACKED),
                                CodebookValues(np.array([0, 1, 2], "<f4"), u16([1, 2, 1]), PACKED))},
                      banks={"k": np.array([[1, 2], [3, 4], [5, 6]], "<f4"), "q": q})


invalid("code-out-of-range-packed", "R30", "CodeOutOfRange",
        "A PACKED code 5 for Codebook_Size 5 (3-bit codes).",
        patched(base_codebook, _packed_symbol("tensor", "w", "codes", 5, 0, 5)))
invalid("code-out-of-range-packed-max", "R30", "CodeOutOfRange",
        "A PACKED code 7, the largest 3-bit value, for Codebook_Size 5 (the last symbol).",
        patched(base_codebook, _packed_symbol("tensor", "w", "codes", 5, 10, 7)))
invalid("code-out-of-range-sparse", "R30", "CodeOutOfRange", "A SPARSE CODEBOOK tensor with a code 3 for C = 3.",
        patched(base_selectors, _packed_symbol("tensor", "c", "codes", 3, 2, 3)))
invalid("code-out-of-range-bank-codebook", "R30", "CodeOutOfRange",
        "A CODEBOOK-valued bank (no tensor selects from it) with a code 3 for C = 3.",
        patched(base_selectors, _packed_symbol("bank", "q", "codes", 3, 4, 3)))
invalid("code-out-of-range-raw-chunk", "R30", "CodeOutOfRange",
        "A raw chunk of a HUFFMAN code stream holding 6 for Codebook_Size 6.",
        hc_symbols("codes", HC_CODES[:8] + [6] + HC_CODES[9:]))
invalid("selector-out-of-range-packed", "R30", "SelectorOutOfRange",
        "A PACKED selector 3 for a bank of L = 3 kernels.",
        patched(base_selectors, _packed_symbol("tensor", "t", "selectors", 3, 3, 3)))
invalid("selector-out-of-range-raw-chunk", "R30", "SelectorOutOfRange",
        "A raw chunk of a HUFFMAN selector stream holding 3 for L = 3.", hc_symbols("sel", [1, 0, 1, 3, 0]))

# R31 sparse positions
invalid("gap-overrun-by-one", "R31", "GapOverrun",
        "PACKED gaps 0 4 6 in a tensor of 12 units: the last entry lands on unit 12.",
        edited(base_codebook, _set_attr(lambda m: m.tensor("s").seg("gaps"), payload=pack_symbols([0, 4, 6], 8))))
invalid("gap-overrun-huffman", "R31", "GapOverrun",
        "The hand-made gap stream with its last gap 6 instead of 5: the last entry lands on unit 40 of 40 "
        "(Start_Positions consistent).", hc_symbols("gaps", HC_GAPS[:-1] + [6]))
invalid("gap-overrun-fillers", "R31", "GapOverrun",
        "Two entries of the widest gap (7) in a tensor of 10 units: the second lands on unit 15.",
        edited(base_codebook, lambda m: (
            _set_attr(lambda m: m.tensor("s"), shape=[10], entry_count=2)(m),
            _set_attr(lambda m: m.tensor("s").seg("gaps"), payload=pack_symbols([7, 7], 8))(m),
            _set_attr(lambda m: m.tensor("s").seg("values"), payload=F32_ONE * 2)(m))))
def _gap_far() -> bytes:
    data = write_file({"u8": enc("U8", (5,), Sparse(16, u16([3]), PACKED), RawValues(np.array([9], np.uint8)))})
    m = parse(data)
    m.tensor("u8").seg("gaps").payload = pack_symbols([0xFFFF], 1 << 16)
    return serialize(m)[0]


invalid("gap-overrun-far", "R31", "GapOverrun",
        "One entry of gap 65535 (Gap_Bits 16) in a U8 tensor of 5 units.", _gap_far)


# R32 BOOL bytes
invalid("bool-raw-byte-2", "R32", "InvalidValue", "A BOOL RAW value byte 0x02.",
        patched(base_bool, put_byte(seg_byte("tensor", "raw", "values", 1), lambda b: 2)))
invalid("bool-raw-byte-ff", "R32", "InvalidValue", "A BOOL RAW value byte 0xFF.",
        patched(base_bool, put_byte(seg_byte("tensor", "raw", "values", 2), lambda b: 0xFF)))
invalid("bool-codebook-byte-2", "R32", "InvalidValue", "A BOOL codebook entry 0x02 that codes select.",
        patched(base_bool, put_byte(seg_byte("tensor", "book", "codebook", 1), lambda b: 2)))
invalid("bool-codebook-unused-entry", "R32", "InvalidValue",
        "A BOOL codebook entry 0x02 that no code selects: every stored byte must be 0 or 1.",
        patched(base_bool, put_byte(seg_byte("tensor", "book", "codebook", 2), lambda b: 2)))
invalid("bool-sparse-raw-byte-2", "R32", "InvalidValue", "A BOOL SPARSE RAW value byte 0x02.",
        patched(base_bool, put_byte(seg_byte("tensor", "sparse", "values", 0), lambda b: 2)))
invalid("bool-bank-byte-2", "R32", "InvalidValue", "A byte 0x02 in a BOOL bank a tensor selects from.",
        patched(base_bool, put_byte(seg_byte("bank", "bits", "values", 3), lambda b: 2)))
invalid("bool-codebook-zero-size-tensor", "R32", "InvalidValue",
        "A BOOL codebook entry 0x02 in a zero-size tensor: the codebook is stored, so it is checked.",
        patched(base_zero_size, put_byte(seg_byte("tensor", "bool", "codebook", 1), lambda b: 2)))

# R33 decode budget (the default: max(256 MiB, 1024 x file size))
invalid("decode-budget-huge-sparse", "R33", "DecodeLimitExceeded",
        "A SPARSE F32 tensor of 2^40 elements (4 TiB decoded) with no entries, in a file of a few hundred "
        "bytes: refused before allocating.", lambda: base_huge_sparse((1 << 40,), "F32"))
invalid("decode-budget-2-48-elements", "R33", "DecodeLimitExceeded",
        "A SPARSE U8 tensor of shape (2^24, 2^24): N = 2^48 exactly, within the element limit, "
        "far over the decode budget.", lambda: base_huge_sparse((1 << 24, 1 << 24)))
invalid("decode-budget-cumulative", "R33", "DecodeLimitExceeded",
        "Two SPARSE U8 tensors without entries, of 160 MiB and 100 MiB: each within the 256 MiB default "
        "budget, together over it (the budget is per file).",
        lambda: write_file({name: enc("U8", (mib << 20,), Sparse(1, EMPTY, PACKED), RawValues(np.zeros(0, np.uint8)))
                            for name, mib in (("first", 160), ("second", 100))}))

def _truncated_huffman(cut_payload: Callable[[bytes], bytes]) -> Callable[[], bytes]:
    """"huffman-handcrafted" with its code stream segment cut short (the record itself unchanged)."""
    def make() -> bytes:
        m = hc_model()
        seg = m.tensor("codes").seg("codes")
        seg.payload = cut_payload(seg.payload)
        return serialize(m)[0]
    return make


def _replace_stream(h: Huff, symbols) -> None:
    """Re-make the hand-made code stream from other symbols (same table, chunks and modes)."""
    new = craft_huffman(symbols, 6, HC_CODE_LENGTHS, [0, 8, 16], [0, 1, 0], gap_stream=False)
    h.chunks, h.bits = new.chunks, new.bits


# R10 (continued): every dimension is bounded, even when another is zero
invalid("zero-dim-with-dim-over-2-48", "R10", "LimitExceeded",
        "A DENSE RAW U8 tensor of shape (0, 2^48 + 1): N = 0, but the product of the non-zero "
        "dimensions is over 2^48.",
        edited(base_raw, lambda m: m.tensors.append(Rec(b"z", C.DType.U8, [0, (1 << 48) + 1], 0, 0, [Seg("values", 0, b"")]))))
invalid("zero-dim-with-dim-u64-max", "R10", "LimitExceeded",
        "A DENSE RAW F32 tensor of shape (2^64 - 1, 0).",
        edited(base_raw, lambda m: m.tensors.append(Rec(b"z", C.DType.F32, [M64, 0], 0, 0, [Seg("values", 0, b"")]))))

# R25 (continued): empty streams and reads past the end of a Huffman segment's tables
invalid("huffman-empty-stream-trailing-byte", "R25", "CorruptStream",
        "The HUFFMAN gap stream of a SPARSE tensor with no entries: Chunk_Count 0, then one byte of bit "
        "streams (they must be empty).",
        edited(base_sparse_empty, lambda m: setattr(m.tensor("h").seg("gaps"), "payload", struct.pack("<II", 0, 0) + b"\x00")))
invalid("huffman-segment-empty", "R25", "TruncatedError",
        "A HUFFMAN gap stream segment of 0 bytes: Table_Size cannot be read.",
        edited(base_sparse_empty, lambda m: setattr(m.tensor("h").seg("gaps"), "payload", b"")))
invalid("huffman-code-lengths-truncated", "R25", "TruncatedError",
        "A HUFFMAN code stream segment cut after 2 of its 3 Code_Lengths bytes.",
        _truncated_huffman(lambda payload: payload[:4 + 2]))
invalid("huffman-chunk-count-truncated", "R25", "TruncatedError",
        "A HUFFMAN code stream segment that ends in the middle of Chunk_Count.",
        _truncated_huffman(lambda payload: payload[:4 + 3 + 2]))

# R33 (continued): banks share the budget
invalid("decode-budget-unused-bank", "R33", "DecodeLimitExceeded",
        "A bank of 65536 kernels of 2^24 U8 elements (1 TiB decoded), SPARSE without entries, that no "
        "tensor selects: reading the whole file decodes every bank, within the budget.",
        lambda: write_file({"t": np.array([1], np.uint8)}, banks={"huge": enc(
            "U8", (65536, 1 << 24), Sparse(1, EMPTY, PACKED), RawValues(np.zeros(0, np.uint8)))}))


# --- order of checks (Appendix B, "Order of checks"): files that break two rules ------

def break_checksum(kind: str, name: str, role: str) -> Callable[[Patch], None]:
    return put_byte(lambda p: p.segment(kind, name, role)[0] + 17, lambda b: b ^ 0x01)


def both(*changes: Callable) -> Callable:
    def change(x) -> None:
        for c in changes:
            c(x)
    return change


def cut_after(make: Callable[[], bytes], count: int) -> Callable[[], bytes]:
    return lambda: make()[:len(make()) - count]


def append_after(make: Callable[[], bytes], extra: bytes) -> Callable[[], bytes]:
    return lambda: make() + extra


def order(name: str, rule: str, error: str, also: str, description: str, make: Callable[[], bytes]) -> None:
    invalid(f"order-{name}", rule, error, f"{description} Also breaks {also}; {rule} comes first.", make)


order("version-before-header-checksum", "R3", "UnsupportedVersion", "R7",
      "Version_Major 2 and a Header_Checksum that does not match.", preamble("major", 2, fix_checksum=False))
order("required-feature-before-header-size", "R4", "UnsupportedFeature", "R5",
      "Required_Features bit 0 and Header_Size over the limit.",
      patched(base_raw, lambda p: (p.put(12, "I", 1), p.put(20, "Q", C.MAX_HEADER_SIZE + 1)), header_checksum=False))
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
      edited(base_raw, both(_rename("tensor", 1, b"a"), _set_attr(lambda m: m.tensors[1], dtype=15))))
order("dtype-before-rank", "R13", "UnknownDType", "R10",
      "DType 15 and Rank 9 in the same record (DType comes first in the record).",
      edited(base_raw, _set_attr(lambda m: m.tensor("a"), dtype=15, shape=[1] * 7 + [2, 3])))
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
      append_after(edited(base_raw, _set_attr(lambda m: m, extension=b"x")), b"\x00"))
order("placement-before-file-end", "R18", "InvalidLayout", "R19",
      "A hole before the second segment, and the file one byte short.",
      cut_after(edited(base_raw, _set_attr(lambda m: m.tensor("b").seg("values"), offset=128)), 1))
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
                              _packed_symbol("tensor", "sbook", "gaps", 4, 0, 3),
                              _packed_symbol("tensor", "sbook", "gaps", 4, 1, 3))))
order("gaps-before-values", "R31", "GapOverrun", "R32",
      "A SPARSE BOOL RAW tensor whose gaps overrun the tensor and whose values hold 0x02.",
      patched(base_bool, both(put_byte(seg_byte("tensor", "sparse", "values", 0), lambda b: 2),
                              _packed_symbol("tensor", "sparse", "gaps", 4, 0, 3),
                              _packed_symbol("tensor", "sparse", "gaps", 4, 1, 3))))
order("gap-overrun-before-code-range", "R31", "GapOverrun", "R30",
      "A SPARSE CODEBOOK tensor whose gaps overrun the tensor and whose codes hold one out of range.",
      patched(base_selectors, both(_packed_symbol("tensor", "c", "gaps", 4, 2, 3),
                                   _packed_symbol("tensor", "c", "codes", 3, 0, 3))))
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
order("chunk-entries-before-chunks", "R26", "CorruptStream", "R28",
      "Chunk 0 has non-zero bits after its last code, and the last chunk's First_Symbol equals the count.",
      hc_stream("codes", both(_set_bits(0, -1, 0x80), set_chunk(2, 2, 24))))
order("chunks-decoded-in-order", "R28", "NonZeroPadding", "R27",
      "Chunk 0 (Huffman) has non-zero bits after its last code and chunk 1 (raw) is one byte too long: "
      "chunks are decoded in order.",
      hc_stream("codes", both(_set_bits(0, -1, 0x80), _resize_chunk(1, 1))))
order("huffman-chunk-before-later-raw-chunk", "R28", "CorruptStream", "R27 (padding)",
      "Gap chunk 0 (Huffman) holds a bit pattern no code starts with, and raw chunk 2 has non-zero "
      "trailing bits: chunk 0 is decoded first.",
      hc_stream("gaps", both(_invalid_code_chunk, _set_bits(2, -1, 0x80))))
order("chunks-before-start-position", "R28", "NonZeroPadding", "R29",
      "A gap chunk with a wrong Start_Position, and chunk 0 with non-zero bits after its last code.",
      hc_stream("gaps", both(set_chunk(1, 3, 12), _set_bits(0, -1, 0x80))))
order("chunks-before-symbol-range", "R28", "NonZeroPadding", "R30",
      "A code out of range in raw chunk 1, and the last chunk with non-zero bits after its last code.",
      hc_stream("codes", both(lambda h: _replace_stream(h, HC_CODES[:8] + [6] + HC_CODES[9:]), _set_bits(2, -1, 0x80))))
order("start-position-before-symbol-range", "R29", "CorruptStream", "R30",
      "A code out of range in raw chunk 1, and chunk 1's Start_Position 8 in a code stream.",
      hc_stream("codes", both(lambda h: _replace_stream(h, HC_CODES[:8] + [6] + HC_CODES[9:]), set_chunk(1, 3, 8))))


# === output ===========================================================================

RULES = [f"R{i}" for i in range(1, 34)]


def generate() -> dict[str, bytes]:
    """Every file this script writes, by path relative to spec/vectors/, built in memory."""
    files: dict[str, bytes] = {}
    entries = []
    names = set()
    for vector in VECTORS:
        assert vector.name not in names, f"two vectors named {vector.name}"
        names.add(vector.name)
        path = f"{vector.kind}/{vector.name}.dcf"
        entry = {"name": vector.name, "kind": vector.kind, "file": path}
        if vector.kind == "valid":
            data, expected, metadata = vector.make()
            files[path] = data
            entry["expected"] = f"valid/{vector.name}.expected.safetensors"
            files[entry["expected"]] = safetensors_bytes(expected, metadata)
            entry["tensors"] = list(expected)
        else:
            assert vector.rule in RULES, vector.rule
            from dcformat import errors
            assert isinstance(getattr(errors, vector.error, None), type), vector.error
            files[path] = data = vector.make()
            entry.update(error=vector.error, rule=vector.rule)
        entry["description"] = vector.description
        entry["sha256"] = hashlib.sha256(data).hexdigest()
        entries.append(entry)
    covered = {e["rule"] for e in entries if e["kind"] == "invalid"}
    assert covered == set(RULES), f"rules without a vector: {sorted(set(RULES) - covered)}"
    manifest = {
        "spec": "spec/FORMAT.md, version 1.0, Appendix C",
        "generator": "spec/vectors/make_vectors.py",
        "notes": ("valid/NAME.dcf decodes to the tensors of valid/NAME.expected.safetensors, in the "
                  "order of 'tensors', with the safetensors __metadata__ as its metadata; "
                  "invalid/NAME.dcf must be refused with 'error' (a class of dcformat/errors.py) for "
                  "rule 'rule' of Appendix B, with the reader's default decode budget."),
        "vectors": entries,
    }
    files["MANIFEST.json"] = (json.dumps(manifest, indent=1, ensure_ascii=True) + "\n").encode("ascii")
    return files


def _on_disk(root: Path) -> set[str]:
    found = set()
    for pattern in ("valid/*.dcf", "valid/*.safetensors", "invalid/*.dcf", "MANIFEST.json"):
        found |= {p.relative_to(root).as_posix() for p in root.glob(pattern)}
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="regenerate in memory and compare with the files; write nothing")
    parser.add_argument("--force", action="store_true",
                        help="replace files whose bytes differ and delete vectors no longer generated")
    parser.add_argument("--out", type=Path, default=HERE, help="the vectors folder (default: this script's)")
    args = parser.parse_args(argv)
    root: Path = args.out
    files = generate()
    stale = sorted(_on_disk(root) - files.keys())
    missing = sorted(k for k in files if not (root / k).exists())
    differ = sorted(k for k in files if (root / k).exists() and (root / k).read_bytes() != files[k])
    if args.check:
        for label, paths in (("missing", missing), ("differs", differ), ("not generated", stale)):
            for path in paths:
                print(f"{label}: {path}", file=sys.stderr)
        ok = not (missing or differ or stale)
        print(f"{len(files)} files {'match' if ok else 'do NOT match'} the generator", file=sys.stderr)
        return 0 if ok else 1
    for sub in ("valid", "invalid"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    write = missing + (differ if args.force else [])
    for path in write:
        (root / path).write_bytes(files[path])
    if args.force:
        for path in stale:
            (root / path).unlink()
    print(f"wrote {len(write)} of {len(files)} files", file=sys.stderr)
    if (differ or stale) and not args.force:
        for path in differ:
            print(f"kept (differs from the generator; --force replaces it): {path}", file=sys.stderr)
        for path in stale:
            print(f"kept (no longer generated; --force deletes it): {path}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
