"""The pipeline end to end: encoded tensors decode to codebook[code] at kept positions, 0 elsewhere."""

import doctest
import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import dcformat
from dcformat.compress import (
    CODEBOOK,
    EXACT,
    SPARSE_CODEBOOK,
    CompressionSettings,
    Rule,
    TensorSettings,
    compress_tensor,
    compress_tensors,
    gaps_to_positions,
    prune_mask,
    reconstruct,
)
from dcformat.encodings.model import CodebookValues, Dense, EncodedTensor, PlaneValues, RawValues, Sparse
from dcformat.errors import InvalidSettings, UnsupportedDType, UsageError
from dcformat.streams import HuffmanCodec, PackedCodec

DTYPES = {"F16": np.dtype(np.float16), "BF16": np.dtype(ml_dtypes.bfloat16),
          "F32": np.dtype(np.float32), "F64": np.dtype(np.float64)}


@st.composite
def float_tensors(draw):
    wire = draw(st.sampled_from(sorted(DTYPES)))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=9))
    width = {"F16": 16, "F64": 64}.get(wire, 32)
    style = draw(st.sampled_from(["any", "small", "equal", "zero", "few", "sparse"]))
    wide = np.float64 if width == 64 else np.float32 if width == 32 else np.float16
    if style == "sparse":  # long zero runs: fillers at small gap widths
        shape = draw(hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=60))
        a = draw(hnp.arrays(wide, shape, elements=st.floats(-3, 3, width=width), fill=st.just(0.0)))
        return a.astype(ml_dtypes.bfloat16) if wire == "BF16" else a
    if style == "any":
        elements = st.floats(allow_nan=False, allow_infinity=False, width=width)
    elif style == "small":
        elements = st.floats(-3, 3, width=width)
    else:
        values = {"equal": [draw(st.floats(-10, 10, width=width))], "zero": [0.0, -0.0],
                  "few": [-1.5, 0.0, 0.25, 2.0]}[style]
        elements = st.sampled_from(values)
    a = draw(hnp.arrays(wide, shape, elements=elements))
    if wire == "BF16":  # keep the top 16 bits of each float32: still finite
        a = (a.view(np.uint32) >> 16).astype(np.uint16).view(ml_dtypes.bfloat16)
    return a


small_bits = st.integers(1, 4) | st.integers(5, 16)
tensor_settings = st.builds(
    TensorSettings,
    sparsity=st.none() | st.floats(0.0, 0.99),
    code_bits=small_bits, gap_bits=small_bits, init=st.sampled_from(["linear", "density", "random"]),
    huffman=st.booleans(), seed=st.integers(0, 1000), kmeans_iterations=st.integers(0, 30),
) | st.builds(TensorSettings, quality=st.floats(0.0, 3.0), code_bits=small_bits, gap_bits=small_bits,
              kmeans_iterations=st.integers(0, 30))


