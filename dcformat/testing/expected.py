"""What a container must decode to, computed from what was written, in plain numpy.

This is the oracle of the round-trip properties, so it shares nothing with dcformat's
decoders: no stream codec, no kernel, no container code. It reads the symbols straight
from the :class:`~dcformat.EncodedTensor` objects and applies spec/FORMAT.md,
"Decoding a record": an output of zero bits, the stored units' values (raw, the
codebook entry of each code, the bank row of each selector, the scaled codebook entry
of GROUPED values, or the raw value PLANES values split) placed at every unit
(DENSE) or at ``cumsum(gaps + 1) - 1`` (SPARSE). An AFFINE codebook's entries (v1.3)
are computed here too, from its base and step.
"""

from __future__ import annotations

import math

import numpy as np

from ..encodings.model import (AffineCodebook, BankValues, CodebookValues, Dense, EncodedTensor, GroupedValues,
                               PlaneValues, RawValues, Sparse)
from .elements import WIRE_NUMPY_DTYPES, _wire_name

__all__ = ["expected_tensors", "expected_banks", "expected_array", "affine_entries"]

_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _bits_of(array: np.ndarray, name: str) -> np.ndarray:
    """The little-endian C-order element bits of ``array``, as unsigned ints (1-D)."""
    dtype = WIRE_NUMPY_DTYPES[name]
    array = np.asarray(array)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    flat = np.ascontiguousarray(array.reshape(-1))
    if flat.dtype != dtype:
        raise ValueError(f"array of dtype {flat.dtype} in a {name} tensor")
    return flat.view(_UINT[dtype.itemsize])


