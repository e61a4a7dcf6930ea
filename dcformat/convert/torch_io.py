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

import re
import struct
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
            raise ConversionError(f"{self.path}: {_load_failure(self.path, self._mapped, exc)}") from exc
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


#: How every legacy (non-zip) ``torch.save`` file starts: pickle protocol 2, then the magic
#: number 0x1950a86a20f9469cfc6c as a LONG1 (protocols 0 and 1 write it as text).
_LEGACY_MAGIC = (b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", b"L119547037146038801333356")


def _load_failure(path, is_zip: bool, exc: Exception) -> str:
    """One line saying why ``torch.load`` refused ``path`` (torch's messages run to a paragraph, or are empty)."""
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        return "empty file (0 bytes), not a PyTorch checkpoint"
    if not is_zip and head.startswith(b"PK\x03\x04"):
        return "cannot load as a PyTorch checkpoint: a damaged or truncated zip archive (no central directory)"
    if not is_zip and not any(magic in head for magic in _LEGACY_MAGIC):
        return ("not a PyTorch checkpoint: neither a zip archive (torch.save since PyTorch 1.6) "
                "nor a legacy torch.save file")
    if isinstance(exc, (EOFError, struct.error)):
        return "cannot load as a PyTorch checkpoint: the file ends early (truncated?)"
    message = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # torch colours its messages
    detail = re.search(r"WeightsUnpickler error:\s*(.+)", message)
    if detail:  # the one line that says what weights_only loading refused
        return f"cannot load as a PyTorch checkpoint with weights_only=True: {detail.group(1).strip()}"
    first = next((line.strip() for line in message.splitlines() if line.strip()), "")
    first = first.split(". ")[0].rstrip(".")
    return f"cannot load as a PyTorch checkpoint: {first or type(exc).__name__}"


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
        torch.save(state, f)
