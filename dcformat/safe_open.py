"""Lazy, per-tensor access to a file or a compressed model directory, shaped like ``safetensors.safe_open``."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from .container.file import ContainerFile
from .container.source import open_source
from .format.records import Record
from .index import INDEX_NAME, about, is_model_directory, read_index
from .interop.torch_arrays import from_bits, numpy_view, to_torch
from .errors import DCFormatError, FileClosed, TensorNotFound, UsageError


class safe_open:  # noqa: N801 - named after safetensors.safe_open on purpose
    """Open a ``.dcf`` file, or a directory of ``.dcf`` shards, and decode only the tensors asked for.

    Parameters
    ----------
    path : str or Path
        The file to read, or a compressed model directory (``dcformat compress MODEL_DIR``):
        its index (:data:`~dcformat.index.INDEX_NAME`) says which shard holds each name, a
        shard is opened when a tensor of it is first asked for, and a tied weight's other
        names (the index's aliases) decode as copies of the tensor stored. ``metadata()`` is
        then the index's metadata (values not strings as JSON), ``records()`` and
        ``bank_records()`` every shard's, ``version`` the highest and ``file_size`` the sum.
    framework : {"numpy", "np", "pt", "torch"}
        What ``get_tensor`` returns: numpy arrays (default) or torch tensors.
    verify : bool
        Check CRC-32 checksums of the header and of every segment read (default). Turn
        off only for trusted files: every other rule is still enforced.
    decode_budget : int, optional
        Most bytes of decoded tensors this file may make the reader allocate; default
        ``max(256 MiB, 1024 x file size)``.
    mmap : bool, optional
        Map the file (each shard of a directory) instead of reading it with ``pread``:
        tensors stored as they are (RAW records) are then views of the mapping, once
        their checksum has passed, writable copy-on-write, as safetensors hands them out.
        Only for files that nothing truncates while they are open: touching a mapped page
        past a file's new end kills the process (``SIGBUS``), where ``pread`` raises
        :class:`~dcformat.errors.FileChanged`. Tensors decoded into ``out=`` are copied.
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
        self.framework = framework
        self._file: ContainerFile | _Shards | None = None
        if (Path(path) / INDEX_NAME).is_file() or is_model_directory(path):  # a model directory (or another's)
            self._file = self._source = _Shards(path, verify=verify, decode_budget=decode_budget, threads=threads,
                                                mmap=mmap)
            return
        # any other directory is IsADirectory, as for every reader of one file
        self._source = open_source(path, mapped=mmap)
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
        """Tensor names in file order (a directory's: its index's order)."""
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
        f = self._opened()
        if self.framework in ("pt", "torch") and out is None:  # bits straight into a torch tensor
            return from_bits(f.decode(name, bits=True), f.dtype(name))
        array = f.decode(name, out)
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
        f = self._opened()
        # Torch tensors are decoded as their bits (no ml_dtypes for BF16), numpy arrays as values.
        bits = self.framework in ("pt", "torch") and all(_is_torch(t) for t in given.values())
        views = {name: numpy_view(t, name, bits=bits) if _is_torch(t) else t for name, t in given.items()}
        decoded = f.decode_all(names, out=views, bits=bits)
        if self.framework in ("pt", "torch"):
            return {k: given[k] if k in given else from_bits(v, f.dtype(k)) if bits else to_torch(v)
                    for k, v in decoded.items()}
        return {k: given.get(k, v) for k, v in decoded.items()}

    def records(self) -> list[Record]:
        """The tensor records, for inspection (``dcformat info``)."""
        f = self._opened()
        if isinstance(f, _Shards):
            return f.records()
        return [f.record(name) for name in f.keys()]

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


class _Shards:
    """A compressed model directory read as one file: what :class:`safe_open` asks of a
    :class:`~dcformat.container.file.ContainerFile`, each name looked up in the index and
    decoded from its shard, opened on first use; an error of a shard names it (``exc.shard``)."""

    def __init__(self, root, *, verify: bool, decode_budget: int | None, threads: int | None, mmap: bool = False):
        self.index = read_index(root)
        self._options = dict(verify=verify, decode_budget=decode_budget, threads=threads)
        self._mapped = mmap
        self._open: dict[str, ContainerFile] = {}

    def close(self) -> None:
        files, self._open = self._open, {}
        for f in files.values():
            f.source.close()

    def _shard(self, shard: str) -> ContainerFile:
        if shard not in self._open:
            path = self.index.root / shard
            source = None
            try:
                source = open_source(path, mapped=self._mapped)
                self._open[shard] = ContainerFile(source, **self._options)
            except DCFormatError as exc:
                if source is not None:
                    source.close()
                raise about(exc, path)
        return self._open[shard]

    def _where(self, name: str) -> tuple[ContainerFile, str]:
        shard = self.index.weight_map.get(name)
        if shard is None:
            raise TensorNotFound(name)
        return self._shard(shard), self.index.aliases.get(name, name)

    def keys(self) -> list[str]:
        return list(self.index.weight_map)

    @property
    def metadata(self) -> dict[str, str]:
        return {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in self.index.metadata.items()}

    def dtype(self, name: str):
        f, stored = self._where(name)
        return f.dtype(stored)

    def decode(self, name: str, out=None, bits: bool = False) -> np.ndarray:
        f, stored = self._where(name)
        try:
            return f.decode(stored, out, bits=bits)
        except DCFormatError as exc:
            raise about(exc, f.source.path)

    def decode_all(self, names=None, out=None, bits: bool = False) -> dict[str, np.ndarray]:
        """Each shard's stored tensors at once (into ``out`` where given); an alias asked for
        is a copy of its tensor (into its own ``out`` if given)."""
        names = self.keys() if names is None else list(names)
        out = dict(out or {})
        by_shard: dict[str, dict[str, None]] = {}
        for name in names:
            if name not in self.index.weight_map:
                raise TensorNotFound(name)
            by_shard.setdefault(self.index.weight_map[name], {})[self.index.aliases.get(name, name)] = None
        decoded = {}
        for shard, stored in by_shard.items():
            f = self._shard(shard)
            targets = {n: out[n] for n in stored if n in out and n in names}
            try:
                decoded.update(f.decode_all(list(stored), out=targets, bits=bits))
            except DCFormatError as exc:
                raise about(exc, f.source.path)
        result = {}
        for name in names:
            stored = self.index.aliases.get(name, name)
            if stored == name:
                result[name] = decoded[name]
            elif name in out:
                np.copyto(out[name], decoded[stored])
                result[name] = out[name]
            else:
                result[name] = decoded[stored].copy() if stored in names else decoded[stored]
        return result

    def _every_shard(self) -> list[ContainerFile]:
        return [self._shard(shard) for shard in self.index.shards]

    def records(self) -> list[Record]:
        return [f.record(name) for f in self._every_shard() for name in f.keys()]

    @property
    def header(self):
        files = self._every_shard()
        return SimpleNamespace(banks=[b for f in files for b in f.header.banks],
                               version=max(f.header.version for f in files))

    @property
    def size(self) -> int:
        return sum(f.size for f in self._every_shard())
