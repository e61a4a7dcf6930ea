"""Deprecated alias of :mod:`dcformat.training.gwconv` (moved in 0.2, removed in 0.3)."""

import sys as _sys
import warnings as _warnings

from ..training import gwconv as _moved

_warnings.warn("dcformat.torch.gwconv moved to dcformat.training.gwconv", DeprecationWarning, stacklevel=2)
_sys.modules[__name__] = _moved
