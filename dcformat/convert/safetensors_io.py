"""safetensors files <-> dicts of numpy arrays, ``__metadata__`` kept, bits exact."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Mapping

import numpy as np
from safetensors import SafetensorError, safe_open

from ..atomic import atomic_output
from ..container.source import open_source
from ..format.dtypes import dtype_of, numpy_dtype, to_little_endian
from ..errors import ConversionError, DCFormatError, UsageError, storage_errors


class SafetensorsSource(Mapping):
    """The tensors of a safetensors file, each read from the file when it is indexed.

    Names come in file order, as ``safetensors.safe_open`` lists them. ``safe_open``
    checks the header once, when the source is made; the header's byte ranges are kept,
    and each access reads its one tensor with ``pread`` (:func:`~dcformat.container.source.open_source`,
    the container's own reader) into an array of its own. Nothing is mapped: no page of
    the file stays in the process's resident set, and a file that shrinks under the
    reader is a :class:`~dcformat.errors.FileChanged` error, not a ``SIGBUS``. (Opening
    the file with ``safe_open`` for every tensor, as this did before, parses the whole
    header each time: 5 ms a tensor on a shard of 3,200 tensors.) Every dtype of the
    format is read, float8 included.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from safetensors.numpy import save_file
    >>> path = os.path.join(tempfile.mkdtemp(), "m.safetensors")
    >>> save_file({"w": np.ones(3, np.float32)}, path, metadata={"k": "v"})
    >>> source = SafetensorsSource(path)
    >>> list(source), source.metadata, source["w"]
    (['w'], {'k': 'v'}, array([1., 1., 1.], dtype=float32))
    """

    def __init__(self, path):
        self.path = path
        with storage_errors(path, "read"), open(path, "rb"):  # missing, a directory, unreadable
            pass
        try:
            with storage_errors(self.path, "read"), safe_open(str(self.path), framework="numpy") as f:
                self._names = list(f.keys())
                self.metadata: dict[str, str] = dict(f.metadata() or {})
        except SafetensorError as exc:
            raise ConversionError(f"{self.path}: not a valid safetensors file: {exc}") from exc
        self._ranges = self._read_ranges()

    def _read_ranges(self) -> dict[str, tuple[np.dtype, tuple[int, ...], int, int]]:
        """Name -> (numpy dtype, shape, first byte, byte count), from the header safe_open checked."""
        bad = ConversionError(f"{self.path}: the safetensors header changed while it was read")
        with storage_errors(self.path, "read"), open(self.path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise bad
            (length,) = struct.unpack("<Q", head)
            text = f.read(length)
        try:
            header = json.loads(text)
            ranges = {}
            for name in self._names:
                entry = header[name]
                start, end = (int(x) for x in entry["data_offsets"])
                shape = tuple(int(d) for d in entry["shape"])
                ranges[name] = (_numpy_dtype(entry["dtype"], self.path, name), shape, 8 + length + start, end - start)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise bad from None
        return ranges

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._ranges:
            raise KeyError(name)
        dtype, shape, start, nbytes = self._ranges[name]
        out = np.empty(nbytes, np.uint8)
        source = open_source(self.path)
        try:
            source.read(start, nbytes, f"tensor {name!r}", into=out)
        finally:
            source.close()
        return out.view(dtype).reshape(shape)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _numpy_dtype(name: str, path, tensor: str) -> np.dtype:
    """The numpy dtype of a safetensors dtype name (the format's names are safetensors')."""
    try:
        return numpy_dtype(name)
    except DCFormatError:
        raise ConversionError(f"{path}: tensor {tensor!r} has dtype {name}, which dcformat does not store") from None


def read_safetensors(path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every tensor of a safetensors file as numpy (BF16 as ml_dtypes.bfloat16) plus its metadata."""
    source = SafetensorsSource(path)
    return dict(source.items()), source.metadata


def write_safetensors(tensors: Mapping[str, np.ndarray], path, metadata: Mapping[str, str] | None = None,
                      *, overwrite: bool = False, specs: Mapping[str, tuple] | None = None) -> None:
    """Write a safetensors file atomically (temporary file, then rename), one tensor at a time.

    The header (every tensor's dtype, shape and byte range) comes first, so it needs them
    all before any data: for a lazy ``tensors`` (values decoded when indexed) ``specs``
    maps each name to its numpy ``(dtype, shape)``, and each value is then indexed once,
    written out and dropped before the next: the peak is the largest tensor. Without
    ``specs`` they are read off the values.

    Tensors are stored widest dtype first, then by name, after a header padded with
    spaces to 8 bytes, as safetensors' own writer stores them, so each is aligned to its
    dtype; any safetensors reader loads the file.
    """
    if specs is None:
        specs = {name: (tensors[name].dtype, tensors[name].shape) for name in tensors}
    # widest dtype first, then by name, as safetensors' own writer: every tensor is aligned
    names = sorted(tensors, key=lambda name: (-np.dtype(specs[name][0]).itemsize, name))
    header, end = {}, 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name in names:
        dtype, shape = specs[name]
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        header[name] = {"dtype": _wire_name(dtype, name), "shape": [int(d) for d in shape],
                        "data_offsets": [end, end + nbytes]}
        end += nbytes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with atomic_output(path, overwrite=overwrite) as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name in names:
            f.write(_little_endian_bytes(tensors[name], specs[name], name))


def _wire_name(dtype, name: str) -> str:
    return dtype_of(np.empty(0, dtype), name).name  # the wire names are safetensors' own


def _little_endian_bytes(value, spec: tuple, name: str) -> memoryview:
    """``value``'s bytes, C order and little-endian, once it is proven to match its header entry."""
    array = np.asarray(value)
    dtype, shape = spec
    if array.shape != tuple(shape) or _wire_name(array.dtype, name) != _wire_name(dtype, name):
        raise UsageError(f"tensor {name!r} is {array.dtype} {array.shape}, its header entry said {dtype} {tuple(shape)}")
    return to_little_endian(array).reshape(-1).view(np.uint8).data
