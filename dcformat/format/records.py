"""The parsed form of a header, shared by the reader and the writer.

These are plain values: the reader builds them from checked bytes, the writer from the
encoded tensors it is given. What a record's segments are, and how many units it has,
is spec knowledge (FORMAT.md, "Records") and lives here, once.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .constants import DTYPE_SIZE, PREAMBLE_SIZE, DType, Layout, SegmentCodec, ValueKind, align_up, plane_widths

#: Segment roles in on-disk order, with the codecs each role allows.
STREAM_CODECS = frozenset({SegmentCodec.PACKED, SegmentCodec.HUFFMAN})
BYTES_CODECS = frozenset({SegmentCodec.BYTES})
#: A codebook may also be AFFINE (v1.3): its Base and Step (with rules of its own, R44).
CODEBOOK_CODECS = frozenset({SegmentCodec.BYTES, SegmentCodec.AFFINE})


#: The segments a GROUPED record has before its gaps (FORMAT.md, "GROUPED values"): the
#: shared codebook, the scale table and a scale code per group, the offset table and an
#: offset code per group (both empty when Offset_Count is 0).
GROUPED_TABLE_ROLES = ("codebook", "scales", "scale_codes", "offsets", "offset_codes")


def plane_names(dtype: DType) -> tuple[str, ...]:
    """A PLANES record's planes of ``dtype``, in order: "exponent", "mantissa1", ... (the
    sign is the top bit of "mantissa1")."""
    return ("exponent",) + tuple(f"mantissa{k}" for k in range(1, len(plane_widths(dtype))))


@functools.lru_cache(maxsize=1024)
def plane_roles(dtype: DType, blocks: int) -> tuple[str, ...]:
    """The plane segments of a PLANES record of ``blocks`` blocks: every plane of block 0,
    then of block 1, ..., named "exponent[b]", "mantissa1[b]", ..."""
    names = plane_names(dtype)
    return tuple(f"{plane}[{b}]" for b in range(blocks) for plane in names)


def segment_roles(layout: Layout, value_kind: ValueKind, dtype: DType | None = None,
                  blocks: int = 0) -> tuple[str, ...]:
    """The roles of a record's segments, in the order FORMAT.md lists them (a PLANES
    record's depend on its ``dtype`` and its number of ``blocks``)."""
    if value_kind == ValueKind.PLANES:
        return (("gaps",) if layout == Layout.SPARSE else ()) + plane_roles(dtype, blocks)
    roles = []
    if value_kind == ValueKind.CODEBOOK:
        roles.append("codebook")
    elif value_kind == ValueKind.GROUPED:
        roles.extend(GROUPED_TABLE_ROLES)
    if layout == Layout.SPARSE:
        roles.append("gaps")
    roles.append({ValueKind.RAW: "values", ValueKind.CODEBOOK: "codes", ValueKind.BANK: "selectors",
                  ValueKind.GROUPED: "codes"}[value_kind])
    return tuple(roles)


#: Roles whose segment is stored as bytes (tables and raw values); the others are streams.
BYTES_ROLES = frozenset({"codebook", "values", "scales", "offsets"})  # a PLANES record's are all streams


def nonzero_product(shape) -> int:
    """The product of a shape's non-zero dimensions (Python int): FORMAT.md bounds it, and
    so N and every dimension, by MAX_ELEMENTS, whether or not a dimension is 0."""
    product = 1
    for d in shape:
        product *= d or 1
    return product


def allowed_codecs(role: str) -> frozenset:
    if role == "codebook":
        return CODEBOOK_CODECS
    return BYTES_CODECS if role in BYTES_ROLES else STREAM_CODECS


@dataclass(frozen=True, slots=True)
class SegmentRef:
    codec: SegmentCodec
    offset: int
    length: int
    checksum: int


