"""Settings validation, JSON round trips, presets and tensor selection rules."""

import json

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dcformat.compress import CompressionSettings, Rule, TensorSettings, layer_kind
from dcformat.compress._dtypes import wire_name
from dcformat.errors import InvalidSettings

bits = st.integers(1, 16)
tensor_settings = st.builds(
    TensorSettings,
    sparsity=st.none() | st.floats(0.0, 1.0, exclude_max=True),
    code_bits=bits, gap_bits=bits, init=st.sampled_from(["linear", "density", "random"]),
    huffman=st.booleans(), seed=st.integers(0, 2**63 - 1), kmeans_iterations=st.integers(0, 10**6),
) | st.builds(TensorSettings, quality=st.floats(0.0, 10.0), code_bits=bits)
names = st.text("abc.*_0123456789", max_size=12)
rules = st.builds(Rule, settings=st.none() | tensor_settings, glob=st.none() | names,
                  kind=st.sampled_from([None, "conv", "fc"]), min_values=st.integers(0, 10**9)) | st.builds(
    Rule, settings=st.none() | tensor_settings, regex=st.sampled_from([r"^fc\d", r"\.weight$", "conv"]))
compression_settings = st.builds(CompressionSettings, default=st.none() | tensor_settings,
                                 rules=st.lists(rules, max_size=4).map(tuple),
                                 keep=st.lists(names, max_size=3).map(tuple),
                                 min_elements=st.integers(0, 10**9))


@given(compression_settings)
def test_json_round_trip(settings):
    text = json.dumps(settings.to_dict())
    assert CompressionSettings.from_dict(json.loads(text)) == settings
    assert CompressionSettings.from_json(settings.to_json()) == settings


@given(tensor_settings)
def test_tensor_settings_round_trip(ts):
    assert TensorSettings.from_dict(json.loads(json.dumps(ts.to_dict()))) == ts


@pytest.mark.parametrize("name", ["default", "paper", "lossless"])
def test_presets_round_trip(name):
    s = CompressionSettings.preset(name)
    assert CompressionSettings.from_json(s.to_json()) == s


def test_paper_preset():
    s = CompressionSettings.preset("paper")
    conv = s.settings_for("conv2.weight", (64, 32, 3, 3), "F32")
    fc = s.settings_for("fc6.weight", (4096, 9216), "F32")
    assert (conv.code_bits, conv.gap_bits, fc.code_bits, fc.gap_bits) == (8, 8, 5, 5)
    assert conv.pruned and fc.pruned and fc.sparsity > conv.sparsity


def test_lossless_preset_compresses_nothing():
    s = CompressionSettings.preset("lossless")
    assert s.settings_for("w", (1000, 1000), "F32") is None


@pytest.mark.parametrize("kwargs", [
    dict(sparsity=1.0), dict(sparsity=-0.1), dict(sparsity=float("nan")), dict(quality=-1.0),
    dict(sparsity=0.5, quality=1.0), dict(code_bits=0), dict(code_bits=17), dict(gap_bits=0),
    dict(gap_bits=17), dict(code_bits=True), dict(code_bits=4.0), dict(init="kmeans++"),
    dict(huffman=1), dict(seed=-1), dict(kmeans_iterations=-1),
])
def test_bad_tensor_settings(kwargs):
    with pytest.raises(InvalidSettings):
        TensorSettings(**kwargs)


@pytest.mark.parametrize("data", [
    {"default": {"code_bits": 4, "bogus": 1}}, {"rules": [{"glob": "*"}]}, {"rules": {}},
    {"keep": "*.bias"}, {"min_elements": -1}, {"extra": 0}, [],
    {"rules": [{"settings": None, "glob": "a", "regex": "b"}]},
    {"rules": [{"settings": None, "regex": "("}]}, {"rules": [{"settings": None, "kind": "rnn"}]},
])
def test_bad_compression_settings(data):
    with pytest.raises(InvalidSettings):
        CompressionSettings.from_dict(data)


