"""Chunked canonical Huffman streams (spec/FORMAT.md, "Huffman streams").

One length-limited code per stream, built from the stream's symbol frequencies; the
stream is cut into chunks that are each Huffman-coded or stored raw, whichever is
smaller. The decoder validates every header field in Python (rules R23-R27), then runs
the table-driven kernels of :mod:`dcformat.kernels.huffman` over the chunks, which
report R28 failures as status codes; R29 and R30 are checked on the decoded symbols.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..format.constants import (
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
)
from ..kernels import huffman as hk
from .. import threads as _threads
from ..kernels import fused
from .base import SYMBOL_DTYPE, StreamCodec, register_codec
from .canonical import code_lengths, kraft_sum, pack_lengths, unpack_lengths
from .packed import (
    as_bytes,
    as_symbols,
    check_alphabet,
    check_count,
    check_range_error,
    check_symbol_range,
    prepare_output,
)

#: One chunk entry: Mode u8, Byte_Offset u64, First_Symbol u64, Start_Position u64, packed.
_ENTRY_DTYPE = np.dtype([("mode", "u1"), ("offset", "<u8"), ("first", "<u8"), ("start", "<u8")])
assert _ENTRY_DTYPE.itemsize == CHUNK_ENTRY_SIZE

#: Chunk modes as plain ints (IntEnum lookups cost microseconds on every decode).
_HUFFMAN = int(ChunkMode.HUFFMAN)
_RAW = int(ChunkMode.RAW)

#: Streams shorter than this decode on the calling thread alone unless told otherwise.
PARALLEL_MIN_SYMBOLS = 1 << 20

#: Streams of at least this many symbols decode through a multi-symbol table (up to three
#: symbols a lookup) where their codes allow: building its 2,048 entries costs about as
#: much as decoding this many symbols saves.
MULTI_MIN_SYMBOLS = 1 << 13
#: The multi-symbol table of streams that do without one.
_NO_MULTI = np.zeros(0, dtype=np.uint64)

#: Readers decode Huffman chunks four at a time through interleaved bit readers
#: (:func:`dcformat.kernels.huffman.decode_huffman_chunks`); a lone chunk decodes about
#: 2.5x slower. Writers therefore cut a stream into a multiple of four chunks by default.
INTERLEAVED_CHUNKS = 4
#: ...and a stream of at least that many times this many symbols into at least that many
#: chunks (below it, three more 25-byte chunk entries would cost more than 1 % of the stream).
MIN_INTERLEAVED_CHUNK = 1 << 14


def chunk_length(count: int, chunk_symbols: int, multiple: int = INTERLEAVED_CHUNKS) -> int:
    """Symbols per chunk (the last one may be shorter) for a stream of ``count > 0`` symbols.

    At most ``chunk_symbols`` (unless ``MAX_CHUNKS`` chunks would not hold the stream).
    With ``multiple > 1`` the chunks are nearly equal and their number is a multiple of
    ``multiple`` (and at least ``multiple`` once the stream has ``multiple *
    MIN_INTERLEAVED_CHUNK`` symbols), so that a reader's interleaved groups are full and
    end together; ``multiple=1`` gives chunks of exactly ``chunk_symbols``.
    """
    chunk = max(chunk_symbols, -(-count // MAX_CHUNKS))
    chunks = -(-count // chunk)
    if multiple == 1 or (chunks == 1 and count < multiple * MIN_INTERLEAVED_CHUNK):
        return chunk
    chunks = min(-(-chunks // multiple) * multiple, MAX_CHUNKS)
    return -(-count // chunks)


@register_codec
class HuffmanCodec(StreamCodec):
    """Canonical Huffman coding in independent chunks, with raw fallback per chunk.

    Parameters
    ----------
    chunk_symbols : int
        The most symbols a chunk holds. Chunks are equal but the last, and a multiple of
        ``chunk_multiple`` of them (see :func:`chunk_length`). Streams that would need
        more than ``MAX_CHUNKS`` chunks use ``ceil(count / MAX_CHUNKS)`` symbols per chunk.
    chunk_multiple : int
        Chunks come in multiples of this, 1 to 64 (default 4: the chunks a reader decodes
        at once). 1 cuts every chunk at exactly ``chunk_symbols``, as writers of 1.0 did.
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
                 max_code_length: int = PREFERRED_MAX_CODE_LENGTH, chunk_multiple: int = INTERLEAVED_CHUNKS):
        if isinstance(chunk_symbols, bool) or not isinstance(chunk_symbols, (int, np.integer)) or chunk_symbols < 1:
            raise InvalidSettings(f"chunk_symbols must be a positive int, got {chunk_symbols!r}")
        if (isinstance(max_code_length, bool) or not isinstance(max_code_length, (int, np.integer))
                or not 1 <= max_code_length <= MAX_CODE_LENGTH):
            raise InvalidSettings(f"max_code_length must be an int in [1, {MAX_CODE_LENGTH}], got {max_code_length!r}")
        if isinstance(chunk_multiple, bool) or not isinstance(chunk_multiple, (int, np.integer)) \
                or not 1 <= chunk_multiple <= 64:
            raise InvalidSettings(f"chunk_multiple must be an int in [1, 64], got {chunk_multiple!r}")
        self.chunk_symbols = int(chunk_symbols)
        self.max_code_length = int(max_code_length)
        self.chunk_multiple = int(chunk_multiple)

    def get_config(self) -> dict:
        return {"id": self.codec_id, "chunk_symbols": self.chunk_symbols,
                "max_code_length": self.max_code_length, "chunk_multiple": self.chunk_multiple}

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
        chunk = chunk_length(count, self.chunk_symbols, self.chunk_multiple)
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
        rev_codes = np.empty(lengths.shape[0], dtype=np.int64)
        hk.reversed_canonical_codes(lengths, rev_codes)

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
        chunks = parse_stream(buf, count, alphabet_size, name)
        return self._decode_parsed(chunks, count, alphabet_size, gap_stream=gap_stream, out=out, name=name,
                                   range_error=range_error, threads=threads)

    def _decode_parsed(self, chunks: "ChunkedStream", count: int, alphabet_size: int, *, gap_stream: bool,
                       out: np.ndarray | None, name: str, range_error: type, threads: int | None) -> np.ndarray:
        """:meth:`decode` of a stream whose header :func:`parse_stream` has checked."""
        range_error = check_range_error(range_error)
        threads = _threads.check_threads(threads)
        if count == 0:
            result = prepare_output(out, 0)
            return out if out is not None else result

        # Chunks in order, each checked completely (R27, R28). What can be seen without
        # decoding (a raw chunk's size and trailing bits, a Huffman chunk with fewer bits
        # than symbols) is found here; Huffman chunks before such a chunk are still
        # decoded first, since their errors come first.
        maxlen = chunks.maxlen
        table = chunks.value_table(_identity(chunks.lengths.shape[0] or 1))
        multi = chunks.multi_table(table, SYMBOL_DTYPE.itemsize, count)
        status = np.zeros(chunks.count, dtype=np.uint8)
        problem = chunks.first_seen_bad(name)
        if problem is not None:
            bad, error = problem
            if bad:  # these chunks hold at most 8 symbols per byte: a bounded scratch array
                scratch = np.empty(int(chunks.firsts[bad]), dtype=SYMBOL_DTYPE)
                hk.decode_chunks(chunks.bits, table, maxlen, multi, chunks.modes[:bad], chunks.begins[:bad],
                                 chunks.ends[:bad], chunks.firsts[:bad], chunks.counts[:bad], chunks.width,
                                 scratch, status[:bad])
                _raise_first_status(status, name)
            raise error
        # every chunk has at least a bit per symbol now, so count <= 8 * total
        result = prepare_output(out, count)

        def run(group: tuple[int, int]) -> None:
            lo, hi = group
            hk.decode_chunks(chunks.bits, table, maxlen, multi, chunks.modes[lo:hi], chunks.begins[lo:hi],
                             chunks.ends[lo:hi], chunks.firsts[lo:hi], chunks.counts[lo:hi], chunks.width,
                             result, status[lo:hi])

        _threads.run(run, chunks.split(count, threads), threads)
        _raise_first_status(status, name)

        # Start_Position (R29) and symbol range (R30)
        if gap_stream:
            units = np.empty(chunks.count, dtype=np.int64)
            hk.chunk_unit_sums(result, chunks.firsts, chunks.counts, units)
            expected = np.zeros(chunks.count, dtype=np.uint64)
            np.cumsum(units[:-1], out=expected[1:], dtype=np.uint64)
        else:
            expected = np.zeros(chunks.count, dtype=np.uint64)
        bad = np.flatnonzero(chunks.start_positions != expected)
        if bad.size:
            c = int(bad[0])
            raise CorruptStream(name, f"chunk {c} Start_Position is {int(chunks.start_positions[c])}, "
                                      f"expected {int(expected[c])}")
        # Huffman symbols are below Table_Size <= alphabet_size; raw ones below 2**width
        if alphabet_size < 1 << chunks.width and chunks.huffman_count < chunks.count:
            check_symbol_range(result, alphabet_size, name, range_error)
        return out if out is not None else result


    def decode_narrow(self, buf, count: int, alphabet_size: int, *, name: str = "stream",
                      threads: int | None = None) -> np.ndarray:
        chunks = parse_stream(buf, check_count(count), check_alphabet(alphabet_size), name)
        # every chunk raw at 8 bits (a plane the writer found incompressible): the chunks'
        # bytes, back to back, are the symbols once their sizes are proven (R27)
        if (alphabet_size == 256 and count and not chunks.huffman_count
                and not chunks.start_positions.any() and chunks.first_seen_bad(name) is None):
            return chunks.bits[:count]
        return self._decode_parsed(chunks, count, alphabet_size, gap_stream=False, out=None, name=name,
                                   range_error=SymbolOutOfRange, threads=threads)

    # --- fused reading: symbols straight to values -----------------------------------
    #
    # The kernels of :mod:`dcformat.kernels.fused` decode chunks through a value table (a
    # codebook's bits in place of each symbol) and, for gap streams, scatter each chunk
    # from its Start_Position; no symbol array is written. They check every index they
    # use and report per chunk; a stream they cannot finish cleanly (any status, a
    # Start_Position out of step) goes through the checked decoder above, which raises
    # the error FORMAT.md's order of checks names. On a corrupt payload ``out`` may then
    # hold partial values, never anything outside it.

    def decode_gather(self, buf, count: int, table: np.ndarray, *, out: np.ndarray | None = None,
                      name: str = "stream", range_error: type = SymbolOutOfRange,
                      threads: int | None = None) -> np.ndarray:
        alphabet = table.shape[0]
        if table.dtype.itemsize > 4:  # the fused table holds 32-bit values
            return super().decode_gather(buf, count, table, out=out, name=name, range_error=range_error,
                                         threads=threads)
        chunks = parse_stream(buf, check_count(count), check_alphabet(alphabet), name)
        if count == 0 or chunks.first_seen_bad(name) is not None or chunks.start_positions.any():
            return super().decode_gather(buf, count, table, out=out, name=name, range_error=range_error,
                                         threads=threads)
        lookup = chunks.value_table(table)
        result = np.empty(count, dtype=table.dtype) if out is None else out  # count <= 8 bits x payload now
        multi = chunks.multi_table(lookup, result.dtype.itemsize, count)  # its lanes are out's elements
        status = np.zeros(chunks.count, dtype=np.uint8)

        def part(group: tuple[int, int]) -> None:
            lo, hi = group
            scratch = np.empty(chunks.raw_symbols(lo, hi), dtype=SYMBOL_DTYPE)
            fused.decode_values(chunks.bits, lookup, chunks.maxlen, multi, chunks.modes[lo:hi], chunks.begins[lo:hi],
                                chunks.ends[lo:hi], chunks.firsts[lo:hi], chunks.counts[lo:hi], chunks.width,
                                table, result, status[lo:hi], scratch)

        _threads.run(part, chunks.split(count, threads), threads)
        if status.any():
            return super().decode_gather(buf, count, table, out=result, name=name, range_error=range_error,
                                         threads=threads)
        return result

    def decode_scatter(self, buf, count: int, alphabet_size: int, table: np.ndarray, indices: np.ndarray,
                       out: np.ndarray, *, name: str = "stream", tensor: str = "",
                       threads: int | None = None) -> None:
        checked = super().decode_scatter
        args = (buf, count, alphabet_size, table, indices, out)
        options = dict(name=name, tensor=tensor, threads=threads)
        if table.dtype.itemsize > 4:
            return checked(*args, **options)
        chunks = parse_stream(buf, check_count(count), check_alphabet(alphabet_size), name)
        units = out.shape[0]
        if count == 0 or chunks.first_seen_bad(name) is not None or int(chunks.start_positions.max()) > units:
            return checked(*args, **options)
        ident = _identity(alphabet_size)
        lookup = chunks.value_table(ident)
        multi = chunks.multi_table(lookup, SYMBOL_DTYPE.itemsize, count)
        status = np.zeros(chunks.count, dtype=np.uint8)
        covered = np.zeros(chunks.count, dtype=np.int64)
        starts = chunks.start_positions.astype(np.int64)

        def part(group: tuple[int, int]) -> None:
            lo, hi = group
            scratch = np.empty(5 * int(chunks.counts[lo:hi].max()), dtype=SYMBOL_DTYPE)
            fused.sparse_rebuild(chunks.bits, lookup, chunks.maxlen, multi, chunks.modes[lo:hi], chunks.begins[lo:hi],
                                 chunks.ends[lo:hi], chunks.firsts[lo:hi], chunks.counts[lo:hi], chunks.width,
                                 ident, starts[lo:hi], indices, table, out, status[lo:hi], covered[lo:hi], scratch)

        _threads.run(part, chunks.split(units, threads), threads)
        expected = np.zeros(chunks.count, dtype=np.int64)
        np.cumsum(covered[:-1], out=expected[1:])
        if status.any() or (expected != starts).any():
            return checked(*args, **options)
        return None


