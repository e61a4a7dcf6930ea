"""The in-memory form of an encoded tensor: what a record and its segments say.

A tensor is stored as *units* (elements, or K-element kernels when its values come
from a bank). Its **layout** says which units are stored: all of them (``Dense``) or
those reached by relative gaps (``Sparse``). Its **values** say what each stored unit
holds: the raw value (``RawValues``), a code into a per-tensor codebook
(``CodebookValues``), a selector into a file-level kernel bank (``BankValues``), or a
code into a codebook shared by groups of units that each scale it (``GroupedValues``,
v1.1), or the raw value split into bit planes, each an entropy-coded stream
(``PlaneValues``, v1.2: lossless floats). Any layout combines with any value kind.

The compression pipeline and the importers build these objects; the container writer
serialises them; the reader rebuilds them from a file before decoding. They hold plain
numpy arrays: symbol streams as ``uint16``, codebooks and raw values in the tensor's
storage dtype (see :mod:`dcformat.dtypes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import math

import numpy as np

from ..format.affine import affine_entries
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


@dataclass(frozen=True)
class AffineCodebook:
    """A codebook of ``size`` entries on a uniform grid, stored as its base and step alone
    (FORMAT.md, "AFFINE codebooks", v1.3): entry ``i`` is ``base + step * i`` in float32
    (two rounded operations), rounded to the tensor's dtype. 8 bytes instead of ``size``
    values: what makes a small tensor, or a 1-D one, worth coding. For CODEBOOK values of
    an F32, F16 or BF16 tensor, and as the shared codebook of GROUPED values.

    ``base`` and ``step`` are rounded to float32 here, so the object says what is stored.
    """

    base: float
    step: float
    size: int

    def __post_init__(self):
        object.__setattr__(self, "base", float(np.float32(self.base)))
        object.__setattr__(self, "step", float(np.float32(self.step)))
        object.__setattr__(self, "size", int(self.size))

    @property
    def finite(self) -> bool:
        return math.isfinite(self.base) and math.isfinite(self.step)

    def entries(self) -> np.ndarray:
        """The float32 entries, as every reader computes them (before rounding to a dtype)."""
        return affine_entries(self.base, self.step, self.size)


@dataclass(frozen=True, eq=False)
class CodebookValues:
    """Each stored unit holds a code; the value is ``codebook[code]``.

    ``codebook`` is an array of the tensor's dtype, or an :class:`AffineCodebook`.
    """

    codebook: np.ndarray | AffineCodebook
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
class GroupedValues:
    """Each stored unit holds a code into a codebook that groups of units share, each
    group scaling it (and shifting it) by its own factor (FORMAT.md, "GROUPED values").

    Units fall in groups of ``group_size`` consecutive units in C order (the last may be
    shorter): a row of a matrix, an output channel of a convolution, or a block of a row.
    The value of a stored unit of group ``g`` is, in float32 without fused multiply-add,
    ``codebook[code] * scales[scale_codes[g]] (+ offsets[offset_codes[g]])``, rounded to
    the tensor's dtype (F32, F16 or BF16). The tables are float32 arrays of finite values,
    scales positive; the per-group codes make the side information itself a coded stream
    (a few bits a group). Offsets are for the DENSE layout only; ``offsets=None`` has none.
    """

    group_size: int
    codebook: np.ndarray | AffineCodebook  # float32, or AFFINE (v1.3)
    codes: np.ndarray
    scales: np.ndarray
    scale_codes: np.ndarray
    offsets: np.ndarray | None = None
    offset_codes: np.ndarray | None = None
    codec: StreamCodec = field(default_factory=_default_codec)
    #: The codec of the per-group streams (scale and offset codes).
    table_codec: StreamCodec = field(default_factory=_default_codec)
    _coded: CodedStream | None = _coded_field()

    @classmethod
    def coded(cls, group_size: int, codebook: np.ndarray, codes: CodedStream, scales: np.ndarray,
              scale_codes: np.ndarray, offsets=None, offset_codes=None,
              table_codec: StreamCodec | None = None) -> "GroupedValues":
        """Values whose code stream is already coded: the writer stores its payload as is."""
        extra = {} if table_codec is None else {"table_codec": table_codec}
        return _with_coded(cls(group_size, codebook, codes.symbols, scales, scale_codes, offsets, offset_codes,
                               codes.codec, **extra), codes)


#: Stored units per block of a PLANES record written by default: each block's planes have
#: Huffman tables of their own, so a tensor whose statistics drift (the rows of an
#: embedding) is coded as it goes, while a table per plane costs well under 1 % of a block.
#: Each block also costs its decoder some Python (its streams parsed, its segments read):
#: at 2**18 units that share kept Gemma-3-270M's 167 M-value bf16 embedding from decoding
#: faster on two threads than on one (0.27 s either way); at 2**20 it takes 0.19 s on one
#: and 0.12 s on two, and its file is 0.03 % smaller.
PLANE_BLOCK_UNITS = 1 << 20


@dataclass(frozen=True, eq=False)
class PlaneValues:
    """Each stored unit holds its value, losslessly, split into bit planes (FORMAT.md,
    "PLANES values"): the exponent, then the sign and mantissa 8 bits at a time from the
    top; each plane of each block of ``block_size`` units is its own stream.

    ``values`` are the tensor's values in its dtype (a float type). ``codec`` codes every
    plane, or is a sequence of codecs, one per plane (exponent first). The default,
    None, Huffman-codes the exponent (with raw fallback per chunk) and chooses for each
    other plane of each block: Huffman where the plane's order-0 entropy says coding
    saves at least 1 %, else packed, which stores
    an 8-bit plane as its bytes (the sign and top mantissa bits of most weights are
    nearly uniform: coding them would cost time for a few bytes).
    """

    values: np.ndarray
    block_size: int = PLANE_BLOCK_UNITS
    codec: StreamCodec | tuple | None = None
    #: role -> (wire id, payload) of every plane, when already coded (:meth:`coded`).
    _coded: dict | None = _coded_field()

    @classmethod
    def coded(cls, values: np.ndarray, block_size: int, segments: dict, codec=None) -> "PlaneValues":
        """Values whose planes are already coded (``segments``: role -> (wire id, payload),
        as :func:`dcformat.encodings.encode.encode_tensor` made them): the writer stores
        them as they are, so a size measured before writing costs no second encoding."""
        extra = {} if codec is None else {"codec": codec}
        return _with_coded(cls(values, block_size, **extra), segments)


@dataclass(frozen=True, eq=False)
class EncodedTensor:
    """One record: dtype (wire name, e.g. ``"F32"``), shape, layout and values."""

    dtype: str
    shape: tuple[int, ...]
    layout: Dense | Sparse
    values: RawValues | CodebookValues | BankValues | GroupedValues | PlaneValues

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= int(d)
        return n
