"""Numba flags in one place. Decoding is bit-exact, so fastmath stays off."""

from numba import njit

#: Decorator for every kernel: compiled on first use, cached on disk, no fastmath.
kernel = njit(cache=True, nogil=True, fastmath=False)
