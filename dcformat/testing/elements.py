"""Elements of every dtype dcformat stores, and arrays of them.

The dtype table here is our own (the expected decode must not lean on
:mod:`dcformat.dtypes`). Values are drawn as bit patterns: arbitrary patterns, the
dtype's special values (:func:`special_bit_patterns`) and ordinary numbers.

Large arrays are not drawn element by element (hypothesis would run out of data); past
a few dozen elements a strategy draws a seed and a distribution and lets numpy fill the
array, then sprinkles in the special values. Small arrays are drawn element by element,
so failures shrink to readable examples.
"""

from __future__ import annotations

import math
from typing import Iterable

import ml_dtypes
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = ["DTYPE_NAMES", "WIRE_NUMPY_DTYPES", "special_bit_patterns", "arrays"]

# --- dtypes (our own table: the expected decode must not lean on dcformat.dtypes) -----

#: The numpy dtype each wire dtype name decodes to (spec/FORMAT.md, Table A.1).
WIRE_NUMPY_DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype("<u1"), "I8": np.dtype("<i1"),
    "I16": np.dtype("<i2"), "U16": np.dtype("<u2"),
    "I32": np.dtype("<i4"), "U32": np.dtype("<u4"),
    "I64": np.dtype("<i8"), "U64": np.dtype("<u8"),
    "F16": np.dtype("<f2"), "BF16": np.dtype(ml_dtypes.bfloat16),
    "F32": np.dtype("<f4"), "F64": np.dtype("<f8"),
    "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn), "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
}
#: Every wire dtype name, in wire-code order.
DTYPE_NAMES: tuple[str, ...] = tuple(WIRE_NUMPY_DTYPES)

