"""The ecq quantizer's codebook as a uniform grid: an AFFINE codebook (FORMAT.md v1.3).

The ecq quantizer's cells are a uniform grid of step ``delta``; it reconstructs each
cell at its centroid, so its codebook is a table of ``C`` values. For a tensor of a few
thousand values, or a bias or a norm of a few hundred, that table costs more than the
codes: 32 bits an entry against a few bits a value. Reconstructing at the grid points
instead needs only the grid's base and step (8 bytes), for a little more error: the
centroids of the inner cells sit near their grid points anyway, those of the outer cells
less so. :func:`uniform_codes` keeps the quantizer's cells and reconstructs them on the grid (its
step refitted to the data by least squares, the grid kept through zero so that zero stays
exact); :func:`better`
weighs the bytes saved against the error added, at the slope of the rate-distortion
curve of an entropy-coded uniform quantizer (6 dB a bit a value).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..encodings.model import AffineCodebook
from ..format.affine import round_to
from ..format.constants import AFFINE_DTYPES, MAX_CODEBOOK_SIZE, DType
from ._dtypes import numpy_dtype

#: A table is worth replacing when its entries cost at least this many bits a value of the
#: tensor (at 32-bit entries, 256 of them: tensors below about 500,000 values). Above it
#: the table is a rounding error of the record, and trying the grid would cost a pass.
TRY_TABLE_BITS_PER_VALUE = 1 / 64


@dataclass(frozen=True)
class Uniform:
    """A tensor's codes on an AFFINE codebook, the entries as a reader decodes them
    (float64 of the codebook's dtype), and their squared error."""

    book: AffineCodebook
    codes: np.ndarray  # uint16
    entries: np.ndarray  # float64
    error: float


def worth_trying(entries: int, value_bits: int, size: int, wire: str) -> bool:
    """Whether a table of ``entries`` values of ``value_bits`` is costly enough, against a
    tensor of ``size`` values, to try the grid (and the format allows one for ``wire``)."""
    return DType[wire] in AFFINE_DTYPES and entries * value_bits >= TRY_TABLE_BITS_PER_VALUE * size


def uniform_codes(x: np.ndarray, delta: float, wire: str, max_entries: int, *, float32_book: bool = False
                  ) -> Uniform | None:
    """``x`` in the cells of the uniform grid of step ``delta`` through zero, reconstructed
    on the grid whose step is refitted to them: the least-squares step for the values' grid
    indices. The cells, and so the codes and their rate, stay those the quantizer planned
    (re-assigning the values to the refitted grid would move them: at a coarse step, where
    most values share the zero cell and the refit shrinks the step, into more cells, at a
    rate the budget did not plan). None when the grid would need more than ``max_entries``
    entries. ``float32_book``: the entries stay float32 (GROUPED values' shared codebook),
    else they are rounded to the tensor's dtype ``wire``."""
    if not (delta > 0.0 and math.isfinite(delta)):
        return None
    x = np.asarray(x, np.float64)
    step = float(np.float32(delta))
    k = np.rint(x / step)
    lo, hi = int(k.min()), int(k.max())
    if hi - lo + 1 > min(max_entries, MAX_CODEBOOK_SIZE):
        return None
    energy = float(np.dot(k, k))
    if energy > 0.0:  # else every value is in the zero cell: any step will do
        refit = float(np.float32(np.dot(x, k) / energy))
        if refit > 0.0:
            step = refit
    # base = f32(step * lo): entry -lo is f32(base + f32(step * -lo)) = 0 exactly
    base = np.float32(step) * np.float32(lo)
    book = AffineCodebook(float(base), step, hi - lo + 1)
    entries = book.entries()
    if not float32_book:
        entries = round_to(entries, DType[wire]).view(numpy_dtype(wire))
    codes = (k - lo).astype(np.uint16)
    entries = entries.astype(np.float64)
    diff = x - entries[codes]
    return Uniform(book, codes, entries, float(np.dot(diff, diff)))


def better(table_bytes: float, table_error: float, grid_bytes: float, grid_error: float, size: int) -> bool:
    """Whether the grid's (bytes, error) beats the table's for a tensor of ``size`` values:
    the lower ``bits + size/2 * log2(error)``, the cost along the curve where each bit a
    value takes 6 dB off the error."""
    if grid_error <= 0.0 or table_error <= 0.0:
        return grid_error <= table_error and grid_bytes <= table_bytes
    saved_bits = 8.0 * (table_bytes - grid_bytes)
    return saved_bits > 0.5 * size * math.log2(grid_error / table_error)
