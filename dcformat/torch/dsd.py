"""Deprecated alias of :mod:`dcformat.training.dense_sparse_dense` (moved in 0.2, removed in 0.3)."""

import sys as _sys
import warnings as _warnings

from ..training import dense_sparse_dense as _moved

_warnings.warn("dcformat.torch.dsd moved to dcformat.training.dense_sparse_dense", DeprecationWarning, stacklevel=2)
_sys.modules[__name__] = _moved
