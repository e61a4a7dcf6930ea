"""Deprecated alias of :mod:`dcformat.training.sensitivity` (moved in 0.2, removed in 0.3)."""

import sys as _sys
import warnings as _warnings

from ..training import sensitivity as _moved

_warnings.warn("dcformat.torch.sensitivity moved to dcformat.training.sensitivity", DeprecationWarning, stacklevel=2)
_sys.modules[__name__] = _moved
