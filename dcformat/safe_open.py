"""Lazy, per-tensor access to a file, shaped like ``safetensors.safe_open``."""

from __future__ import annotations

import warnings

import numpy as np

from .container.file import ContainerFile
from .container.source import open_source
from .format.records import Record
from .interop.torch_arrays import numpy_view, to_torch
from .errors import FileClosed, UsageError


class safe_open:  # noqa: N801 - named after safetensors.safe_open on purpose
    """Open a ``.dcf`` file and decode only the tensors asked for.

    Parameters
    ----------
    path : str or Path
        The file to read.
    framework : {"numpy", "np", "pt", "torch"}
        What ``get_tensor`` returns: numpy arrays (default) or torch tensors.
    verify : bool
        Check CRC-32 checksums of the header and of every segment read (default). Turn
        off only for trusted files: every other rule is still enforced.
    decode_budget : int, optional
        Most bytes of decoded tensors this file may make the reader allocate; default
        ``max(256 MiB, 1024 x file size)``.
    mmap : bool, optional
        Deprecated and without effect: each segment is read from the file when it is
        decoded (``pread``), which is as fast as mapping the file was, and a file that
        another process truncates while it is open is a ``TruncatedError``
        (:class:`~dcformat.errors.FileChanged`), where touching a mapped page past its
        new end killed the process (``SIGBUS``). ``mmap=True`` warns.
    threads : int, optional
        Most threads one tensor decodes on (default: every core, or
        ``DCFORMAT_NUM_THREADS``).

    Examples
    --------
    >>> import numpy as np, dcformat, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "w.dcf")
    >>> dcformat.save_file({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, path)
    >>> with dcformat.safe_open(path) as f:
    ...     f.keys(), f.get_tensor("w").shape
    (['w'], (2, 3))
    """

    def __init__(self, path, framework: str = "numpy", *, verify: bool = True,
                 decode_budget: int | None = None, mmap: bool = False, threads: int | None = None):
        if framework not in ("numpy", "np", "pt", "torch"):
            raise UsageError(f"framework must be 'numpy' or 'pt', got {framework!r}")
        if mmap:
            warnings.warn("safe_open(mmap=True) no longer maps the file: it is read as it is decoded, as fast, "
                          "and safe from a file truncated under it; drop the argument", DeprecationWarning,
                          stacklevel=2)
        self.framework = framework
        self._file: ContainerFile | None = None
        self._source = open_source(path)
        try:
            self._file = ContainerFile(self._source, verify=verify, decode_budget=decode_budget, threads=threads)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "safe_open":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the file; every method called afterwards raises FileClosed."""
        self._file = None
        self._source.close()

    def _opened(self) -> ContainerFile:
        if self._file is None:
            raise FileClosed()
        return self._file

    def keys(self) -> list[str]:
        """Tensor names in file order."""
        return self._opened().keys()

    def metadata(self) -> dict[str, str]:
        """The file's metadata map (a safetensors ``__metadata__`` is kept here)."""
        return self._opened().metadata

    def get_tensor(self, name: str, out=None):
        """Decode one tensor, into ``out`` if given, and return it.

        ``out`` is a C-contiguous numpy array or a contiguous CPU torch tensor of the
        tensor's dtype and shape (a module's parameter, say): the values are decoded into
        its memory, with no second copy, and ``out`` itself is returned.
        """
        if _is_torch(out):
            return self.get_tensors([name], out={name: out})[name]
        array = self._opened().decode(name, out)
        if self.framework in ("pt", "torch"):
            return to_torch(array)
        return array

    def get_tensors(self, names=None, *, out=None) -> dict:
        """Decode ``names`` (default: every tensor) at once, on every core; a dict by name.

        ``out`` maps names to arrays or CPU torch tensors to decode into, as for
        :meth:`get_tensor`; the result holds those objects themselves. The other tensors
        share one allocation (see :meth:`ContainerFile.decode_all`).
        """
        given = dict(out or {})
        views = {}
        for name, target in given.items():
            if _is_torch(target):
                views[name] = numpy_view(target, name)
            else:
                views[name] = target
        decoded = self._opened().decode_all(names, out=views)
        if self.framework in ("pt", "torch"):
            return {k: given[k] if k in given else to_torch(v) for k, v in decoded.items()}
        return {k: given.get(k, v) for k, v in decoded.items()}

    def records(self) -> list[Record]:
        """The tensor records, for inspection (``dcformat info``)."""
        return [self._opened().record(name) for name in self._opened().keys()]

    def bank_records(self) -> list[Record]:
        return list(self._opened().header.banks)

    @property
    def version(self) -> tuple[int, int]:
        return self._opened().header.version

    @property
    def file_size(self) -> int:
        return self._opened().size


def _is_torch(value) -> bool:
    """Whether ``value`` is a torch tensor, without importing torch for numpy users."""
    return value is not None and not isinstance(value, np.ndarray) and type(value).__module__.startswith("torch")
