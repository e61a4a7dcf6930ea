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


#: Candidates :func:`keep_row_sums` picks by scanning a row for the cheapest before it sorts
#: the rest: a row of n values takes about sqrt(n / 12) moves.
SCAN_PICKS = 16


@kernel
def keep_row_sums(x, codes, codebook, bits, rate_weight, bias_weight, weights, rows_per_group, cost, order_scratch):
    """Move codes of each row of ``x`` to a neighbouring entry of the ascending ``codebook``
    while that brings the row's weighted error sum ``s`` nearer zero and pays.

    Row r's value j weighs ``weights[r // rows_per_group, j]`` in ``s`` (a row is
    ``weights.shape[1]`` values). A move goes the way that shrinks ``|s|``; it costs its
    added squared error plus ``rate_weight`` times the bits it adds (``bits[c]``: code c's
    length) and is taken, cheapest first, where that is below ``bias_weight * (s**2 - t**2)``,
    ``t`` the sum after it. Exact zeros and values of weight zero never move. ``cost`` and
    ``order_scratch`` are row-long scratch arrays. Returns the moves made.
    """
    top = codebook.size - 1
    row = weights.shape[1]
    moved = 0
    for r in range(x.size // row):
        base = r * row
        w = weights[r // rows_per_group]
        s = 0.0
        for j in range(row):
            s += w[j] * (codebook[codes[base + j]] - np.float64(x[base + j]))
        if s == 0.0:
            continue
        high = s > 0.0  # each value moves the one way that shrinks the sum as it now stands
        smallest = np.inf  # the smallest change of the sum a move makes
        for j in range(row):
            v = np.float64(x[base + j])
            c = np.int64(codes[base + j])
            way = -1 if high == (w[j] > 0.0) else 1
            if v == 0.0 or w[j] == 0.0 or c + way < 0 or c + way > top:
                cost[j] = np.inf
            else:
                now, then = codebook[c] - v, codebook[c + way] - v
                cost[j] = then * then - now * now + rate_weight * (bits[c + way] - bits[c])
                smallest = min(smallest, abs(w[j] * (codebook[c + way] - codebook[c])))
        # candidates cheapest first (ties: the lower index, as a stable sort): the first few
        # by scanning for the minimum, the rest, if the row needs them, sorted
        k = 0
        sorted_rest = False
        while 2.0 * abs(s) > smallest:  # else no move brings the sum nearer zero
            if not sorted_rest and k < SCAN_PICKS:
                j = 0
                for i in range(1, row):
                    if cost[i] < cost[j]:
                        j = i
            else:
                if not sorted_rest:
                    order_scratch[:] = np.argsort(cost, kind="mergesort")
                    sorted_rest = True
                    k = 0
                if k >= row:
                    break
                j = order_scratch[k]
            k += 1
            price = cost[j]
            if price == np.inf or price >= bias_weight * s * s:
                break  # no move from here on can pay: each costs at least this, and s only shrinks
            if not sorted_rest:
                cost[j] = np.inf  # taken or passed over, it is not picked again
            c = np.int64(codes[base + j])
            way = -1 if high == (w[j] > 0.0) else 1
            t = s + w[j] * (codebook[c + way] - codebook[c])
            if abs(t) < abs(s) and price < bias_weight * (s * s - t * t):
                s = t
                codes[base + j] = c + way
                moved += 1
    return moved


@kernel
def grid_cells(lo, step_bins, cmin, cmax, out):
    """``out[b]``: the cell of fine bin ``b`` on a grid of ``step_bins`` bins a cell, cells
    ``cmin``..``cmax`` numbered from 0 (bins beyond the ends in the end cells)."""
    half = step_bins // 2
    for b in range(out.size):
        c = (lo + b + half) // step_bins
        if c < cmin:
            c = cmin
        elif c > cmax:
            c = cmax
        out[b] = c - cmin


@kernel
def cell_totals(cell, counts, sums, squares, n, s, q):
    """Add each fine bin's count, sum and sum of squares to its cell's, bins in order
    (``np.bincount(cell, weights=...)``'s order, so the same float64 sums)."""
    for b in range(cell.size):
        c = cell[b]
        n[c] += np.float64(counts[b])
        s[c] += sums[b]
        q[c] += squares[b]