def check_encoding(w, ts, enc, report):
    """Everything the writer and a reader rely on, and what the decoded tensor must be."""
    wire = enc.dtype
    assert DTYPES[wire] == w.dtype and enc.shape == w.shape and enc.size == w.size
    vals = enc.values
    assert isinstance(vals, CodebookValues)
    cb = vals.codebook
    assert cb.dtype == w.dtype and 1 <= cb.size <= 2 ** ts.code_bits
    cb64 = cb.astype(np.float64)
    assert np.all(cb64[1:] > cb64[:-1]), "codebook ascending and distinct"
    codes = vals.codes
    assert codes.dtype == np.uint16 and (codes.astype(np.int64) < cb.size).all()
    if not ts.huffman:
        assert isinstance(vals.codec, PackedCodec)
    elif not isinstance(vals.codec, HuffmanCodec):  # packed only when it is no larger
        assert len(vals.codec.encode(codes, cb.size)) <= len(HuffmanCodec().encode(codes, cb.size))

    flat = w.astype(np.float64).ravel()
    if ts.pruned:
        assert isinstance(enc.layout, Sparse) and enc.layout.gap_bits == ts.gap_bits
        gaps = enc.layout.gaps
        assert gaps.dtype == np.uint16 and (gaps.astype(np.int64) < 2 ** ts.gap_bits).all()
        assert codes.size == gaps.size <= w.size
        positions = gaps_to_positions(gaps)
        assert positions.size == 0 or positions[-1] < w.size
        expected = np.flatnonzero(prune_mask(w, sparsity=ts.sparsity, quality=ts.quality).ravel() & (flat != 0))
        kept = np.isin(positions, expected)
        assert np.array_equal(positions[kept], expected)
        fillers = ~kept
        if fillers.any():
            zero = np.flatnonzero(cb64 == 0)
            assert zero.size == 1 and not cb[zero[0]:zero[0] + 1].view(np.uint8).any()
            assert (cb64[codes[fillers]] == 0).all()
            assert (gaps[fillers] == 2 ** ts.gap_bits - 1).all()
        assert report.kind == SPARSE_CODEBOOK and report.fillers == int(fillers.sum())
    else:
        assert isinstance(enc.layout, Dense) and codes.size == w.size
        positions, kept, expected = np.arange(w.size), np.ones(w.size, bool), np.arange(w.size)
        assert report.kind == CODEBOOK
    assert report.kept == expected.size and report.entries == codes.size

    # the decoded tensor: codebook[code] at kept positions, zero everywhere else
    r = reconstruct(enc)
    assert r.dtype == w.dtype and r.shape == w.shape
    want = np.zeros(w.size, w.dtype)
    want[positions[kept]] = cb[codes[kept]]
    assert np.array_equal(r.reshape(-1).view(np.uint8), want.view(np.uint8)), "bit-exact decode"

    # every kept value got its nearest codebook entry
    if expected.size:
        v = flat[expected]
        with np.errstate(over="ignore"):
            d = np.abs(v[:, None] - cb64[None, :])
        assert np.all(d[np.arange(v.size), codes[kept]] <= d.min(axis=1))

    # the report's error is the reconstruction's
    with np.errstate(over="ignore"):
        err = float(np.sum((flat - r.astype(np.float64).ravel()) ** 2))
        sig = float(np.sum(flat ** 2))
    if flat.size and 1e-100 < np.abs(flat).max() < 1e100:  # squares neither overflow nor underflow
        assert report.rel_rms_error == pytest.approx(math.sqrt(err / sig), rel=1e-6, abs=1e-9)
        assert (report.sqnr_db == math.inf) == (err == 0)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(float_tensors(), tensor_settings)
def test_encode_decode_property(w, ts):
    enc, report = compress_tensor(w, ts, "t")
    check_encoding(w, ts, enc, report)


@pytest.mark.parametrize("value", [2.22507386e-309, 5e-324, 1e-300, 1e300])
def test_float64_of_extreme_magnitude(value):
    # found by test_encode_decode_property: 2**-e overflowed for subnormal weights
    w = np.array([value, -value / 2, 0.0], np.float64)
    ts = TensorSettings(quality=0.0, code_bits=1, gap_bits=1, kmeans_iterations=0)
    enc, report = compress_tensor(w, ts, "t")
    check_encoding(w, ts, enc, report)
    assert math.isfinite(report.rel_rms_error) and report.rel_rms_error <= 1.0


