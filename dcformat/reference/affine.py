"""AFFINE codebooks (v1.3): spec/FORMAT.md, "AFFINE codebooks" (read :mod:`.decoder` first).

A codebook whose entries lie on a uniform grid may be stored as the grid's Base and Step
(Codec 3, AFFINE) instead of its values, in a CODEBOOK record of DType F32, F16 or BF16
or as the shared codebook of a GROUPED record. This module holds what such a codebook
adds to "Records" (R44: the file's feature bit and the record's DType, checked right
after the Codec; the Length, right after the Segment_Ref) and to "Decoding a record"
(R45, then the float32 entries). :mod:`.decoder` calls it for a CODEBOOK record's
codebook, whose entries it rounds to the DType as GROUPED values are
(:func:`.grouped.float32_as_dtype`), and :mod:`.grouped` for a GROUPED one's; the codes
that index the entries are decoded as for a stored table.

The entries are computed one at a time with numpy float32 scalars (IEEE binary32, each
operation rounded to nearest even on its own: no fused multiply-add).
"""

from __future__ import annotations

import math
import struct

import numpy as np

from ..format.constants import FEATURE_AFFINE, DType, ValueKind
from ..errors import InvalidHeader, InvalidValue

#: "a CODEBOOK record's DType must be F32, F16 or BF16" (R44): the DTypes its float32
#: entries are rounded to, as GROUPED values are.
AFFINE_DTYPES = (DType.F32, DType.F16, DType.BF16)
#: "Its 8 bytes are Base and Step, two little-endian IEEE 754 binary32 values."
AFFINE_LENGTH = 8


# === Records ===========================================================================


def check_affine_codec(where: str, dtype: DType, value_kind: ValueKind, required_features: int) -> None:
    """R44, checked right after the Codec is read: "The file's Required_Features must have
    bit 2 set, and a CODEBOOK record's DType must be F32, F16 or BF16 (a GROUPED record's
    codebook is float32 whatever its DType), else InvalidHeader". """
    if not required_features & FEATURE_AFFINE:
        raise InvalidHeader(f"{where} Codec", "an AFFINE codebook needs Required_Features bit 2")
    if value_kind == ValueKind.CODEBOOK and dtype not in AFFINE_DTYPES:
        raise InvalidHeader(f"{where} Codec", f"an AFFINE codebook must be of DType F32, F16 or BF16, "
                                              f"not {dtype.name}")


def check_affine_length(where: str, length: int) -> None:
    """R44, checked right after the Segment_Ref is read: "its Length must be 8 else
    InvalidHeader"."""
    if length != AFFINE_LENGTH:
        raise InvalidHeader(f"{where} Length", f"{length} bytes, an AFFINE codebook has {AFFINE_LENGTH}")


# === Decoding a record =================================================================


def affine_entries(payload: bytes, name: str, size: int) -> list[np.float32]:
    """The ``size`` float32 entries of an AFFINE codebook segment: R45 first ("Both must
    be finite else InvalidValue"), then "e_i = f32(Base + f32(Step x f32(i)))"."""
    base, step = struct.unpack("<ff", payload)
    for field, value in (("Base", base), ("Step", step)):
        if not math.isfinite(value):
            raise InvalidValue(name, f"AFFINE codebook {field} is {value}, must be finite")
    base, step = np.float32(base), np.float32(step)
    # "i converted to binary32 (exactly: C <= 65,536), then two binary32 operations, each
    # rounded ..., never fused"; "a result beyond the binary32 range is an infinity".
    with np.errstate(over="ignore"):
        return [base + step * np.float32(i) for i in range(size)]

