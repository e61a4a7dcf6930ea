"""The one thread policy of decoding and the one pool its threads come from.

Policy: a call decodes on at most ``threads`` threads, its caller's own and up to
``threads - 1`` workers of one process-wide pool. ``threads=None`` means
:func:`default_threads`, read afresh at every call: ``DCFORMAT_NUM_THREADS`` if set (for a
container whose CPU quota is below the cores it can see, or a loader that shares the
machine), else every core the process may use.

Work nested inside a call (a big tensor's chunk groups while a file's tensors decode
side by side) is shared with the threads already working for that call, the *team*; it
never brings threads of its own, so ``threads=T`` means at most T threads whatever the
call. A thread that waits for the rest of its own work to be finished elsewhere is not
decoding, so a team may briefly have fewer than T threads busy, never more.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

from .errors import UsageError

#: The environment variable that overrides the default thread count.
ENV = "DCFORMAT_NUM_THREADS"

#: Most pool workers the process ever starts (each team takes only what it may use;
#: idle workers are reused before a new one is started).
POOL_MAX_WORKERS = 1024


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


def threads_for(work: int, threads: int | None, parallel_min: int) -> int:
    """Threads to split ``work`` units over: ``threads`` when the caller gave it; by
    default every core (:func:`default_threads`), or 1 when the work is below
    ``parallel_min`` (too little to pay for handing it out)."""
    if threads is not None:
        return threads
    return default_threads() if work >= parallel_min else 1


def run(fn: Callable, items: Sequence, threads: int | None = None) -> list:
    """``[fn(item) for item in items]``, on up to ``threads`` threads.

    Inside work that is already running for a call (on its team), the items join that
    team and ``threads`` is not consulted. The results come back in order; if any item
    raised, the first in order is raised once every item has finished.
    """
    team = getattr(_local, "team", None)
    if team is not None:
        return team.map(fn, items)
    # a team even for one thread: work nested inside these items must not start its own
    team = _Team(check_threads(threads) or default_threads())
    _local.team = team
    try:
        return team.map(fn, items)
    finally:
        _local.team = None


# --- the team and the pool ----------------------------------------------------------

_local = threading.local()


class _Job:
    """One ``run`` call's items: taken in order by whichever team thread is free."""

    def __init__(self, fn: Callable, items: Sequence):
        self.fn, self.items = fn, items
        self.taken = 0
        self.finished = 0
        self.results: list = [None] * len(items)
        self.errors: dict[int, BaseException] = {}

    def outcome(self) -> list:
        if self.errors:
            raise self.errors[min(self.errors)]
        return self.results


class _Team:
    """The threads working for one call: its caller and up to ``size - 1`` pool workers."""

    def __init__(self, size: int):
        self.size = size
        self._cv = threading.Condition()
        self._jobs: list[_Job] = []  # jobs with items not yet taken, newest last
        self._workers = 0  # pool workers now working for this team

    def map(self, fn: Callable, items: Sequence) -> list:
        job = _Job(fn, items)
        if not items:
            return []
        if self.size == 1 or len(items) == 1:
            for index in range(len(items)):
                self._execute(job, index)
            return job.outcome()
        with self._cv:
            self._jobs.append(job)
            extra = max(0, min(len(items) - 1, self.size - 1 - self._workers))
            self._workers += extra
        for _ in range(extra):
            _pool().submit(self._work)
        # the caller works on its own items, then waits for those others took
        while self._run_next(job):
            pass
        with self._cv:
            while job.finished < len(job.items):
                self._cv.wait()
        return job.outcome()

    def _take(self, job: _Job | None) -> tuple[_Job, int] | None:
        """The next item of ``job`` (or of the newest job with items left); None if none."""
        if job is None:
            job = next((j for j in reversed(self._jobs) if j.taken < len(j.items)), None)
        if job is None or job.taken >= len(job.items):
            return None
        index = job.taken
        job.taken += 1
        if job.taken == len(job.items):
            self._jobs.remove(job)
        return job, index

    def _run_next(self, job: _Job) -> bool:
        with self._cv:
            taken = self._take(job)
        if taken is None:
            return False
        self._execute(*taken)
        return True

    def _execute(self, job: _Job, index: int) -> None:
        try:
            job.results[index] = job.fn(job.items[index])
        except BaseException as exc:  # raised by the job's owner, first in order
            job.errors[index] = exc
        with self._cv:
            job.finished += 1
            if job.finished == len(job.items):
                self._cv.notify_all()

    def _work(self) -> None:
        """A pool worker's loop: items of any of the team's jobs, newest job first (nested
        work finishes what an outer item waits for), until none is left."""
        _local.team = self
        try:
            while True:
                with self._cv:
                    taken = self._take(None)
                    if taken is None:
                        self._workers -= 1
                        return
                self._execute(*taken)
        finally:
            _local.team = None


_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=POOL_MAX_WORKERS, thread_name_prefix="dcformat")
        return _executor


def _forget_pool() -> None:
    # A forked child inherits the pool object but not its threads: start afresh.
    global _executor, _executor_lock
    _executor = None
    _executor_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)
