"""The reference decoder: spec/FORMAT.md made executable.

Who it is for
    Anyone implementing or checking a dcformat reader. It follows the spec section by
    section: :func:`parse_preamble` ("Preamble"), :func:`parse_header` and
    :func:`parse_record` ("Header", "Records"), :func:`check_data_layout` ("Data
    section"), :func:`decode_record` ("Decoding a record"), and in :mod:`.streams`
    :func:`~.streams.decode_packed_stream` and :func:`~.streams.decode_huffman_stream`
    ("Streams"); GROUPED and PLANES values and AFFINE codebooks in :mod:`.grouped`,
    :mod:`.planes` and :mod:`.affine`.
    Comments quote the sentence they implement. The small primitives (the
    bounds-checked byte reader, the LSB-first bit reader, the canonical Huffman code
    builder) come last, in :mod:`.primitives`.

What it leaves out
    Speed and thrift. It is plain Python: every symbol is read bit by bit through
    ``bitstring`` and kept as a Python int, every value is a ``bytes`` object placed
    one at a time, and numpy appears only to hand back the finished arrays. It reads a
    whole file held in memory and decodes every record, banks included; it has no lazy
    access, no kernels and no writer. Use :func:`dcformat.load` for real work.

How it is checked
    ``tests/test_reference.py`` decodes files built byte by byte from the spec (with a
    writer of its own, a few lines per structure) and mutates them to break each
    rejection rule R1-R33 in turn, asserting the exact error class (GROUPED's R34-R39
    through the conformance vectors and tests/test_grouped.py, PLANES' R40-R43 through
    the vectors and a few files of its own; AFFINE's R44-R45 through the vectors and
    tests/test_affine.py). Property tests
    hold it and the fast reader (:func:`dcformat.load`, :class:`dcformat.safe_open`)
    to identical results, the same arrays or the same error class, and it must decode
    or refuse every conformance vector in ``spec/vectors/`` as ``MANIFEST.json`` says.

Order of checks
    It raises at the first failure, in the order a reader meets the rules: preamble
    (R1-R6), header checksum (R7), header fields as they are read (R8-R16, R20, R34-R37, R40-R44: a
    rule is checked as soon as the fields it names have been read; an AFFINE codebook's
    R44 right after its Codec, then its Length right after its Segment_Ref), data-section layout
    (R18 placement, then the file's end R19/R18, then padding R17), then record by
    record, banks first, in header order: decode budget (R33), every segment's checksum
    (R21), then each segment's content in segment order (codebook R32, an AFFINE one R45; GROUPED tables
    and per-group codes R38/R39, see :mod:`.grouped`; gaps R22-R29 then R31; values R32;
    codes or selectors R22-R29 then R30; PLANES planes, block by block, R22-R29, see
    :mod:`.planes`). Inside a Huffman stream:
    the table, then the whole chunk table's bytes (R25) before any entry, each entry in
    turn, each chunk in turn, then Start_Position (R29).

It imports only :mod:`dcformat.errors` and :mod:`dcformat.format.constants` from
dcformat, so it shares no code with the fast reader it checks.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import ml_dtypes
import numpy as np

from ..format.constants import (
    DECODE_BUDGET_FLOOR,
    DECODE_EXPANSION,
    DECODE_RECORD_CHARGE,
    DTYPE_SIZE,
    FEATURE_GROUPED,
    FEATURE_PLANES,
    KNOWN_REQUIRED_FEATURES,
    MAGIC,
    MAX_ALIGNMENT,
    MAX_BANK_SIZE,
    MAX_BANKS,
    MAX_CODEBOOK_SIZE,
    MAX_ELEMENTS,
    MAX_GAP_BITS,
    MAX_HEADER_SIZE,
    MAX_METADATA_ENTRIES,
    MAX_METADATA_VALUE_BYTES,
    MAX_NAME_BYTES,
    MAX_RANK,
    MAX_TENSORS,
    MIN_ALIGNMENT,
    MIN_GAP_BITS,
    PREAMBLE_CHECKED_SIZE,
    PREAMBLE_SIZE,
    VERSION_MAJOR,
    DType,
    Layout,
    SegmentCodec,
    ValueKind,
    align_up,
)
from ..errors import (
    BadMagic,
    ChecksumMismatch,
    DecodeLimitExceeded,
    DuplicateName,
    GapOverrun,
    InvalidHeader,
    InvalidLayout,
    InvalidValue,
    LimitExceeded,
    NonZeroPadding,
    TruncatedError,
    UnknownDType,
    UnknownEncoding,
    UnsupportedFeature,
    UnsupportedVersion,
    UsageError,
)
from .affine import affine_entries, check_affine_codec, check_affine_length
from .grouped import (
    GROUPED_DTYPES,
    GroupedFields,
    float32_as_dtype,
    parse_grouped_parameters,
    read_group_tables,
    table_segments,
    unit_value,
)
from .planes import FLOAT_LAYOUTS, PlanesFields, parse_block_size, plane_segments, read_plane_values
from .primitives import ByteReader
from .streams import check_symbol_range, decode_stream

#: The numpy dtype each DType decodes to (Appendix A.1).
NUMPY_DTYPES = {
    DType.BOOL: np.dtype(np.bool_),
    DType.U8: np.dtype(np.uint8),
    DType.I8: np.dtype(np.int8),
    DType.I16: np.dtype(np.int16),
    DType.U16: np.dtype(np.uint16),
    DType.I32: np.dtype(np.int32),
    DType.U32: np.dtype(np.uint32),
    DType.I64: np.dtype(np.int64),
    DType.U64: np.dtype(np.uint64),
    DType.F16: np.dtype(np.float16),
    DType.BF16: np.dtype(ml_dtypes.bfloat16),
    DType.F32: np.dtype(np.float32),
    DType.F64: np.dtype(np.float64),
    DType.F8_E4M3: np.dtype(ml_dtypes.float8_e4m3fn),
    DType.F8_E5M2: np.dtype(ml_dtypes.float8_e5m2),
}

#: "A codebook segment (of a CODEBOOK or a GROUPED record) must be BYTES or AFFINE, a
#: values, scales or offsets segment BYTES, and a stream segment ... PACKED or HUFFMAN"
#: (R15): the codecs of the roles that do not hold streams.
NON_STREAM_CODECS = {
    "codebook": (SegmentCodec.BYTES, SegmentCodec.AFFINE),
    "values": (SegmentCodec.BYTES,),
    "scales": (SegmentCodec.BYTES,),
    "offsets": (SegmentCodec.BYTES,),
}
STREAM_CODECS = (SegmentCodec.PACKED, SegmentCodec.HUFFMAN)


@dataclass
class DecodedFile:
    """What a file decodes to: version, metadata, tensors and banks, in header order."""

    version: tuple[int, int]
    metadata: dict[str, str] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    banks: dict[str, np.ndarray] = field(default_factory=dict)


def decode_file(data: bytes, *, verify_checksums: bool = True,
                decode_budget: int | None = None) -> DecodedFile:
    """Decode every bank and tensor of a dcformat file held in ``data``.

    Parameters
    ----------
    data : bytes-like
        The whole file.
    verify_checksums : bool
        Check the header and segment CRC-32s (R7, R21). Spec, "Introduction": "A
        reader may skip the checksum checks (and only those) when its caller asks it to".
    decode_budget : int or None
        Bytes the decoded banks and tensors of the file may take together; None means
        the spec's default ``max(268,435,456, 1024 x file size)`` ("Decode budget").

    Returns
    -------
    DecodedFile

    Raises
    ------
    dcformat.errors.FormatError
        The subclass the spec names for the first rule the file breaks.

    Examples
    --------
    >>> decode_file(b"not a dcformat file")
    Traceback (most recent call last):
    ...
    dcformat.errors.BadMagic: not a dcformat file: magic b'not a dc'
    """
    data = bytes(data)
    budget = DecodeBudget.for_file(len(data), decode_budget)

    preamble = parse_preamble(data)
    if verify_checksums:
        check_header_checksum(data, preamble)
    header = parse_header(data, preamble)
    check_data_layout(data, preamble, header)

    decoded = DecodedFile(version=(preamble.version_major, preamble.version_minor),
                          metadata=header.metadata)
    # "Reading the whole file decodes every bank, whether or not a tensor selects from
    # it, and every tensor: the banks first, in header order, then the tensors in header
    # order." (A BANK-valued tensor selects kernels of a decoded bank.)
    bank_bytes: list[bytes] = []
    for record in header.banks:
        output = decode_record(data, header, record, bank_bytes, budget, verify_checksums)
        bank_bytes.append(output)
        decoded.banks[record.name] = as_array(output, record)
    for record in header.tensors:
        output = decode_record(data, header, record, bank_bytes, budget, verify_checksums)
        decoded.tensors[record.name] = as_array(output, record)
    return decoded


# === Preamble ==========================================================================


@dataclass(frozen=True)
class Preamble:
    """The 32 bytes at the start of the file."""

    version_major: int
    version_minor: int
    required_features: int
    optional_features: int
    header_size: int
    header_checksum: int


def parse_preamble(data: bytes) -> Preamble:
    """Spec, "Preamble" (R1-R6)."""
    # "A file shorter than 8 bytes, or whose first 8 bytes differ, is refused with
    # BadMagic"
    if data[:len(MAGIC)] != MAGIC:
        raise BadMagic(data[:len(MAGIC)])
    # "a file shorter than 32 bytes that does start with the magic is refused with
    # TruncatedError"
    if len(data) < PREAMBLE_SIZE:
        raise TruncatedError("preamble", PREAMBLE_SIZE, len(data))
    reader = ByteReader(data[:PREAMBLE_SIZE], "preamble")
    reader.read_bytes(len(MAGIC), "Magic")
    preamble = Preamble(
        version_major=reader.read_u16("Version_Major"),
        version_minor=reader.read_u16("Version_Minor"),
        required_features=reader.read_u32("Required_Features"),
        optional_features=reader.read_u32("Optional_Features"),
        header_size=reader.read_u64("Header_Size"),
        header_checksum=reader.read_u32("Header_Checksum"),
    )
    # "A Version_Major other than 1 is refused with UnsupportedVersion."
    if preamble.version_major != VERSION_MAJOR:
        raise UnsupportedVersion((preamble.version_major, preamble.version_minor), VERSION_MAJOR)
    # "A reader must refuse a file that sets any bit it does not implement with
    # UnsupportedFeature." Optional_Features: "readers ignore every bit".
    unknown = preamble.required_features & ~KNOWN_REQUIRED_FEATURES
    if unknown:
        raise UnsupportedFeature(unknown)
    # "It must be at most 104,857,600 (MAX_HEADER_SIZE) else LimitExceeded, checked
    # before anything is read or allocated; the file must hold 32 + Header_Size bytes
    # else TruncatedError."
    if preamble.header_size > MAX_HEADER_SIZE:
        raise LimitExceeded("Header_Size", preamble.header_size, MAX_HEADER_SIZE)
    available = len(data) - PREAMBLE_SIZE
    if preamble.header_size > available:
        raise TruncatedError("header", preamble.header_size, available)
    return preamble


def check_header_checksum(data: bytes, preamble: Preamble) -> None:
    """R7: "CRC-32 ... computed over the first 28 bytes of the file followed by the
    Header_Size header bytes. A mismatch is refused with ChecksumMismatch (section
    header) before the header is parsed." """
    covered = data[:PREAMBLE_CHECKED_SIZE] + header_bytes(data, preamble)
    computed = zlib.crc32(covered)
    if computed != preamble.header_checksum:
        raise ChecksumMismatch("header", preamble.header_checksum, computed)


