"""An opened container: checked framing plus per-record decoding on demand.

:class:`ContainerFile` reads a :class:`~dcformat.container.source.ByteSource` (bytes in
memory, a file read with ``pread``, or a mapped file), checks the preamble, header and
data layout once, and decodes a record only when asked, reading just that record's
segments (and its bank's), each once: read, checksum-verified, decoded. It enforces the
decode budget (FORMAT.md, "Decode budget").
"""

from __future__ import annotations

import numpy as np

from ..format.dtypes import numpy_dtype
from ..encodings.decode import decode_record
from ..errors import DecodeLimitExceeded, TensorNotFound, UsageError
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
        self._charged: set[int] = set()
        self._tensors = {r.name: r for r in self.header.tensors}
        self._banks: dict[int, np.ndarray] = {}

    @property
    def size(self) -> int:
        """Bytes in the file."""
        return self.source.size

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.header.metadata)

    def keys(self) -> list[str]:
        return list(self._tensors)

    def record(self, name: str) -> Record:
        try:
            return self._tensors[name]
        except KeyError:
            raise TensorNotFound(name) from None

    def decode(self, name: str, out: np.ndarray | None = None) -> np.ndarray:
        """Decode one tensor (and, once, the bank it selects from)."""
        record = self.record(name)
        bank = self._bank(record.bank_index) if record.value_kind == C.ValueKind.BANK else None
        return self._decode(record, out, bank)

    def decode_all(self, names=None, threads: int | None = None, out=None) -> dict[str, np.ndarray]:
        """Decode ``names`` (default: every tensor) as ``decode`` would one after another.

        Tensors decode on ``threads`` threads (default: the file's ``threads``, else every
        core for files of a megabyte or more). The outcome is the sequential one: the
        budget is charged in order, and the error raised is the one the first failing
        tensor, in order, raises.

        ``out`` maps names to arrays to decode into, as ``decode``'s ``out`` (not charged
        to the budget). The other tensors share one zeroed allocation (64-byte aligned
        slices): a model's worth of memory in one piece takes huge pages where the system
        offers them, which halves the cost of first touching it. It is freed when the last
        of those tensors is.
        """
        given = dict(out or {})
        names = list(dict.fromkeys(self.keys() if names is None else names))
        records = [self.record(n) for n in names]
        asked = _threads.check_threads(threads) or self.threads
        threads = _threads.threads_for(self.size, asked, PARALLEL_MIN_FILE_BYTES)
        # the tensors before the first the budget refuses are decoded together
        fits, total, seen = len(records), self.decoded_bytes, set(self._charged)
        for i, r in enumerate(records):
            if r.name in given or id(r) in seen:
                continue
            if total + r.nbytes > self.budget:
                fits = i
                break
            total += r.nbytes
            seen.add(id(r))
        banks = [self._bank(r.bank_index) if r.value_kind == C.ValueKind.BANK else None for r in records[:fits]]
        for r in records[:fits]:
            if r.name not in given:
                self._charge(r)
        shared = iter(_shared_outputs([r for r in records[:fits] if r.name not in given]))
        outs = [given[n] if n in given else next(shared) for n in names[:fits]]

        def one(i: int):
            zeroed = outs[i] is not None and names[i] not in given
            try:
                return self._decode(records[i], outs[i], banks[i], out_zeroed=zeroed, threads=asked), None
            except Exception as exc:  # re-raised below, first in order wins
                return None, exc

        # biggest first, so the threads end evenly; results are put back in order. A big
        # tensor's chunk groups join the same threads (dcformat.threads): at most `threads`.
        order = sorted(range(fits), key=lambda i: -records[i].nbytes)
        done = dict(zip(order, _threads.run(one, order, threads)))
        decoded = {}
        for i in range(fits):
            value, exc = done[i]
            if exc is not None:
                raise exc
            decoded[names[i]] = value
        for n in names[fits:]:
            decoded[n] = self.decode(n, given.get(n))
        return decoded

    def decode_banks(self) -> list[np.ndarray]:
        """Decode every bank, used or not: reading the whole file checks every segment."""
        return [self._bank(i) for i in range(len(self.header.banks))]

    def _bank(self, index: int) -> np.ndarray:
        if index not in self._banks:
            self._banks[index] = self._decode(self.header.banks[index], None)
        return self._banks[index]

    def _decode(self, record: Record, out, bank=None, out_zeroed: bool = False,
                threads: int | None = None) -> np.ndarray:
        if out is None:
            self._charge(record)

        into = None
        if self.source.copies and (out is None or out_zeroed) and _stored_as_is(record):
            # read from the file straight into the output the reader allocates: the
            # values are the payload's bytes, so decoding them copies nothing more
            out = np.empty(record.shape, numpy_dtype(record.dtype)) if out is None else out
            into = out.reshape(-1).view(np.uint8)
        # Every segment of the record is bounds- and checksum-checked before any is decoded.
        views = {role: segment_view(self.header, self.source, record, role, verify=self.verify, into=into)
                 for role in record.segments}
        return decode_record(record, views.__getitem__, bank, out, out_zeroed=out_zeroed,
                             threads=threads or self.threads)

    def _charge(self, record: Record) -> None:
        """Refuse, before allocating, a tensor that would exceed the decode budget.

        Each record is charged once, however often it is decoded: the budget bounds what
        the file can make a reader hold, not how often the caller asks.
        """
        if id(record) in self._charged:
            return
        if self.decoded_bytes + record.nbytes > self.budget:
            raise DecodeLimitExceeded(f"decoded bytes after {record.name!r}",
                                      self.decoded_bytes + record.nbytes, self.budget)
        self.decoded_bytes += record.nbytes
        self._charged.add(id(record))


#: Files smaller than this decode on the calling thread unless told otherwise.
PARALLEL_MIN_FILE_BYTES = 1 << 20

#: Alignment of each tensor in a shared allocation: a cache line.
SHARED_ALIGNMENT = 64


def _shared_outputs(records) -> list[np.ndarray | None]:
    """A zeroed array per record, slices of a single allocation; None for a record left out.

    The caller has charged every record to the decode budget. A dense record joins only
    if its stream has a byte per 8 units (every symbol takes a bit), so no header field
    sizes the allocation unchecked; the others are allocated alone, once their streams
    are proven, as ``decode`` does.
    """
    offsets, end = [], 0
    for r in records:
        offsets.append(end if _size_proven(r) else None)
        if offsets[-1] is not None:
            end += -(-r.nbytes // SHARED_ALIGNMENT) * SHARED_ALIGNMENT
    arena = np.zeros(end + SHARED_ALIGNMENT, dtype=np.uint8)  # calloc: fresh pages come zeroed
    base = -arena.ctypes.data % SHARED_ALIGNMENT
    return [None if o is None else arena[base + o:base + o + r.nbytes].view(numpy_dtype(r.dtype)).reshape(r.shape)
            for r, o in zip(records, offsets)]


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
    role = "codes" if record.value_kind == C.ValueKind.CODEBOOK else "selectors"
    return record.stored_count <= 8 * record.segments[role].length
