"""Magnitude pruning (Deep Compression stage 1): which weights survive.

Two ways to choose the threshold: a target ``sparsity`` removes exactly
``pruned_count(n, sparsity)`` weights, the smallest in magnitude, ties broken by
position (lower C-order index pruned first); a ``quality`` factor removes every weight
with ``|w| < quality * std(w)``, as in the paper.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidSettings
from ._dtypes import scale_exponent


def pruned_count(n: int, sparsity: float) -> int:
    """How many of ``n`` weights a target sparsity removes: ``round(sparsity * n)``.

    Python's ``round`` (halves to even), clamped to ``[0, n]``.

    Examples
    --------
    >>> pruned_count(10, 0.25), pruned_count(10, 0.35), pruned_count(7, 0.0)
    (2, 4, 0)
    """
    return min(max(int(round(sparsity * n)), 0), n)


def prune_mask(weights: np.ndarray, *, sparsity: float | None = None,
               quality: float | None = None) -> np.ndarray:
    """Boolean mask (same shape as ``weights``) of the weights that survive.

    Parameters
    ----------
    weights : ndarray
        Finite floating values (any shape; positions are C order).
    sparsity : float, optional
        Fraction in [0, 1) to remove.
    quality : float, optional
        Remove ``|w| < quality * std(w)`` (population std over the whole tensor).

    Examples
    --------
    >>> prune_mask(np.array([0.5, -0.1, 0.1, 2.0]), sparsity=0.5).tolist()
    [True, False, False, True]
    >>> prune_mask(np.array([3.0, -1.0, 1.0, -3.0]), quality=0.5).tolist()
    [True, False, False, True]
    """
    if (sparsity is None) == (quality is None):
        raise InvalidSettings("prune_mask needs exactly one of sparsity and quality")
    w = np.asarray(weights)
    work = w.astype(np.float64 if w.dtype == np.float64 else np.float32, copy=False).ravel()
    mag = np.abs(work)
    n = mag.size
    if quality is not None:
        if not quality >= 0:
            raise InvalidSettings(f"quality must be >= 0, got {quality!r}")
        e = scale_exponent(work)  # keeps the squares finite for extreme float64 weights
        std = float(np.std(np.ldexp(work, -e) if e else work, dtype=np.float64)) if n else 0.0
        threshold = quality * float(np.ldexp(std, e))
        return (mag >= np.float64(threshold)).reshape(w.shape)
    if not 0.0 <= sparsity < 1.0:
        raise InvalidSettings(f"sparsity must be in [0, 1), got {sparsity!r}")
    k = pruned_count(n, sparsity)
    keep = np.ones(n, dtype=bool)
    if k == 0:
        return keep.reshape(w.shape)
    # The k-th smallest magnitude t: everything below t goes, then the first
    # (k - below) entries equal to t in C order.
    t = np.partition(mag, k - 1)[k - 1]
    below = mag < t
    keep[below] = False
    ties = np.flatnonzero(mag == t)
    keep[ties[: k - int(np.count_nonzero(below))]] = False
    return keep.reshape(w.shape)
