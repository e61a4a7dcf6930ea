"""Deprecated alias of :mod:`dcformat.training.export` (moved in 0.2, removed in 0.3)."""

import sys as _sys
import warnings as _warnings

from ..training import export as _moved

_warnings.warn("dcformat.torch.export moved to dcformat.training.export", DeprecationWarning, stacklevel=2)
_sys.modules[__name__] = _moved
