"""Lay out and write a container (spec/FORMAT.md), atomically.

Two writers share one layout. Each is an explicit state machine: banks are added first,
then tensors, then the file is finished once. Each tensor is encoded as it is added (so
its arguments are checked at once) and its segments are placed in the data section
there and then: offsets, lengths and CRCs go into a small record, the payload bytes go
to the writer's data sink.

- :class:`ContainerWriter` keeps the payloads in memory (as the buffers the encoder
  returned: raw tensors are not copied) and finishes as bytes or to a path.
- :class:`StreamingWriter` writes each payload to an anonymous spill file beside the
  destination as soon as it is added and keeps only the records, so writing holds one
  tensor's payloads at a time. When it finishes, the preamble and header go into the
  new output file and the spill is appended after them in the kernel
  (``copy_file_range``; a MiB at a time where that is unavailable). Both writers produce
  the same bytes for the same calls.

Writing to a path goes through a new file in the destination's directory that takes the
destination's name only when complete (:mod:`dcformat.atomic`: unnamed until then where
the system has ``O_TMPFILE``): an exception, a KeyboardInterrupt or a kill never leaves
a partial file under that name, and an existing file is never replaced unless
``overwrite=True``.
"""

from __future__ import annotations

import enum
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..atomic import atomic_output
from ..encodings.encode import BankInfo, EncodedRecord, encode_tensor
from ..errors import InvalidSettings, NameInUse, OutputExists, UsageError, storage_errors
from ..format import constants as C
from ..format.records import SegmentRef
from .checksum import crc32

#: Bytes per read and write when the spill is copied in user space.
_COPY_CHUNK = 1 << 20


class WriterState(enum.Enum):
    BANKS = "adding banks"
    TENSORS = "adding tensors"
    FINISHED = "finished"
    BROKEN = "broken by an earlier error"


@dataclass(frozen=True)
class _PlacedRecord:
    """A record's header fields once its payloads are placed: no payload bytes."""

    dtype: C.DType
    shape: tuple[int, ...]
    layout: C.Layout
    value_kind: C.ValueKind
    fields: dict
    segments: dict  # role -> SegmentRef (offsets from Data_Offset), in on-disk order