_IDENTITY: dict[int, np.ndarray] = {}


def _identity(alphabet: int) -> np.ndarray:
    """0, 1, ..., alphabet - 1 as symbols: the value table of a gap stream."""
    ident = _IDENTITY.get(alphabet)
    if ident is None:
        ident = _IDENTITY[alphabet] = np.arange(alphabet, dtype=SYMBOL_DTYPE)
    return ident


@dataclass(eq=False)
class ChunkedStream:
    """A Huffman stream whose header and chunk entries passed rules R23-R26.

    Nothing is decoded yet. ``bits`` holds the chunks' bit streams; per chunk:
    ``modes`` (Huffman or raw), ``begins``/``ends`` (its bytes in ``bits``), ``firsts``
    (First_Symbol), ``counts`` (its symbols) and ``start_positions`` (Start_Position as
    stored, checked against the decoded gaps by the caller: R29). The plain decoder and
    the fused ones (:meth:`HuffmanCodec.decode_gather`, :meth:`HuffmanCodec.decode_scatter`) both start here.
    """

    bits: np.ndarray
    lengths: np.ndarray
    width: int
    modes: np.ndarray
    begins: np.ndarray
    ends: np.ndarray
    firsts: np.ndarray
    counts: np.ndarray
    start_positions: np.ndarray

    @property
    def count(self) -> int:
        """Number of chunks."""
        return int(self.modes.shape[0])

    @property
    def is_huffman(self) -> np.ndarray:
        return self.modes == _HUFFMAN

    @cached_property  # the arrays are not changed once parsed; each decode asks several times
    def huffman_count(self) -> int:
        return int(np.count_nonzero(self.is_huffman))

    @cached_property
    def maxlen(self) -> int:
        """Bits the decode table is indexed by (1 when no chunk is Huffman-coded)."""
        return int(self.lengths.max()) if self.huffman_count else 1

    def value_table(self, values: np.ndarray) -> np.ndarray:
        """The decode table of this stream's code with ``values[symbol]`` as each entry's value."""
        table = np.zeros(1 << self.maxlen, dtype=np.uint64)
        if self.huffman_count:
            hk.build_decode_table(self.lengths, values, self.maxlen, table)
        return table

    def multi_table(self, table: np.ndarray, itemsize: int, symbols: int) -> np.ndarray:
        """The multi-symbol table of the decode table ``table`` for values of ``itemsize``
        bytes, or an empty one where it does not apply (no code longer than
        ``hk.MULTI_BITS``, 2- or 4-byte values) or would not pay (fewer than
        ``MULTI_MIN_SYMBOLS`` symbols); the decoders give the same results either way."""
        if symbols < MULTI_MIN_SYMBOLS or not self.huffman_count:
            return _NO_MULTI
        maxlen = self.maxlen
        size = hk.multi_table_size(maxlen, itemsize)
        if not size:
            return _NO_MULTI
        multi = np.empty(size, dtype=np.uint64)
        hk.build_multi_table(table, maxlen, multi)
        return multi

    def raw_symbols(self, lo: int, hi: int) -> int:
        """The most symbols one raw chunk among chunks ``lo:hi`` holds (0 if none is raw)."""
        raw = self.modes[lo:hi] == _RAW
        return int(self.counts[lo:hi][raw].max()) if raw.any() else 0

    def first_seen_bad(self, name: str):
        """(chunk, error) for the first chunk found bad without decoding, or None.

        A raw chunk's size and trailing bits (R27); a Huffman chunk with fewer bits than
        symbols, which must read past its end (R28).
        """
        c, reason = hk.first_seen_bad(self.bits, self.modes, self.begins, self.ends, self.counts, self.width)
        if not reason:
            return None
        size = int(self.ends[c] - self.begins[c])
        if reason == hk.CHUNK_RAW_SIZE:
            expected = (int(self.counts[c]) * self.width + 7) // 8
            return c, CorruptStream(name, f"raw chunk {c} is {size} bytes, expected {expected}")
        if reason == hk.CHUNK_RAW_PADDING:
            return c, NonZeroPadding(f"{name} raw chunk {c} (trailing bits)")
        return c, CorruptStream(name, f"Huffman chunk {c} holds {int(self.counts[c])} symbols in {size} bytes")

    def split(self, symbols: int, threads: int | None) -> list[tuple[int, int]]:
        """Chunk groups for decoding ``symbols`` on ``threads`` threads (the one policy of
        :mod:`dcformat.threads`; small streams stay on one thread unless told otherwise),
        each group at least one interleaved group of four chunks."""
        threads = _threads.threads_for(symbols, threads, PARALLEL_MIN_SYMBOLS)
        return self.groups(max(1, min(threads, -(-self.count // INTERLEAVED_CHUNKS))))

    def groups(self, parts: int) -> list[tuple[int, int]]:
        """Contiguous chunk ranges of about equal symbol counts, at most ``parts`` of them.

        Cuts fall on multiples of four chunks, so the kernels' four interleaved chunk
        streams stay together.
        """
        n = self.count
        if parts <= 1 or n <= 4:
            return [(0, n)]
        total = int(self.firsts[-1] + self.counts[-1])
        cuts = np.searchsorted(self.firsts, np.arange(1, parts) * (total // parts))
        inner = sorted({int(c) // 4 * 4 for c in cuts} - {0, n})
        bounds = [0, *inner, n]
        return list(zip(bounds[:-1], bounds[1:]))


def parse_stream(buf, count: int, alphabet_size: int, name: str = "stream") -> ChunkedStream:
    """Check a stream's Table_Size, Code_Lengths, Chunk_Count and chunk entries (R23-R26).

    An empty stream (``count == 0``) must have no chunks and no bytes after its table.
    """
    data = as_bytes(buf)
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
    bits = data[reader.pos:]
    total = bits.shape[0]
    if count == 0 and total:
        raise CorruptStream(name, f"{total} bytes after the chunk entries of an empty stream")

    # Chunk entries one at a time: Mode, Byte_Offset, First_Symbol (R14, R24, R26)
    modes, offsets, firsts = entries["mode"], entries["offset"], entries["first"]
    c, reason = hk.check_entries(modes, offsets, firsts, np.uint64(count), np.uint64(total), bool(lengths.any()))
    if reason:
        raise _entry_error(reason, c, int(modes[c]), int(offsets[c]), int(firsts[c]), count, total, name)
    begins = offsets.astype(np.int64)
    firsts = firsts.astype(np.int64)
    starts = entries["start"]
    ends = np.empty(n_chunks, dtype=np.int64)
    counts = np.empty(n_chunks, dtype=np.int64)
    if n_chunks:
        ends[:-1], ends[-1] = begins[1:], total
        counts[:-1], counts[-1] = firsts[1:] - firsts[:-1], count - firsts[-1]
    return ChunkedStream(bits=bits, lengths=lengths, width=symbol_width(alphabet_size), modes=modes,
                         begins=begins, ends=ends, firsts=firsts, counts=counts, start_positions=starts)


def _entry_error(reason: int, c: int, mode: int, offset: int, first: int, count: int, total: int, name: str):
    if reason == hk.ENTRY_UNKNOWN_MODE:
        return UnknownEncoding(f"chunk {c} Mode of {name}", mode)
    if reason == hk.ENTRY_HUFFMAN_WITHOUT_CODES:
        return InvalidHuffmanTable(f"{name}: chunk {c} is Huffman-coded but no symbol has a code")
    if reason == hk.ENTRY_BAD_OFFSET:
        return CorruptStream(name, f"chunk {c} Byte_Offset {offset}: the first must be 0, they "
                                   f"must not decrease nor pass the {total} bytes of bit streams")
    return CorruptStream(name, f"chunk {c} First_Symbol {first}: the first must be 0, they "
                               f"must increase and stay below the symbol count {count}")


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


def _raise_first_status(status: np.ndarray, name: str) -> None:
    """Raise for the first chunk whose kernel status is not STATUS_OK."""
    bad = np.flatnonzero(status)
    if not bad.size:
        return
    c = int(bad[0])
    code = int(status[c])
    if code == hk.STATUS_INVALID_CODE:
        raise CorruptStream(name, f"Huffman chunk {c} holds a bit pattern that no code starts with")
    if code == hk.STATUS_PAST_END:
        raise CorruptStream(name, f"Huffman chunk {c} reads past its last byte")
    if code == hk.STATUS_SIZE_MISMATCH:
        raise CorruptStream(name, f"Huffman chunk {c} is longer than its codes")
    raise NonZeroPadding(f"{name} Huffman chunk {c} (bits after the last code)")
