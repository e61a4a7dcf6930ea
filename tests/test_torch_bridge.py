"""The torch <-> numpy bridge: every dtype bit-exact, either direction, any layout."""

from __future__ import annotations

import warnings

import ml_dtypes
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import dcformat  # noqa: E402
import dcformat.torch as dct  # noqa: E402
from dcformat.errors import UnsupportedDType  # noqa: E402
from dcformat.torch import to_numpy, to_torch  # noqa: E402

from .common import assert_bit_equal  # noqa: E402

# (numpy dtype, torch dtype, unsigned carrier of the same width, for bit comparisons)
PAIRS = [
    (np.bool_, torch.bool, np.uint8),
    (np.uint8, torch.uint8, np.uint8),
    (np.int8, torch.int8, np.uint8),
    (np.int16, torch.int16, np.uint16),
    (np.uint16, torch.uint16, np.uint16),
    (np.int32, torch.int32, np.uint32),
    (np.uint32, torch.uint32, np.uint32),
    (np.int64, torch.int64, np.uint64),
    (np.uint64, torch.uint64, np.uint64),
    (np.float16, torch.float16, np.uint16),
    (ml_dtypes.bfloat16, torch.bfloat16, np.uint16),
    (np.float32, torch.float32, np.uint32),
    (np.float64, torch.float64, np.uint64),
    (ml_dtypes.float8_e4m3fn, torch.float8_e4m3fn, np.uint8),
    (ml_dtypes.float8_e5m2, torch.float8_e5m2, np.uint8),
]
IDS = [np.dtype(p[0]).name for p in PAIRS]
SHAPES = [(), (0,), (3, 0, 2), (1,), (7,), (5, 3), (2, 3, 4)]

TO_TORCH_SHAPES = SHAPES
RNG = np.random.default_rng(1)


def random_bits(np_dtype, shape) -> np.ndarray:
    """Every bit pattern is fair game: NaN payloads, -0.0, denormals, infinities."""
    dtype = np.dtype(np_dtype)
    n = int(np.prod(shape, dtype=np.int64))
    if dtype == np.bool_:
        return (RNG.integers(0, 2, n) == 1).reshape(shape)
    return RNG.integers(0, 256, n * dtype.itemsize, dtype=np.uint8).view(dtype).reshape(shape)


def torch_bits(tensor) -> np.ndarray:
    """The bits of a torch tensor as unsigned numpy integers, without going through to_numpy."""
    t = tensor.detach().contiguous().reshape(-1)
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    carrier = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()]
    raw = t.view(carrier).numpy()
    return raw.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[t.element_size()])


def assert_same_bits(tensor, array) -> None:
    assert tuple(tensor.shape) == array.shape, f"shape {tuple(tensor.shape)} != {array.shape}"
    expected = np.ascontiguousarray(array).reshape(-1)
    expected = expected.view(np.uint8) if expected.dtype == np.bool_ else expected.view(f"u{expected.itemsize}")
    assert np.array_equal(torch_bits(tensor), expected)


@pytest.mark.parametrize("shape", TO_TORCH_SHAPES, ids=str)
@pytest.mark.parametrize("np_dtype, pt_dtype, carrier", PAIRS, ids=IDS)
def test_to_torch_is_bit_exact(np_dtype, pt_dtype, carrier, shape):
    array = random_bits(np_dtype, shape)
    tensor = to_torch(array)
    assert tensor.dtype == pt_dtype
    assert_same_bits(tensor, array)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("np_dtype, pt_dtype, carrier", PAIRS, ids=IDS)
def test_to_numpy_is_bit_exact(np_dtype, pt_dtype, carrier, shape):
    array = random_bits(np_dtype, shape)
    tensor = torch.from_numpy(array.view(carrier).copy()).view(pt_dtype) if np_dtype is not np.bool_ \
        else torch.from_numpy(array.copy())
    back = to_numpy(tensor)
    assert back.dtype == np.dtype(np_dtype)
    assert_bit_equal(back, array)
    assert_same_bits(tensor, back)


@pytest.mark.parametrize("np_dtype, pt_dtype, carrier", PAIRS, ids=IDS)
def test_round_trip_through_torch_keeps_every_bit(np_dtype, pt_dtype, carrier):
    array = random_bits(np_dtype, (4, 5))
    assert_bit_equal(to_numpy(to_torch(array)), array)


