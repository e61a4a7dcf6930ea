"""Dtype helpers of the pipeline, over the one wire-dtype table in :mod:`dcformat.format.dtypes`."""

from __future__ import annotations

import numpy as np

from ..format.dtypes import dtype_of
from ..format.dtypes import numpy_dtype as _numpy_dtype
from ..errors import UnsupportedDType

#: The dtypes the pipeline compresses; everything else is kept exact.
COMPRESSIBLE = frozenset({"F16", "BF16", "F32", "F64"})


def wire_name(dtype: np.dtype) -> str | None:
    """The wire name of a numpy dtype (either byte order), or None if the format has none."""
    try:
        return dtype_of(np.empty(0, dtype=dtype)).name
    except UnsupportedDType:
        return None


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype of a wire name (the one table in :mod:`dcformat.format.dtypes`)."""
    return _numpy_dtype(name)


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