def header_bytes(data: bytes, preamble: Preamble) -> bytes:
    return data[PREAMBLE_SIZE:PREAMBLE_SIZE + preamble.header_size]


# === Header ============================================================================


@dataclass(frozen=True)
class SegmentRef:
    """One Segment_Ref of a record; ``role`` is its row in the segment table."""

    role: str
    codec: int
    offset: int
    length: int
    checksum: int


@dataclass(frozen=True)
class Record:
    """A bank or tensor record, with the quantities the spec derives from it."""

    kind: str  # "bank" or "tensor"
    name: str
    dtype: DType
    shape: tuple[int, ...]
    elements: int  # N
    layout: Layout
    value_kind: ValueKind
    gap_bits: int | None  # SPARSE only
    entry_count: int | None  # M, SPARSE only
    codebook_size: int | None  # C, CODEBOOK only
    bank_index: int | None  # BANK only
    bank_size: int | None  # L of the selected bank, BANK only
    unit_elements: int  # K
    units: int  # U
    stored: int  # S
    segments: tuple[SegmentRef, ...]
    grouped: GroupedFields | None = None  # GROUPED only: Group_Size, Scale_Count, Offset_Count
    planes: PlanesFields | None = None  # PLANES only: Block_Size and the number of blocks

    @property
    def label(self) -> str:
        """How errors name the record: "tensor 'fc1.weight'"."""
        return f"{self.kind} {self.name!r}"

    @property
    def itemsize(self) -> int:
        return DTYPE_SIZE[self.dtype]

    def segment(self, role: str) -> SegmentRef:
        return next(ref for ref in self.segments if ref.role == role)


