"""Integer streams: spec/FORMAT.md, "Streams" (read :mod:`.decoder` first).

A stream segment holds ``S`` symbols, each below the alphabet size ``A``, packed
(Codec 1) or Huffman-coded in chunks (Codec 2). :func:`decode_stream` returns the
symbols as a list of Python ints after every structural rule of the segment has held
(R14, R22-R29), in the order Appendix B gives for a Huffman stream: the table, the whole
chunk table's bytes, each entry in turn, each chunk in turn, then Start_Position;
:func:`check_symbol_range` applies R30 afterwards.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..format.constants import (
    CHUNK_ENTRY_FORMAT,
    CHUNK_ENTRY_SIZE,
    MAX_CHUNKS,
    MAX_CODE_LENGTH,
    ChunkMode,
    SegmentCodec,
    symbol_width,
)
from ..errors import (
    CodeOutOfRange,
    CorruptStream,
    InvalidHuffmanTable,
    NonZeroPadding,
    SelectorOutOfRange,
    UnknownEncoding,
)
from .primitives import BitReader, ByteReader, canonical_codes, ceil_div


def decode_stream(payload: bytes, codec: int, count: int, alphabet_size: int, *,
                  gap_stream: bool, name: str) -> list[int]:
    """The ``count`` symbols of a PACKED or HUFFMAN segment.

    ``gap_stream`` says whether Start_Position counts covered units (gap streams) or
    must be 0 (every other stream). ``name`` ("tensor 'w' codes") goes into errors.
    """
    # "Let w = max(1, bitlength(A - 1)) be the packed width."
    width = symbol_width(alphabet_size)
    if codec == SegmentCodec.PACKED:
        return decode_packed_stream(payload, count, width, name)
    # parse_record let only PACKED and HUFFMAN through for a stream segment.
    assert codec == SegmentCodec.HUFFMAN
    return decode_huffman_stream(payload, count, alphabet_size, gap_stream=gap_stream, name=name)


# --- packed streams (Codec 1) ---------------------------------------------------------


def decode_packed_stream(payload: bytes, count: int, width: int, name: str) -> list[int]:
    """Spec, "Packed streams": symbol ``j`` in bits ``[j*w, (j+1)*w)``."""
    # "Length must equal ceil_div(S * w, 8) else CorruptStream"
    expected = ceil_div(count * width, 8)
    if len(payload) != expected:
        raise CorruptStream(name, f"packed stream of {count} symbols at {width} bits needs "
                                  f"{expected} bytes, segment has {len(payload)}")
    return read_packed_symbols(payload, count, width, f"{name}: bits after the last symbol")


def read_packed_symbols(data: bytes, count: int, width: int, padding_name: str) -> list[int]:
    """``count`` symbols of ``width`` bits from ``data``, whose size the caller checked.

    Shared by packed streams and raw chunks ("it holds the symbols as a packed stream
    does, its trailing bits zero").
    """
    bits = BitReader(data)
    symbols = [bits.read_uint(width) for _ in range(count)]
    # "bits after the last symbol must be zero else NonZeroPadding"
    if not bits.rest_is_zero():
        raise NonZeroPadding(padding_name)
    return symbols


# --- Huffman streams (Codec 2) --------------------------------------------------------


@dataclass(frozen=True)
class ChunkEntry:
    """One entry of a Huffman stream's chunk table."""

    mode: int
    byte_offset: int
    first_symbol: int
    start_position: int


def decode_huffman_stream(payload: bytes, count: int, alphabet_size: int, *,
                          gap_stream: bool, name: str) -> list[int]:
    """Spec, "Huffman streams": Table_Size, Code_Lengths, Chunk_Count, chunks, bits."""
    reader = ByteReader(payload, name)
    code_lengths = parse_code_lengths(reader, alphabet_size, name)
    has_codes = any(code_lengths)
    chunks, bit_streams = parse_chunk_table(reader, count, has_codes, name)

    codes = canonical_codes(code_lengths)
    width = symbol_width(alphabet_size)
    symbols: list[int] = []
    for c, chunk in enumerate(chunks):
        # "Chunk c occupies bytes [Byte_Offset_c, Byte_Offset_{c+1}), the last one up to B."
        # "Chunk c holds symbols [First_Symbol_c, First_Symbol_{c+1}), the last one up to S."
        last = c + 1 == len(chunks)
        byte_end = len(bit_streams) if last else chunks[c + 1].byte_offset
        symbol_end = count if last else chunks[c + 1].first_symbol
        chunk_bytes = bit_streams[chunk.byte_offset:byte_end]
        n = symbol_end - chunk.first_symbol
        chunk_name = f"{name} chunk {c}"
        if chunk.mode == ChunkMode.RAW:
            symbols += decode_raw_chunk(chunk_bytes, n, width, chunk_name)
        else:
            symbols += decode_huffman_chunk(chunk_bytes, n, codes, chunk_name)

    check_start_positions(chunks, symbols, gap_stream, name)
    return symbols


def parse_code_lengths(reader: ByteReader, alphabet_size: int, name: str) -> list[int]:
    """Table_Size and Code_Lengths; the lengths of symbols ``0 .. T-1``."""
    table_size = reader.read_u32("Table_Size")
    # "T <= A else InvalidHuffmanTable. Symbols T to A - 1 have no code."
    if table_size > alphabet_size:
        raise InvalidHuffmanTable(f"{name}: Table_Size {table_size} exceeds the alphabet "
                                  f"size {alphabet_size}")
    packed = reader.read_bytes(ceil_div(table_size, 2), "Code_Lengths")
    # "two per byte, symbol 2k in the low nibble and 2k + 1 in the high nibble"
    code_lengths = []
    for symbol in range(table_size):
        byte = packed[symbol // 2]
        code_lengths.append(byte & 0x0F if symbol % 2 == 0 else byte >> 4)
    # "when T is odd the last high nibble must be zero (NonZeroPadding)"
    if table_size % 2 == 1 and packed[-1] >> 4 != 0:
        raise NonZeroPadding(f"{name}: last high nibble of Code_Lengths")
    # "The lengths must satisfy the Kraft inequality sum over coded symbols of
    # 2^-length <= 1 else InvalidHuffmanTable" (in units of 2^-MAX_CODE_LENGTH, exactly).
    kraft_sum = sum(2 ** (MAX_CODE_LENGTH - length) for length in code_lengths if length)
    if kraft_sum > 2 ** MAX_CODE_LENGTH:
        raise InvalidHuffmanTable(f"{name}: code lengths break the Kraft inequality "
                                  f"(sum {kraft_sum}/{2 ** MAX_CODE_LENGTH})")
    return code_lengths


def parse_chunk_table(reader: ByteReader, count: int, has_codes: bool,
                      name: str) -> tuple[list[ChunkEntry], bytes]:
    """Chunk_Count, the chunk entries and the bit streams.

    Appendix B: "the whole chunk table, all 25 x Chunk_Count bytes, must be present (R25)
    before any entry is read ...; then the chunk entries one at a time in order, each
    completely before the next: Mode (R14; a Mode 0 chunk needs codes: R24), Byte_Offset
    (R26), First_Symbol (R26)".
    """
    chunk_count = reader.read_u32("Chunk_Count")
    # "It must be 0 when S = 0, and from 1 to min(S, 2^24) otherwise, else CorruptStream"
    if count == 0 and chunk_count != 0:
        raise CorruptStream(name, f"Chunk_Count is {chunk_count} for an empty stream")
    if count > 0 and not 1 <= chunk_count <= min(count, MAX_CHUNKS):
        raise CorruptStream(name, f"Chunk_Count is {chunk_count}, must be from 1 to "
                                  f"{min(count, MAX_CHUNKS)}")
    # "25 * C_n bytes must fit in the segment else TruncatedError, checked for the whole
    # table before any entry is read (so a table cut short is TruncatedError whatever its
    # entries hold)."
    table = reader.read_bytes(CHUNK_ENTRY_SIZE * chunk_count, "chunk entries")
    # "Bit streams: rest of the segment"
    bit_streams = reader.read_rest()
    # "When S = 0 the bit streams must be empty (the segment ends after Chunk_Count) else
    # CorruptStream."
    if count == 0 and bit_streams:
        raise CorruptStream(name, f"{len(bit_streams)} bytes of bit streams in an empty stream")

    chunks: list[ChunkEntry] = []
    for c in range(chunk_count):
        chunk = ChunkEntry(*struct.unpack_from(CHUNK_ENTRY_FORMAT, table, c * CHUNK_ENTRY_SIZE))
        previous = chunks[-1] if chunks else None
        # "Mode (u8): 0 Huffman-coded, 1 raw (packed at width w); other values are
        # UnknownEncoding. If any chunk has Mode 0, at least one symbol must have a
        # code else InvalidHuffmanTable."
        if chunk.mode not in (ChunkMode.HUFFMAN, ChunkMode.RAW):
            raise UnknownEncoding(f"chunk {c} Mode", chunk.mode, name)
        if chunk.mode == ChunkMode.HUFFMAN and not has_codes:
            raise InvalidHuffmanTable(f"{name}: chunk {c} is Huffman-coded but no symbol "
                                      f"has a code")
        # Byte_Offset: "The first must be 0, and they must not decrease, and none may
        # exceed the size B of the bit streams, else CorruptStream."
        if previous is None and chunk.byte_offset != 0:
            raise CorruptStream(name, f"chunk 0 Byte_Offset is {chunk.byte_offset}, must be 0")
        if previous is not None and chunk.byte_offset < previous.byte_offset:
            raise CorruptStream(name, f"chunk {c} Byte_Offset decreases")
        if chunk.byte_offset > len(bit_streams):
            raise CorruptStream(name, f"chunk {c} Byte_Offset {chunk.byte_offset} is past the "
                                      f"bit streams ({len(bit_streams)} bytes)")
        # First_Symbol: "The first must be 0, they must strictly increase, and all must
        # be below S, else CorruptStream."
        if previous is None and chunk.first_symbol != 0:
            raise CorruptStream(name, f"chunk 0 First_Symbol is {chunk.first_symbol}, must be 0")
        if previous is not None and chunk.first_symbol <= previous.first_symbol:
            raise CorruptStream(name, f"chunk {c} First_Symbol does not increase")
        if chunk.first_symbol >= count:
            raise CorruptStream(name, f"chunk {c} First_Symbol {chunk.first_symbol} is not "
                                      f"below the symbol count {count}")
        chunks.append(chunk)
    return chunks, bit_streams


def decode_raw_chunk(chunk_bytes: bytes, n: int, width: int, name: str) -> list[int]:
    """A raw chunk: ``n`` symbols packed at width ``w``."""
    # "A raw chunk of n symbols must occupy exactly ceil_div(n * w, 8) bytes else
    # CorruptStream; it holds the symbols as a packed stream does, its trailing bits
    # zero (NonZeroPadding)."
    expected = ceil_div(n * width, 8)
    if len(chunk_bytes) != expected:
        raise CorruptStream(name, f"raw chunk of {n} symbols at {width} bits needs {expected} "
                                  f"bytes, has {len(chunk_bytes)}")
    return read_packed_symbols(chunk_bytes, n, width, f"{name}: bits after the last symbol")


def decode_huffman_chunk(chunk_bytes: bytes, n: int, codes: dict[tuple[int, int], int],
                         name: str) -> list[int]:
    """A Huffman chunk: ``n`` codes read from the chunk's own bit stream."""
    # "Within a bit stream, each code is written most significant bit first into the
    # least-significant-first bit stream (as DEFLATE does)."
    longest = max(length for length, _ in codes)  # parse_chunk_table ensured codes exist
    bits = BitReader(chunk_bytes)
    symbols = []
    while len(symbols) < n:
        length, code = 0, 0
        while (length, code) not in codes:
            # "Reading a bit past the chunk's last byte, or a bit pattern that no code
            # starts with, is CorruptStream."
            if length == longest:
                raise CorruptStream(name, f"bits {code:0{length}b} start no code")
            if bits.remaining == 0:
                raise CorruptStream(name, f"symbol {len(symbols)} of {n} runs past the chunk's "
                                          f"last byte")
            code = (code << 1) | bits.read_bit()
            length += 1
        symbols.append(codes[(length, code)])
    # "The chunk must occupy exactly ceil_div(bits_read, 8) bytes else CorruptStream,
    # and its bits after the last code must be zero (NonZeroPadding)."
    expected = ceil_div(bits.position, 8)
    if len(chunk_bytes) != expected:
        raise CorruptStream(name, f"Huffman chunk needs {expected} bytes, has {len(chunk_bytes)}")
    if not bits.rest_is_zero():
        raise NonZeroPadding(f"{name}: bits after the last code")
    return symbols


def check_start_positions(chunks: list[ChunkEntry], symbols: list[int], gap_stream: bool,
                          name: str) -> None:
    """Start_Position of every chunk (R29), once the stream is decoded."""
    # "Start_Position (u64): in a gap stream, the number of units that the entries
    # before this chunk cover: sum over entries j < First_Symbol_c of (gap_j + 1) ...
    # In any other stream it must be 0. A value that differs from this sum is
    # CorruptStream."
    covered = 0  # sum over entries j < First_Symbol_c of (gap_j + 1), kept as we go
    previous_first = 0
    for c, chunk in enumerate(chunks):
        if gap_stream:
            covered += sum(gap + 1 for gap in symbols[previous_first:chunk.first_symbol])
            previous_first = chunk.first_symbol
        expected = covered if gap_stream else 0
        if chunk.start_position != expected:
            raise CorruptStream(name, f"chunk {c} Start_Position is {chunk.start_position}, "
                                      f"must be {expected}")


# --- symbol range ---------------------------------------------------------------------


def check_symbol_range(symbols: list[int], alphabet_size: int, role: str, name: str) -> None:
    """Spec, "Symbol range", for a codes or selectors stream (gap symbols are never out
    of range: "their alphabet 2^Gap_Bits is 2^w")."""
    # "Every decoded code must be below C, else CodeOutOfRange, and every decoded
    # selector below L, else SelectorOutOfRange."
    error = {"codes": CodeOutOfRange, "selectors": SelectorOutOfRange}[role]
    for symbol in symbols:
        if symbol >= alphabet_size:
            raise error(name, symbol, alphabet_size)
