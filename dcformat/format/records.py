"""The parsed form of a header, shared by the reader and the writer.

These are plain values: the reader builds them from checked bytes, the writer from the
encoded tensors it is given. What a record's segments are, and how many units it has,
is spec knowledge (FORMAT.md, "Records") and lives here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .constants import DTYPE_SIZE, PREAMBLE_SIZE, DType, Layout, SegmentCodec, ValueKind, align_up

#: Segment roles in on-disk order, with the codecs each role allows.
STREAM_CODECS = frozenset({SegmentCodec.PACKED, SegmentCodec.HUFFMAN})
BYTES_CODECS = frozenset({SegmentCodec.BYTES})


def segment_roles(layout: Layout, value_kind: ValueKind) -> tuple[str, ...]:
    """The roles of a record's segments, in the order FORMAT.md lists them."""
    roles = []
    if value_kind == ValueKind.CODEBOOK:
        roles.append("codebook")
    if layout == Layout.SPARSE:
        roles.append("gaps")
    roles.append({ValueKind.RAW: "values", ValueKind.CODEBOOK: "codes", ValueKind.BANK: "selectors"}[value_kind])
    return tuple(roles)


def nonzero_product(shape) -> int:
    """The product of a shape's non-zero dimensions (Python int): FORMAT.md bounds it, and
    so N and every dimension, by MAX_ELEMENTS, whether or not a dimension is 0."""
    product = 1
    for d in shape:
        product *= d or 1
    return product


def allowed_codecs(role: str) -> frozenset:
    return BYTES_CODECS if role in ("codebook", "values") else STREAM_CODECS


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


@dataclass(frozen=True)
class Header:
    version: tuple[int, int]
    required_features: int
    optional_features: int
    header_size: int
    alignment: int
    metadata: dict[str, str]
    banks: tuple[Record, ...]
    tensors: tuple[Record, ...]

    @property
    def data_offset(self) -> int:
        return align_up(PREAMBLE_SIZE + self.header_size, self.alignment)
