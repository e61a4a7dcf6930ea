"""An opened container: checked framing plus per-record decoding on demand.

:class:`ContainerFile` reads a :class:`~dcformat.container.source.ByteSource` (bytes in
memory, a file read with ``pread``, or a mapped file), checks the preamble, header and
data layout once, and decodes a record only when asked, reading just that record's
segments (and its bank's), each once: read, checksum-verified, decoded. It enforces the
decode budget (FORMAT.md, "Decode budget").
"""

from __future__ import annotations

import threading

import numpy as np

from ..format.dtypes import numpy_dtype, storage_dtype
from ..encodings.decode import decode_record
from ..errors import ChecksumMismatch, DecodeLimitExceeded, TensorNotFound, UsageError
from .. import threads as _threads
from ..format import constants as C
from .reader import check_data_layout, parse_header, segment_view
from .source import ByteSource, as_source
from ..format.records import Header, Record


def default_budget(file_size: int) -> int:
    """Bytes a reader may allocate for decoded tensors unless told otherwise."""
    return max(C.DECODE_BUDGET_FLOOR, C.DECODE_EXPANSION * file_size)


class ContainerFile:
    """A checked container over ``data`` (a buffer or a ByteSource); tensors decode lazily."""

    def __init__(self, data, *, verify: bool = True, decode_budget: int | None = None,
                 threads: int | None = None):
        #: Where every byte is read from.
        self.source: ByteSource = as_source(data)
        self.verify = verify
        #: Most threads one call decodes on; None: :func:`dcformat.threads.default_threads`.
        self.threads = _threads.check_threads(threads)
        self.header: Header = parse_header(self.source, verify=verify)
        check_data_layout(self.header, self.source)
        if decode_budget is not None and decode_budget < 0:
            raise UsageError(f"decode_budget must be >= 0, got {decode_budget}")
        self.budget = default_budget(self.size) if decode_budget is None else decode_budget
        self.decoded_bytes = 0
        #: The tensor records as columns; a Record is made when one is asked for.
        self._table = self.header.tensors
        # What has been charged: a flag per tensor record (a set of a million names or
        # ids would hold an object for each), and the bank indices.
        self._charged = np.zeros(len(self._table), bool)
        self._charged_banks: set[int] = set()
        self._banks: dict[int, np.ndarray] = {}

    @property
    def size(self) -> int:
        """Bytes in the file."""
        return self.source.size

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.header.metadata)

    def keys(self) -> list[str]:
        return list(self._table.names)

    def record(self, name: str) -> Record:
        return self._table[self._find(name)]

    def dtype(self, name: str) -> C.DType:
        """The wire dtype of tensor ``name`` (without building its whole record)."""
        return C.DType(int(self._table.dtype[self._find(name)]))

    def _find(self, name: str) -> int:
        try:
            return self._table.position(name)  # name -> position, made on the first lookup
        except KeyError:
            raise TensorNotFound(name) from None

    def decode(self, name: str, out: np.ndarray | None = None, bits: bool = False) -> np.ndarray:
        """Decode one tensor (and, once, the bank it selects from).

        ``bits``: the tensor comes as its unsigned integers of the same width (its storage
        dtype, uint16 for BF16), as ``out`` must then be; what a caller building torch
        tensors wants, with no ml_dtypes to import."""
        position = self._find(name)
        record = self._table[position]
        bank = self._bank(record.bank_index) if record.value_kind == C.ValueKind.BANK else None
        return self._decode(record, out, bank, key=position, bits=bits)

    def decode_all(self, names=None, threads: int | None = None, out=None, bits: bool = False
                   ) -> dict[str, np.ndarray]:
        """Decode ``names`` (default: every tensor) as ``decode`` would one after another.

        Tensors decode on ``threads`` threads (default: the file's ``threads``, else every
        core for files of a megabyte or more). The outcome is the sequential one: the
        budget is charged in order, and the error raised is the one the first failing
        tensor, in order, raises.

        ``out`` maps names to arrays to decode into, as ``decode``'s ``out`` (not charged
        to the budget). The other tensors share one zeroed allocation (64-byte aligned
        slices): a model's worth of memory in one piece takes huge pages where the system
        offers them, which halves the cost of first touching it. It is freed when the last
        of those tensors is. ``bits`` as for :meth:`decode`.
        """
        dtypes = _BITS if bits else _NUMPY
        given = {name: array for name, array in (out or {}).items() if array is not None}
        table = self._table
        if names is None:
            names, positions = list(table.names), np.arange(len(table))
        else:
            names = list(dict.fromkeys(names))
            positions = np.array([self._find(n) for n in names], np.int64)
        asked = _threads.check_threads(threads) or self.threads
        threads = _threads.threads_for(self.size, asked, PARALLEL_MIN_FILE_BYTES)
        nbytes = table.nbytes()[positions]
        # what is decoded here: neither given nor charged before (decoded before, it is
        # decoded again, free)
        is_given = np.fromiter((n in given for n in names), bool, len(names)) if given else None
        free = self._charged[positions] if is_given is None else self._charged[positions] | is_given
        fits = self._charge_in_order(names, positions, nbytes, free)

        # A DENSE RAW record of no elements (checksum 0) needs nothing read: made here, at
        # once; the other tensors are decoded on the threads.
        empty = (table.layout[positions[:fits]] == _DENSE) & (table.value_kind[positions[:fits]] == _RAW) \
            & (nbytes[:fits] == 0)
        if self.verify and empty.any():  # a DENSE RAW record has its values segment (others may have none)
            first_segment = table.segment_start[positions[:fits][empty]]
            empty[empty] = table.segment_checksum[first_segment] == 0
        if is_given is not None:
            empty &= ~is_given[:fits]
        results: list = [None] * fits
        for k, shape, code in zip(np.flatnonzero(empty).tolist(), table.shapes(positions[:fits][empty]),
                                  table.dtype[positions[:fits][empty]].tolist()):
            results[k] = np.empty(shape, dtypes[C.DType(code)])
        work = np.flatnonzero(~empty).tolist()
        records = [table[p] for p in positions[work].tolist()]
        work_names = [names[k] for k in work]
        work_bytes = nbytes[work].tolist()
        banks = [self._bank(r.bank_index) if r.value_kind == C.ValueKind.BANK else None for r in records]
        if given:
            shared = iter(_shared_outputs([r for r in records if r.name not in given],
                                          [n for r, n in zip(records, work_bytes) if r.name not in given], dtypes,
                                          self.source.shares))
            outs = [given[n] if n in given else next(shared) for n in work_names]
        else:
            outs = _shared_outputs(records, work_bytes, dtypes, self.source.shares)

        # Results go straight into a list; of the errors only the first in order is kept,
        # and once a tensor has failed, those after it are not decoded (they would be
        # thrown away).
        first = [len(work), None]  # index into `work` and error of the first that failed, in order
        lock = threading.Lock()

        def batch(indices: list[int]) -> None:
            for i in indices:
                if i > first[0]:
                    continue
                out_i = outs[i]
                try:
                    if out_i is None and (value := _empty(records[i], None, self.verify, dtypes)) is not None:
                        results[work[i]] = value  # nothing to read, and charged above
                        continue
                    zeroed = out_i is not None and work_names[i] not in given
                    results[work[i]] = self._decode(records[i], out_i, banks[i], out_zeroed=zeroed, threads=asked,
                                                    bits=bits)
                except Exception as exc:  # re-raised below, first in order wins
                    with lock:
                        if i < first[0]:
                            first[:] = [i, exc]

        # biggest first, so the threads end evenly; small tensors go in batches, so that
        # a file of many tiny records is handed out a few hundred at a time and what each
        # costs to hand out does not add up. A big tensor's chunk groups join the same
        # threads (dcformat.threads): at most `threads`.
        order = sorted(range(len(work)), key=work_bytes.__getitem__, reverse=True)
        _threads.run(batch, _batches(order, work_bytes), threads)
        if first[1] is not None:
            raise first[1]
        decoded = dict(zip(names, results))
        for n in names[fits:]:
            decoded[n] = self.decode(n, given.get(n))
        return decoded

    def _charge_in_order(self, names: list[str], positions: np.ndarray, nbytes: np.ndarray,
                         free: np.ndarray) -> int:
        """Charge the tensors up to the first the budget refuses, in order, as ``decode``
        one after another would (banks they select from included); return how many."""
        extra = C.DECODE_RECORD_CHARGE
        cost = np.where(free, 0, nbytes + extra)
        if len(cost) * (int(nbytes.max(initial=0)) + extra) < 1 << 62:  # no int64 sum can wrap
            running = self.decoded_bytes + np.cumsum(cost)
            over = np.flatnonzero(running > self.budget)
            fits = int(over[0]) if over.size else len(names)
            total = int(running[fits - 1]) if fits else self.decoded_bytes
        else:
            fits, total = len(names), self.decoded_bytes
            for i, c in enumerate(cost.tolist()):
                if total + c > self.budget:
                    fits = i
                    break
                total += c
        before = self.decoded_bytes
        kinds = self._table.value_kind[positions[:fits]]
        for p in positions[:fits][kinds == C.ValueKind.BANK].tolist():
            self._bank(int(self._table.bank_index[p]))
        if self.decoded_bytes == before:  # no bank charged meanwhile: every tensor up to `fits` fits
            self.decoded_bytes = total
            self._charged[positions[:fits]] = True
            return fits
        for i in range(fits):  # else one at a time, with the sizes known
            if free[i] or self._charged[positions[i]]:
                continue
            if self.decoded_bytes + cost[i] > self.budget:
                raise DecodeLimitExceeded(f"decoded bytes after {names[i]!r}", self.decoded_bytes + int(cost[i]),
                                          self.budget)
            self.decoded_bytes += int(cost[i])
            self._charged[positions[i]] = True
        return fits

    def decode_banks(self) -> list[np.ndarray]:
        """Decode every bank, used or not: reading the whole file checks every segment."""
        return [self._bank(i) for i in range(len(self.header.banks))]

    def _bank(self, index: int) -> np.ndarray:
        if index not in self._banks:
            self._banks[index] = self._decode(self.header.banks[index], None, key=-1 - index)
        return self._banks[index]

    def _decode(self, record: Record, out, bank=None, out_zeroed: bool = False,
                threads: int | None = None, key: int | None = None, bits: bool = False) -> np.ndarray:
        """Decode ``record``; ``key`` (its position, or -1 - a bank's index) says what to
        charge to the budget when ``out`` is None (None: charged already)."""
        if out is None and key is not None:
            self._charge(record, key)
        dtypes = _BITS if bits else _NUMPY

        if out is None or out_zeroed:
            empty = _empty(record, out, self.verify, dtypes)
            if empty is not None:
                return empty
        into = None
        if self.source.copies and (out is None or out_zeroed) and _stored_as_is(record):
            # read from the file straight into the output the reader allocates: the
            # values are the payload's bytes, so decoding them copies nothing more
            out = np.empty(record.shape, dtypes[record.dtype]) if out is None else out
            into = out.reshape(-1).view(np.uint8)
        # Every segment of the record is bounds- and checksum-checked before any is decoded.
        views = {role: segment_view(self.header, self.source, record, role, verify=self.verify, into=into)
                 for role in record.segments}
        return decode_record(record, views.__getitem__, bank, out, out_zeroed=out_zeroed,
                             threads=threads or self.threads, bits=bits, share=self.source.shares)

    def _charge(self, record: Record, key: int) -> None:
        """Refuse, before allocating, a tensor that would exceed the decode budget.

        A record charges its decoded bytes plus DECODE_RECORD_CHARGE (what a reader holds
        for each record it returns), once, however often it is decoded: the budget bounds
        what the file can make a reader hold, not how often the caller asks.
        """
        charged = self._charged[key] if key >= 0 else -1 - key in self._charged_banks
        if charged:
            return
        charge = record_charge(record)
        if self.decoded_bytes + charge > self.budget:
            raise DecodeLimitExceeded(f"decoded bytes after {record.name!r}",
                                      self.decoded_bytes + charge, self.budget)
        self.decoded_bytes += charge
        if key >= 0:
            self._charged[key] = True
        else:
            self._charged_banks.add(-1 - key)


