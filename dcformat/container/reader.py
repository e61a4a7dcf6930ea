"""Parse and check the container framing: preamble, header, records, data layout.

Every byte comes from one :class:`~dcformat.container.source.ByteSource` (a buffer, or a
file read with ``pread``), whose ``read`` refuses a range past its end with
``TruncatedError`` naming the field; the header's fields are then read through
:class:`ByteReader`, which does the same within the header. Sizes are Python ints, compared
with the limits in :mod:`constants` before anything is sliced or allocated. Validation
runs straight through and raises at the first rule broken, in the order of
spec/FORMAT.md, Appendix B.

This module knows the framing only; turning a record's segments into an array is
:mod:`dcformat.encodings.decode`'s job.
"""

from __future__ import annotations

import functools
import gc
import struct

import numpy as np

from ..errors import (
    BadMagic,
    ChecksumMismatch,
    DuplicateName,
    InvalidHeader,
    InvalidLayout,
    LimitExceeded,
    NonZeroPadding,
    TruncatedError,
    UnknownDType,
    UnknownEncoding,
    UnsupportedFeature,
    UnsupportedVersion,
)
from ..format import constants as C
from ..kernels import config as kernel_config
from .checksum import crc32
from .source import as_source
from ..format.records import (STREAM_CODECS, Header, Record, RecordTable, SegmentRef, allowed_codecs,
                              nonzero_product, segment_roles)


class ByteReader:
    """A cursor over ``buf[pos:end]`` whose every read is bounds-checked."""

    def __init__(self, buf, pos: int = 0, end: int | None = None):
        self.buf = buf if isinstance(buf, (bytes, memoryview)) else memoryview(buf).cast("B")
        self.pos = pos
        self.end = len(self.buf) if end is None else end

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def take(self, n: int, field: str) -> memoryview:
        if n > self.remaining:
            raise TruncatedError(field, n, self.remaining)
        view = self.buf[self.pos:self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: str, field: str) -> tuple:
        layout = _struct(fmt)
        if layout.size > self.end - self.pos:
            raise TruncatedError(field, layout.size, self.remaining)
        values = layout.unpack_from(self.buf, self.pos)
        self.pos += layout.size
        return values

    def u8(self, field: str) -> int:
        if self.pos >= self.end:
            raise TruncatedError(field, 1, self.remaining)
        self.pos += 1
        return self.buf[self.pos - 1]

    def u32(self, field: str) -> int:
        return self.unpack("<I", field)[0]

    def u64(self, field: str) -> int:
        return self.unpack("<Q", field)[0]

    def string(self, field: str, limit: int) -> str:
        length = self.u32(field + " length")
        if length > limit:
            raise LimitExceeded(field + " length", length, limit)
        raw = self.take(length, field)
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidHeader(field, "not valid UTF-8") from None


@functools.lru_cache(maxsize=None)
def _struct(fmt: str) -> struct.Struct:
    return struct.Struct(fmt)


# --- preamble and header --------------------------------------------------------------


def parse_preamble(buf) -> tuple[tuple[int, int], int, int, int, int]:
    """Check R1-R5 and return (version, required, optional, header_size, checksum)."""
    if len(buf) < len(C.MAGIC) or bytes(buf[:len(C.MAGIC)]) != C.MAGIC:
        raise BadMagic(bytes(buf[:len(C.MAGIC)]))
    if len(buf) < C.PREAMBLE_SIZE:
        raise TruncatedError("preamble", C.PREAMBLE_SIZE, len(buf))
    _, major, minor, required, optional, header_size, checksum = struct.unpack(
        C.PREAMBLE_FORMAT, buf[:C.PREAMBLE_SIZE])
    if major != C.VERSION_MAJOR:
        raise UnsupportedVersion((major, minor), C.VERSION_MAJOR)
    unknown = required & ~C.KNOWN_REQUIRED_FEATURES
    if unknown:
        raise UnsupportedFeature(unknown)
    if header_size > C.MAX_HEADER_SIZE:
        raise LimitExceeded("Header_Size", header_size, C.MAX_HEADER_SIZE)
    return (major, minor), required, optional, header_size, checksum


