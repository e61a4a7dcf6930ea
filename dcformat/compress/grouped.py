"""Row scales for the ecq quantizer: one codebook shared by the rows of a tensor, each row
scaled by its own factor (GROUPED values, FORMAT.md v1.1).

A weight matrix's rows (a convolution's output channels) can differ in range by orders
of magnitude: depthwise convolutions, channels scaled by a batch norm folded in, outlier
channels. One codebook for the whole tensor then spends its entries and its code on the
widest rows and quantizes the narrow ones to a few levels. With ``groups="rows"`` the
quantizer works on every row divided by its RMS, rounded to a grid of
``SCALE_STEPS_PER_OCTAVE`` steps an octave, so every row sees the same distribution; the
file stores the scales as a table and a code per row (a few bits a row, Huffman-coded),
and a reader multiplies them back (in float32, as the format says).

Dividing by the row's RMS makes the error of each row proportional to its RMS: each row
at the same relative error, the weighting the weights alone suggest when a batch norm or
a following layer rescales each output channel (the output's sensitivity to a row is
about its gain over the row's own scale).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import budget

#: Resolution of the stored scales: 2**(1/16) apart, within 2.2 % of each row's RMS.
SCALE_STEPS_PER_OCTAVE = 16
#: Rows shorter than this keep one codebook for the tensor: a scale each would cost more
#: than it could save.
MIN_ROW = 8


@dataclass(frozen=True)
class RowScales:
    """The scales of a tensor's rows: ``table[codes[r]]`` is row r's (float32, positive)."""

    row: int  # units per row: the group size
    table: np.ndarray
    codes: np.ndarray

    @property
    def per_row(self) -> np.ndarray:
        return self.table[self.codes].astype(np.float64)

    def side_bytes(self, huffman: bool) -> float:
        """The table and its codes as the writer stores them, with their padding."""
        freqs = np.bincount(self.codes, minlength=self.table.size)
        return (budget.padded(4 * self.table.size)
                + budget.padded(budget.stream_bytes(freqs, self.table.size, huffman=huffman)))


def applies(shape: tuple[int, ...]) -> bool:
    """Whether a tensor of ``shape`` has rows to scale: two or more dimensions, more than
    one row, rows of at least MIN_ROW units."""
    if len(shape) < 2 or shape[0] < 2:
        return False
    row = int(np.prod(shape[1:], dtype=np.int64))
    return row >= MIN_ROW


def row_scales(x: np.ndarray, rows: int) -> RowScales:
    """The rounded RMS of each of ``rows`` rows of the flat array ``x``; a row of zeros
    takes the smallest scale of the others (its values stay zeros)."""
    matrix = x.reshape(rows, -1)
    rms = np.sqrt(np.mean(np.square(matrix, dtype=np.float64), axis=1))
    live = rms > 0
    steps = np.zeros(rows, np.int64)
    if live.any():
        steps[live] = np.rint(np.log2(rms[live]) * SCALE_STEPS_PER_OCTAVE).astype(np.int64)
        steps[~live] = steps[live].min()
    # within float32's normal range, whatever the weights
    steps = np.clip(steps, -126 * SCALE_STEPS_PER_OCTAVE, 127 * SCALE_STEPS_PER_OCTAVE)
    used, codes = np.unique(steps, return_inverse=True)
    table = np.exp2(used / SCALE_STEPS_PER_OCTAVE).astype(np.float32)
    return RowScales(matrix.shape[1], table, codes.astype(np.uint16).ravel())


def normalized(x: np.ndarray, scales: RowScales) -> np.ndarray:
    """``x`` with each row divided by its stored scale (float64)."""
    rows = scales.codes.size
    return (x.reshape(rows, -1) / scales.per_row[:, None]).ravel()


def scaled_back(values: np.ndarray, scales: RowScales) -> np.ndarray:
    """What a reader decodes from normalized ``values`` (float32, as the format computes)."""
    rows = scales.codes.size
    return (values.astype(np.float32).reshape(rows, -1) * scales.table[scales.codes][:, None]).ravel()
