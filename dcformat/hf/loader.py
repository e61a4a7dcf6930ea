"""transformers' ``from_pretrained`` of a compressed model directory (``dcformat compress``'s output).

What is registered (:func:`register`, run by :mod:`dcformat.hf` when transformers loads its models):

- ``DcformatConfig`` for ``"quant_method": "dcformat"`` in config.json
  (``register_quantization_config``), and ``DcformatQuantizer`` for it (``register_quantizer``).
- One wrapper around ``transformers.modeling_utils._get_resolved_checkpoint_files``, the
  function that finds a directory's weight files. transformers offers no hook here: it knows
  ``model.safetensors``, ``pytorch_model.bin`` and their indexes, and raises ``OSError`` for a
  directory holding none. The wrapper answers only there, for a local directory holding
  :data:`~dcformat.convert.directory.INDEX_NAME` whose config.json names the dcformat method:
  no weight files, and as sharded metadata every tensor name of the index, so that transformers
  itself finds the missing, unexpected and renamed keys (a base model from a task checkpoint and
  back) and leaves every parameter it expects from the checkpoint on the meta device. Every
  other call goes to transformers unchanged. The alternative, a tiny ``model.safetensors`` of no
  tensors beside the shards, needs no wrapper, but where dcformat is not imported transformers
  would load it as a checkpoint whose every weight is missing and hand back a randomly
  initialised model, with a warning; with the wrapper it raises its own "no file named
  model.safetensors" instead.

Loading (``DcformatQuantizer._process_model_after_weight_loading``): the skeleton transformers
built on the meta device, in the dtype asked for (``dtype=``/``torch_dtype=``, float32 by
default, as for a dense directory), gets each tensor decoded straight into a new CPU tensor of
its parameter's dtype (:meth:`dcformat.safe_open.get_tensors` with ``out=``, a shard's tensors
on every core), one shard open at a time; a tensor stored in another dtype is decoded alone and
converted. Tied parameters are decoded once; an alias of the index (a tied weight stored once)
reads its stored tensor. Then the quantization config is taken off the model: what is loaded is
a plain dense model (``save_pretrained`` writes dense safetensors, ``.to()`` works). Only the
CPU is a target (``device_map`` None, ``"cpu"`` or a map of only ``"cpu"``): move the model
afterwards.
"""

from __future__ import annotations

import functools
import inspect
import json
import threading
from pathlib import Path

import torch
from transformers import modeling_utils
from transformers.quantizers.auto import (AUTO_QUANTIZATION_CONFIG_MAPPING, AUTO_QUANTIZER_MAPPING,
                                          register_quantization_config, register_quantizer)
from transformers.quantizers.base import HfQuantizer
from transformers.utils.quantization_config import QuantizationConfigMixin

from ..convert.directory import FORMAT, INDEX_NAME, read_index
from ..errors import ConversionError, DCFormatError, UsageError
from ..format.constants import VERSION_MAJOR, VERSION_MINOR
from ..interop.torch_arrays import torch_dtype
from ..safe_open import safe_open

#: The weight files transformers looks for itself; a directory with any of them is its to load.
DENSE_NAMES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
               "pytorch_model.bin.index.json")

#: The directory the resolver found, for the quantizer of the same from_pretrained call.
_pending = threading.local()


class DcformatConfig(QuantizationConfigMixin):
    """The ``quantization_config`` of a compressed model directory (``quant_method`` "dcformat")."""

    def __init__(self, format_version: str = f"{VERSION_MAJOR}.{VERSION_MINOR}", index: str = INDEX_NAME, **kwargs):
        self.quant_method = FORMAT
        self.format_version = format_version
        self.index = index