def test_bf16_nan_payloads_and_signed_zero_survive():
    bits = np.array([0x7FC0, 0x7FC1, 0xFFC1, 0x7F81, 0xFF80, 0x7F80, 0x8000, 0x0000, 0x0001, 0x807F],
                    dtype=np.uint16)
    array = bits.view(ml_dtypes.bfloat16)
    tensor = to_torch(array)
    assert tensor.dtype == torch.bfloat16
    assert np.array_equal(torch_bits(tensor), bits)
    assert np.array_equal(to_numpy(tensor).view(np.uint16), bits)


@pytest.mark.parametrize("pt_dtype", [torch.float8_e4m3fn, torch.float8_e5m2], ids=str)
def test_float8_every_byte_survives(pt_dtype):
    bits = np.arange(256, dtype=np.uint8)
    tensor = torch.from_numpy(bits.copy()).view(pt_dtype)
    array = to_numpy(tensor)
    assert np.array_equal(array.view(np.uint8), bits)
    assert np.array_equal(torch_bits(to_torch(array)), bits)


@pytest.mark.parametrize("np_dtype, pt_dtype, carrier", PAIRS, ids=IDS)
def test_zero_dim_keeps_its_shape(np_dtype, pt_dtype, carrier):
    array = random_bits(np_dtype, ())
    tensor = to_torch(array)
    assert tensor.shape == torch.Size([])
    assert to_numpy(tensor).shape == ()


def test_non_contiguous_torch_tensors():
    base = torch.arange(60, dtype=torch.float32).reshape(3, 4, 5)
    cases = {
        "transposed": base.transpose(0, 2),
        "stepped": base[:, ::2, 1::2],
        "expanded": torch.arange(5, dtype=torch.int16).expand(3, 5),
        "permuted bf16": base.to(torch.bfloat16).permute(2, 0, 1),
        "negative-strided flip": torch.flip(base, dims=(1,))[:, :, :3],
        "channels_last": torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last),
        "offset view": base.reshape(-1)[7:19].reshape(3, 4),
    }
    for what, tensor in cases.items():
        array = to_numpy(tensor)
        assert array.flags.c_contiguous, what
        assert array.shape == tuple(tensor.shape), what
        assert np.array_equal(torch_bits(tensor.contiguous()), torch_bits(to_torch(array))), what


def test_non_contiguous_numpy_arrays():
    a = np.arange(24, dtype=np.float32).reshape(4, 6)
    for what, array in {"fortran": np.asfortranarray(a), "stepped": a[::2, 1::3], "transposed": a.T,
                        "negative strides": a[::-1, ::-2]}.items():
        tensor = to_torch(array)
        assert tuple(tensor.shape) == array.shape, what
        assert np.array_equal(tensor.numpy(), array), what


@pytest.mark.parametrize("dtype", [">f4", ">i8", ">f2", ">u2"])
def test_big_endian_numpy_arrays_keep_their_values(dtype):
    array = np.arange(6).astype(dtype).reshape(2, 3)
    assert np.array_equal(to_torch(array).numpy(), array)


@pytest.mark.parametrize("n", [1, 2], ids=["contiguous", "strided"])
def test_views_with_the_negative_bit(n):
    z = torch.complex(torch.tensor([1.0, -2.0][:n]), torch.tensor([3.0, 4.0][:n]))
    imag = z.conj().imag  # a float32 view with the negative bit set: a lazy -imag
    assert imag.is_neg()
    assert np.array_equal(to_numpy(imag), np.array([-3.0, -4.0][:n], np.float32))


def test_grad_and_sparse_tensors_are_stored_as_plain_values():
    w = torch.randn(3, 4, requires_grad=True)
    assert np.array_equal(to_numpy(w), w.detach().numpy())
    sparse = torch.sparse_coo_tensor([[0, 2]], [1.5, -2.0], (4,), check_invariants=True)
    assert np.array_equal(to_numpy(sparse), np.array([1.5, 0.0, -2.0, 0.0], np.float32))


@pytest.mark.parametrize("pt_dtype", [torch.complex64, torch.complex128, torch.float8_e4m3fnuz], ids=str)
def test_unsupported_torch_dtype_names_the_tensor(pt_dtype):
    tensor = torch.zeros(2, dtype=pt_dtype)
    with pytest.raises(UnsupportedDType, match="layer.weight") as info:
        to_numpy(tensor, "layer.weight")
    assert info.value.name == "layer.weight"


