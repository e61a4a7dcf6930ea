"""Turn an :class:`EncodedTensor` into record fields and segment payloads.

The writer calls :func:`encode_tensor` for each tensor and bank; it gets back what the
header record says and the bytes of each segment, in FORMAT.md order, and lays them out.
Arguments are checked here (UsageError), so a writer never produces a file that a
reader would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..format.affine import pack_affine
from ..format.constants import (
    AFFINE_DTYPES,
    CHUNK_ENTRY_SIZE,
    DEFAULT_CHUNK_SYMBOLS,
    GROUPED_DTYPES,
    MAX_PLANE_BLOCK,
    PLANES_DTYPES,
    FLOAT_LAYOUT,
    plane_widths,
    MAX_BANK_SIZE,
    MAX_CODEBOOK_SIZE,
    MAX_GROUP_TABLE_SIZE,
    MAX_ELEMENTS,
    MAX_GAP_BITS,
    MAX_RANK,
    MIN_GAP_BITS,
    DType,
    Layout,
    SegmentCodec,
    ValueKind,
)
from ..format.records import nonzero_product, plane_roles
from ..format.dtypes import dtype_of, numpy_dtype, to_little_endian, wire_dtype
from ..errors import InvalidSettings, UnsupportedDType
from .. import threads as _threads
from ..kernels import huffman as huffman_kernels
from ..kernels import planes as plane_kernels
from ..streams.base import StreamCodec
from ..streams.huffman import HuffmanCodec
from ..streams.packed import PackedCodec
from .model import (AffineCodebook, BankValues, CodebookValues, Dense, EncodedTensor, GroupedValues, PlaneValues,
                    RawValues, Sparse)


@dataclass(frozen=True)
class BankInfo:
    """What a tensor's record needs to know of the bank it selects from."""

    index: int
    dtype: DType
    shape: tuple[int, ...]


@dataclass(frozen=True)
class EncodedRecord:
    """What the writer needs for one record: header fields and segment payloads."""

    dtype: DType
    shape: tuple[int, ...]
    layout: Layout
    value_kind: ValueKind
    fields: dict
    #: role -> (SegmentCodec wire id, payload buffer), in on-disk order.
    segments: dict


def as_encoded(name: str, tensor) -> EncodedTensor:
    """An ndarray becomes a dense raw record; an EncodedTensor passes through."""
    if isinstance(tensor, EncodedTensor):
        return tensor
    array = np.asarray(tensor)
    dtype = dtype_of(array, name)
    return EncodedTensor(dtype.name, tuple(int(d) for d in array.shape), Dense(), RawValues(array))