class _Layout:
    """What both writers share: the state machine, segment placement and the header."""

    def __init__(self, metadata: Mapping[str, str] | None = None, *, alignment: int = C.DEFAULT_ALIGNMENT,
                 decode_budget: int | None = None):
        if not (C.MIN_ALIGNMENT <= alignment <= C.MAX_ALIGNMENT) or alignment & (alignment - 1):
            raise InvalidSettings(f"alignment must be a power of two in [8, 4096], got {alignment}")
        if decode_budget is not None and (isinstance(decode_budget, bool) or not isinstance(decode_budget, int)
                                          or decode_budget < 0):
            raise InvalidSettings(f"decode_budget must be a non-negative int or None, got {decode_budget!r}")
        self.alignment = alignment
        #: The decode budget the file's readers are given (None: their default); a file
        #: that would decode to more is refused when it is finished.
        self.decode_budget = decode_budget
        self.metadata = _check_metadata(metadata or {})
        self.state = WriterState.BANKS
        self._banks: dict[str, _PlacedRecord] = {}
        self._bank_info: dict[str, BankInfo] = {}
        self._tensors: dict[str, _PlacedRecord] = {}
        self._data_size = 0  # bytes of the data section placed so far, padding included
        self._affine = False  # some codebook segment placed is AFFINE (Required_Features bit 2)

    def _expect(self, *states: WriterState) -> None:
        if self.state not in states:
            raise UsageError(f"writer is {self.state.value}; this call needs it "
                             + " or ".join(s.value for s in states))

    def add_bank(self, name: str, bank) -> None:
        """Add a kernel bank of shape (L, *kernel): an array or an EncodedTensor."""
        self._expect(WriterState.BANKS)
        _check_name(name, self._banks, "bank")
        _check_count(len(self._banks), C.MAX_BANKS, "banks")
        record = encode_tensor(name, bank, is_bank=True)
        self._banks[name] = self._place(record)
        self._bank_info[name] = BankInfo(len(self._bank_info), record.dtype, record.shape)

    def add_tensor(self, name: str, tensor) -> None:
        """Add a tensor: a numpy array (stored exactly) or an EncodedTensor."""
        self._expect(WriterState.BANKS, WriterState.TENSORS)
        self.state = WriterState.TENSORS
        _check_name(name, self._tensors, "tensor")
        _check_count(len(self._tensors), C.MAX_TENSORS, "tensors")
        self._tensors[name] = self._place(encode_tensor(name, tensor, self._bank_info))

    # -- layout --------------------------------------------------------------------

    def _place(self, record: EncodedRecord) -> _PlacedRecord:
        """Give each segment the next aligned offset and hand its bytes, after the padding, to the sink."""
        refs = {}
        try:
            for role, (codec, payload) in record.segments.items():
                offset = C.align_up(self._data_size, self.alignment)
                if offset > self._data_size:
                    self._sink(bytes(offset - self._data_size))
                self._sink(payload)
                refs[role] = SegmentRef(C.SegmentCodec(codec), offset, len(payload), crc32(payload))
                self._affine = self._affine or codec == C.SegmentCodec.AFFINE
                self._data_size = offset + len(payload)
        except BaseException:
            # The sink may hold part of this record now: later offsets would be wrong.
            self.state = WriterState.BROKEN
            raise
        return _PlacedRecord(record.dtype, record.shape, record.layout, record.value_kind, record.fields, refs)

    def _sink(self, data) -> None:
        raise NotImplementedError

    def _finish_head(self) -> bytes:
        """Finish the writer; return the preamble, the header and the padding up to Data_Offset."""
        self._expect(WriterState.BANKS, WriterState.TENSORS)
        header = self._header_bytes()
        self._check_budget(C.align_up(C.PREAMBLE_SIZE + len(header), self.alignment) + self._data_size)
        self.state = WriterState.FINISHED
        required = self._required_features()
        # the lowest minor that defines every feature used: a file of v1.0 records is a v1.0 file
        minor = max((m for bit, m in C.FEATURE_MINOR.items() if required & bit), default=C.BASE_VERSION_MINOR)
        preamble = struct.pack(C.PREAMBLE_FORMAT[:-1], C.MAGIC, C.VERSION_MAJOR, minor, required, 0, len(header))
        checksum = crc32(preamble, header)
        data_offset = C.align_up(C.PREAMBLE_SIZE + len(header), self.alignment)
        return b"".join((preamble, struct.pack("<I", checksum), header,
                         bytes(data_offset - C.PREAMBLE_SIZE - len(header))))

    def _required_features(self) -> int:
        kinds = {r.value_kind for r in self._tensors.values()}
        return ((C.FEATURE_GROUPED if C.ValueKind.GROUPED in kinds else 0)
                | (C.FEATURE_PLANES if C.ValueKind.PLANES in kinds else 0)
                | (C.FEATURE_AFFINE if self._affine else 0))

    def _check_budget(self, file_size: int) -> None:
        """Refuse a file that readers would refuse to decode under their default budget
        (FORMAT.md, "Decode budget"): what a writer accepts, a reader loads."""
        records = (*self._banks.values(), *self._tensors.values())
        decoded = sum(_nbytes(r) for r in records) + C.DECODE_RECORD_CHARGE * len(records)
        budget = self.decode_budget
        if budget is None:
            budget = max(C.DECODE_BUDGET_FLOOR, C.DECODE_EXPANSION * file_size)
        if decoded > budget:
            raise InvalidSettings(
                f"the file would decode to {decoded} bytes, more than the {budget} that readers allow "
                + ("" if self.decode_budget is not None else
                   f"by default for a file of {file_size} bytes (max(256 MiB, 1024 x file size))")
                + "; store mostly-empty tensors dense, or pass the budget its readers will use as decode_budget=")

    def _header_bytes(self) -> bytes:
        out = bytearray(struct.pack("<II", self.alignment, len(self.metadata)))
        for key, value in self.metadata.items():
            out += _string(key) + _string(value)
        # Bank_Count and bank records, then Tensor_Count and tensor records.
        for records in (self._banks, self._tensors):
            out += struct.pack("<I", len(records))
            for name, record in records.items():
                out += _record_bytes(name, record)
        if len(out) > C.MAX_HEADER_SIZE:
            raise InvalidSettings(f"header would be {len(out)} bytes; the format allows {C.MAX_HEADER_SIZE}")
        return bytes(out)


