"""Every number the wire format fixes, in one place (spec/FORMAT.md, "Appendix A").

The reader, the writer, the reference decoder and the vector generator all import
from here and never from each other. A retired wire number stays in its enum as a
comment and is never reused.
"""

from __future__ import annotations

from enum import IntEnum

# --- framing -----------------------------------------------------------------------

#: 8 bytes; byte-swapped or text-mangled copies (CRLF -> LF, 7-bit strip) do not match.
MAGIC = b"\x89DCF\r\n\x1a\n"
VERSION_MAJOR = 1
#: The newest minor version this package reads and writes (v1.1: GROUPED values; v1.2:
#: PLANES values; v1.3: AFFINE codebooks).
VERSION_MINOR = 3
#: What a writer puts in Version_Minor for a file that uses nothing of a later minor: a
#: v1.0 reader decodes every such file, byte for byte as before.
BASE_VERSION_MINOR = 0

#: Required_Features bit 0 (v1.1): some record has GROUPED values.
FEATURE_GROUPED = 1 << 0
#: Required_Features bit 1 (v1.2): some record has PLANES values.
FEATURE_PLANES = 1 << 1
#: Required_Features bit 2 (v1.3): some codebook segment is AFFINE (its Base and Step).
FEATURE_AFFINE = 1 << 2
#: Required_Features bits known to this version.
KNOWN_REQUIRED_FEATURES = FEATURE_GROUPED | FEATURE_PLANES | FEATURE_AFFINE
#: The minor version that defines each required feature bit.
FEATURE_MINOR = {FEATURE_GROUPED: 1, FEATURE_PLANES: 2, FEATURE_AFFINE: 3}

# Preamble: Magic, Version_Major, Version_Minor, Required_Features, Optional_Features,
# Header_Size, Header_Checksum.
PREAMBLE_FORMAT = "<8sHHIIQI"
PREAMBLE_SIZE = 8 + 2 + 2 + 4 + 4 + 8 + 4
#: The Header_Checksum covers the preamble up to (not including) itself, then the header.
PREAMBLE_CHECKED_SIZE = PREAMBLE_SIZE - 4

#: Writers use this alignment for every payload segment.
DEFAULT_ALIGNMENT = 64
MIN_ALIGNMENT = 8
MAX_ALIGNMENT = 4096

# Segment_Ref: Codec u8, Offset u64, Length u64, Checksum u32.
SEGMENT_REF_FORMAT = "<BQQI"
SEGMENT_REF_SIZE = 1 + 8 + 8 + 4

# Huffman chunk entry: Mode u8, Byte_Offset u64, First_Symbol u64, Start_Position u64.
CHUNK_ENTRY_FORMAT = "<BQQQ"
CHUNK_ENTRY_SIZE = 1 + 8 + 8 + 8

# --- limits (checked before any allocation or kernel call) --------------------------

MAX_HEADER_SIZE = 100 * 1024 * 1024
MAX_RANK = 8
MAX_ELEMENTS = 1 << 48
MAX_NAME_BYTES = 4096
MAX_METADATA_ENTRIES = 65536
MAX_METADATA_VALUE_BYTES = 16 * 1024 * 1024
MAX_TENSORS = 1 << 20
MAX_BANKS = 1024
MAX_CODEBOOK_SIZE = 1 << 16
#: Most entries of a GROUPED record's scale or offset table.
MAX_GROUP_TABLE_SIZE = 1 << 16
MAX_BANK_SIZE = 1 << 16
MIN_GAP_BITS = 1
MAX_GAP_BITS = 16
MAX_CODE_LENGTH = 15
MAX_CHUNKS = 1 << 24

#: Writers keep Huffman code lengths at or below this where the alphabet allows it, so
#: the decode table (2**11 entries) stays in L1; readers accept up to MAX_CODE_LENGTH.
PREFERRED_MAX_CODE_LENGTH = 11
#: Writers split streams into chunks of this many symbols by default.
DEFAULT_CHUNK_SYMBOLS = 1 << 16

#: Readers refuse to decode more than max(DECODE_BUDGET_FLOOR, DECODE_EXPANSION x file
#: size) bytes unless the caller sets its own budget.
DECODE_BUDGET_FLOOR = 256 * 1024 * 1024
DECODE_EXPANSION = 1024
#: Bytes each decoded record charges to the decode budget besides its N x itemsize: what
#: a reader holds for every record it returns, however small.
DECODE_RECORD_CHARGE = 128