@dataclass(frozen=True)
class Header:
    """The parsed header and the Data_Offset it implies."""

    alignment: int
    metadata: dict[str, str]
    banks: list[Record]
    tensors: list[Record]
    data_offset: int

    def segments(self) -> list[SegmentRef]:
        """Spec, "Data section": "every segment of bank record 0, then bank 1, ...,
        then tensor record 0, 1, ...". """
        return [ref for record in self.banks + self.tensors for ref in record.segments]


def parse_header(data: bytes, preamble: Preamble) -> Header:
    """Spec, "Header": Alignment, metadata, bank records, tensor records, Extension."""
    # "Every read inside the header is bounds-checked against Header_Size; reading past
    # it is TruncatedError naming the field."
    reader = ByteReader(header_bytes(data, preamble), "header")

    alignment = reader.read_u32("Alignment")
    # "It must be a power of two from 8 to 4096 else InvalidHeader."
    is_power_of_two = alignment > 0 and alignment & (alignment - 1) == 0
    if not (is_power_of_two and MIN_ALIGNMENT <= alignment <= MAX_ALIGNMENT):
        raise InvalidHeader("Alignment", f"{alignment} is not a power of two from "
                                         f"{MIN_ALIGNMENT} to {MAX_ALIGNMENT}")

    metadata = parse_metadata(reader)

    bank_count = reader.read_u32("Bank_Count")
    if bank_count > MAX_BANKS:
        raise LimitExceeded("Bank_Count", bank_count, MAX_BANKS)
    banks: list[Record] = []
    bank_names: set[str] = set()
    for index in range(bank_count):
        banks.append(parse_record(reader, "bank", index, bank_names, banks, preamble.required_features))

    tensor_count = reader.read_u32("Tensor_Count")
    if tensor_count > MAX_TENSORS:
        raise LimitExceeded("Tensor_Count", tensor_count, MAX_TENSORS)
    tensors: list[Record] = []
    tensor_names: set[str] = set()
    for index in range(tensor_count):
        tensors.append(parse_record(reader, "tensor", index, tensor_names, banks,
                                    preamble.required_features))

    # "Extension: bytes after the last tensor record, up to Header_Size. A file whose
    # Version_Minor is not greater than the reader's own (for a 1.0 reader: 0) must have
    # none else InvalidHeader (field header). A reader must ignore them in a file whose
    # Version_Minor is greater than its own"
    if reader.remaining and preamble.version_minor == 0:
        raise InvalidHeader("header", f"{reader.remaining} Extension bytes in a version "
                                      f"{preamble.version_major}.0 file")

    # "After the header come zero bytes up to offset Data_Offset = align_up(32 +
    # Header_Size, Alignment)"
    data_offset = align_up(PREAMBLE_SIZE + preamble.header_size, alignment)
    return Header(alignment, metadata, banks, tensors, data_offset)


