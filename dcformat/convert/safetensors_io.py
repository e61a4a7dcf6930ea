"""safetensors files <-> dicts of numpy arrays, ``__metadata__`` kept, bits exact."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save as _st_save

from ..atomic import atomic_output
from ..errors import ConversionError


class SafetensorsSource(Mapping):
    """The tensors of a safetensors file, each read from the file when it is indexed.

    Names come in file order, as ``safetensors.safe_open`` lists them. Each access
    opens the file for that one tensor and closes it again: safetensors maps the whole
    file, and a mapping kept open would keep every page read so far in the process's
    resident set; opened per tensor, only the tensor asked for is ever resident. The
    array returned is a copy that owns its memory.

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
        with self._open() as f:
            self._names = list(f.keys())
            self.metadata: dict[str, str] = dict(f.metadata() or {})
        self._known = set(self._names)

    def _open(self):
        try:
            return safe_open(str(self.path), framework="numpy")
        except SafetensorError as exc:
            raise ConversionError(f"{self.path}: not a valid safetensors file: {exc}") from exc

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._known:
            raise KeyError(name)
        with self._open() as f:
            try:
                return f.get_tensor(name)
            except (AttributeError, TypeError) as exc:  # float8: safetensors' numpy path lacks it
                raise ConversionError(f"{self.path}: tensor {name!r} has a dtype safetensors cannot give as "
                                      f"numpy ({exc}); convert it with the PyTorch converter") from exc
            except SafetensorError as exc:
                raise ConversionError(f"{self.path}: tensor {name!r}: {exc}") from exc

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def read_safetensors(path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every tensor of a safetensors file as numpy (BF16 as ml_dtypes.bfloat16) plus its metadata."""
    source = SafetensorsSource(path)
    return dict(source.items()), source.metadata


def write_safetensors(tensors: Mapping[str, np.ndarray], path, metadata: Mapping[str, str] | None = None,
                      *, overwrite: bool = False) -> None:
    """Write a safetensors file atomically (temporary file, then rename)."""
    data = _st_save({k: np.asarray(v, order="C") for k, v in tensors.items()}, metadata=dict(metadata or {}) or None)
    with atomic_output(path, overwrite=overwrite) as f:
        f.write(data)
