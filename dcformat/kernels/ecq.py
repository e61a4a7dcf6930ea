"""Kernels of the entropy-constrained quantizer (:mod:`dcformat.compress.ecq`).

Both passes over a tensor map a value to its fine histogram bin the same way: the
nearest multiple of ``delta0``, offset by ``lo`` and clamped into the histogram.
"""

from __future__ import annotations

import numpy as np

from .config import kernel


@kernel
def fine_bin(v, inv_delta0, lo, hi):
    """The fine bin of ``v``: round(v / delta0) - lo, clamped to [0, hi]."""
    b = np.int64(np.rint(v * inv_delta0)) - lo
    if b < 0:
        return 0
    if b > hi:
        return hi
    return b


@kernel
def fine_histogram(x, inv_delta0, lo, nbins, counts, sums, squares):
    """Add each value's count, sum and square to its fine bin."""
    hi = nbins - 1
    for i in range(x.size):
        v = np.float64(x[i])
        b = fine_bin(v, inv_delta0, lo, hi)
        counts[b] += 1
        sums[b] += v
        squares[b] += v * v


@kernel
def emit_codes(x, inv_delta0, lo, code_of_bin, codebook, out):
    """``out[i]`` = the code of ``x[i]``'s fine bin; returns the squared error against ``codebook``."""
    hi = code_of_bin.size - 1
    err = 0.0
    for i in range(x.size):
        v = np.float64(x[i])
        c = code_of_bin[fine_bin(v, inv_delta0, lo, hi)]
        out[i] = c
        d = v - codebook[c]
        err += d * d
    return err


@kernel
def minmax_energy(x):
    """(min, max, sum of squares) of a non-empty array, in float64."""
    lo = np.float64(x[0])
    hi = lo
    e = 0.0
    for i in range(x.size):
        v = np.float64(x[i])
        if v < lo:
            lo = v
        if v > hi:
            hi = v
        e += v * v
    return lo, hi, e
