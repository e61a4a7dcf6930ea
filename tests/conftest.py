"""Test-wide settings."""

from hypothesis import settings

# No deadline on examples: a test's first example may compile Numba kernels (seconds on
# a fresh cache, as in CI), and timings belong in benchmarks/, not in tests.
settings.register_profile("dcformat", deadline=None)
settings.load_profile("dcformat")
