"""Save and load dicts of numpy arrays (the safetensors ``numpy`` module's four functions)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .container.file import ContainerFile
from .container.source import open_source
from .container.writer import ContainerWriter, StreamingWriter
from .encodings.lossless import exact_tensor
from .errors import UsageError

#: What ``save``/``save_file`` may do to the arrays they are given: None stores them RAW,
#: as safetensors does (a v1.0 file); "lossless" stores each float array as PLANES values
#: where that is smaller (v1.2), bit-exact.
COMPRESS_MODES = (None, "lossless")


def save(tensors: Mapping, metadata: Mapping[str, str] | None = None, *,
         banks: Mapping | None = None, compress: str | None = None) -> bytes:
    """Encode ``tensors`` into the bytes of a ``.dcf`` file.

    Values are numpy arrays (stored exactly, as safetensors would) or
    :class:`~dcformat.encodings.model.EncodedTensor` objects from the compression
    pipeline. ``banks`` maps bank names to kernel banks of shape (L, *kernel).
    ``compress="lossless"`` stores each float array (bf16, fp16, fp32, fp64, fp8) as
    entropy-coded bit planes where that is smaller, every bit kept (NaN payloads, -0.0);
    ``None`` stores the arrays as they are.

    Examples
    --------
    >>> import numpy as np, dcformat
    >>> data = dcformat.save({"b": np.array([1.5, -0.0], dtype=np.float16)})
    >>> dcformat.load(data)["b"]
    array([ 1.5, -0. ], dtype=float16)
    """
    _check_compress(compress)
    writer = ContainerWriter(metadata)
    _add_all(writer, tensors, banks, compress)
    return writer.to_bytes()


def save_file(tensors: Mapping, path, metadata: Mapping[str, str] | None = None, *,
              banks: Mapping | None = None, overwrite: bool = False, compress: str | None = None) -> None:
    """Write ``tensors`` to ``path`` atomically; an existing file is kept unless ``overwrite``.

    The bytes are those of :func:`save` (``compress`` as there). Each tensor is encoded and written out before
    the next is read, so a lazy mapping (values loaded when indexed) is held one tensor
    at a time; see :class:`~dcformat.container.writer.StreamingWriter`.
    """
    _check_compress(compress)
    with StreamingWriter(path, metadata, overwrite=overwrite) as writer:
        _add_all(writer, tensors, banks, compress)


def load(data: bytes, *, verify: bool = True, decode_budget: int | None = None,
         threads: int | None = None) -> dict[str, np.ndarray]:
    """Decode every tensor of a ``.dcf`` file given as bytes.

    The tensors share one allocation, freed with the last of them (see
    :meth:`~dcformat.container.file.ContainerFile.decode_all`). ``threads`` caps the
    threads decoding uses (default: every core, or ``DCFORMAT_NUM_THREADS``).
    """
    container = ContainerFile(data, verify=verify, decode_budget=decode_budget, threads=threads)
    container.decode_banks()
    return container.decode_all()


def load_file(path, *, verify: bool = True, decode_budget: int | None = None,
              threads: int | None = None, mmap: bool = False) -> dict[str, np.ndarray]:
    """Decode every tensor of the ``.dcf`` file at ``path`` (arguments as :func:`load`).

    Each segment is read from the file once (``pread``, not mapped), checksum-verified and
    decoded; a file truncated while it is read is a ``TruncatedError``
    (:class:`~dcformat.errors.FileChanged`), never a crash.

    ``mmap=True`` maps the file instead, and the tensors stored as they are (RAW records:
    the lossless preset's ``--exact raw``) are views of the mapping, once their checksum
    has passed: no copy, as safetensors hands them out. They are writable, copy-on-write
    (the file never changes). Only for files that nothing truncates while they are mapped:
    touching a page past a file's new end kills the process (``SIGBUS``).
    """
    source = open_source(path, mapped=mmap)
    try:
        return load(source, verify=verify, decode_budget=decode_budget, threads=threads)
    finally:
        source.close()


def load_metadata(path) -> dict[str, str]:
    """The metadata map of a file, without decoding any tensor."""
    source = open_source(path)
    try:
        return ContainerFile(source).metadata
    finally:
        source.close()


def _check_compress(compress) -> None:
    if compress not in COMPRESS_MODES:
        raise UsageError(f"compress must be None or 'lossless', got {compress!r}")


def _add_all(writer, tensors: Mapping, banks: Mapping | None, compress: str | None = None) -> None:
    for name, bank in (banks or {}).items():
        writer.add_bank(name, bank)
    for name in tensors:  # indexed one at a time, so that a lazy mapping loads one at a time
        value = tensors[name]
        writer.add_tensor(name, value if compress is None else exact_tensor(name, value))
