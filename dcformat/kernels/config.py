"""Numba flags in one place, and Numba imported only when a kernel first runs.

Decoding is bit-exact, so fastmath stays off. Importing Numba costs about 0.2 s, more than
the rest of ``import dcformat``, and a program that only opens files, reads headers or
writes raw records needs none of it. So :func:`kernel` returns a :class:`Kernel` that holds
the Python function; the first call of any kernel imports Numba, runs the hooks that
:func:`with_numba` registered (Numba-only imports and ``overload`` registrations), makes a
Numba dispatcher of every kernel (compiled, or loaded from Numba's on-disk cache, when it
is first called, as Numba always does) and puts each dispatcher in place of its
:class:`Kernel` in the kernel modules, so that a kernel compiled later sees the kernels it
calls as dispatchers. Callers above hold the :class:`Kernel`, which forwards each call.
"""

from __future__ import annotations

import functools
import sys
import threading

#: The flags of every kernel: compiled on first use, cached on disk, no fastmath.
FLAGS = dict(cache=True, nogil=True, fastmath=False)

_kernels: list["Kernel"] = []
_hooks: list = []
_lock = threading.Lock()
_ready = False


class Kernel:
    """A kernel whose Numba dispatcher is made on the first call of any kernel (module docstring)."""

    def __init__(self, py_func):
        self.py_func = py_func
        self.dispatcher = None
        functools.update_wrapper(self, py_func)

    def __call__(self, *args):
        if not _ready:
            compile_all()
        return self.dispatcher(*args)

    def __getattr__(self, name):  # what a dispatcher has (signatures, inspect_types, ...)
        if name.startswith("__"):
            raise AttributeError(name)
        if not _ready:
            compile_all()
        return getattr(self.dispatcher, name)


def kernel(py_func):
    """Decorator for every kernel (:class:`Kernel`; a dispatcher at once once Numba is in)."""
    if _ready:
        from numba import njit

        return njit(**FLAGS)(py_func)
    k = Kernel(py_func)
    _kernels.append(k)
    return k


def with_numba(hook):
    """Run ``hook()`` once Numba is imported, before any kernel compiles (at once if it is)."""
    if _ready:
        hook()
    else:
        _hooks.append(hook)
    return hook


def compiled() -> bool:
    """Whether Numba is in and every kernel has its dispatcher."""
    return _ready


def compile_all() -> None:
    """Import Numba and give every kernel its dispatcher (idempotent, thread-safe)."""
    global _ready
    if _ready:
        return
    with _lock:
        if _ready:
            return
        from numba import njit

        for hook in _hooks:
            hook()
        made = {id(k): njit(**FLAGS)(k.py_func) for k in _kernels}
        # every module's globals first: a kernel that another thread calls meanwhile waits
        # on the lock above, and must not compile against a Kernel object
        for module in [m for name, m in list(sys.modules.items()) if name.startswith(__package__ + ".")]:
            for name, value in list(vars(module).items()):
                if isinstance(value, Kernel) and id(value) in made:
                    setattr(module, name, made[id(value)])
        for k in _kernels:
            k.dispatcher = made[id(k)]
        _ready = True
