"""``groups="rows"`` (``--groups rows``): the ecq quantizer's codebook shared by a tensor's rows,
each row scaled by its RMS, stored as GROUPED values (format v1.1)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import dcformat
from dcformat.cli import main as cli_main
from dcformat.compress import CompressionSettings, TensorSettings, compress_tensor, compress_tensors
from dcformat.compress import grouped
from dcformat.compress.budget import stored_cost
from dcformat.errors import InvalidSettings
from dcformat.format import constants as C
from dcformat.container.reader import parse_header


def channels(rows: int, row: int, spread: float, seed: int = 0) -> np.ndarray:
    """Rows of Gaussian weights whose scales spread over ``spread`` (log-normal, natural log)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((rows, row)) * np.exp(rng.normal(0.0, spread, (rows, 1)))).astype(np.float32)


ROWS = TensorSettings(quantizer="ecq", code_bits=12, min_sqnr_db=30.0, groups="rows")


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_rows_store_grouped_values_that_decode_as_reported(dtype):
    w = channels(48, 72, 1.5).astype(dtype)
    encoded, report = compress_tensor(w, ROWS, "w")
    assert isinstance(encoded.values, dcformat.GroupedValues) and encoded.values.group_size == 72
    assert report.kind == "codebook, row scales"
    data = dcformat.save({"w": encoded})
    header = parse_header(data)
    # a shared codebook on a uniform grid is stored AFFINE (v1.3), which takes the bit of its own
    affine = isinstance(encoded.values.codebook, dcformat.AffineCodebook)
    assert header.required_features == C.FEATURE_GROUPED | (C.FEATURE_AFFINE if affine else 0)
    assert header.version == (1, 3 if affine else 1)
    decoded = dcformat.load(data)["w"]
    assert decoded.dtype == w.dtype
    x, r = w.astype(np.float64), decoded.astype(np.float64)
    rel = np.sqrt(np.sum((x - r) ** 2) / np.sum(x ** 2))
    assert rel == pytest.approx(report.rel_rms_error, rel=1e-6, abs=1e-12)
    # the row scales follow each row's RMS, on the grid the module states
    rms = np.sqrt(np.mean(x.reshape(48, -1) ** 2, axis=1))
    stored = encoded.values.scales[encoded.values.scale_codes]
    assert np.all(np.abs(np.log2(stored / rms)) <= 0.5 / grouped.SCALE_STEPS_PER_OCTAVE + 1e-6)


def test_every_row_is_held_to_about_the_same_relative_error():
    w = channels(64, 64, 2.0, seed=1)
    per_tensor = dcformat.load(dcformat.save({"w": compress_tensor(w, TensorSettings(
        quantizer="ecq", code_bits=12, min_sqnr_db=30.0), "w")[0]}))["w"]
    per_row = dcformat.load(dcformat.save({"w": compress_tensor(w, ROWS, "w")[0]}))["w"]

    def row_sqnr(r):
        return 10 * np.log10(np.sum(w.astype(np.float64) ** 2, axis=1) / np.sum((w - r).astype(np.float64) ** 2, axis=1))

    # one codebook for all rows quantizes the narrow rows to a few levels; row scales do not
    assert row_sqnr(per_row).min() > row_sqnr(per_tensor).min() + 10
    assert np.ptp(row_sqnr(per_row)) < 6


def test_tensors_without_rows_keep_one_codebook():
    rng = np.random.default_rng(2)
    for shape in [(4096,), (1, 4096), (1024, 4)]:  # no rows, one row, rows shorter than MIN_ROW
        encoded, _ = compress_tensor(rng.standard_normal(shape).astype(np.float32), ROWS, "t")
        assert isinstance(encoded.values, dcformat.CodebookValues), shape


def test_a_budget_is_met_with_row_scales_counted():
    tensors = {f"conv{i}.weight": channels(64, 144, 1.0, seed=i).reshape(64, 16, 3, 3) for i in range(3)}
    params = sum(t.size for t in tensors.values())
    for bits in (3.0, 5.0):
        settings = CompressionSettings(default=TensorSettings(quantizer="ecq", code_bits=12, groups="rows"),
                                       bits_per_param=bits)
        encoded, _ = compress_tensors(tensors, settings)
        assert all(isinstance(e.values, dcformat.GroupedValues) for e in encoded.values())
        size = len(dcformat.save(encoded))
        assert abs(8 * size / params - bits) <= 0.02 * bits + 0.02, (bits, 8 * size / params)
        # the planner's idea of each tensor's size is what the writer stores
        assert sum(stored_cost(n, e).total for n, e in encoded.items()) < size


def test_groups_is_checked():
    with pytest.raises(InvalidSettings):
        TensorSettings(groups="columns")
    assert TensorSettings.from_dict(ROWS.to_dict()) == ROWS


def test_the_cli_takes_groups_rows(tmp_path):
    from safetensors.numpy import save_file

    src = tmp_path / "m.safetensors"
    save_file({"conv.weight": channels(64, 144, 1.0).reshape(64, 16, 3, 3), "fc.weight": channels(32, 256, 0.5)},
              str(src))
    out = tmp_path / "m.dcf"
    assert cli_main(["compress", str(src), "-o", str(out), "--bits-per-param", "4", "--groups", "rows", "-q"]) == 0
    header = parse_header(out.read_bytes())
    assert [r.value_kind for r in header.tensors] == [C.ValueKind.GROUPED] * 2
    assert cli_main(["compress", str(src), "-o", str(tmp_path / "x.dcf"), "--preset", "lossless",
                     "--groups", "rows", "-q"]) == 2  # lossless and a lossy option contradict
    assert cli_main(["compress", str(src), "-o", str(tmp_path / "y.dcf"), "--groups", "rows", "-q"]) == 2  # no ecq
    assert not (tmp_path / "x.dcf").exists() and not (tmp_path / "y.dcf").exists()
    settings = json.loads(CompressionSettings.preset("default").to_json())
    assert settings["default"]["groups"] == "tensor"
