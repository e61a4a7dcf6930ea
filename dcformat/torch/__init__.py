"""The PyTorch side of dcformat (optional: needs ``pip install dcformat[torch]``).

``save``/``save_file``/``load``/``load_file`` mirror :mod:`dcformat.numpy` with torch
tensors; ``save_model``/``load_model`` work on ``nn.Module`` state dicts. Tied weights
are stored under each of their names; ``load_state_dict`` copies into the tied
parameter, so the tie survives a round trip.
"""

from __future__ import annotations

from typing import Mapping

from .. import numpy as _np
from ..errors import UsageError
from .convert import to_numpy, to_torch


def _to_arrays(tensors: Mapping) -> dict:
    out = {}
    for name, value in tensors.items():
        out[name] = to_numpy(value, name) if hasattr(value, "detach") else value
    return out


def save(tensors: Mapping, metadata: Mapping[str, str] | None = None) -> bytes:
    """Encode a dict of torch tensors (or EncodedTensor objects) to ``.dcf`` bytes."""
    return _np.save(_to_arrays(tensors), metadata)


def save_file(tensors: Mapping, path, metadata: Mapping[str, str] | None = None, *,
              overwrite: bool = False) -> None:
    """Write a dict of torch tensors to ``path`` atomically."""
    _np.save_file(_to_arrays(tensors), path, metadata, overwrite=overwrite)


def load(data: bytes, **kwargs) -> dict:
    """Decode ``.dcf`` bytes into a dict of torch tensors."""
    return {k: to_torch(v) for k, v in _np.load(data, **kwargs).items()}


def load_file(path, **kwargs) -> dict:
    """Decode a ``.dcf`` file into a dict of torch tensors (a state dict)."""
    return {k: to_torch(v) for k, v in _np.load_file(path, **kwargs).items()}


def save_model(model, path, metadata: Mapping[str, str] | None = None, *, overwrite: bool = False) -> None:
    """Save ``model.state_dict()`` exactly."""
    save_file(model.state_dict(), path, metadata, overwrite=overwrite)


def load_model(model, path, *, strict: bool = True, **kwargs):
    """Load a ``.dcf`` file into ``model``; returns torch's (missing, unexpected) keys."""
    state = load_file(path, **kwargs)
    try:
        return model.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        raise UsageError(f"{path} does not fit the model: {exc}") from exc


__all__ = ["save", "save_file", "load", "load_file", "save_model", "load_model", "to_numpy", "to_torch"]
