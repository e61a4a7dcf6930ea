"""The one table between wire dtypes and numpy dtypes (safetensors ``_TYPES``).

BF16 and the float8 types use ``ml_dtypes`` so that numpy holds them exactly; every
dtype is stored little-endian. Kernels see values through :func:`storage_view`, an
unsigned integer view of the same bytes, so one gather kernel per width serves every
dtype bit-exactly.

``ml_dtypes`` is imported the first time one of its dtypes is asked for, not with
dcformat: it takes about half a second to import, and a file of float32 tensors, or a
caller that never asks for numpy arrays of them, has no use for it.
"""

from __future__ import annotations

import sys

import numpy as np

from .constants import DTYPE_SIZE, DType
from ..errors import UnknownDType, UnsupportedDType

_NUMPY = {
    DType.BOOL: np.dtype(np.bool_),
    DType.U8: np.dtype("<u1"),
    DType.I8: np.dtype("<i1"),
    DType.I16: np.dtype("<i2"),
    DType.U16: np.dtype("<u2"),
    DType.I32: np.dtype("<i4"),
    DType.U32: np.dtype("<u4"),
    DType.I64: np.dtype("<i8"),
    DType.U64: np.dtype("<u8"),
    DType.F16: np.dtype("<f2"),
    DType.F32: np.dtype("<f4"),
    DType.F64: np.dtype("<f8"),
}
#: The wire dtypes numpy holds through ml_dtypes, and the name of each there.
_ML_DTYPES = {DType.BF16: "bfloat16", DType.F8_E4M3: "float8_e4m3fn", DType.F8_E5M2: "float8_e5m2"}
_FROM_NUMPY = {dt.newbyteorder("<") if dt.byteorder not in "|=" else dt: code for code, dt in _NUMPY.items()}


def _add_ml_dtypes() -> None:
    """Import ml_dtypes and add its dtypes to both tables (once)."""
    if DType.BF16 in _NUMPY:
        return
    import ml_dtypes

    for code, name in _ML_DTYPES.items():
        dt = np.dtype(getattr(ml_dtypes, name))
        _FROM_NUMPY[dt] = code
        _NUMPY[code] = dt
_STORAGE = {1: np.dtype("<u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: np.dtype("<u8")}


def wire_dtype(name: str | DType | int) -> DType:
    """A wire dtype from its name (``"F32"``) or code; UnknownDType otherwise."""
    if isinstance(name, str):
        try:
            return DType[name]
        except KeyError:
            raise UnsupportedDType(name) from None
    try:
        return DType(int(name))
    except ValueError:
        raise UnknownDType(int(name)) from None


def numpy_dtype(dtype: DType | str) -> np.dtype:
    """The little-endian numpy dtype that holds a wire dtype exactly."""
    code = wire_dtype(dtype)
    if code in _ML_DTYPES:
        _add_ml_dtypes()
    return _NUMPY[code]


def dtype_of(array: np.ndarray, name: str = "") -> DType:
    """The wire dtype of a numpy array (either byte order); UnsupportedDType otherwise."""
    dt = array.dtype
    key = dt.newbyteorder("<") if dt.byteorder == ">" else dt
    if key not in _FROM_NUMPY and "ml_dtypes" in sys.modules:  # an array of its dtypes needs it imported
        _add_ml_dtypes()
    try:
        return _FROM_NUMPY[key]
    except KeyError:
        raise UnsupportedDType(dt, name) from None


def itemsize(dtype: DType) -> int:
    return DTYPE_SIZE[dtype]


def storage_dtype(dtype: DType) -> np.dtype:
    """The unsigned integer dtype with the same width as ``dtype``."""
    return _STORAGE[DTYPE_SIZE[dtype]]


def storage_view(array: np.ndarray) -> np.ndarray:
    """The same bytes viewed as unsigned integers of the element width."""
    return array.view(_STORAGE[array.dtype.itemsize])


def to_little_endian(array: np.ndarray) -> np.ndarray:
    """A C-contiguous little-endian copy if needed, the array itself otherwise."""
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return np.ascontiguousarray(array)
