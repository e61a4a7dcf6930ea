"""Deprecated alias of :mod:`dcformat.training.quantize` (moved in 0.2, removed in 0.3)."""

import sys as _sys
import warnings as _warnings

from ..training import quantize as _moved

_warnings.warn("dcformat.torch.quantize moved to dcformat.training.quantize", DeprecationWarning, stacklevel=2)
_sys.modules[__name__] = _moved