class DcformatQuantizer(HfQuantizer):
    """Decodes a compressed directory's tensors into the model transformers built on the meta device."""

    requires_calibration = True  # only directories dcformat compressed: it does not compress at load
    requires_parameters_quantization = False

    def validate_environment(self, *args, **kwargs):
        if kwargs.get("from_tf") or kwargs.get("from_flax"):
            raise UsageError("a dcformat directory holds PyTorch weights: drop from_tf / from_flax")

    def update_device_map(self, device_map):
        return _cpu_only(device_map)

    def _process_model_before_weight_loading(self, model, **kwargs):
        return model

    def _process_model_after_weight_loading(self, model, **kwargs):
        root = getattr(_pending, "root", None)
        _pending.root = None
        if root is None:
            raise ConversionError(f"{model.name_or_path}: dcformat loads local directories written by "
                                  f"`dcformat compress` (with {INDEX_NAME} and no dense weights)")
        load_into(model, root)
        self.remove_quantization_config(model)  # a plain dense model from here on
        return model

    def is_serializable(self, safe_serialization=None):
        return True

    @property
    def is_trainable(self):
        return True


def _cpu_only(device_map):
    """None where ``device_map`` puts everything on the CPU (transformers then loads there); else refused."""
    if device_map is None:
        return None
    places = device_map.values() if isinstance(device_map, dict) else [device_map]
    if all(str(place) == "cpu" for place in places):
        return None
    raise UsageError(f"dcformat loads onto the CPU only, not device_map={device_map!r}: load with "
                     f"device_map='cpu' (or none) and move the model with model.to(device)")


def dcformat_root(pretrained_model_name_or_path, subfolder: str = "") -> Path | None:
    """The compressed directory ``from_pretrained`` was given, or None where transformers finds
    the weights itself (a hub id, dense weights, or no dcformat ``quantization_config``)."""
    if pretrained_model_name_or_path is None:
        return None
    root = Path(pretrained_model_name_or_path) / (subfolder or "")
    if not (root / INDEX_NAME).is_file() or any((root / name).is_file() for name in DENSE_NAMES):
        return None
    try:
        config = json.loads((root / "config.json").read_text())
    except (OSError, ValueError):
        return None
    method = config.get("quantization_config", {}) if isinstance(config, dict) else {}
    return root if isinstance(method, dict) and method.get("quant_method") == FORMAT else None


def _resolving(original):
    """``_get_resolved_checkpoint_files``, answering for compressed directories (module docstring)."""
    signature = inspect.signature(original)

    @functools.wraps(original)
    def resolved(*args, **kwargs):
        given = signature.bind(*args, **kwargs).arguments
        root = None
        if given.get("gguf_file") is None and given.get("transformers_explicit_filename") is None:
            root = dcformat_root(given.get("pretrained_model_name_or_path"), given.get("subfolder", ""))
        if root is None:
            return original(*args, **kwargs)
        index = read_index(root)
        _pending.root = root
        # no files for transformers to read; every name, for its key bookkeeping, and the
        # checkpoint's dtype for dtype="auto" where config.json has none
        return [], {**index.metadata, "all_checkpoint_keys": list(index.weight_map),
                    "weight_map": dict(index.weight_map), "dtype": _stored_dtype(index)}

    resolved.dcformat = True
    return resolved


def _stored_dtype(index) -> torch.dtype:
    """The dtype of the first floating-point tensor of the first shard (transformers' rule for "auto")."""
    with safe_open(index.root / index.shards[0]) as f:
        dtypes = [torch_dtype(r.dtype) for r in f.records()]
    return next((d for d in dtypes if d.is_floating_point), torch.float32)


def register() -> None:
    """Register the dcformat method and the resolver with transformers (once)."""
    if FORMAT not in AUTO_QUANTIZATION_CONFIG_MAPPING:
        register_quantization_config(FORMAT)(DcformatConfig)
    if FORMAT not in AUTO_QUANTIZER_MAPPING:
        register_quantizer(FORMAT)(DcformatQuantizer)
    if not getattr(modeling_utils._get_resolved_checkpoint_files, "dcformat", False):
        modeling_utils._get_resolved_checkpoint_files = _resolving(modeling_utils._get_resolved_checkpoint_files)


# --- decoding into the skeleton ------------------------------------------------------------------


