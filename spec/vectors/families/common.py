"""Shared inputs and the writer's files: what every family builds its vectors from.

Inputs come from :class:`Rand`, a splitmix64 generator fixed here forever (numpy's streams
may change between releases). Valid files come from the real writer
(:func:`write_file`); :func:`build` also computes, with plain numpy and never by decoding,
the tensors each file must decode to (FORMAT.md, "Decoding a record").
"""

from __future__ import annotations

import json
import math
import struct

import ml_dtypes
import numpy as np

from dcformat import AffineCodebook, BankValues, CodebookValues, EncodedTensor, GroupedValues, Sparse
from dcformat.container.writer import ContainerWriter
from dcformat.format import constants as C
from dcformat.format.dtypes import dtype_of, numpy_dtype
from dcformat.streams import HuffmanCodec, PackedCodec


M64 = (1 << 64) - 1
BF16 = ml_dtypes.bfloat16
E4M3 = ml_dtypes.float8_e4m3fn
E5M2 = ml_dtypes.float8_e5m2
PACKED = PackedCodec()
HUFFMAN = HuffmanCodec()


# === inputs ===========================================================================


class Rand:
    """splitmix64: a generator whose stream is fixed here, forever."""

    def __init__(self, seed: int):
        self.state = seed & M64

    def u64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & M64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        return self.u64() % n

    def ints(self, count: int, high: int) -> np.ndarray:
        """``count`` integers uniform in [0, high)."""
        return np.array([self.below(high) for _ in range(count)], dtype=np.int64)

    def skewed(self, count: int, high: int) -> np.ndarray:
        """``count`` integers in [0, high), symbol k drawn with probability about 2^-(k+1)."""
        out = []
        for _ in range(count):
            x = self.u64() | (1 << 63)
            out.append(min(high - 1, (x & -x).bit_length() - 1))
        return np.array(out, dtype=np.int64)

    def mask(self, count: int, percent: int) -> np.ndarray:
        return np.array([self.below(100) < percent for _ in range(count)], dtype=bool)

    def shuffle(self, items: list) -> list:
        items = list(items)
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]
        return items


def from_bits(dtype, patterns, shape=None) -> np.ndarray:
    """An array of ``dtype`` holding exactly the given bit patterns."""
    dt = np.dtype(dtype)
    array = np.array([int(p) for p in patterns], dtype=np.dtype(f"<u{dt.itemsize}")).view(dt)
    return array.reshape(shape) if shape is not None else array


