"""Entropy-constrained quantization, the bits-per-parameter allocator, the error knobs."""

import math

import numpy as np
import pytest

from dcformat.compress import CompressionSettings, Rule, TensorSettings, compress_tensor, compress_tensors, reconstruct
from dcformat.compress import budget
from dcformat.compress.ecq import Histogram, plan, stats
from dcformat.errors import InvalidSettings
from dcformat.numpy import load_file, save_file


def _model(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "a.weight": rng.standard_normal((256, 128)).astype(np.float32),
        "b.weight": (0.05 * rng.laplace(size=(128, 512))).astype(np.float32),
        "c.weight": (3.0 * rng.standard_t(4, size=(64, 256))).astype(np.float32),
        "a.bias": rng.standard_normal(256).astype(np.float32),
    }


def _rel(w, enc):
    r = reconstruct(enc).astype(np.float64)
    return float(np.linalg.norm(w - r) / np.linalg.norm(w))


@pytest.mark.parametrize("bpp", [2.5, 4.0, 6.0])
def test_allocator_meets_budget(tmp_path, bpp):
    sd = _model()
    s = CompressionSettings(default=TensorSettings(quantizer="ecq", code_bits=12), bits_per_param=bpp)
    out, reports = compress_tensors(sd, s)
    path = tmp_path / "m.dcf"
    save_file(out, path)
    params = sum(v.size for v in sd.values())
    achieved = 8 * path.stat().st_size / params
    assert abs(achieved - bpp) <= budget.tolerance(bpp)  # met and spent: the whole file counted
    # equal slope: the compressed tensors end near one SQNR
    sq = [r.sqnr_db for r in reports if r.kind != "exact"]
    assert max(sq) - min(sq) < 1.5
    back = load_file(path)
    for name, enc in out.items():
        if not isinstance(enc, np.ndarray):
            assert np.array_equal(back[name], reconstruct(enc))


def test_more_budget_less_error():
    sd = _model(1)
    errs = []
    for bpp in (3.0, 4.0, 5.0):
        s = CompressionSettings(default=TensorSettings(quantizer="ecq"), bits_per_param=bpp)
        _, reports = compress_tensors(sd, s)
        errs.append(max(r.rel_rms_error for r in reports if r.kind != "exact"))
    assert errs[0] > errs[1] > errs[2]


def test_rd_weight_shifts_bits():
    sd = _model(2)
    s = CompressionSettings(default=TensorSettings(quantizer="ecq"), bits_per_param=4.0,
                            rules=(Rule(TensorSettings(quantizer="ecq", rd_weight=10.0), glob="a.*"),))
    _, reports = compress_tensors(sd, s)
    by = {r.name: r for r in reports}
    assert by["a.weight"].sqnr_db > by["b.weight"].sqnr_db + 7.0


@pytest.mark.parametrize("quantizer", ["ecq", "kmeans"])
@pytest.mark.parametrize("bound", [0.2, 0.03, 0.004])
def test_max_rel_error_honoured(quantizer, bound):
    for name, w in _model(3).items():
        if w.ndim < 2:
            continue
        enc, rep = compress_tensor(w, TensorSettings(quantizer=quantizer, code_bits=4, max_rel_error=bound), name)
        assert rep.rel_rms_error <= bound
        assert _rel(w, enc) <= bound * (1 + 1e-6)
        if quantizer == "ecq":
            assert rep.rel_rms_error > 0.5 * bound  # not wastefully precise


@pytest.mark.parametrize("db", [15.0, 30.0, 45.0])
def test_sqnr_floor_honoured(db):
    for name, w in _model(4).items():
        if w.ndim < 2:
            continue
        _, rep = compress_tensor(w, TensorSettings(quantizer="ecq", code_bits=12, min_sqnr_db=db), name)
        assert rep.sqnr_db >= db
        assert rep.sqnr_db < db + 3.0


def test_floor_caps_step_under_budget():
    sd = _model(5)
    s = CompressionSettings(default=TensorSettings(quantizer="ecq"), bits_per_param=3.0,
                            rules=(Rule(TensorSettings(quantizer="ecq", min_sqnr_db=35.0), glob="c.*"),))
    _, reports = compress_tensors(sd, s)
    by = {r.name: r for r in reports}
    assert by["c.weight"].sqnr_db >= 35.0
    assert by["a.weight"].sqnr_db < 25.0


def _huffman_bits(p):
    return p.code_bits