def _model_names(model, names) -> dict[str, str]:
    """Model key -> checkpoint name, renamed as transformers renames (legacy names, the base
    model's prefix added or dropped)."""
    prefix = model.base_model_prefix
    has_prefix = bool(prefix) and any(n.startswith(f"{prefix}.") for n in names)
    expects_prefix = bool(prefix) and hasattr(model, prefix)
    out = {}
    for name in names:
        key = model._fix_state_dict_key_on_load(name)[0]
        if expects_prefix and not has_prefix:
            key = f"{prefix}.{key}"
        elif has_prefix and not expects_prefix and key.startswith(f"{prefix}."):
            key = key[len(prefix) + 1:]
        out.setdefault(key, name)
    return out


def load_into(model, root) -> None:
    """Decode the compressed directory ``root`` into every tensor of ``model`` still on the meta device."""
    index = read_index(root)
    names = _model_names(model, index.weight_map)
    state = model.state_dict(keep_vars=True)
    groups: dict[int, list[str]] = {}  # tied tensors are one object: decoded once
    for key, value in state.items():
        if value.device.type == "meta":
            groups.setdefault(id(value), []).append(key)
    plan: dict[str, list[tuple[str, list[str]]]] = {}  # shard -> (stored name, model keys)
    for keys in groups.values():
        name = next((names[k] for k in keys if k in names), None)
        if name is None:
            raise ConversionError(f"{root}: {keys[0]} is not in {INDEX_NAME}")
        plan.setdefault(index.weight_map[name], []).append((index.aliases.get(name, name), keys))
    for shard, items in sorted(plan.items()):
        path = root / shard
        try:
            _load_shard(model, path, items, state)
        except DCFormatError as exc:
            if getattr(exc, "shard", None) is None:
                exc.shard = str(path)
            if hasattr(exc, "add_note"):
                exc.add_note(f"while loading {path}")
            raise
    model.tie_weights()


def _load_shard(model, path: Path, items: list, state: dict) -> None:
    with safe_open(path, framework="pt") as f:
        records = {r.name: r for r in f.records()}
        values, direct, later = [], {}, []
        for stored, keys in items:
            meta, record = state[keys[0]], records.get(stored)
            if record is None:
                raise ConversionError(f"{path}: has no tensor {stored!r}, which {INDEX_NAME} maps there")
            if tuple(record.shape) != tuple(meta.shape):
                raise UsageError(f"{path}: {stored} is {tuple(record.shape)}, the model's {keys[0]} "
                                 f"{tuple(meta.shape)}")
            stored_dtype = torch_dtype(record.dtype)
            # floats in the skeleton's dtype (the one asked for), other dtypes as stored: as transformers
            dtype = meta.dtype if meta.is_floating_point() and stored_dtype.is_floating_point else stored_dtype
            if stored_dtype == dtype and stored not in direct:
                direct[stored] = torch.empty(tuple(meta.shape), dtype=dtype)
                values.append((stored, keys, None))
            else:
                later.append((stored, keys, dtype))
        decoded = f.get_tensors(list(direct), out=direct) if direct else {}  # every core, into the tensors
        for stored, keys, dtype in later:  # another dtype: one tensor decoded at a time, then converted
            source = decoded[stored] if stored in decoded else f.get_tensor(stored)
            values.append((stored, keys, source.to(dtype, copy=stored in decoded)))
        for stored, keys, value in values:
            _assign(model, keys, state[keys[0]], decoded[stored] if value is None else value)


def _assign(model, keys: list[str], meta, value) -> None:
    """Put ``value`` in place of the meta tensor every key of ``keys`` names (one object for all)."""
    if isinstance(meta, torch.nn.Parameter):
        value = torch.nn.Parameter(value, requires_grad=meta.requires_grad)
    for key in keys:
        module_name, _, attr = key.rpartition(".")
        module = model.get_submodule(module_name)
        if attr in module._parameters:
            module._parameters[attr] = value
        else:
            module._buffers[attr] = value


# Registering is idempotent; done here too for an import of this module before transformers'
# modeling_utils, which ran dcformat.hf's hook while this module was half-built.
register()
