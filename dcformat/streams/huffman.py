"""Chunked canonical Huffman streams (spec/FORMAT.md, "Huffman streams").

One length-limited code per stream, built from the stream's symbol frequencies; the
stream is cut into chunks that are each Huffman-coded or stored raw, whichever is
smaller. The decoder validates every header field in Python (rules R23-R27), then runs
the table-driven kernels of :mod:`dcformat.kernels.huffman` over the chunks, which
report R28 failures as status codes; R29 and R30 are checked on the decoded symbols.
"""

from __future__ import annotations

import os
import struct
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..container.constants import (
    CHUNK_ENTRY_SIZE,
    DEFAULT_CHUNK_SYMBOLS,
    MAX_CHUNKS,
    MAX_CODE_LENGTH,
    PREFERRED_MAX_CODE_LENGTH,
    ChunkMode,
    SegmentCodec,
    symbol_width,
)
from ..errors import (
    CorruptStream,
    InvalidHuffmanTable,
    InvalidSettings,
    NonZeroPadding,
    SymbolOutOfRange,
    TruncatedError,
    UnknownEncoding,
    UsageError,
)
from ..kernels import huffman as hk
from .base import SYMBOL_DTYPE, StreamCodec, register_codec
from .canonical import canonical_codes, code_lengths, kraft_sum, pack_lengths, reverse_codes, unpack_lengths
from .packed import (
    as_bytes,
    as_symbols,
    check_alphabet,
    check_count,
    check_range_error,
    check_symbol_range,
    check_trailing_bits,
    prepare_output,
)

#: One chunk entry: Mode u8, Byte_Offset u64, First_Symbol u64, Start_Position u64, packed.
_ENTRY_DTYPE = np.dtype([("mode", "u1"), ("offset", "<u8"), ("first", "<u8"), ("start", "<u8")])
assert _ENTRY_DTYPE.itemsize == CHUNK_ENTRY_SIZE

