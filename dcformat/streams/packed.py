"""Packed streams: every symbol at the alphabet's width (spec/FORMAT.md, "Packed streams").

This module also holds the argument-normalising helpers that both stream codecs use.
"""

from __future__ import annotations

import numpy as np

from ..format.constants import MAX_ELEMENTS, SegmentCodec, symbol_width
from ..errors import CorruptStream, NonZeroPadding, SymbolOutOfRange, UsageError
from ..kernels import bitpack
from .base import SYMBOL_DTYPE, StreamCodec, register_codec

#: The largest alphabet a stream may have (symbols are uint16).
MAX_ALPHABET_SIZE = 1 << 16


# --- normalise input (shared by the stream codecs) -----------------------------------


def check_alphabet(alphabet_size) -> int:
    """``alphabet_size`` as an int in [1, 65536], else :class:`UsageError`."""
    if isinstance(alphabet_size, (bool, np.bool_)) or not isinstance(alphabet_size, (int, np.integer)):
        raise UsageError(f"alphabet_size must be an int, got {type(alphabet_size).__name__}")
    alphabet_size = int(alphabet_size)
    if not 1 <= alphabet_size <= MAX_ALPHABET_SIZE:
        raise UsageError(f"alphabet_size must be in [1, {MAX_ALPHABET_SIZE}], got {alphabet_size}")
    return alphabet_size


def check_count(count) -> int:
    """``count`` as an int from 0 to 2**48 (the format's element limit), else :class:`UsageError`."""
    if (isinstance(count, (bool, np.bool_)) or not isinstance(count, (int, np.integer))
            or not 0 <= count <= MAX_ELEMENTS):
        raise UsageError(f"count must be an int from 0 to 2**48, got {count!r}")
    return int(count)


def as_symbols(symbols, alphabet_size: int) -> np.ndarray:
    """A 1-D contiguous uint16 copy-or-view of ``symbols``, every one below ``alphabet_size``."""
    arr = np.asarray(symbols)
    if arr.ndim != 1:
        raise UsageError(f"symbols must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=SYMBOL_DTYPE)
    if arr.dtype.kind not in "iu":
        raise UsageError(f"symbols must be integers, got dtype {arr.dtype}")
    if arr.dtype != SYMBOL_DTYPE:
        low, high = int(arr.min()), int(arr.max())
        if low < 0 or high >= alphabet_size:
            raise UsageError(f"symbols span [{low}, {high}], alphabet size is {alphabet_size}")
        arr = arr.astype(SYMBOL_DTYPE)
    elif alphabet_size < MAX_ALPHABET_SIZE:
        high = int(arr.max())
        if high >= alphabet_size:
            raise UsageError(f"symbol {high} is not below the alphabet size {alphabet_size}")
    return np.ascontiguousarray(arr)


def as_bytes(buf) -> np.ndarray:
    """A read-only uint8 view of a bytes-like object or contiguous array."""
    if isinstance(buf, np.ndarray) and not (buf.flags.c_contiguous or buf.flags.f_contiguous):
        raise UsageError("buf must be contiguous")
    try:
        return np.frombuffer(buf, dtype=np.uint8)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"buf must be bytes-like: {exc}") from None


def prepare_output(out, count: int) -> np.ndarray:
    """A flat writable uint16 array of ``count`` elements: ``out`` itself, or a new one."""
    if out is None:
        return np.empty(count, dtype=SYMBOL_DTYPE)
    if not isinstance(out, np.ndarray) or out.dtype != SYMBOL_DTYPE:
        raise UsageError("out must be a uint16 numpy array")
    if out.size != count or not out.flags.c_contiguous or not out.flags.writeable:
        raise UsageError(f"out must be a writable C-contiguous array of {count} elements")
    return out.reshape(-1)


def check_range_error(range_error) -> type:
    if not (isinstance(range_error, type) and issubclass(range_error, SymbolOutOfRange)):
        raise UsageError("range_error must be SymbolOutOfRange or a subclass of it")
    return range_error


