"""Decode one record's segments into an array (spec/FORMAT.md, "Decoding a record").

The record's fields were checked by the container reader; this module checks what only
the payload can tell (stream contents, symbol ranges, sparse positions, BOOL bytes)
before any kernel uses an index.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..format.constants import DType, Layout, SegmentCodec, ValueKind
from ..format.records import Record
from ..format.dtypes import numpy_dtype, storage_view
from ..errors import CodeOutOfRange, DCFormatError, GapOverrun, InvalidValue, SelectorOutOfRange, UsageError
from ..kernels import fused, placement
from ..kernels.huffman import build_decode_table
from ..streams import codec_for_wire_id
from ..streams import huffman as _hs
from ..threads import default_threads

SegmentGetter = Callable[[str], memoryview]


def decode_record(record: Record, segment: SegmentGetter, bank: np.ndarray | None = None,
                  out: np.ndarray | None = None, *, out_zeroed: bool = False,
                  threads: int | None = None) -> np.ndarray:
    """The tensor a record describes, written into ``out`` when given.

    ``segment(role)`` returns the bytes of the record's segment with that role; ``bank``
    is the decoded bank for BANK-valued records. ``out_zeroed`` promises that ``out`` holds
    zeros, so a sparse record need not clear it first. ``threads`` caps the threads a big
    record's chunks are split over (default: :func:`dcformat.threads.default_threads`).
    """
    dtype = numpy_dtype(record.dtype)
    _check_output(record, dtype, out)
    if _fast_eligible(record, dtype):
        fast = _decode_fast(record, segment, dtype, out, out_zeroed, threads)
        if fast is not None:
            return fast
        out_zeroed = False  # the fast path may have written part of out before giving up
    # Segment order (FORMAT.md, "Order of checks"): codebook, gaps, then the values. The
    # streams are decoded before the output is allocated: each stream codec bounds its
    # symbol count by its payload first, so a dense record's N is proven by then.
    codebook = _codebook(record, segment, dtype) if record.value_kind == ValueKind.CODEBOOK else None
    positions = _sparse_positions(record, segment) if record.layout == Layout.SPARSE else None
    values = _stored_values(record, segment, dtype, codebook, bank)
    if out is None:
        out = np.empty(record.shape, dtype=dtype)
    flat = storage_view(out.reshape(-1)).reshape(record.units, record.unit_size)
    if positions is None:
        _place_dense(values, flat)
    else:
        if not out_zeroed:
            flat.reshape(-1)[:] = 0
        _place_sparse(values, positions, flat)
    return out


def _check_output(record: Record, dtype: np.dtype, out: np.ndarray | None) -> None:
    if out is not None and (out.shape != record.shape or out.dtype != dtype or not out.flags.c_contiguous
                            or not out.flags.writeable):
        raise UsageError(f"out for {record.name!r} must be a writeable C-contiguous {dtype} array of "
                         f"shape {record.shape}, got {out.dtype} {out.shape}")


class _Gathered:
    """Stored values given as indices into a table of rows (codebook or bank)."""

    def __init__(self, table: np.ndarray, indices: np.ndarray):
        self.table, self.indices = table, indices


def _codebook(record: Record, segment: SegmentGetter, dtype: np.dtype) -> np.ndarray:
    codebook = np.frombuffer(segment("codebook"), dtype=dtype, count=record.codebook_size)
    _check_bool(record, codebook)
    return codebook


def _stored_values(record: Record, segment: SegmentGetter, dtype: np.dtype, codebook, bank):
    """The S stored values: an array of rows, or a table plus indices into it."""
    count = record.stored_count
    if record.value_kind == ValueKind.RAW:
        raw = np.frombuffer(segment("values"), dtype=dtype, count=count)
        _check_bool(record, raw)
        return storage_view(raw).reshape(count, 1)
    if record.value_kind == ValueKind.CODEBOOK:
        codes = _decode_stream(record, segment, "codes", count, record.codebook_size, CodeOutOfRange)
        return _Gathered(storage_view(codebook).reshape(-1, 1), codes)
    table = storage_view(bank.reshape(-1)).reshape(bank.shape[0], record.unit_size)
    selectors = _decode_stream(record, segment, "selectors", count, bank.shape[0], SelectorOutOfRange)
    return _Gathered(table, selectors)


def _decode_stream(record: Record, segment: SegmentGetter, role: str, count: int, alphabet: int,
                   range_error=None, gap_stream: bool = False) -> np.ndarray:
    codec = codec_for_wire_id(record.segments[role].codec)()
    kwargs = {"range_error": range_error} if range_error is not None else {}
    return codec.decode(segment(role), count, alphabet, gap_stream=gap_stream,
                        name=f"{role} of {record.name!r}", **kwargs)


def _check_bool(record: Record, raw: np.ndarray) -> None:
    if record.dtype == DType.BOOL and raw.size and raw.view(np.uint8).max() > 1:
        raise InvalidValue(record.name, "BOOL bytes must be 0 or 1")


def _sparse_positions(record: Record, segment: SegmentGetter) -> np.ndarray:
    gaps = _decode_stream(record, segment, "gaps", record.entry_count, 1 << record.gap_bits, gap_stream=True)
    positions = np.empty(gaps.shape[0], dtype=np.int64)
    covered = placement.gap_positions(gaps, positions)
    if covered > record.units:
        raise GapOverrun(record.name, int(covered) - 1, record.units)
    return positions


def _place_dense(values, flat: np.ndarray) -> None:
    if isinstance(values, _Gathered):
        if flat.shape[1] == 1:
            placement.gather(values.table[:, 0], values.indices, flat[:, 0])
        else:
            placement.gather_rows(values.table, values.indices, flat)
    else:
        flat[...] = values


def _place_sparse(values, positions: np.ndarray, flat: np.ndarray) -> None:
    if isinstance(values, _Gathered):
        if flat.shape[1] == 1:
            placement.scatter_gather(values.table[:, 0], values.indices, positions, flat[:, 0])
        else:
            placement.scatter_gather_rows(values.table, values.indices, positions, flat)
    elif flat.shape[1] == 1:
        placement.scatter(values[:, 0], positions, flat[:, 0])
    else:
        placement.scatter_rows(values, positions, flat)


# --- fast paths -------------------------------------------------------------------------
#
# A CODEBOOK record whose codes (and, when sparse, gaps) are Huffman streams decodes
# without intermediate symbol arrays: codes go straight to codebook values, and a sparse
# record's gap chunks are decoded and scattered one chunk group at a time from each
# chunk's Start_Position, chunk groups split across threads. The stream headers are
# checked by the same helpers, in the same order, as HuffmanCodec.decode; the kernels
# check every index they write. Anything unexpected - a raised error, a chunk status, a
# Start_Position or range failure - abandons the fast path (returns None) and the record
# is decoded again by the checked path above, which raises the error FORMAT.md's order of
# checks names. On a corrupt file ``out`` may then hold partial values (never anything
# outside it).

#: Records with fewer output units than this decode on the calling thread alone.
PARALLEL_MIN_UNITS = 1 << 20

_IDENTITY: dict[int, np.ndarray] = {}


def _fast_eligible(record: Record, dtype: np.dtype) -> bool:
    if record.value_kind != ValueKind.CODEBOOK or record.unit_size != 1 or dtype.itemsize > 4:
        return False
    roles = ("codes", "gaps") if record.layout == Layout.SPARSE else ("codes",)
    return all(record.segments[r].codec == SegmentCodec.HUFFMAN for r in roles)


def _decode_fast(record: Record, segment: SegmentGetter, dtype: np.dtype, out, out_zeroed: bool, threads):
    try:
        codebook = _codebook(record, segment, dtype)
        values = storage_view(codebook)
        threads = _threads(record.units, threads)
        if record.layout == Layout.SPARSE:
            return _fast_sparse(record, segment, dtype, values, out, out_zeroed, threads)
        return _fast_dense(record, segment, dtype, values, out, threads)
    except DCFormatError:
        return None


def _plan(buf, count: int, alphabet: int, values: np.ndarray, name: str):
    """A stream checked up to its chunk decoding, with its value table; None when empty.

    Anything the plain decoder would refuse raises here too (a DCFormatError sends the
    record down the checked path, which raises in the specified order).
    """
    chunks = _hs.parse_stream(buf, count, alphabet, name)
    if count == 0 or chunks.first_seen_bad(name) is not None:
        return None
    table = np.zeros(1 << chunks.maxlen, dtype=np.uint64)
    if chunks.huffman_count:
        build_decode_table(chunks.lengths, values, chunks.maxlen, table)
    return chunks, table


def _threads(units: int, threads: int | None) -> int:
    if units < PARALLEL_MIN_UNITS:
        return 1
    return default_threads() if threads is None else threads


def _groups(chunks, threads: int) -> list[tuple[int, int]]:
    """Chunk groups for ``threads`` threads, each at least one interleaved group of four."""
    return chunks.groups(max(1, min(threads, chunks.count // 4 or 1)))


def _fast_dense(record: Record, segment: SegmentGetter, dtype: np.dtype, values: np.ndarray, out, threads: int):
    name = f"codes of {record.name!r}"
    planned = _plan(segment("codes"), record.stored_count, record.codebook_size, values, name)
    if planned is None or planned[0].start_positions.any():  # Start_Position is 0 outside gap streams
        return None
    c, table = planned
    if out is None:
        out = np.empty(record.shape, dtype=dtype)
    flat = storage_view(out.reshape(-1))
    status = np.zeros(c.count, dtype=np.uint8)

    def part(lo: int, hi: int) -> None:
        scratch = np.empty(c.raw_symbols(lo, hi), dtype=np.uint16)
        fused.decode_values(c.bits, table, c.maxlen, c.modes[lo:hi], c.begins[lo:hi], c.ends[lo:hi],
                            c.firsts[lo:hi], c.counts[lo:hi], c.width, values, flat, status[lo:hi], scratch)

    _hs.run_groups(_groups(c, threads), part, threads)
    return out if not status.any() else None


def _identity(alphabet: int) -> np.ndarray:
    ident = _IDENTITY.get(alphabet)
    if ident is None:
        ident = _IDENTITY[alphabet] = np.arange(alphabet, dtype=np.uint16)
    return ident


def _fast_sparse(record: Record, segment: SegmentGetter, dtype: np.dtype, values: np.ndarray, out,
                 out_zeroed: bool, threads: int):
    alphabet = 1 << record.gap_bits
    ident = _identity(alphabet)
    planned = _plan(segment("gaps"), record.entry_count, alphabet, ident, f"gaps of {record.name!r}")
    if planned is None or int(planned[0].start_positions.max()) > record.units:
        return None
    c, table = planned
    codes = _decode_stream(record, segment, "codes", record.stored_count, record.codebook_size, CodeOutOfRange)
    if out is None:
        out = np.zeros(record.shape, dtype=dtype)  # calloc: pages come zeroed
    elif not out_zeroed:
        out.reshape(-1).view(np.uint8)[:] = 0
    flat = storage_view(out.reshape(-1))
    n = c.count
    status = np.zeros(n, dtype=np.uint8)
    covered = np.zeros(n, dtype=np.int64)
    starts = c.start_positions.astype(np.int64)

    def part(lo: int, hi: int) -> None:
        longest = int(c.counts[lo:hi].max())
        scratch = np.empty(5 * longest, dtype=np.uint16)
        fused.sparse_rebuild(c.bits, table, c.maxlen, c.modes[lo:hi], c.begins[lo:hi], c.ends[lo:hi],
                             c.firsts[lo:hi], c.counts[lo:hi], c.width, ident, starts[lo:hi], codes, values,
                             flat, status[lo:hi], covered[lo:hi], scratch)

    _hs.run_groups(_groups(c, threads), part, threads)
    if status.any():
        return None
    expected = np.zeros(n, dtype=np.int64)
    np.cumsum(covered[:-1], out=expected[1:])
    if (expected != starts).any():
        return None
    return out
