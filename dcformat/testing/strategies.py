"""Hypothesis strategies for dcformat values: stream codecs, encoded tensors, containers.

Everything here draws *valid* inputs: :func:`dcformat.save` accepts every value these
strategies produce, and :func:`~dcformat.testing.expected_tensors` says what the file
must decode to. Invalid files come from :func:`~dcformat.testing.mutations`. Arrays of
every dtype come from :mod:`.elements`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..encodings.model import (AffineCodebook, BankValues, CodebookValues, Dense, EncodedTensor, GroupedValues,
                               PlaneValues, RawValues, Sparse)
from ..streams import HuffmanCodec, PackedCodec
from .elements import (
    _EXPLICIT_LIMIT,
    _FLOAT_BITS,
    DTYPE_NAMES,
    WIRE_NUMPY_DTYPES,
    _as_strategy,
    _check_dtypes,
    _default_shapes,
    _storage,
    _value_bits,
    _wire_name,
    arrays,
)
from .expected import affine_entries

__all__ = [
    "LAYOUTS", "VALUE_KINDS", "ContainerSpec", "stream_codecs", "symbol_streams", "codebook_sizes",
    "encoded_tensors", "banks", "containers",
]

#: Layout names accepted by :func:`encoded_tensors` and :func:`containers`.
LAYOUTS: tuple[str, ...] = ("dense", "sparse")
#: Value-kind names accepted by :func:`encoded_tensors` and :func:`containers`.
VALUE_KINDS: tuple[str, ...] = ("raw", "codebook", "bank", "grouped", "planes")
#: The dtypes GROUPED values may have (FORMAT.md, "GROUPED values").
GROUPED_DTYPES: tuple[str, ...] = ("F32", "F16", "BF16")
#: The dtypes a CODEBOOK tensor's AFFINE codebook may have (FORMAT.md, "AFFINE codebooks").
AFFINE_DTYPES: tuple[str, ...] = GROUPED_DTYPES
#: The dtypes PLANES values may have (FORMAT.md, "PLANES values"): every float type.
PLANES_DTYPES: tuple[str, ...] = tuple(_FLOAT_BITS)
#: A PLANES tensor drawn has at most this many blocks (each block is a stream per plane)...
_MAX_PLANE_BLOCKS = 64
#: ... and at most this many segments (a record of more than 255 once failed to load:
#: drawn past that line, it stays covered).
_MAX_PLANE_SEGMENTS = 1 + 8 * _MAX_PLANE_BLOCKS


# --- streams ------------------------------------------------------------------------


def stream_codecs(*, packed: bool = True, huffman: bool = True) -> st.SearchStrategy:
    """Stream codecs with arbitrary valid settings.

    Parameters
    ----------
    packed, huffman : bool
        Which codecs to draw: ``PackedCodec()``, and ``HuffmanCodec`` with tiny chunks
        (1 to 16 symbols, so even short streams have many chunks), medium, default and
        huge chunks, and every ``max_code_length`` from 1 to 15 (short limits force
        length-limited codes).

    Returns
    -------
    SearchStrategy[StreamCodec]

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> from dcformat.streams import StreamCodec
    >>> @settings(max_examples=20, deadline=None)
    ... @given(stream_codecs())
    ... def check(codec):
    ...     assert isinstance(codec, StreamCodec)
    >>> check()
    """
    options = []
    if packed:
        options.append(st.just(PackedCodec()))
    if huffman:
        chunks = st.one_of(st.integers(1, 16), st.integers(17, 1024),
                           st.sampled_from([4096, 65536, 1 << 20]))
        options.append(st.builds(HuffmanCodec, chunk_symbols=chunks, max_code_length=st.integers(1, 15),
                                chunk_multiple=st.sampled_from([4, 1, 3])))
    if not options:
        raise ValueError("at least one of packed and huffman must be allowed")
    return st.one_of(options)


#: Symbol distributions of :func:`symbol_streams` beyond element-by-element draws.
_DISTRIBUTIONS = ("uniform", "geometric", "zipf", "constant", "few", "extremes", "phases", "phases")


def symbol_streams(count: int, alphabet_size: int) -> st.SearchStrategy[np.ndarray]:
    """``count`` uint16 symbols below ``alphabet_size``, often heavily skewed.

    Parameters
    ----------
    count : int
        Length of the stream.
    alphabet_size : int
        At least 1; every symbol is below it. Symbols are uint16, so an alphabet above
        65536 draws as 65536 does.

    Returns
    -------
    SearchStrategy[numpy.ndarray]

    Notes
    -----
    Short streams are drawn symbol by symbol; longer ones from a uniform, geometric,
    Zipf, constant or few-valued distribution (mapped through a random permutation of
    the alphabet, so frequent symbols are not always the small ones), from a skewed
    prefix followed by a uniform tail, or from just the two extremes 0 and
    ``alphabet_size - 1``. Skew is what makes Huffman coding win over raw chunks; the
    skewed-then-uniform streams make streams with both chunk modes.

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=20, deadline=None)
    ... @given(symbol_streams(100, 5))
    ... def check(s):
    ...     assert s.dtype == "uint16" and s.shape == (100,) and (s < 5).all()
    >>> check()
    """
    if alphabet_size < 1:
        raise ValueError("alphabet_size must be at least 1")
    alphabet_size = min(alphabet_size, 1 << 16)

    @st.composite
    def _streams(draw):
        if count == 0:
            return np.zeros(0, dtype=np.uint16)
        if count <= _EXPLICIT_LIMIT and draw(st.booleans()):
            return draw(hnp.arrays(np.uint16, count, elements=st.integers(0, alphabet_size - 1)))
        kind = draw(st.sampled_from(_DISTRIBUTIONS))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        if kind == "uniform":
            ranks = rng.integers(0, alphabet_size, count)
        elif kind == "geometric":
            ranks = rng.geometric(draw(st.sampled_from([0.7, 0.3, 0.05])), count) - 1
        elif kind == "zipf":
            ranks = rng.zipf(draw(st.sampled_from([1.2, 2.0])), count) - 1
        elif kind == "constant":
            ranks = np.zeros(count, dtype=np.int64)
        elif kind == "few":
            ranks = rng.integers(0, draw(st.integers(2, 4)), count)
        elif kind == "phases":  # skewed, then uniform: some chunks Huffman-coded, some raw
            ranks = rng.geometric(0.6, count) - 1
            cut = int(rng.integers(0, count + 1))
            ranks[cut:] = rng.integers(0, alphabet_size, count - cut)
        else:
            return np.where(rng.random(count) < 0.5, 0, alphabet_size - 1).astype(np.uint16)
        ranks = np.minimum(ranks, alphabet_size - 1)
        if alphabet_size <= 4096 or ranks.max() < 4096:  # a permutation of a huge alphabet is costly
            perm = rng.permutation(alphabet_size)
            return perm[ranks].astype(np.uint16)
        return ranks.astype(np.uint16)

    return _streams()


def codebook_sizes(max_size: int = 4096) -> st.SearchStrategy[int]:
    """Codebook sizes from 1 to ``max_size``: small, powers of two and their neighbours, any.

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=30, deadline=None)
    ... @given(codebook_sizes(300))
    ... def check(n):
    ...     assert 1 <= n <= 300
    >>> check()
    """
    edges = sorted({n for k in range(17) for n in (2**k - 1, 2**k, 2**k + 1) if 1 <= n <= max_size})
    return st.one_of(st.integers(1, min(16, max_size)), st.sampled_from(edges), st.integers(1, max_size))


# --- encoded tensors ----------------------------------------------------------------


def _positions(draw, units: int) -> np.ndarray:
    """Sorted distinct unit positions that a sparse record stores."""
    if units == 0:
        return np.zeros(0, dtype=np.int64)
    kind = draw(st.sampled_from(["density", "density", "none", "all", "last", "first", "explicit"]))
    if kind == "none":
        return np.zeros(0, dtype=np.int64)
    if kind == "all":
        return np.arange(units, dtype=np.int64)
    if kind == "last":
        return np.array([units - 1], dtype=np.int64)
    if kind == "first":
        return np.array([0], dtype=np.int64)
    if kind == "explicit":
        chosen = draw(st.lists(st.integers(0, units - 1), max_size=16))
        return np.unique(np.array(chosen, dtype=np.int64))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    density = draw(st.sampled_from([0.001, 0.01, 0.1, 0.5, 0.9]))
    return np.flatnonzero(rng.random(units) < density).astype(np.int64)


def _gaps_with_fillers(positions: np.ndarray, gap_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """The gap stream that reaches ``positions``, and which of its entries are fillers.

    A skip longer than ``2**gap_bits - 1`` is bridged by filler entries of the widest
    gap (spec/FORMAT.md, "Fillers"): f fillers cover f * 2**gap_bits units.
    """
    widest = (1 << gap_bits) - 1
    skips = np.diff(positions, prepend=-1) - 1
    fillers = skips // (widest + 1)
    per_entry = fillers + 1
    total = int(per_entry.sum())
    gaps = np.full(total, widest, dtype=np.int64)
    real = np.cumsum(per_entry) - 1
    gaps[real] = skips % (widest + 1)
    is_filler = np.ones(total, dtype=bool)
    is_filler[real] = False
    return gaps.astype(np.uint16), is_filler


def _gap_bits() -> st.SearchStrategy[int]:
    # small widths make fillers; 16 is the widest allowed
    return st.one_of(st.integers(1, 4), st.integers(1, 16), st.just(16))


def encoded_tensors(dtypes=DTYPE_NAMES, shapes=None, *, layouts=LAYOUTS, values=("raw", "codebook"),
                    banks: Mapping[str, object] | None = None, max_codebook_size: int = 4096,
                    codecs: st.SearchStrategy | None = None, affine: bool = True) -> st.SearchStrategy[EncodedTensor]:
    """Arbitrary valid :class:`~dcformat.EncodedTensor` objects.

    Parameters
    ----------
    dtypes, shapes
        As for :func:`arrays`. For BANK values the dtype is the bank's and the shape
        is drawn outer dimensions followed by the bank's kernel shape.
    layouts : sequence of {"dense", "sparse"}
    values : sequence of {"raw", "codebook", "bank", "grouped", "planes"}
        ``"bank"`` needs ``banks``. ``"grouped"`` (v1.1) is drawn only for the F32, F16
        and BF16 of ``dtypes`` (all three when ``dtypes`` is a strategy), ``"planes"``
        (v1.2) only for the float types of ``dtypes`` (all six when a strategy).
    banks : mapping of str to array or EncodedTensor, optional
        The banks (shape ``(L, *kernel)``) that BANK-valued tensors may select from;
        pass the same mapping to :func:`dcformat.save`. To draw banks and tensors
        together use :func:`containers`.
    max_codebook_size : int
        Codebooks have 1 to this many entries (see :func:`codebook_sizes`).
    codecs : strategy of StreamCodec, optional
        Codecs of the gap, code, selector and plane streams (default
        :func:`stream_codecs`).
    affine : bool
        Also draw AFFINE codebooks (v1.3, :class:`~dcformat.AffineCodebook`): for about one
        CODEBOOK tensor of F32, F16 or BF16 in four, and one GROUPED tensor in four. A
        reader of v1.2 or earlier passes False.

    Returns
    -------
    SearchStrategy[EncodedTensor]

    Notes
    -----
    Sparse tensors use any ``gap_bits`` from 1 to 16 and any density, empty included;
    skips wider than the widest gap are bridged with filler entries whose value is
    usually zero (a zero raw value, a code whose codebook entry is zero, or a selector
    of an all-zero kernel when the bank has one) and sometimes not. AFFINE codebooks have
    any finite base and step, and steps of half an F16 or BF16 spacing (entries at ties);
    a CODEBOOK tensor's entries may round to infinities, a GROUPED one's are finite. Symbol streams
    are often skewed (see :func:`symbol_streams`). PLANES values have any block size
    from 1 (at most 64 blocks, under 256 segments) to more than the stored count, and one codec
    for every plane or a tuple of one per plane (sometimes the default). One tensor in
    eight is handed over untidy: symbols as other integer dtypes, values big-endian or
    non-contiguous.

    Examples
    --------
    >>> import dcformat
    >>> from hypothesis import given, settings
    >>> from dcformat.testing import expected_tensors, ContainerSpec
    >>> @settings(max_examples=20, deadline=None)
    ... @given(encoded_tensors(dtypes=["F32", "U8"], layouts=["sparse"]))
    ... def check(t):
    ...     data = dcformat.save({"t": t})
    ...     want = expected_tensors(ContainerSpec({"t": t}))["t"]
    ...     assert dcformat.load(data)["t"].tobytes() == want.tobytes()
    >>> check()
    """
    _check_dtypes(dtypes)
    layouts, values = tuple(layouts), tuple(values)
    if not set(layouts) <= set(LAYOUTS) or not layouts:
        raise ValueError(f"layouts must be a non-empty subset of {LAYOUTS}")
    if not set(values) <= set(VALUE_KINDS) or not values:
        raise ValueError(f"values must be a non-empty subset of {VALUE_KINDS}")
    bank_arrays = {}
    if banks:
        from .expected import expected_array  # the decoded rows a selector picks
        bank_arrays = {name: expected_array(bank) for name, bank in banks.items()}
    grouped_names, planes_names = _names_among(dtypes, GROUPED_DTYPES), _names_among(dtypes, PLANES_DTYPES)
    kinds = [v for v in values if (v != "bank" or bank_arrays) and (v != "grouped" or grouped_names)
             and (v != "planes" or planes_names)]
    if not kinds:
        raise ValueError("BANK values need a non-empty banks mapping; GROUPED values an F32, F16 or BF16 dtype; "
                         "PLANES values a float dtype")
    dtype_strategy = _as_strategy(dtypes, "dtypes")
    shape_strategy = _default_shapes() if shapes is None else (
        shapes if isinstance(shapes, st.SearchStrategy) else st.just(tuple(shapes)))
    codec_strategy = stream_codecs() if codecs is None else codecs

    @st.composite
    def _tensors(draw):
        kind = draw(st.sampled_from(kinds))
        if kind == "bank":
            bank_name = draw(st.sampled_from(sorted(bank_arrays)))
            bank = bank_arrays[bank_name]
            name = _wire_name(bank.dtype)
            kernel = tuple(bank.shape[1:])
            outer = draw(st.one_of(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
                                   st.tuples(st.integers(0, 600))))
            shape, unit = tuple(outer) + kernel, math.prod(kernel)
        elif kind in ("grouped", "planes"):
            name = draw(st.sampled_from(grouped_names if kind == "grouped" else planes_names))
            shape, unit = tuple(int(d) for d in draw(shape_strategy)), 1
        else:
            name = draw(dtype_strategy)
            shape, unit = tuple(int(d) for d in draw(shape_strategy)), 1
        units = math.prod(shape) // unit

        if draw(st.sampled_from(layouts)) == "sparse":
            gap_bits = draw(_gap_bits())
            gaps, is_filler = _gaps_with_fillers(_positions(draw, units), gap_bits)
            layout = Sparse(gap_bits, gaps, draw(codec_strategy))
            zero_fillers = bool(is_filler.any()) and draw(st.sampled_from([True, True, False]))
        else:
            layout, is_filler, zero_fillers = Dense(), np.zeros(units, dtype=bool), False
        stored = is_filler.size

        dtype = WIRE_NUMPY_DTYPES[name]
        if kind in ("raw", "planes"):
            bits = draw(_value_bits(name, stored))
            if zero_fillers:
                bits[is_filler] = 0
            value = RawValues(bits.view(dtype)) if kind == "raw" else _plane_values(
                draw, name, bits.view(dtype), codec_strategy)
        elif kind == "codebook":
            size = draw(codebook_sizes(max_codebook_size))
            grid = affine and name in AFFINE_DTYPES and _one_in_four(draw)
            codebook = None if grid else draw(_value_bits(name, size))
            codes = draw(symbol_streams(stored, size)).copy()
            zero = _zero_filler_code(draw, codes, is_filler, size) if zero_fillers else None
            if grid:
                codebook = _affine_codebook(draw, size, finite=False, zero_at=zero)
            else:
                if zero is not None:
                    codebook[zero] = 0
                codebook = codebook.view(dtype)
            value = CodebookValues(codebook, codes, draw(codec_strategy))
        elif kind == "grouped":
            value = _grouped_values(draw, units, is_filler, zero_fillers, isinstance(layout, Sparse),
                                    min(max_codebook_size, 4096), codec_strategy, affine)
        else:
            size = bank.shape[0]
            selectors = draw(symbol_streams(stored, size)).copy()
            rows = bank.reshape(size, -1).view(_storage(name))
            zero_rows = np.flatnonzero(~rows.any(axis=1))
            if zero_fillers and zero_rows.size:
                selectors[is_filler] = zero_rows[0]
            value = BankValues(bank_name, selectors, draw(codec_strategy))
        if draw(st.integers(0, 7)) == 7:
            layout, value = _untidy(draw, layout, value)
        return EncodedTensor(name, shape, layout, value)

    return _tensors()


def _names_among(dtypes, allowed: tuple[str, ...]) -> list[str]:
    """The names of ``dtypes`` that are ``allowed`` (all of them when ``dtypes`` is a strategy)."""
    if isinstance(dtypes, st.SearchStrategy):
        return list(allowed)
    return [d for d in ([dtypes] if isinstance(dtypes, str) else dtypes) if d in allowed]


def _plane_count(name: str) -> int:
    """How many planes a PLANES value of float dtype ``name`` splits into (FORMAT.md,
    "PLANES values"): the exponent, then the sign and mantissa 8 bits at a time.

    Examples
    --------
    >>> [_plane_count(n) for n in ("F16", "BF16", "F32", "F64", "F8_E4M3", "F8_E5M2")]
    [3, 2, 4, 8, 2, 2]
    """
    _, mantissa = _FLOAT_BITS[name]
    return 1 + -(-(1 + mantissa) // 8)


def _block_sizes(name: str, stored: int) -> st.SearchStrategy[int]:
    """Block sizes of a PLANES record of ``stored`` units: the smallest drawn (1 for a
    short tensor), one block, any, more than the stored count, and the format's largest."""
    most = max(stored, 1)
    blocks = min(_MAX_PLANE_BLOCKS, (_MAX_PLANE_SEGMENTS - 1) // _plane_count(name))  # one more: the gaps
    least = max(1, -(-stored // blocks))
    return st.one_of(st.just(least), st.just(most), st.integers(least, most), st.integers(most + 1, 4 * most + 4),
                     st.just(1 << 48))


def _plane_values(draw, name: str, values: np.ndarray, codec_strategy) -> PlaneValues:
    """PLANES values: one codec for every plane, a tuple of one per plane, or the default."""
    block_size = draw(_block_sizes(name, values.size))
    how = draw(st.sampled_from(["one", "per plane", "default"]))
    if how == "default":
        return PlaneValues(values, block_size)
    if how == "one":
        return PlaneValues(values, block_size, draw(codec_strategy))
    return PlaneValues(values, block_size, tuple(draw(codec_strategy) for _ in range(_plane_count(name))))


def _one_in_four(draw) -> bool:
    return draw(st.integers(0, 3)) == 0


def _zero_filler_code(draw, codes: np.ndarray, is_filler: np.ndarray, size: int) -> int:
    """The code every filler gets (its entry is to be zero); ``codes`` changed in place."""
    zero = draw(st.integers(0, size - 1))
    codes[is_filler] = zero
    return zero


#: AFFINE Bases: any finite float32, small integers, and values at the F16 and float32 tops.
_AFFINE_BASES = st.one_of(st.floats(width=32, allow_nan=False, allow_infinity=False),
                          st.integers(-4096, 4096).map(float),
                          st.sampled_from([0.0, -0.0, 1.0, -1.0, 65504.0, -65504.0, 3.0e38, -3.0e38]))
#: AFFINE Steps: any finite float32; half the spacing of F16 (2^-11 at 1, 2^-25 below its
#: subnormals) and of BF16 (2^-8 at 1), whose grids land on ties; 0; huge ones.
_AFFINE_STEPS = st.one_of(st.floats(width=32, allow_nan=False, allow_infinity=False),
                          st.sampled_from([sign * 2.0 ** e for e in (-25, -11, -8, 0, 3, 100, 120)
                                           for sign in (1, -1)] + [0.0, -0.0, 0.05]))


def _affine_codebook(draw, size: int, *, finite: bool, zero_at: int | None) -> AffineCodebook:
    """An AFFINE codebook of ``size`` entries. ``zero_at``: Base is ``-f32(Step x zero_at)``,
    so that entry is +0.0 (fillers select it). ``finite``: every entry finite (GROUPED
    tables must be). Either may need a smaller Step: it is quartered until both hold
    (down to 0 at worst, every entry then the finite Base)."""
    base, step = draw(_AFFINE_BASES), draw(_AFFINE_STEPS)
    while True:
        if zero_at is not None:
            with np.errstate(over="ignore"):
                base = -float(np.float32(step) * np.float32(zero_at))
        book = AffineCodebook(base, step, size)
        if math.isfinite(book.base) and not (finite and not np.isfinite(affine_entries(book)).all()):
            return book
        step = float(np.float32(step) / np.float32(4))


def _f32_tables(special: list[float]) -> st.SearchStrategy[float]:
    """Finite float32 values: any, small integers (whose products with powers of two land
    on the halfway points of F16 and BF16), and ``special`` ones."""
    return st.one_of(st.floats(width=32, allow_nan=False, allow_infinity=False),
                     st.integers(-4096, 4096).map(float), st.sampled_from(special))


#: Scales: any positive finite float32, powers of two (exact products: ties), and 2^100
#: (products past the float32 range).
_SCALES = st.one_of(st.floats(min_value=0.0, exclude_min=True, width=32, allow_infinity=False),
                    st.sampled_from([2.0 ** e for e in (-24, -14, -11, -8, -7, 0, 1, 100)]))
_CODEBOOK_VALUES = _f32_tables([0.0, -0.0, 65520.0, 3.0e38, -3.0e38, 2.0 ** -14])
_OFFSET_VALUES = _f32_tables([0.0, -0.0, 1.0, -1.0, 3.0e38])


def _group_sizes(units: int) -> st.SearchStrategy[int]:
    """1, U (one group), any (often leaving a shorter last group), and more than U."""
    most = max(units, 1)
    return st.one_of(st.just(1), st.just(most), st.integers(1, most), st.integers(1, 4 * most + 4),
                     st.just(1 << 48))


def _grouped_values(draw, units: int, is_filler, zero_fillers: bool, sparse: bool, max_codebook_size: int,
                    codec_strategy, affine: bool) -> GroupedValues:
    """GROUPED values for ``units`` units, ``is_filler.size`` of them stored: finite tables
    (or an AFFINE codebook of finite entries), positive scales, offsets only for a DENSE
    layout."""
    group_size = draw(_group_sizes(units))
    groups = -(-units // group_size)
    grid = affine and _one_in_four(draw)

    def table_size(most: int) -> int:
        return draw(st.one_of(st.integers(1, min(8, most)), st.integers(1, most)))

    def table(elements, most: int) -> np.ndarray:
        size = table_size(most)
        return np.array(draw(st.lists(elements, min_size=size, max_size=size)), dtype=np.float32)

    codebook = None if grid else table(_CODEBOOK_VALUES, max_codebook_size)
    size = table_size(max_codebook_size) if grid else codebook.size
    codes = draw(symbol_streams(is_filler.size, size)).copy()
    zero = _zero_filler_code(draw, codes, is_filler, size) if zero_fillers else None
    if grid:
        codebook = _affine_codebook(draw, size, finite=True, zero_at=zero)
    elif zero is not None:
        codebook[zero] = 0
    scales = table(_SCALES, 300)
    scale_codes = draw(symbol_streams(groups, scales.size))
    offsets = offset_codes = None
    if not sparse and draw(st.booleans()):
        offsets = table(_OFFSET_VALUES, 300)
        offset_codes = draw(symbol_streams(groups, offsets.size))
    return GroupedValues(group_size, codebook, codes, scales, scale_codes, offsets, offset_codes,
                         draw(codec_strategy), draw(codec_strategy))


def _untidy(draw, layout, value):
    """The same tensor as a caller might hand it over: symbols of another integer dtype,
    values and codebooks big-endian or strided. The writer must normalise them all."""
    def symbols(array):
        dtype = draw(st.sampled_from(["<i4", ">u2", "<i8", ">i4"]))
        return array.astype(dtype)

    def values(array):
        if array.dtype.kind in "iuf" and array.dtype.itemsize > 1 and draw(st.booleans()):
            return array.astype(array.dtype.newbyteorder(">"))
        return np.repeat(array, 2)[::2]  # same values, not contiguous

    def table(codebook, untidy):  # an AFFINE codebook has no array to untidy
        return codebook if isinstance(codebook, AffineCodebook) else untidy(codebook)

    if isinstance(layout, Sparse):
        layout = Sparse(layout.gap_bits, symbols(layout.gaps), layout.codec)
    if isinstance(value, RawValues):
        value = RawValues(values(value.values))
    elif isinstance(value, CodebookValues):
        value = CodebookValues(table(value.codebook, values), symbols(value.codes), value.codec)
    elif isinstance(value, PlaneValues):  # a per-plane tuple may come as a list
        codec = list(value.codec) if isinstance(value.codec, tuple) else value.codec
        value = PlaneValues(values(value.values), value.block_size, codec)
    elif isinstance(value, GroupedValues):  # tables stay float32 (native order), strided
        strided = (lambda t: None if t is None else np.repeat(t, 2)[::2])
        value = GroupedValues(value.group_size, table(value.codebook, strided), symbols(value.codes),
                              strided(value.scales), symbols(value.scale_codes), strided(value.offsets),
                              None if value.offset_codes is None else symbols(value.offset_codes),
                              value.codec, value.table_codec)
    else:
        value = BankValues(value.bank, symbols(value.selectors), value.codec)
    return layout, value


def banks(dtypes=DTYPE_NAMES, *, max_size: int = 64, encoded: bool = True, affine: bool = True) -> st.SearchStrategy:
    """One kernel bank: an array (or an EncodedTensor) of shape ``(L, *kernel)``.

    ``L`` is 1 to ``max_size`` (sometimes 1, sometimes exactly ``max_size``), the
    kernel has rank 0 to 3 with sides 1 to 4, and the bank often has an all-zero row
    for fillers to select. With ``encoded`` the bank itself may be stored sparse or
    codebook-coded, as the format allows (with ``affine``, by an AFFINE codebook too, v1.3).

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=20, deadline=None)
    ... @given(banks(["F32"], encoded=False))
    ... def check(b):
    ...     assert b.ndim >= 1 and 1 <= b.shape[0] <= 64
    >>> check()
    """
    _check_dtypes(dtypes)
    dtype_strategy = _as_strategy(dtypes, "dtypes")

    @st.composite
    def _banks(draw):
        name = draw(dtype_strategy)
        size = draw(st.one_of(st.integers(1, max_size), st.sampled_from([1, max_size])))
        kernel = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4))
        shape = (size, *kernel)
        if encoded and draw(st.booleans()):
            return draw(encoded_tensors([name], shape, values=("raw", "codebook"), max_codebook_size=64,
                                        affine=affine))
        bits = draw(_value_bits(name, math.prod(shape))).reshape(size, -1)
        if draw(st.booleans()):
            bits[draw(st.integers(0, size - 1))] = 0
        return bits.view(WIRE_NUMPY_DTYPES[name]).reshape(shape)

    return _banks()


# --- containers ---------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerSpec:
    """What a container holds: tensors, banks and metadata, consistent together.

    ``tensors`` maps names to numpy arrays or EncodedTensors; ``banks`` maps bank names
    to arrays or EncodedTensors of shape ``(L, *kernel)``, and every BANK-valued tensor
    names one of them. The fields are what :func:`dcformat.save` takes::

        dcformat.save(spec.tensors, spec.metadata, banks=spec.banks)

    ``alignment`` is the segment alignment :meth:`save` writes with: None for the
    writers' default (64, what ``dcformat.save`` uses), else a power of two from 8 to
    4096 (through :class:`~dcformat.container.writer.ContainerWriter`). It does not
    change what the file decodes to.

    Examples
    --------
    >>> import numpy as np
    >>> spec = ContainerSpec({"w": np.arange(3, dtype=np.int16)}, metadata={"k": "v"})
    >>> import dcformat
    >>> dcformat.load(spec.save())["w"]
    array([0, 1, 2], dtype=int16)
    """

    tensors: dict = field(default_factory=dict)
    banks: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    alignment: int | None = None

    def save(self) -> bytes:
        """The bytes of the file: what :func:`dcformat.save` writes, at ``alignment``."""
        if self.alignment is None:
            from ..numpy import save

            return save(self.tensors, self.metadata, banks=self.banks)
        from ..container.writer import ContainerWriter

        writer = ContainerWriter(self.metadata, alignment=self.alignment)
        for name, bank in self.banks.items():
            writer.add_bank(name, bank)
        for name, tensor in self.tensors.items():
            writer.add_tensor(name, tensor)
        return writer.to_bytes()

    def expected(self) -> dict[str, np.ndarray]:
        """The tensors the saved file must decode to (see :func:`expected_tensors`)."""
        from .expected import expected_tensors

        return expected_tensors(self)


def _names() -> st.SearchStrategy[str]:
    # any UTF-8 text, the empty name included; short so that headers stay small
    return st.text(st.characters(codec="utf-8"), max_size=12)


def _unique(names: list[str], count: int, stem: str) -> list[str]:
    """``names`` without repeats, topped up to ``count`` (drawing distinct short strings
    with ``unique=True`` makes hypothesis give up now and then)."""
    names = list(dict.fromkeys(names))
    i = 0
    while len(names) < count:
        if f"{stem}{i}" not in names:
            names.append(f"{stem}{i}")
        i += 1
    return names


def containers(dtypes=DTYPE_NAMES, *, layouts=LAYOUTS, values=VALUE_KINDS, min_tensors: int = 0,
               max_tensors: int = 4, max_banks: int = 2, plain_arrays: bool = True,
               metadata: st.SearchStrategy | None = None, alignments: st.SearchStrategy | None = None,
               affine: bool = True) -> st.SearchStrategy[ContainerSpec]:
    """Whole containers: tensors, the banks they select from, and metadata.

    Parameters
    ----------
    dtypes : sequence of str or strategy
        Wire dtype names of tensors and banks.
    layouts, values
        Restrict the encoded tensors (see :func:`encoded_tensors`). When ``values``
        holds ``"bank"``, 0 to ``max_banks`` banks are drawn first (at least one when
        BANK is the only kind) and BANK-valued tensors select from them. Banks
        themselves are stored in any layout with raw or codebook values.
    min_tensors, max_tensors : int
        How many tensors.
    plain_arrays : bool
        Also draw tensors given as plain numpy arrays (any byte order, contiguous or
        not) rather than EncodedTensors; only when ``values`` holds ``"raw"`` and
        ``layouts`` holds ``"dense"``.
    metadata : strategy of dict[str, str], optional
        Default: up to 4 entries of arbitrary text.
    alignments : strategy of int or None, optional
        ``ContainerSpec.alignment``. Default: None (the writers' 64) most of the time,
        else 8, 16, 32, 128 or 4096.
    affine : bool
        Draw AFFINE codebooks (v1.3) for tensors and banks (see :func:`encoded_tensors`).

    Returns
    -------
    SearchStrategy[ContainerSpec]

    Examples
    --------
    >>> import dcformat
    >>> from hypothesis import given, settings
    >>> from dcformat.testing import expected_tensors
    >>> @settings(max_examples=10, deadline=None)
    ... @given(containers(max_tensors=2))
    ... def check(spec):
    ...     got = dcformat.load(dcformat.save(spec.tensors, spec.metadata, banks=spec.banks))
    ...     want = expected_tensors(spec)
    ...     assert [a.tobytes() for a in got.values()] == [a.tobytes() for a in want.values()]
    >>> check()
    """
    _check_dtypes(dtypes)
    layouts, values = tuple(layouts), tuple(values)
    metadata_strategy = metadata if metadata is not None else st.lists(
        st.tuples(_names(), st.text(st.characters(codec="utf-8"), max_size=40)), max_size=4).map(dict)
    arrays_ok = plain_arrays and "raw" in values and "dense" in layouts
    # None at both ends of the list: hypothesis favours the first and last choices
    alignment_strategy = alignments if alignments is not None else st.sampled_from(
        [None, 8, None, 16, None, 32, None, 128, None, 4096, None])

    @st.composite
    def _containers(draw):
        bank_specs: dict = {}
        if "bank" in values:
            least = 1 if values == ("bank",) and max_tensors > 0 else 0
            count = draw(st.integers(least, max(least, max_banks)))
            for name in _unique(draw(st.lists(_names(), max_size=count)), count, "bank"):
                bank_specs[name] = draw(banks(dtypes, affine=affine))
        kinds = [v for v in values if v != "bank" or bank_specs]
        choices = []
        if kinds:
            choices.append(encoded_tensors(dtypes, layouts=layouts, values=kinds, banks=bank_specs or None,
                                           affine=affine))
        if arrays_ok:
            choices.append(arrays(dtypes, big_endian=True, non_contiguous=True))
        tensors = {}
        if choices:
            # an empty container now and then, not a quarter of the time
            counts = [*range(max(min_tensors, 1), max_tensors + 1)] * 4 + [min_tensors]
            count = draw(st.sampled_from(counts))
            names = _unique(draw(st.lists(_names(), max_size=count)), count, "tensor")
            for name in names:
                # encoded tensors three times as often as plain arrays: they have more to test
                tensors[name] = draw(choices[0] if len(choices) == 1 else
                                     st.sampled_from([0, 0, 0, 1]).flatmap(choices.__getitem__))
        return ContainerSpec(tensors, bank_specs, draw(metadata_strategy), draw(alignment_strategy))

    return _containers()
