"""Deprecated alias of :mod:`dcformat.training` (moved in 0.2, removed in 0.3)."""

import sys as _sys
import warnings as _warnings

from .. import training as _moved

_warnings.warn("dcformat.torch.training moved to dcformat.training", DeprecationWarning, stacklevel=2)
_sys.modules[__name__] = _moved