def test_to_torch_of_a_read_only_array_is_safe_to_write():
    array = np.arange(4, dtype=np.float32)
    array.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns (once per process) when it wraps such memory
        tensor = to_torch(array)
    tensor += 1  # must not reach the read-only array
    assert np.array_equal(array, np.arange(4, dtype=np.float32))


def test_torch_save_load_every_dtype(tmp_path):
    tensors = {IDS[i]: torch_tensor for i, torch_tensor in
               enumerate(to_torch(random_bits(p[0], (3, 2))) for p in PAIRS)}
    tensors["empty"] = torch.zeros(0, 4, dtype=torch.float8_e5m2)
    tensors["strided"] = torch.arange(20, dtype=torch.int32).reshape(4, 5).T
    path = tmp_path / "all.dcf"
    dct.save_file(tensors, path, {"k": "v"})
    back = dct.load_file(path)
    assert list(back) == list(tensors)
    for name, tensor in tensors.items():
        assert back[name].dtype == tensor.dtype, name
        assert back[name].shape == tensor.shape, name
        assert np.array_equal(torch_bits(back[name]), torch_bits(tensor)), name
    assert dcformat.load_metadata(path) == {"k": "v"}
    assert_bit_equal(dcformat.load(dct.save(tensors))["bfloat16"], to_numpy(tensors["bfloat16"]))


# --- decoding into torch tensors ------------------------------------------------------------


@pytest.mark.parametrize("np_dtype, pt_dtype, carrier", PAIRS, ids=IDS)
@pytest.mark.parametrize("shape", [(), (0, 3), (5, 3)], ids=str)
def test_get_tensor_decodes_into_a_torch_tensor(np_dtype, pt_dtype, carrier, shape, tmp_path):
    array = random_bits(np_dtype, shape)
    path = tmp_path / "t.dcf"
    dcformat.save_file({"t": array}, path)
    out = torch.empty(shape, dtype=pt_dtype)
    pointer = out.data_ptr()
    with dcformat.safe_open(path) as f:
        assert f.get_tensor("t", out=out) is out
    assert out.data_ptr() == pointer
    assert_same_bits(out, array)


def test_get_tensors_decodes_into_some_and_allocates_the_rest(tmp_path):
    tensors = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.arange(4, dtype=np.int64),
               "c": np.ones(5, np.float16)}
    path = tmp_path / "t.dcf"
    dcformat.save_file(tensors, path)
    into_a, into_b = torch.zeros(2, 3), np.zeros(4, np.int64)
    with dcformat.safe_open(path, framework="pt") as f:
        got = f.get_tensors(out={"a": into_a, "b": into_b})
    assert got["a"] is into_a and got["b"] is into_b and isinstance(got["c"], torch.Tensor)
    assert_same_bits(into_a, tensors["a"])
    assert_same_bits(got["c"], tensors["c"])
    assert np.array_equal(into_b, tensors["b"])


def test_get_tensor_refuses_torch_tensors_it_cannot_write_into(tmp_path):
    from dcformat.errors import UsageError

    path = tmp_path / "t.dcf"
    dcformat.save_file({"t": np.ones((4, 5), np.float32)}, path)
    with dcformat.safe_open(path) as f:
        for bad in (torch.empty(5, 4).T, torch.empty(4, 5, dtype=torch.float64), torch.empty(20)):
            with pytest.raises(UsageError, match="'t'"):
                f.get_tensor("t", out=bad)


class _Small(torch.nn.Module):
    def __init__(self, dtype=torch.float32):
        super().__init__()
        self.fc = torch.nn.Linear(6, 4).to(dtype)
        self.bn = torch.nn.BatchNorm1d(4).to(dtype)
        self.head = torch.nn.Linear(4, 3, bias=False).to(dtype)
        self.tied = self.head  # the same weight under two names


def _saved(tmp_path, model) -> tuple:
    state = {k: v + 0.5 if v.is_floating_point() else v + 3 for k, v in model.state_dict().items()}
    path = tmp_path / "m.dcf"
    dct.save_file(state, path)
    return path, state


