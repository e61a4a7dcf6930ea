"""Exact conversion between numpy arrays and torch tensors (BF16 and float8 included).

The code lives in :mod:`dcformat.interop.torch_arrays`, below the public API, so that
:mod:`dcformat.safe_open` can hand out torch tensors without importing this package;
this module keeps its names for the state-dict bridge and its users.
"""

from __future__ import annotations

from ..interop.torch_arrays import numpy_view, to_numpy, to_torch, torch_dtype, wire_name

__all__ = ["torch_dtype", "wire_name", "to_torch", "to_numpy", "numpy_view"]
