"""The names and index files of Hugging Face-shaped model directories, dense or of ``.dcf`` shards.

transformers' sharded layout: a JSON index ``{"metadata": {...}, "weight_map": {tensor: shard file}}``
beside the shards it names. A dense directory keeps its weights in one of :data:`LAYOUTS`; a
compressed one (written by :func:`dcformat.convert.compress_directory`) has :data:`INDEX_NAME`
beside its ``.dcf`` shards, which :func:`read_index` reads and checks. This module only reads
names and JSON, so that both the converters above and :class:`dcformat.safe_open` (which opens
a compressed directory by tensor name) use one reader of the index.
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ConversionError, InputNotFound, InvalidHeader, storage_errors

#: The index of a compressed model directory, beside its shards.
INDEX_NAME = "model.dcf.index.json"
#: The value of ``metadata.format`` in :data:`INDEX_NAME`, and the ``quant_method`` in config.json.
FORMAT = "dcformat"
#: Where each layout keeps its weights, in the order they are looked for: (kind, single file, index).
LAYOUTS = (("safetensors", "model.safetensors", "model.safetensors.index.json"),
           ("torch", "pytorch_model.bin", "pytorch_model.bin.index.json"))


def is_model_directory(path) -> bool:
    """Whether ``path`` is a directory holding weights in one of :data:`LAYOUTS`."""
    path = Path(path)
    return path.is_dir() and any((path / name).is_file() for _, *names in LAYOUTS for name in names)


def read_weight_map(index: Path, suffix: str, bad) -> tuple[dict[str, str], dict]:
    """The ``weight_map`` of a transformers-shaped index (each shard a plain file name in its
    directory) and the whole index; ``bad(field, reason)`` is the error to raise otherwise."""
    with storage_errors(index, "read"):
        text = index.read_bytes()
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad("index", f"not valid JSON ({exc})") from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise bad("weight_map", "missing or empty (an object of tensor name -> shard file)")
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or not shard.endswith(suffix):
            raise bad("weight_map", f"tensor {name!r} is mapped to {shard!r}, not a {suffix} file")
        if shard != Path(shard).name or shard in (".", "..") or "\\" in shard:
            raise bad("weight_map", f"tensor {name!r} is mapped to {shard!r}, outside the directory")
    return weight_map, data


def bad_source_index(index: Path):
    return lambda field, reason: ConversionError(f"{index}: {field}: {reason}")


def bad_dcf_index(index: Path):
    return lambda field, reason: about(InvalidHeader(field, reason), index)


def about(exc, path: Path):
    """``exc`` naming the file it is about (``shard``, for the command line's message)."""
    if getattr(exc, "shard", None) is None:
        exc.shard = str(path)
    return exc


@dataclass(frozen=True)
class DcfIndex:
    """A compressed model directory's :data:`INDEX_NAME`: its shards in order, every name's shard
    (aliases included), the aliases, and the index's metadata."""

    root: Path
    shards: tuple[str, ...]
    weight_map: dict
    aliases: dict
    metadata: dict

    def stored(self, shard: str) -> list[str]:
        """The names stored in ``shard`` (its aliases not included)."""
        return [n for n, s in self.weight_map.items() if s == shard and n not in self.aliases]


def read_index(dcf_dir) -> DcfIndex:
    """The index of a compressed model directory, checked: a transformers-shaped ``weight_map``
    of plain ``.dcf`` file names that exist, ``metadata.format`` "dcformat", every alias mapped
    to the shard of the tensor it names. A bad index is an
    :class:`~dcformat.errors.InvalidHeader` naming it; a missing shard an
    :class:`~dcformat.errors.InputNotFound`; a directory without an index a
    :class:`~dcformat.errors.ConversionError`."""
    root = Path(dcf_dir)
    path = root / INDEX_NAME
    if not path.is_file():
        with storage_errors(root, "read"):
            os.listdir(root)
        raise ConversionError(f"{root} is not a dcformat model directory: it has no {INDEX_NAME}"
                              + ("; compress it with `dcformat compress`" if is_model_directory(root) else ""))
    bad = bad_dcf_index(path)
    weight_map, data = read_weight_map(path, ".dcf", bad)
    metadata = data.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise bad("metadata.format", f'not "{FORMAT}"')
    aliases = metadata.get("aliases", {})
    if not isinstance(aliases, dict):
        raise bad("metadata.aliases", "not an object of name -> stored name")
    for alias, target in aliases.items():
        if target in aliases or weight_map.get(target) is None or weight_map.get(alias) != weight_map[target]:
            raise bad("metadata.aliases", f"{alias!r} -> {target!r} does not name a tensor stored in its shard")
    shards = tuple(sorted(set(weight_map.values())))
    for shard in shards:
        if not (root / shard).is_file():
            raise InputNotFound(root / shard, errno.ENOENT, action="read")
    return DcfIndex(root, shards, weight_map, dict(aliases), metadata)
