"""Decode one record's segments into an array (spec/FORMAT.md, "Decoding a record").

The record's fields were checked by the container reader; this module checks what only
the payload can tell (stream contents, symbol ranges, sparse positions, BOOL bytes)
before any kernel uses an index.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..container.constants import DType, Layout, ValueKind
from ..container.records import Record
from ..dtypes import numpy_dtype, storage_view
from ..errors import CodeOutOfRange, GapOverrun, InvalidValue, SelectorOutOfRange, UsageError
from ..kernels import placement
from ..streams import codec_for_wire_id

SegmentGetter = Callable[[str], memoryview]


def decode_record(record: Record, segment: SegmentGetter, bank: np.ndarray | None = None,
                  out: np.ndarray | None = None) -> np.ndarray:
    """The tensor a record describes, written into ``out`` when given.

    ``segment(role)`` returns the bytes of the record's segment with that role; ``bank``
    is the decoded bank for BANK-valued records.
    """
    dtype = numpy_dtype(record.dtype)
    _check_output(record, dtype, out)
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
