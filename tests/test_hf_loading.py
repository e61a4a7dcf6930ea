"""transformers' ``from_pretrained`` of compressed model directories, once ``dcformat`` is imported.

Real weights: the MiniLM directory of :mod:`tests.test_directory` (three shards), compressed
lossless (parameters and outputs bit for bit those of the dense directory) and with the default
preset (outputs close). A tied-weight causal LM built small from a config and saved by
``save_pretrained`` in several shards (safetensors, which drops the tied copy, and ``.bin``, which
keeps it as shared storage: an alias in the index) generates the dense model's greedy tokens.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

import dcformat  # noqa: E402,F401 - registers the dcformat method with transformers
from dcformat.compress import CompressionSettings  # noqa: E402
from dcformat.convert import compress_directory, read_index  # noqa: E402
from dcformat.errors import ChecksumMismatch, UsageError  # noqa: E402

from .test_directory import minilm_dir  # noqa: E402,F401 - a fixture

SENTENCES = (Path(__file__).resolve().parents[1] / "benchmarks" / "sentences.txt").read_text().splitlines()[:6]


def embed(model, root: Path):
    """Mean-pooled sentence embeddings of :data:`SENTENCES` (the tokenizer of ``root``)."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(root)
    batch = tokenizer(SENTENCES, return_tensors="pt", padding=True)
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1), hidden


def same_state(a, b) -> bool:
    a, b = a.state_dict(), b.state_dict()
    return list(a) == list(b) and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def minilm_lossless(minilm_dir, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("hf") / "minilm-dcf"
    compress_directory(minilm_dir, out, CompressionSettings.preset("lossless"), workers=1)
    return out


def test_minilm_lossless_is_the_dense_model(minilm_dir, minilm_lossless):  # noqa: F811
    dense = transformers.AutoModel.from_pretrained(minilm_dir)
    got = transformers.AutoModel.from_pretrained(minilm_lossless)
    assert type(got) is type(dense) and same_state(got, dense)
    assert not got.is_quantized and not hasattr(got.config, "quantization_config")  # a plain dense model now
    assert not got.training
    assert torch.equal(embed(got, minilm_lossless)[1], embed(dense, minilm_dir)[1])


def test_minilm_dtype_and_device_map(minilm_lossless):
    got = transformers.AutoModel.from_pretrained(minilm_lossless, dtype=torch.bfloat16, device_map="cpu")
    assert {p.dtype for p in got.parameters()} == {torch.bfloat16}
    dense = transformers.AutoModel.from_pretrained(minilm_lossless, dtype=torch.float32)
    assert all(torch.equal(p.to(torch.bfloat16), q) for p, q in zip(dense.parameters(), got.parameters()))
    with pytest.raises(UsageError, match="CPU only"):
        transformers.AutoModel.from_pretrained(minilm_lossless, device_map="cuda")


def test_minilm_default_preset_is_close(minilm_dir, tmp_path):  # noqa: F811
    out = tmp_path / "minilm-default"
    compress_directory(minilm_dir, out, CompressionSettings(), workers=1)
    want = embed(transformers.AutoModel.from_pretrained(minilm_dir), minilm_dir)[0]
    got = embed(transformers.AutoModel.from_pretrained(out), out)[0]
    cosine = torch.nn.functional.cosine_similarity(got, want, dim=-1)
    assert cosine.min() > 0.99, cosine


def tiny_llm(tmp_path: Path, kind: str) -> tuple[Path, object]:
    """A two-layer GPT-2 with tied embeddings, random weights, saved in several shards."""
    config = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=2, n_positions=64, vocab_size=300,
                                     tie_word_embeddings=True)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config).eval()
    root = tmp_path / f"gpt2-{kind}"
    model.save_pretrained(root, max_shard_size="60KB", safe_serialization=kind == "safetensors")
    return root, model


@pytest.mark.parametrize("kind", ["safetensors", "bin"])
def test_tied_causal_lm_generates_the_same_tokens(tmp_path, kind):
    root, _ = tiny_llm(tmp_path, kind)
    out = tmp_path / "dcf"
    compress_directory(root, out, CompressionSettings.preset("lossless"), workers=1)
    index = read_index(out)
    assert len(index.shards) > 2
    if kind == "bin":  # torch.save kept the tie as shared storage: stored once
        assert index.aliases == {"lm_head.weight": "transformer.wte.weight"}
    dense = transformers.AutoModelForCausalLM.from_pretrained(root)
    got = transformers.AutoModelForCausalLM.from_pretrained(out)
    assert same_state(got, dense)
    assert got.lm_head.weight is got.transformer.wte.weight  # the tie, restored
    prompt = torch.tensor([[5, 17, 42, 9]])
    want = dense.generate(prompt, max_new_tokens=12, do_sample=False, pad_token_id=0)
    assert torch.equal(got.generate(prompt, max_new_tokens=12, do_sample=False, pad_token_id=0), want)


def test_a_base_model_from_a_task_checkpoint(tmp_path):
    root, model = tiny_llm(tmp_path, "safetensors")
    out = tmp_path / "dcf"
    compress_directory(root, out, CompressionSettings.preset("lossless"), workers=1)
    base = transformers.AutoModel.from_pretrained(out)  # GPT2Model: the "transformer." prefix dropped
    assert all(torch.equal(v, model.transformer.state_dict()[k]) for k, v in base.state_dict().items())


def test_a_corrupt_shard_is_a_dcformat_error_naming_it(tmp_path):
    root, _ = tiny_llm(tmp_path, "safetensors")
    out = tmp_path / "dcf"
    compress_directory(root, out, CompressionSettings.preset("lossless"), workers=1)
    shard = out / read_index(out).shards[1]
    data = bytearray(shard.read_bytes())
    data[-100] ^= 0x10  # a payload byte
    shard.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch) as caught:
        transformers.AutoModelForCausalLM.from_pretrained(out)
    assert caught.value.shard == str(shard)


def test_dense_directories_are_transformers_own(tmp_path):
    root, model = tiny_llm(tmp_path, "safetensors")
    assert same_state(transformers.AutoModelForCausalLM.from_pretrained(root), model)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text((root / "config.json").read_text())
    with pytest.raises(OSError, match="no file named"):
        transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "empty")


def test_import_dcformat_does_not_import_transformers():
    code = ("import sys, dcformat; assert 'transformers' not in sys.modules and 'torch' not in sys.modules; "
            "import transformers.modeling_utils as m; from transformers.quantizers.auto import "
            "AUTO_QUANTIZER_MAPPING as q; assert 'dcformat' in q and m._get_resolved_checkpoint_files.dcformat")
    subprocess.run([sys.executable, "-c", code], check=True)
