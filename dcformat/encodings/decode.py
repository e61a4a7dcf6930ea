"""Decode one record's segments into an array (spec/FORMAT.md, "Decoding a record").

The record's fields were checked by the container reader; this module checks what only
the payload can tell (stream contents, symbol ranges, sparse positions, BOOL bytes)
before any kernel uses an index. Each stream is decoded by its codec, straight to what
the record needs: codes through the codebook into the output (``decode_gather``), gap
streams scattering their values (``decode_scatter``). There is one path per record; how
fast a stream decodes is its codec's business.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import CodeOutOfRange, FormatError, InvalidValue, SelectorOutOfRange, UsageError
from .. import threads as _threads
from ..format.affine import affine_entries, round_to, unpack_affine
from ..format.constants import FLOAT_LAYOUT, DType, Layout, SegmentCodec, ValueKind, plane_widths
from ..format.dtypes import numpy_dtype, storage_dtype, storage_view
from ..format.records import Record, plane_names
from ..kernels import placement
from ..kernels import planes as plane_kernels
from ..streams import codec_for_wire_id
from ..streams.base import gap_positions

SegmentGetter = Callable[[str], memoryview]


def decode_record(record: Record, segment: SegmentGetter, bank: np.ndarray | None = None,
                  out: np.ndarray | None = None, *, out_zeroed: bool = False,
                  threads: int | None = None, bits: bool = False, share: bool = False) -> np.ndarray:
    """The tensor a record describes, written into ``out`` when given.

    ``bits``: as the unsigned integers of its width (:func:`~dcformat.format.dtypes.storage_dtype`,
    which ``out`` must then have) instead of its numpy dtype: every path below works on
    those bits anyway, and so needs no ml_dtypes for BF16 or float8.

    ``segment(role)`` returns the bytes of the record's segment with that role; ``bank``
    is the decoded bank for BANK-valued records. ``out_zeroed`` promises that ``out`` holds
    zeros, so a sparse record need not clear it first. ``threads`` caps the threads the
    record decodes on (:mod:`dcformat.threads`). ``share``: a DENSE RAW record decoded
    without ``out`` is a view of its segment, not a copy (the caller's segments may be
    kept and written: :attr:`~dcformat.container.source.ByteSource.shares`).

    Segments are checked in FORMAT.md's order ("Order of checks"): codebook, gaps, then
    the values. Streams are validated before the output is allocated: each stream codec
    bounds its symbol count by its payload first, so a dense record's N is proven by then.
    """
    dtype = storage_dtype(record.dtype) if bits else numpy_dtype(record.dtype)
    _check_output(record, dtype, out)
    if record.value_kind == ValueKind.GROUPED:
        return _decode_grouped(record, segment, dtype, out, out_zeroed, threads)
    if record.value_kind == ValueKind.PLANES:
        return _decode_planes(record, segment, dtype, out, out_zeroed, threads)
    table = None
    if record.value_kind == ValueKind.CODEBOOK:
        table = storage_view(_codebook(record, segment, dtype)).reshape(-1, 1)
    elif record.value_kind == ValueKind.BANK:
        table = storage_view(bank.reshape(-1)).reshape(bank.shape[0], record.unit_size)
    if record.layout == Layout.SPARSE:
        return _decode_sparse(record, segment, dtype, table, out, out_zeroed, threads)
    return _decode_dense(record, segment, dtype, table, out, threads, share)


def _check_output(record: Record, dtype: np.dtype, out: np.ndarray | None) -> None:
    if out is not None and (out.shape != record.shape or out.dtype != dtype or not out.flags.c_contiguous
                            or not out.flags.writeable):
        raise UsageError(f"out for {record.name!r} must be a writeable C-contiguous {dtype} array of "
                         f"shape {record.shape}, got {out.dtype} {out.shape}")


def _codebook(record: Record, segment: SegmentGetter, dtype: np.dtype) -> np.ndarray:
    if record.segments["codebook"].codec == SegmentCodec.AFFINE:
        return round_to(_affine_entries(record, segment), record.dtype).view(dtype)
    codebook = np.frombuffer(segment("codebook"), dtype=dtype, count=record.codebook_size)
    _check_bool(record, codebook)
    return codebook


def _affine_entries(record: Record, segment: SegmentGetter) -> np.ndarray:
    """An AFFINE codebook's float32 entries, its Base and Step proven finite (R45)."""
    base, step = unpack_affine(segment("codebook"))
    if not (np.isfinite(base) and np.isfinite(step)):
        raise InvalidValue(record.name, "AFFINE codebook Base and Step must be finite")
    return affine_entries(base, step, record.codebook_size)


