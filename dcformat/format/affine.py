"""AFFINE codebooks (FORMAT.md, "AFFINE codebooks", v1.3): a codebook on a uniform grid,
stored as its Base and Step.

Entry ``i`` is ``f32(Base + f32(Step * f32(i)))``: two float32 operations, each rounded,
never fused. numpy's float32 ``multiply`` and ``add`` are exactly those (it never fuses
two ufuncs), so the entries below are the ones every reader must compute.
"""

from __future__ import annotations

import struct

import numpy as np

from .constants import AFFINE_CODEBOOK_BYTES, DType

_PARAMETERS = struct.Struct("<ff")
assert _PARAMETERS.size == AFFINE_CODEBOOK_BYTES


def pack_affine(base: float, step: float) -> bytes:
    """The 8 bytes of an AFFINE codebook segment (``base`` and ``step`` must be float32 values)."""
    return _PARAMETERS.pack(base, step)


def unpack_affine(payload) -> tuple[np.float32, np.float32]:
    """(Base, Step) of an AFFINE codebook segment's 8 bytes, as float32 (finite or not)."""
    base, step = np.frombuffer(payload, "<f4", count=2)
    return np.float32(base), np.float32(step)


def affine_entries(base, step, size: int) -> np.ndarray:
    """The ``size`` float32 entries ``Base + Step * i`` (an infinity where one overflows)."""
    with np.errstate(over="ignore"):
        entries = np.arange(size, dtype=np.float32)
        np.multiply(entries, np.float32(step), out=entries)
        np.add(entries, np.float32(base), out=entries)
    return entries


def round_to(values: np.ndarray, dtype: DType) -> np.ndarray:
    """float32 ``values`` rounded to F32, F16 or BF16, as the storage integers of that type:
    to nearest, ties to even, a magnitude past the largest finite value an infinity.
    (GROUPED values and AFFINE entries are both rounded so.)"""
    values = np.ascontiguousarray(values, np.float32)
    if dtype == DType.F32:
        return values.view(np.uint32)
    if dtype == DType.F16:
        with np.errstate(over="ignore"):  # above 65520 rounds to inf
            return values.astype(np.float16).view(np.uint16)
    if dtype != DType.BF16:
        raise ValueError(f"no float32 rounding to {dtype.name}")
    bits = values.view(np.uint32)  # to nearest, ties to even: the top 16 bits after the carry
    return ((bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)
