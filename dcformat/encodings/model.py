"""The in-memory form of an encoded tensor: what a record and its segments say.

A tensor is stored as *units* (elements, or K-element kernels when its values come
from a bank). Its **layout** says which units are stored: all of them (``Dense``) or
those reached by relative gaps (``Sparse``). Its **values** say what each stored unit
holds: the raw value (``RawValues``), a code into a per-tensor codebook
(``CodebookValues``) or a selector into a file-level kernel bank (``BankValues``).
Any layout combines with any value kind.

The compression pipeline and the importers build these objects; the container writer
serialises them; the reader rebuilds them from a file before decoding. They hold plain
numpy arrays: symbol streams as ``uint16``, codebooks and raw values in the tensor's
storage dtype (see :mod:`dcformat.dtypes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..streams.base import StreamCodec
from ..streams.choose import CodedStream


def _default_codec() -> StreamCodec:
    from ..streams.huffman import HuffmanCodec  # the writer's default: Huffman with raw fallback

    return HuffmanCodec()


def _coded_field():
    """The stream as already coded by a builder (see the ``coded`` constructors), or None."""
    return field(default=None, init=False, repr=False)


def _with_coded(obj, stream: CodedStream):
    object.__setattr__(obj, "_coded", stream)
    return obj


@dataclass(frozen=True, eq=False)
class Dense:
    """Every unit is stored, in C order."""


@dataclass(frozen=True, eq=False)
class Sparse:
    """Only some units are stored; ``gaps[j]`` zeros are skipped before entry j.

    Positions are ``cumsum(gaps + 1) - 1`` over the C-order units. A gap wider than
    ``2**gap_bits - 1`` is bridged by filler entries whose value decodes to zero.
    """

    gap_bits: int
    gaps: np.ndarray
    codec: StreamCodec = field(default_factory=_default_codec)
    _coded: CodedStream | None = _coded_field()

    @classmethod
    def coded(cls, gap_bits: int, gaps: CodedStream) -> "Sparse":
        """A layout whose gap stream is already coded: the writer stores its payload as is."""
        return _with_coded(cls(gap_bits, gaps.symbols, gaps.codec), gaps)


@dataclass(frozen=True, eq=False)
class RawValues:
    """Each stored unit holds its value, little-endian, in the tensor's dtype."""

    values: np.ndarray


@dataclass(frozen=True, eq=False)
class CodebookValues:
    """Each stored unit holds a code; the value is ``codebook[code]``."""

    codebook: np.ndarray
    codes: np.ndarray
    codec: StreamCodec = field(default_factory=_default_codec)
    _coded: CodedStream | None = _coded_field()

    @classmethod
    def coded(cls, codebook: np.ndarray, codes: CodedStream) -> "CodebookValues":
        """Values whose code stream is already coded: the writer stores its payload as is."""
        return _with_coded(cls(codebook, codes.symbols, codes.codec), codes)


@dataclass(frozen=True, eq=False)
class BankValues:
    """Each stored unit is a kernel: ``bank[selector]`` of the named bank."""

    bank: str
    selectors: np.ndarray
    codec: StreamCodec = field(default_factory=_default_codec)
    _coded: CodedStream | None = _coded_field()

    @classmethod
    def coded(cls, bank: str, selectors: CodedStream) -> "BankValues":
        """Values whose selector stream is already coded: the writer stores its payload as is."""
        return _with_coded(cls(bank, selectors.symbols, selectors.codec), selectors)


@dataclass(frozen=True, eq=False)
class EncodedTensor:
    """One record: dtype (wire name, e.g. ``"F32"``), shape, layout and values."""

    dtype: str
    shape: tuple[int, ...]
    layout: Dense | Sparse
    values: RawValues | CodebookValues | BankValues

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= int(d)
        return n
