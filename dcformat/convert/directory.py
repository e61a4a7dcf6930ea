"""Hugging Face model directories: dense shards in, a directory of ``.dcf`` shards out, and back.

A model directory is what transformers' ``save_pretrained`` writes: ``config.json``, tokenizer
files, ``generation_config.json``, a README, subfolders (sentence-transformers' ``1_Pooling/``)
and the weights, in the first of these layouts it holds (transformers' own order):
``model.safetensors``; ``model.safetensors.index.json`` and the shards its ``weight_map`` names;
``pytorch_model.bin``; ``pytorch_model.bin.index.json`` and its shards.

:func:`compress_directory` writes one ``.dcf`` file per input shard (``model.dcf`` for a single
file, else ``model-00001-of-00003.dcf`` ...) and :data:`INDEX_NAME` in the shape of
transformers' index (``json.dumps(index, indent=2, sort_keys=True)``)::

    {"metadata": {"format": "dcformat", "total_size": N[, "aliases": {name: stored_name}]},
     "weight_map": {name: shard file}}

``total_size`` counts the dense bytes of the tensors stored, each once, as transformers counts
it. Every other file is copied, but the weights of the model in other formats (a
``pytorch_model.bin`` beside ``model.safetensors``, ``tf_model.h5``, ``flax_model.msgpack``, ...:
:data:`OTHER_WEIGHTS`), which are left out and named in the report; the copied ``config.json``
gains, after its own keys in their order, ``"quantization_config": {"quant_method": "dcformat",
"format_version": "1.3", "index": "model.dcf.index.json"}``. A model whose config already has a
``quantization_config`` is refused: its weights are another method's codes.

Tied weights are stored once. In a PyTorch shard, names whose tensors share one storage, offset,
shape and strides (``torch.save`` keeps them so) become aliases of the first of them; a name held
by two shards is stored in the one the input's index names (else the first). The index maps an
alias to its stored tensor's shard and lists it under ``metadata.aliases``.
:func:`decompress_directory` writes every alias back as a copy of its tensor in that shard, so
the dense directory holds every name the input held: safetensors cannot share storage, and
transformers loads a tied weight present in the checkpoint as it loads one absent from it.

Settings span the model: per-name rules apply in every shard, and a ``bits_per_param`` budget is
the whole directory's (every ``.dcf`` byte over every parameter), not each shard's. It is planned
first, over every shard, one at a time: each shard's planning summaries (the pipeline's) are kept,
the equal-slope SQNR is solved over all of them, and each shard is then given the bytes its
tensors take at that slope, as its own budget, and encoded on it (the pipeline plans that shard
again and keeps it on its share). Each shard lands within the pipeline's tolerance of its share.

Shards convert side by side on ``workers`` processes (default: every core this process may use,
:func:`dcformat.threads.default_threads`, once the weights reach :data:`PARALLEL_MIN_BYTES`; at
most one per shard); each converts exactly as on one worker, so the bytes written do not depend on
``workers``, with or without a budget. With ``ray`` they are tasks on a Ray cluster instead,
one core each, retried when a worker dies (:mod:`dcformat.convert.parallel`), with the same bytes.

Memory: a worker holds one input shard open at a time through its lazy mapping
(:func:`~dcformat.convert.open_checkpoint`) and, of it, one tensor and that tensor's encoding and
working arrays at a time: a safetensors shard is read a tensor at a time; a zip-format ``.bin``
is mapped and keeps at most :data:`~dcformat.convert.torch_io.REMAP_BYTES` of its pages resident
beyond the tensor read; only a legacy (non-zip) ``.bin`` is read whole. Encoded payloads go to an
unnamed spill file as each tensor is added, so the output shard holds only its records (a few dozen
bytes a tensor). Peak: per worker, the largest tensor of its shard (the whole shard for a legacy
``.bin``) plus that tensor's encoding; with a budget the parent also keeps every ``ecq`` tensor's
planning summary (its statistics and a histogram's cumulative sums, a few hundred KB at most).
Decompressing holds one decoded tensor at a time.

Output appears whole or not at all: everything is written into a temporary sibling directory
(``.NAME.XXXXXXXX.tmp``) that is renamed to the output only once every shard, the index and every
copied file are written and synced; on any error, Ctrl-C included, it is removed. An existing
output is refused before any work unless ``overwrite``, and then replaced only at that rename.
The input directory is only read.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from fnmatch import fnmatch
from pathlib import Path

from ..errors import (ConversionError, DirectoryNotFound, InputNotFound, InvalidSettings, OutputExists, UsageError,
                      storage_errors)
from ..index import (FORMAT, INDEX_NAME, LAYOUTS, DcfIndex, about, bad_dcf_index, bad_source_index,  # noqa: F401
                     is_model_directory, read_index, read_weight_map)
from .parallel import Runner

#: Weights of the model in the formats not read, left out of the output (file name patterns).
OTHER_WEIGHTS = ("model*.safetensors", "model*.safetensors.index.json", "pytorch_model*.bin",
                 "pytorch_model*.bin.index.json", "tf_model*.h5", "flax_model*.msgpack", "model.ckpt*",
                 "rust_model.ot", "*.dcf", INDEX_NAME)
#: The index :func:`decompress_directory` writes beside the dense shards (transformers').
DENSE_INDEX = "model.safetensors.index.json"
#: By default shards convert on one process below this many bytes of weights: each worker
#: process loads the compiled kernels afresh (about 0.6 s), which a small model does not repay.
PARALLEL_MIN_BYTES = 256 << 20

#: The prefix of a shard task's private directory in the staged output (:func:`_compress_shard`).
UNFINISHED = ".unfinished-"


# --- what a directory holds --------------------------------------------------------


@dataclass(frozen=True)
class ModelDirectory:
    """The weights a model directory holds: ``kind`` (``"safetensors"`` or ``"torch"``), the shard
    files in order, the index read (None for one file) and its ``weight_map``."""

    root: Path
    kind: str
    shards: tuple[Path, ...]
    index: Path | None = None
    weight_map: dict = field(default_factory=dict)


def find_weights(root) -> ModelDirectory:
    """The weights of the model directory ``root``, in the first of :data:`LAYOUTS` it holds.

    A directory without any is a :class:`~dcformat.errors.ConversionError`; an index that is not
    transformers' shape, or names a shard outside the directory, is one too; a shard it names
    that is missing raises :class:`~dcformat.errors.InputNotFound`.
    """
    root = Path(root)
    if not root.is_dir():
        with storage_errors(root, "read"):
            os.listdir(root)  # missing or unreadable: its StorageError
        raise ConversionError(f"{root} is not a directory")
    for kind, single, index in LAYOUTS:
        if (root / single).is_file():
            return ModelDirectory(root, kind, (root / single,))
        if (root / index).is_file():
            weight_map, _ = read_weight_map(root / index, ".safetensors" if kind == "safetensors" else ".bin",
                                        bad_source_index(root / index))
            shards = tuple(root / name for name in sorted(set(weight_map.values())))
            for shard in shards:
                if not shard.is_file():
                    raise InputNotFound(shard, errno.ENOENT, action="read")
            return ModelDirectory(root, kind, shards, root / index, weight_map)
    if (root / INDEX_NAME).is_file():
        raise ConversionError(f"{root} is already a dcformat model directory ({INDEX_NAME}); "
                              f"`dcformat decompress` it to get the dense weights")
    raise ConversionError(f"{root}: no model weights found (expected model.safetensors, "
                          f"model.safetensors.index.json, pytorch_model.bin or pytorch_model.bin.index.json)")


# --- compress ----------------------------------------------------------------------


@dataclass
class ShardReport:
    """One output shard: its file, the input shard it came from, what it stores and its sizes."""

    file: str
    source: str
    tensors: int = 0  # names in the file (aliases written as copies included)
    reports: list = field(default_factory=list)
    file_bytes: int = 0
    dense_bytes: int = 0
    skipped: list = field(default_factory=list)


@dataclass
class DirectoryReport:
    """What :func:`compress_directory` or :func:`decompress_directory` wrote.

    ``shards`` in order; ``aliases`` maps each name stored once for another (tied weights);
    ``duplicates`` names the tensors that two input shards held, stored once; ``copied`` the
    other files copied (paths relative to the directory); ``left_out`` the files not copied:
    the model's weights in formats not read, or the ``.dcf`` shards and their index.
    """

    out_dir: Path
    shards: list = field(default_factory=list)
    aliases: dict = field(default_factory=dict)
    duplicates: list = field(default_factory=list)
    copied: list = field(default_factory=list)
    left_out: list = field(default_factory=list)

    @property
    def file_bytes(self) -> int:
        return sum(s.file_bytes for s in self.shards)

    @property
    def dense_bytes(self) -> int:
        return sum(s.dense_bytes for s in self.shards)

    @property
    def reports(self) -> list:
        return [r for s in self.shards for r in s.reports]


@dataclass(frozen=True)
class _Job:
    """One input shard to plan or convert: the tensors of it to store (in file order), and how."""

    source: Path
    kind: str
    take: tuple[str, ...]
    settings: object = None
    output: Path | None = None
    safe_globals: tuple = ()


def compress_directory(src_dir, out_dir, settings=None, *, overwrite: bool = False, workers: int | None = None,
                       ray: str | None = None, progress: bool = False, safe_globals=()) -> DirectoryReport:
    """Compress the model directory ``src_dir`` into ``out_dir``, a directory of ``.dcf`` shards.

    Parameters
    ----------
    src_dir, out_dir : str or Path
        The model directory (module docstring) and the directory to create. ``out_dir``'s parent
        must exist; ``out_dir`` may be neither ``src_dir`` nor inside it.
    settings : CompressionSettings, optional
        As :func:`~dcformat.compress.compress_tensors` takes them; a ``bits_per_param`` budget is
        the whole directory's.
    overwrite : bool
        Replace an existing ``out_dir`` (once the new one is complete); refused otherwise.
    workers : int, optional
        Processes converting shards side by side, at most one per shard; default every core,
        or one below :data:`PARALLEL_MIN_BYTES` of weights. The output's bytes are the same
        for every value.
    ray : str, optional
        Convert the shards as tasks on the Ray cluster at this address instead (``"auto"``,
        ``"HOST:PORT"``, ``"local"``; :mod:`dcformat.convert.parallel`), whose nodes see
        ``src_dir`` and ``out_dir``'s parent at the same paths. Same bytes as ``workers=1``.
    progress : bool
        A tqdm bar over the shards.
    safe_globals : sequence of str
        For PyTorch shards (:class:`~dcformat.convert.torch_io.TorchSource`).

    Returns
    -------
    DirectoryReport

    Examples
    --------
    >>> import numpy as np, tempfile, os, json
    >>> from safetensors.numpy import save_file
    >>> src = tempfile.mkdtemp()
    >>> save_file({"w": np.ones((64, 64), np.float32)}, os.path.join(src, "model.safetensors"))
    >>> with open(os.path.join(src, "config.json"), "w") as f:
    ...     json.dump({"model_type": "demo"}, f)
    >>> out = os.path.join(tempfile.mkdtemp(), "demo-dcf")
    >>> report = compress_directory(src, out, workers=1)
    >>> sorted(os.listdir(out))
    ['config.json', 'model.dcf', 'model.dcf.index.json']
    >>> json.load(open(os.path.join(out, "config.json")))["quantization_config"]["quant_method"]
    'dcformat'
    """
    from ..compress.settings import CompressionSettings

    settings = CompressionSettings.preset("default") if settings is None else settings
    if not isinstance(settings, CompressionSettings):
        raise InvalidSettings(f"settings must be CompressionSettings, got {type(settings).__name__}")
    model = find_weights(src_dir)
    out_dir = Path(out_dir)
    _check_target(model.root, out_dir, overwrite)
    config = _quantized_config(model.root / "config.json")
    names = [_output_name(i, len(model.shards), ".dcf") for i in range(len(model.shards))]
    takes, aliases, duplicates = _assign(model, tuple(safe_globals))
    jobs = [_Job(shard, model.kind, take, settings, safe_globals=tuple(safe_globals))
            for shard, take in zip(model.shards, takes)]
    workers = _workers(workers, len(jobs), sum(shard.stat().st_size for shard in model.shards), ray)
    runner = Runner(workers=workers, ray=ray, progress=progress, label=_job_label)
    with runner:
        if settings.bits_per_param is not None:  # the whole model's budget, split by shard at one slope
            plans = runner.map(_plan_shard, jobs, desc="planning")
            jobs = [replace(job, settings=replace(settings, bits_per_param=bpp))
                    for job, bpp in zip(jobs, _shard_budgets(plans, settings))]
        report = DirectoryReport(out_dir, aliases=aliases, duplicates=duplicates)
        with _staged(out_dir, overwrite) as stage:
            jobs = [replace(job, output=stage / name) for job, name in zip(jobs, names)]
            report.shards = runner.map(_compress_shard, jobs, desc="compressing")
            _drop_unfinished(stage)
            weight_map = {n: shard.file for shard, job in zip(report.shards, jobs) for n in job.take}
            weight_map.update({alias: weight_map[target] for alias, target in aliases.items()})
            meta = {"format": FORMAT, "total_size": report.dense_bytes}
            if aliases:
                meta["aliases"] = aliases
            _write_json(stage / INDEX_NAME, {"metadata": meta, "weight_map": weight_map}, sort_keys=True)
            report.copied, report.left_out = _copy_others(model.root, stage, set(model.shards) | {model.index},
                                                          config)
    return report


def _assign(model: ModelDirectory, safe_globals: tuple) -> tuple[list[tuple], dict, list]:
    """Which tensors each shard stores (file order), the aliases, the names two shards held.

    Each shard is opened in turn, header (or pickle) only. A name goes to the shard the index
    maps it to, else to the first shard holding it; a PyTorch shard's names that share a
    storage become aliases of the first of them, if that one stays in the same shard.
    """
    held, shared = [], []
    for shard in model.shards:
        names, aliases = _shard_names(shard, model.kind, safe_globals)
        held.append(names)
        shared.append(aliases)
    owner: dict[str, int] = {}
    for i, names in enumerate(held):
        for name in names:
            owner.setdefault(name, i)
    position = {shard.name: i for i, shard in enumerate(model.shards)}
    holds = [set(names) for names in held]
    for name, shard in model.weight_map.items():
        i = position[shard]
        if name not in holds[i]:
            raise ConversionError(f"{model.index}: maps tensor {name!r} to {shard}, which does not hold it")
        owner[name] = i
    duplicates = sorted({n for i, names in enumerate(held) for n in names if owner[n] != i})
    aliases = {alias: target for i, found in enumerate(shared) for alias, target in found.items()
               if owner[alias] == i and owner[target] == i}
    takes = [tuple(n for n in names if owner[n] == i and n not in aliases) for i, names in enumerate(held)]
    return takes, aliases, duplicates


def _shard_names(path: Path, kind: str, safe_globals: tuple) -> tuple[list[str], dict[str, str]]:
    """A shard's tensor names in file order, and ``{alias: first name}`` for shared storage."""
    if kind == "safetensors":
        from .safetensors_io import SafetensorsSource

        return list(SafetensorsSource(path)), {}
    from .torch_io import TorchSource

    source = TorchSource(path, safe_globals=safe_globals)
    names = list(source)
    first, aliases = {}, {}
    for name, tensor in source._tensors.items():  # noqa: SLF001 - storage identity is torch's, not numpy's
        if tensor.numel() == 0:
            continue  # every empty tensor may report the same pointer
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape),
               tuple(tensor.stride()), tensor.dtype)
        if key in first:
            aliases[name] = first[key]
        else:
            first[key] = name
    return names, aliases


