"""Where a model directory's shards are converted: this process, forked workers, or a Ray cluster.

One mechanism, :class:`Runner`: ``runner.map(fn, jobs)`` is ``[fn(job) for job in jobs]`` in
order, with a tqdm bar over the jobs. ``fn`` and every job are picklable (module-level functions, dataclasses of paths and
settings), and ``fn`` writes nothing but the file its job names, so a job may run anywhere that
sees the same paths, and run again.

- ``workers=1``: in this process.
- ``workers=N``: ``N`` forked processes on this machine, each with its share of the cores for the
  threads its encoder starts.
- ``ray=ADDRESS``: tasks on a Ray cluster (``ray.init(address=ADDRESS)``: ``"auto"``, ``"HOST:PORT"``,
  ``"ray://HOST:PORT"``, or ``"local"`` for a new cluster of this machine's cores), one core each.
  Every node must see the input and output directories at the same paths (one machine, or a shared
  file system); each task reads its input shard and writes its output shard itself, so no shard
  passes through the driver. A task whose worker process dies (killed, out of memory, its node
  lost) is run again, up to :data:`RAY_RETRIES` times, by Ray; an error of the conversion itself
  (a :class:`~dcformat.errors.DCFormatError`) is not retried and comes back with its class.

A job's output is written whole or not at all and may be written twice with the same bytes
(:func:`~dcformat.convert.directory._compress_shard` writes a private temporary file and renames
it onto its name), so a retried task leaves the same directory as one that never died.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import socket
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed

from ..errors import ConversionError, DCFormatError, UsageError

#: Times Ray runs a task again after its worker process died (Ray's own default is 3).
RAY_RETRIES = 3

#: Seconds to wait for a Ray cluster's address to accept a connection.
RAY_CONNECT_TIMEOUT = 5.0


class Runner:
    """Runs jobs where the module docstring says; a Ray cluster is reached when the block starts
    (before any work, so that an address nothing answers at fails first) and left when it ends.

    >>> with Runner(workers=1) as runner:
    ...     runner.map(abs, [-2, 3])
    [2, 3]
    """

    def __init__(self, *, workers: int = 1, ray: str | None = None, progress: bool = False, label=str):
        self.workers, self.address, self.progress, self.label = workers, ray, progress, label
        self._ray = None
        self._connected = False

    def __enter__(self) -> "Runner":
        if self.address is not None:
            self._ray = _import_ray()
            if not self._ray.is_initialized():
                _check_reachable(self.address)
                try:
                    self._ray.init(address=self.address, logging_level="ERROR", log_to_driver=False,
                                   configure_logging=False)
                except (ConnectionError, ValueError, RuntimeError) as exc:
                    raise UsageError(f"cannot reach a Ray cluster at {self.address!r}: {_first_line(exc)}") from None
                self._connected = True
        return self

    def __exit__(self, *exc) -> None:
        if self._connected:
            self._ray.shutdown()
            self._connected = False

    def map(self, fn, jobs: list, desc: str = "") -> list:
        """``[fn(job) for job in jobs]``, in order, with a bar naming each job as it ends. An error
        of a job is raised here once every job still running has been cancelled."""
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), disable=not self.progress, unit="shard", desc=desc)

        def done(job):
            bar.set_postfix_str(self.label(job), refresh=False)
            bar.update()

        try:
            if self._ray is not None:
                return _on_ray(self._ray, fn, jobs, done)
            if self.workers == 1:
                results = []
                for job in jobs:
                    results.append(fn(job))
                    done(job)
                return results
            return _on_processes(fn, jobs, self.workers, done)
        finally:
            bar.close()


def _on_processes(fn, jobs: list, workers: int, done) -> list:
    results = [None] * len(jobs)
    context = multiprocessing.get_context("fork") if sys.platform.startswith("linux") else None
    with ProcessPoolExecutor(workers, context, initializer=_init_worker, initargs=(workers,)) as pool:
        futures = {pool.submit(_relayed, fn, job): i for i, job in enumerate(jobs)}
        try:
            for future in as_completed(futures):
                i = futures[future]
                results[i] = _unrelay(future.result())
                done(jobs[i])
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return results


def _init_worker(workers: int) -> None:
    """Each worker's share of the cores for the threads its encoder starts."""
    from ..threads import ENV, default_threads

    os.environ[ENV] = str(max(1, default_threads() // workers))


def _on_ray(ray, fn, jobs: list, done) -> list:
    task = ray.remote(num_cpus=1, max_retries=RAY_RETRIES, retry_exceptions=False)(_ray_task)
    refs = {task.remote(fn, job): i for i, job in enumerate(jobs)}
    results = [None] * len(jobs)
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            i = refs[ready[0]]
            results[i] = _unrelay(_ray_result(ray, ready[0]))
            done(jobs[i])
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return results


def _ray_task(fn, job):
    """A Ray task: one core's worth of encoder threads (the task asks Ray for one CPU)."""
    from ..threads import ENV

    os.environ[ENV] = "1"
    return _relayed(fn, job)


def _ray_result(ray, ref):
    """The task's value, or its failure as a ConversionError once Ray gave up on it."""
    from ray import exceptions

    try:
        return ray.get(ref)
    except exceptions.RayTaskError as exc:  # not a DCFormatError (those come back as values): a bug
        raise ConversionError(f"a Ray task failed: {_first_line(exc.cause if exc.cause else exc)}") from exc
    except exceptions.RayError as exc:  # worker or node lost more than RAY_RETRIES times, cancelled, ...
        raise ConversionError(f"a Ray task failed after {RAY_RETRIES} retries: {_first_line(exc)}") from exc


def _check_reachable(address: str) -> None:
    """A ``HOST:PORT`` (or ``ray://HOST:PORT``) address must accept a connection: Ray itself
    waits for an absent cluster without end, repeating its warnings."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", "local": Ray finds (or starts) the cluster itself and says if it cannot
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise UsageError(f"cannot reach a Ray cluster at {address!r}: {exc.strerror or exc}") from None


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError("converting on a Ray cluster needs the ray package: pip install 'dcformat[ray]'") from None
    return ray


def _first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _relayed(fn, job):
    """``fn(job)`` in a worker, as ``(how, value)`` for :func:`_unrelay`. A DCFormatError comes
    back as a value, not raised, so that neither the process pool nor Ray wraps it; one that
    pickling would not bring back (a class whose ``__init__`` takes other arguments than its
    message) comes back as its class, args and attributes, and is rebuilt with its class."""
    try:
        return "done", fn(job)
    except DCFormatError as exc:
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:
            return "rebuild", (type(exc), exc.args, dict(vars(exc)))
        return "raise", exc


def _unrelay(result):
    how, value = result
    if how == "done":
        return value
    if how == "raise":
        raise value
    cls, args, attributes = value
    exc = cls.__new__(cls)
    exc.args = args
    vars(exc).update(attributes)
    raise exc