def _check_bool(record: Record, raw: np.ndarray) -> None:
    if record.dtype == DType.BOOL and raw.size and raw.view(np.uint8).max() > 1:
        raise InvalidValue(record.name, "BOOL bytes must be 0 or 1")


def _raw(record: Record, segment: SegmentGetter, dtype: np.dtype) -> np.ndarray:
    """The S stored values of a RAW record, a view of its segment."""
    raw = np.frombuffer(segment("values"), dtype=dtype, count=record.stored_count)
    _check_bool(record, raw)
    return raw


def _units(record: Record, raw: np.ndarray) -> np.ndarray:
    """A RAW record's S stored values as rows of storage integers, a unit per row."""
    return storage_view(raw).reshape(record.stored_count, 1)


def _raw_values(record: Record, segment: SegmentGetter, dtype: np.dtype) -> np.ndarray:
    """The S stored units of a RAW record, as rows of storage integers."""
    return _units(record, _raw(record, segment, dtype))


def _index_role(record: Record) -> tuple[str, type]:
    """The segment holding a CODEBOOK or BANK record's indices, and its range error."""
    if record.value_kind == ValueKind.CODEBOOK:
        return "codes", CodeOutOfRange
    return "selectors", SelectorOutOfRange


def _codec(record: Record, role: str):
    return codec_for_wire_id(record.segments[role].codec)()


def _stream_name(record: Record, role: str) -> str:
    return f"{role} of {record.name!r}"


def _indices(record: Record, segment: SegmentGetter, table: np.ndarray, threads) -> np.ndarray:
    """A CODEBOOK or BANK record's S indices, each proven below the table's rows."""
    role, range_error = _index_role(record)
    return _codec(record, role).decode(segment(role), record.stored_count, table.shape[0],
                                       name=_stream_name(record, role), range_error=range_error, threads=threads)


def _flat(out: np.ndarray, record: Record) -> np.ndarray:
    """``out`` as rows of storage integers, a unit per row."""
    return storage_view(out.reshape(-1)).reshape(record.units, record.unit_size)


def _decode_dense(record: Record, segment: SegmentGetter, dtype: np.dtype, table, out, threads,
                  share: bool = False) -> np.ndarray:
    if table is None:
        raw = _raw(record, segment, dtype)
        if out is None and share:
            return raw.reshape(record.shape)
        if out is not None and raw.ctypes.data == out.ctypes.data:
            return out  # the source read the segment straight into out
        out = np.empty(record.shape, dtype=dtype) if out is None else out
        _flat(out, record)[...] = _units(record, raw)
        return out
    if record.unit_size == 1:
        role, range_error = _index_role(record)
        flat = None if out is None else _flat(out, record)[:, 0]
        decoded = _codec(record, role).decode_gather(segment(role), record.stored_count, table[:, 0], out=flat,
                                                     name=_stream_name(record, role), range_error=range_error,
                                                     threads=threads)
        return out if out is not None else decoded.view(dtype).reshape(record.shape)
    indices = _indices(record, segment, table, threads)
    out = np.empty(record.shape, dtype=dtype) if out is None else out
    placement.gather_rows(table, indices, _flat(out, record))
    return out