def parse_metadata(reader: ByteReader) -> dict[str, str]:
    """Metadata_Count and its Key/Value entries."""
    count = reader.read_u32("Metadata_Count")
    # "at most 65,536 else LimitExceeded"
    if count > MAX_METADATA_ENTRIES:
        raise LimitExceeded("Metadata_Count", count, MAX_METADATA_ENTRIES)
    metadata: dict[str, str] = {}
    for index in range(count):
        # "A metadata key must be at most 4,096 bytes and a value at most 16,777,216
        # bytes else LimitExceeded. Keys must be distinct else DuplicateName."
        key = read_string(reader, f"metadata entry {index} Key", MAX_NAME_BYTES)
        if key in metadata:
            raise DuplicateName("metadata key", key)
        metadata[key] = read_string(reader, f"metadata entry {index} Value",
                                    MAX_METADATA_VALUE_BYTES)
    return metadata


def read_string(reader: ByteReader, field: str, max_bytes: int) -> str:
    """A String: "a u32 byte length followed by that many bytes of UTF-8"."""
    length = reader.read_u32(f"{field} length")
    # The limit is checked on the length, before the bytes are read.
    if length > max_bytes:
        raise LimitExceeded(f"{field} length", length, max_bytes)
    raw = reader.read_bytes(length, field)
    # "Invalid UTF-8 is InvalidHeader."
    try:
        return raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidHeader(field, f"invalid UTF-8 ({exc.reason})") from None


# === Records ===========================================================================


