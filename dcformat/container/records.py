"""Deprecated alias of :mod:`dcformat.format.records` (moved in 0.2, removed in 0.3)."""

import sys as _sys
import warnings as _warnings

from ..format import records as _moved

_warnings.warn("dcformat.container.records moved to dcformat.format.records", DeprecationWarning, stacklevel=2)
_sys.modules[__name__] = _moved
