"""Deprecated alias of :mod:`dcformat.training.prune` (moved in 0.2, removed in 0.3)."""

import sys as _sys
import warnings as _warnings

from ..training import prune as _moved

_warnings.warn("dcformat.torch.prune moved to dcformat.training.prune", DeprecationWarning, stacklevel=2)
_sys.modules[__name__] = _moved
