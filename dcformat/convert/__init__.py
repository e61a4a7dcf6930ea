"""Converters between checkpoint files and dicts of numpy arrays.

``read_checkpoint`` picks the reader from the file name: ``.safetensors``, PyTorch
(``.pt``, ``.pth``, ``.bin``, ``.ckpt``), ``.dcf``, or the 2016 ``.net`` release files
(which need their Caffe prototxt). ``write_checkpoint`` does the reverse for
safetensors and PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import ConversionError

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


@dataclass
class Checkpoint:
    """What a converter read: tensors (arrays or already-encoded), metadata, notes."""

    tensors: dict
    metadata: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    source_format: str = ""


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


def read_checkpoint(path, *, prototxt=None) -> Checkpoint:
    """Read any supported checkpoint file."""
    kind = checkpoint_format(path)
    if not Path(path).is_file():
        raise ConversionError(f"{path}: no such file")
    if kind == "safetensors":
        from .safetensors_io import read_safetensors

        tensors, metadata = read_safetensors(path)
        return Checkpoint(tensors, metadata, source_format=kind)
    if kind == "torch":
        from .torch_io import read_torch

        tensors, skipped = read_torch(path)
        return Checkpoint(tensors, {}, skipped, source_format=kind)
    if kind == "dcf":
        from ..numpy import load_file, load_metadata

        return Checkpoint(load_file(path), load_metadata(path), source_format=kind)
    if prototxt is None:
        raise ConversionError(f"{path}: a .net file needs its Caffe prototxt (--prototxt)")
    from .net2016 import net_to_encoded, read_net

    return Checkpoint(net_to_encoded(read_net(path, prototxt)), {"source": Path(path).name},
                      source_format=kind)


def write_checkpoint(tensors: Mapping[str, np.ndarray], path, metadata: Mapping[str, str] | None = None,
                     *, overwrite: bool = False) -> None:
    """Write decoded tensors as safetensors or a PyTorch state dict, by file name."""
    kind = checkpoint_format(path)
    if kind == "safetensors":
        from .safetensors_io import write_safetensors

        write_safetensors(tensors, path, metadata, overwrite=overwrite)
    elif kind == "torch":
        from .torch_io import write_torch

        write_torch(tensors, path, overwrite=overwrite)
    else:
        raise ConversionError(f"{path}: can write .safetensors or {', '.join(TORCH_SUFFIXES)}, not {kind}")