@pytest.mark.parametrize("F, cap", [(1, 4096), (7, 4096), (16, 40), (3, 2)])
def test_a_uniform_plan_sums_its_cells_as_bincount_does(F, cap):
    # the plan's cells, bit for bit what np.bincount over the grid's cells gives (its kernels
    # add the bins in the same order), whatever the step and the codebook cap
    rng = np.random.default_rng(F)
    x = np.concatenate([rng.laplace(size=30_000), [-40.0, 55.0]]).astype(np.float32)
    lo, hi, e = stats(x)
    h = Histogram.build(x, 0.01, lo, hi, e)
    p = plan(h, F, kappa=0.0, max_entries=cap, iterations=0)
    step = int(round(p.delta / h.delta0))
    g = h.lo + np.arange(h.counts.size)
    used = np.flatnonzero(h.counts)
    cmin, cmax = (g[used[0]] + step // 2) // step, (g[used[-1]] + step // 2) // step
    cell = np.clip(np.floor_divide(g + step // 2, step), cmin, cmax) - cmin
    n, s = (np.bincount(cell, weights=w, minlength=cmax - cmin + 1) for w in (h.counts.astype(np.float64), h.sums))
    alive = n > 0
    assert p.codebook.size <= cap
    assert np.array_equal(p.counts, np.rint(n[alive]).astype(np.int64))
    assert np.array_equal(p.codebook, s[alive] / n[alive])
    assert np.array_equal(p.code_of_bin, (np.cumsum(alive) - 1)[cell])


def test_entropy_constrained_assignment_lowers_rate():
    rng = np.random.default_rng(6)
    x = rng.laplace(size=200_000).astype(np.float32)
    lo, hi, e = stats(x)
    h = Histogram.build(x, 0.02, lo, hi, e)
    plain = plan(h, 25, kappa=0.0, iterations=0)
    ecq = plan(h, 25, kappa=0.3, iterations=20)
    assert ecq.code_bits < plain.code_bits * 0.97
    assert ecq.distortion < plain.distortion * 2.0  # bounded distortion
    # and beats simply coarsening the uniform step to the same rate
    coarse = next(p for p in (plan(h, F, 0.0, iterations=0) for F in range(25, 200)) if p.code_bits <= ecq.code_bits)
    assert ecq.distortion <= coarse.distortion * 1.02
    # the Huffman-coded stream is as planned
    from dcformat.streams import HuffmanCodec

    codes = np.empty(x.size, np.uint16)
    from dcformat.compress.ecq import emit

    codes, err = emit(x, h, ecq, ecq.codebook)
    assert math.isclose(err, ecq.distortion, rel_tol=1e-6)
    payload = HuffmanCodec().encode(codes, int(ecq.codebook.size))
    assert len(payload) * 8 < ecq.code_bits * 1.01 + 8 * 4096


def test_settings_json_round_trip():
    ts = TensorSettings(quantizer="ecq", code_bits=12, ecq_kappa=0.1, max_rel_error=0.01, min_sqnr_db=30.0,
                        rd_weight=0.5)
    s = CompressionSettings(default=ts, rules=(Rule(TensorSettings(quantizer="ecq", rd_weight=0.1),
                                                    glob="*embeddings*"),), bits_per_param=4.5)
    assert CompressionSettings.from_json(s.to_json()) == s
    assert CompressionSettings.from_dict(CompressionSettings.preset("rd").to_dict()) == CompressionSettings.preset("rd")
    assert ts.max_relative_error == 0.01
    assert math.isclose(TensorSettings(min_sqnr_db=30.0).max_relative_error, 10 ** (-1.5))
    for bad in ({"quantizer": "uniform"}, {"ecq_kappa": -1}, {"max_rel_error": 0}, {"rd_weight": 0},
                {"min_sqnr_db": float("nan")}):
        with pytest.raises(InvalidSettings):
            TensorSettings.from_dict(bad)
    with pytest.raises(InvalidSettings):
        CompressionSettings(bits_per_param=0)


def test_ecq_needs_a_target():
    with pytest.raises(InvalidSettings):
        compress_tensor(np.ones((8, 8), np.float32) * np.arange(8), TensorSettings(quantizer="ecq"), "w")


def test_ecq_stores_mostly_zero_codes_sparsely(tmp_path, monkeypatch):
    # A layer whose outer taps are zero (as taps that only ever meet padding) plus a
    # coarse step: most codes are the zero code, which Huffman cannot code below a bit.
    from dcformat.compress import pipeline
    from dcformat.compress.report import SPARSE_CODEBOOK

    rng = np.random.default_rng(5)
    w = np.zeros((256, 64, 9), np.float32)
    w[:, :, 4] = rng.standard_normal((256, 64)).astype(np.float32)
    settings = TensorSettings(quantizer="ecq", code_bits=12, min_sqnr_db=20.0)
    enc, rep = compress_tensor(w, settings, "conv.weight")
    assert rep.kind == SPARSE_CODEBOOK and rep.kept < w.size // 4
    save_file({"w": enc}, tmp_path / "s.dcf")
    assert (tmp_path / "s.dcf").stat().st_size < w.size // 8  # below a bit per weight
    assert np.array_equal(load_file(tmp_path / "s.dcf")["w"], reconstruct(enc))
    monkeypatch.setattr(pipeline, "_sparse_if_smaller", lambda *args: None)  # the dense layout
    dense, dense_rep = compress_tensor(w, settings, "conv.weight")
    assert dense_rep.kind == "codebook"
    assert np.array_equal(reconstruct(enc), reconstruct(dense))  # same values, only the layout differs
    assert dense_rep.sqnr_db == rep.sqnr_db


def test_ecq_keeps_a_gaussian_tensor_dense():
    w = np.random.default_rng(6).standard_normal((128, 128)).astype(np.float32)
    enc, rep = compress_tensor(w, TensorSettings(quantizer="ecq", code_bits=12, min_sqnr_db=30.0), "fc.weight")
    assert rep.kind == "codebook" and rep.kept == w.size