def test_fillers_put_an_exact_zero_in_a_full_codebook():
    rng = np.random.default_rng(0)
    w = np.zeros((64, 64), np.float32)
    w.ravel()[::37] = rng.standard_normal(w.size // 37 + 1)  # gaps of 36 > 2**3 - 1
    ts = TensorSettings(sparsity=0.0, code_bits=3, gap_bits=3)
    enc, report = compress_tensor(w, ts)
    cb = enc.values.codebook
    assert report.fillers > 0 and cb.size == 8 and 0.0 in cb
    check_encoding(w, ts, enc, report)


def test_no_fillers_no_reserved_zero():
    w = np.random.default_rng(1).standard_normal((64, 64)).astype(np.float32)
    ts = TensorSettings(sparsity=0.5, code_bits=4, gap_bits=8)
    enc, report = compress_tensor(w, ts)
    assert report.fillers == 0 and enc.values.codebook.size == 16 and 0.0 not in enc.values.codebook


@pytest.mark.parametrize("wire", sorted(DTYPES))
@pytest.mark.parametrize("pruned", [False, True])
def test_codebook_in_tensor_dtype(wire, pruned):
    w = (np.random.default_rng(2).standard_normal((32, 200)) * 0.05).astype(DTYPES[wire])
    ts = TensorSettings(sparsity=0.9 if pruned else None, code_bits=8, gap_bits=2)
    enc, report = compress_tensor(w, ts)
    assert enc.dtype == wire and enc.values.codebook.dtype == DTYPES[wire]
    check_encoding(w, ts, enc, report)
    assert report.sqnr_db > (2 if pruned else 35)  # 90 % pruned: most of the energy goes


def test_sparsity_is_hit_and_error_is_sane():
    w = np.random.default_rng(3).standard_normal((300, 784)).astype(np.float32)
    enc, report = compress_tensor(w, TensorSettings(sparsity=0.92, code_bits=6, gap_bits=5))
    assert report.kept == w.size - round(0.92 * w.size)
    assert report.kept_percent == pytest.approx(8.0, abs=0.01)
    assert 0 < report.rel_rms_error < 1 and report.sqnr_db > 0


def test_deterministic():
    w = np.random.default_rng(4).standard_normal((100, 100)).astype(np.float32)
    ts = TensorSettings(quality=0.5, init="random", seed=3, code_bits=5, gap_bits=3)
    a, _ = compress_tensor(w, ts)
    b, _ = compress_tensor(w, ts)
    assert np.array_equal(a.values.codebook, b.values.codebook) and np.array_equal(a.values.codes, b.values.codes)
    assert np.array_equal(a.layout.gaps, b.layout.gaps)


def test_compress_tensor_refusals():
    with pytest.raises(UnsupportedDType):
        compress_tensor(np.zeros((4, 4), np.int32), TensorSettings())
    for dtype in (np.float32, np.float16, ml_dtypes.bfloat16):  # the last two by bit pattern (kmeans.Patterns)
        with pytest.raises(InvalidSettings):
            compress_tensor(np.full((4, 4), np.nan, dtype), TensorSettings())
        with pytest.raises(InvalidSettings):
            compress_tensor(np.full((4, 4), np.inf, dtype), TensorSettings(sparsity=0.5))
    with pytest.raises(InvalidSettings):
        compress_tensor(np.zeros((4, 4), np.float32), CompressionSettings())


def test_compress_tensors_selects_and_reports():
    rng = np.random.default_rng(5)
    nan = rng.standard_normal((64, 64)).astype(np.float32)
    nan[3, 3] = np.nan
    sd = {
        "conv.weight": rng.standard_normal((16, 8, 3, 3)).astype(np.float32),
        "fc.weight": rng.standard_normal((64, 100)).astype(ml_dtypes.bfloat16),
        "fc.bias": rng.standard_normal(64).astype(np.float32),
        "tiny.weight": rng.standard_normal((4, 4)).astype(np.float32),
        "steps": np.arange(10000, dtype=np.int64).reshape(100, 100),
        "norm.weight": rng.standard_normal((64, 64)).astype(np.float16),
        "bad.weight": nan,
    }
    s = CompressionSettings(
        default=TensorSettings(code_bits=4), keep=("norm.*",), min_elements=100,
        rules=(Rule(TensorSettings(sparsity=0.5, code_bits=6, gap_bits=4), kind="conv"),))
    out, reports = compress_tensors(sd, s)
    assert list(out) == list(sd) == [r.name for r in reports]
    by = {r.name: r for r in reports}
    assert by["conv.weight"].kind == SPARSE_CODEBOOK and by["conv.weight"].code_bits == 6
    assert by["fc.weight"].kind == CODEBOOK and by["fc.weight"].dtype == "BF16"
    assert by["fc.weight"].codebook_size <= 16 and by["fc.weight"].gap_bits is None
    for name, reason in [("fc.bias", "fewer than 2 dimensions"), ("tiny.weight", "fewer than 100 elements"),
                         ("steps", "not floating"), ("norm.weight", "keep pattern"),
                         ("bad.weight", "non-finite values")]:
        assert by[name].kind == EXACT and by[name].reason == reason
        assert by[name].rel_rms_error == 0 and by[name].sqnr_db == math.inf
        # stored as given, or (a float tensor whose planes are smaller) as PLANES of the same bits
        kept = out[name] if out[name] is sd[name] else out[name].values.values.reshape(sd[name].shape)
        assert kept.tobytes() == sd[name].tobytes()
    assert isinstance(out["norm.weight"].values, PlaneValues) and out["steps"] is sd["steps"]
    exact = CompressionSettings.from_dict(dict(s.to_dict(), exact="raw"))
    assert compress_tensors(sd, exact)[0]["norm.weight"] is sd["norm.weight"]
    assert by["steps"].dtype == "I64" and by["steps"].kept == 10000
    for name in ("conv.weight", "fc.weight"):
        assert isinstance(out[name], EncodedTensor)
    d = by["conv.weight"].to_dict()
    assert d["shape"] == [16, 8, 3, 3] and d["kept_percent"] == 50.0 and by["steps"].to_dict()["sqnr_db"] is None


def test_compress_tensors_defaults_and_progress(capsys):
    sd = {"w": np.random.default_rng(6).standard_normal((80, 80)).astype(np.float32)}
    out, reports = compress_tensors(sd, progress=True)
    assert reports[0].kind == CODEBOOK and reports[0].code_bits == 8
    assert "compressing" in capsys.readouterr().err
    out, reports = compress_tensors(sd, CompressionSettings.preset("lossless"))
    assert isinstance(out["w"].values, PlaneValues) and reports[0].kind == EXACT
    assert dcformat.load(dcformat.save(out))["w"].tobytes() == sd["w"].tobytes()
    with pytest.raises(UsageError):
        compress_tensors({"w": [[1.0]]})
    with pytest.raises(InvalidSettings):
        compress_tensors(sd, TensorSettings())


def test_reconstruct_raw_and_refusals():
    enc = EncodedTensor("F32", (2, 3), Sparse(2, np.array([1, 1, 1], np.uint16)),
                        RawValues(np.array([1.5, 0.0, -2.0], np.float32)))
    assert reconstruct(enc).tolist() == [[0, 1.5, 0], [0, 0, -2.0]]
    over = EncodedTensor("F32", (2, 2), Sparse(2, np.array([3, 3], np.uint16)),
                         RawValues(np.array([1.0, 2.0], np.float32)))
    with pytest.raises(UsageError):
        reconstruct(over)
    with pytest.raises(UsageError):
        reconstruct(EncodedTensor("F32", (2,), Dense(), CodebookValues(np.zeros(1, np.float32),
                                                                       np.array([0, 1], np.uint16))))


def test_container_round_trip(tmp_path):
    rng = np.random.default_rng(7)
    sd = {"conv.weight": rng.standard_normal((32, 16, 3, 3)).astype(np.float32),
          "fc.weight": rng.standard_normal((100, 300)).astype(np.float16),
          "fc.bias": rng.standard_normal(100).astype(np.float32)}
    out, _ = compress_tensors(sd, CompressionSettings.preset("paper"))
    back = dcformat.load(dcformat.save(out))
    for name, value in out.items():
        want = value if isinstance(value, np.ndarray) else reconstruct(value)
        assert back[name].dtype == want.dtype and np.array_equal(back[name], want)


@pytest.mark.parametrize("module", ["settings", "prune", "kmeans", "pipeline"])
def test_docstring_examples(module):
    import importlib

    mod = importlib.import_module(f"dcformat.compress.{module}")
    result = doctest.testmod(mod, extraglobs={"np": np}, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
