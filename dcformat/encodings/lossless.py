"""Exact tensors stored in as few bytes as the format allows: float planes or raw.

:func:`exact_tensor` is the one choice every writer of exact tensors makes (``--preset
lossless``, the tensors a lossy preset passes through, ``save(..., compress="lossless")``):
a float tensor becomes PLANES values (v1.2) when its coded planes, with their Segment_Refs
and alignment padding, take fewer bytes than the raw values would; anything else stays
the array, stored RAW. The planes are coded once, here, and the writer stores them as
they are.
"""

from __future__ import annotations

import numpy as np

from ..format.constants import DEFAULT_ALIGNMENT, PLANES_DTYPES, SEGMENT_REF_SIZE, align_up
from ..format.dtypes import dtype_of
from .encode import encode_tensor
from .model import Dense, EncodedTensor, PlaneValues

#: How exact tensors may be stored: "planes" (PLANES where smaller, else RAW) or "raw"
#: (always RAW: a file a v1.0 or v1.1 reader decodes).
EXACT_ENCODINGS = ("planes", "raw")
#: Tensors with fewer elements stay RAW without trying: a plane's stream header, its
#: Segment_Ref and its padding would cost more than coding a few hundred bytes can save.
MIN_PLANE_ELEMENTS = 256


def exact_tensor(name: str, array: np.ndarray, encoding: str = "planes") -> np.ndarray | EncodedTensor:
    """``array`` as it is best stored exactly: an EncodedTensor of PLANES values when they
    are smaller (bit-exact for every value, NaN payloads included), else ``array`` itself.

    Examples
    --------
    >>> w = (np.random.default_rng(0).standard_normal(4096) * 0.02).astype(np.float32)
    >>> stored = exact_tensor("w", w)
    >>> type(stored.values).__name__
    'PlaneValues'
    >>> ids = np.arange(4096)
    >>> exact_tensor("ids", ids) is ids  # not a float: stored RAW
    True
    """
    if encoding not in EXACT_ENCODINGS:
        raise ValueError(f"encoding must be one of {EXACT_ENCODINGS}, got {encoding!r}")
    if encoding == "raw" or not isinstance(array, np.ndarray) or array.size < MIN_PLANE_ELEMENTS:
        return array
    dtype = dtype_of(array, name)
    if dtype not in PLANES_DTYPES:
        return array
    shape = tuple(int(d) for d in array.shape)
    values = PlaneValues(np.ascontiguousarray(array).reshape(-1))
    record = encode_tensor(name, EncodedTensor(dtype.name, shape, Dense(), values))
    planes = sum(align_up(len(payload), DEFAULT_ALIGNMENT) + SEGMENT_REF_SIZE
                 for _, payload in record.segments.values()) + 8  # + Block_Size
    raw = align_up(array.nbytes, DEFAULT_ALIGNMENT) + SEGMENT_REF_SIZE
    if planes >= raw:
        return array
    return EncodedTensor(dtype.name, shape, Dense(),
                         PlaneValues.coded(values.values, values.block_size, dict(record.segments)))
