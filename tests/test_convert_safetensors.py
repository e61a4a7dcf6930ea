"""safetensors -> .dcf -> safetensors on real checkpoints: lossless is bit-exact, paper decodes as built."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import dcformat
from dcformat.compress import CompressionSettings, compress_tensors, reconstruct
from dcformat.convert import read_checkpoint, write_checkpoint
from dcformat.encodings.model import EncodedTensor
from dcformat.errors import ConversionError

from .common import assert_bit_equal
from .real_checkpoints import raw_safetensors, real_checkpoint

REAL = ["fracast.safetensors", "fracast-int8.safetensors", "silero-vad.safetensors"]


def to_dcf(src, dst, preset: str):
    """What ``dcformat compress`` does: read, compress, save with the source's metadata."""
    checkpoint = read_checkpoint(src)
    encoded, reports = compress_tensors(checkpoint.tensors, CompressionSettings.preset(preset))
    dcformat.save_file(encoded, dst, checkpoint.metadata)
    return checkpoint, encoded, reports


@pytest.mark.parametrize("name", REAL)
def test_lossless_round_trip_is_bit_exact(name, tmp_path):
    src = real_checkpoint(name)
    dcf, back = tmp_path / "model.dcf", tmp_path / "back.safetensors"
    _, encoded, reports = to_dcf(src, dcf, "lossless")
    assert all(r.kind == "exact" for r in reports)
    checkpoint = read_checkpoint(dcf)
    write_checkpoint(checkpoint.tensors, back, checkpoint.metadata)

    meta_in, tensors_in = raw_safetensors(src)
    meta_out, tensors_out = raw_safetensors(back)
    assert meta_out == meta_in
    # Header order carries no meaning in safetensors (its writer sorts); the set of names must match.
    assert sorted(tensors_out) == sorted(tensors_in)
    for tensor, (dtype, shape, data) in tensors_in.items():
        assert tensors_out[tensor][0] == dtype, tensor
        assert tensors_out[tensor][1] == shape, tensor
        assert tensors_out[tensor][2] == data, f"{tensor}: bytes differ"


def test_real_files_are_what_the_fixture_promises():
    meta, tensors = raw_safetensors(real_checkpoint("fracast.safetensors"))
    assert meta["model_name"] == "fracast-0" and len(tensors) == 47
    meta, tensors = raw_safetensors(real_checkpoint("fracast-int8.safetensors"))
    assert {t[0] for t in tensors.values()} == {"F32", "I8"}
    meta, tensors = raw_safetensors(real_checkpoint("silero-vad.safetensors"))
    assert meta == {} and any(len(t[1]) == 3 for t in tensors.values())


@pytest.mark.parametrize("name", ["fracast.safetensors", "silero-vad.safetensors"])
def test_paper_preset_decodes_to_the_pipelines_reconstruction(name, tmp_path):
    src, dcf = real_checkpoint(name), tmp_path / "model.dcf"
    checkpoint, encoded, reports = to_dcf(src, dcf, "paper")
    compressed = [r.name for r in reports if r.kind != "exact"]
    assert compressed, "the paper preset should compress some tensor of a real network"

    decoded = dcformat.load_file(dcf)
    assert list(decoded) == list(checkpoint.tensors)
    for tensor, original in checkpoint.tensors.items():
        if isinstance(encoded[tensor], EncodedTensor):
            assert_bit_equal(decoded[tensor], reconstruct(encoded[tensor]), tensor)
            assert decoded[tensor].dtype == original.dtype and decoded[tensor].shape == original.shape
        else:
            assert_bit_equal(decoded[tensor], original, tensor)
    assert dcformat.load_metadata(dcf) == checkpoint.metadata

    with dcformat.safe_open(dcf) as f:  # lazy access agrees with the full load
        for tensor in compressed:
            assert_bit_equal(f.get_tensor(tensor), decoded[tensor], tensor)


def test_paper_preset_keeps_int8_tensors_exact(tmp_path):
    src, dcf = real_checkpoint("fracast-int8.safetensors"), tmp_path / "int8.dcf"
    checkpoint, encoded, reports = to_dcf(src, dcf, "paper")
    reasons = {r.name: r.reason for r in reports}
    int8 = [t for t, a in checkpoint.tensors.items() if a.dtype == np.int8]
    assert int8 and all(reasons[t] == "not floating" for t in int8)
    decoded = dcformat.load_file(dcf)
    for tensor, original in checkpoint.tensors.items():
        if not isinstance(encoded[tensor], EncodedTensor):
            assert_bit_equal(decoded[tensor], original, tensor)


