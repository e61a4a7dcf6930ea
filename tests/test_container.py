"""The container writer and reader: exact round trips, every encoding, safe writes."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import dcformat
from dcformat import BankValues, CodebookValues, Dense, EncodedTensor, RawValues, Sparse
from dcformat.container.writer import ContainerWriter
from dcformat.format.constants import DECODE_RECORD_CHARGE
from dcformat.errors import (
    ChecksumMismatch,
    DecodeLimitExceeded,
    InvalidSettings,
    OutputExists,
    TensorNotFound,
    UnsupportedDType,
    UsageError,
)
from dcformat.streams import HuffmanCodec, PackedCodec

from .common import assert_bit_equal, assert_dicts_bit_equal

RNG = np.random.default_rng(0)

DTYPES = [np.bool_, np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
          np.float16, ml_dtypes.bfloat16, np.float32, np.float64, ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2]
SHAPES = [(), (0,), (3, 0, 2), (1,), (7,), (5, 3), (2, 3, 4)]


def random_array(dtype, shape) -> np.ndarray:
    n = int(np.prod(shape, dtype=np.int64))
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return (RNG.integers(0, 2, n) == 1).reshape(shape)
    bits = RNG.integers(0, 256, n * dtype.itemsize, dtype=np.uint8)
    return bits.view(dtype).reshape(shape)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_raw_round_trip_is_bit_exact(dtype, shape):
    tensors = {"t": random_array(dtype, shape)}  # random bits: NaN payloads, -0.0, denormals
    assert_dicts_bit_equal(dcformat.load(dcformat.save(tensors)), tensors)


def test_big_endian_and_fortran_order_inputs_are_stored_as_values():
    a = np.arange(12, dtype=">f4").reshape(3, 4)
    f = np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4))
    out = dcformat.load(dcformat.save({"a": a, "f": f}))
    assert out["a"].dtype == np.dtype("<f4") and np.array_equal(out["a"], a)
    assert np.array_equal(out["f"], f)


def test_metadata_round_trips(tmp_path):
    path = tmp_path / "m.dcf"
    dcformat.save_file({"x": np.zeros(2, np.float32)}, path, {"format": "pt", "ünï": "✓"})
    with dcformat.safe_open(path) as f:
        assert f.metadata() == {"format": "pt", "ünï": "✓"}


def codebook_tensor(codec=None):
    codebook = np.array([0.0, -1.5, 0.25, 3.0], np.float32)
    codes = RNG.integers(0, 4, 60).astype(np.uint16)
    values = CodebookValues(codebook, codes, codec or HuffmanCodec())
    return EncodedTensor("F32", (6, 10), Dense(), values), codebook[codes].reshape(6, 10)


def sparse_tensor(gap_bits=3, codec=None):
    n = 500
    positions = np.sort(RNG.choice(n, 40, replace=False))
    gaps, values, previous = [], [], -1
    for p in positions:  # fillers bridge gaps wider than 2**gap_bits - 1
        gap = p - previous - 1
        while gap > (1 << gap_bits) - 1:
            gaps.append((1 << gap_bits) - 1)
            values.append(0)
            gap -= (1 << gap_bits)
        gaps.append(gap)
        values.append(RNG.integers(1, 8))
        previous = p
    codebook = np.linspace(0, 7, 8).astype(np.float16)
    codes = np.array(values, np.uint16)
    expected = np.zeros(n, np.float16)
    pos = np.cumsum(np.array(gaps) + 1) - 1
    expected[pos] = codebook[codes]
    enc = EncodedTensor("F16", (20, 25), Sparse(gap_bits, np.array(gaps, np.uint16), codec or HuffmanCodec()),
                        CodebookValues(codebook, codes, codec or HuffmanCodec()))
    return enc, expected.reshape(20, 25)


@pytest.mark.parametrize("codec", [HuffmanCodec(), PackedCodec(), HuffmanCodec(chunk_symbols=7)], ids=repr)
def test_codebook_and_sparse_decode_to_their_reconstruction(codec):
    dense, dense_expected = codebook_tensor(codec)
    sparse, sparse_expected = sparse_tensor(codec=codec)
    out = dcformat.load(dcformat.save({"dense": dense, "sparse": sparse}))
    assert_bit_equal(out["dense"], dense_expected)
    assert_bit_equal(out["sparse"], sparse_expected)


def test_sparse_raw_values_and_empty_sparse():
    gaps = np.array([0, 2, 5], np.uint16)
    values = np.array([1, 2, 3], np.int64)
    enc = EncodedTensor("I64", (12,), Sparse(3, gaps), RawValues(values))
    empty = EncodedTensor("F32", (4, 4), Sparse(4, np.zeros(0, np.uint16)), RawValues(np.zeros(0, np.float32)))
    out = dcformat.load(dcformat.save({"s": enc, "e": empty}))
    assert out["s"].tolist() == [1, 0, 0, 2, 0, 0, 0, 0, 0, 3, 0, 0]
    assert_bit_equal(out["e"], np.zeros((4, 4), np.float32))


def test_bank_selectors_rebuild_every_kernel_pair():
    bank = RNG.standard_normal((5, 3, 3)).astype(np.float32)
    selectors = RNG.integers(0, 5, 8 * 4).astype(np.uint16)
    weight = EncodedTensor("F32", (8, 4, 3, 3), Dense(), BankValues("gw", selectors))
    gaps = np.array([1, 0, 3], np.uint16)
    sparse = EncodedTensor("F32", (2, 4, 3, 3), Sparse(2, gaps), BankValues("gw", np.array([4, 0, 2], np.uint16)))
    out = dcformat.load(dcformat.save({"w": weight, "s": sparse}, banks={"gw": bank}))
    assert_bit_equal(out["w"], bank[selectors].reshape(8, 4, 3, 3))
    expected = np.zeros((8, 3, 3), np.float32)
    expected[[1, 2, 6]] = bank[[4, 0, 2]]  # positions cumsum(gap + 1) - 1
    assert_bit_equal(out["s"], expected.reshape(2, 4, 3, 3))


def test_codebook_quantized_bank():
    codebook = np.array([-1, 0, 1], np.float32)
    bank_codes = RNG.integers(0, 3, 4 * 9).astype(np.uint16)
    bank = EncodedTensor("F32", (4, 3, 3), Dense(), CodebookValues(codebook, bank_codes))
    weight = EncodedTensor("F32", (2, 2, 3, 3), Dense(), BankValues("b", np.array([3, 1, 0, 3], np.uint16)))
    out = dcformat.load(dcformat.save({"w": weight}, banks={"b": bank}))
    kernels = codebook[bank_codes].reshape(4, 3, 3)
    assert_bit_equal(out["w"], kernels[[3, 1, 0, 3]].reshape(2, 2, 3, 3))


def test_saving_is_deterministic():
    enc, _ = sparse_tensor()
    tensors = {"a": np.arange(10, dtype=np.float32), "s": enc}
    assert dcformat.save(tensors, {"k": "v"}) == dcformat.save(tensors, {"k": "v"})


def test_payloads_are_aligned_to_64_bytes():
    from dcformat.container.reader import iter_segments, parse_header

    enc, _ = codebook_tensor()
    data = dcformat.save({"a": np.ones(3, np.float32), "c": enc})
    header = parse_header(data)
    assert header.alignment == 64 and header.data_offset % 64 == 0
    assert all(ref.offset % 64 == 0 for _, _, ref in iter_segments(header))


def test_safe_open_decodes_only_the_tensor_asked_for(tmp_path):
    path = tmp_path / "two.dcf"
    a, b = np.arange(100, dtype=np.float32), np.arange(100, dtype=np.int16)
    dcformat.save_file({"a": a, "b": b}, path)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # inside b's payload, the last segment
    path.write_bytes(bytes(data))
    with dcformat.safe_open(path) as f:
        assert f.keys() == ["a", "b"]
        assert_bit_equal(f.get_tensor("a"), a)
        with pytest.raises(ChecksumMismatch):
            f.get_tensor("b")
        with pytest.raises(TensorNotFound):
            f.get_tensor("c")
    with dcformat.safe_open(path, verify=False, mmap=False) as f:
        assert not np.array_equal(f.get_tensor("b"), b)  # the switch really skips checksums


def test_get_tensor_writes_into_out(tmp_path):
    path = tmp_path / "o.dcf"
    enc, expected = codebook_tensor()
    dcformat.save_file({"c": enc}, path)
    out = np.empty((6, 10), np.float32)
    with dcformat.safe_open(path) as f:
        assert f.get_tensor("c", out=out) is out
        with pytest.raises(UsageError):
            f.get_tensor("c", out=np.empty((6, 10), np.float64))
    assert_bit_equal(out, expected)


def test_save_file_never_overwrites_by_default(tmp_path):
    path = tmp_path / "x.dcf"
    path.write_bytes(b"precious")
    with pytest.raises(OutputExists):
        dcformat.save_file({"x": np.zeros(1, np.float32)}, path)
    assert path.read_bytes() == b"precious"
    dcformat.save_file({"x": np.zeros(1, np.float32)}, path, overwrite=True)
    assert list(dcformat.load_file(path)) == ["x"]


class Boom(KeyboardInterrupt):
    pass


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    import dcformat.container.writer as writer_module

    path = tmp_path / "x.dcf"

    def explode(*args, **kwargs):
        raise Boom()

    monkeypatch.setattr(writer_module, "_record_bytes", explode)
    with pytest.raises(Boom):
        dcformat.save_file({"x": np.zeros(1, np.float32)}, path)
    assert list(tmp_path.iterdir()) == []


def test_decode_budget_is_enforced_before_allocation():
    huge = EncodedTensor("F32", (1 << 20, 1 << 10), Sparse(16, np.zeros(0, np.uint16)),
                         RawValues(np.zeros(0, np.float32)))
    from dcformat.container.writer import ContainerWriter

    writer = ContainerWriter(decode_budget=(4 << 30) + DECODE_RECORD_CHARGE)  # for readers that allow it
    writer.add_tensor("huge", huge)
    data = writer.to_bytes()
    assert len(data) < 1024
    with pytest.raises(DecodeLimitExceeded):
        dcformat.load(data)  # 4 GiB asked by a file of a few hundred bytes
    budget = 4000 + DECODE_RECORD_CHARGE  # a record charges its bytes and 128 more
    small = dcformat.load(dcformat.save({"x": np.zeros(1000, np.float32)}), decode_budget=budget)
    assert small["x"].size == 1000
    with pytest.raises(DecodeLimitExceeded):
        dcformat.load(dcformat.save({"x": np.zeros(1001, np.float32)}), decode_budget=budget)


def test_arrays_the_caller_gives_are_not_charged_to_the_budget():
    from dcformat.container.file import ContainerFile

    tensors = {"a": np.arange(1000, dtype=np.float32), "b": np.arange(10, dtype=np.int16)}
    data = dcformat.save(tensors)
    budget = 20 + DECODE_RECORD_CHARGE  # b alone
    with pytest.raises(DecodeLimitExceeded):
        ContainerFile(data, decode_budget=budget).decode_all()
    into = np.zeros(1000, np.float32)
    got = ContainerFile(data, decode_budget=budget).decode_all(out={"a": into})
    assert got["a"] is into and np.array_equal(into, tensors["a"]) and np.array_equal(got["b"], tensors["b"])
    with pytest.raises(UsageError, match="'a'"):
        ContainerFile(data).decode_all(out={"a": np.zeros(999, np.float32)})


def test_writer_is_a_state_machine():
    writer = ContainerWriter()
    writer.add_tensor("t", np.zeros(1, np.float32))
    with pytest.raises(UsageError, match="adding banks"):
        writer.add_bank("b", np.zeros((1, 3, 3), np.float32))
    writer.to_bytes()
    with pytest.raises(UsageError, match="finished"):
        writer.add_tensor("u", np.zeros(1, np.float32))


@pytest.mark.parametrize("bad", [
    lambda: EncodedTensor("F32", (4,), Dense(), CodebookValues(np.zeros(2, np.float32), np.array([0, 1, 2, 0]))),
    lambda: EncodedTensor("F32", (4,), Dense(), CodebookValues(np.zeros(2, np.float64), np.array([0, 1, 1, 0]))),
    lambda: EncodedTensor("F32", (4,), Dense(), RawValues(np.zeros(3, np.float32))),
    lambda: EncodedTensor("F32", (4,), Sparse(2, np.array([3, 3], np.uint16)), RawValues(np.zeros(2, np.float32))),
    lambda: EncodedTensor("F32", (4,), Sparse(0, np.array([0], np.uint16)), RawValues(np.zeros(1, np.float32))),
    lambda: EncodedTensor("F32", (2, 3, 3), Dense(), BankValues("missing", np.zeros(2, np.uint16))),
    lambda: EncodedTensor("X9", (1,), Dense(), RawValues(np.zeros(1, np.float32))),
])
def test_wrong_arguments_raise_usage_errors(bad):
    with pytest.raises(UsageError):
        dcformat.save({"t": bad()})


def test_unsupported_numpy_dtype():
    with pytest.raises(UnsupportedDType):
        dcformat.save({"c": np.zeros(2, np.complex64)})
    with pytest.raises(InvalidSettings):
        dcformat.save({1: np.zeros(2, np.float32)})


def test_every_method_after_close_raises_file_closed(tmp_path):
    from dcformat.errors import FileClosed

    path = tmp_path / "c.dcf"
    dcformat.save_file({"x": np.arange(3, dtype=np.float32)}, path)
    f = dcformat.safe_open(path)
    f.close()
    f.close()  # closing twice is harmless
    calls = {"get_tensor": lambda: f.get_tensor("x"), "get_tensors": f.get_tensors, "keys": f.keys,
             "metadata": f.metadata, "records": f.records, "bank_records": f.bank_records,
             "version": lambda: f.version, "file_size": lambda: f.file_size,
             "get_tensor out=": lambda: f.get_tensor("x", out=np.empty(3, np.float32))}
    for name, call in calls.items():
        with pytest.raises(FileClosed, match="closed") as caught:
            call()
        assert isinstance(caught.value, UsageError), name
    with dcformat.safe_open(path) as g:
        pass
    with pytest.raises(FileClosed):
        g.get_tensor("x")


def test_ml_dtypes_is_imported_only_for_its_dtypes(tmp_path):
    """``import dcformat`` and float32 files leave ml_dtypes unimported; a BF16 array brings it."""
    import subprocess
    import sys

    code = f"""
