"""Kernels of 1-D k-means over sorted values: prefix sums, Lloyd steps, nearest code.

``dcformat.compress.kmeans`` sorts once, calls ``block_prefix_sums`` once, runs
Lloyd iterations with ``lloyd_steps`` (O(k log n) each: one galloping search per run
boundary, one difference of prefix sums per centroid), and codes the values once with
``build_code_grid`` + ``assign_codes``. Arrays are 1-D and contiguous; callers size
the outputs and keep indices in range.

Prefix sums are kept every ``BLOCK`` values only: a sum up to any index is a stored
block sum plus fewer than ``BLOCK`` values (read from memory a run boundary search has
just touched). Full prefix arrays would take two float64 per value: 4x the float32
weights, the largest allocation of a whole conversion.
"""

from __future__ import annotations

import numpy as np

from .config import kernel


#: Values per stored prefix sum.
BLOCK = 64


@kernel
def block_prefix_sums(xs, mu, s, q):
    """s[i] = sum_{j < i*BLOCK} (xs[j] - mu), q[i] = the same of (xs[j] - mu)**2, in float64.

    ``s`` and ``q`` have ``xs.size // BLOCK + 1`` entries. Centering on the mean keeps
    the per-cluster sums of squares accurate when taken as differences.
    """
    acc = 0.0
    acc2 = 0.0
    s[0] = 0.0
    q[0] = 0.0
    for b in range(s.shape[0] - 1):
        block = xs[b * BLOCK:(b + 1) * BLOCK]
        for i in range(BLOCK):
            d = np.float64(block[i]) - mu
            acc += d
            acc2 += d * d
        s[b + 1] = acc
        q[b + 1] = acc2


@kernel
def prefix_at(xs, mu, s, q, e):
    """(sum, sum of squares) of ``xs[j] - mu`` over j < e, from the block sums."""
    b = e // BLOCK
    acc = s[b]
    acc2 = q[b]
    for j in range(b * BLOCK, e):
        d = np.float64(xs[j]) - mu
        acc += d
        acc2 += d * d
    return acc, acc2


@kernel
def _run_sse(sum_d, sum_d2, n, cc):
    """Sum over a run of (x - mu - cc)**2, from its sums of d = x - mu and d**2 (never < 0)."""
    part = sum_d2 - 2.0 * cc * sum_d + n * cc * cc
    return part if part > 0.0 else 0.0


@kernel
def run_sse(xs, mu, s, q, edges, c):
    """Sum of squared errors of the runs ``xs[edges[j]:edges[j+1]]`` against centroids ``c``."""
    sse = 0.0
    sa, qa = prefix_at(xs, mu, s, q, edges[0])
    for j in range(c.shape[0]):
        se, qe = prefix_at(xs, mu, s, q, edges[j + 1])
        sse += _run_sse(se - sa, qe - qa, edges[j + 1] - edges[j], c[j] - mu)
        sa, qa = se, qe
    return sse


@kernel
def count_distinct_sorted(xs):
    """The number of distinct values of an ascending array."""
    if xs.shape[0] == 0:
        return 0
    count = 1
    for i in range(1, xs.shape[0]):
        if xs[i] != xs[i - 1]:
            count += 1
    return count


@kernel
def _first_above(xs, b, lo, guess):
    """The first index i >= lo with xs[i] > b (n if none), for ascending xs.

    Gallops from ``guess`` (last iteration's edge; boundaries move little between
    Lloyd steps), then bisects: O(log distance) probes near memory already touched.
    """
    n = xs.shape[0]
    p = min(max(guess, lo), n)
    if p < n and np.float64(xs[p]) <= b:
        # answer in (p, n]: gallop up
        a = p + 1
        step = 1
        while True:
            e = p + step
            if e >= n:
                e = n
                break
            if np.float64(xs[e]) > b:
                break
            a = e + 1
            step *= 2
    else:
        # answer in [lo, p]: gallop down
        e = p
        step = 1
        while True:
            t = p - step
            if t < lo:
                a = lo
                break
            if np.float64(xs[t]) <= b:
                a = t + 1
                break
            e = t
            step *= 2
    while a < e:
        mid = (a + e) >> 1
        if np.float64(xs[mid]) <= b:
            a = mid + 1
        else:
            e = mid
    return a