def encode_tensor(name: str, tensor, banks: Mapping[str, BankInfo] | None = None,
                  *, is_bank: bool = False) -> EncodedRecord:
    """Check one tensor and produce its record; ``banks`` describes the file's banks."""
    enc = as_encoded(name, tensor)
    dtype = _wire_dtype(enc.dtype, name)
    shape = _check_shape(name, enc.shape)
    size = enc.size
    values = enc.values
    unit_size, bank_index, alphabet = 1, 0, 0
    if isinstance(values, BankValues):
        if is_bank:
            raise InvalidSettings(f"bank {name!r} cannot take its values from a bank")
        bank = _lookup_bank(name, values.bank, banks)
        unit_size = _kernel_size(name, dtype, shape, bank)
        bank_index, alphabet = bank.index, bank.shape[0]
    units = size // unit_size

    fields: dict = {}
    segments: dict = {}
    if isinstance(values, CodebookValues):
        if isinstance(values.codebook, AffineCodebook):
            if dtype not in AFFINE_DTYPES:
                raise InvalidSettings(f"an AFFINE codebook of {name!r} needs an F32, F16 or BF16 tensor, "
                                      f"not {dtype.name}")
            segments["codebook"], size = _affine(name, values.codebook)
        else:
            codebook = _typed(name, "codebook", values.codebook, dtype)
            segments["codebook"], size = (0, _bytes_of(codebook)), codebook.size
        if not 1 <= size <= MAX_CODEBOOK_SIZE:
            raise InvalidSettings(f"codebook of {name!r} has {size} entries; allowed 1..{MAX_CODEBOOK_SIZE}")
        fields["codebook_size"] = alphabet = size
    elif isinstance(values, GroupedValues):
        alphabet = _grouped_tables(name, values, dtype, units, isinstance(enc.layout, Sparse), is_bank, fields,
                                   segments)

    if isinstance(enc.layout, Sparse):
        gaps = _symbols(name, "gaps", enc.layout.gaps, 1 << _gap_bits(name, enc.layout.gap_bits))
        covered = int(gaps.sum(dtype=np.int64)) + gaps.size
        if covered > units:
            raise InvalidSettings(f"gaps of {name!r} cover {covered} units, tensor has {units}")
        fields.update(gap_bits=enc.layout.gap_bits, entry_count=gaps.size)
        segments["gaps"] = _stream_segment(enc.layout, enc.layout.gaps, gaps, 1 << enc.layout.gap_bits,
                                           gap_stream=True)
        stored = gaps.size
    elif isinstance(enc.layout, Dense):
        stored = units
    else:
        raise InvalidSettings(f"unknown layout {enc.layout!r} for {name!r}")

    if isinstance(values, RawValues):
        raw = _typed(name, "values", values.values, dtype)
        _check_count(name, "values", raw.size, stored)
        segments["values"] = (0, _bytes_of(raw))
        value_kind = ValueKind.RAW
    elif isinstance(values, PlaneValues):
        if is_bank:
            raise InvalidSettings(f"bank {name!r} cannot have PLANES values")
        raw = _typed(name, "values", values.values, dtype)
        _check_count(name, "values", raw.size, stored)
        if values._coded is not None and len(values._coded) == len(plane_roles(dtype, -(-stored // values.block_size))):
            segments.update(values._coded)
            fields["block_size"] = int(values.block_size)
        else:
            fields["block_size"] = _plane_blocks(name, values, dtype, raw, segments)
        value_kind = ValueKind.PLANES
    elif isinstance(values, (CodebookValues, BankValues, GroupedValues)):
        role, stream = ("selectors", values.selectors) if isinstance(values, BankValues) else ("codes", values.codes)
        symbols = _symbols(name, role, stream, alphabet)
        _check_count(name, role, symbols.size, stored)
        segments[role] = _stream_segment(values, stream, symbols, alphabet)
        value_kind = (ValueKind.CODEBOOK if isinstance(values, CodebookValues) else ValueKind.BANK
                      if isinstance(values, BankValues) else ValueKind.GROUPED)
        if value_kind == ValueKind.BANK:
            fields.update(bank_index=bank_index)
    else:
        raise InvalidSettings(f"unknown values {values!r} for {name!r}")
    layout = Layout.SPARSE if isinstance(enc.layout, Sparse) else Layout.DENSE
    if is_bank:
        _check_bank_shape(name, shape)
    # Reorder into FORMAT.md's segment order: the tables, gaps, then the values stream.
    order = [r for r in ("codebook", "scales", "scale_codes", "offsets", "offset_codes", "gaps", "values", "codes",
                         "selectors") if r in segments]
    order += [r for r in segments if r not in order]  # a PLANES record's planes, already in order
    return EncodedRecord(dtype, shape, layout, value_kind, fields, {r: segments[r] for r in order})


def _grouped_tables(name: str, values: GroupedValues, dtype: DType, units: int, sparse: bool, is_bank: bool,
                    fields: dict, segments: dict) -> int:
    """Check a GROUPED record's tables and per-group codes; fill its fields and table
    segments; return the codebook's size (the alphabet of its codes)."""
    if is_bank:
        raise InvalidSettings(f"bank {name!r} cannot have GROUPED values")
    if dtype not in GROUPED_DTYPES:
        raise InvalidSettings(f"GROUPED values of {name!r} need an F32, F16 or BF16 tensor, not {dtype.name}")
    group_size = int(values.group_size)
    if not 1 <= group_size <= MAX_ELEMENTS:
        raise InvalidSettings(f"group_size of {name!r} is {group_size}; allowed 1..{MAX_ELEMENTS}")
    groups = -(-units // group_size)
    if isinstance(values.codebook, AffineCodebook):
        segments["codebook"], size = _affine(name, values.codebook)
        if not (1 <= size <= MAX_CODEBOOK_SIZE and np.isfinite(values.codebook.entries()).all()):
            raise InvalidSettings(f"the AFFINE codebook of {name!r} must have 1..{MAX_CODEBOOK_SIZE} finite entries")
    else:
        codebook = _table(name, "codebook", values.codebook, MAX_CODEBOOK_SIZE)
        segments["codebook"], size = (0, _bytes_of(codebook)), codebook.size
    scales = _table(name, "scales", values.scales, MAX_GROUP_TABLE_SIZE)
    if not (scales > 0).all():
        raise InvalidSettings(f"scales of {name!r} must be positive")
    segments["scales"] = (0, _bytes_of(scales))
    segments["scale_codes"] = _group_stream(name, "scale_codes", values.scale_codes, scales.size, groups,
                                            values.table_codec)
    offsets = None if values.offsets is None else _table(name, "offsets", values.offsets, MAX_GROUP_TABLE_SIZE)
    if offsets is None:
        if values.offset_codes is not None:
            raise InvalidSettings(f"offset_codes of {name!r} given without offsets")
        segments["offsets"] = (0, b"")
        segments["offset_codes"] = (SegmentCodec.PACKED, b"")  # no offsets: both segments empty
    else:
        if sparse:
            raise InvalidSettings(f"GROUPED values of {name!r} with a Sparse layout cannot have offsets")
        segments["offsets"] = (0, _bytes_of(offsets))
        segments["offset_codes"] = _group_stream(name, "offset_codes",
                                                 [] if values.offset_codes is None else values.offset_codes,
                                                 offsets.size, groups, values.table_codec)
    fields.update(codebook_size=size, group_size=group_size, scale_count=scales.size,
                  offset_count=0 if offsets is None else offsets.size)
    return size


def _affine(name: str, codebook: AffineCodebook) -> tuple[tuple, int]:
    """The (wire id, payload) of an AFFINE codebook segment, and its size."""
    if not codebook.finite:
        raise InvalidSettings(f"the AFFINE codebook of {name!r} needs a finite base and step")
    return (SegmentCodec.AFFINE, pack_affine(codebook.base, codebook.step)), codebook.size


def _plane_blocks(name: str, values: PlaneValues, dtype: DType, raw: np.ndarray, segments: dict) -> int:
    """Split a PLANES record's values into blocks of planes, code each plane (blocks on
    every core), fill ``segments`` in FORMAT.md's order; return the Block_Size."""
    if dtype not in PLANES_DTYPES:
        raise InvalidSettings(f"PLANES values of {name!r} need a float tensor, not {dtype.name}")
    block = values.block_size
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or not 1 <= block <= MAX_PLANE_BLOCK:
        raise InvalidSettings(f"block_size of {name!r} is {block!r}; allowed 1..{MAX_PLANE_BLOCK}")
    widths = plane_widths(dtype)
    codecs = values.codec if isinstance(values.codec, (tuple, list)) else (values.codec,) * len(widths)
    if len(codecs) != len(widths) or not all(c is None or isinstance(c, StreamCodec) for c in codecs):
        raise InvalidSettings(f"codec of {name!r} must be a stream codec or {len(widths)} of them, one a plane")
    block = int(block)
    total, exponent_bits, _ = FLOAT_LAYOUT[dtype]
    bits = raw.view(f"<u{raw.dtype.itemsize}")
    widths_array = np.array(widths, np.int64)

    def code(start: int) -> list[tuple]:
        part = bits[start:start + block]
        symbols = np.empty((len(widths), part.size), np.uint16)
        plane_kernels.split(part, total, exponent_bits, widths_array, symbols)
        coded = []
        for k, (c, w) in enumerate(zip(codecs, widths)):
            c = c or (_HUFFMAN if k == 0 else _plane_codec(symbols[k], w))  # exponents always pay
            coded.append((c.wire_id, c.encode(symbols[k], 1 << w)))
        return coded

    starts = range(0, raw.size, block)
    coded = _threads.run(code, starts) if len(starts) > 1 else [code(s) for s in starts]
    roles = iter(plane_roles(dtype, len(starts)))
    for planes in coded:
        for payload in planes:
            segments[next(roles)] = payload
    return block


#: A plane is Huffman-coded when its order-0 entropy, with the table, is at most this
#: share of its packed size: Huffman lands a little above the entropy, so a plane closer
#: to uniform would gain next to nothing for the time it costs to code and decode.
PLANE_HUFFMAN_SHARE = 0.99
_PACKED, _HUFFMAN = PackedCodec(), HuffmanCodec()


def _plane_codec(symbols: np.ndarray, width: int) -> StreamCodec:
    """The codec for one plane of one block: Huffman where its entropy says it pays."""
    freqs = np.zeros(1 << width, np.int64)
    huffman_kernels.histogram(symbols, freqs)  # np.bincount widens uint16 to intp first: 10x slower
    used = freqs[freqs > 0].astype(np.float64)
    bits = float(-(used * np.log2(used / symbols.size)).sum())
    table = (int(np.flatnonzero(freqs)[-1]) + 2) // 2 if used.size else 0
    huffman = bits / 8 + table + 8 + CHUNK_ENTRY_SIZE * -(-symbols.size // DEFAULT_CHUNK_SYMBOLS)
    return _HUFFMAN if huffman <= PLANE_HUFFMAN_SHARE * (symbols.size * width / 8) else _PACKED


def _group_stream(name: str, role: str, codes, alphabet: int, groups: int, codec) -> tuple:
    """(wire id, payload) of a GROUPED record's per-group codes: one per group, each below ``alphabet``."""
    symbols = _symbols(name, role, codes, alphabet)
    _check_count(name, role, symbols.size, groups)
    return codec.wire_id, codec.encode(symbols, alphabet)


def _table(name: str, what: str, array, limit: int) -> np.ndarray:
    """A GROUPED table: 1 to ``limit`` finite float32 values."""
    table = np.asarray(array)
    if table.dtype != np.float32:
        raise InvalidSettings(f"{what} of {name!r} must be float32, got {table.dtype}")
    table = to_little_endian(table.reshape(-1))
    if not 1 <= table.size <= limit:
        raise InvalidSettings(f"{what} of {name!r} has {table.size} entries; allowed 1..{limit}")
    if not np.isfinite(table).all():
        raise InvalidSettings(f"{what} of {name!r} must be finite")
    return table


def _stream_segment(owner, given, symbols: np.ndarray, alphabet: int, gap_stream: bool = False) -> tuple:
    """(wire id, payload) of a stream: the payload a builder coded for ``given`` (the
    model's own array, unchanged since), or ``symbols`` coded here once."""
    coded = owner._coded
    if coded is not None and coded.fits(given, alphabet, gap_stream) and coded.codec is owner.codec:
        return owner.codec.wire_id, coded.payload
    return owner.codec.wire_id, owner.codec.encode(symbols, alphabet, gap_stream=gap_stream)


def _wire_dtype(name_or_code, tensor: str) -> DType:
    try:
        return wire_dtype(name_or_code)
    except UnsupportedDType:
        raise UnsupportedDType(name_or_code, tensor) from None


def _check_shape(name: str, shape) -> tuple[int, ...]:
    shape = tuple(int(d) for d in shape)
    if len(shape) > MAX_RANK or any(d < 0 for d in shape):
        raise InvalidSettings(f"shape {shape} of {name!r}: rank at most {MAX_RANK}, no negative dims")
    # as readers check it: the product of the non-zero dimensions bounds every dimension too
    nonzero = nonzero_product(shape)
    if nonzero > MAX_ELEMENTS:
        raise InvalidSettings(f"shape {shape} of {name!r}: the product of its non-zero dimensions is {nonzero}; "
                              f"the format allows {MAX_ELEMENTS}")
    return shape


def _typed(name: str, what: str, array, dtype: DType) -> np.ndarray:
    array = np.asarray(array)
    if dtype_of(array, name) != dtype:
        raise InvalidSettings(f"{what} of {name!r} is {array.dtype}, the tensor is {dtype.name} "
                              f"({numpy_dtype(dtype)})")
    flat = to_little_endian(array.reshape(-1))
    if dtype == DType.BOOL and flat.size and flat.view(np.uint8).max() > 1:  # readers refuse other bytes
        raise InvalidSettings(f"{what} of {name!r}: BOOL bytes must be 0 or 1")
    return flat


def _symbols(name: str, role: str, array, alphabet: int) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype.kind not in "ui":
        raise InvalidSettings(f"{role} of {name!r} must be integers, got {array.dtype}")
    flat = array.reshape(-1)
    if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= alphabet):
        raise InvalidSettings(f"{role} of {name!r} must lie in [0, {alphabet})")
    return np.ascontiguousarray(flat, dtype=np.uint16)


def _check_count(name: str, role: str, got: int, expected: int) -> None:
    if got != expected:
        raise InvalidSettings(f"{role} of {name!r} has {got} entries, the record stores {expected}")


def _gap_bits(name: str, gap_bits: int) -> int:
    if not MIN_GAP_BITS <= gap_bits <= MAX_GAP_BITS:
        raise InvalidSettings(f"gap_bits of {name!r} is {gap_bits}; allowed {MIN_GAP_BITS}..{MAX_GAP_BITS}")
    return gap_bits


def _lookup_bank(name: str, bank: str, banks) -> "BankInfo":
    if not banks or bank not in banks:
        raise InvalidSettings(f"{name!r} selects from bank {bank!r}, which is not in the file")
    return banks[bank]


def _kernel_size(name: str, dtype: DType, shape: tuple[int, ...], bank: "BankInfo") -> int:
    kernel = tuple(bank.shape[1:])
    if bank.dtype != dtype:
        raise InvalidSettings(f"{name!r} is {dtype.name}, its bank is {bank.dtype.name}")
    if len(shape) < len(kernel) or shape[len(shape) - len(kernel):] != kernel:
        raise InvalidSettings(f"{name!r} shape {shape} does not end with the bank kernel shape {kernel}")
    return int(np.prod(kernel, dtype=np.int64))


def _check_bank_shape(name: str, shape: tuple[int, ...]) -> None:
    if not shape or not 1 <= shape[0] <= MAX_BANK_SIZE or min(shape) < 1:
        raise InvalidSettings(f"bank {name!r} needs shape (L, *kernel) with 1 <= L <= {MAX_BANK_SIZE} "
                              f"and no zero dimension, got {shape}")


def _bytes_of(array: np.ndarray) -> memoryview:
    """The little-endian bytes of a contiguous 1-D array, without copying (any dtype)."""
    return memoryview(array.view(np.uint8))
