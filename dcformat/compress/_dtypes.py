"""The numpy dtypes the compression pipeline knows, by their wire names (spec Table A.1)."""

from __future__ import annotations

import ml_dtypes
import numpy as np

#: Wire name -> native numpy dtype, for every dtype the format stores.
_NUMPY = {
    "BOOL": np.dtype(np.bool_), "U8": np.dtype(np.uint8), "I8": np.dtype(np.int8),
    "I16": np.dtype(np.int16), "U16": np.dtype(np.uint16), "I32": np.dtype(np.int32),
    "U32": np.dtype(np.uint32), "I64": np.dtype(np.int64), "U64": np.dtype(np.uint64),
    "F16": np.dtype(np.float16), "BF16": np.dtype(ml_dtypes.bfloat16),
    "F32": np.dtype(np.float32), "F64": np.dtype(np.float64),
    "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn), "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
}
_WIRE = {dt: name for name, dt in _NUMPY.items()}

#: The dtypes the pipeline compresses; everything else is kept exact.
COMPRESSIBLE = frozenset({"F16", "BF16", "F32", "F64"})


def wire_name(dtype: np.dtype) -> str | None:
    """The wire name of a numpy dtype (either byte order), or None if the format has none."""
    dtype = np.dtype(dtype)
    if dtype.byteorder not in "=|" and dtype.isnative is False:
        dtype = dtype.newbyteorder("=")
    return _WIRE.get(dtype)


def numpy_dtype(name: str) -> np.dtype:
    """The native numpy dtype of a wire name (KeyError if unknown)."""
    return _NUMPY[name]


def work_dtype(name: str) -> np.dtype:
    """The float type the pipeline computes in: float64 for F64, float32 otherwise."""
    return np.dtype(np.float64) if name == "F64" else np.dtype(np.float32)


def scale_exponent(x: np.ndarray) -> int:
    """e such that ``x * 2**-e`` has magnitudes below 1 and squares that cannot overflow.

    0 (no scaling) unless ``x`` is float64 with a largest magnitude outside about
    2**-200 .. 2**200; scaling by a power of two is exact.
    """
    if x.dtype != np.float64 or x.size == 0:
        return 0
    m = float(np.max(np.abs(x)))
    if m == 0.0:
        return 0
    e = int(np.frexp(m)[1])
    return e if abs(e) > 200 else 0
