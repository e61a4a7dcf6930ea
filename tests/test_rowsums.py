"""Row sums kept through quantization (compress/rowsums.py): the kernel against a plain
Python statement of the rule, its guarantees, and the pipeline and rd preset using it."""

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dcformat
from dcformat.compress import CompressionSettings, TensorSettings, compress_tensor, compress_tensors, reconstruct
from dcformat.compress.rowsums import BIAS_WEIGHT, applies, keep_row_sums
from dcformat.errors import InvalidSettings, UsageError

KEEP = TensorSettings(quantizer="ecq", code_bits=12, min_sqnr_db=30.0, keep_row_sums=True)


def _rule(x, codes, codebook, rows, bias_weight, weights=None):
    """The rule as the module states it, one row at a time in plain Python."""
    out = codes.astype(np.int64).copy()
    row = x.size // rows
    weights = np.ones((1, row)) if weights is None else weights
    bits = -np.log2(np.maximum(np.bincount(out, minlength=codebook.size), 0.5) / out.size)
    step = float(np.median(np.diff(codebook))) if codebook.size > 1 else 0.0
    per_bit = 2 * math.log(2) * step ** 2 / 12
    for base in range(0, x.size, row):
        xs = x[base:base + row].astype(np.float64)
        w = weights[(base // row) // (rows // weights.shape[0])]
        s = float(np.sum(w * (codebook[out[base:base + row]] - xs)))
        if s == 0.0:
            continue
        ways = [-1 if (s > 0) == (w[j] > 0) else 1 for j in range(row)]
        cost = []
        for j in range(row):
            c, way = out[base + j], ways[j]
            if xs[j] == 0.0 or w[j] == 0.0 or not 0 <= c + way < codebook.size:
                cost.append(math.inf)
            else:
                cost.append((codebook[c + way] - xs[j]) ** 2 - (codebook[c] - xs[j]) ** 2
                            + per_bit * (bits[c + way] - bits[c]))
        for j in sorted(range(row), key=lambda j: cost[j]):  # stable, as the kernel's mergesort
            if cost[j] == math.inf:
                break
            c, way = out[base + j], ways[j]
            t = s + w[j] * (codebook[c + way] - codebook[c])
            if abs(t) < abs(s) and cost[j] < bias_weight * (s * s - t * t):
                s, out[base + j] = t, c + way
    return out


def _nearest(x, codebook):
    i = np.clip(np.searchsorted(codebook, x), 1, codebook.size - 1)
    return np.where(np.abs(codebook[i - 1] - x) <= np.abs(codebook[i] - x), i - 1, i).astype(np.uint16)


@settings(max_examples=200, deadline=None)
@given(rows=st.integers(1, 6), row=st.integers(1, 40), entries=st.integers(1, 12), seed=st.integers(0, 2**32 - 1),
       zeros=st.floats(0.0, 0.6), bias_weight=st.sampled_from([0.0, 0.5, BIAS_WEIGHT, 8.0, math.inf]))
def test_the_kernel_follows_the_rule(rows, row, entries, seed, zeros, bias_weight):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(rows * row)
    x[rng.random(x.size) < zeros] = 0.0
    codebook = np.unique(np.concatenate(([0.0], rng.standard_normal(entries))))
    codes = _nearest(x, codebook)
    got = keep_row_sums(x, codes, codebook, rows, bias_weight)
    assert got.dtype == codes.dtype and np.array_equal(codes, _nearest(x, codebook))  # input left alone
    assert np.array_equal(got.astype(np.int64), _rule(x, codes, codebook, rows, bias_weight))
    if bias_weight == 0.0:  # a bias worth nothing buys no move that costs: each one taken saves bits
        counts = np.bincount(codes, minlength=codebook.size)
        moved = got != codes
        assert np.all(counts[got[moved]] > counts[codes[moved]])


@settings(max_examples=200, deadline=None)
@given(groups=st.sampled_from([1, 2, 3]), per_group=st.integers(1, 3), row=st.integers(1, 30),
       entries=st.integers(1, 12), seed=st.integers(0, 2**32 - 1), bias_weight=st.sampled_from([0.5, 1.0, math.inf]))
def test_the_kernel_follows_the_rule_with_input_weights(groups, per_group, row, entries, seed, bias_weight):
    rng = np.random.default_rng(seed)
    rows = groups * per_group
    x = rng.standard_normal(rows * row)
    weights = rng.standard_normal((groups, row))  # means of either sign, some zero
    weights[rng.random(weights.shape) < 0.2] = 0.0
    codebook = np.unique(np.concatenate(([0.0], rng.standard_normal(entries))))
    codes = _nearest(x, codebook)
    got = keep_row_sums(x, codes, codebook, rows, bias_weight, input_weights=weights)
    assert np.array_equal(got.astype(np.int64), _rule(x, codes, codebook, rows, bias_weight, weights))
    # the weighted sums only ever shrink
    def sums(c):
        e = (codebook[c] - x).reshape(rows, row)
        return np.abs(np.sum(e * np.repeat(weights, per_group, axis=0), axis=1))
    assert np.all(sums(got) <= sums(codes) + 1e-12)


def test_input_weights_of_the_wrong_shape_are_refused():
    x, codebook = np.zeros(12), np.array([0.0, 1.0])
    codes = np.zeros(12, np.uint16)
    for bad in (np.ones((1, 5)), np.ones((5, 3)), np.ones(3), np.full((1, 3), np.nan)):
        with pytest.raises(UsageError, match="input weights"):
            keep_row_sums(x, codes, codebook, 4, input_weights=bad)


@pytest.mark.parametrize("bias_weight", [BIAS_WEIGHT, math.inf])
def test_on_a_uniform_grid_every_row_sums_within_half_a_step(bias_weight):
    rng = np.random.default_rng(3)
    rows, row, step = 64, 200, 0.25
    x = rng.standard_normal((rows, row)) + 0.3  # rounding errors of shifted rows: sums of several steps
    codebook = np.arange(-40, 41) * step
    codes = _nearest(x.ravel(), codebook)
    before = (codebook[codes] - x.ravel()).reshape(rows, row).sum(1)
    got = keep_row_sums(x.ravel(), codes, codebook, rows, bias_weight)
    after = (codebook[got] - x.ravel()).reshape(rows, row).sum(1)
    assert np.abs(before).max() > 2 * step  # there was something to correct
    assert np.all(np.abs(after) <= step / 2 + 1e-9)
    assert np.all(np.abs(got.astype(int) - codes.astype(int)) <= 1)  # one neighbour at most
    # the moves are the cheap ones: the squared error grows by a small part of a rounding error
    e0 = np.sum((codebook[codes] - x.ravel()) ** 2)
    e1 = np.sum((codebook[got] - x.ravel()) ** 2)
    assert e0 < e1 < 1.1 * e0


def test_exact_zeros_and_the_codebook_ends_never_move():
    x = np.array([0.0, 0.0, 0.0, 0.9, 0.9, 0.9])  # each 0.9 rounds down to 1 step... at the last entry
    codebook = np.array([0.0, 1.0])
    codes = _nearest(x, codebook)
    got = keep_row_sums(x, codes, codebook, 1)
    assert list(got[:3]) == [0, 0, 0]  # the zeros are exact and stay so
    assert got.max() <= 1  # no entry past the last
    # the row reconstructs too large (3 against 2.7): a 0.9 goes down only if that helps
    assert abs(np.sum(codebook[got] - x)) <= abs(np.sum(codebook[codes] - x))


@pytest.mark.parametrize("shape, rows", [((8, 3, 3, 3), True), ((16, 10), True), ((1, 50), False),
                                         ((50,), False), ((50, 1), False)])
def test_which_tensors_have_rows(shape, rows):
    assert applies(shape) is rows


@pytest.mark.parametrize("groups", ["tensor", "rows"])
def test_the_pipeline_keeps_row_sums_and_its_error_floor(groups):
    rng = np.random.default_rng(4)
    # a conv layer's shape, rows of different means (what a ReLU's inputs see as bias)
    w = (0.05 * rng.standard_normal((96, 32, 3, 3)) + 0.01 * rng.standard_normal((96, 1, 1, 1))).astype(np.float32)
    base = TensorSettings(quantizer="ecq", code_bits=12, min_sqnr_db=20.0, groups=groups)
    files = {}
    for keep in (False, True):
        settings = CompressionSettings(default=replace(base, keep_row_sums=keep), bits_per_param=5.0)
        encoded, reports = compress_tensors({"w": w}, settings)
        files[keep] = (encoded["w"], reports[0])
    (plain, plain_report), (kept, kept_report) = files[False], files[True]
    decoded = dcformat.load(dcformat.save({"w": kept}))["w"]
    assert np.array_equal(decoded, reconstruct(kept))
    sums = lambda r: np.abs((r.astype(np.float64) - w).reshape(96, -1).sum(1))  # noqa: E731
    assert sums(decoded).mean() < 0.25 * sums(reconstruct(plain)).mean()
    assert kept_report.sqnr_db >= 20.0  # the floor holds
    assert plain_report.sqnr_db - kept_report.sqnr_db < 0.5  # and little of the SQNR went
    err = decoded.astype(np.float64) - w
    assert kept_report.sqnr_db == pytest.approx(10 * math.log10(np.sum(w.astype(np.float64) ** 2) / np.sum(err ** 2)),
                                                abs=1e-6)


def test_a_tight_floor_outranks_the_correction():
    rng = np.random.default_rng(5)
    w = rng.standard_normal((4, 3)).astype(np.float32)  # rows of 3: a move costs a lot of error
    floor = TensorSettings(quantizer="ecq", code_bits=12, min_sqnr_db=12.0)
    _, plain = compress_tensor(w, floor, "w")
    _, kept = compress_tensor(w, replace(floor, keep_row_sums=True), "w")
    assert kept.sqnr_db >= 12.0 and plain.sqnr_db >= 12.0


def test_the_rd_preset_keeps_row_sums_on_budget():
    rng = np.random.default_rng(6)
    tensors = {"conv": (0.1 * rng.standard_normal((64, 16, 3, 3)) + 0.02).astype(np.float32),
               "fc": rng.standard_normal((100, 256)).astype(np.float32),
               "bias": rng.standard_normal(100).astype(np.float32)}
    rd = CompressionSettings.preset("rd")
    assert rd.default.keep_row_sums
    params = sum(v.size for v in tensors.values())
    files = {}
    for keep in (False, True):
        s = replace(rd, bits_per_param=4.0, default=replace(rd.default, keep_row_sums=keep))
        files[keep] = dcformat.save(compress_tensors(tensors, s)[0])
        assert abs(8 * len(files[keep]) / params - 4.0) < 0.1  # on its budget either way
    plain, kept = dcformat.load(files[False]), dcformat.load(files[True])
    for name in ("conv", "fc"):
        w = tensors[name].astype(np.float64)
        rows = w.shape[0]
        drift = lambda r: np.abs((r - w).reshape(rows, -1).sum(1)).mean()  # noqa: E731
        assert drift(kept[name]) < 0.5 * drift(plain[name])


def test_the_setting_is_a_bool_and_round_trips():
    s = TensorSettings(quantizer="ecq", keep_row_sums=True)
    assert TensorSettings.from_dict(s.to_dict()) == s
    with pytest.raises(InvalidSettings, match="keep_row_sums"):
        TensorSettings(quantizer="ecq", keep_row_sums=1)


def test_the_cli_keeps_row_sums_with_a_budget_and_frees_them_on_request(tmp_path, capsys):
    from safetensors.numpy import save_file

    from dcformat.cli import main as cli_main

    rng = np.random.default_rng(7)
    w = (0.1 * rng.standard_normal((128, 64)) + 0.03).astype(np.float32)
    src = tmp_path / "m.safetensors"
    save_file({"fc.weight": w}, str(src))
    drift = {}
    for flags in ([], ["--row-sums", "free"], ["--preset", "default", "--row-sums", "keep"]):
        out = tmp_path / "m.dcf"
        assert cli_main(["compress", str(src), "-o", str(out), "--force", "-q", "--bits-per-param", "3", *flags]) == 0
        r = dcformat.load_file(out)["fc.weight"].astype(np.float64)
        drift[" ".join(flags)] = np.abs((r - w).sum(1)).mean()
    assert drift[""] < 0.5 * drift["--row-sums free"]
    assert drift["--preset default --row-sums keep"] < 0.5 * drift["--row-sums free"]
    capsys.readouterr()
    assert cli_main(["compress", str(src), "-o", str(tmp_path / "y.dcf"), "--row-sums", "keep", "-q"]) == 2
    assert "--row-sums keep steers the ecq quantizer" in capsys.readouterr().err
    assert cli_main(["compress", str(src), "-o", str(tmp_path / "y.dcf"), "--preset", "lossless",
                     "--row-sums", "free", "-q"]) == 2