class ContainerWriter(_Layout):
    """Collects banks and tensors in memory, then writes one container.

    Examples
    --------
    >>> import numpy as np, dcformat
    >>> writer = ContainerWriter({"model": "demo"})
    >>> writer.add_tensor("w", np.arange(4, dtype=np.float32))
    >>> dcformat.load(writer.to_bytes())["w"]
    array([0., 1., 2., 3.], dtype=float32)
    """

    def __init__(self, metadata: Mapping[str, str] | None = None, *, alignment: int = C.DEFAULT_ALIGNMENT,
                 decode_budget: int | None = None):
        super().__init__(metadata, alignment=alignment, decode_budget=decode_budget)
        self._data: list = []

    def _sink(self, data) -> None:
        self._data.append(data)

    def to_bytes(self) -> bytes:
        """Finish the file and return it."""
        return b"".join([self._finish_head(), *self._data])

    def write(self, path, *, overwrite: bool = False) -> None:
        """Finish the file and write it to ``path`` atomically (see :mod:`dcformat.atomic`)."""
        with atomic_output(path, overwrite=overwrite) as f:
            f.write(self._finish_head())
            for data in self._data:
                f.write(data)


class StreamingWriter(_Layout):
    """Writes each payload out as it is added; the file at ``path`` appears when :meth:`finish` runs.

    Memory held: the records (a few dozen bytes per tensor) and nothing of the payloads
    once ``add_tensor`` returns. The bytes are those :class:`ContainerWriter` writes for
    the same calls.

    Parameters
    ----------
    path : str or Path
        The destination. Its directory holds the spill file, which has no name (it
        never shows up and needs no cleaning up) and lives until :meth:`finish` or
        :meth:`close`.
    metadata : mapping of str to str, optional
    alignment : int
        Segment alignment, a power of two in [8, 4096].
    decode_budget : int, optional
        The decode budget the file's readers will be given (default: theirs); a file
        that would decode to more is refused, so that what is written loads.
    overwrite : bool
        Replace an existing ``path``. Without it an existing file is refused at once,
        before any work is done, and again when the file is published.

    Notes
    -----
    As a context manager it finishes when the block ends normally and only closes (no
    file written) when the block raises.

    Examples
    --------
    >>> import numpy as np, dcformat, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "w.dcf")
    >>> with StreamingWriter(path, {"model": "demo"}) as writer:
    ...     writer.add_tensor("w", np.arange(4, dtype=np.float32))
    >>> dcformat.load_file(path)["w"]
    array([0., 1., 2., 3.], dtype=float32)
    """

    def __init__(self, path, metadata: Mapping[str, str] | None = None, *, alignment: int = C.DEFAULT_ALIGNMENT,
                 overwrite: bool = False, decode_budget: int | None = None):
        super().__init__(metadata, alignment=alignment, decode_budget=decode_budget)
        self.path = Path(path)
        self.overwrite = overwrite
        if self.path.exists() and not overwrite:
            raise OutputExists(str(self.path))
        # Beside the destination, so that the final copy stays on one file system.
        with storage_errors(self.path, "write"):
            self._spill = tempfile.TemporaryFile(dir=self.path.parent)

    def __enter__(self) -> "StreamingWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.finish()
        finally:
            self.close()

    def _sink(self, data) -> None:
        with storage_errors(self.path, "write"):
            self._spill.write(data)

    def finish(self) -> None:
        """Write the file to ``path`` atomically and drop the spill."""
        try:
            head = self._finish_head()
            with atomic_output(self.path, overwrite=self.overwrite) as f, storage_errors(self.path, "write"):
                f.write(head)
                _append_file(self._spill, f, self._data_size)
        finally:
            self.close()

    def close(self) -> None:
        """Drop the spill file; a writer closed before :meth:`finish` leaves nothing behind."""
        if self.state is not WriterState.BROKEN:
            self.state = WriterState.FINISHED
        self._spill.close()