def parse_record(reader: ByteReader, kind: str, index: int, taken_names: set[str],
                 banks: list[Record], required_features: int) -> Record:
    """Spec, "Records": one bank or tensor record, each rule checked once its fields
    are read. ``taken_names`` holds the names of the records of the same kind before
    this one (this one's is added); ``banks`` are the bank records;
    ``required_features`` is the file's Required_Features (R34, R40)."""
    where = f"{kind} {index}"

    # Name: "a String of at most 4,096 bytes else LimitExceeded"; "Names must be
    # distinct among banks and distinct among tensors else DuplicateName".
    name = read_string(reader, f"{where} Name", MAX_NAME_BYTES)
    if name in taken_names:
        raise DuplicateName(kind, name)
    taken_names.add(name)
    label = f"{kind} {name!r}"

    # DType: "an unknown code is UnknownDType".
    dtype_code = reader.read_u8(f"{label} DType")
    if not is_known(DType, dtype_code):
        raise UnknownDType(dtype_code, name)
    dtype = DType(dtype_code)

    # Rank: "at most 8 else LimitExceeded". A bank: "Rank at least 1 ... else
    # InvalidHeader".
    rank = reader.read_u8(f"{label} Rank")
    if rank > MAX_RANK:
        raise LimitExceeded(f"{label} Rank", rank, MAX_RANK)
    if kind == "bank" and rank < 1:
        raise InvalidHeader(f"{label} Rank", "a bank must have rank at least 1")

    # Shape: "N is their product (1 for rank 0). The product of the non-zero dimensions
    # (which is N when no dimension is zero) must be at most 2^48 else LimitExceeded, so
    # no dimension exceeds 2^48 either. Zero dimensions are allowed (N = 0)."
    shape = tuple(reader.read_u64(f"{label} Shape") for _ in range(rank))
    elements = product(shape)
    if elements > MAX_ELEMENTS:  # no dimension is zero: the product is N
        raise LimitExceeded(f"{label} N", elements, MAX_ELEMENTS)
    nonzero = product(d for d in shape if d != 0)
    if nonzero > MAX_ELEMENTS:  # N = 0, as in (0, 2^64 - 1)
        raise LimitExceeded(f"{label} Shape", nonzero, MAX_ELEMENTS)
    if kind == "bank":
        check_bank_shape(label, shape)

    # Layout: "0 DENSE, 1 SPARSE; other values are UnknownEncoding."
    layout_code = reader.read_u8(f"{label} Layout")
    if not is_known(Layout, layout_code):
        raise UnknownEncoding("Layout", layout_code, name)
    layout = Layout(layout_code)

    # Value_Kind: "0 RAW, 1 CODEBOOK, 2 BANK, 3 GROUPED (v1.1), 4 PLANES (v1.2); other
    # values are UnknownEncoding. A bank record must not use BANK else InvalidHeader."
    value_kind_code = reader.read_u8(f"{label} Value_Kind")
    if not is_known(ValueKind, value_kind_code):
        raise UnknownEncoding("Value_Kind", value_kind_code, name)
    value_kind = ValueKind(value_kind_code)
    if kind == "bank" and value_kind == ValueKind.BANK:
        raise InvalidHeader(f"{label} Value_Kind", "a bank cannot take its values from a bank")
    if value_kind in LATER_VALUE_KINDS:  # R34, R40: the fields they name (and the file's) are read
        check_value_kind_record(label, kind, value_kind, dtype, required_features)

    # Layout parameters: "none for DENSE. For SPARSE: Gap_Bits, Entry_Count".
    gap_bits = entry_count = None
    if layout == Layout.SPARSE:
        gap_bits = reader.read_u8(f"{label} Gap_Bits")
        # "Gap_Bits (u8): 1 to 16 else InvalidHeader."
        if not MIN_GAP_BITS <= gap_bits <= MAX_GAP_BITS:
            raise InvalidHeader(f"{label} Gap_Bits", f"{gap_bits} is not from {MIN_GAP_BITS} "
                                                     f"to {MAX_GAP_BITS}")
        entry_count = reader.read_u64(f"{label} Entry_Count")  # checked against U below

    # Value parameters: "none for RAW. For CODEBOOK, Codebook_Size (u32) ... For BANK,
    # Bank_Index (u32)"; for GROUPED, "GROUPED values"; for PLANES, Block_Size.
    codebook_size = bank_index = bank_size = grouped = block_size = planes = None
    unit_elements = 1  # "For RAW, CODEBOOK, GROUPED and PLANES a unit is an element: K = 1, U = N."
    if value_kind == ValueKind.CODEBOOK:
        codebook_size = reader.read_u32(f"{label} Codebook_Size")
        # "C, from 1 to 65,536 else InvalidHeader/LimitExceeded"
        if codebook_size < 1:
            raise InvalidHeader(f"{label} Codebook_Size", "must be at least 1")
        if codebook_size > MAX_CODEBOOK_SIZE:
            raise LimitExceeded(f"{label} Codebook_Size", codebook_size, MAX_CODEBOOK_SIZE)
    elif value_kind == ValueKind.BANK:
        bank_index = reader.read_u32(f"{label} Bank_Index")
        # "the index of a bank record, which must be below Bank_Count else InvalidHeader"
        if bank_index >= len(banks):
            raise InvalidHeader(f"{label} Bank_Index", f"{bank_index} is not below Bank_Count "
                                                       f"{len(banks)}")
        bank = banks[bank_index]
        check_bank_fits(label, dtype, shape, bank)
        bank_size = bank.shape[0]
        unit_elements = product(bank.shape[1:])
    elif value_kind == ValueKind.GROUPED:
        codebook_size, grouped = parse_grouped_parameters(reader, label, layout)
    elif value_kind == ValueKind.PLANES:
        block_size = parse_block_size(reader, label)  # R41, R42

    # "K = k_1 * ... * k_r and U = N / K."
    units = elements // unit_elements
    # Entry_Count: "It must be at most the number of units U else InvalidHeader."
    if layout == Layout.SPARSE and entry_count > units:
        raise InvalidHeader(f"{label} Entry_Count", f"{entry_count} entries for {units} units")
    # "The stored count S is U for DENSE and M for SPARSE."
    stored = units if layout == Layout.DENSE else entry_count

    table = segment_table(layout, value_kind, codebook_size, stored, DTYPE_SIZE[dtype], grouped)
    if value_kind == ValueKind.PLANES:  # the planes of every block, after the gaps (R43 first)
        planes, plane_table = plane_segments(reader, label, layout, dtype, stored, block_size)
        table.extend(plane_table)
    segments = tuple(parse_segment_ref(reader, kind, name, role, length, dtype, value_kind, required_features)
                     for role, length in table)
    return Record(kind, name, dtype, shape, elements, layout, value_kind, gap_bits, entry_count,
                  codebook_size, bank_index, bank_size, unit_elements, units, stored, segments, grouped,
                  planes)


#: Value kinds a later minor adds: the Required_Features bit each needs and the DTypes it
#: allows, with their names for errors (R34: GROUPED; R40: PLANES).
LATER_VALUE_KINDS = {
    ValueKind.GROUPED: (FEATURE_GROUPED, GROUPED_DTYPES, "F32, F16 or BF16"),
    ValueKind.PLANES: (FEATURE_PLANES, tuple(FLOAT_LAYOUTS), "a float type"),
}


def check_value_kind_record(label: str, kind: str, value_kind: ValueKind, dtype: DType,
                            required_features: int) -> None:
    """R34 and R40, checked as soon as Value_Kind is read: "A GROUPED record must be a
    tensor record, of a file whose Required_Features has bit 0 set, with DType F32, F16 or
    BF16, else InvalidHeader"; "Likewise a PLANES record must be a tensor record, of a
    file whose Required_Features has bit 1 set, with a float DType". """
    bit, dtypes, allowed = LATER_VALUE_KINDS[value_kind]
    values = f"{value_kind.name} values"
    if kind == "bank":
        raise InvalidHeader(f"{label} Value_Kind", f"a bank cannot have {values}")
    if not required_features & bit:
        raise InvalidHeader(f"{label} Value_Kind", f"{values} without Required_Features bit {bit.bit_length() - 1}")
    if dtype not in dtypes:
        raise InvalidHeader(f"{label} DType", f"{values} must be {allowed}, not {dtype.name}")


