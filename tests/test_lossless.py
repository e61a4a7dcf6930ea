"""Exact tensors stored as float planes where that is smaller (encodings.lossless): the one
choice behind ``save(..., compress="lossless")``, ``--preset lossless``, the tensors a lossy
preset passes through, and the budget planner's view of them."""

import struct

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import load_file as st_load

import dcformat
from dcformat.cli import main
from dcformat.container.reader import parse_header
from dcformat.compress import CompressionSettings, TensorSettings, compress_tensors
from dcformat.encodings.lossless import MIN_PLANE_ELEMENTS, exact_tensor
from dcformat.encodings.model import EncodedTensor, PlaneValues
from dcformat.errors import InvalidSettings, UsageError
from dcformat.format import constants as C

from .common import assert_bit_equal, assert_dicts_bit_equal

LENET = "examples/lenet300/lenet-300-100.safetensors"


def _version(data: bytes) -> tuple[int, int]:
    _, _, minor, required, _, _ = struct.unpack_from(C.PREAMBLE_FORMAT[:-1], data)
    return minor, required


def _weights(dtype, shape=(256, 64), seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * 0.05).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, ml_dtypes.bfloat16, np.float64,
                                   ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2])
def test_trained_like_weights_become_planes_and_come_back_bit_for_bit(dtype):
    w = _weights(dtype)
    stored = exact_tensor("w", w)
    assert isinstance(stored, EncodedTensor) and isinstance(stored.values, PlaneValues)
    data = dcformat.save({"w": w}, compress="lossless")
    assert len(data) < len(dcformat.save({"w": w}))
    assert _version(data) == (2, C.FEATURE_PLANES)
    assert_bit_equal(dcformat.load(data)["w"], w)


def test_every_bit_pattern_survives():
    # every 16-bit pattern as F16 and BF16: NaN payloads, both zeros, subnormals, infinities
    patterns = np.arange(1 << 16, dtype=np.uint16)
    tensors = {"f16": patterns.view(np.float16), "bf16": patterns.view(ml_dtypes.bfloat16)}
    rng = np.random.default_rng(1)
    f32 = rng.integers(0, 1 << 32, 1 << 16, dtype=np.uint32)
    f32[:8] = [0x7FC00001, 0xFFFFFFFF, 0x80000000, 0, 0x00000001, 0x7F800000, 0xFF800000, 0x7F7FFFFF]
    tensors["f32"] = f32.view(np.float32)
    data = dcformat.save(tensors, compress="lossless")
    assert_dicts_bit_equal(dcformat.load(data), tensors)


def test_what_planes_cannot_shrink_stays_raw():
    rng = np.random.default_rng(2)
    noise = rng.integers(0, 1 << 32, 4096, dtype=np.uint32).view(np.float32)  # every bit random
    small = _weights(np.float32, (MIN_PLANE_ELEMENTS - 1,))
    ints = np.arange(4096, dtype=np.int32)
    for array in (noise, small, ints):
        assert exact_tensor("t", array) is array
    assert isinstance(exact_tensor("w", _weights(np.float32), "raw"), np.ndarray)
    data = dcformat.save({"noise": noise, "small": small, "ints": ints}, compress="lossless")
    assert _version(data) == (0, 0)  # nothing needed PLANES: a v1.0 file
    with pytest.raises(ValueError):
        exact_tensor("w", noise, "zip")


def test_save_file_compresses_and_refuses_an_unknown_mode(tmp_path):
    w = _weights(ml_dtypes.bfloat16)
    dcformat.save_file({"w": w}, tmp_path / "w.dcf", compress="lossless")
    assert_bit_equal(dcformat.load_file(tmp_path / "w.dcf")["w"], w)
    assert (tmp_path / "w.dcf").stat().st_size < w.nbytes
    with pytest.raises(UsageError, match="compress"):
        dcformat.save({"w": w}, compress="zstd")
    with pytest.raises(UsageError, match="compress"):
        dcformat.save_file({"w": w}, tmp_path / "x.dcf", compress=True)
    assert not (tmp_path / "x.dcf").exists()


def test_a_lossy_preset_passes_its_exact_tensors_through_as_planes():
    sd = {"fc.weight": _weights(np.float32, (128, 256)), "fc.bias": _weights(np.float32, (4096,), seed=3)}
    out, reports = compress_tensors(sd, CompressionSettings.preset("paper"))
    assert isinstance(out["fc.bias"].values, PlaneValues) and reports[1].kind == "exact"
    assert_bit_equal(dcformat.load(dcformat.save(out))["fc.bias"], sd["fc.bias"])
    raw = CompressionSettings.from_dict(dict(CompressionSettings.preset("paper").to_dict(), exact="raw"))
    assert compress_tensors(sd, raw)[0]["fc.bias"] is sd["fc.bias"]
    with pytest.raises(InvalidSettings, match="exact"):
        CompressionSettings(exact="zip")


def test_the_budget_counts_exact_tensors_as_stored():
    # a third of the file is a tensor kept exact: the budget must count it at the size it is
    # stored (planes or raw), else the file would miss the budget by that difference
    sd = {"emb.weight": _weights(np.float32, (256, 256), seed=4),
          "kept.weight": _weights(np.float32, (128, 64), seed=5)}
    sizes = {}
    for exact in ("planes", "raw"):
        settings = CompressionSettings(default=TensorSettings(quantizer="ecq", code_bits=12), keep=("kept.*",),
                                       bits_per_param=8.0, exact=exact)
        out, _ = compress_tensors(sd, settings)
        data = dcformat.save(out)
        bits = 8 * len(data) / sum(v.size for v in sd.values())
        assert abs(bits - 8.0) <= max(0.01 * 8.0, 0.02), (exact, bits)
        sizes[exact] = parse_header(data).tensors[0].payload_bytes
    # the bytes planes save on the exact tensor go to the compressed one
    assert sizes["planes"] > sizes["raw"]


def test_cli_lossless_shrinks_real_weights_and_raw_keeps_v1_0(tmp_path, capsys):
    planes, raw = tmp_path / "planes.dcf", tmp_path / "raw.dcf"
    assert main(["compress", LENET, "-o", str(planes), "--preset", "lossless", "-q"]) == 0
    assert main(["compress", LENET, "-o", str(raw), "--preset", "lossless", "--exact", "raw", "-q"]) == 0
    capsys.readouterr()
    assert planes.stat().st_size < 0.9 * raw.stat().st_size
    assert _version(planes.read_bytes())[0] == 2 and _version(raw.read_bytes()) == (0, 0)
    dense = tmp_path / "back.safetensors"
    assert main(["decompress", str(planes), "-o", str(dense), "-q"]) == 0
    assert_dicts_bit_equal(st_load(str(dense)), st_load(LENET))
    with pytest.raises(SystemExit) as exit_:
        main(["compress", LENET, "-o", str(tmp_path / "x.dcf"), "--exact", "zip"])
    assert exit_.value.code == 2 and "--exact" in capsys.readouterr().err
