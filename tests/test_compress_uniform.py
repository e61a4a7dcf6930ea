"""The ecq quantizer on AFFINE codebooks (v1.3), and the rd preset's coverage and balance:
small tensors and 1-D ones coded, each tensor weighed by its size."""

import math

import numpy as np
import pytest

import dcformat
from dcformat import AffineCodebook, CodebookValues, GroupedValues
from dcformat.compress import CompressionSettings, TensorSettings, compress_tensor, compress_tensors, reconstruct
from dcformat.compress import budget, uniform
from dcformat.compress.settings import RD_MIN_ELEMENTS, RD_TENSOR_BALANCE
from dcformat.container.reader import parse_header
from dcformat.errors import InvalidSettings
from dcformat.format import constants as C
from dcformat.numpy import load_file

ECQ = TensorSettings(quantizer="ecq", code_bits=12, min_sqnr_db=40.0)


def _sqnr(x, y) -> float:
    x, y = x.astype(np.float64), y.astype(np.float64)
    return 10 * math.log10(np.sum(x ** 2) / np.sum((x - y) ** 2))


def _affine(encoded) -> bool:
    return isinstance(encoded.values.codebook, AffineCodebook)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_a_small_tensor_takes_the_grid_and_keeps_its_floor(dtype):
    w = np.random.default_rng(0).standard_normal((24, 30)).astype(dtype)
    encoded, report = compress_tensor(w, ECQ, "w")
    assert _affine(encoded)
    data = dcformat.save({"w": encoded})
    header = parse_header(data)
    assert header.required_features == C.FEATURE_AFFINE and header.version == (1, 3)
    decoded = dcformat.load(data)["w"]
    assert np.array_equal(decoded, reconstruct(encoded))  # the pipeline's decoder agrees with the reader
    assert _sqnr(w, decoded) >= 40.0
    assert report.sqnr_db == pytest.approx(_sqnr(w, decoded), abs=1e-6)
    # 8 bytes of grid where the table was: the table alone would be most of this file
    segment = next(r for r in header.tensors).segments["codebook"]
    assert segment.codec == C.SegmentCodec.AFFINE and segment.length == 8
    assert len(data) < report.codebook_size * np.dtype(dtype).itemsize + w.size


def test_the_grid_is_not_taken_where_its_error_costs_more_than_the_table_saves():
    # a few well-separated clusters: centroids far from any uniform grid's points
    rng = np.random.default_rng(1)
    centres = np.array([-3.1, -0.4, 0.05, 2.9])
    w = (centres[rng.integers(0, 4, (512, 512))] + 1e-4 * rng.standard_normal((512, 512))).astype(np.float32)
    encoded, _ = compress_tensor(w, TensorSettings(quantizer="ecq", code_bits=2, min_sqnr_db=5.0), "w")
    assert not _affine(encoded)


def test_the_zero_code_is_exact_so_a_mostly_zero_tensor_stays_sparse():
    rng = np.random.default_rng(2)
    w = np.where(rng.random((40, 50)) < 0.85, 0.0, rng.standard_normal((40, 50))).astype(np.float32)
    encoded, report = compress_tensor(w, ECQ, "w")
    assert _affine(encoded) and isinstance(encoded.layout, dcformat.Sparse)
    decoded = dcformat.load(dcformat.save({"w": encoded}))["w"]
    assert np.all(decoded[w == 0.0] == 0.0)
    assert _sqnr(w, decoded) >= 40.0


def test_f64_tensors_keep_their_table():
    w = np.random.default_rng(3).standard_normal((30, 30))
    encoded, _ = compress_tensor(w, ECQ, "w")
    assert isinstance(encoded.values, CodebookValues) and not _affine(encoded)


def test_row_scales_share_an_affine_codebook():
    rng = np.random.default_rng(4)
    w = (rng.standard_normal((32, 90)) * np.exp(rng.normal(0, 1.5, (32, 1)))).astype(np.float32)
    rows = TensorSettings(quantizer="ecq", code_bits=12, min_sqnr_db=35.0, groups="rows")
    encoded, report = compress_tensor(w, rows, "w")
    assert isinstance(encoded.values, GroupedValues) and _affine(encoded)
    decoded = dcformat.load(dcformat.save({"w": encoded}))["w"]
    assert report.sqnr_db == pytest.approx(_sqnr(w, decoded), abs=1e-6)


def test_worth_trying_and_better():
    assert uniform.worth_trying(256, 32, 100_000, "F32")
    assert not uniform.worth_trying(256, 32, 1_000_000, "F32")  # the table is 0.8 % of a bit a value
    assert not uniform.worth_trying(256, 64, 1_000, "F64")  # no AFFINE codebook for F64
    # 1,000 bytes saved on 1,000 values pay for up to 2**16 times the error; not for more
    assert uniform.better(1100, 1.0, 100, 2.0 ** 15.9, 1000)
    assert not uniform.better(1100, 1.0, 100, 2.0 ** 16.1, 1000)
    assert uniform.better(100, 0.0, 100, 0.0, 10) and not uniform.better(100, 0.0, 50, 1e-9, 10)