def check_bank_shape(label: str, shape: tuple[int, ...]) -> None:
    """"A bank record must have Rank at least 1, a first dimension L from 1 to 65,536,
    and every other dimension at least 1, else InvalidHeader/LimitExceeded." """
    bank_size = shape[0]
    if bank_size < 1:
        raise InvalidHeader(f"{label} Shape", "a bank must hold at least one kernel")
    if bank_size > MAX_BANK_SIZE:
        raise LimitExceeded(f"{label} L", bank_size, MAX_BANK_SIZE)
    if any(d < 1 for d in shape[1:]):
        raise InvalidHeader(f"{label} Shape", "a bank's kernel dimensions must be at least 1")


def check_bank_fits(label: str, dtype: DType, shape: tuple[int, ...], bank: Record) -> None:
    """"the tensor must have the bank's DType, Rank at least r, and its last r
    dimensions equal to (k_1, ..., k_r), else InvalidHeader" """
    kernel_shape = bank.shape[1:]
    r = len(kernel_shape)
    if dtype != bank.dtype:
        raise InvalidHeader(f"{label} DType", f"{dtype.name} differs from bank {bank.name!r}'s "
                                              f"{bank.dtype.name}")
    if len(shape) < r:
        raise InvalidHeader(f"{label} Rank", f"{len(shape)} is below the kernel rank {r} of "
                                             f"bank {bank.name!r}")
    if shape[len(shape) - r:] != kernel_shape:
        raise InvalidHeader(f"{label} Shape", f"trailing dimensions differ from bank "
                                              f"{bank.name!r}'s kernel shape {kernel_shape}")


def segment_table(layout: Layout, value_kind: ValueKind, codebook_size: int | None, stored: int,
                  itemsize: int, grouped: GroupedFields | None) -> list[tuple[str, int | None]]:
    """The record's segments, in order ("present only where the condition holds"), each
    with the Length its fields fix: "A BYTES segment's Length must equal its count times
    the DType's size" (a GROUPED record's tables: R37); None for a stream, whose count
    and alphabet are attached when it is decoded."""
    table: list[tuple[str, int | None]] = []
    if value_kind == ValueKind.CODEBOOK:
        table.append(("codebook", codebook_size * itemsize))  # C values
    if value_kind == ValueKind.GROUPED:
        table.extend(table_segments(codebook_size, grouped))
    if layout == Layout.SPARSE:
        table.append(("gaps", None))  # M symbols
    if value_kind == ValueKind.RAW:
        table.append(("values", stored * itemsize))  # S values
    # PLANES: the planes of each block follow (planes.plane_segments).
    if value_kind in (ValueKind.CODEBOOK, ValueKind.GROUPED):
        table.append(("codes", None))  # S symbols
    if value_kind == ValueKind.BANK:
        table.append(("selectors", None))  # S symbols
    return table


def parse_segment_ref(reader: ByteReader, kind: str, name: str, role: str, expected_length: int | None,
                      dtype: DType, value_kind: ValueKind, required_features: int) -> SegmentRef:
    """One Segment_Ref: Codec, Offset, Length, Checksum; ``expected_length`` is the
    Length the record's fields fix for a BYTES segment (None: any); ``dtype``,
    ``value_kind`` and the file's ``required_features`` are what R44 names."""
    where = f"{kind} {name!r} {role} segment"
    codec = reader.read_u8(f"{where} Codec")
    # "a code not in the table is UnknownEncoding"; "else InvalidHeader (R15)"
    if not is_known(SegmentCodec, codec):
        raise UnknownEncoding(f"{role} Codec", codec, name)
    if codec not in NON_STREAM_CODECS.get(role, STREAM_CODECS):
        raise InvalidHeader(f"{where} Codec", f"{SegmentCodec(codec).name} cannot hold a "
                                              f"{role} segment")
    affine = codec == SegmentCodec.AFFINE
    if affine:  # R44's feature and DType parts, "checked right after the Codec is read"
        check_affine_codec(where, dtype, value_kind, required_features)
    offset = reader.read_u64(f"{where} Offset")
    length = reader.read_u64(f"{where} Length")
    checksum = reader.read_u32(f"{where} Checksum")
    if affine:  # R44: "its Length must be 8 ..., checked right after its Segment_Ref is read"
        check_affine_length(where, length)
    # "A BYTES segment's Length must equal its count times the DType's size else
    # InvalidHeader" (R20); a GROUPED record's table segments: R37.
    elif expected_length is not None and length != expected_length:
        raise InvalidHeader(f"{where} Length", f"{length} bytes, must be {expected_length}")
    return SegmentRef(role, codec, offset, length, checksum)


# === Data section ======================================================================