def test_paper_preset_shrinks_and_keeps_the_weights_close(tmp_path):
    src, dcf = real_checkpoint("silero-vad.safetensors"), tmp_path / "vad.dcf"
    checkpoint, _, reports = to_dcf(src, dcf, "paper")
    assert dcf.stat().st_size < src.stat().st_size / 4
    decoded = dcformat.load_file(dcf)
    for report in reports:
        if report.kind == "exact":
            continue
        w, r = checkpoint.tensors[report.name], decoded[report.name]
        kept = r != 0
        assert 0 < kept.mean() <= 0.45, report.name  # conv keeps 40 %, fc 10 % (zeros not stored)
        # Shared weights sit near the weights they replace (5-8 bit codebooks).
        spread = float(np.abs(w).max())
        assert float(np.abs(w[kept] - r[kept]).max()) < 0.1 * spread, report.name
        assert np.isclose(report.rel_rms_error, np.linalg.norm(w - r) / np.linalg.norm(w), rtol=1e-4)


def test_bf16_and_f16_safetensors_round_trip(tmp_path):
    from safetensors.numpy import save_file

    rng = np.random.default_rng(3)
    bits = rng.integers(0, 1 << 16, 96, dtype=np.uint16)
    bits[:4] = [0x7FC1, 0xFF81, 0x8000, 0x0001]  # NaN payloads, -0.0, a denormal
    tensors = {"bf16": bits.view(ml_dtypes.bfloat16).reshape(8, 12), "f16": bits.view(np.float16),
               "i64": rng.integers(-9, 9, (3, 3)), "u8": rng.integers(0, 255, 5, dtype=np.uint8),
               "bool": np.array([True, False, True]), "empty": np.zeros((0, 4), np.float32)}
    src, dcf, back = tmp_path / "a.safetensors", tmp_path / "a.dcf", tmp_path / "b.safetensors"
    save_file(tensors, src, metadata={"format": "np", "note": "ünïcode ✓"})
    to_dcf(src, dcf, "lossless")
    checkpoint = read_checkpoint(dcf)
    write_checkpoint(checkpoint.tensors, back, checkpoint.metadata)
    assert raw_safetensors(back) == raw_safetensors(src)


def test_zero_dim_tensor_keeps_its_shape(tmp_path):
    from safetensors.numpy import save_file

    src, dcf, back = tmp_path / "a.safetensors", tmp_path / "a.dcf", tmp_path / "b.safetensors"
    save_file({"step": np.array(7, np.int64), "scale": np.array(0.5, np.float32)}, src)
    to_dcf(src, dcf, "lossless")
    assert dcformat.load_file(dcf)["scale"].shape == ()
    write_checkpoint(read_checkpoint(dcf).tensors, back)
    assert raw_safetensors(back) == raw_safetensors(src)


def test_default_preset_compresses_bf16(tmp_path):
    from safetensors.numpy import save_file

    w = np.random.default_rng(4).standard_normal((64, 128)).astype(ml_dtypes.bfloat16)
    src, dcf = tmp_path / "w.safetensors", tmp_path / "w.dcf"
    save_file({"w": w}, src)
    _, encoded, reports = to_dcf(src, dcf, "default")
    assert reports[0].kind == "codebook"
    decoded = dcformat.load_file(dcf)["w"]
    assert decoded.dtype == w.dtype
    assert_bit_equal(decoded, reconstruct(encoded["w"]))
    assert len(np.unique(decoded)) <= 256