def expected_array(tensor, banks: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The array one tensor (ndarray or EncodedTensor) must decode to.

    ``banks`` maps bank names to their expected arrays; it is needed only for
    BANK-valued tensors.

    Examples
    --------
    >>> import numpy as np
    >>> from dcformat import EncodedTensor, Sparse, CodebookValues
    >>> t = EncodedTensor("F32", (2, 3), Sparse(2, np.array([1, 3], dtype=np.uint16)),
    ...                   CodebookValues(np.array([0.5, -2.0], dtype=np.float32),
    ...                                  np.array([1, 0], dtype=np.uint16)))
    >>> expected_array(t)
    array([[ 0. , -2. ,  0. ],
           [ 0. ,  0. ,  0.5]], dtype=float32)

    PLANES values decode to the values themselves, bit for bit:

    >>> from dcformat import PlaneValues
    >>> p = EncodedTensor("F16", (4,), Sparse(1, np.array([1, 0], dtype=np.uint16)),
    ...                   PlaneValues(np.array([-0.0, np.inf], dtype=np.float16), block_size=1))
    >>> expected_array(p)
    array([ 0., -0., inf,  0.], dtype=float16)
    """
    if not isinstance(tensor, EncodedTensor):
        array = np.asarray(tensor)
        name = _wire_name(array.dtype)
        return _bits_of(array, name).copy().view(WIRE_NUMPY_DTYPES[name]).reshape(array.shape)

    name = tensor.dtype
    dtype = WIRE_NUMPY_DTYPES[name]
    shape = tuple(int(d) for d in tensor.shape)
    values = tensor.values
    if isinstance(values, BankValues):
        bank = (banks or {})[values.bank]
        unit = math.prod(bank.shape[1:])
        table = _bits_of(bank, name).reshape(bank.shape[0], unit)
        rows = table[np.asarray(values.selectors, dtype=np.int64).reshape(-1)]
    elif isinstance(values, CodebookValues):
        unit = 1
        table = _bits_of(_codebook_table(values.codebook, dtype), name)
        rows = table[np.asarray(values.codes, dtype=np.int64).reshape(-1)].reshape(-1, 1)
    elif isinstance(values, (RawValues, PlaneValues)):  # PLANES: the raw values, losslessly
        unit = 1
        rows = _bits_of(values.values, name).reshape(-1, 1)
    elif isinstance(values, GroupedValues):
        unit = 1
        rows = _bits_of(grouped_values(tensor), name).reshape(-1, 1)
    else:
        raise TypeError(f"unknown values {values!r}")

    units = math.prod(shape) // unit
    out = np.zeros((units, unit), dtype=_UINT[dtype.itemsize])
    if isinstance(tensor.layout, Dense):
        out[:] = rows.reshape(units, unit)
    elif isinstance(tensor.layout, Sparse):
        gaps = np.asarray(tensor.layout.gaps, dtype=np.int64).reshape(-1)
        positions = np.cumsum(gaps + 1) - 1
        out[positions] = rows.reshape(-1, unit)
    else:
        raise TypeError(f"unknown layout {tensor.layout!r}")
    return out.view(dtype).reshape(shape)


def grouped_values(tensor: EncodedTensor) -> np.ndarray:
    """The stored values of a GROUPED tensor, in its dtype: numpy float32 arrays, one
    rounded operation at a time (product, then sum), then numpy's (ml_dtypes') cast to
    F16/BF16, which rounds to nearest even (FORMAT.md, "GROUPED values")."""
    values = tensor.values
    units = math.prod(int(d) for d in tensor.shape)
    if isinstance(tensor.layout, Sparse):
        positions = np.cumsum(np.asarray(tensor.layout.gaps, dtype=np.int64).reshape(-1) + 1) - 1
    else:
        positions = np.arange(units, dtype=np.int64)
    group = positions // int(values.group_size)
    codebook = _float32_codebook(values.codebook)
    stored = codebook[np.asarray(values.codes, dtype=np.int64).reshape(-1)]
    scale = np.asarray(values.scales, dtype=np.float32)[np.asarray(values.scale_codes, dtype=np.int64)]
    with np.errstate(over="ignore"):
        stored = stored * scale[group]
        if values.offsets is not None:
            offset = np.asarray(values.offsets, dtype=np.float32)[np.asarray(values.offset_codes, dtype=np.int64)]
            stored = stored + offset[group]
        return stored.astype(WIRE_NUMPY_DTYPES[tensor.dtype])


def affine_entries(codebook: AffineCodebook) -> np.ndarray:
    """The float32 entries of an AFFINE codebook, ``f32(base + f32(step * f32(i)))``
    (FORMAT.md, "AFFINE codebooks"): numpy float32 arrays, each operation rounded on its
    own (numpy never fuses a multiply and an add), an infinity past the float32 range.

    Examples
    --------
    >>> from dcformat import AffineCodebook
    >>> affine_entries(AffineCodebook(-1.0, 0.5, 5))
    array([-1. , -0.5,  0. ,  0.5,  1. ], dtype=float32)
    """
    with np.errstate(over="ignore"):
        return np.float32(codebook.base) + np.float32(codebook.step) * np.arange(codebook.size, dtype=np.float32)


def _float32_codebook(codebook) -> np.ndarray:
    """A GROUPED codebook's float32 entries: the table, or an AFFINE codebook's entries."""
    if isinstance(codebook, AffineCodebook):
        return affine_entries(codebook)
    return np.asarray(codebook, dtype=np.float32)


def _codebook_table(codebook, dtype: np.dtype) -> np.ndarray:
    """A CODEBOOK tensor's entries in its dtype: the table, or an AFFINE codebook's float32
    entries cast by numpy (ml_dtypes for BF16) to nearest even, past the largest finite
    value an infinity."""
    if not isinstance(codebook, AffineCodebook):
        return codebook
    with np.errstate(over="ignore"):
        return affine_entries(codebook).astype(dtype)


def expected_banks(spec) -> dict[str, np.ndarray]:
    """The arrays the banks of a :class:`ContainerSpec` must decode to, by name.

    Examples
    --------
    >>> import numpy as np
    >>> from dcformat.testing import ContainerSpec
    >>> expected_banks(ContainerSpec(banks={"k": np.eye(2, dtype=np.int8)}))["k"]
    array([[1, 0],
           [0, 1]], dtype=int8)
    """
    return {name: expected_array(bank) for name, bank in spec.banks.items()}


def expected_tensors(spec) -> dict[str, np.ndarray]:
    """The arrays the tensors of a :class:`ContainerSpec` must decode to, in order.

    Examples
    --------
    >>> import numpy as np
    >>> from dcformat import EncodedTensor, Dense, BankValues
    >>> from dcformat.testing import ContainerSpec
    >>> bank = np.array([[0, 0], [7, 9]], dtype=np.uint8)
    >>> t = EncodedTensor("U8", (3, 2), Dense(), BankValues("k", np.array([1, 0, 1], dtype=np.uint16)))
    >>> expected_tensors(ContainerSpec({"t": t}, banks={"k": bank}))["t"]
    array([[7, 9],
           [0, 0],
           [7, 9]], dtype=uint8)
    """
    banks = expected_banks(spec)
    return {name: expected_array(tensor, banks) for name, tensor in spec.tensors.items()}
