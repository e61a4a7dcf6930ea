"""safetensors files <-> dicts of numpy arrays, ``__metadata__`` kept, bits exact."""

from __future__ import annotations

from typing import Mapping

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save as _st_save

from ..atomic import atomic_output
from ..errors import ConversionError


def read_safetensors(path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every tensor of a safetensors file as numpy (BF16 as ml_dtypes.bfloat16) plus its metadata."""
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = dict(f.metadata() or {})
            tensors = {name: _get(f, name, path) for name in f.keys()}
    except SafetensorError as exc:
        raise ConversionError(f"{path}: not a valid safetensors file: {exc}") from exc
    return tensors, metadata


def _get(f, name: str, path) -> np.ndarray:
    try:
        return f.get_tensor(name)
    except (AttributeError, TypeError) as exc:  # float8: safetensors' numpy path lacks it
        raise ConversionError(f"{path}: tensor {name!r} has a dtype safetensors cannot give as "
                              f"numpy ({exc}); convert it with the PyTorch converter") from exc


def write_safetensors(tensors: Mapping[str, np.ndarray], path, metadata: Mapping[str, str] | None = None,
                      *, overwrite: bool = False) -> None:
    """Write a safetensors file atomically (temporary file, then rename)."""
    data = _st_save({k: np.asarray(v, order="C") for k, v in tensors.items()}, metadata=dict(metadata or {}) or None)
    with atomic_output(path, overwrite=overwrite) as f:
        f.write(data)