def _decode_sparse(record: Record, segment: SegmentGetter, dtype: np.dtype, table, out, out_zeroed: bool,
                   threads) -> np.ndarray:
    gap_codec = _codec(record, "gaps")
    gap_args = (segment("gaps"), record.entry_count, 1 << record.gap_bits)
    gap_name = _stream_name(record, "gaps")
    if table is None or record.unit_size > 1:
        gaps = gap_codec.decode(*gap_args, gap_stream=True, name=gap_name, threads=threads)
        positions = gap_positions(gaps, record.units, record.name)
        values = _raw_values(record, segment, dtype) if table is None else None
        indices = None if table is None else _indices(record, segment, table, threads)
        out = _zeroed(record, dtype, out, out_zeroed)
        flat = _flat(out, record)
        if values is not None and flat.shape[1] == 1:
            placement.scatter(values[:, 0], positions, flat[:, 0])
        elif values is not None:
            placement.scatter_rows(values, positions, flat)
        else:
            placement.scatter_gather_rows(table, indices, positions, flat)
        return out
    # the gap stream places the values as it decodes, so the codes come first; an error
    # in them is raised only once the gaps, which come first in the order of checks, pass
    try:
        indices = _indices(record, segment, table, threads)
    except FormatError:
        gap_positions(gap_codec.decode(*gap_args, gap_stream=True, name=gap_name, threads=threads),
                      record.units, record.name)
        raise
    out = _zeroed(record, dtype, out, out_zeroed)
    gap_codec.decode_scatter(*gap_args, table[:, 0], indices, _flat(out, record)[:, 0], name=gap_name,
                             tensor=record.name, threads=threads)
    return out


def _zeroed(record: Record, dtype: np.dtype, out, out_zeroed: bool) -> np.ndarray:
    """The output of a sparse record, all zeros (fresh pages come zeroed)."""
    if out is None:
        return np.zeros(record.shape, dtype=dtype)
    if not out_zeroed:
        out.reshape(-1).view(np.uint8)[:] = 0
    return out


# --- PLANES values (v1.2) -------------------------------------------------------------


#: Blocks of a PLANES record are decoded on every core once the record holds this many
#: units; a smaller one decodes on the calling thread.
PLANES_PARALLEL_MIN = 1 << 20


@dataclass(frozen=True)
class _PlaneLayout:
    """What decoding a dtype's planes needs, made once per dtype."""

    total: int
    mantissa_bits: int
    #: exponent symbol -> its bits in place, in the element's storage integers: the value
    #: table the exponent plane decodes through, straight into the output
    exponents: np.ndarray
    #: (plane name, alphabet, the plane's lowest bit in the sign-and-mantissa field t)
    mantissas: tuple


@functools.lru_cache(maxsize=None)
def _plane_layout(dtype: DType) -> _PlaneLayout:
    total, exponent_bits, mantissa_bits = FLOAT_LAYOUT[dtype]
    widths = plane_widths(dtype)
    storage = np.dtype(f"<u{total // 8}")
    exponents = (np.arange(1 << exponent_bits, dtype=np.uint64) << np.uint64(mantissa_bits)).astype(storage)
    exponents.flags.writeable = False
    below = np.cumsum(widths[:0:-1])[::-1] - np.array(widths[1:])  # bits below each mantissa plane
    mantissas = tuple((name, 1 << w, int(shift)) for name, w, shift in zip(plane_names(dtype)[1:], widths[1:], below))
    return _PlaneLayout(total, mantissa_bits, exponents, mantissas)


def _decode_planes(record: Record, segment: SegmentGetter, dtype: np.dtype, out, out_zeroed: bool,
                   threads) -> np.ndarray:
    """A PLANES record: each block's planes decoded and joined into its stored values, in
    place for DENSE, then placed by the gaps for SPARSE (which come first in the order of
    checks, as for RAW values)."""
    stored = record.stored_count
    positions = None
    if record.layout == Layout.SPARSE:
        gaps = _codec(record, "gaps").decode(segment("gaps"), record.entry_count, 1 << record.gap_bits,
                                              gap_stream=True, name=_stream_name(record, "gaps"), threads=threads)
        positions = gap_positions(gaps, record.units, record.name)
    layout = _plane_layout(record.dtype)
    block = record.block_size
    # Streams are checked before anything of the size S is allocated: each codec bounds its
    # count by its payload (a bit a symbol), so every block's planes prove S in turn.
    if positions is None:
        out = np.empty(record.shape, dtype) if out is None else out
        values = storage_view(out.reshape(-1))
    else:
        values = np.empty(stored, dtype=layout.exponents.dtype)
    blocks = record.blocks
    inner = 1 if blocks > 1 else threads

    def run(b: int) -> None:
        start = b * block
        count = min(block, stored - start)
        part = values[start:start + count]
        role = f"exponent[{b}]"
        _codec(record, role).decode_gather(segment(role), count, layout.exponents, out=part,
                                           name=_stream_name(record, role), threads=inner)
        for plane, alphabet, shift in layout.mantissas:
            role = f"{plane}[{b}]"
            symbols = _codec(record, role).decode_narrow(segment(role), count, alphabet,
                                                         name=_stream_name(record, role), threads=inner)
            plane_kernels.merge(part, symbols, shift, layout.mantissa_bits, layout.total)

    parallel = _threads.threads_for(stored, threads, PLANES_PARALLEL_MIN)
    if blocks > 1 and parallel > 1:
        _threads.run(run, range(blocks), parallel)
    else:
        for b in range(blocks):
            run(b)
    if positions is None:
        return out
    out = _zeroed(record, dtype, out, out_zeroed)
    placement.scatter(values, positions, storage_view(out.reshape(-1)))
    return out