@kernel
def lloyd_steps(xs, s, q, mu, c, edges, history, start, stop):
    """Lloyd iterations ``start`` .. ``stop - 1`` over ascending ``xs``; returns (done, status).

    ``c`` (k ascending centroids) is updated in place; cluster j is the run
    ``xs[edges[j]:edges[j+1]]`` of values at most the midpoint b_j of c[j] and c[j+1]
    (``edges`` has k + 1 entries, ``edges[0] = 0``, ``edges[k] = n``). ``s`` and ``q``
    come from ``block_prefix_sums``; ``history[t]`` gets the SSE after update step t.
    Status 0: the runs did not change (converged); 1: ``stop`` reached; 2: a run was
    empty after step ``done - 1`` (its centroid kept its value; ``edges`` holds the
    runs), so the caller can move it and call again.
    """
    n = xs.shape[0]
    k = c.shape[0]
    for t in range(start, stop):
        changed = False
        empty = False
        lo = 0
        for j in range(k - 1):
            b = 0.5 * c[j] + 0.5 * c[j + 1]
            lo = _first_above(xs, b, lo, edges[j + 1])
            if edges[j + 1] != lo:
                changed = True
                edges[j + 1] = lo
        if edges[0] != 0 or edges[k] != n:
            changed = True
            edges[0] = 0
            edges[k] = n
        sse = 0.0
        sa, qa = prefix_at(xs, mu, s, q, edges[0])
        for j in range(k):
            a = edges[j]
            e = edges[j + 1]
            if e == a:
                empty = True
                continue
            se, qe = prefix_at(xs, mu, s, q, e)
            sd = se - sa
            cc = sd / (e - a)
            # the mean, kept inside its run (exact for a run of equal values)
            c[j] = min(max(mu + cc, np.float64(xs[a])), np.float64(xs[e - 1]))
            sse += _run_sse(sd, qe - qa, e - a, cc)
            sa, qa = se, qe
        history[t] = sse
        if empty:
            return t + 1, 2
        if not changed:
            return t + 1, 0
    return stop, 1


@kernel
def _cell(v, lo, inv_h, cells):
    """Grid cell of v: monotone in v, so cell(b) < cell(v) implies b < v."""
    t = (v - lo) * inv_h
    if not t >= 0.0:  # also NaN
        return 0
    if t >= cells:
        return cells - 1
    return np.int64(t)


@kernel
def build_code_grid(bounds, lo, inv_h, first):
    """first[g] = the number of ``bounds`` whose cell is below g (``first`` has cells + 1 entries)."""
    cells = first.shape[0] - 1
    for g in range(cells + 1):
        first[g] = 0
    for j in range(bounds.shape[0]):
        first[_cell(bounds[j], lo, inv_h, cells) + 1] += 1
    for g in range(cells):
        first[g + 1] += first[g]


@kernel
def assign_codes(values, codebook, bounds, lo, inv_h, first, out):
    """out[i] = the code of the ``codebook`` entry nearest values[i], ties to the lower.

    ``codebook`` is ascending, ``bounds`` its midpoints and ``first`` comes from
    ``build_code_grid``: the number of bounds below a value in cell g lies in
    [first[g], first[g + 1]] and is found by bisection, so a fine grid makes the search
    a step or two whatever the value order. A rounded midpoint can misplace a value
    within an ulp of it, so the code is then settled by comparing distances.
    """
    cells = first.shape[0] - 1
    last = codebook.shape[0] - 1
    for i in range(values.shape[0]):
        v = np.float64(values[i])
        g = _cell(v, lo, inv_h, cells)
        a = first[g]
        e = first[g + 1]
        while a < e:
            mid = (a + e) >> 1
            if bounds[mid] < v:
                a = mid + 1
            else:
                e = mid
        while a > 0 and abs(v - codebook[a - 1]) <= abs(v - codebook[a]):
            a -= 1
        while a < last and abs(v - codebook[a + 1]) < abs(v - codebook[a]):
            a += 1
        out[i] = a


@kernel
def gather_codes(bits, lut, out):
    """out[i] = lut[bits[i]]: the codes of the bit patterns ``bits`` of a narrow float."""
    for i in range(bits.shape[0]):
        out[i] = lut[bits[i]]


@kernel
def squared_sum(values):
    """sum(values**2) in float64, in blocks of 4096 (rounding error of a block sum, not an n-term one)."""
    total = 0.0
    n = values.shape[0]
    for start in range(0, n, 4096):
        block = 0.0
        for i in range(start, min(start + 4096, n)):
            v = np.float64(values[i])
            block += v * v
        total += block
    return total


@kernel
def coded_squared_error(values, codebook, codes):
    """sum((values[i] - codebook[codes[i]])**2) in float64, in one pass.

    The caller proves every code < len(codebook).
    """
    total = 0.0
    for i in range(values.shape[0]):
        d = np.float64(values[i]) - codebook[codes[i]]
        total += d * d
    return total