def test_load_model_decodes_into_the_parameters(tmp_path, monkeypatch):
    import dcformat.container.file as container_file

    path, state = _saved(tmp_path, _Small())
    model = _Small()
    pointers = {k: t.data_ptr() for k, t in model.state_dict().items()}
    written = []
    decode = container_file.decode_record
    monkeypatch.setattr(container_file, "decode_record", lambda record, segment, bank, out, **kw: written.append(
        (record.name, None if out is None else out.ctypes.data)) or decode(record, segment, bank, out, **kw))
    missing, unexpected = dct.load_model(model, path)
    assert missing == [] and unexpected == []
    # every tensor decoded into its own memory; the tied head once, under its last name
    assert sorted(written) == sorted((k, pointers[k]) for k in model.state_dict() if k != "head.weight")
    for name, tensor in model.state_dict().items():
        assert tensor.data_ptr() == pointers[name] and torch.equal(tensor, state[name]), name


def test_load_model_converts_dtypes_and_reports_keys(tmp_path):
    from dcformat.errors import UsageError

    path, state = _saved(tmp_path, _Small(torch.float16))
    model = _Small()  # float32: decoded, then copied in with conversion
    dct.load_model(model, path)
    assert torch.equal(model.fc.weight, state["fc.weight"].float())
    bigger = _Small()
    bigger.extra = torch.nn.Linear(2, 2)
    with pytest.raises(UsageError, match="m.dcf.*missing.*extra.weight"):
        dct.load_model(bigger, path)
    missing, unexpected = dct.load_model(bigger, path, strict=False)
    assert missing == ["extra.weight", "extra.bias"] and unexpected == []
    assert torch.equal(bigger.head.weight, state["head.weight"])
    narrow = _Small()
    narrow.fc = torch.nn.Linear(6, 5)
    with pytest.raises(UsageError, match="shapes differ.*fc.weight"):
        dct.load_model(narrow, path, strict=False)
    assert not torch.equal(narrow.head.weight, state["head.weight"])  # refused before writing anything


def test_numpy_users_never_import_torch():
    """safe_open and the carrier module load without torch; torch comes only when called."""
    import subprocess
    import sys

    code = ("import sys, dcformat, dcformat.safe_open, dcformat.interop.torch_arrays, dcformat.convert.torch_io; "
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_torch_convert_is_the_interop_carrier():
    from dcformat.interop import torch_arrays
    from dcformat.torch import convert

    for name in ("to_torch", "to_numpy", "numpy_view", "torch_dtype", "wire_name"):
        assert getattr(convert, name) is getattr(torch_arrays, name)
    assert torch_arrays.torch_dtype("BF16") is torch.bfloat16 and torch_arrays.wire_name(torch.bfloat16) == "BF16"
    assert torch_arrays.wire_name(torch.complex64) is None


def test_torch_loading_needs_no_ml_dtypes(tmp_path):
    """BF16 and float8 tensors reach torch as their bits: a fresh process loading them through
    load_file, safe_open(framework="pt") and load_model never imports ml_dtypes (half a second)."""
    import subprocess
    import sys

    import dcformat.torch as dct
    from dcformat.compress import compress_tensors
    from dcformat.numpy import save_file

    g = torch.Generator().manual_seed(0)
    state = {"w": torch.randn(64, 128, generator=g).to(torch.bfloat16),
             "f8": torch.randn(32, 32, generator=g).to(torch.float8_e4m3fn),
             "b": torch.randn(64, generator=g).to(torch.bfloat16)}
    path = tmp_path / "m.dcf"
    save_file(compress_tensors({k: dct.to_numpy(v) for k, v in state.items()})[0], path)  # w coded, the rest exact
    expected = dct.load_file(path)  # this process: ml_dtypes may well be imported here already
    bits = tmp_path / "bits.pt"
    torch.save({k: v.view(torch.uint8) for k, v in expected.items()}, bits)
    code = f"""
import sys, torch, dcformat, dcformat.torch as dct
want = {{k: v for k, v in torch.load({str(bits)!r}).items()}}
got = dct.load_file({str(path)!r})
with dcformat.safe_open({str(path)!r}, framework="pt") as f:
    one = f.get_tensor("w")
    into = torch.empty(64, 128, dtype=torch.bfloat16)
    f.get_tensors(["w"], out={{"w": into}})
m = torch.nn.Module(); m.register_buffer("w", torch.zeros(64, 128, dtype=torch.float32))
dct.load_model(m, {str(path)!r}, strict=False)
for k, v in got.items():
    assert v.view(torch.uint8).equal(want[k]), k
assert one.view(torch.uint8).equal(want["w"]) and into.view(torch.uint8).equal(want["w"])
assert m.w.equal(got["w"].float())
assert got["f8"].dtype == torch.float8_e4m3fn
assert "ml_dtypes" not in sys.modules, "imported"
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
