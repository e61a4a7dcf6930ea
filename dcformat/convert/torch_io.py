"""PyTorch checkpoints (zip and legacy formats) <-> dicts of numpy arrays.

Reading uses ``torch.load(weights_only=True, map_location="cpu")``: no pickle code runs.
Zip-format checkpoints (every ``torch.save`` since PyTorch 1.6) are loaded with
``mmap=True``, so tensor data stays in the file until a tensor is converted; the legacy
non-zip format cannot be mapped and is read whole. A checkpoint may be a bare state
dict or wrap one (``{"state_dict": ...}``, ``{"model": ...}``); nested dicts are
flattened with dots, so names stay unique and nothing is renamed (a Lightning
checkpoint's tensors keep their ``state_dict.`` prefix). Values that are not tensors
(epoch counters, optimizer settings) cannot be tensors in a ``.dcf`` file; their names
are reported so that nothing is dropped silently.
"""

from __future__ import annotations

import errno
import re
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from ..atomic import atomic_output
from ..errors import ConversionError, storage_errors


#: Bytes copied out of a mapped checkpoint before it is mapped afresh (see TorchSource).
REMAP_BYTES = 64 << 20


class TorchSource(Mapping):
    """The tensors of a PyTorch checkpoint, each converted to numpy when it is indexed.

    ``skipped`` names the values that are not tensors. The numpy array returned is a
    copy that owns its memory. A zip checkpoint is mapped: the pages a tensor is copied
    from stay in the process's resident set for as long as the mapping lives, so before
    a tensor would take the bytes copied out of one mapping past :data:`REMAP_BYTES`,
    the checkpoint is loaded afresh and the old mapping dropped. Resident pages of the
    file stay under ``max(REMAP_BYTES, the tensor being read)``; each reload costs one
    unpickling of the checkpoint (milliseconds for a few hundred tensors).
    """

    def __init__(self, path):
        self.path = path
        with storage_errors(path, "read"), open(path, "rb"):  # missing, a directory, unreadable
            pass
        self._mapped = zipfile.is_zipfile(path)
        self._tensors, self.skipped = self._load()
        self._names = list(self._tensors)
        self._copied = 0  # bytes copied out of the current mapping

    def _load(self) -> tuple[dict, list[str]]:
        import torch

        try:
            obj = torch.load(Path(self.path), weights_only=True, map_location="cpu", mmap=self._mapped)
        except Exception as exc:  # torch raises many types for malformed or unsafe pickles
            message = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # torch colours its messages
            raise ConversionError(f"{self.path}: cannot load as a PyTorch checkpoint: {message}") from exc
        tensors: dict = {}
        skipped: list[str] = []
        _flatten(obj, "", tensors, skipped, torch.Tensor)
        if not tensors:
            raise ConversionError(f"{self.path}: no tensors found in the checkpoint")
        return tensors, skipped

    def __getitem__(self, name: str) -> np.ndarray:
        from ..interop.torch_arrays import to_numpy

        if name not in self._tensors:
            raise KeyError(name)
        size = self._tensors[name].nbytes
        if self._mapped and self._copied and self._copied + size > REMAP_BYTES:
            self._tensors = {}  # unmaps the old pages before the new mapping is made
            self._tensors, _ = self._load()
            self._copied = 0
            if list(self._tensors) != self._names:
                raise ConversionError(f"{self.path}: the checkpoint changed while it was read")
        self._copied += size
        return to_numpy(self._tensors[name], name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def read_torch(path) -> tuple[dict[str, np.ndarray], list[str]]:
    """The tensors of a PyTorch checkpoint as numpy arrays, and the names of skipped values."""
    source = TorchSource(path)
    return dict(source.items()), source.skipped


def _flatten(obj, prefix: str, tensors: dict, skipped: list, tensor_type) -> None:
    if isinstance(obj, tensor_type):
        name = prefix or "tensor"
        if name in tensors:
            raise ConversionError(f"two tensors flatten to the name {name!r}; rename one in the checkpoint")
        tensors[name] = obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), tensors, skipped, tensor_type)
    elif isinstance(obj, (list, tuple)) and any(isinstance(v, (tensor_type, Mapping)) for v in obj):
        for i, value in enumerate(obj):
            _flatten(value, f"{prefix}.{i}" if prefix else str(i), tensors, skipped, tensor_type)
    else:
        skipped.append(prefix)


def write_torch(tensors: Mapping[str, np.ndarray], path, *, overwrite: bool = False) -> None:
    """Write a state dict of torch tensors with ``torch.save``, atomically."""
    import torch

    from ..interop.torch_arrays import to_torch

    state = {name: to_torch(np.asarray(array)) for name, array in tensors.items()}
    with atomic_output(path, overwrite=overwrite) as f:
        _save(torch, state, f, path)


def _save(torch, obj, f, path) -> None:
    """``torch.save(obj, f)``, a failed write raised as the OSError it is.

    torch's zip writer catches the ``OSError`` of ``f.write`` (disk full, say) and
    raises ``RuntimeError: [enforce fail at inline_container.cc:...]`` from it instead.
    """
    try:
        torch.save(obj, f)
    except RuntimeError as exc:
        failed = exc.__context__
        if isinstance(failed, OSError):
            raise failed from None
        if "inline_container" in str(exc):  # a failed write that left no OSError behind
            raise OSError(errno.EIO, f"writing the PyTorch file failed: {exc}", str(path)) from exc
        raise
