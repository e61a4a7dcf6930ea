"""Converters between checkpoint files and dicts of numpy arrays.

``open_checkpoint`` picks the reader from the file name: ``.safetensors``, PyTorch
(``.pt``, ``.pth``, ``.bin``, ``.ckpt``), ``.dcf``, or the 2016 ``.net`` release files
(which need their Caffe prototxt), and gives the tensors as a lazy mapping where the
format allows it. ``read_checkpoint`` reads everything at once. ``compress_checkpoint``
(and ``compress_into``, for a writer and a lazy mapping of your own) streams a
checkpoint through the compression pipeline into a ``.dcf`` file.
``write_checkpoint`` writes decoded tensors as safetensors or PyTorch.
Hugging Face model directories (sharded weights beside ``config.json`` and tokenizer files)
go in and out whole with ``compress_directory`` and ``decompress_directory``
(:mod:`dcformat.convert.directory`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import ConversionError, storage_errors

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")

__all__ = ["Checkpoint", "DcfSource", "TORCH_SUFFIXES", "checkpoint_format", "compress_checkpoint", "compress_into",
           "compress_directory", "decompress_directory", "describe_directory", "find_weights",
           "is_model_directory", "open_checkpoint", "read_checkpoint", "read_index", "verify_directory",
           "write_checkpoint"]


@dataclass
class Checkpoint:
    """What a converter read: tensors (arrays or already-encoded), metadata, what was left out.

    ``tensors`` is a dict from :func:`read_checkpoint` and may be a lazy mapping (each
    value read when indexed) from :func:`open_checkpoint`. ``encoded`` names the
    tensors that come already encoded (a ``.net`` file's weights); the others are
    numpy arrays. ``metadata`` is the file's (a safetensors ``__metadata__``; a PyTorch
    checkpoint's structure and non-tensor values under
    :data:`~dcformat.convert.torch_io.STRUCTURE_KEY`); ``skipped`` names the values that
    could be kept neither as tensors nor there.
    """

    tensors: Mapping
    metadata: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    source_format: str = ""
    encoded: frozenset = frozenset()

    def arrays(self) -> Mapping:
        """The tensors that are numpy arrays (all but ``encoded``), as lazy as ``tensors``."""
        if not self.encoded:
            return self.tensors
        return {name: value for name, value in self.tensors.items() if name not in self.encoded}


def checkpoint_format(path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".safetensors":
        return "safetensors"
    if suffix in TORCH_SUFFIXES:
        return "torch"
    if suffix == ".dcf":
        return "dcf"
    if suffix == ".net":
        return "net2016"
    raise ConversionError(f"{path}: unknown checkpoint type {suffix!r}; expected .safetensors, "
                          f"{', '.join(TORCH_SUFFIXES)}, .dcf or .net")


@contextlib.contextmanager
def open_checkpoint(path, *, prototxt=None, safe_globals=()) -> Iterator[Checkpoint]:
    """Open any supported checkpoint; its tensors are read from the file one at a time.

    Lazy: safetensors (each tensor read when indexed), PyTorch zip checkpoints (loaded
    with ``mmap=True``; each tensor copied out of the mapping when indexed) and ``.dcf``
    files (each tensor decoded when indexed). Eager: legacy (non-zip) PyTorch files,
    which cannot be mapped, and 2016 ``.net`` files, whose layers are decoded and
    re-planned as a whole. The file stays open until the ``with`` block ends. A missing
    ``path``, a directory or a file that may not be read raises its
    :class:`~dcformat.errors.StorageError` (``InputNotFound``, ``IsADirectory``, ``AccessDenied``).
    ``safe_globals`` names the classes a trusted PyTorch checkpoint may use beyond what
    ``weights_only`` loading allows (:class:`~dcformat.convert.torch_io.TorchSource`).
    """
    with storage_errors(path, "read"), open(path, "rb"):  # missing, a directory, unreadable: before the suffix
        pass
    kind = checkpoint_format(path)
    if kind == "safetensors":
        from .safetensors_io import SafetensorsSource

        source = SafetensorsSource(path)
        yield Checkpoint(source, source.metadata, source_format=kind)
    elif kind == "torch":
        from .torch_io import TorchSource

        source = TorchSource(path, safe_globals=safe_globals)
        yield Checkpoint(source, source.metadata, source.skipped, source_format=kind)
    elif kind == "dcf":
        from ..safe_open import safe_open

        with safe_open(path) as f:
            yield Checkpoint(DcfSource(f), f.metadata(), source_format=kind)
    elif prototxt is None:
        raise ConversionError(f"{path}: a .net file needs its Caffe prototxt (--prototxt)")
    else:
        from ..encodings.model import EncodedTensor
        from .net2016 import net_to_encoded, read_net

        tensors = net_to_encoded(read_net(path, prototxt))
        yield Checkpoint(tensors, {"source": Path(path).name}, source_format=kind,
                         encoded=frozenset(k for k, v in tensors.items() if isinstance(v, EncodedTensor)))


def read_checkpoint(path, *, prototxt=None, safe_globals=()) -> Checkpoint:
    """Read any supported checkpoint file, every tensor at once (see :func:`open_checkpoint`)."""
    with open_checkpoint(path, prototxt=prototxt, safe_globals=safe_globals) as checkpoint:
        return replace(checkpoint, tensors=dict(checkpoint.tensors.items()))


def compress_checkpoint(src, dst, settings=None, *, prototxt=None, overwrite: bool = False,
                        progress: bool = False, safe_globals=(), input_weights=None) -> tuple[list, list[str]]:
    """Compress the checkpoint file ``src`` into the ``.dcf`` file ``dst``, one tensor at a time.

    :func:`open_checkpoint` then :func:`compress_into` a
    :class:`~dcformat.container.writer.StreamingWriter`: memory holds one tensor and its
    working arrays, not the model. The file is the one
    ``save_file(compress_tensors(read_checkpoint(src).tensors))`` writes, byte for byte,
    and appears atomically (``compress_tensors(..., metadata=)`` with the checkpoint's
    metadata, when a bits-per-parameter budget counts it); an existing ``dst`` is
    refused before any work unless ``overwrite``. ``input_weights`` is
    :func:`~dcformat.compress.pipeline.iter_compress`'s (row sums weighed by measured input means).

    Returns
    -------
    (list of TensorReport, list of str)
        A report per array tensor, and the names of the values that are neither tensors
        nor kept in the file's metadata (a PyTorch checkpoint's structure and JSON values
        are, under :data:`~dcformat.convert.torch_io.STRUCTURE_KEY`).
    """
    from ..container.writer import StreamingWriter

    with open_checkpoint(src, prototxt=prototxt, safe_globals=safe_globals) as checkpoint, \
            StreamingWriter(dst, checkpoint.metadata, overwrite=overwrite) as writer:
        reports = compress_into(writer, checkpoint, settings, progress=progress, input_weights=input_weights)
    return reports, checkpoint.skipped


def compress_into(writer, checkpoint: Checkpoint, settings=None, *, progress: bool = False, assign=None,
                  input_weights=None) -> list:
    """Compress ``checkpoint``'s arrays into ``writer`` (:func:`~dcformat.compress.pipeline.iter_compress`).

    Tensors are added in the checkpoint's order; already-encoded ones (a ``.net`` file's
    weights) pass through unchanged. Each value is dropped once it is added, so with a
    :class:`~dcformat.container.writer.StreamingWriter` and a lazy ``tensors`` mapping
    one tensor is held at a time. ``assign`` and ``input_weights`` are
    :func:`~dcformat.compress.pipeline.iter_compress`'s (codes chosen by the caller, e.g.
    :mod:`dcformat.training.gptq`; row sums weighed by measured input means). Returns a report per array tensor.
    """
    from ..compress.pipeline import iter_compress

    # the file's metadata is part of what a bits-per-parameter budget counts
    compressed = iter_compress(checkpoint.arrays(), settings, progress=progress, metadata=writer.metadata,
                               assign=assign, input_weights=input_weights)
    reports = []
    for name in checkpoint.tensors:
        if name in checkpoint.encoded:
            writer.add_tensor(name, checkpoint.tensors[name])
            continue
        _, value, report = next(compressed)  # same order: arrays() keeps it
        writer.add_tensor(name, value)
        reports.append(report)
        del value  # written out: dropped before the next tensor is read
    next(compressed, None)  # resumed once more, the pipeline counts the last tensor done and ends
    return reports


class DcfSource(Mapping):
    """The tensors of an open ``.dcf`` file, each decoded when indexed."""

    def __init__(self, f):
        self._file = f
        self._names = f.keys()

    def specs(self) -> dict[str, tuple]:
        """Every tensor's numpy ``(dtype, shape)``, from the header: nothing is decoded."""
        from ..format.dtypes import numpy_dtype

        return {r.name: (numpy_dtype(r.dtype), r.shape) for r in self._file.records()}

    def __getitem__(self, name: str) -> np.ndarray:
        return self._file.get_tensor(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def write_checkpoint(tensors: Mapping[str, np.ndarray], path, metadata: Mapping[str, str] | None = None,
                     *, overwrite: bool = False) -> list[str]:
    """Write decoded tensors as safetensors or a PyTorch checkpoint, by file name.

    safetensors is written one tensor at a time: a ``.dcf`` file's lazy mapping (from
    :func:`open_checkpoint`) is decoded one tensor at a time, so converting holds the
    largest tensor, not the model; ``metadata`` becomes its ``__metadata__``. PyTorch's
    ``torch.save`` takes the whole checkpoint: rebuilt with its nesting and non-tensor
    values when ``metadata`` holds :data:`~dcformat.convert.torch_io.STRUCTURE_KEY`, a
    flat state dict otherwise.

    Returns
    -------
    list of str
        The metadata keys the output has no place for (a PyTorch file's, but the
        structure), so that the caller can say so; empty for safetensors.
    """
    kind = checkpoint_format(path)
    if kind == "safetensors":
        from .safetensors_io import write_safetensors

        specs = tensors.specs() if isinstance(tensors, DcfSource) else None
        write_safetensors(tensors, path, metadata, overwrite=overwrite, specs=specs)
        return []
    elif kind == "torch":
        from .torch_io import write_torch

        return write_torch(tensors, path, metadata, overwrite=overwrite)
    else:
        raise ConversionError(f"{path}: can write .safetensors or {', '.join(TORCH_SUFFIXES)}, not {kind}")



# Below the file converters, which it is built on.
from .directory import (compress_directory, decompress_directory, describe_directory, find_weights,  # noqa: E402
                        is_model_directory, read_index, verify_directory)
