"""Deprecated alias of :mod:`dcformat.format.constants` (moved in 0.2, removed in 0.3)."""

import sys as _sys
import warnings as _warnings

from ..format import constants as _moved

_warnings.warn("dcformat.container.constants moved to dcformat.format.constants", DeprecationWarning, stacklevel=2)
_sys.modules[__name__] = _moved
