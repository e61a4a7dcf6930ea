"""Deprecated alias of :mod:`dcformat.training.dsd` (moved in 0.2, removed in 0.3)."""

import sys as _sys
import warnings as _warnings

from ..training import dsd as _  # noqa: F401 - loads the module

# The module itself: the package's attribute ``dcformat.training.dsd`` is the function dsd().
_moved = _sys.modules["dcformat.training.dsd"]

_warnings.warn("dcformat.torch.dsd moved to dcformat.training.dsd", DeprecationWarning, stacklevel=2)
_sys.modules[__name__] = _moved
