"""The small primitives under the reference decoder (read :mod:`.decoder` first).

Three helpers that the format sections lean on, kept apart so the format code reads
like the spec:

- :class:`ByteReader`, through which every byte of the header and of a Huffman
  stream's table is read. A read past the end raises ``TruncatedError`` naming the
  field (spec, "Header": "Every read inside the header is bounds-checked against
  Header_Size; reading past it is TruncatedError naming the field").
- :class:`BitReader`, a least-significant-bit-first cursor over a bit stream, built on
  ``bitstring`` (spec, "Conventions": "bit ``i`` of a bit stream is bit ``i mod 8``
  (0 = least significant) of byte ``i div 8``").
- :func:`canonical_codes`, the DEFLATE-style canonical Huffman code assignment
  (spec, "Huffman streams", "Canonical codes").

Nothing here raises a spec error other than ``TruncatedError``: the callers decide
what running out of bits means.
"""

from __future__ import annotations

import struct

from bitstring import Bits, Reader

from ..errors import TruncatedError


def ceil_div(a: int, b: int) -> int:
    """Spec, "Conventions": "ceil_div(a, b) is (a + b - 1) div b"."""
    return (a + b - 1) // b


# --- bytes -------------------------------------------------------------------------


class ByteReader:
    """Little-endian fields read in order from ``data``, never past its end.

    ``where`` prefixes the field names in errors ("header", "tensor 'w' gaps").
    """

    def __init__(self, data: bytes, where: str):
        self.data = data
        self.position = 0
        self.where = where

    @property
    def remaining(self) -> int:
        """Bytes not read yet."""
        return len(self.data) - self.position

    def read_bytes(self, count: int, field: str) -> bytes:
        """The next ``count`` bytes; ``TruncatedError`` naming ``field`` if fewer are left."""
        if count > self.remaining:
            raise TruncatedError(f"{self.where}: {field}", count, self.remaining)
        start = self.position
        self.position += count
        return self.data[start:self.position]

    def read_rest(self) -> bytes:
        """Every byte not read yet."""
        return self.read_bytes(self.remaining, "rest")

    def read_u8(self, field: str) -> int:
        return self.read_bytes(1, field)[0]

    def read_u16(self, field: str) -> int:
        return struct.unpack("<H", self.read_bytes(2, field))[0]

    def read_u32(self, field: str) -> int:
        return struct.unpack("<I", self.read_bytes(4, field))[0]

    def read_u64(self, field: str) -> int:
        return struct.unpack("<Q", self.read_bytes(8, field))[0]


# --- bits --------------------------------------------------------------------------

#: Byte ``b`` with its eight bits in the opposite order (bit 0 <-> bit 7, ...).
_BIT_REVERSED = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


class BitReader:
    """A cursor over a bit stream that reads it least-significant bit first.

    ``bitstring`` numbers the bits of each byte from the most significant one; after
    reversing the bits of every byte, its bit ``i`` is the spec's bit ``i``, so reading
    forward from 0 visits the stream in the spec's order.
    """

    def __init__(self, data: bytes):
        self._cursor = Reader(Bits.from_bytes(bytes(data).translate(_BIT_REVERSED)))

    @property
    def position(self) -> int:
        """Bits read so far."""
        return self._cursor.pos

    @property
    def remaining(self) -> int:
        """Bits left before the end of the data."""
        return self._cursor.remaining

    def read_bit(self) -> int:
        """The next bit (0 or 1). The caller checks ``remaining`` first."""
        return 1 if self._cursor.read_bits(1).bin == "1" else 0

    def read_uint(self, width: int) -> int:
        """The next ``width`` bits as an unsigned integer, least significant bit first.

        Spec, "Packed streams": "each symbol's least significant bit first".
        """
        first_bit_first = self._cursor.read_bits(width).bin
        return int(first_bit_first[::-1], 2)

    def rest_is_zero(self) -> bool:
        """Whether every bit after the current position is 0."""
        return self._cursor.bits[self._cursor.pos:].count(1) == 0


# --- canonical Huffman codes --------------------------------------------------------


def canonical_codes(code_lengths: list[int]) -> dict[tuple[int, int], int]:
    """Map (length, code) to symbol for the canonical code with these lengths.

    Spec, "Canonical codes": "symbols with a code are ordered by (length, symbol); the
    first gets the all-zero code of its length; each next code is the previous plus
    one, shifted left by the difference in length." A length of 0 means "no code".
    The caller has checked the Kraft inequality, so every code fits its length.
    """
    coded = sorted((length, symbol) for symbol, length in enumerate(code_lengths) if length)
    table: dict[tuple[int, int], int] = {}
    previous: tuple[int, int] | None = None  # (length, code) of the previous symbol
    for length, symbol in coded:
        if previous is None:
            code = 0
        else:
            previous_length, previous_code = previous
            code = (previous_code + 1) << (length - previous_length)
        table[(length, code)] = symbol
        previous = (length, code)
    return table
