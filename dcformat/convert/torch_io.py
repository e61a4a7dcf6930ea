"""PyTorch checkpoints (zip and legacy formats) <-> dicts of numpy arrays.

Reading uses ``torch.load(weights_only=True, map_location="cpu")``: no pickle code runs.
A trusted checkpoint that needs a few more classes gets them named one by one
(``safe_globals=``, torch's :func:`torch.serialization.safe_globals`); ``weights_only``
is never turned off. Zip-format checkpoints (every ``torch.save`` since PyTorch 1.6) are
loaded with ``mmap=True``, so tensor data stays in the file until a tensor is converted;
the legacy non-zip format cannot be mapped and is read whole.

A checkpoint may be a bare state dict or wrap one (``{"state_dict": ...}``,
``{"model_state_dict": ..., "char2idx": ...}``). Its tensors are named by flattening the
nesting with dots (``model_state_dict.cnn.0.weight``), so names stay unique and nothing
is renamed. Everything else is kept as well, where JSON can hold it: unless the
checkpoint is a flat dict of tensors, the metadata key :data:`STRUCTURE_KEY`
(``"dcformat.torch_checkpoint"``) holds the checkpoint's structure as JSON text,
``{"version": 1, "root": NODE}``, where a NODE is

- ``null``, ``true``, ``false``, a number or a string: that value (a subclass of ``int``
  or ``str``, such as ``torch.torch_version.TorchVersion``, as the plain type);
- ``[NODE, ...]``: a list; ``{"tuple": [NODE, ...]}``: a tuple (``torch.Size`` too);
- ``{"dict": [[KEY, NODE], ...]}`` or ``{"ordered_dict": [...]}``: the entries in order,
  each KEY a NODE without tensors (so ``idx2char``'s int keys stay ints);
- ``{"float": "nan"}`` (``"inf"``, ``"-inf"``): a float JSON has no number for;
- ``{"tensor": NAME}``: the tensor stored under NAME;
- ``{"dropped": TYPE}``: a value that is neither a tensor nor any of the above (a
  ``torch.dtype``, say), not kept; named in ``skipped``.

:func:`write_torch` given that metadata rebuilds the checkpoint: every tensor back at its
nested place, every kept value beside it (a dropped list item as ``None``, a dropped dict
entry left out); a tensor the structure does not place goes to the top level under its
file name. A dict entry whose key is no such NODE is dropped with its non-tensor content,
and a structure that would pass the format's metadata value limit (16 MiB) keeps the
tensors' places only. Other metadata (a safetensors ``__metadata__`` map) has no place in
a state dict: ``write_torch`` returns its keys, so that the caller can say so.
"""

from __future__ import annotations

import json
import math
import re
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from ..atomic import atomic_output
from ..errors import ConversionError, StorageError, UsageError, storage_errors


#: Bytes copied out of a mapped checkpoint before it is mapped afresh (see TorchSource).
REMAP_BYTES = 64 << 20

#: The metadata key of a checkpoint's structure and non-tensor values (see the module docstring).
STRUCTURE_KEY = "dcformat.torch_checkpoint"
STRUCTURE_VERSION = 1