import sys, numpy as np, dcformat
from dcformat.numpy import load_file, save_file
from dcformat.format.dtypes import dtype_of, numpy_dtype
save_file({{"w": np.linspace(-1, 1, 8192, dtype=np.float32).reshape(64, 128)}}, {str(tmp_path / "f.dcf")!r})
assert load_file({str(tmp_path / "f.dcf")!r})["w"].dtype == np.float32
assert "ml_dtypes" not in sys.modules, "imported for float32"
assert str(numpy_dtype("BF16")) == "bfloat16" and "ml_dtypes" in sys.modules
import ml_dtypes
assert dtype_of(np.zeros(2, ml_dtypes.float8_e5m2)).name == "F8_E5M2"
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_numba_is_imported_when_a_kernel_first_runs(tmp_path):
    """``import dcformat``, reading headers and raw records need no Numba; a Huffman record
    brings it, and every kernel module then holds dispatchers, not the lazy wrappers."""
    import subprocess
    import sys

    code = f"""
import sys, numpy as np, dcformat
from dcformat.numpy import load_file, save_file
raw, coded = {str(tmp_path / "raw.dcf")!r}, {str(tmp_path / "coded.dcf")!r}
# more records than the header scan kernel takes once Numba is in
save_file({{f"w{{i}}": np.arange(i, i + 64, dtype=np.float32) for i in range(400)}}, raw)
assert load_file(raw)["w399"][-1] == 462 and "numba" not in sys.modules, "imported for raw records"
with dcformat.safe_open(raw) as f:
    assert len(f.keys()) == 400 and "numba" not in sys.modules
from dcformat.compress import CompressionSettings, compress_tensors
w = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
out, _ = compress_tensors({{"w": w}}, CompressionSettings.preset("default"))
assert "numba" in sys.modules
save_file(out, coded)
assert np.abs(load_file(coded)["w"] - w).max() < 0.1
from dcformat.kernels import config, huffman
assert not any(isinstance(v, config.Kernel) for v in vars(huffman).values())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
