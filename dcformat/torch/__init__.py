"""The PyTorch state-dict bridge of dcformat (optional: needs ``pip install dcformat[torch]``).

``save``/``save_file``/``load``/``load_file`` mirror :mod:`dcformat.numpy` with torch
tensors; ``save_model``/``load_model`` work on ``nn.Module`` state dicts. Tied weights
are stored under each of their names; ``load_state_dict`` copies into the tied
parameter, so the tie survives a round trip.

This package is what a loader imports; the training library (pruning, weight sharing,
DSD, Global Weight convolutions, export) is :mod:`dcformat.training`. The old module
paths ``dcformat.torch.prune``, ``.quantize``, ``.dsd``, ``.gwconv``, ``.export``,
``.sensitivity`` and ``.training`` are deprecated aliases of the moved modules.
"""

from __future__ import annotations

from typing import Mapping

from .. import numpy as _np
from ..container.file import ContainerFile
from ..container.source import open_source
from ..errors import UsageError
from ..interop.torch_arrays import from_bits
from .convert import to_numpy, to_torch, torch_dtype


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
    """Decode ``.dcf`` bytes into a dict of torch tensors (``kwargs`` as :func:`dcformat.numpy.load`)."""
    return _load_torch(ContainerFile(data, **kwargs))


def load_file(path, *, mmap: bool = False, **kwargs) -> dict:
    """Decode a ``.dcf`` file into a dict of torch tensors (a state dict; ``mmap`` and
    ``kwargs`` as :func:`dcformat.numpy.load_file`: with ``mmap=True`` raw records' tensors
    share the mapped file's pages)."""
    source = open_source(path, mapped=mmap)
    try:
        return _load_torch(ContainerFile(source, **kwargs))
    finally:
        source.close()


def _load_torch(container: ContainerFile) -> dict:
    """Every tensor decoded as its bits (no ml_dtypes for BF16), then viewed as torch."""
    container.decode_banks()
    return {k: from_bits(v, container.dtype(k)) for k, v in container.decode_all(bits=True).items()}


def save_model(model, path, metadata: Mapping[str, str] | None = None, *, overwrite: bool = False) -> None:
    """Save ``model.state_dict()`` exactly."""
    save_file(model.state_dict(), path, metadata, overwrite=overwrite)


def load_model(model, path, *, strict: bool = True, **kwargs):
    """Load a ``.dcf`` file into ``model``, each tensor decoded straight into its parameter.

    Returns torch's ``(missing_keys, unexpected_keys)``; with ``strict`` either is an
    error, and a shape that does not fit always is, before anything is written. Each
    tensor is decoded into the parameter's or buffer's own memory (no second copy of the
    model) when it is a contiguous CPU tensor of the file's dtype; otherwise it is decoded
    and copied in, converting the dtype as ``load_state_dict`` would. Unlike
    ``load_state_dict`` no module's load hooks run: for modules that need them, use
    ``model.load_state_dict(dcformat.torch.load_file(path))``. ``kwargs`` go to
    :class:`dcformat.safe_open` (``verify``, ``decode_budget``, ``threads``).
    """
    import torch
    from torch.nn.modules.module import _IncompatibleKeys

    from ..safe_open import safe_open

    with safe_open(path, framework="pt", **kwargs) as f:
        targets = model.state_dict(keep_vars=True)
        records = {r.name: r for r in f.records()}
        missing = [k for k in targets if k not in records]
        unexpected = [k for k in records if k not in targets]
        wrong = [f"{k}: file {records[k].shape}, model {tuple(t.shape)}" for k, t in targets.items()
                 if k in records and records[k].shape != tuple(t.shape)]
        if wrong or (strict and (missing or unexpected)):
            raise UsageError(f"{path} does not fit the model: " + "; ".join(
                part for part in (f"missing {missing}" if strict and missing else "",
                                  f"unexpected {unexpected}" if strict and unexpected else "",
                                  f"shapes differ ({', '.join(wrong)})" if wrong else "") if part))
        # Tied weights appear under each name; as load_state_dict, the last name wins, and
        # only it is decoded (two threads must not write one parameter).
        last = {targets[k].data_ptr(): k for k in targets if k in records}
        present = [k for k in targets if k in records and last[targets[k].data_ptr()] == k]
        direct = {k: targets[k] for k in present if targets[k].device.type == "cpu"
                  and targets[k].is_contiguous() and torch_dtype(records[k].dtype) == targets[k].dtype}
        with torch.no_grad():
            decoded = f.get_tensors(present, out=direct)  # all cores; into the parameters where it can
            for name in present:
                if name not in direct:
                    targets[name].copy_(decoded[name])
    return _IncompatibleKeys(missing, unexpected)


__all__ = ["save", "save_file", "load", "load_file", "save_model", "load_model", "to_numpy", "to_torch"]
