"""The interface every integer-stream codec implements (numcodecs ``abc.py`` is the model).

An integer stream is a sequence of ``count`` symbols, each below ``alphabet_size``
(at most 65536, so symbols are ``uint16``). The container tells a codec the count and
the alphabet; the codec owns the payload bytes and nothing else.

Two classes may share a ``codec_id`` only if each decodes the other's output.
``get_config()`` returns a JSON-safe dict carrying ``"id"``; ``from_config`` inverts it.

``gap_stream=True`` marks a stream of sparse gaps: codecs that split streams into
chunks record, for each chunk, the absolute starting position (spec/FORMAT.md,
"Huffman streams") and check it on decode.

Besides ``decode``, which returns the symbols, a codec decodes straight to what the
record needs: ``decode_gather`` maps each symbol through a table (a codebook's values)
into the caller's array, and ``decode_scatter`` places table values at the positions a
gap stream gives. The defaults here decode the symbols first; a codec with fused
kernels overrides them (its fast path is its own: the layers above call these methods
and nothing else), and must raise exactly what the defaults raise.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from ..errors import GapOverrun, SymbolOutOfRange, UnknownCodecError
from ..kernels import placement

SYMBOL_DTYPE = np.dtype(np.uint16)


class StreamCodec(ABC):
    """One way of storing an integer stream in a payload segment."""

    #: Name used in configs and settings.
    codec_id: ClassVar[str]
    #: The Segment_Ref Codec number written on disk.
    wire_id: ClassVar[int]

    @abstractmethod
    def encode(self, symbols: np.ndarray, alphabet_size: int, *, gap_stream: bool = False) -> bytes:
        """Return the payload bytes for ``symbols`` (uint16, each < alphabet_size)."""

    @abstractmethod
    def decode(self, buf, count: int, alphabet_size: int, *, gap_stream: bool = False,
               out: np.ndarray | None = None, name: str = "stream",
               range_error: type[SymbolOutOfRange] = SymbolOutOfRange,
               threads: int | None = None) -> np.ndarray:
        """Validate ``buf`` and return its ``count`` symbols as uint16.

        Raises a :class:`~dcformat.errors.FormatError` subclass for any payload that
        breaks the spec; ``name`` is used in error messages, and a symbol not below
        ``alphabet_size`` raises ``range_error`` (CodeOutOfRange, SelectorOutOfRange).
        ``threads`` caps the threads it decodes on (:mod:`dcformat.threads`).
        """

    def decode_gather(self, buf, count: int, table: np.ndarray, *, out: np.ndarray | None = None,
                      name: str = "stream", range_error: type[SymbolOutOfRange] = SymbolOutOfRange,
                      threads: int | None = None) -> np.ndarray:
        """``table[symbol]`` for each of the ``count`` symbols, written into ``out`` if given.

        ``table`` (1-D, unsigned integers: the bits of a codebook's values) has one entry
        per symbol of the alphabet; ``out`` is a C-contiguous array of ``count`` elements of
        its dtype. Nothing is allocated before the payload proves ``count``.
        """
        symbols = self.decode(buf, count, table.shape[0], name=name, range_error=range_error, threads=threads)
        if out is None:
            out = np.empty(count, dtype=table.dtype)
        placement.gather(table, symbols, out)
        return out

    def decode_narrow(self, buf, count: int, alphabet_size: int, *, name: str = "stream",
                      threads: int | None = None) -> np.ndarray:
        """The ``count`` symbols of a stream whose alphabet is at most 256, validated as
        :meth:`decode` does: a uint8 view of the payload's own bytes where it stores the
        symbols raw at 8 bits (nothing copied), else a decoded uint16 array."""
        return self.decode(buf, count, alphabet_size, name=name, threads=threads)

    def decode_scatter(self, buf, count: int, alphabet_size: int, table: np.ndarray, indices: np.ndarray,
                       out: np.ndarray, *, name: str = "stream", tensor: str = "",
                       threads: int | None = None) -> None:
        """Decode a gap stream and put entry j's value ``table[indices[j]]`` at its position.

        Positions are ``cumsum(gaps + 1) - 1`` in ``out`` (1-D, holding zeros, the dtype of
        ``table``); ``indices`` (``count`` of them) are proven below ``len(table)``. A
        position past the end of ``out`` raises :class:`GapOverrun` naming ``tensor``.
        """
        gaps = self.decode(buf, count, alphabet_size, gap_stream=True, name=name, threads=threads)
        placement.scatter_gather(table, indices, gap_positions(gaps, out.shape[0], tensor), out)

    def get_config(self) -> dict:
        return {"id": self.codec_id}

    @classmethod
    def from_config(cls, config: dict) -> "StreamCodec":
        config = dict(config)
        config.pop("id", None)
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.get_config().items())))

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "id")
        return f"{type(self).__name__}({params})"


def gap_positions(gaps: np.ndarray, units: int, tensor: str) -> np.ndarray:
    """The position of each gap's entry (``cumsum(gaps + 1) - 1``); GapOverrun past ``units``."""
    positions = np.empty(gaps.shape[0], dtype=np.int64)
    covered = placement.gap_positions(gaps, positions)
    if covered > units:
        raise GapOverrun(tensor, int(covered) - 1, units)
    return positions


_REGISTRY: dict[str, type[StreamCodec]] = {}
_BY_WIRE_ID: dict[int, type[StreamCodec]] = {}


def register_codec(cls: type[StreamCodec]) -> type[StreamCodec]:
    """Class decorator: make ``cls`` findable by its ``codec_id`` and ``wire_id``."""
    _REGISTRY[cls.codec_id] = cls
    _BY_WIRE_ID[cls.wire_id] = cls
    return cls


def get_codec(config: dict | str) -> StreamCodec:
    """Build a codec from a config dict (or a bare id)."""
    if isinstance(config, str):
        config = {"id": config}
    codec_id = config.get("id")
    try:
        cls = _REGISTRY[codec_id]
    except KeyError:
        raise UnknownCodecError(str(codec_id)) from None
    return cls.from_config(config)


def codec_for_wire_id(wire_id: int) -> type[StreamCodec] | None:
    """The codec class for an on-disk Segment_Ref Codec number, or None."""
    return _BY_WIRE_ID.get(wire_id)