def _append_file(src, dst, size: int) -> None:
    """Append the first ``size`` bytes of file ``src`` to file ``dst``."""
    src.flush()
    dst.flush()
    done = 0
    while done < size:
        copied = _kernel_copy(src.fileno(), dst.fileno(), size - done, done)
        if not copied:
            break
        done += copied
    while done < size:  # no copy_file_range here (or it stopped early): copy in user space
        chunk = os.pread(src.fileno(), min(_COPY_CHUNK, size - done), done)
        if not chunk:
            raise OSError(f"spill file ends at {done} bytes, {size} were written to it")
        dst.write(chunk)
        done += len(chunk)


def _kernel_copy(src_fd: int, dst_fd: int, count: int, offset: int) -> int:
    """Bytes ``copy_file_range`` moved from ``offset`` to the end of ``dst_fd``; 0 where it cannot."""
    try:
        return os.copy_file_range(src_fd, dst_fd, count, offset)
    except (AttributeError, OSError):  # not Linux, an old kernel, or a file system that refuses
        return 0


def _record_bytes(name: str, record: _PlacedRecord) -> bytes:
    out = bytearray(_string(name))
    out += struct.pack(f"<BB{len(record.shape)}Q", record.dtype, len(record.shape), *record.shape)
    out += struct.pack("<BB", record.layout, record.value_kind)
    f = record.fields
    if record.layout == C.Layout.SPARSE:
        out += struct.pack("<BQ", f["gap_bits"], f["entry_count"])
    if record.value_kind == C.ValueKind.CODEBOOK:
        out += struct.pack("<I", f["codebook_size"])
    elif record.value_kind == C.ValueKind.BANK:
        out += struct.pack("<I", f["bank_index"])
    elif record.value_kind == C.ValueKind.GROUPED:
        out += struct.pack("<IQII", f["codebook_size"], f["group_size"], f["scale_count"], f["offset_count"])
    elif record.value_kind == C.ValueKind.PLANES:
        out += struct.pack("<Q", f["block_size"])
    for ref in record.segments.values():
        out += struct.pack(C.SEGMENT_REF_FORMAT, ref.codec, ref.offset, ref.length, ref.checksum)
    return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<I", len(raw)) + raw


def _nbytes(record: _PlacedRecord) -> int:
    n = C.DTYPE_SIZE[record.dtype]
    for d in record.shape:
        n *= d
    return n


def _utf8_length(text, what: str, limit: int) -> int:
    """Bytes of ``text`` in UTF-8; InvalidSettings unless a str that encodes, within ``limit``."""
    if not isinstance(text, str):
        raise InvalidSettings(f"{what} must be a str, got {type(text).__name__}")
    try:
        length = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidSettings(f"{what} {text[:40]!r} is not valid Unicode (a lone surrogate?)") from None
    if length > limit:
        raise InvalidSettings(f"{what} {text[:40]!r}... is longer than {limit} bytes")
    return length


def _check_name(name: str, existing: Mapping, kind: str) -> None:
    _utf8_length(name, f"{kind} name", C.MAX_NAME_BYTES)
    if name in existing:
        raise NameInUse(kind, name)


def _check_count(count: int, limit: int, what: str) -> None:
    if count >= limit:
        raise InvalidSettings(f"a file holds at most {limit} {what}")


def _check_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    if len(metadata) > C.MAX_METADATA_ENTRIES:
        raise InvalidSettings(f"{len(metadata)} metadata entries; the format allows {C.MAX_METADATA_ENTRIES}")
    for key, value in metadata.items():
        _utf8_length(key, "metadata key", C.MAX_NAME_BYTES)
        _utf8_length(value, f"metadata value of {key!r}", C.MAX_METADATA_VALUE_BYTES)
    return dict(metadata)