class TorchSource(Mapping):
    """The tensors of a PyTorch checkpoint, each converted to numpy when it is indexed.

    ``safe_globals`` names (``"module.name"``) the classes and functions that the
    checkpoint's pickle may use beyond what ``weights_only`` loading allows, for a
    trusted file (torch's :func:`torch.serialization.safe_globals`); a name that does not
    resolve is a :class:`~dcformat.errors.UsageError`, and a global the file needs and
    no one allowed is named in the :class:`~dcformat.errors.ConversionError`.
    ``metadata`` holds the checkpoint's structure under :data:`STRUCTURE_KEY` (empty for a
    flat dict of tensors) and ``skipped`` names the values that are neither tensors nor
    kept there (see the module docstring). The numpy array returned is a
    copy that owns its memory. A zip checkpoint is mapped: the pages a tensor is copied
    from stay in the process's resident set for as long as the mapping lives, so before
    a tensor would take the bytes copied out of one mapping past :data:`REMAP_BYTES`,
    the checkpoint is loaded afresh and the old mapping dropped. Resident pages of the
    file stay under ``max(REMAP_BYTES, the tensor being read)``; each reload costs one
    unpickling of the checkpoint (milliseconds for a few hundred tensors).
    """

    def __init__(self, path, *, safe_globals=()):
        self.path = path
        with storage_errors(path, "read"), open(path, "rb"):  # missing, a directory, unreadable
            pass
        self._globals = resolve_globals(safe_globals)
        self._mapped = zipfile.is_zipfile(path)
        self._tensors, self.metadata, self.skipped = self._load()
        self._names = list(self._tensors)
        self._copied = 0  # bytes copied out of the current mapping

    def _load(self) -> tuple[dict, dict[str, str], list[str]]:
        import torch

        try:
            with _allowing(torch, self._globals):
                obj = torch.load(Path(self.path), weights_only=True, map_location="cpu", mmap=self._mapped)
        except OSError as exc:  # the machine's, not the file's: an I/O error mid-read
            raise StorageError.from_os_error(exc, self.path, "read") from exc
        except Exception as exc:  # torch raises many types for malformed or unsafe pickles
            raise ConversionError(f"{self.path}: {_load_failure(self.path, self._mapped, exc)}") from exc
        tensors, metadata, skipped = checkpoint_structure(obj, torch.Tensor)
        if not tensors:
            raise ConversionError(f"{self.path}: no tensors found in the checkpoint")
        return tensors, metadata, skipped

    def __getitem__(self, name: str) -> np.ndarray:
        from ..interop.torch_arrays import to_numpy

        if name not in self._tensors:
            raise KeyError(name)
        size = self._tensors[name].nbytes
        if self._mapped and self._copied and self._copied + size > REMAP_BYTES:
            self._tensors = {}  # unmaps the old pages before the new mapping is made
            self._tensors, _, _ = self._load()
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
    needed = re.search(r"Unsupported global: GLOBAL ([\w.]+)", message)
    if needed:
        name = needed.group(1)
        return (f"the checkpoint needs the global {name}, which weights_only loading does not allow; "
                f"if you trust the file, allow it by name: safe_globals=[{name!r}] (CLI: --safe-global {name})")
    detail = re.search(r"WeightsUnpickler error:\s*(.+)", message)
    if detail:  # the one line that says what weights_only loading refused
        return f"cannot load as a PyTorch checkpoint with weights_only=True: {detail.group(1).strip()}"
    first = next((line.strip() for line in message.splitlines() if line.strip()), "")
    first = first.split(". ")[0].rstrip(".")
    return f"cannot load as a PyTorch checkpoint: {first or type(exc).__name__}"


def resolve_globals(names) -> list:
    """The objects that ``"module.name"`` strings name, importing each module; a UsageError if one does not."""
    import importlib

    if isinstance(names, str):
        names = [names]
    found = []
    for name in names:
        module, _, attr = str(name).rpartition(".")
        if not module or not attr:
            raise UsageError(f"safe global {name!r}: give it as module.name (torch.torch_version.TorchVersion)")
        obj, parts = None, str(name).split(".")
        for cut in range(len(parts) - 1, 0, -1):  # the longest importable module, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            try:
                for part in parts[cut:]:
                    obj = getattr(obj, part)
            except AttributeError:
                raise UsageError(f"safe global {name!r}: {'.'.join(parts[:cut])} has no {'.'.join(parts[cut:])}") \
                    from None
            break
        else:
            raise UsageError(f"safe global {name!r}: no module {parts[0]!r} to import it from")
        found.append(obj)
    return found