@dataclass(frozen=True, slots=True)
class Record:
    """One tensor or bank record (FORMAT.md, "Records")."""

    name: str
    dtype: DType
    shape: tuple[int, ...]
    layout: Layout
    value_kind: ValueKind
    gap_bits: int = 0
    entry_count: int = 0
    codebook_size: int = 0
    bank_index: int = 0
    #: Elements per unit: 1, or the bank kernel size for BANK values.
    unit_size: int = 1
    segments: dict[str, SegmentRef] = field(default_factory=dict)
    #: GROUPED values: units per group, entries of the scale and the offset tables.
    group_size: int = 0
    scale_count: int = 0
    offset_count: int = 0
    #: PLANES values: stored units per block.
    block_size: int = 0

    @property
    def blocks(self) -> int:
        """B, the number of blocks of a PLANES record: ceil(S / Block_Size)."""
        return -(-self.stored_count // self.block_size) if self.block_size else 0

    @property
    def groups(self) -> int:
        """G, the number of groups of a GROUPED record: ceil(units / Group_Size)."""
        return -(-self.units // self.group_size) if self.group_size else 0

    @property
    def size(self) -> int:
        """N, the number of elements (Python int: never wraps)."""
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def units(self) -> int:
        return self.size // self.unit_size

    @property
    def stored_count(self) -> int:
        """S: every unit for DENSE, Entry_Count for SPARSE."""
        return self.units if self.layout == Layout.DENSE else self.entry_count

    @property
    def itemsize(self) -> int:
        return DTYPE_SIZE[self.dtype]

    @property
    def nbytes(self) -> int:
        return self.size * self.itemsize

    @property
    def payload_bytes(self) -> int:
        return sum(s.length for s in self.segments.values())


class RecordTable(Sequence):
    """A header's tensor records held as columns, each :class:`Record` made when asked for.

    A header may hold a million records (MAX_TENSORS); as objects they would take about
    500 bytes each, as columns about 100 (plus the name). ``table[i]`` and iteration give
    Records equal to those the parser read; :meth:`position` finds one by name. The columns
    (numpy arrays, one value per record) serve readers that handle many records at once;
    the segments of every record, in file order, are the flat arrays ``segment_codec``,
    ``segment_offset``, ``segment_length`` and ``segment_checksum``, record i's from
    ``segment_start[i]``, ``segment_count[i]`` of them, roles in FORMAT.md's order.
    """

    COLUMNS = ("dtype", "rank", "dim_start", "layout", "value_kind", "gap_bits", "entry_count", "codebook_size",
               "bank_index", "unit_size", "group_size", "scale_count", "offset_count", "block_size",
               "segment_start", "segment_count")
    SEGMENT_COLUMNS = ("segment_codec", "segment_offset", "segment_length", "segment_checksum")
    _WIDTHS = {"dim_start": np.int64, "entry_count": np.int64, "unit_size": np.int64, "group_size": np.int64,
               "block_size": np.int64, "segment_start": np.int64, "segment_count": np.int64,
               "segment_offset": np.int64, "segment_length": np.int64,
               "codebook_size": np.uint32, "bank_index": np.uint32, "scale_count": np.uint32,
               "offset_count": np.uint32, "segment_checksum": np.uint32}

    def __init__(self, names: list[str], columns: dict[str, np.ndarray], dims: np.ndarray,
                 records: tuple[Record, ...] | None = None):
        self.names = names
        self.dims = dims
        for column in self.COLUMNS + self.SEGMENT_COLUMNS:
            setattr(self, column, columns[column])
        self._index: dict[str, int] | None = None
        # The parsed Records, when the table was made from them (headers read one field at
        # a time: tens of thousands of records at most): handed out again, not rebuilt.
        self._records = records

    @classmethod
    def empty_columns(cls, count: int, segments: int) -> dict[str, np.ndarray]:
        """Zeroed columns for ``count`` records and ``segments`` segments, of the widths
        their fields have."""
        return {column: np.zeros(segments if column in cls.SEGMENT_COLUMNS else count,
                                 cls._WIDTHS.get(column, np.uint8))
                for column in cls.COLUMNS + cls.SEGMENT_COLUMNS}

    @classmethod
    def from_records(cls, records) -> "RecordTable":
        """The table of parsed ``records`` (their shapes within MAX_ELEMENTS)."""
        records = tuple(records)
        refs = [ref for r in records for ref in r.segments.values()]
        columns = cls.empty_columns(len(records), len(refs))
        dims: list[int] = []
        start = 0
        for i, r in enumerate(records):
            columns["dtype"][i], columns["rank"][i], columns["dim_start"][i] = r.dtype, len(r.shape), len(dims)
            dims.extend(r.shape)
            for column in ("layout", "value_kind", "gap_bits", "entry_count", "codebook_size", "bank_index",
                           "unit_size", "group_size", "scale_count", "offset_count", "block_size"):
                columns[column][i] = getattr(r, column)
            columns["segment_start"][i], columns["segment_count"][i] = start, len(r.segments)
            start += len(r.segments)
        columns["segment_codec"][:] = [ref.codec for ref in refs]
        columns["segment_checksum"][:] = [ref.checksum for ref in refs]
        for column, values in (("segment_offset", [ref.offset for ref in refs]),
                               ("segment_length", [ref.length for ref in refs])):
            # an Offset or Length may be any u64 until the data layout is checked
            big = any(v >= 1 << 62 for v in values)
            columns[column] = np.array(values, dtype=object if big else np.int64)
        return cls([r.name for r in records], columns, np.array(dims, np.int64), records)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = range(len(self))[i]  # negative indices and bounds, as a tuple's
        return self._record(i)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"RecordTable({len(self)} records)"

    def __eq__(self, other) -> bool:
        if isinstance(other, (RecordTable, tuple, list)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def position(self, name: str) -> int:
        """The position of the record named ``name`` (KeyError if there is none)."""
        return self.names_index()[name]

    def names_index(self) -> dict[str, int]:
        """Name -> position, made once (names that repeat keep their last position)."""
        if self._index is None:
            self._index = dict(zip(self.names, range(len(self.names))))
        return self._index

    def shape(self, i: int) -> tuple[int, ...]:
        start = int(self.dim_start[i])
        return tuple(int(d) for d in self.dims[start:start + int(self.rank[i])])

    def shapes(self, positions: np.ndarray) -> list[tuple[int, ...]]:
        """The shapes of the records at ``positions``, as :meth:`shape` gives each."""
        dims = self.dims.tolist()
        return [tuple(dims[start:start + rank]) for start, rank in
                zip(self.dim_start[positions].tolist(), self.rank[positions].tolist())]

    def nbytes(self) -> np.ndarray:
        """N x itemsize of every record (int64; N is at most 2**48)."""
        sizes = np.ones(len(self), np.int64)
        for d in range(int(self.rank.max(initial=0))):
            has = self.rank > d
            sizes[has] *= self.dims[self.dim_start[has] + d].astype(np.int64)
        return sizes * _ITEMSIZE[self.dtype]

    def _record(self, i: int) -> Record:
        if self._records is not None:
            return self._records[i]
        layout, value_kind = _LAYOUT[self.layout[i]], _VALUE_KIND[self.value_kind[i]]
        count = int(self.segment_count[i])
        dtype = _DTYPE[self.dtype[i]]
        if value_kind == ValueKind.PLANES:
            roles = segment_roles(layout, value_kind, dtype, (count - (layout == Layout.SPARSE))
                                  // len(plane_widths(dtype)))
        else:
            roles = _ROLES[layout, value_kind]
        start = int(self.segment_start[i])
        segments = {role: SegmentRef(_CODEC[self.segment_codec[j]], int(self.segment_offset[j]),
                                     int(self.segment_length[j]), int(self.segment_checksum[j]))
                    for role, j in zip(roles, range(start, start + count))}
        return Record(self.names[i], dtype, self.shape(i), layout, value_kind,
                      int(self.gap_bits[i]), int(self.entry_count[i]), int(self.codebook_size[i]),
                      int(self.bank_index[i]), int(self.unit_size[i]), segments, int(self.group_size[i]),
                      int(self.scale_count[i]), int(self.offset_count[i]), int(self.block_size[i]))


_DTYPE = {member.value: member for member in DType}
_LAYOUT = {member.value: member for member in Layout}
_VALUE_KIND = {member.value: member for member in ValueKind}
_CODEC = {member.value: member for member in SegmentCodec}
_ROLES = {(layout, kind): segment_roles(layout, kind) for layout in Layout for kind in ValueKind
          if kind != ValueKind.PLANES}
_ITEMSIZE = np.zeros(256, np.int64)
for _dtype, _size in DTYPE_SIZE.items():
    _ITEMSIZE[_dtype] = _size


@dataclass(frozen=True)
class Header:
    version: tuple[int, int]
    required_features: int
    optional_features: int
    header_size: int
    alignment: int
    metadata: dict[str, str]
    banks: tuple[Record, ...]
    #: The tensor records, in file order (a Sequence of Records).
    tensors: RecordTable

    @property
    def data_offset(self) -> int:
        return align_up(PREAMBLE_SIZE + self.header_size, self.alignment)