def test_bad_json_and_preset():
    with pytest.raises(InvalidSettings):
        CompressionSettings.from_json("{")
    with pytest.raises(InvalidSettings):
        CompressionSettings.preset("extreme")


def test_partial_dict_takes_defaults():
    s = CompressionSettings.from_dict({"default": {"code_bits": 4}})
    assert s.default == TensorSettings(code_bits=4) and s.min_elements == 4096


def test_layer_kind():
    assert [layer_kind(s) for s in [(), (5,), (5, 5), (5, 5, 3), (5, 5, 3, 3)]] == [None, None, "fc", "conv", "conv"]


A, B, C = TensorSettings(code_bits=2), TensorSettings(code_bits=3), TensorSettings(code_bits=4)


def test_selection_order_and_matching():
    s = CompressionSettings(
        default=C, min_elements=10, keep=("*.embed",),
        rules=(Rule(None, glob="head.*"), Rule(A, regex=r"^layer\d+\.fc"), Rule(B, kind="conv"),
               Rule(A, glob="*.weight")))
    f = s.settings_for
    assert f("x.embed", (100, 100), "F32") is None            # keep beats rules
    assert f("head.weight", (100, 100), "F32") is None        # rule with None keeps exact
    assert f("layer3.fc.weight", (10, 10, 10), "F32") is A    # first match wins over kind
    assert f("blocks.conv.weight", (10, 10, 3), "F32") is B
    assert f("proj.weight", (10, 10), "F32") is A
    assert f("proj.w", (10, 10), "F32") is C                  # default
    assert f("proj.w", (10,), "F32") is None                  # fewer than 2 dims
    assert f("proj.w", (3, 3), "F32") is None                 # fewer than min_elements
    assert f("proj.w", (10, 10), "I32") is None               # not floating
    assert f("proj.w", (10, 10), "F8_E4M3") is None           # not compressed
    assert s.exact_reason("x.embed", (100, 100), "F32") == "keep pattern"
    assert s.exact_reason("proj.w", (0, 10), "F32") is not None  # empty


def test_glob_is_case_sensitive_and_crosses_dots():
    r = Rule(A, glob="*.weight")
    assert r.matches("a.b.c.weight", (2, 2)) and not r.matches("a.WEIGHT", (2, 2))


@pytest.mark.parametrize("dtype,name", [
    (np.float16, "F16"), (np.float32, "F32"), (np.float64, "F64"), (ml_dtypes.bfloat16, "BF16"),
    (np.dtype(">f4"), "F32"), (np.int8, "I8"), (np.bool_, "BOOL"), (ml_dtypes.float8_e5m2, "F8_E5M2"),
])
def test_wire_names(dtype, name):
    assert wire_name(np.dtype(dtype)) == name


def test_settings_are_hashable_and_frozen():
    s = CompressionSettings.preset("paper")
    hash(s)
    with pytest.raises(AttributeError):
        s.min_elements = 3


def test_default_preset_gives_the_largest_tensors_9_bits():
    s = CompressionSettings.preset("default")
    embedding, matrix = (262144, 640), (4096, 4096)  # Gemma-3's token embedding; a 4096-wide projection
    assert s.settings_for("model.embed_tokens.weight", embedding, "BF16").code_bits == 9
    assert s.settings_for("model.layers.0.mlp.up_proj.weight", matrix, "BF16").code_bits == 8
    assert s.settings_for("norm.weight", (1 << 27,), "BF16") is None  # 1-D stays exact, however long
    assert s.with_overrides(code_bits=4).settings_for("e.weight", embedding, "F32").code_bits == 4
    rule = Rule(TensorSettings(code_bits=3), kind="fc", min_values=100)
    assert rule.matches("a", (10, 10)) and not rule.matches("a", (9, 11)) and not rule.matches("a", (2, 5, 10))
    assert Rule.from_dict(rule.to_dict()) == rule
    for bad in (-1, 1.5, True, "8"):
        with pytest.raises(InvalidSettings, match="min_values"):
            Rule(None, min_values=bad)
