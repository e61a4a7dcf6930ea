"""Loading compressed model directories through transformers' ``from_pretrained``.

``import dcformat`` is all a user writes: once transformers' ``modeling_utils`` has been
imported (which every ``AutoModel*.from_pretrained`` does first), :mod:`dcformat.hf.loader`
registers the ``dcformat`` quantization method with transformers' public hooks
(``register_quantization_config``, ``register_quantizer``), and ``from_pretrained(OUT_DIR)``
of a directory that ``dcformat compress`` wrote decodes each tensor into its parameter.

This module imports nothing but the standard library: ``import dcformat`` must not import
transformers (or torch). :func:`install` adds a ``sys.meta_path`` finder that runs the
registration right after ``transformers.modeling_utils`` executes, or registers at once when
it is already imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys

#: The module whose import registers dcformat with transformers.
TRIGGER = "transformers.modeling_utils"


def register() -> None:
    """Register the ``dcformat`` method with transformers now (imports transformers and torch).

    A transformers this cannot register with is warned about, not raised: importing
    transformers or dcformat must not fail for it."""
    loader = sys.modules.get(f"{__name__}.loader")
    if loader is not None and not hasattr(loader, "register"):
        return  # dcformat.hf.loader imported first: its own import of transformers got here; it registers when done
    try:
        from .loader import register as _register

        _register()
    except Exception as exc:  # noqa: BLE001 - any transformers: warn, never break its import
        import warnings

        warnings.warn(f"dcformat could not register with transformers ({type(exc).__name__}: {exc}); "
                      f"from_pretrained will not load dcformat directories", RuntimeWarning, stacklevel=2)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the real loader of :data:`TRIGGER` to register afterwards."""

    def find_spec(self, fullname, path, target=None):
        if fullname != TRIGGER:
            return None
        for finder in sys.meta_path:  # the finder that would have found it, past this one
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _Registering(spec.loader)
                return spec
            if spec is not None:
                return spec
        return None


class _Registering(importlib.abc.Loader):
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        register()

    def __getattr__(self, name):  # get_source, is_package, ... of the real loader
        return getattr(self._loader, name)


def install() -> None:
    """Register with transformers when it loads its models (now, if it already has)."""
    if TRIGGER in sys.modules:
        register()
    elif not any(isinstance(f, _AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())