# --- wire enums ------------------------------------------------------------------


class DType(IntEnum):
    """Element types; names follow safetensors."""

    BOOL = 0
    U8 = 1
    I8 = 2
    I16 = 3
    U16 = 4
    I32 = 5
    U32 = 6
    I64 = 7
    U64 = 8
    F16 = 9
    BF16 = 10
    F32 = 11
    F64 = 12
    F8_E4M3 = 13
    F8_E5M2 = 14


#: Bytes per element of each dtype.
DTYPE_SIZE = {
    DType.BOOL: 1, DType.U8: 1, DType.I8: 1, DType.I16: 2, DType.U16: 2,
    DType.I32: 4, DType.U32: 4, DType.I64: 8, DType.U64: 8,
    DType.F16: 2, DType.BF16: 2, DType.F32: 4, DType.F64: 8,
    DType.F8_E4M3: 1, DType.F8_E5M2: 1,
}

FLOAT_DTYPES = frozenset({DType.F16, DType.BF16, DType.F32, DType.F64, DType.F8_E4M3, DType.F8_E5M2})


class Layout(IntEnum):
    """Which units of a tensor are stored."""

    DENSE = 0
    SPARSE = 1


class ValueKind(IntEnum):
    """How each stored unit's value is given."""

    RAW = 0
    CODEBOOK = 1
    BANK = 2
    #: v1.1, Required_Features bit FEATURE_GROUPED: a codebook shared by groups of
    #: Group_Size consecutive units, each group with a scale (and an offset) of its own.
    GROUPED = 3
    #: v1.2, Required_Features bit FEATURE_PLANES: raw float values split into bit planes
    #: (the exponent, then the sign and mantissa a byte at a time), each an integer stream.
    PLANES = 4


class SegmentCodec(IntEnum):
    """How a payload segment's bytes are coded."""

    BYTES = 0
    PACKED = 1
    HUFFMAN = 2
    #: v1.3, Required_Features bit FEATURE_AFFINE: a codebook segment holding the Base and
    #: Step of a uniform grid (entry i is Base + Step * i in float32), not its values.
    AFFINE = 3


#: Element types a GROUPED record may have (its tables are F32; values are computed in
#: float32 and rounded to the element type).
GROUPED_DTYPES = frozenset({DType.F32, DType.F16, DType.BF16})
#: Element types a CODEBOOK record with an AFFINE codebook may have (entries are computed
#: in float32 and rounded to the element type, as GROUPED values are).
AFFINE_DTYPES = GROUPED_DTYPES
#: Length of an AFFINE codebook segment: Base and Step, two little-endian binary32.
AFFINE_CODEBOOK_BYTES = 8


#: The bits of each float dtype a PLANES record splits (FORMAT.md, "PLANES values"):
#: (element bits W, exponent bits E, mantissa bits M), the sign being the top bit.
FLOAT_LAYOUT = {
    DType.F16: (16, 5, 10), DType.BF16: (16, 8, 7), DType.F32: (32, 8, 23), DType.F64: (64, 11, 52),
    DType.F8_E4M3: (8, 4, 3), DType.F8_E5M2: (8, 5, 2),
}
#: Element types a PLANES record may have.
PLANES_DTYPES = frozenset(FLOAT_LAYOUT)
#: Largest Block_Size of a PLANES record (units per block).
MAX_PLANE_BLOCK = MAX_ELEMENTS


def plane_widths(dtype: DType) -> tuple[int, ...]:
    """The bit widths of a PLANES record's planes, in segment order: the exponent, then the
    sign and mantissa (``W - E`` bits, the sign on top) cut into 8-bit fields from the top,
    the last one holding what is left (BF16: 8, 8; F32: 8, 8, 8, 8; F16: 5, 8, 3)."""
    total, exponent, _ = FLOAT_LAYOUT[dtype]
    rest = total - exponent
    return (exponent,) + (8,) * (rest // 8) + ((rest % 8,) if rest % 8 else ())


class ChunkMode(IntEnum):
    """How one chunk of a Huffman stream is coded."""

    HUFFMAN = 0
    RAW = 1


def align_up(value: int, alignment: int) -> int:
    """The smallest multiple of ``alignment`` that is >= ``value``."""
    return -(-value // alignment) * alignment


def symbol_width(alphabet_size: int) -> int:
    """Bits of a packed symbol of an alphabet: max(1, bit length of alphabet_size - 1)."""
    return max(1, (alphabet_size - 1).bit_length())
