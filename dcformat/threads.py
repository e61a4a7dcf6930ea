"""The one thread-count policy of decoding: every core the process may use, unless told.

``DCFORMAT_NUM_THREADS`` sets the default for the process: for a container whose CPU
quota is below the cores it can see, or a loader that shares the machine. Every loading
call also takes ``threads=``.
"""

from __future__ import annotations

import os

from .errors import UsageError

#: The environment variable that overrides the default thread count.
ENV = "DCFORMAT_NUM_THREADS"


def check_threads(threads) -> int | None:
    """``threads`` as an int, or None (the default); UsageError unless a positive int."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not hasattr(threads, "__index__") or int(threads) < 1:
        raise UsageError(f"threads must be a positive int or None, got {threads!r}")
    return int(threads)


def default_threads() -> int:
    """``DCFORMAT_NUM_THREADS`` if set, else the cores this process may run on."""
    value = os.environ.get(ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise UsageError(f"{ENV} must be a positive integer, got {value!r}")
        return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