def check_data_layout(data: bytes, preamble: Preamble, header: Header) -> None:
    """Spec, "Data section": placement (R18), the file's end (R19, R18), padding (R17).

    Placement is a property of the header alone and is checked first; then that the
    file holds exactly those bytes; only then are the padding bytes read.
    """
    segments = header.segments()
    # "Let end_{-1} = 0. Segment i must have Offset_i = align_up(end_{i-1}, Alignment)
    # and end_i = Offset_i + Length_i, else InvalidLayout"
    end = 0
    for i, ref in enumerate(segments):
        expected = align_up(end, header.alignment)
        if ref.offset != expected:
            raise InvalidLayout(f"segment {i} ({ref.role}) starts at {ref.offset}, "
                                f"must start at {expected}")
        end = ref.offset + ref.length

    # "The file must end exactly at Data_Offset + end_last ...: a shorter file is
    # TruncatedError and a longer one InvalidLayout."
    file_end = header.data_offset + end
    if len(data) < file_end:
        raise TruncatedError("data section", file_end, len(data))
    if len(data) > file_end:
        raise InvalidLayout(f"{len(data) - file_end} bytes after the last segment")

    # "After the header come zero bytes up to offset Data_Offset ...; a non-zero byte
    # there is NonZeroPadding."
    header_end = PREAMBLE_SIZE + preamble.header_size
    if any(data[header_end:header.data_offset]):
        raise NonZeroPadding("padding after the header")
    # "Padding bytes between segments must be zero else NonZeroPadding."
    end = 0
    for i, ref in enumerate(segments):
        if any(data[header.data_offset + end:header.data_offset + ref.offset]):
            raise NonZeroPadding(f"padding before segment {i} ({ref.role})")
        end = ref.offset + ref.length


def segment_payload(data: bytes, header: Header, ref: SegmentRef) -> bytes:
    """The segment's Length bytes: "Offset (u64): from Data_Offset"."""
    start = header.data_offset + ref.offset
    return data[start:start + ref.length]


# === Decoding a record =================================================================


@dataclass
class DecodeBudget:
    """Spec, "Decode budget": bytes the decoded records of one file may take.

    "Each record is charged at most once per opened file, however often it is decoded";
    this decoder decodes each record exactly once, so it charges on every call.
    """

    limit: int
    spent: int = 0

    @classmethod
    def for_file(cls, file_size: int, decode_budget: int | None) -> DecodeBudget:
        # "Unless the caller gives another, the budget of a file of F bytes is
        # max(DECODE_BUDGET_FLOOR, DECODE_EXPANSION x F) ... A reader must let its caller
        # choose any other budget of at least 0 bytes; a negative budget is the caller's
        # mistake, not the file's"
        if decode_budget is None:
            return cls(max(DECODE_BUDGET_FLOOR, DECODE_EXPANSION * file_size))
        if decode_budget < 0:
            raise UsageError(f"decode_budget must be at least 0, got {decode_budget}")
        return cls(decode_budget)

    def charge(self, record: Record) -> None:
        """"If the total plus the charge exceeds the budget, the record is refused with
        DecodeLimitExceeded and nothing is charged; reaching the budget exactly is
        allowed." The charge is "N x itemsize + DECODE_RECORD_CHARGE bytes"."""
        size = record.elements * record.itemsize + DECODE_RECORD_CHARGE
        if self.spent + size > self.limit:
            raise DecodeLimitExceeded(f"decoded size of {record.label}", self.spent + size,
                                      self.limit)
        self.spent += size