def test_the_budget_predicts_affine_records():
    """Small tensors on a budget: each file lands on its budget (predictions of the grid's
    records good enough for the allocation to spend it)."""
    rng = np.random.default_rng(5)
    sd = {f"l{i}.weight": rng.standard_normal((8 * (i + 1), 16)).astype(np.float32) for i in range(12)}
    sd["big.weight"] = rng.standard_normal((256, 256)).astype(np.float32)
    sd.update({f"l{i}.bias": rng.standard_normal(64 + 8 * i).astype(np.float32) for i in range(12)})
    params = sum(v.size for v in sd.values())
    for bpp in (4.0, 6.0):
        s = CompressionSettings.from_dict({**CompressionSettings.preset("rd").to_dict(), "bits_per_param": bpp})
        out, reports = compress_tensors(sd, s)
        assert all(r.kind != "exact" for r in reports)  # biases too: the rd preset codes 1-D tensors
        assert sum(_affine(e) for e in out.values()) >= 20
        data = dcformat.save(out)
        assert abs(8 * len(data) / params - bpp) <= budget.tolerance(bpp)


def test_tensor_balance_gives_smaller_tensors_more_sqnr():
    rng = np.random.default_rng(6)
    sd = {"small.weight": rng.standard_normal((64, 64)).astype(np.float32),
          "large.weight": rng.standard_normal((512, 512)).astype(np.float32)}
    gaps = {}
    for balance in (0.0, 0.5, 1.0):
        s = CompressionSettings(default=TensorSettings(quantizer="ecq", code_bits=12), bits_per_param=5.0,
                                tensor_balance=balance)
        _, reports = compress_tensors(sd, s)
        by = {r.name: r.sqnr_db for r in reports}
        gaps[balance] = by["small.weight"] - by["large.weight"]
    # 64 times fewer values: 10 log10(64) = 18 dB more at balance 1, half that at 0.5
    assert abs(gaps[0.0]) < 1.5
    assert gaps[0.5] == pytest.approx(9.0, abs=2.0)
    assert gaps[1.0] == pytest.approx(18.1, abs=2.5)


def test_settings_min_rank_and_balance():
    s = CompressionSettings(min_rank=1, tensor_balance=1.0, min_elements=8)
    assert s.exact_reason("b", (16,), "F32") is None
    assert CompressionSettings().exact_reason("b", (16,), "F32") == "fewer than 2 dimensions"
    assert CompressionSettings.from_dict(s.to_dict()) == s
    for bad in (dict(tensor_balance=-0.1), dict(tensor_balance=float("nan")), dict(tensor_balance=5.0),
                dict(min_rank=9), dict(min_rank=-1)):
        with pytest.raises(InvalidSettings):
            CompressionSettings(**bad)
    rd = CompressionSettings.preset("rd")
    assert (rd.min_rank, rd.min_elements, rd.tensor_balance) == (1, RD_MIN_ELEMENTS, RD_TENSOR_BALANCE)


def test_cli_budget_alone_codes_biases(tmp_path):
    from safetensors.numpy import save_file as st_save

    from dcformat.cli import main

    rng = np.random.default_rng(7)
    src, dst = tmp_path / "m.safetensors", tmp_path / "m.dcf"
    bias = rng.standard_normal(128).astype(np.float32)
    st_save({"fc.weight": rng.standard_normal((128, 96)).astype(np.float32), "fc.bias": bias}, str(src))
    assert main(["compress", str(src), "-o", str(dst), "-q", "--bits-per-param", "5"]) == 0
    with dcformat.safe_open(dst) as f:
        kinds = {r.name: r.value_kind for r in f.records()}
    assert kinds["fc.bias"] == C.ValueKind.CODEBOOK
    assert _sqnr(bias, load_file(dst)["fc.bias"]) > 20.0
    # the default preset (no budget) keeps it exact, as before
    assert main(["compress", str(src), "-o", str(dst), "-q", "--force"]) == 0
    assert np.array_equal(load_file(dst)["fc.bias"], bias)


def test_cli_rd_weights_code_what_the_rd_preset_codes_weighed_by_them_alone(tmp_path):
    from safetensors.numpy import save_file as st_save

    from dcformat.cli import main

    rng = np.random.default_rng(8)
    src, dst, weights = tmp_path / "m.safetensors", tmp_path / "m.dcf", tmp_path / "w.json"
    sd = {"small.weight": rng.standard_normal((64, 64)).astype(np.float32),
          "large.weight": rng.standard_normal((512, 512)).astype(np.float32),
          "large.bias": rng.standard_normal(512).astype(np.float32)}
    st_save(sd, str(src))
    weights.write_text('{"small.weight": 1.0, "large.weight": 1.0, "large.bias": 1.0}')
    sqnr = {}
    for flags in ([], ["--rd-weights", str(weights)]):
        assert main(["compress", str(src), "-o", str(dst), "-q", "--force", "--bits-per-param", "5", *flags]) == 0
        back = load_file(dst)
        with dcformat.safe_open(dst) as f:
            assert {r.name: r.value_kind for r in f.records()}["large.bias"] == C.ValueKind.CODEBOOK  # coded
        sqnr[bool(flags)] = _sqnr(sd["small.weight"], back["small.weight"]) - _sqnr(sd["large.weight"],
                                                                                     back["large.weight"])
    # alone, the size balance gives the 64x smaller tensor about 22 dB more; equal rd weights, none
    assert sqnr[False] > 15.0
    assert abs(sqnr[True]) < 2.0