def sparsify(nonzero: np.ndarray, gap_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaps (fillers included) reaching the units where ``nonzero`` holds, and their units.

    FORMAT.md, "Fillers": a skip longer than 2^Gap_Bits - 1 units is bridged by entries
    with the maximal gap whose value decodes to zero.
    """
    widest = (1 << gap_bits) - 1
    gaps, units, last = [], [], -1
    for p in np.flatnonzero(nonzero.reshape(-1)):
        while p - last - 1 > widest:
            last += widest + 1
            gaps.append(widest)
            units.append(last)
        gaps.append(p - last - 1)
        units.append(p)
        last = p
    return np.array(gaps, dtype=np.uint16), np.array(units, dtype=np.int64)


# === writing through the real writer, and the expected tensors ========================


def write_file(tensors: dict, metadata: dict | None = None, banks: dict | None = None,
               *, alignment: int = C.DEFAULT_ALIGNMENT) -> bytes:
    writer = ContainerWriter(metadata, alignment=alignment)
    for name, bank in (banks or {}).items():
        writer.add_bank(name, bank)
    for name, tensor in tensors.items():
        writer.add_tensor(name, tensor)
    return writer.to_bytes()


def _uint(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    return array.reshape(-1).view(np.dtype(f"<u{array.dtype.itemsize}"))


def expected_tensor(tensor, banks: dict[str, np.ndarray]) -> np.ndarray:
    """What a record decodes to (FORMAT.md, "Decoding a record"), computed from its inputs."""
    if not isinstance(tensor, EncodedTensor):
        array = np.asarray(tensor)
        return array.astype(array.dtype.newbyteorder("<"), order="C", copy=True)
    dtype = numpy_dtype(tensor.dtype)
    n = math.prod(tensor.shape)
    values = tensor.values
    if isinstance(values, GroupedValues):
        return grouped_expected(tensor)
    if isinstance(values, BankValues):
        bank = banks[values.bank]
        k = math.prod(bank.shape[1:])
        rows = _uint(bank).reshape(bank.shape[0], k)[np.asarray(values.selectors, dtype=np.int64)]
    elif isinstance(values, CodebookValues):
        k = 1
        rows = _uint(codebook_table(values.codebook, dtype))[np.asarray(values.codes, dtype=np.int64).reshape(-1)]
        rows = rows.reshape(-1, 1)
    else:  # RawValues, and PlaneValues (lossless: the values themselves, bit for bit)
        k = 1
        rows = _uint(values.values).reshape(-1, 1)
    out = np.zeros((n // k, k), dtype=np.dtype(f"<u{dtype.itemsize}"))
    if isinstance(tensor.layout, Sparse):
        positions = np.cumsum(np.asarray(tensor.layout.gaps, dtype=np.int64) + 1) - 1
        out[positions] = rows
    else:
        out[...] = rows
    return out.reshape(-1).view(dtype).reshape(tensor.shape)


def grouped_expected(tensor: EncodedTensor) -> np.ndarray:
    """A GROUPED record's tensor (FORMAT.md, "GROUPED values"), by numpy float32 array
    arithmetic (one rounding an operation) and numpy's (ml_dtypes') casts to F16 and BF16."""
    values = tensor.values
    n = math.prod(tensor.shape)
    units = np.arange(n) if not isinstance(tensor.layout, Sparse) else \
        np.cumsum(np.asarray(tensor.layout.gaps, dtype=np.int64) + 1) - 1
    group = units // values.group_size
    codes = np.asarray(values.codes, dtype=np.int64).reshape(-1)
    scales = np.asarray(values.scales, np.float32)[np.asarray(values.scale_codes, dtype=np.int64)]
    out = np.zeros(n, np.float32)
    with np.errstate(over="ignore"):
        v = float32_codebook(values.codebook)[codes] * scales[group]
        if values.offsets is not None:
            v = v + np.asarray(values.offsets, np.float32)[np.asarray(values.offset_codes, dtype=np.int64)][group]
        out[units] = v
        return out.astype(numpy_dtype(tensor.dtype)).reshape(tensor.shape)


def float32_codebook(codebook) -> np.ndarray:
    """A GROUPED codebook's float32 entries: the table given, or an AFFINE codebook's
    ``f32(Base + f32(Step x f32(i)))`` (FORMAT.md, "AFFINE codebooks") by numpy float32
    arrays, one rounding an operation, never fused."""
    if not isinstance(codebook, AffineCodebook):
        return np.asarray(codebook, np.float32)
    with np.errstate(over="ignore"):
        return np.float32(codebook.base) + np.float32(codebook.step) * np.arange(codebook.size, dtype=np.float32)


def codebook_table(codebook, dtype: np.dtype) -> np.ndarray:
    """A CODEBOOK record's entries in its dtype: the table given, or an AFFINE codebook's
    float32 entries cast by numpy (ml_dtypes for BF16) to F16 or BF16, to nearest even."""
    if not isinstance(codebook, AffineCodebook):
        return codebook
    with np.errstate(over="ignore"):
        return float32_codebook(codebook).astype(dtype)


def build(tensors: dict, metadata: dict | None = None, banks: dict | None = None,
          *, alignment: int = C.DEFAULT_ALIGNMENT) -> tuple[bytes, dict, dict]:
    """A file from the writer, with its expected tensors and metadata."""
    data = write_file(tensors, metadata, banks, alignment=alignment)
    decoded_banks = {name: expected_tensor(bank, {}) for name, bank in (banks or {}).items()}
    expected = {name: expected_tensor(t, decoded_banks) for name, t in tensors.items()}
    return data, expected, dict(metadata or {})


def safetensors_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """A safetensors file holding ``tensors`` in order (dtype names are the wire names)."""
    header: dict = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    payloads, offset = [], 0
    for name, array in tensors.items():
        raw = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": dtype_of(array).name, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        payloads.append(raw)
        offset += len(raw)
    text = json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(payloads)


# === small builders ===================================================================


def enc(dtype: str, shape, layout, values) -> EncodedTensor:
    return EncodedTensor(dtype, tuple(shape), layout, values)


def u16(symbols) -> np.ndarray:
    return np.asarray(symbols, dtype=np.uint16)


EMPTY = u16([])


F32_ONE = np.array([1.0], "<f4").tobytes()
