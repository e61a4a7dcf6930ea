"""Numba kernels only: small, pure, ``cache=True``; they never validate and never raise.

Callers in :mod:`dcformat.streams` and :mod:`dcformat.encodings` prove every index in
range first. Kernels import nothing from the layers above them.
"""