class _Subset(Mapping):
    """The tensors ``take`` of a shard's lazy mapping, in that order, read when indexed; the
    shard's ``metadata`` and ``skipped`` values."""

    def __init__(self, source: Mapping, take: tuple[str, ...]):
        self._source, self._take = source, take
        self._known = set(take)
        self.metadata = dict(source.metadata)
        self.skipped = list(getattr(source, "skipped", ()))

    def __getitem__(self, name: str):
        if name not in self._known:
            raise KeyError(name)
        return self._source[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._take)

    def __len__(self) -> int:
        return len(self._take)


def _shard_tensors(job: _Job) -> _Subset:
    """The tensors of ``job``'s shard it stores, each read when indexed (module docstring, "Memory")."""
    if job.kind == "safetensors":
        from .safetensors_io import SafetensorsSource

        return _Subset(SafetensorsSource(job.source), job.take)
    from .torch_io import TorchSource

    return _Subset(TorchSource(job.source, safe_globals=job.safe_globals), job.take)


def _compress_shard(job: _Job) -> ShardReport:
    """Convert one shard into ``job.output`` (a worker's whole task), one tensor at a time.

    The file is written in a private directory beside it and renamed onto ``job.output``, over
    one already there: a task run again after its worker died mid-way (or after it renamed, before
    it could report) writes the same bytes, and what the dead one left is an ``UNFINISHED``
    directory that :func:`_drop_unfinished` removes."""
    from ..compress.pipeline import iter_compress
    from ..container.writer import StreamingWriter
    from ..inspect import describe

    tensors = _shard_tensors(job)
    reports = []
    with storage_errors(job.output, "write"):
        private = Path(tempfile.mkdtemp(prefix=UNFINISHED, dir=job.output.parent))
    try:
        draft = private / job.output.name
        with StreamingWriter(draft, tensors.metadata) as writer:
            # the file's metadata is part of what a bits-per-parameter budget counts
            for name, value, report in iter_compress(tensors, job.settings, metadata=writer.metadata):
                writer.add_tensor(name, value)
                reports.append(report)
                del value  # written out: dropped before the next tensor is read
        rows, _, size = describe(draft)
        with storage_errors(job.output, "write"):
            os.replace(draft, job.output)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return ShardReport(job.output.name, job.source.name, len(rows), reports, size, sum(r.dense_bytes for r in rows),
                       tensors.skipped)