def test_safetensors_float8_is_read(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    src = tmp_path / "f8.safetensors"
    x = torch.linspace(-4, 4, 12).reshape(3, 4)
    save_file({"a": x.to(torch.float8_e4m3fn), "b": x.to(torch.float8_e5m2)}, str(src))
    tensors = read_checkpoint(src).tensors
    assert tensors["a"].dtype == np.dtype(ml_dtypes.float8_e4m3fn) and tensors["a"].shape == (3, 4)
    assert tensors["b"].dtype == np.dtype(ml_dtypes.float8_e5m2)
    for name, dtype in (("a", torch.float8_e4m3fn), ("b", torch.float8_e5m2)):
        assert tensors[name].tobytes() == x.to(dtype).view(torch.uint8).numpy().tobytes()


def test_a_file_that_shrinks_under_the_source_is_a_typed_error(tmp_path):
    from dcformat.convert.safetensors_io import SafetensorsSource, write_safetensors
    from dcformat.errors import TruncatedError

    src = tmp_path / "m.safetensors"
    write_safetensors({"a": np.arange(10, dtype=np.float32), "b": np.ones(1000, np.float32)}, src)
    source = SafetensorsSource(src)
    size = src.stat().st_size
    with open(src, "r+b") as f:
        f.truncate(size - 100)  # "a" is stored first (same width, by name): "b"'s end goes
    assert source["a"].tolist() == list(range(10))
    with pytest.raises(TruncatedError, match="tensor 'b'"):  # FileChanged, too, when it shrinks mid-read
        source["b"]


def test_not_a_safetensors_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\xff" * 64)
    with pytest.raises(ConversionError, match="bad.safetensors"):
        read_checkpoint(bad)


def test_writer_refuses_to_overwrite(tmp_path):
    out = tmp_path / "o.safetensors"
    out.write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        write_checkpoint({"x": np.zeros(2, np.float32)}, out)
    assert out.read_bytes() == b"keep"
    write_checkpoint({"x": np.zeros(2, np.float32)}, out, overwrite=True)
    assert raw_safetensors(out)[1]["x"] == ("F32", [2], bytes(8))


WIDTH = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "F16": 2, "BF16": 2, "U8": 1, "BOOL": 1}


def _starts(path) -> dict[str, tuple[int, int]]:
    """name -> (where its bytes start in the file, its dtype's width)."""
    import json
    import struct

    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    return {name: (8 + n + h["data_offsets"][0], WIDTH[h["dtype"]]) for name, h in header.items()}


def test_writer_stores_what_safetensors_stores_aligned(tmp_path):
    from safetensors.numpy import save_file

    from dcformat.convert.safetensors_io import write_safetensors

    rng = np.random.default_rng(7)
    tensors = {"b": np.array([True, False, True]), "u8": rng.integers(0, 255, 5, dtype=np.uint8),
               "f64": rng.standard_normal(3), "f32": rng.standard_normal((2, 3)).astype(np.float32),
               "i32": np.arange(5, dtype=np.int32), "f16": rng.standard_normal(7).astype(np.float16),
               "bf16": rng.standard_normal(3).astype(ml_dtypes.bfloat16), "scalar": np.array(3, np.int64),
               "empty": np.zeros((0, 4), np.float32)}
    ours, theirs = tmp_path / "ours.safetensors", tmp_path / "theirs.safetensors"
    big_endian = dict(tensors, f32=tensors["f32"].astype(">f4"), f64=np.asfortranarray(tensors["f64"]))
    write_safetensors(big_endian, ours, {"k": "v ✓"})
    save_file(tensors, theirs, metadata={"k": "v ✓"})
    assert raw_safetensors(ours) == raw_safetensors(theirs)
    for name, (start, width) in _starts(ours).items():  # widest first: every tensor aligned
        assert start % width == 0, name


def test_decompress_holds_one_tensor_at_a_time(tmp_path):
    import tracemalloc

    from dcformat.cli import main

    rng = np.random.default_rng(8)
    tensors = {f"w{i}": rng.standard_normal(1 << 18).astype(np.float32) for i in range(8)}  # 1 MiB each
    dcf, out = tmp_path / "m.dcf", tmp_path / "m.safetensors"
    dcformat.save_file(compress_tensors(tensors, CompressionSettings.preset("default"))[0], dcf, {"k": "v"})
    tracemalloc.start()
    try:
        assert main(["decompress", str(dcf), "-o", str(out)]) == 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2.5 * (1 << 20)  # the model is 8 MiB
    metadata, written = raw_safetensors(out)
    decoded = dcformat.load_file(dcf)
    assert metadata == {"k": "v"} and sorted(written) == sorted(decoded)
    for name, (dtype, shape, data) in written.items():
        assert (dtype, tuple(shape), data) == ("F32", decoded[name].shape, decoded[name].tobytes())


def test_writer_refuses_a_value_unlike_its_header_entry(tmp_path):
    from dcformat.convert.safetensors_io import write_safetensors
    from dcformat.errors import UsageError

    out = tmp_path / "o.safetensors"
    with pytest.raises(UsageError, match="header entry"):
        write_safetensors({"x": np.zeros(3, np.float32)}, out, specs={"x": (np.dtype(np.float32), (4,))})
    assert not out.exists()
