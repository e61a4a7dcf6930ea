"""Huffman stream payloads (FORMAT.md, "Huffman streams"): parse, edit, write by hand.

:class:`Huff` is one stream segment; :func:`craft_huffman` writes one from chosen code
lengths, chunk cuts and modes; the small ``set_chunk``/``resize_chunk``/``set_bits``
edits are what the stream vectors change.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Callable

from dcformat.format import constants as C

from .model import parse, serialize


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


def huffman_modes(data: bytes, kind: str, name: str, role: str) -> Huff:
    """The Huffman structure of one segment of a file (to assert what a vector pins)."""
    model = parse(data)
    rec = model.bank(name) if kind == "bank" else model.tensor(name)
    seg = rec.seg(role)
    assert seg.codec == C.SegmentCodec.HUFFMAN, (name, role, seg.codec)
    return parse_huff(seg.payload)


def set_chunk(c: int, column: int, value) -> Callable[[Huff], None]:
    def change(huff: Huff) -> None:
        huff.chunks[c][column] = value(huff) if callable(value) else value
    return change


def stream_edited(base: Callable[[], bytes], tensor: str, role: str,
                  change: Callable[[Huff], object]) -> Callable[[], bytes]:
    """A vector maker: one HUFFMAN stream of ``base()`` parsed, changed and written back."""
    def make() -> bytes:
        m = parse(base())
        seg = m.tensor(tensor).seg(role)
        huff = parse_huff(seg.payload)
        change(huff)
        seg.payload = huff.to_bytes()
        return serialize(m)[0]
    return make


def resize_chunk(c: int, delta: int) -> Callable[[Huff], None]:
    """Grow (zero bytes) or shrink chunk c's bytes, moving the later Byte_Offsets."""
    def change(h: Huff) -> None:
        begin, end = h.chunk_bytes(c)
        h.bits = h.bits[:end] + bytes(delta) + h.bits[end:] if delta > 0 else h.bits[:end + delta] + h.bits[end:]
        for later in h.chunks[c + 1:]:
            later[1] += delta
    return change


def set_bits(c: int, index: int, mask: int) -> Callable[[Huff], None]:
    def change(h: Huff) -> None:
        begin, end = h.chunk_bytes(c)
        at = (end if index < 0 else begin) + index
        h.bits = h.bits[:at] + bytes([h.bits[at] | mask]) + h.bits[at + 1:]
    return change


def invalid_code_chunk(h: Huff) -> None:
    """Gap chunk 0 (2 bytes): the code of gap 0 ('00'), then '110', which no code starts with."""
    out = BitWriter()
    out.raw("00110")
    out.raw("0" * 11)
    h.bits = out.to_bytes() + h.bits[2:]