def parse_header(data, *, verify: bool = True) -> Header:
    """Parse and check the preamble and the header (R1-R16) of ``data`` (a buffer or a
    ByteSource); the data section is not read."""
    source = as_source(data)
    preamble = source.read(0, min(source.size, C.PREAMBLE_SIZE), "preamble")
    version, required, optional, header_size, stored = parse_preamble(preamble)
    if source.size < C.PREAMBLE_SIZE + header_size:
        raise TruncatedError("header", header_size, source.size - C.PREAMBLE_SIZE)
    body = source.read(C.PREAMBLE_SIZE, header_size, "header")
    if verify:
        computed = crc32(preamble[:C.PREAMBLE_CHECKED_SIZE], body)
        if computed != stored:
            raise ChecksumMismatch("header", stored, computed)

    r = ByteReader(bytes(body))  # read a field at a time: bytes index and slice fastest
    alignment = r.u32("Alignment")
    if not (C.MIN_ALIGNMENT <= alignment <= C.MAX_ALIGNMENT) or alignment & (alignment - 1):
        raise InvalidHeader("Alignment", f"{alignment} is not a power of two in [8, 4096]")
    metadata = _parse_metadata(r)
    banks = _parse_records(r, "bank", C.MAX_BANKS, banks=(), features=required)
    tensors = _parse_tensors(r, banks, required)
    if r.remaining and version[1] == C.BASE_VERSION_MINOR:  # Extension bytes: minor 1 and later
        raise InvalidHeader("header", f"{r.remaining} bytes after the last record")
    return Header(version, required, optional, header_size, alignment, metadata, banks, tensors)


def _parse_metadata(r: ByteReader) -> dict[str, str]:
    count = r.u32("Metadata_Count")
    if count > C.MAX_METADATA_ENTRIES:
        raise LimitExceeded("Metadata_Count", count, C.MAX_METADATA_ENTRIES)
    metadata: dict[str, str] = {}
    for _ in range(count):
        key = r.string("metadata key", C.MAX_NAME_BYTES)
        if key in metadata:
            raise DuplicateName("metadata", key)
        metadata[key] = r.string("metadata value", C.MAX_METADATA_VALUE_BYTES)
    return metadata


#: Headers of at least this many tensor records are read by a kernel into a RecordTable's
#: columns; fewer are read here (loading the kernel costs more than reading them, some
#: 10 us a record).
SCAN_MIN_RECORDS = 256
#: The same while Numba is not imported yet: importing it and loading its first kernel
#: take some 0.5 s, what reading 50,000 records here does (a file of raw records and
#: a program that decodes none needs no Numba at all).
SCAN_MIN_RECORDS_BEFORE_NUMBA = 65536


def _parse_tensors(r: ByteReader, banks: tuple[Record, ...], features: int = 0) -> RecordTable:
    """The tensor records: scanned into columns by :func:`dcformat.kernels.records.scan_tensor_records`
    when there are many, else (and whenever the scan stops at a record it cannot vouch
    for, or a name is not valid UTF-8 or repeats) read by :func:`_parse_records`, which
    names the rule broken. Both give the same table."""
    start = r.pos
    if r.remaining >= 4:
        (count,) = _U32.unpack_from(r.buf, r.pos)
        least = SCAN_MIN_RECORDS if kernel_config.compiled() else SCAN_MIN_RECORDS_BEFORE_NUMBA
        if least <= count <= C.MAX_TENSORS:
            table = _scan_tensors(r, count, banks, features)
            if table is not None:
                return table
            r.pos = start
    return RecordTable.from_records(_parse_records(r, "tensor", C.MAX_TENSORS, banks=banks, features=features))


