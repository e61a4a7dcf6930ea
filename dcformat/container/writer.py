"""Lay out and write a container (spec/FORMAT.md), atomically.

:class:`ContainerWriter` is an explicit state machine: banks are added first, then
tensors, then the file is finished once, as bytes or to a path. Each tensor is encoded
as it is added (so its arguments are checked at once); payloads are kept as the buffers
the encoder returned (raw tensors are not copied) until the file is written.

Writing to a path goes through a temporary file beside the destination that is renamed
into place only when complete: an exception or KeyboardInterrupt leaves no partial file,
and an existing file is never replaced unless ``overwrite=True``.
"""

from __future__ import annotations

import enum
import struct
import zlib
from typing import Mapping

from ..atomic import atomic_output
from ..encodings.encode import BankInfo, EncodedRecord, encode_tensor
from ..errors import DuplicateName, InvalidSettings, UsageError
from . import constants as C


class WriterState(enum.Enum):
    BANKS = "adding banks"
    TENSORS = "adding tensors"
    FINISHED = "finished"


class ContainerWriter:
    """Collects banks and tensors, then writes one container."""

    def __init__(self, metadata: Mapping[str, str] | None = None, *, alignment: int = C.DEFAULT_ALIGNMENT):
        if not (C.MIN_ALIGNMENT <= alignment <= C.MAX_ALIGNMENT) or alignment & (alignment - 1):
            raise InvalidSettings(f"alignment must be a power of two in [8, 4096], got {alignment}")
        self.alignment = alignment
        self.metadata = _check_metadata(metadata or {})
        self.state = WriterState.BANKS
        self._banks: dict[str, EncodedRecord] = {}
        self._bank_info: dict[str, BankInfo] = {}
        self._tensors: dict[str, EncodedRecord] = {}

    def _expect(self, *states: WriterState) -> None:
        if self.state not in states:
            raise UsageError(f"writer is {self.state.value}; this call needs it "
                             + " or ".join(s.value for s in states))

    def add_bank(self, name: str, bank) -> None:
        """Add a kernel bank of shape (L, *kernel): an array or an EncodedTensor."""
        self._expect(WriterState.BANKS)
        _check_name(name, self._banks, "bank")
        record = encode_tensor(name, bank, is_bank=True)
        self._banks[name] = record
        self._bank_info[name] = BankInfo(len(self._bank_info), record.dtype, record.shape)

    def add_tensor(self, name: str, tensor) -> None:
        """Add a tensor: a numpy array (stored exactly) or an EncodedTensor."""
        self._expect(WriterState.BANKS, WriterState.TENSORS)
        self.state = WriterState.TENSORS
        _check_name(name, self._tensors, "tensor")
        self._tensors[name] = encode_tensor(name, tensor, self._bank_info)

    def to_bytes(self) -> bytes:
        """Finish the file and return it."""
        chunks: list = []
        self._emit(chunks.append)
        return b"".join(chunks)

    def write(self, path, *, overwrite: bool = False) -> None:
        """Finish the file and write it to ``path`` atomically (see :mod:`dcformat.atomic`)."""
        with atomic_output(path, overwrite=overwrite) as f:
            self._emit(f.write)

    # -- layout --------------------------------------------------------------------

    def _emit(self, write) -> None:
        self._expect(WriterState.BANKS, WriterState.TENSORS)
        self.state = WriterState.FINISHED
        records = [*self._banks.items(), *self._tensors.items()]
        layout, end = _layout_segments(records, self.alignment)
        header = self._header_bytes(records, layout)
        preamble = struct.pack(C.PREAMBLE_FORMAT[:-1], C.MAGIC, C.VERSION_MAJOR, C.VERSION_MINOR,
                               0, 0, len(header))
        checksum = zlib.crc32(header, zlib.crc32(preamble))
        write(preamble + struct.pack("<I", checksum))
        write(header)
        data_offset = C.align_up(C.PREAMBLE_SIZE + len(header), self.alignment)
        write(bytes(data_offset - C.PREAMBLE_SIZE - len(header)))
        position = 0
        for i, (_, record) in enumerate(records):
            for role, (_, payload) in record.segments.items():
                offset = layout[i, role][0]
                write(bytes(offset - position))
                write(payload)
                position = offset + len(payload)
        assert position == end

    def _header_bytes(self, records, layout) -> bytes:
        out = bytearray(struct.pack("<II", self.alignment, len(self.metadata)))
        for key, value in self.metadata.items():
            out += _string(key) + _string(value)
        # Bank_Count and bank records, then Tensor_Count and tensor records.
        n_banks = len(self._banks)
        for start, count in ((0, n_banks), (n_banks, len(self._tensors))):
            out += struct.pack("<I", count)
            for i in range(start, start + count):
                name, record = records[i]
                out += _record_bytes(name, record, {role: layout[i, role] for role in record.segments})
        if len(out) > C.MAX_HEADER_SIZE:
            raise InvalidSettings(f"header would be {len(out)} bytes; the format allows {C.MAX_HEADER_SIZE}")
        return bytes(out)


def _layout_segments(records, alignment: int) -> tuple[dict, int]:
    """Offset and checksum of every payload, keyed by (record index, role)."""
    layout, end = {}, 0
    for i, (_, record) in enumerate(records):
        for role, (_, payload) in record.segments.items():
            offset = C.align_up(end, alignment)
            layout[i, role] = (offset, zlib.crc32(payload))
            end = offset + len(payload)
    return layout, end


def _record_bytes(name: str, record: EncodedRecord, layout) -> bytes:
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
    for role, (codec, payload) in record.segments.items():
        offset, checksum = layout[role]
        out += struct.pack(C.SEGMENT_REF_FORMAT, codec, offset, len(payload), checksum)
    return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<I", len(raw)) + raw


def _check_name(name: str, existing: Mapping, kind: str) -> None:
    if not isinstance(name, str):
        raise InvalidSettings(f"{kind} names must be str, got {type(name).__name__}")
    if len(name.encode("utf-8")) > C.MAX_NAME_BYTES:
        raise InvalidSettings(f"{kind} name {name[:40]!r}... is longer than {C.MAX_NAME_BYTES} bytes")
    if name in existing:
        raise DuplicateName(kind, name)


def _check_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    if len(metadata) > C.MAX_METADATA_ENTRIES:
        raise InvalidSettings(f"{len(metadata)} metadata entries; the format allows {C.MAX_METADATA_ENTRIES}")
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidSettings(f"metadata must map str to str, got {key!r}: {type(value).__name__}")
        if len(key.encode()) > C.MAX_NAME_BYTES or len(value.encode()) > C.MAX_METADATA_VALUE_BYTES:
            raise InvalidSettings(f"metadata entry {key[:40]!r} is too long")
    return dict(metadata)