def _allowing(torch, objs):
    """``torch.serialization.safe_globals(objs)``, or nothing to do when ``objs`` is empty."""
    import contextlib

    if not objs:
        return contextlib.nullcontext()
    if not hasattr(torch.serialization, "safe_globals"):
        raise UsageError(f"allowing safe globals needs torch >= 2.5 (this is {torch.__version__})")
    return torch.serialization.safe_globals(objs)


def read_torch(path, *, safe_globals=()) -> tuple[dict[str, np.ndarray], list[str]]:
    """The tensors of a PyTorch checkpoint as numpy arrays, and the names of skipped values."""
    source = TorchSource(path, safe_globals=safe_globals)
    return dict(source.items()), source.skipped


def checkpoint_structure(obj, tensor_type) -> tuple[dict, dict[str, str], list[str]]:
    """(tensors by flattened name, metadata with the structure, names of what was dropped) of ``obj``.

    The metadata is empty for a flat dict of tensors, which needs no structure.
    """
    from ..format.constants import MAX_METADATA_VALUE_BYTES

    tensors: dict = {}
    skipped: list[str] = []
    root = _node(obj, "", tensors, skipped, tensor_type, keep_values=True)
    if isinstance(obj, dict) and all(isinstance(k, str) and isinstance(v, tensor_type) for k, v in obj.items()):
        return tensors, {}, skipped
    text = _structure_text(root)
    if len(text.encode("utf-8")) > MAX_METADATA_VALUE_BYTES:  # keep the tensors' places, drop the values
        tensors, skipped = {}, []
        text = _structure_text(_node(obj, "", tensors, skipped, tensor_type, keep_values=False))
    return tensors, {STRUCTURE_KEY: text}, skipped


def _structure_text(root) -> str:
    return json.dumps({"version": STRUCTURE_VERSION, "root": root}, ensure_ascii=False,
                      separators=(",", ":"), allow_nan=False)


def _node(obj, prefix: str, tensors: dict, skipped: list, tensor_type, keep_values: bool):
    """The structure node of ``obj`` (module docstring); its tensors go into ``tensors``."""
    if isinstance(obj, tensor_type):
        name = prefix or "tensor"
        if name in tensors:
            raise ConversionError(f"two tensors flatten to the name {name!r}; rename one in the checkpoint")
        tensors[name] = obj
        return {"tensor": name}
    if isinstance(obj, Mapping):
        entries = []
        for key, value in obj.items():
            child = f"{prefix}.{key}" if prefix else str(key)
            key_node = _value(key)
            node = _node(value, child, tensors, skipped, tensor_type, keep_values)
            if key_node is _NOT_JSON:  # its tensors are stored, and placed at the top level again
                if not _only_tensors(node):
                    skipped.append(child)
            elif keep_values or _holds_tensors(node):
                entries.append([key_node, node])
        return {"ordered_dict" if isinstance(obj, OrderedDict) else "dict": entries}
    if isinstance(obj, (list, tuple)):
        items = [_node(v, f"{prefix}.{i}" if prefix else str(i), tensors, skipped, tensor_type, keep_values)
                 for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else {"tuple": items}
    value = _value(obj) if keep_values else _NOT_JSON
    if value is _NOT_JSON:
        skipped.append(prefix)
        return {"dropped": type(obj).__name__}
    return value


_NOT_JSON = object()


def _value(obj):
    """The node of a value without tensors (a scalar, or tuples of them), or _NOT_JSON."""
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else {"float": repr(float(obj))}
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, tuple):
        items = [_value(v) for v in obj]
        return _NOT_JSON if any(v is _NOT_JSON for v in items) else {"tuple": items}
    return _NOT_JSON


def _holds_tensors(node) -> bool:
    if isinstance(node, list):
        return any(_holds_tensors(v) for v in node)
    if isinstance(node, dict):
        if "tensor" in node:
            return True
        for tag in ("dict", "ordered_dict"):
            if tag in node:
                return any(_holds_tensors(v) for _, v in node[tag])
        return "tuple" in node and any(_holds_tensors(v) for v in node["tuple"])
    return False


