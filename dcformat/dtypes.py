"""Deprecated alias of :mod:`dcformat.format.dtypes` (moved in 0.2, removed in 0.3)."""

import sys as _sys
import warnings as _warnings

from .format import dtypes as _moved

_warnings.warn("dcformat.dtypes moved to dcformat.format.dtypes", DeprecationWarning, stacklevel=2)
_sys.modules[__name__] = _moved
