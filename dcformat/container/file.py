"""An opened container: checked framing plus per-record decoding on demand.

:class:`ContainerFile` wraps a buffer (bytes, or an mmap of a file), checks the preamble,
header and data layout once, and decodes a record only when asked, touching just that
record's segments (and its bank's). It enforces the decode budget (FORMAT.md, "Limits").
"""

from __future__ import annotations

import numpy as np

from ..encodings.decode import decode_record
from ..errors import DecodeLimitExceeded, TensorNotFound, UsageError
from . import constants as C
from .reader import check_data_layout, parse_header, segment_view
from .records import Header, Record


def default_budget(file_size: int) -> int:
    """Bytes a reader may allocate for decoded tensors unless told otherwise."""
    return max(C.DECODE_BUDGET_FLOOR, C.DECODE_EXPANSION * file_size)


class ContainerFile:
    """A checked container over ``buf``; tensors decode lazily, one at a time."""

    def __init__(self, buf, *, verify: bool = True, decode_budget: int | None = None):
        self.buf = buf
        self.verify = verify
        self.header: Header = parse_header(buf, verify=verify)
        check_data_layout(self.header, buf)
        if decode_budget is not None and decode_budget < 0:
            raise UsageError(f"decode_budget must be >= 0, got {decode_budget}")
        self.budget = default_budget(len(buf)) if decode_budget is None else decode_budget
        self.decoded_bytes = 0
        self._charged: set[int] = set()
        self._tensors = {r.name: r for r in self.header.tensors}
        self._banks: dict[int, np.ndarray] = {}

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

    def decode_banks(self) -> list[np.ndarray]:
        """Decode every bank, used or not: reading the whole file checks every segment."""
        return [self._bank(i) for i in range(len(self.header.banks))]

    def _bank(self, index: int) -> np.ndarray:
        if index not in self._banks:
            self._banks[index] = self._decode(self.header.banks[index], None)
        return self._banks[index]

    def _decode(self, record: Record, out, bank=None) -> np.ndarray:
        if out is None:
            self._charge(record)

        # Every segment of the record is bounds- and checksum-checked before any is decoded.
        views = {role: segment_view(self.header, self.buf, record, role, verify=self.verify)
                 for role in record.segments}
        return decode_record(record, views.__getitem__, bank, out)

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