def _scan_tensors(r: ByteReader, count: int, banks: tuple[Record, ...], features: int = 0) -> RecordTable | None:
    from ..kernels.records import scan_tensor_records  # loaded only for headers of many records

    buf = np.frombuffer(r.buf, np.uint8, r.end)
    # every Segment_Ref takes 21 bytes of the header: room for all it can hold
    columns = RecordTable.empty_columns(count, r.remaining // C.SEGMENT_REF_SIZE + 1)
    name_start, name_length = np.empty(count, np.int64), np.empty(count, np.int64)
    dims = np.empty(min(count * C.MAX_RANK, r.remaining // 8 + 1), np.int64)
    kernels = np.zeros((len(banks), C.MAX_RANK), np.int64)
    for b, bank in enumerate(banks):
        kernels[b, :len(bank.shape) - 1] = bank.shape[1:]
    scanned, end, segments = scan_tensor_records(
        buf, np.int64(r.pos + 4), count, _SCAN_LIMITS, _SCAN_DTYPE_SIZES, _SCAN_CODEC_ROLES, np.int64(features),
        _SCAN_GROUPED_DTYPES, _SCAN_PLANE_COUNTS,
        np.array([b.dtype for b in banks], np.int64), np.array([len(b.shape) - 1 for b in banks], np.int64),
        kernels, np.array([nonzero_product(b.shape[1:]) for b in banks], np.int64),
        name_start, name_length, *(columns[c] for c in ("dtype", "rank", "dim_start")), dims,
        *(columns[c] for c in ("layout", "value_kind", "gap_bits", "entry_count", "codebook_size", "bank_index",
                                "unit_size", "group_size", "scale_count", "offset_count", "block_size",
                                "segment_start", "segment_count")),
        *(columns[c] for c in RecordTable.SEGMENT_COLUMNS))
    if scanned < count:
        return None
    body = r.buf
    try:
        names = [str(body[a:a + n], "utf-8") for a, n in zip(name_start.tolist(), name_length.tolist())]
    except UnicodeDecodeError:
        return None
    if len(set(names)) < count:  # a name repeats
        return None
    used = int(columns["dim_start"][-1]) + int(columns["rank"][-1]) if count else 0
    for column in RecordTable.SEGMENT_COLUMNS:
        columns[column] = columns[column][:segments].copy()
    r.pos = int(end)
    return RecordTable(names, columns, dims[:used].copy())


_SCAN_LIMITS = np.array([C.MAX_NAME_BYTES, C.MAX_RANK, C.MAX_ELEMENTS, C.MAX_CODEBOOK_SIZE, C.MIN_GAP_BITS,
                         C.MAX_GAP_BITS, C.MAX_GROUP_TABLE_SIZE], np.int64)
_SCAN_GROUPED_DTYPES = np.zeros(256, np.bool_)
_SCAN_GROUPED_DTYPES[[int(d) for d in C.GROUPED_DTYPES]] = True
_SCAN_PLANE_COUNTS = np.zeros(256, np.int64)
for _dtype in C.PLANES_DTYPES:
    _SCAN_PLANE_COUNTS[_dtype] = len(C.plane_widths(_dtype))
_SCAN_DTYPE_SIZES = np.zeros(256, np.int64)
for _dtype, _size in C.DTYPE_SIZE.items():
    _SCAN_DTYPE_SIZES[_dtype] = _size
#: Bit 0: may code a bytes segment (codebook, values); bit 1: a stream (gaps, codes,
#: selectors); bit 2: an AFFINE codebook (v1.3).
_SCAN_CODEC_ROLES = np.array([(1 if c in allowed_codecs("values") else 0) | (2 if c in allowed_codecs("codes") else 0)
                              | (4 if c == C.SegmentCodec.AFFINE else 0)
                              for c in range(max(C.SegmentCodec) + 1)], np.int64)


def _parse_records(r: ByteReader, kind: str, limit: int, banks: tuple[Record, ...],
                   features: int = 0) -> tuple[Record, ...]:
    """``kind`` records ("bank" or "tensor"); ``features`` is the file's Required_Features."""
    count = r.u32(kind.capitalize() + "_Count")
    if count > limit:
        raise LimitExceeded(kind.capitalize() + "_Count", count, limit)
    records, names, shapes = [], set(), {}
    # A record's objects hold no reference cycles: the cyclic collector, which would
    # walk every record parsed so far again and again, has nothing to find here.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for _ in range(count):
            records.append(_parse_record(r, kind, banks, names, shapes, features))
    finally:
        if collecting:
            gc.enable()
    return tuple(records)


def _parse_record(r: ByteReader, kind: str, banks: tuple[Record, ...], names: set[str], shapes: dict,
                  features: int = 0) -> Record:
    """One record, its fields read in file order and each rule checked as soon as the
    fields it names are read (FORMAT.md, Appendix B). The reads are written out here,
    not made through ByteReader's methods: a header may hold a million records."""
    buf, pos, end = r.buf, r.pos, r.end

    if end - pos < 4:
        raise TruncatedError(f"{kind} name length", 4, end - pos)
    (length,) = _U32.unpack_from(buf, pos)
    pos += 4
    if length > C.MAX_NAME_BYTES:
        raise LimitExceeded(f"{kind} name length", length, C.MAX_NAME_BYTES)
    if end - pos < length:
        raise TruncatedError(f"{kind} name", length, end - pos)
    try:
        name = str(buf[pos:pos + length], "utf-8")
    except UnicodeDecodeError:
        raise InvalidHeader(f"{kind} name", "not valid UTF-8") from None
    pos += length
    if name in names:
        raise DuplicateName(kind, name)
    names.add(name)

    if end - pos < 1:
        raise TruncatedError("DType", 1, end - pos)
    code = buf[pos]
    pos += 1
    dtype = _DTYPES.get(code)
    if dtype is None:
        raise UnknownDType(code, name)
    if end - pos < 1:
        raise TruncatedError("Rank", 1, end - pos)
    rank = buf[pos]
    pos += 1
    if rank > C.MAX_RANK:
        raise LimitExceeded(f"Rank of {name!r}", rank, C.MAX_RANK)
    if end - pos < 8 * rank:
        raise TruncatedError("Shape", 8 * rank, end - pos)
    shape = (_SHAPES[rank] if rank < len(_SHAPES) else _struct(f"<{rank}Q")).unpack_from(buf, pos)
    pos += 8 * rank
    shape = shapes.setdefault(shape, shape)  # one tuple per distinct shape
    # The product of the non-zero dimensions bounds N, and every dimension, by 2**48.
    nonzero = nonzero_product(shape)
    if nonzero > C.MAX_ELEMENTS:
        raise LimitExceeded(f"Shape of {name!r}", nonzero, C.MAX_ELEMENTS)
    size = 0 if 0 in shape else nonzero
    if kind == "bank":
        _check_bank_shape(name, shape)
    if end - pos < 1:
        raise TruncatedError("Layout", 1, end - pos)
    layout = _LAYOUTS.get(buf[pos])
    if layout is None:
        raise UnknownEncoding("Layout", buf[pos], name)
    pos += 1
    if end - pos < 1:
        raise TruncatedError("Value_Kind", 1, end - pos)
    value_kind = _KINDS.get(buf[pos])
    if value_kind is None:
        raise UnknownEncoding("Value_Kind", buf[pos], name)
    pos += 1
    if value_kind in _FEATURE_KINDS:  # R34, R40 name DType, Value_Kind and the file's features: checked now
        _check_feature_kind(value_kind, kind, name, dtype, features)

    fields: dict = {}
    if layout is not _DENSE or value_kind is not _RAW:
        r.pos = pos
        _parse_value_fields(r, kind, name, dtype, shape, layout, value_kind, banks, fields)
        pos = r.pos
    unit_size = fields.get("unit_size", 1)
    units = size // unit_size
    if layout is _SPARSE and fields["entry_count"] > units:
        raise InvalidHeader("Entry_Count", f"{fields['entry_count']} entries for {units} units in {name!r}")
    stored = units if layout is _DENSE else fields["entry_count"]

    segments, itemsize = {}, C.DTYPE_SIZE[dtype]
    roles = _ROLES[layout, value_kind] if value_kind is not _PLANES else _plane_roles(
        name, dtype, layout, stored, fields["block_size"], end - pos)
    for role, allowed in roles:
        if end - pos < _REF.size:  # the fields that are there are checked first, in order
            if end - pos >= 1 and _check_codec(buf[pos], allowed, role, name) is _AFFINE:
                _check_affine(name, dtype, value_kind, features)
            raise TruncatedError(f"{role} Segment_Ref of {name!r}", _REF.size, end - pos)
        code, offset, length, checksum = _REF.unpack_from(buf, pos)
        pos += _REF.size
        codec = _check_codec(code, allowed, role, name)
        if codec is _AFFINE:
            _check_affine(name, dtype, value_kind, features)
            expected = C.AFFINE_CODEBOOK_BYTES
        else:
            expected = _expected_length(role, stored, itemsize, value_kind, fields)
        if expected is not None and length != expected:
            raise InvalidHeader("Length", f"{role} segment of {name!r} is {length} bytes, expected {expected}")
        segments[role] = SegmentRef(codec, offset, length, checksum)
    r.pos = pos
    return Record(name, dtype, shape, layout, value_kind, segments=segments, **fields)


def _check_codec(code: int, allowed, role: str, name: str):
    """A Segment_Ref's Codec: known (R14) and allowed for its segment (R15)."""
    codec = _CODECS.get(code)
    if codec is None:
        raise UnknownEncoding("Codec", code, name)
    if codec not in allowed:
        raise InvalidHeader("Codec", f"{role} segment of {name!r} cannot use {codec.name}")
    return codec


def _check_affine(name: str, dtype, value_kind, features: int) -> None:
    """What an AFFINE codebook requires (R44): the file's feature bit, and for CODEBOOK
    values a dtype its float32 entries round to."""
    if not features & C.FEATURE_AFFINE:
        raise InvalidHeader("Codec", f"AFFINE codebook of {name!r} without Required_Features bit 2")
    if value_kind is not _GROUPED and dtype not in C.AFFINE_DTYPES:
        raise InvalidHeader("Codec", f"AFFINE codebook of {name!r} needs F32, F16 or BF16, not {dtype.name}")


def _expected_length(role: str, stored: int, itemsize: int, value_kind, fields: dict) -> int | None:
    """The Length a segment must have, when the record's fields fix it (None: a stream)."""
    if role == "values":
        return stored * itemsize
    if role == "codebook":  # a GROUPED record's tables are F32, whatever its dtype
        return fields["codebook_size"] * (4 if value_kind is _GROUPED else itemsize)
    if role == "scales":
        return 4 * fields["scale_count"]
    if role == "offsets":
        return 4 * fields["offset_count"]
    if role == "offset_codes" and not fields["offset_count"]:
        return 0  # no offsets: no offset codes
    return None


def _parse_value_fields(r: ByteReader, kind: str, name: str, dtype, shape, layout, value_kind,
                        banks: tuple[Record, ...], fields: dict) -> None:
    """A SPARSE record's Gap_Bits and Entry_Count, then a CODEBOOK, BANK or GROUPED
    record's fields."""
    if layout == C.Layout.SPARSE:
        fields["gap_bits"] = r.u8("Gap_Bits")
        if not C.MIN_GAP_BITS <= fields["gap_bits"] <= C.MAX_GAP_BITS:  # checked before Entry_Count is read
            raise InvalidHeader("Gap_Bits", f"{fields['gap_bits']} in {name!r} is not in [1, 16]")
        fields["entry_count"] = r.u64("Entry_Count")
    if value_kind in (C.ValueKind.CODEBOOK, C.ValueKind.GROUPED):
        fields["codebook_size"] = _table_size(r, "Codebook_Size", name, C.MAX_CODEBOOK_SIZE, 1)
    if value_kind == C.ValueKind.GROUPED:
        fields["group_size"] = r.u64("Group_Size")
        if fields["group_size"] < 1:
            raise InvalidHeader("Group_Size", f"0 in {name!r}")
        if fields["group_size"] > C.MAX_ELEMENTS:
            raise LimitExceeded(f"Group_Size of {name!r}", fields["group_size"], C.MAX_ELEMENTS)
        fields["scale_count"] = _table_size(r, "Scale_Count", name, C.MAX_GROUP_TABLE_SIZE, 1)
        fields["offset_count"] = _table_size(r, "Offset_Count", name, C.MAX_GROUP_TABLE_SIZE, 0)
        if fields["offset_count"] and layout == C.Layout.SPARSE:
            raise InvalidHeader("Offset_Count", f"{fields['offset_count']} in {name!r}: a SPARSE record has no offsets")
    elif value_kind == C.ValueKind.PLANES:
        fields["block_size"] = r.u64("Block_Size")
        if fields["block_size"] < 1:
            raise InvalidHeader("Block_Size", f"0 in {name!r}")
        if fields["block_size"] > C.MAX_PLANE_BLOCK:
            raise LimitExceeded(f"Block_Size of {name!r}", fields["block_size"], C.MAX_PLANE_BLOCK)
    elif value_kind == C.ValueKind.BANK:
        if kind == "bank":
            raise InvalidHeader("Value_Kind", f"bank {name!r} cannot take its values from a bank")
        fields["bank_index"] = r.u32("Bank_Index")
        fields["unit_size"] = _check_bank_use(name, dtype, shape, fields["bank_index"], banks)


def _plane_roles(name: str, dtype, layout, stored: int, block_size: int, room: int) -> tuple:
    """A PLANES record's segment roles; all its Segment_Refs must fit in the ``room`` left
    in the header (R43), checked before any is read, so that Block_Size cannot make a
    reader list more segments than the header holds."""
    blocks = -(-stored // block_size)
    count = (layout is _SPARSE) + blocks * len(C.plane_widths(dtype))
    if count * _REF.size > room:
        raise TruncatedError(f"Segment_Refs of {name!r} ({count} segments)", count * _REF.size, room)
    return tuple((role, STREAM_CODECS) for role in segment_roles(layout, _PLANES, dtype, blocks))


def _table_size(r: ByteReader, field: str, name: str, limit: int, least: int) -> int:
    size = r.u32(field)
    if size > limit:
        raise LimitExceeded(f"{field} of {name!r}", size, limit)
    if size < least:
        raise InvalidHeader(field, f"0 in {name!r}")
    return size


#: The value kinds a feature bit guards (FORMAT.md R34, R40): the bit, its number, the
#: dtypes the kind allows and how a message names them.
_FEATURE_KINDS = {
    C.ValueKind.GROUPED: (C.FEATURE_GROUPED, 0, C.GROUPED_DTYPES, "F32, F16 or BF16"),
    C.ValueKind.PLANES: (C.FEATURE_PLANES, 1, C.PLANES_DTYPES, "a float type"),
}


def _check_feature_kind(value_kind, kind: str, name: str, dtype, features: int) -> None:
    """What GROUPED or PLANES values require of their record: a tensor record, the
    file's feature bit, an allowed dtype."""
    bit, number, dtypes, allowed = _FEATURE_KINDS[value_kind]
    label = value_kind.name
    if kind == "bank":
        raise InvalidHeader("Value_Kind", f"bank {name!r} cannot have {label} values")
    if not features & bit:
        raise InvalidHeader("Value_Kind", f"{label} values in {name!r} without Required_Features bit {number}")
    if dtype not in dtypes:
        raise InvalidHeader("DType", f"{label} values of {name!r} must be {allowed}, not {dtype.name}")


_U32 = struct.Struct("<I")
_SHAPES = [struct.Struct(f"<{rank}Q") for rank in range(C.MAX_RANK + 1)]
_REF = struct.Struct(C.SEGMENT_REF_FORMAT)
_DTYPES, _LAYOUTS, _KINDS, _CODECS = ({member.value: member for member in enum}
                                     for enum in (C.DType, C.Layout, C.ValueKind, C.SegmentCodec))
_DENSE, _SPARSE, _RAW, _GROUPED = C.Layout.DENSE, C.Layout.SPARSE, C.ValueKind.RAW, C.ValueKind.GROUPED
_PLANES = C.ValueKind.PLANES
_AFFINE = C.SegmentCodec.AFFINE
#: (Layout, Value_Kind) -> the record's segment roles in order, each with the codecs it allows
#: (a PLANES record's depend on its fields: :func:`_plane_roles`).
_ROLES = {(layout, kind): tuple((role, allowed_codecs(role)) for role in segment_roles(layout, kind))
          for layout in C.Layout for kind in C.ValueKind if kind is not C.ValueKind.PLANES}


def _enum(enum, code: int, field: str, name: str):
    member = _members(enum).get(code)
    if member is None:
        raise UnknownEncoding(field, code, name)
    return member


@functools.lru_cache(maxsize=None)
def _members(enum) -> dict:
    """Value -> member: ``enum(code)`` costs about a microsecond, a field at a time."""
    return {member.value: member for member in enum}


def _check_bank_shape(name: str, shape: tuple[int, ...]) -> None:
    if not shape:
        raise InvalidHeader("Shape", f"bank {name!r} has rank 0")
    if shape[0] > C.MAX_BANK_SIZE:
        raise LimitExceeded(f"size of bank {name!r}", shape[0], C.MAX_BANK_SIZE)
    if min(shape) < 1:
        raise InvalidHeader("Shape", f"bank {name!r} has a zero dimension")


def _check_bank_use(name, dtype, shape, index: int, banks: tuple[Record, ...]) -> int:
    """The unit size K of a BANK-valued tensor, once its bank is proven compatible."""
    if index >= len(banks):
        raise InvalidHeader("Bank_Index", f"{index} in {name!r}, file has {len(banks)} banks")
    bank = banks[index]
    kernel = bank.shape[1:]
    if bank.dtype != dtype:
        raise InvalidHeader("DType", f"{name!r} is {dtype.name}, its bank {bank.name!r} {bank.dtype.name}")
    if len(shape) < len(kernel) or tuple(shape[len(shape) - len(kernel):]) != kernel:
        raise InvalidHeader("Shape", f"{name!r} {tuple(shape)} does not end with kernel shape {kernel}")
    k = 1
    for d in kernel:
        k *= d
    return k


# --- data section -----------------------------------------------------------------


def check_data_layout(header: Header, data) -> None:
    """R18, R19, R17 in the spec's order: placement, the file's end, then padding."""
    source = as_source(data)
    data_offset = header.data_offset
    offsets, lengths = _segment_columns(header)
    if offsets is None:  # an Offset or Length of 2**62 or more: one at a time, in Python ints
        end = 0
        for record, role, ref in iter_segments(header):
            expected = C.align_up(end, header.alignment)
            if ref.offset != expected:
                raise _misplaced(record, role, ref.offset, expected)
            end = expected + ref.length
        # every segment in place, so the data section ends past 2**62: beyond any file
        raise TruncatedError("data section", data_offset + end, source.size)
    ends = offsets + lengths
    before = np.concatenate(([0], ends[:-1]))  # where each segment's predecessor ends
    expected = -(-before // header.alignment) * header.alignment
    wrong = np.flatnonzero(offsets != expected)
    if wrong.size:
        record, role = _segment_at(header, int(wrong[0]))
        raise _misplaced(record, role, int(offsets[wrong[0]]), int(expected[wrong[0]]))
    file_end = data_offset + (int(ends[-1]) if ends.size else 0)
    if source.size < file_end:
        raise TruncatedError("data section", file_end, source.size)
    if source.size > file_end:
        raise InvalidLayout(f"{source.size - file_end} bytes after the last segment")

    def where(j: int) -> str:  # only asked for the error's message: building Records costs
        record, role = _segment_at(header, j)
        return f"before {role} of {record.name!r}"

    padding = _PaddingCheck(source, where)
    padding.add(C.PREAMBLE_SIZE + header.header_size, data_offset, "after the header")
    padded = np.flatnonzero(offsets > before)
    for j, start, stop in zip(padded.tolist(), (data_offset + before[padded]).tolist(),
                              (data_offset + offsets[padded]).tolist()):  # only where there is padding
        padding.add(start, stop, j)
    padding.flush()


def _misplaced(record: Record, role: str, offset: int, expected: int) -> InvalidLayout:
    return InvalidLayout(f"{role} segment of {record.name!r} at offset {offset}, expected {expected}")


def _segment_columns(header: Header):
    """Every segment's Offset and Length in file order (int64 arrays), or (None, None)
    if one is 2**62 or more."""
    bank_refs = [ref for record in header.banks for ref in record.segments.values()]
    table = header.tensors
    if table.segment_offset.dtype == object or table.segment_length.dtype == object:
        return None, None
    if any(ref.offset >= 1 << 62 or ref.length >= 1 << 62 for ref in bank_refs):
        return None, None
    offsets = np.concatenate((np.array([ref.offset for ref in bank_refs], np.int64), table.segment_offset))
    lengths = np.concatenate((np.array([ref.length for ref in bank_refs], np.int64), table.segment_length))
    return offsets, lengths


def _segment_at(header: Header, j: int) -> tuple[Record, str]:
    """The record and role of the j-th segment in file order."""
    for record in header.banks:
        if j < len(record.segments):
            return record, list(record.segments)[j]
        j -= len(record.segments)
    table = header.tensors
    i = int(np.searchsorted(table.segment_start, j, side="right")) - 1
    record = table[i]
    return record, list(record.segments)[j - int(table.segment_start[i])]


def iter_segments(header: Header):
    """(record, role, ref) for every segment, in file order."""
    for record in (*header.banks, *header.tensors):
        for role, ref in record.segments.items():
            yield record, role, ref


class _PaddingCheck:
    """Checks, in order, that byte ranges of a source are zero (R17).

    Ranges a few KiB apart are read together, up to a MiB at a time, so that a file of
    many small segments is not read one padding at a time; a range far from the last is
    read on its own, so that the segments between are not read at all.
    """

    NEAR, WINDOW = 4096, 1 << 20

    def __init__(self, source, where):
        self.source = source
        self.where = where  # segment index -> where its padding is, for the message
        self.pending: list = []  # (start, stop, segment index or a description)

    def add(self, start: int, stop: int, segment) -> None:
        if stop <= start:
            return
        if self.pending and (start - self.pending[-1][1] > self.NEAR or stop - self.pending[0][0] > self.WINDOW):
            self.flush()
        self.pending.append((start, stop, segment))

    def flush(self) -> None:
        if not self.pending:
            return
        base = self.pending[0][0]
        window = self.source.read(base, self.pending[-1][1] - base, "padding")
        for start, stop, segment in self.pending:
            if window[start - base:stop - base].tobytes().count(0) != stop - start:
                raise NonZeroPadding("padding " + (segment if isinstance(segment, str) else self.where(segment)))
        self.pending = []


def segment_view(header: Header, data, record: Record, role: str, *, verify: bool = True,
                 into=None) -> memoryview:
    """The bytes of one segment, bounds-checked and (by default) checksum-verified.

    ``data`` is a buffer or a ByteSource; from a file, the bytes are read (once) into
    memory the caller owns (``into``, if given: see :meth:`ByteSource.read`).
    """
    ref = record.segments[role]
    view = as_source(data).read(header.data_offset + ref.offset, ref.length, f"{role} segment of {record.name!r}",
                                into=into)
    if verify:
        computed = crc32(view)
        if computed != ref.checksum:
            raise ChecksumMismatch(f"{role} segment of {record.name!r}", ref.checksum, computed)
    return view
