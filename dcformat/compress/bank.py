"""Post-hoc kernel banks (Global Weight): cluster every K x K kernel of a network into L.

:func:`build_bank` runs k-means over kernel vectors (all kernels of all eligible layers
together, so the bank is network-wide): k-means++ seeding on a deterministic sample,
then Lloyd iterations whose nearest-centroid search is chunked matrix products
(``|x|^2 - 2 x.c + |c|^2``, ``chunk`` kernels at a time, so memory stays
``chunk x L``). An emptied cluster is re-seeded with the kernel farthest from its
centroid. When there are no more distinct kernels than ``L``, the bank is those kernels
and the reconstruction is exact.

The bank is then **ordered** along its first principal component, so neighbouring
indices hold similar kernels: this is what gives the straight-through rule of
:class:`dcformat.training.gwconv.GWConv2d` (a selector is a position on a 1-D line through
the bank) a meaningful gradient, and it costs nothing in storage.

Everything here is numpy; :mod:`dcformat.training.gwconv` wraps it for nn.Modules.

Examples
--------
>>> import numpy as np
>>> k = np.array([[[0.0]], [[0.1]], [[5.0]], [[5.2]]])
>>> r = build_bank(k, 2)
>>> r.bank.ravel().tolist(), r.selectors.tolist()
([0.05000000074505806, 5.099999904632568], [0, 0, 1, 1])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidSettings

__all__ = ["BankResult", "build_bank", "nearest_kernels", "order_bank"]

MAX_BANK = 1 << 16


@dataclass(frozen=True, eq=False)
class BankResult:
    """``bank`` (L', *kernel) float32, ``selectors`` (N,) uint16 with
    ``kernels ~ bank[selectors]``, ``sse`` the squared error of that reconstruction
    (float64, against the float32 bank), ``iterations`` Lloyd steps run."""

    bank: np.ndarray
    selectors: np.ndarray
    sse: float
    iterations: int
    converged: bool


def nearest_kernels(x: np.ndarray, centroids: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """(index, squared distance) of the nearest centroid row for each row of ``x`` (2-D
    arrays); ties go to the lower index. Chunked so memory stays ``chunk x L``."""
    x = np.asarray(x, np.float64)
    c = np.asarray(centroids, np.float64)
    cc = np.einsum("ij,ij->i", c, c)
    idx = np.empty(x.shape[0], np.int64)
    dist = np.empty(x.shape[0], np.float64)
    for s in range(0, x.shape[0], chunk):
        xs = x[s:s + chunk]
        d = cc[None, :] - 2.0 * (xs @ c.T)
        j = np.argmin(d, axis=1)
        idx[s:s + chunk] = j
        xx = np.einsum("ij,ij->i", xs, xs)
        dist[s:s + chunk] = np.maximum(d[np.arange(len(xs)), j] + xx, 0.0)
    return idx, dist


def _kmeanspp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    n = x.shape[0]
    centers = np.empty((k, x.shape[1]), np.float64)
    first = int(rng.integers(n))
    centers[0] = x[first]
    d2 = np.sum((x - centers[0]) ** 2, axis=1)
    for i in range(1, k):
        total = d2.sum()
        if total <= 0.0:  # fewer distinct points than k: callers handled that
            j = int(rng.integers(n))
        else:
            j = int(np.searchsorted(np.cumsum(d2), rng.random() * total, side="right"))
            j = min(j, n - 1)
        centers[i] = x[j]
        np.minimum(d2, np.sum((x - centers[i]) ** 2, axis=1), out=d2)
    return centers


def order_bank(bank: np.ndarray) -> np.ndarray:
    """The permutation sorting bank rows (2-D) along their first principal component
    (sign fixed so the largest |loading| is positive; stable, so deterministic)."""
    b = np.asarray(bank, np.float64)
    if b.shape[0] < 2:
        return np.arange(b.shape[0])
    centered = b - b.mean(axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    v = vt[0]
    if v[np.argmax(np.abs(v))] < 0:
        v = -v
    return np.argsort(centered @ v, kind="stable")


def build_bank(kernels, bank_size: int, *, iterations: int = 50, seed: int = 0,
               sample: int = 200_000, chunk: int = 4096, tol: float = 1e-7, order: bool = True) -> BankResult:
    """Cluster ``kernels`` (N, *kernel) into a bank of at most ``bank_size`` kernels.

    k-means++ seeds from a seeded sample of at most ``sample`` kernels, then at most
    ``iterations`` Lloyd steps over all of them (stopping when the SSE improves by less
    than ``tol`` relative). The bank is float32, its rows distinct and each used by
    some kernel; ``order`` sorts it along the first principal component.
    """
    if isinstance(bank_size, bool) or not isinstance(bank_size, (int, np.integer)) or not 1 <= bank_size <= MAX_BANK:
        raise InvalidSettings(f"bank_size must be an integer in [1, {MAX_BANK}], got {bank_size!r}")
    arr = np.asarray(kernels)
    if arr.ndim < 2 or arr.shape[0] == 0:
        raise InvalidSettings(f"kernels must have shape (N, *kernel) with N >= 1, got {arr.shape}")
    kshape = arr.shape[1:]
    x = arr.reshape(arr.shape[0], -1).astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise InvalidSettings("kernels must be finite")
    rng = np.random.default_rng(seed)
    distinct, inverse = np.unique(x, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    done, converged = 0, True
    if distinct.shape[0] <= bank_size:
        centers = distinct
    else:
        pool = x if x.shape[0] <= sample else x[rng.choice(x.shape[0], sample, replace=False)]
        centers = _kmeanspp(pool, int(bank_size), rng)
        prev = np.inf
        converged = False
        for done in range(1, iterations + 1):
            idx, d2 = nearest_kernels(x, centers, chunk)
            sse = float(d2.sum())
            counts = np.bincount(idx, minlength=centers.shape[0])
            sums = np.stack([np.bincount(idx, weights=x[:, d], minlength=centers.shape[0])
                             for d in range(x.shape[1])], axis=1)
            filled = counts > 0
            centers[filled] = sums[filled] / counts[filled, None]
            if not filled.all():  # re-seed empty clusters with the worst-fit kernels
                worst = np.argsort(-d2, kind="stable")[: int((~filled).sum())]
                centers[~filled] = x[worst]
            if np.isfinite(prev) and prev - sse <= tol * prev and filled.all():
                converged = True
                break
            prev = sse
    bank = centers.astype(np.float32)
    # Final assignment against the float32 bank; keep only used, distinct rows.
    bank = np.unique(bank, axis=0)
    idx, _ = nearest_kernels(x, bank, chunk)
    used = np.unique(idx)
    bank = bank[used]
    if order:
        bank = bank[order_bank(bank)]
    idx, _ = nearest_kernels(x, bank, chunk)
    sse = float(np.sum((x - bank[idx].astype(np.float64)) ** 2))
    return BankResult(np.ascontiguousarray(bank.reshape((bank.shape[0], *kshape))), idx.astype(np.uint16),
                      sse, done, converged)