def check_symbol_range(symbols: np.ndarray, alphabet_size: int, name: str, range_error: type) -> None:
    """Raise ``range_error`` for the first symbol not below ``alphabet_size`` (spec "Symbol range")."""
    if symbols.size == 0 or alphabet_size >= MAX_ALPHABET_SIZE:
        return
    if int(symbols.max()) >= alphabet_size:
        first = int(np.argmax(symbols >= alphabet_size))
        raise range_error(name, int(symbols[first]), alphabet_size)


def check_trailing_bits(last_byte: int, used_bits: int, where: str) -> None:
    """Bits of ``last_byte`` above its ``used_bits`` (1..7, or 0 for a full byte) must be zero."""
    if used_bits and last_byte >> used_bits:
        raise NonZeroPadding(where)


# --- the codec -----------------------------------------------------------------------


@register_codec
class PackedCodec(StreamCodec):
    """Store each symbol in ``w = max(1, bitlength(alphabet_size - 1))`` bits, LSB first.

    The payload is exactly ``ceil(count * w / 8)`` bytes; bits after the last symbol
    are zero. No framing: the count and alphabet come from the record.

    Examples
    --------
    >>> import numpy as np
    >>> codec = PackedCodec()
    >>> payload = codec.encode(np.array([1, 2, 3], dtype=np.uint16), 4)
    >>> payload.hex()
    '39'
    >>> codec.decode(payload, 3, 4).tolist()
    [1, 2, 3]
    """

    codec_id = "packed"
    wire_id = SegmentCodec.PACKED

    def encode(self, symbols, alphabet_size: int, *, gap_stream: bool = False) -> bytes:
        alphabet_size = check_alphabet(alphabet_size)
        symbols = as_symbols(symbols, alphabet_size)
        width = symbol_width(alphabet_size)
        out = np.empty(-(-symbols.shape[0] * width // 8), dtype=np.uint8)
        bitpack.pack(symbols, width, out)
        return out.tobytes()

    def decode_narrow(self, buf, count: int, alphabet_size: int, *, name: str = "stream",
                      threads: int | None = None) -> np.ndarray:
        if check_alphabet(alphabet_size) == 256:  # 8-bit symbols
            data = as_bytes(buf)
            if data.shape[0] != check_count(count):
                raise CorruptStream(name, f"packed length is {data.shape[0]} bytes, expected {count}")
            return data  # 8-bit symbols are the payload's bytes; none can be out of range
        return self.decode(buf, count, alphabet_size, name=name, threads=threads)

    def decode(self, buf, count: int, alphabet_size: int, *, gap_stream: bool = False,
               out: np.ndarray | None = None, name: str = "stream",
               range_error: type = SymbolOutOfRange, threads: int | None = None) -> np.ndarray:
        """Validate ``buf`` (rule R22) and return its ``count`` symbols as uint16 (on one thread).

        ``range_error`` is the :class:`SymbolOutOfRange` subclass raised for a symbol
        ``>= alphabet_size`` (the container passes ``CodeOutOfRange`` or
        ``SelectorOutOfRange``).
        """
        count = check_count(count)
        alphabet_size = check_alphabet(alphabet_size)
        range_error = check_range_error(range_error)
        data = as_bytes(buf)
        width = symbol_width(alphabet_size)
        total_bits = count * width
        expected = -(-total_bits // 8)
        if data.shape[0] != expected:
            raise CorruptStream(name, f"packed length is {data.shape[0]} bytes, expected {expected}")
        if expected:
            check_trailing_bits(int(data[-1]), total_bits % 8, f"{name} (packed trailing bits)")
        result = prepare_output(out, count)
        bitpack.unpack(data, count, width, result)
        if alphabet_size < 1 << width:  # else every width-bit value is a symbol
            check_symbol_range(result, alphabet_size, name, range_error)
        return out if out is not None else result