def record_charge(record: Record) -> int:
    """What decoding ``record`` charges to the decode budget (FORMAT.md, "Decode budget")."""
    return record.nbytes + C.DECODE_RECORD_CHARGE


#: Files smaller than this decode on the calling thread unless told otherwise.
PARALLEL_MIN_FILE_BYTES = 1 << 20

#: Alignment of each tensor in a shared allocation: a cache line.
SHARED_ALIGNMENT = 64

#: Tensors smaller than this are handed to the threads together, in batches of about this
#: much work; each tensor counts for BATCH_RECORD_COST bytes besides its own.
BATCH_BYTES = 1 << 20
BATCH_RECORD_COST = 4096


def _batches(order: list[int], nbytes: list[int]) -> list[list[int]]:
    """``order`` cut into runs of about BATCH_BYTES of work (a big tensor alone)."""
    batches, current, work = [], [], 0
    for i in order:
        cost = nbytes[i] + BATCH_RECORD_COST
        if cost >= BATCH_BYTES:
            batches.append([i])
            continue
        current.append(i)
        work += cost
        if work >= BATCH_BYTES:
            batches.append(current)
            current, work = [], 0
    if current:
        batches.append(current)
    return batches


def _shared_outputs(records, nbytes: list[int], dtypes, views: bool = False) -> list[np.ndarray | None]:
    """A zeroed array per record, slices of a single allocation; None for a record left out.

    The caller has charged every record to the decode budget. A dense record joins only
    if its stream has a byte per 8 units (every symbol takes a bit), so no header field
    sizes the allocation unchecked; the others are allocated alone, once their streams
    are proven, as ``decode`` does. A record of no elements needs no memory and is left out,
    as is, with ``views`` (a source that shares its bytes), a record stored as it is.
    """
    offsets, end = [], 0
    for r, n in zip(records, nbytes):
        offsets.append(end if n and _size_proven(r) and not (views and _stored_as_is(r)) else None)
        if offsets[-1] is not None:
            end += -(-n // SHARED_ALIGNMENT) * SHARED_ALIGNMENT
    arena = np.zeros(end + SHARED_ALIGNMENT, dtype=np.uint8)  # calloc: fresh pages come zeroed
    base = -arena.ctypes.data % SHARED_ALIGNMENT
    return [None if o is None else arena[base + o:base + o + n].view(dtypes[r.dtype]).reshape(r.shape)
            for r, o, n in zip(records, offsets, nbytes)]


class _NumpyDTypes(dict):
    """The numpy dtype of each wire dtype, looked up once per record; each filled in when
    first asked for (ml_dtypes' are imported then)."""

    def __missing__(self, key):
        value = self[key] = numpy_dtype(key)
        return value


_NUMPY = _NumpyDTypes()
#: The storage dtype of each wire dtype: what ``bits=True`` decodes to.
_BITS = {dtype: storage_dtype(dtype) for dtype in C.DType}
_DENSE, _RAW = C.Layout.DENSE, C.ValueKind.RAW


def _empty(record: Record, out, verify: bool, dtypes) -> np.ndarray | None:
    """A DENSE RAW record of no elements, decoded: its segment is empty (R20), so only its
    Checksum (R21) is left to check; None for any other record."""
    if record.layout is not _DENSE or record.value_kind is not _RAW or 0 not in record.shape:
        return None
    ref = record.segments["values"]
    if verify and ref.checksum != 0:  # the CRC-32 of no bytes
        raise ChecksumMismatch(f"values segment of {record.name!r}", ref.checksum, 0)
    return np.empty(record.shape, dtypes[record.dtype]) if out is None else out


def _stored_as_is(record: Record) -> bool:
    """Whether the record's one segment holds its N elements exactly (DENSE, RAW)."""
    return record.layout == C.Layout.DENSE and record.value_kind == C.ValueKind.RAW


def _size_proven(record: Record) -> bool:
    """Whether the record's segment sizes alone bound its output (FORMAT.md, "Decode budget").

    RAW values were checked to be exactly the stored count's bytes; a dense stream of N
    symbols needs at least N bits. A sparse record's units beyond its entries are zeros
    that only the decode budget bounds, as when it is decoded alone.
    """
    if record.layout == C.Layout.SPARSE or record.value_kind == C.ValueKind.RAW:
        return True
    if record.value_kind == C.ValueKind.PLANES:  # every block's every plane: a bit a symbol
        return record.stored_count <= 8 * record.payload_bytes
    role = "selectors" if record.value_kind == C.ValueKind.BANK else "codes"
    return record.stored_count <= 8 * record.segments[role].length