# --- GROUPED values (v1.1) ------------------------------------------------------------


def _decode_grouped(record: Record, segment: SegmentGetter, dtype: np.dtype, out, out_zeroed: bool,
                    threads) -> np.ndarray:
    """A GROUPED record: its codebook's values placed as a CODEBOOK record's would be, in
    float32, then each group's scaled (and shifted), then rounded to the dtype.

    Tables and per-group codes are checked first, in FORMAT.md's order (codebook, scales,
    scale codes, offsets, offset codes), then the gaps and codes as for CODEBOOK values.
    """
    codebook = _finite_table(record, segment, "codebook", record.codebook_size)
    scales = _finite_table(record, segment, "scales", record.scale_count)
    if scales.size and not (scales > 0).all():
        raise InvalidValue(record.name, "GROUPED scales must be positive")
    group_scale = scales[_group_codes(record, segment, "scale_codes", record.scale_count, threads)]
    group_offset = None
    if record.offset_count:
        offsets = _finite_table(record, segment, "offsets", record.offset_count)
        group_offset = offsets[_group_codes(record, segment, "offset_codes", record.offset_count, threads)]
    as_f32 = record.dtype == DType.F32
    # the codebook's values, placed: what a CODEBOOK record of dtype F32 decodes to
    placed = Record(record.name, DType.F32, record.shape, record.layout, ValueKind.CODEBOOK, record.gap_bits,
                    record.entry_count, record.codebook_size, segments=record.segments)
    table = storage_view(codebook).reshape(-1, 1)
    work = out if as_f32 else None
    if record.layout == Layout.SPARSE:
        work = _decode_sparse(placed, segment, np.dtype(np.float32), table, work, out_zeroed and as_f32, threads)
    else:
        work = _decode_dense(placed, segment, np.dtype(np.float32), table, work, threads)
    flat = work.reshape(-1)
    with np.errstate(over="ignore"):  # a product past the float32 range is inf, as FORMAT.md says
        _per_group(flat, record.group_size, group_scale, np.multiply)
        if group_offset is not None:
            _per_group(flat, record.group_size, group_offset, np.add)
    if as_f32:
        return work
    out = np.empty(record.shape, dtype) if out is None else out
    storage_view(out.reshape(-1))[...] = round_to(flat, record.dtype)  # no NaN can arise from finite tables
    return out


def _finite_table(record: Record, segment: SegmentGetter, role: str, count: int) -> np.ndarray:
    if record.segments[role].codec == SegmentCodec.AFFINE:  # only a codebook can be
        table = _affine_entries(record, segment)
    else:
        table = np.frombuffer(segment(role), dtype="<f4", count=count)
    if not np.isfinite(table).all():
        raise InvalidValue(record.name, f"GROUPED {role} must be finite")
    return table


def _group_codes(record: Record, segment: SegmentGetter, role: str, alphabet: int, threads) -> np.ndarray:
    """The G per-group codes of a table, each proven below its size."""
    return _codec(record, role).decode(segment(role), record.groups, alphabet, name=_stream_name(record, role),
                                       range_error=CodeOutOfRange, threads=threads)


def _per_group(flat: np.ndarray, group_size: int, factors: np.ndarray, op) -> None:
    """``flat[u] = op(flat[u], factors[u // group_size])`` in float32, in place."""
    full = flat.size // group_size
    op(flat[:full * group_size].reshape(full, group_size), factors[:full, None], out=flat[:full * group_size]
       .reshape(full, group_size))
    if full < factors.size:
        op(flat[full * group_size:], factors[full], out=flat[full * group_size:])
