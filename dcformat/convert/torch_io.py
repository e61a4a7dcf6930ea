"""PyTorch checkpoints (zip and legacy formats) <-> dicts of numpy arrays.

Reading uses ``torch.load(weights_only=True, map_location="cpu")``: no pickle code runs.
A checkpoint may be a bare state dict or wrap one (``{"state_dict": ...}``,
``{"model": ...}``); nested dicts are flattened with dots, so names stay unique and
nothing is renamed (a Lightning checkpoint's tensors keep their ``state_dict.`` prefix). Values that are not tensors
(epoch counters, optimizer settings) cannot be tensors in a ``.dcf`` file; their names
are reported so that nothing is dropped silently.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import numpy as np

from ..atomic import atomic_output
from ..errors import ConversionError


def read_torch(path) -> tuple[dict[str, np.ndarray], list[str]]:
    """The tensors of a PyTorch checkpoint as numpy arrays, and the names of skipped values."""
    import torch

    from ..torch.convert import to_numpy

    try:
        obj = torch.load(Path(path), weights_only=True, map_location="cpu")
    except Exception as exc:  # torch raises many types for malformed or unsafe pickles
        message = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # torch colours its messages
        raise ConversionError(f"{path}: cannot load as a PyTorch checkpoint: {message}") from exc
    tensors: dict[str, np.ndarray] = {}
    skipped: list[str] = []
    _flatten(obj, "", tensors, skipped, to_numpy, torch.Tensor)
    if not tensors:
        raise ConversionError(f"{path}: no tensors found in the checkpoint")
    return tensors, skipped


def _flatten(obj, prefix: str, tensors: dict, skipped: list, to_numpy, tensor_type) -> None:
    if isinstance(obj, tensor_type):
        name = prefix or "tensor"
        if name in tensors:
            raise ConversionError(f"two tensors flatten to the name {name!r}; rename one in the checkpoint")
        tensors[name] = to_numpy(obj, prefix)
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), tensors, skipped, to_numpy, tensor_type)
    elif isinstance(obj, (list, tuple)) and any(isinstance(v, (tensor_type, Mapping)) for v in obj):
        for i, value in enumerate(obj):
            _flatten(value, f"{prefix}.{i}" if prefix else str(i), tensors, skipped, to_numpy, tensor_type)
    else:
        skipped.append(prefix)


def write_torch(tensors: Mapping[str, np.ndarray], path, *, overwrite: bool = False) -> None:
    """Write a state dict of torch tensors with ``torch.save``, atomically."""
    import torch

    from ..torch.convert import to_torch

    state = {name: to_torch(np.asarray(array)) for name, array in tensors.items()}
    with atomic_output(path, overwrite=overwrite) as f:
        torch.save(state, f)