def decode_record(data: bytes, header: Header, record: Record, bank_bytes: list[bytes],
                  budget: DecodeBudget, verify_checksums: bool) -> bytes:
    """Spec, "Decoding a record": the record's N elements as little-endian bytes."""
    # 1. "Check the record's fields ([Records]) and charge N x itemsize + 128 bytes to
    # the decode budget, refusing the record with DecodeLimitExceeded before any
    # allocation if they do not fit." parse_record checked the fields.
    budget.charge(record)

    # "Before decoding any segment of a record, a reader must verify the Checksum of
    # every segment of that record, in segment order (ChecksumMismatch naming the record
    # and segment), unless its caller has turned checksum verification off."
    payloads = {ref.role: segment_payload(data, header, ref) for ref in record.segments}
    if verify_checksums:
        for ref in record.segments:
            computed = zlib.crc32(payloads[ref.role])
            if computed != ref.checksum:
                raise ChecksumMismatch(f"{record.label} {ref.role} segment", ref.checksum, computed)

    # 2. "Fill an output of N elements of the DType with zero bits."
    output = bytearray(record.elements * record.itemsize)

    # 3. "Read the values of the S stored units", reading the segments in their order.
    codebook = positions = tables = None
    if record.value_kind == ValueKind.CODEBOOK:
        codebook = read_codebook(payloads["codebook"], record)
    if record.value_kind == ValueKind.GROUPED:
        tables = read_group_tables(payloads, record)
    if record.layout == Layout.SPARSE:
        positions = read_positions(payloads["gaps"], record)
    if positions is None:  # "DENSE: unit j is value j."
        positions = list(range(record.stored))
    if record.value_kind == ValueKind.RAW:
        values = read_raw_values(payloads["values"], record)
    elif record.value_kind == ValueKind.PLANES:
        # "PLANES: value j is the element whose bits its planes' symbols give" (planes.py).
        values = read_plane_values(payloads, record)
    elif record.value_kind == ValueKind.CODEBOOK:
        codes = read_symbols(payloads["codes"], record, "codes", record.codebook_size)
        # "CODEBOOK: value j is codebook[code_j]."
        values = [codebook[code] for code in codes]
    elif record.value_kind == ValueKind.GROUPED:
        codes = read_symbols(payloads["codes"], record, "codes", record.codebook_size)
        # "GROUPED: value j is computed from codebook[code_j] and the scale (and offset) of
        # the group of the unit it goes to, g = u div Group_Size".
        group_size = record.grouped.group_size
        values = [unit_value(tables, code, unit // group_size, record.dtype)
                  for code, unit in zip(codes, positions, strict=True)]
    else:
        selectors = read_symbols(payloads["selectors"], record, "selectors", record.bank_size)
        # "BANK: value j is kernel selector_j of the bank (the bank record's decoded
        # tensor, viewed as L rows of K elements)."
        kernels = split(bank_bytes[record.bank_index], record.unit_elements * record.itemsize)
        values = [kernels[selector] for selector in selectors]

    # 4. "Place them. DENSE: unit j is value j. SPARSE: entry j goes to unit p_j."
    place_entries(output, values, positions, record.unit_elements * record.itemsize)
    return bytes(output)


def read_codebook(payload: bytes, record: Record) -> list[bytes]:
    """The codebook segment: "C values of the record's DType"; or AFFINE, "each e_i
    rounded to its DType as for GROUPED values" (R45 first)."""
    if record.segment("codebook").codec == SegmentCodec.AFFINE:
        entries = affine_entries(payload, record.name, record.codebook_size)
        return [float32_as_dtype(entry, record.dtype) for entry in entries]
    check_bool_bytes(payload, record, "codebook")
    return split(payload, record.itemsize)


def read_raw_values(payload: bytes, record: Record) -> list[bytes]:
    """The values segment: "S values of the record's DType", little-endian."""
    check_bool_bytes(payload, record, "values")
    return split(payload, record.itemsize)


def check_bool_bytes(payload: bytes, record: Record, role: str) -> None:
    """"For a BOOL record every stored byte (values or codebook) must be 0x00 or 0x01
    else InvalidValue." """
    if record.dtype != DType.BOOL:
        return
    for i, byte in enumerate(payload):
        if byte > 1:
            raise InvalidValue(record.name, f"{role} byte {i} is 0x{byte:02x}, BOOL bytes are "
                                            f"0x00 or 0x01")


def read_symbols(payload: bytes, record: Record, role: str, alphabet_size: int) -> list[int]:
    """A codes or selectors stream: "S symbols, alphabet C" or "alphabet L"."""
    name = f"{record.label} {role}"
    codec = record.segment(role).codec
    symbols = decode_stream(payload, codec, record.stored, alphabet_size, gap_stream=False,
                            name=name)
    check_symbol_range(symbols, alphabet_size, role, name)
    return symbols


def read_positions(payload: bytes, record: Record) -> list[int]:
    """The gap stream ("M symbols, alphabet 2^Gap_Bits") turned into entry positions."""
    name = f"{record.label} gaps"
    codec = record.segment("gaps").codec
    gaps = decode_stream(payload, codec, record.entry_count, 2 ** record.gap_bits,
                         gap_stream=True, name=name)
    # "Gap symbols are never out of range, since their alphabet 2^Gap_Bits is 2^w."
    return entry_positions(gaps, record)


def entry_positions(gaps: list[int], record: Record) -> list[int]:
    """"SPARSE: entry j goes to unit p_j = (sum over i <= j of (gap_i + 1)) - 1. Every
    p_j must be below U else GapOverrun." """
    positions = []
    covered = 0  # sum over i <= j of (gap_i + 1)
    for gap in gaps:
        covered += gap + 1
        position = covered - 1
        if position >= record.units:
            raise GapOverrun(record.name, position, record.units)
        positions.append(position)
    return positions


def place_entries(output: bytearray, values: list[bytes], positions: list[int],
                  unit_bytes: int) -> None:
    """Step 4 and 5: unit ``u`` is elements ``[u*K, (u+1)*K)`` of the output. Units
    no entry reaches stay zero."""
    for value, unit in zip(values, positions, strict=True):
        output[unit * unit_bytes:(unit + 1) * unit_bytes] = value


def as_array(output: bytes, record: Record) -> np.ndarray:
    """5. "The tensor is the output viewed with the record's Shape, elements in C order."

    The bytes are little-endian ("Conventions"); they are read as unsigned integers of
    the DType's size, brought to the machine's byte order, then viewed as the DType.
    """
    little_endian_words = np.frombuffer(output, dtype=np.dtype(f"<u{record.itemsize}"))
    native_words = little_endian_words.astype(np.dtype(f"=u{record.itemsize}"))
    return native_words.view(NUMPY_DTYPES[record.dtype]).reshape(record.shape)


# === Small helpers =====================================================================


def is_known(enum: type, code: int) -> bool:
    """Whether ``code`` is one of the wire numbers of ``enum`` (Appendix A)."""
    return code in {member.value for member in enum}


def product(values) -> int:
    """Exact product of Python ints ("Arithmetic on fields is exact"); 1 when empty."""
    result = 1
    for value in values:
        result *= value
    return result


def split(data: bytes, size: int) -> list[bytes]:
    """``data`` cut into consecutive pieces of ``size`` bytes."""
    return [data[i:i + size] for i in range(0, len(data), size)]