#: Streams shorter than this decode on the calling thread alone.
_PARALLEL_MIN_SYMBOLS = 1 << 20

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _pool() -> ThreadPoolExecutor:
    """Worker threads for chunk groups beyond the first (which runs on the caller's thread)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=max(1, _cores() - 1),
                                           thread_name_prefix="dcformat-huffman")
        return _executor


def _forget_pool() -> None:
    # A forked child inherits the pool object but not its threads: start afresh.
    global _executor, _executor_lock
    _executor = None
    _executor_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


@register_codec
class HuffmanCodec(StreamCodec):
    """Canonical Huffman coding in independent chunks, with raw fallback per chunk.

    Parameters
    ----------
    chunk_symbols : int
        Symbols per chunk (the last chunk may be shorter). Streams that would need more
        than ``MAX_CHUNKS`` chunks use ``ceil(count / MAX_CHUNKS)`` instead.
    max_code_length : int
        Longest code the writer makes, 1 to 15. A stream with more than
        ``2**max_code_length`` distinct symbols uses the smallest limit that fits (up
        to 15); one with more than ``2**15`` is stored raw.

    Notes
    -----
    The payload is ``Table_Size`` (u32), the 4-bit code lengths, ``Chunk_Count`` (u32),
    25-byte chunk entries, then the chunks' bit streams (spec/FORMAT.md). Output is a
    function of the symbols, the alphabet size, ``gap_stream`` and the parameters only.
    Readers decode any valid payload whatever parameters wrote it.

    Examples
    --------
    >>> import numpy as np
    >>> codec = HuffmanCodec()
    >>> symbols = np.array([0, 0, 0, 1, 0, 2, 0, 0] * 100, dtype=np.uint16)
    >>> payload = codec.encode(symbols, 16)
    >>> len(payload) < symbols.size * 4 // 8
    True
    >>> bool((codec.decode(payload, symbols.size, 16) == symbols).all())
    True
    """

    codec_id = "huffman"
    wire_id = SegmentCodec.HUFFMAN

    def __init__(self, chunk_symbols: int = DEFAULT_CHUNK_SYMBOLS,
                 max_code_length: int = PREFERRED_MAX_CODE_LENGTH):
        if isinstance(chunk_symbols, bool) or not isinstance(chunk_symbols, (int, np.integer)) or chunk_symbols < 1:
            raise InvalidSettings(f"chunk_symbols must be a positive int, got {chunk_symbols!r}")
        if (isinstance(max_code_length, bool) or not isinstance(max_code_length, (int, np.integer))
                or not 1 <= max_code_length <= MAX_CODE_LENGTH):
            raise InvalidSettings(f"max_code_length must be an int in [1, {MAX_CODE_LENGTH}], got {max_code_length!r}")
        self.chunk_symbols = int(chunk_symbols)
        self.max_code_length = int(max_code_length)

    def get_config(self) -> dict:
        return {"id": self.codec_id, "chunk_symbols": self.chunk_symbols,
                "max_code_length": self.max_code_length}

    # --- writing ---------------------------------------------------------------------

    def _lengths(self, freqs: np.ndarray) -> np.ndarray | None:
        """Code lengths for ``freqs``, or None when more than 2**15 symbols are used."""
        used = int(np.count_nonzero(freqs))
        limit = self.max_code_length
        while used > (1 << limit):
            limit += 1
        if limit > MAX_CODE_LENGTH:
            return None
        return code_lengths(freqs, limit)

    def encode(self, symbols, alphabet_size: int, *, gap_stream: bool = False) -> bytes:
        alphabet_size = check_alphabet(alphabet_size)
        symbols = as_symbols(symbols, alphabet_size)
        count = symbols.shape[0]
        if count == 0:
            return struct.pack("<II", 0, 0)
        width = symbol_width(alphabet_size)
        chunk = max(self.chunk_symbols, -(-count // MAX_CHUNKS))
        n_chunks = -(-count // chunk)
        firsts = np.arange(n_chunks, dtype=np.int64) * chunk
        counts = np.full(n_chunks, chunk, dtype=np.int64)
        counts[-1] = count - int(firsts[-1])
        raw_bytes = (counts * width + 7) // 8

        # one code per stream; each chunk raw when Huffman would not make it smaller
        freqs = np.zeros(alphabet_size, dtype=np.int64)
        hk.histogram(symbols, freqs)
        lengths = self._lengths(freqs)
        modes = np.ones(n_chunks, dtype=np.uint8)
        sizes = raw_bytes
        table_size = 0
        if lengths is not None:
            bits = np.empty(n_chunks, dtype=np.int64)
            hk.chunk_bit_counts(symbols, lengths, chunk, bits)
            huff_bytes = (bits + 7) // 8
            use_huffman = huff_bytes < raw_bytes
            table_size = int(np.flatnonzero(lengths)[-1]) + 1
            saving = int((raw_bytes - huff_bytes)[use_huffman].sum())
            if saving > (table_size + 1) // 2:
                modes = (~use_huffman).astype(np.uint8)
                sizes = np.where(use_huffman, huff_bytes, raw_bytes)
            else:  # the table would cost more than it saves
                table_size = 0
        if table_size == 0:
            lengths = np.zeros(1, dtype=np.uint8)
        rev_codes = reverse_codes(canonical_codes(lengths), lengths)

        offsets = np.zeros(n_chunks + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        entries = np.zeros(n_chunks, dtype=_ENTRY_DTYPE)
        entries["mode"] = modes
        entries["offset"] = offsets[:-1]
        entries["first"] = firsts
        if gap_stream:
            units = np.empty(n_chunks, dtype=np.int64)
            hk.chunk_unit_sums(symbols, firsts, counts, units)
            entries["start"][1:] = np.cumsum(units[:-1])

        head = b"".join([struct.pack("<I", table_size), pack_lengths(lengths[:table_size]),
                         struct.pack("<I", n_chunks), entries.tobytes()])
        out = np.empty(len(head) + int(offsets[-1]), dtype=np.uint8)
        out[:len(head)] = np.frombuffer(head, dtype=np.uint8)
        hk.encode_chunks(symbols, rev_codes, lengths, chunk, modes, offsets, width, out[len(head):])
        return out.tobytes()

    # --- reading ---------------------------------------------------------------------

    def decode(self, buf, count: int, alphabet_size: int, *, gap_stream: bool = False,
               out: np.ndarray | None = None, name: str = "stream",
               range_error: type = SymbolOutOfRange, threads: int | None = None) -> np.ndarray:
        """Validate ``buf`` (rules R23-R30) and return its ``count`` symbols as uint16.

        ``range_error`` is the :class:`SymbolOutOfRange` subclass raised for a symbol
        ``>= alphabet_size``. ``threads`` caps the threads decoding chunks (default:
        every core for streams of a million symbols or more, else 1).
        """
        count = check_count(count)
        alphabet_size = check_alphabet(alphabet_size)
        range_error = check_range_error(range_error)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise UsageError(f"threads must be a positive int or None, got {threads!r}")
        data = as_bytes(buf)
        width = symbol_width(alphabet_size)
        reader = _Reader(data, name)

        # Table_Size and Code_Lengths (R23, R24)
        table_size = reader.u32("Table_Size")
        if table_size > alphabet_size:
            raise InvalidHuffmanTable(f"{name}: Table_Size {table_size} exceeds the alphabet size {alphabet_size}")
        packed = reader.take((table_size + 1) // 2, "Code_Lengths")
        if table_size % 2 and packed[-1] >> 4:
            raise NonZeroPadding(f"{name} Code_Lengths (high nibble after the last length)")
        lengths = unpack_lengths(packed, table_size)
        if kraft_sum(lengths) > 1 << MAX_CODE_LENGTH:
            raise InvalidHuffmanTable(f"{name}: code lengths break the Kraft inequality")

        # Chunk_Count and the chunk entries (R25)
        n_chunks = reader.u32("Chunk_Count")
        if count == 0 and n_chunks != 0:
            raise CorruptStream(name, f"Chunk_Count is {n_chunks} for an empty stream")
        if count and not 1 <= n_chunks <= min(count, MAX_CHUNKS):
            raise CorruptStream(name, f"Chunk_Count is {n_chunks} for {count} symbols")
        entries = np.frombuffer(reader.take(n_chunks * CHUNK_ENTRY_SIZE, "chunk entries"), dtype=_ENTRY_DTYPE)
        stream = data[reader.pos:]
        total = stream.shape[0]
        if count == 0:
            if total:
                raise CorruptStream(name, f"{total} bytes after the chunk entries of an empty stream")
            result = prepare_output(out, 0)
            return out if out is not None else result

        # Modes (R14, R24)
        modes = entries["mode"]
        if (modes > ChunkMode.RAW).any():
            bad = int(np.flatnonzero(modes > ChunkMode.RAW)[0])
            raise UnknownEncoding(f"chunk Mode of {name} chunk {bad}", int(modes[bad]))
        is_huffman = modes == ChunkMode.HUFFMAN
        if is_huffman.any() and not lengths.any():
            raise InvalidHuffmanTable(f"{name}: Huffman-coded chunks but no symbol has a code")

        # Byte_Offset and First_Symbol (R26)
        offsets = entries["offset"]
        firsts = entries["first"]
        if offsets[0] != 0 or (offsets[1:] < offsets[:-1]).any() or int(offsets[-1]) > total:
            raise CorruptStream(name, "chunk Byte_Offsets must start at 0, not decrease, and stay "
                                      f"within the {total} bytes of bit streams")
        if firsts[0] != 0 or (firsts[1:] <= firsts[:-1]).any() or int(firsts[-1]) >= count:
            raise CorruptStream(name, "chunk First_Symbols must start at 0, increase, and stay "
                                      f"below the symbol count {count}")
        if count > 8 * total:
            raise CorruptStream(name, f"{count} symbols cannot fit in {total} bytes")
        begins = offsets.astype(np.int64)
        ends = np.append(begins[1:], np.int64(total))
        starts = firsts.astype(np.int64)
        counts = np.append(np.diff(starts), np.int64(count) - starts[-1])
        sizes = ends - begins

        # Raw chunk sizes and trailing bits (R27); Huffman chunks need a bit per symbol
        raw_sizes = (counts * width + 7) // 8
        bad = np.flatnonzero(~is_huffman & (sizes != raw_sizes))
        if bad.size:
            c = int(bad[0])
            raise CorruptStream(name, f"raw chunk {c} is {int(sizes[c])} bytes, expected {int(raw_sizes[c])}")
        tail_bits = (counts * width) % 8
        has_tail = np.flatnonzero(~is_huffman & (tail_bits != 0))
        if has_tail.size:
            last = stream[ends[has_tail] - 1] >> tail_bits[has_tail].astype(np.uint8)
            if last.any():
                c = int(has_tail[np.flatnonzero(last)[0]])
                raise NonZeroPadding(f"{name} raw chunk {c} (trailing bits)")
        bad = np.flatnonzero(is_huffman & (counts > 8 * sizes))
        if bad.size:
            c = int(bad[0])
            raise CorruptStream(name, f"Huffman chunk {c} holds {int(counts[c])} symbols in {int(sizes[c])} bytes")

        # Decode (R28)
        result = prepare_output(out, count)
        if is_huffman.any():
            maxlen = int(lengths.max())
            table = np.zeros(1 << maxlen, dtype=np.uint32)
            hk.build_decode_table(lengths, reverse_codes(canonical_codes(lengths), lengths), maxlen, table)
        else:
            maxlen = 1
            table = np.zeros(2, dtype=np.uint32)
        status = np.zeros(n_chunks, dtype=np.uint8)
        _run_chunks(stream, table, maxlen, modes, begins, ends, starts, counts, width, result, status,
                    _thread_count(threads, count, int(is_huffman.sum())))
        bad = np.flatnonzero(status)
        if bad.size:
            c = int(bad[0])
            _raise_status(int(status[c]), name, c)

        # Start_Position (R29) and symbol range (R30)
        stored = entries["start"]
        if gap_stream:
            units = np.empty(n_chunks, dtype=np.int64)
            hk.chunk_unit_sums(result, starts, counts, units)
            expected = np.zeros(n_chunks, dtype=np.uint64)
            np.cumsum(units[:-1], out=expected[1:], dtype=np.uint64)
        else:
            expected = np.zeros(n_chunks, dtype=np.uint64)
        bad = np.flatnonzero(stored != expected)
        if bad.size:
            c = int(bad[0])
            raise CorruptStream(name, f"chunk {c} Start_Position is {int(stored[c])}, expected {int(expected[c])}")
        # Huffman symbols are below Table_Size <= alphabet_size; raw ones below 2**width
        if alphabet_size < 1 << width and (~is_huffman).any():
            check_symbol_range(result, alphabet_size, name, range_error)
        return out if out is not None else result


class _Reader:
    """Bounds-checked little-endian reads from the front of a payload."""

    def __init__(self, data: np.ndarray, name: str):
        self.data = data
        self.name = name
        self.pos = 0

    def take(self, size: int, field: str) -> np.ndarray:
        available = self.data.shape[0] - self.pos
        if size > available:
            raise TruncatedError(f"{self.name} {field}", size, available)
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def u32(self, field: str) -> int:
        return int.from_bytes(self.take(4, field).tobytes(), "little")


def _raise_status(status: int, name: str, chunk: int):
    if status == hk.STATUS_INVALID_CODE:
        raise CorruptStream(name, f"Huffman chunk {chunk} holds a bit pattern that no code starts with")
    if status == hk.STATUS_PAST_END:
        raise CorruptStream(name, f"Huffman chunk {chunk} reads past its last byte")
    if status == hk.STATUS_SIZE_MISMATCH:
        raise CorruptStream(name, f"Huffman chunk {chunk} is longer than its codes")
    raise NonZeroPadding(f"{name} Huffman chunk {chunk} (bits after the last code)")


def _thread_count(threads: int | None, count: int, huffman_chunks: int) -> int:
    if threads is None:
        threads = _cores() if count >= _PARALLEL_MIN_SYMBOLS else 1
    return max(1, min(threads, huffman_chunks))


def _run_chunks(stream, table, maxlen, modes, begins, ends, starts, counts, width, out, status, threads):
    """Decode the chunks, in ``threads`` contiguous groups of about equal symbol counts."""
    if threads == 1:
        hk.decode_chunks(stream, table, maxlen, modes, begins, ends, starts, counts, width, out, status)
        return
    cuts = np.searchsorted(starts, np.arange(1, threads) * (int(starts[-1] + counts[-1]) // threads))
    bounds = [0, *sorted(set(int(c) for c in cuts) - {0, modes.shape[0]}), modes.shape[0]]

    def run(lo: int, hi: int) -> None:
        hk.decode_chunks(stream, table, maxlen, modes[lo:hi], begins[lo:hi], ends[lo:hi],
                         starts[lo:hi], counts[lo:hi], width, out, status[lo:hi])

    futures = [_pool().submit(run, lo, hi) for lo, hi in zip(bounds[1:-1], bounds[2:])]
    run(bounds[0], bounds[1])
    for future in futures:
        future.result()