def _only_tensors(node) -> bool:
    """Whether ``node`` is tensors and containers of them, with no value that would be lost."""
    if isinstance(node, list):
        return all(_only_tensors(v) for v in node)
    if isinstance(node, dict):
        if "tensor" in node:
            return True
        for tag in ("dict", "ordered_dict"):
            if tag in node:
                return all(_only_tensors(v) for _, v in node[tag])
        return "tuple" in node and all(_only_tensors(v) for v in node["tuple"])
    return False


def rebuild_checkpoint(structure: str, tensors: dict, path=""):
    """The checkpoint that :func:`checkpoint_structure` described: ``tensors`` (by name) in their places."""
    where = f"{path}: metadata {STRUCTURE_KEY!r}"
    try:
        data = json.loads(structure)
    except json.JSONDecodeError as exc:
        raise ConversionError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != STRUCTURE_VERSION or "root" not in data:
        found = data.get("version") if isinstance(data, dict) else None
        raise ConversionError(f"{where} is not a checkpoint structure of version {STRUCTURE_VERSION} "
                              f"(found version {found}); upgrade dcformat, or decompress to .safetensors")
    left = dict(tensors)
    root = _rebuild(data["root"], left, where)
    if left:  # tensors the structure does not place: at the top level, under their names
        if not isinstance(root, dict):
            raise ConversionError(f"{where} does not place tensor {next(iter(left))!r} of the file")
        root.update(left)
    return root


def _rebuild(node, left: dict, where: str):
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, list):
        return [_rebuild(v, left, where) for v in node]
    if isinstance(node, dict) and len(node) == 1:
        (tag, body), = node.items()
        if tag == "tensor":
            if body not in left:
                raise ConversionError(f"{where} places tensor {body!r}, which the file does not hold (or places twice)")
            return left.pop(body)
        if tag in ("dict", "ordered_dict") and isinstance(body, list):
            out = OrderedDict() if tag == "ordered_dict" else {}
            for entry in body:
                if not (isinstance(entry, list) and len(entry) == 2):
                    raise ConversionError(f"{where}: a {tag} entry is not a [key, value] pair")
                value = _rebuild(entry[1], left, where)
                if not (isinstance(entry[1], dict) and "dropped" in entry[1]):
                    out[_key(_rebuild(entry[0], {}, where))] = value
            return out
        if tag == "tuple" and isinstance(body, list):
            return tuple(_rebuild(v, left, where) for v in body)
        if tag == "float" and body in ("nan", "inf", "-inf"):
            return float(body)
        if tag == "dropped":
            return None
    raise ConversionError(f"{where}: unknown node {json.dumps(node)[:60]}")


def _key(key):
    if isinstance(key, (list, dict)):
        raise ConversionError(f"metadata {STRUCTURE_KEY!r}: a dict key cannot be a {type(key).__name__}")
    return key


def write_torch(tensors: Mapping[str, np.ndarray], path, metadata: Mapping[str, str] | None = None, *,
                overwrite: bool = False) -> list[str]:
    """Write tensors with ``torch.save``, atomically: as the checkpoint ``metadata`` describes, or a state dict.

    With :data:`STRUCTURE_KEY` in ``metadata`` the checkpoint is rebuilt (module
    docstring); without it the file is a flat state dict. Returns the other metadata
    keys, which a PyTorch file has no place for.
    """
    import torch

    from ..interop.torch_arrays import to_torch

    metadata = dict(metadata or {})
    structure = metadata.pop(STRUCTURE_KEY, None)
    state = {name: to_torch(np.asarray(array)) for name, array in tensors.items()}
    obj = state if structure is None else rebuild_checkpoint(structure, state, path)
    with atomic_output(path, overwrite=overwrite) as f:
        torch.save(obj, f)
    return list(metadata)