_STORAGE = {1: np.dtype("<u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: np.dtype("<u8")}
#: (exponent bits, mantissa bits) of each float dtype.
_FLOAT_BITS = {"F16": (5, 10), "BF16": (8, 7), "F32": (8, 23), "F64": (11, 52),
               "F8_E4M3": (4, 3), "F8_E5M2": (5, 2)}
#: Arrays with more elements than this are filled by numpy from a drawn seed.
_EXPLICIT_LIMIT = 48


def _wire_name(dtype: np.dtype) -> str:
    dtype = np.dtype(dtype)
    if dtype.byteorder == ">":
        dtype = dtype.newbyteorder("<")
    for name, candidate in WIRE_NUMPY_DTYPES.items():
        if candidate == dtype:
            return name
    raise ValueError(f"{dtype} is not a dcformat dtype")


def _storage(name: str) -> np.dtype:
    return _STORAGE[WIRE_NUMPY_DTYPES[name].itemsize]


def _bits(name: str) -> int:
    return 8 * WIRE_NUMPY_DTYPES[name].itemsize


def special_bit_patterns(name: str) -> tuple[int, ...]:
    """Bit patterns every test of dtype ``name`` should meet, as unsigned ints.

    Floats: both zeros, the smallest and largest denormals, the smallest normal, 1.0,
    the largest finite value, infinities and NaNs (quiet, signalling, with payloads),
    each with either sign; every pattern is a valid value of its format (for the
    finite-only F8_E4M3 the "infinity" pattern is a large finite number). Integers:
    0, 1, the extremes and all ones. BOOL: 0 and 1.

    Examples
    --------
    >>> [hex(b) for b in special_bit_patterns("F8_E5M2")][:6]
    ['0x0', '0x1', '0x3', '0x4', '0x3c', '0x7b']
    """
    bits = _bits(name)
    if name == "BOOL":
        return (0, 1)
    if name not in _FLOAT_BITS:
        top = 1 << (bits - 1)
        return (0, 1, 2, top - 1, top, top + 1, (1 << bits) - 2, (1 << bits) - 1)
    e, m = _FLOAT_BITS[name]
    exp_all = ((1 << e) - 1) << m
    one = ((1 << (e - 1)) - 1) << m
    positive = [0, 1, (1 << m) - 1, 1 << m, one, exp_all - 1, exp_all, exp_all | 1,
                exp_all | (1 << (m - 1)), exp_all | ((1 << m) - 1), exp_all | ((1 << m) - 1) >> 1,
                exp_all | ((1 << m) - 2)]  # the last: F8_E4M3's largest finite, a NaN elsewhere
    sign = 1 << (e + m)
    out = []
    for s in (0, sign):
        for p in positive:
            if p | s not in out:
                out.append(p | s)
    return tuple(out)


def _to_bits(name: str, value: float) -> int:
    """The bit pattern of ``value`` rounded to dtype ``name``."""
    with np.errstate(all="ignore"):
        arr = np.array([value], dtype=np.float64).astype(WIRE_NUMPY_DTYPES[name])
    return int(arr.view(_storage(name))[0])


def _element_bits(name: str) -> st.SearchStrategy[int]:
    """One element of dtype ``name`` as its unsigned bit pattern."""
    bits = _bits(name)
    specials = st.sampled_from(special_bit_patterns(name))
    if name == "BOOL":
        return st.integers(0, 1)
    if name not in _FLOAT_BITS:
        return st.one_of(st.integers(0, (1 << bits) - 1), specials)
    if name in ("F16", "F32", "F64"):
        # bounded: an unbounded narrow float overflows when hypothesis narrows it, and is rejected
        largest = float(np.finfo(WIRE_NUMPY_DTYPES[name]).max)
        ordinary = st.floats(-largest, largest, width=bits)
    else:
        ordinary = st.floats(-1e4, 1e4, allow_nan=False, width=32)
    return st.one_of(specials, ordinary.map(lambda x: _to_bits(name, x)), st.integers(0, (1 << bits) - 1))


def _seeded_bits(name: str, count: int, seed: int, mode: str) -> np.ndarray:
    """``count`` bit patterns of dtype ``name`` filled by numpy: fast for any count."""
    rng = np.random.default_rng(seed)
    storage = _storage(name)
    dtype = WIRE_NUMPY_DTYPES[name]
    if name == "BOOL":
        return rng.integers(0, 2, count).astype(storage)
    if mode == "bits":
        out = np.frombuffer(rng.bytes(count * storage.itemsize), dtype=storage).copy()
    elif mode == "few":  # a handful of distinct values, as weight sharing leaves
        pool = np.frombuffer(rng.bytes(4 * storage.itemsize), dtype=storage)
        out = pool[rng.integers(0, 4, count)].copy()
    else:  # "ordinary": small normal values (small integers for integer dtypes)
        if name in _FLOAT_BITS:
            with np.errstate(all="ignore"):
                out = (rng.standard_normal(count) * 0.1).astype(dtype).view(storage).copy()
        else:
            out = rng.integers(-100, 100, count).astype(storage)
    specials = np.array(special_bit_patterns(name), dtype=storage)
    k = int(rng.integers(0, min(count, 8) + 1))
    out[rng.integers(0, count, k)] = specials[rng.integers(0, specials.size, k)]
    return out


@st.composite
def _value_bits(draw, name: str, count: int) -> np.ndarray:
    """A 1-D array of ``count`` bit patterns (the storage view) of dtype ``name``."""
    if count <= _EXPLICIT_LIMIT:
        return draw(hnp.arrays(_storage(name), count, elements=_element_bits(name)))
    mode = draw(st.sampled_from(["bits", "ordinary", "few"]))
    return _seeded_bits(name, count, draw(st.integers(0, 2**32 - 1)), mode)


def _as_strategy(value, what: str) -> st.SearchStrategy:
    """A strategy from a strategy, a single value, or a sequence of choices."""
    if isinstance(value, st.SearchStrategy):
        return value
    if isinstance(value, str):
        return st.just(value)
    if isinstance(value, Iterable):
        choices = list(value)
        if not choices:
            raise ValueError(f"{what} must not be empty")
        return st.sampled_from(choices)
    raise TypeError(f"{what} must be a strategy, a value or a sequence of values")


def _default_shapes() -> st.SearchStrategy[tuple[int, ...]]:
    return st.one_of(
        hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6),
        st.tuples(st.integers(0, 3000)),  # long 1-D tensors: multi-chunk streams, fillers
    )


def _check_dtypes(dtypes) -> None:
    if not isinstance(dtypes, st.SearchStrategy):
        names = [dtypes] if isinstance(dtypes, str) else list(dtypes)
        unknown = [n for n in names if n not in WIRE_NUMPY_DTYPES]
        if unknown:
            raise ValueError(f"unknown dtype names {unknown}; choose from {DTYPE_NAMES}")


# --- arrays -------------------------------------------------------------------------


def arrays(dtypes=DTYPE_NAMES, shapes=None, *, big_endian: bool = False,
           non_contiguous: bool = False) -> st.SearchStrategy[np.ndarray]:
    """Arbitrary numpy arrays of the dtypes dcformat stores.

    Parameters
    ----------
    dtypes : str, sequence of str, or strategy of str
        Wire dtype names (``"F32"``, ``"BF16"``, ...; see :data:`DTYPE_NAMES`).
    shapes : tuple, strategy of tuples, or None
        Shapes to draw; the default mixes rank 0 to 4 (sides 0 to 6, so zero-sized and
        0-d arrays are common) with 1-D arrays of up to 3000 elements.
    big_endian : bool
        Also draw big-endian arrays of the multi-byte dtypes, BF16 included (the
        writer must byte-swap them; they decode as little-endian).
    non_contiguous : bool
        Also draw Fortran-ordered and strided views (the writer stores C order).

    Returns
    -------
    SearchStrategy[numpy.ndarray]

    Notes
    -----
    Elements are drawn as bit patterns: floats are arbitrary patterns (every NaN
    payload, denormals, both infinities, -0.0) as well as ordinary values, and the
    special patterns of :func:`special_bit_patterns` are favoured. BF16 and float8
    arrays use the ``ml_dtypes`` types. Compare results bit by bit, never with ``==``.

    Examples
    --------
    >>> import numpy as np
    >>> from hypothesis import given, settings
    >>> @settings(max_examples=25, deadline=None)
    ... @given(arrays(dtypes=["F16", "BF16"], shapes=(3,)))
    ... def check(a):
    ...     assert a.shape == (3,) and a.dtype.itemsize == 2
    >>> check()
    """
    _check_dtypes(dtypes)
    dtype_strategy = _as_strategy(dtypes, "dtypes")
    shape_strategy = _default_shapes() if shapes is None else (
        shapes if isinstance(shapes, st.SearchStrategy) else st.just(tuple(shapes)))

    @st.composite
    def _arrays(draw):
        name = draw(dtype_strategy)
        shape = tuple(int(d) for d in draw(shape_strategy))
        bits = draw(_value_bits(name, math.prod(shape)))
        array = bits.view(WIRE_NUMPY_DTYPES[name]).reshape(shape)
        if big_endian and array.dtype.itemsize > 1 and draw(st.booleans()):  # BF16 too (ml_dtypes)
            array = array.astype(array.dtype.newbyteorder(">"))
        if non_contiguous and array.ndim and array.size > 1:
            how = draw(st.sampled_from(["c", "fortran", "strided"]))
            if how == "fortran":
                array = np.asfortranarray(array)
            elif how == "strided":  # every other element of an array twice as long
                doubled = np.repeat(array, 2, axis=array.ndim - 1)
                array = doubled[..., ::2]
        return array

    return _arrays()