def _drop_unfinished(stage: Path) -> None:
    """Remove what shard tasks that died left in ``stage`` (:func:`_compress_shard`)."""
    for leftover in stage.glob(UNFINISHED + "*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _job_label(job: _Job) -> str:
    return job.source.name


@dataclass
class _ShardPlan:
    params: int
    fixed: float  # bytes of the file but its ecq tensors
    cands: list


def _plan_shard(job: _Job) -> _ShardPlan:
    """What a shard's file takes but its ``ecq`` tensors, and their planning summaries, as
    :func:`~dcformat.compress.pipeline.iter_compress` plans a budget (one tensor at a time)."""
    from ..compress import budget
    from ..compress.pipeline import _budget_entry  # the pipeline's own per-tensor planning step
    from ..format.constants import DEFAULT_ALIGNMENT, PREAMBLE_SIZE

    mean_pad = (DEFAULT_ALIGNMENT - 1) / 2
    tensors = _shard_tensors(job)
    plan = _ShardPlan(0, PREAMBLE_SIZE + budget.header_bytes(tensors.metadata) + mean_pad, [])
    last_pad = 0.0  # no padding after the file's last segment
    for name in tensors:
        array = tensors[name]
        plan.params += int(array.size)
        entry = _budget_entry(name, array, job.settings)
        del array
        if isinstance(entry, budget.StoredCost):
            plan.fixed += entry.total
            last_pad = entry.trailing
        else:
            plan.cands.append(entry)
            last_pad = mean_pad
    plan.fixed -= last_pad
    return plan


def _shard_budgets(plans: list[_ShardPlan], settings) -> list[float | None]:
    """Each shard's bits per parameter: its bytes at the one SQNR that fills the model's budget
    (None for a shard without ``ecq`` tensors, whose size no budget changes)."""
    from ..compress import budget
    from ..compress.ratedistortion import HIGHEST_DB, LOWEST_DB, allocate, total_cost

    bpp = settings.bits_per_param
    params = sum(p.params for p in plans)
    cands = [c for p in plans for c in p.cands]
    fixed = sum(p.fixed for p in plans)
    target, slack = bpp * params / 8, budget.tolerance(bpp) * params / 8
    if params == 0:
        return [None] * len(plans)
    if not cands and abs(fixed - target) > slack:
        raise InvalidSettings(f"a budget of {bpp:g} bits per parameter steers the ecq quantizer, which no tensor of "
                              f"this model uses; these settings store it in {8 * fixed / params:.2f} bits per "
                              f"parameter: use quantizer 'ecq' or drop the budget")
    smallest, largest = fixed + total_cost(cands, LOWEST_DB), fixed + total_cost(cands, HIGHEST_DB)
    if smallest > target:
        raise InvalidSettings(f"a budget of {bpp:g} bits per parameter cannot be met: the smallest budget this "
                              f"model's {len(plans)} shards can meet is {-(-800 * smallest // params) / 100:.2f} "
                              f"bits per parameter")
    if largest < target - slack:
        raise InvalidSettings(f"a budget of {bpp:g} bits per parameter cannot be spent: these settings store this "
                              f"model in at most {800 * largest // params / 100:.2f} bits per parameter; lower the "
                              f"budget or raise code_bits")
    db = allocate(cands, target - fixed)
    return [8 * (p.fixed + total_cost(p.cands, db)) / p.params if p.cands else None for p in plans]


# --- decompress --------------------------------------------------------------------


class _WithAliases(Mapping):
    """An opened ``.dcf`` shard's tensors, each decoded when indexed, and its aliases, each its tensor's copy."""

    def __init__(self, f, aliases: dict[str, str]):
        self._file, self._aliases = f, aliases
        self._names = list(f.keys()) + list(aliases)

    def specs(self) -> dict[str, tuple]:
        """Every name's numpy ``(dtype, shape)``, from the header: nothing is decoded."""
        from ..format.dtypes import numpy_dtype

        specs = {r.name: (numpy_dtype(r.dtype), r.shape) for r in self._file.records()}
        return {**specs, **{alias: specs[target] for alias, target in self._aliases.items()}}

    def __getitem__(self, name: str):
        return self._file.get_tensor(self._aliases.get(name, name))

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def decompress_directory(dcf_dir, out_dir, *, overwrite: bool = False, progress: bool = False) -> DirectoryReport:
    """Write the compressed model directory ``dcf_dir`` back as a dense one that transformers loads.

    Plain safetensors, shard for shard (``model.safetensors`` for one, else
    ``model-00001-of-00003.safetensors`` ... with ``model.safetensors.index.json`` as transformers
    writes it), each tensor in the dtype it had (bf16 stays bf16) and every alias as a copy of its
    tensor in that tensor's shard (module docstring); each shard keeps the metadata it came with,
    and ``{"format": "pt"}`` where it has none (transformers 4 requires it). ``config.json`` loses
    the ``quantization_config`` :func:`compress_directory` added; every other file is copied. One
    decoded tensor is held at a time; the output appears whole or not at all, as in
    :func:`compress_directory`. A damaged shard raises its :class:`~dcformat.errors.FormatError`.
    """
    from tqdm.auto import tqdm

    from ..safe_open import safe_open
    from .safetensors_io import write_safetensors

    index = read_index(dcf_dir)
    out_dir = Path(out_dir)
    _check_target(index.root, out_dir, overwrite)
    config = _dense_config(index.root / "config.json")
    report = DirectoryReport(out_dir, aliases=dict(index.aliases))
    names = [_output_name(i, len(index.shards), ".safetensors") for i in range(len(index.shards))]
    weight_map, total = {}, 0
    with _staged(out_dir, overwrite) as stage:
        for shard, name in tqdm(list(zip(index.shards, names)), disable=not progress, unit="shard",
                                desc="decompressing"):
            here = {a: t for a, t in index.aliases.items() if index.weight_map[t] == shard}
            with _naming(index.root / shard), safe_open(index.root / shard) as f:
                _check_names(f, index, shard)
                tensors = _WithAliases(f, here)
                specs = tensors.specs()
                write_safetensors(tensors, stage / name, {"format": "pt", **f.metadata()}, specs=specs)
            dense = sum(_nbytes(*spec) for spec in specs.values())
            report.shards.append(ShardReport(name, shard, len(specs), file_bytes=(stage / name).stat().st_size,
                                             dense_bytes=dense))
            weight_map.update(dict.fromkeys(tensors, name))
            total += dense
        if len(names) > 1:
            _write_json(stage / DENSE_INDEX, {"metadata": {"total_size": total}, "weight_map": weight_map},
                        sort_keys=True)
        report.copied, report.left_out = _copy_others(index.root, stage, set(), config)
    return report


def _check_names(f, index: DcfIndex, shard: str) -> None:
    held, stored = set(f.keys()), set(index.stored(shard))
    if held - stored:
        raise bad_dcf_index(index.root / INDEX_NAME)(
            "weight_map", f"{shard} holds tensor {sorted(held - stored)[0]!r}, which it does not map to {shard}")
    if stored - held:
        raise bad_dcf_index(index.root / INDEX_NAME)(
            "weight_map", f"maps tensor {sorted(stored - held)[0]!r} to {shard}, which does not hold it")


def _nbytes(dtype, shape) -> int:
    import numpy as np

    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


def verify_directory(dcf_dir) -> tuple[int, int]:
    """Check a compressed model directory: its index, every shard's checksums, every tensor
    decoded (one at a time), each shard holding exactly what the index maps to it.
    Returns (tensors stored, aliases); raises the first error found, naming the shard."""
    from ..safe_open import safe_open

    index = read_index(dcf_dir)
    count = 0
    for shard in index.shards:
        with _naming(index.root / shard), safe_open(index.root / shard, verify=True) as f:
            _check_names(f, index, shard)
            for name in f.keys():
                f.get_tensor(name)
                count += 1
    return count, len(index.aliases)


def describe_directory(dcf_dir) -> list[tuple[str, list, list, int, tuple]]:
    """Per shard of a compressed model directory: (file, tensor summaries, bank summaries, file
    size, format version), from the headers alone (:func:`dcformat.inspect.describe`)."""
    from ..inspect import summarize
    from ..safe_open import safe_open

    index = read_index(dcf_dir)
    out = []
    for shard in index.shards:
        with _naming(index.root / shard), safe_open(index.root / shard) as f:
            out.append((shard, [summarize(r) for r in f.records()], [summarize(r) for r in f.bank_records()],
                        f.file_size, f.version))
    return out


@contextlib.contextmanager
def _naming(path: Path):
    """A FormatError of the block names the shard it is about (:func:`dcformat.index.about`)."""
    from ..errors import FormatError

    try:
        yield
    except FormatError as exc:
        raise about(exc, path)


# --- the directory around the weights ----------------------------------------------


def _output_name(i: int, count: int, suffix: str) -> str:
    return f"model{suffix}" if count == 1 else f"model-{i + 1:05d}-of-{count:05d}{suffix}"


def _check_target(src: Path, out: Path, overwrite: bool) -> None:
    """Refuse an output that is, holds or sits inside the input, or exists (without ``overwrite``),
    or whose directory is missing: before any work."""
    here, there = src.resolve(), out.resolve()
    if there == here or here in there.parents or there in here.parents:
        raise UsageError(f"{out}: the output may not be the input directory {src}, inside it, or hold it")
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise OutputExists(str(out))
        if not out.is_dir() or out.is_symlink():
            raise UsageError(f"{out} exists and is not a directory; remove it or choose another output")
    if not out.parent.is_dir():
        raise DirectoryNotFound(out, errno.ENOENT, action="write")


@contextlib.contextmanager
def _staged(out: Path, overwrite: bool):
    """A new directory beside ``out`` that becomes ``out`` when the block ends normally (an
    existing ``out`` is replaced only with ``overwrite``); removed on any exception."""
    with storage_errors(out, "write"):
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        with storage_errors(out, "write"):
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(stage, 0o777 & ~mask)  # what mkdir would give, not mkdtemp's 0700
        yield stage
        with storage_errors(out, "write"):
            _sync(stage)
            _publish(stage, out, overwrite)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _sync(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(stage: Path, out: Path, overwrite: bool) -> None:
    if not (out.exists() or out.is_symlink()):
        os.rename(stage, out)  # an empty directory made meanwhile would be replaced: the last check is here
        return
    if not overwrite:
        raise OutputExists(str(out))
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.rename(out, old / out.name)
    try:
        os.rename(stage, out)
    except BaseException:
        os.rename(old / out.name, out)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _quantized_config(path: Path) -> dict | None:
    """``config.json`` with dcformat's quantization_config after its own keys (None: no config)."""
    from ..format.constants import VERSION_MAJOR, VERSION_MINOR

    config = _read_config(path)
    if config is None:
        return None
    if "quantization_config" in config:
        method = (config["quantization_config"] or {}).get("quant_method", "?") \
            if isinstance(config["quantization_config"], dict) else "?"
        raise ConversionError(f"{path}: the model is already quantized (quantization_config, quant_method "
                              f"{method!r}): its weights are that method's codes; compress the dense model")
    config["quantization_config"] = {"quant_method": FORMAT, "format_version": f"{VERSION_MAJOR}.{VERSION_MINOR}",
                                     "index": INDEX_NAME}
    return config


def _dense_config(path: Path) -> dict | None:
    """``config.json`` without dcformat's quantization_config (None: no config)."""
    config = _read_config(path)
    quant = (config or {}).get("quantization_config")
    if isinstance(quant, dict) and quant.get("quant_method") == FORMAT:
        del config["quantization_config"]
    return config


def _read_config(path: Path) -> dict | None:
    if not path.is_file():
        return None
    with storage_errors(path, "read"):
        text = path.read_bytes()
    try:
        config = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConversionError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ConversionError(f"{path}: not a JSON object")
    return config


def _write_json(path: Path, obj, *, sort_keys: bool = False) -> None:
    with storage_errors(path, "write"), open(path, "x", encoding="utf-8") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=sort_keys, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _copy_others(root: Path, stage: Path, weights: set, config: dict | None) -> tuple[list[str], list[str]]:
    """Copy every file under ``root`` but the weights read and the model's weights in other
    formats (:data:`OTHER_WEIGHTS`, top level only) into ``stage``; ``config.json`` written as
    ``config``. Returns (copied, left out), relative paths."""
    copied, left_out = [], []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        here = Path(folder)
        rel = here.relative_to(root)
        for name in sorted(files):
            src = here / name
            if src in weights:
                continue
            if rel == Path(".") and any(fnmatch(name, pattern) for pattern in OTHER_WEIGHTS):
                left_out.append(name)
                continue
            dst = stage / rel / name
            with storage_errors(dst, "write"):
                dst.parent.mkdir(parents=True, exist_ok=True)
            if rel == Path(".") and name == "config.json" and config is not None:
                _write_json(dst, config)
            else:
                with storage_errors(src, "read"), open(src, "rb") as fin, \
                        storage_errors(dst, "write"), open(dst, "xb") as fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)
                    fout.flush()
                    os.fsync(fout.fileno())
                shutil.copymode(src, dst)
            copied.append(str(rel / name) if rel != Path(".") else name)
    return copied, left_out


# --- workers -----------------------------------------------------------------------


def _workers(workers: int | None, jobs: int, nbytes: int, ray: str | None) -> int:
    from ..threads import default_threads

    if ray is not None:
        if workers is not None:
            raise UsageError("workers and ray both say where shards convert: give one (a Ray cluster gives each "
                             "shard one core)")
        if not isinstance(ray, str) or not ray.strip():
            raise UsageError(f"ray must be a Ray cluster's address (a non-empty str), got {ray!r}")
        return 1
    if workers is None:
        workers = default_threads() if nbytes >= PARALLEL_MIN_BYTES else 1
    elif isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UsageError(f"workers must be a positive int or None, got {workers!r}")
    return max(1, min(workers, jobs))
