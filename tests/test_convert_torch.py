"""PyTorch checkpoints (zip and legacy) -> .dcf -> state dict, on real files and synthetic ones."""

from __future__ import annotations

import json
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import dcformat  # noqa: E402
import dcformat.torch as dct  # noqa: E402
from dcformat.compress import CompressionSettings, compress_tensors, reconstruct  # noqa: E402
from dcformat.convert import read_checkpoint, write_checkpoint  # noqa: E402
from dcformat.convert.torch_io import STRUCTURE_KEY  # noqa: E402
from dcformat.encodings.model import EncodedTensor  # noqa: E402
from dcformat.errors import ConversionError, UsageError  # noqa: E402

from .real_checkpoints import copy_as, real_checkpoint  # noqa: E402


MTCNN = ["mtcnn-pnet.pt", "mtcnn-rnet.pt", "mtcnn-onet.pt"]


def bits(tensor) -> np.ndarray:
    """The raw bytes of a tensor, for comparisons that see NaN payloads and -0.0."""
    t = tensor.detach().contiguous().reshape(-1)
    return t.view(torch.uint8).numpy() if t.dtype != torch.bool else t.to(torch.uint8).numpy()


def assert_state_dicts_equal(actual: dict, expected: dict) -> None:
    assert list(actual) == list(expected)
    for name, tensor in expected.items():
        assert actual[name].dtype == tensor.dtype, name
        assert actual[name].shape == tensor.shape, name
        assert np.array_equal(bits(actual[name]), bits(tensor)), f"{name}: bits differ"
        if tensor.dtype.is_floating_point and tensor.numel() and not tensor.isnan().any():
            assert torch.equal(actual[name], tensor), name


def flatten(obj, prefix: str = "") -> dict:
    """The tensors of a nested checkpoint, named as the converter names them."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    out = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def round_trip(src, tmp_path, preset: str = "lossless", suffix: str = ".pt"):
    """checkpoint -> .dcf (through the pipeline) -> PyTorch file; returns (dcf, loaded state)."""
    checkpoint = read_checkpoint(src)
    encoded, _ = compress_tensors(checkpoint.tensors, CompressionSettings.preset(preset))
    dcf, out = tmp_path / "model.dcf", tmp_path / f"back{suffix}"
    dcformat.save_file(encoded, dcf, checkpoint.metadata)
    write_checkpoint(read_checkpoint(dcf).tensors, out)
    return dcf, torch.load(out, weights_only=True)


# --- the MTCNN networks of facenet-pytorch, with the parameter names of its state dicts ---


class PNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)


class RNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)


class ONet(nn.Module):
    """facenet_pytorch.models.mtcnn.ONet: 48x48 face crop -> box, landmarks, face probability."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def forward(self, x):
        pool = nn.functional.max_pool2d
        x = pool(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = pool(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = pool(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


MODULES = {"mtcnn-pnet.pt": PNet, "mtcnn-rnet.pt": RNet, "mtcnn-onet.pt": ONet}


# --- real checkpoints ---------------------------------------------------------------------


@pytest.mark.parametrize("name", MTCNN)
def test_legacy_checkpoint_round_trip_is_exact(name, tmp_path):
    src = real_checkpoint(name)
    assert not zipfile.is_zipfile(src), "the fixture should be a legacy (pre-1.6, non-zip) torch.save file"
    original = torch.load(src, weights_only=True)
    _, back = round_trip(src, tmp_path)
    assert_state_dicts_equal(back, dict(original))


@pytest.mark.parametrize("name", MTCNN)
def test_dcf_loads_into_the_module(name, tmp_path):
    checkpoint = read_checkpoint(real_checkpoint(name))
    dcf = tmp_path / "m.dcf"
    dcformat.save_file(checkpoint.tensors, dcf)
    model = MODULES[name]()
    assert dct.load_model(model, dcf) is not None  # strict: every name and shape fits
    reference = MODULES[name]()
    reference.load_state_dict(torch.load(real_checkpoint(name), weights_only=True))
    assert_state_dicts_equal(model.state_dict(), reference.state_dict())
    state = dct.load_file(dcf)
    assert all(isinstance(t, torch.Tensor) for t in state.values())
    with dcformat.safe_open(dcf, framework="pt") as f:
        for key in f.keys():
            assert torch.equal(f.get_tensor(key), state[key]), key


def test_zip_lightning_checkpoint_round_trip(tmp_path):
    src = real_checkpoint("pesto.ckpt")
    assert zipfile.is_zipfile(src)
    checkpoint = read_checkpoint(src)
    raw = torch.load(src, weights_only=True)
    expected = flatten(raw)
    assert list(checkpoint.tensors) == list(expected)
    assert all(name.startswith("state_dict.") for name in expected)
    # Lightning's counters and hyper-parameters are not tensors: kept in the metadata, all of them.
    assert checkpoint.skipped == []
    structure = checkpoint.metadata[STRUCTURE_KEY]
    assert all(word in structure for word in ("epoch", "global_step", "pytorch-lightning_version", "n_chan_layers"))
    _, back = round_trip(src, tmp_path, suffix=".ckpt")
    scalars = [name for name, t in expected.items() if t.dim() == 0]
    assert scalars == ["state_dict.shift"]  # its 0-d shape is checked in the test below
    assert_state_dicts_equal({k: v for k, v in back.items() if k not in scalars},
                             {k: v for k, v in expected.items() if k not in scalars})
    assert back["state_dict.shift"].item() == expected["state_dict.shift"].item()


def test_zero_dim_tensor_of_a_real_checkpoint_stays_zero_dim(tmp_path):
    _, back = round_trip(real_checkpoint("pesto.ckpt"), tmp_path)
    assert back["state_dict.shift"].shape == torch.Size([])


def test_real_checkpoint_paper_preset_loads_and_matches_reconstruction(tmp_path):
    src = real_checkpoint("mtcnn-onet.pt")
    checkpoint = read_checkpoint(src)
    encoded, reports = compress_tensors(checkpoint.tensors, CompressionSettings.preset("paper"))
    compressed = {r.name for r in reports if r.kind != "exact"}
    assert {"dense5.weight", "conv3.weight", "conv4.weight"} <= compressed
    dcf = tmp_path / "onet.dcf"
    dcformat.save_file(encoded, dcf)

    state = dct.load_file(dcf)
    for name, value in encoded.items():
        expected = reconstruct(value) if isinstance(value, EncodedTensor) else value
        assert np.array_equal(dct.to_numpy(state[name]).view(np.uint8), expected.view(np.uint8)), name

    model, reference = ONet().eval(), ONet().eval()
    dct.load_model(model, dcf)
    reference.load_state_dict(torch.load(src, weights_only=True))
    x = torch.rand(8, 3, 48, 48, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        boxes, landmarks, prob = model(x)
        ref_boxes, _, ref_prob = reference(x)
    assert torch.isfinite(boxes).all() and torch.isfinite(landmarks).all()
    assert torch.allclose(prob.sum(dim=1), torch.ones(8))
    # Without retraining the pruned network drifts, but not wildly: boxes stay on the same scale.
    assert (boxes - ref_boxes).abs().mean() < ref_boxes.abs().mean()


def test_torchscript_archive_is_refused(tmp_path):
    jit = copy_as("silero-vad.jit", tmp_path / "silero_vad.pt")
    assert zipfile.is_zipfile(jit)
    with pytest.raises(ConversionError, match="silero_vad.pt"), pytest.warns(UserWarning, match="TorchScript"):
        read_checkpoint(jit)


def test_checkpoint_pickling_a_class_is_refused(tmp_path):
    # pesto's mir-1k_g7.ckpt pickles a class; weights_only loading must not run it.
    src = copy_as("pesto-g7.ckpt", tmp_path / "g7.ckpt")
    with pytest.raises(ConversionError, match="g7.ckpt"):
        read_checkpoint(src)


# --- synthetic state dicts: every dtype, both serialisations ------------------------------


def synthetic_state(legacy: bool) -> dict:
    g = torch.Generator().manual_seed(0)

    def raw(dtype, *shape):
        n = int(np.prod(shape)) if shape else 1
        size = torch.empty(0, dtype=dtype).element_size()
        data = torch.randint(0, 256, (n * size,), dtype=torch.uint8, generator=g)
        return data.view(dtype).reshape(shape)  # every bit pattern: NaN payloads, -0.0, denormals

    big = torch.randn(6, 8, generator=g)
    state = {
        "bf16": raw(torch.bfloat16, 16, 8),
        "bf16.nan_payloads": torch.tensor([0x7FC1, -0x7F, -0x8000, 1], dtype=torch.int16).view(torch.bfloat16),
        "f16": raw(torch.float16, 5, 7),
        "f32": torch.randn(64, 96, generator=g),
        "f64": raw(torch.float64, 3, 2),
        "i8": raw(torch.int8, 9),
        "u8": raw(torch.uint8, 2, 2),
        "i16": raw(torch.int16, 4),
        "i32": raw(torch.int32, 4),
        "i64": raw(torch.int64, 4),
        "bool": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 3, dtype=torch.bfloat16),
        "transposed": big.t(),
        "slice of a bigger storage": big[2:4, 1::2],
    }
    if not legacy:  # the legacy format cannot hold these dtypes at all
        state.update({"u16": raw(torch.uint16, 3), "u32": raw(torch.uint32, 3), "u64": raw(torch.uint64, 3),
                      "f8_e4m3": raw(torch.float8_e4m3fn, 4, 4), "f8_e5m2": raw(torch.float8_e5m2, 4, 4)})
    return state


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_synthetic_state_dict_round_trip_is_exact(legacy, tmp_path):
    state = synthetic_state(legacy)
    src = tmp_path / "in.pth"
    torch.save(state, src, _use_new_zipfile_serialization=not legacy)
    assert zipfile.is_zipfile(src) != legacy
    _, back = round_trip(src, tmp_path)
    assert_state_dicts_equal(back, state)


@pytest.mark.parametrize("name", ["bf16.nan_payloads", "empty", "slice of a bigger storage"])
def test_dcformat_torch_save_load_keep_edge_tensors(name):
    tensors = {name: synthetic_state(False)[name]}
    assert_state_dicts_equal(dct.load(dct.save(tensors)), tensors)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_zero_dim_tensors_stay_zero_dim(legacy, tmp_path):
    state = {"scalar": torch.tensor(3.25), "step": torch.tensor(7), "flag": torch.tensor(True),
             "bf16": torch.tensor(-0.0, dtype=torch.bfloat16)}
    assert_state_dicts_equal(dct.load(dct.save(state)), state)
    src = tmp_path / "scalars.pt"
    torch.save(state, src, _use_new_zipfile_serialization=not legacy)
    _, back = round_trip(src, tmp_path)
    assert_state_dicts_equal(back, state)


def test_bf16_state_dict_compresses_and_loads(tmp_path):
    model = nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)).to(torch.bfloat16)
    src = tmp_path / "bf16.pt"
    torch.save(model.state_dict(), src)
    dcf, back = round_trip(src, tmp_path, preset="paper")
    assert back["0.weight"].dtype == torch.bfloat16
    assert (back["0.weight"] != 0).float().mean() <= 0.11  # fc: 90 % pruned
    assert torch.equal(back["0.bias"], model.state_dict()["0.bias"])  # biases stay exact
    fresh = nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)).to(torch.bfloat16)
    dct.load_model(fresh, dcf)
    assert torch.equal(fresh[0].weight, back["0.weight"])


def test_wrapped_state_dicts_and_non_tensor_values(tmp_path):
    src = tmp_path / "wrapped.pt"
    torch.save({"model": {"fc.weight": torch.ones(2, 2)}, "epoch": 3, "lr": [0.1, 0.01],
                "ema": [torch.zeros(1), {"w": torch.ones(1)}]}, src)
    checkpoint = read_checkpoint(src)
    assert list(checkpoint.tensors) == ["model.fc.weight", "ema.0", "ema.1.w"]
    assert checkpoint.skipped == []  # the epoch and the learning rates are kept, in the metadata
    assert STRUCTURE_KEY in checkpoint.metadata


def nested_checkpoint() -> dict:
    """A checkpoint shaped like the khmer OCR one: a nested state dict beside a vocabulary and counters."""
    g = torch.Generator().manual_seed(0)
    model = OrderedDict([("cnn.0.weight", torch.randn(8, 4, generator=g)), ("cnn.0.bias", torch.zeros(8))])
    return {
        "model_state_dict": model,
        "char2idx": {"\t": 1, " ": 2, "\u1780": 3},
        "idx2char": {1: "\t", 2: " ", 3: "\u1780"},  # int keys stay int
        "epoch": 7, "cer": 0.0131, "finetuned_from": None, "vocab_expanded": False, "big": 2**70,
        "lr": [0.1, 0.01], "betas": (0.9, 0.999), "inf": float("inf"), "nan": float("nan"),
        "ema": [torch.ones(3), {"w": torch.full((2,), 2.0)}],
        "meta": {"device": "cpu", "sizes": [[1, 2], [3]], "version": torch.__version__.split("+")[0]},
        "dtype": torch.float16,  # neither a tensor nor a JSON value: dropped, and named
        "keys": {(1, 2): "a tuple key", torch.float16: "a dtype key", "kept": 1},
    }


def assert_same(actual, expected, where="checkpoint"):
    """Equal values of equal types, all the way down (tensors by bits, NaN equal to NaN)."""
    assert type(actual) is type(expected), f"{where}: {type(actual).__name__} != {type(expected).__name__}"
    if isinstance(expected, torch.Tensor):
        assert actual.dtype == expected.dtype and actual.shape == expected.shape, where
        assert np.array_equal(bits(actual), bits(expected)), where
    elif isinstance(expected, dict):
        assert list(actual) == list(expected), where
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{where}[{i}]")
    elif isinstance(expected, float) and expected != expected:
        assert actual != actual, where
    else:
        assert actual == expected, where


def test_non_tensor_content_is_kept_and_the_nesting_restored(tmp_path):
    original = nested_checkpoint()
    src, dcf, out = tmp_path / "in.pth", tmp_path / "m.dcf", tmp_path / "back.pth"
    torch.save(original, src)
    checkpoint = read_checkpoint(src)
    assert list(checkpoint.tensors) == ["model_state_dict.cnn.0.weight", "model_state_dict.cnn.0.bias",
                                        "ema.0", "ema.1.w"]
    assert checkpoint.skipped == ["dtype", "keys.torch.float16"]
    json.loads(checkpoint.metadata[STRUCTURE_KEY])  # plain JSON text
    dcformat.save_file(checkpoint.tensors, dcf, checkpoint.metadata)

    stored = read_checkpoint(dcf)
    assert write_checkpoint(stored.tensors, out, stored.metadata) == []  # every metadata entry is used
    expected = {k: v for k, v in original.items() if k != "dtype"}
    expected["keys"] = {(1, 2): "a tuple key", "kept": 1}
    assert_same(torch.load(out, weights_only=True), expected)


def test_tensors_under_a_key_json_cannot_hold_go_to_the_top_level(tmp_path):
    src, out = tmp_path / "in.pt", tmp_path / "out.pt"
    torch.save({torch.float16: torch.ones(2), "a": {"b": 1}}, src)
    checkpoint = read_checkpoint(src)
    assert list(checkpoint.tensors) == ["torch.float16"] and checkpoint.skipped == []
    write_checkpoint(checkpoint.tensors, out, checkpoint.metadata)
    assert_same(torch.load(out, weights_only=True), {"a": {"b": 1}, "torch.float16": torch.ones(2)})


def test_a_structure_past_the_metadata_limit_keeps_only_the_tensors_places(tmp_path, monkeypatch):
    import dcformat.format.constants as constants

    monkeypatch.setattr(constants, "MAX_METADATA_VALUE_BYTES", 200)
    src, out = tmp_path / "in.pt", tmp_path / "out.pt"
    torch.save({"model": {"w": torch.ones(2)}, "vocab": {str(i): i for i in range(100)}, "epoch": 3}, src)
    checkpoint = read_checkpoint(src)
    assert len(checkpoint.skipped) == 101 and "epoch" in checkpoint.skipped
    write_checkpoint(checkpoint.tensors, out, checkpoint.metadata)
    assert_same(torch.load(out, weights_only=True), {"model": {"w": torch.ones(2)}})


def test_a_plain_state_dict_needs_no_structure(tmp_path):
    src = tmp_path / "plain.pt"
    torch.save({"fc.weight": torch.ones(2, 2), "fc.bias": torch.zeros(2)}, src)
    assert read_checkpoint(src).metadata == {}


def test_a_bare_tensor_and_a_list_at_the_top(tmp_path):
    for i, obj in enumerate([torch.arange(4.0), [torch.ones(2), 3, "x"]]):
        src, out = tmp_path / f"in{i}.pt", tmp_path / f"out{i}.pt"
        torch.save(obj, src)
        checkpoint = read_checkpoint(src)
        write_checkpoint(checkpoint.tensors, out, checkpoint.metadata)
        assert_same(torch.load(out, weights_only=True), obj)


def test_other_metadata_is_named_when_a_pytorch_file_cannot_hold_it(tmp_path):
    not_stored = write_checkpoint({"w": np.ones(2, np.float32)}, tmp_path / "o.pt", {"model": "LeNet", "k": "v"})
    assert not_stored == ["model", "k"]
    assert write_checkpoint({"w": np.ones(2, np.float32)}, tmp_path / "o.safetensors", {"model": "x"}) == []


@pytest.mark.parametrize("structure, message", [
    ("not json", "not valid JSON"),
    ('{"version": 99, "root": null}', "version 99"),
    ('{"version": 1, "root": {"tensor": "missing"}}', "'missing'"),
    ('{"version": 1, "root": {"what": 1}}', "what"),
    ('{"version": 1, "root": [{"tensor": "w"}, {"tensor": "w"}]}', "places twice"),
    ('{"version": 1, "root": []}', "does not place tensor 'w'"),  # and the root is no dict to put it in
])
def test_a_broken_structure_is_refused(tmp_path, structure, message):
    with pytest.raises(ConversionError, match=STRUCTURE_KEY) as info:
        write_checkpoint({"w": np.ones(2, np.float32)}, tmp_path / "o.pt", {STRUCTURE_KEY: structure})
    assert message in str(info.value)
    assert not (tmp_path / "o.pt").exists()


def test_colliding_flattened_names_are_refused_not_dropped(tmp_path):
    src = tmp_path / "clash.pt"
    torch.save({"a.b": torch.ones(2), "a": {"b": torch.zeros(3)}}, src)
    with pytest.raises(ConversionError, match="a.b"):
        read_checkpoint(src)


def test_load_model_names_the_file_when_the_module_does_not_fit(tmp_path):
    dcf = tmp_path / "pnet.dcf"
    dcformat.save_file(read_checkpoint(real_checkpoint("mtcnn-pnet.pt")).tensors, dcf)
    with pytest.raises(UsageError, match="pnet.dcf"):
        dct.load_model(RNet(), dcf)


def test_unreadable_and_empty_checkpoints(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a pickle at all")
    with pytest.raises(ConversionError, match="garbage.pt"):
        read_checkpoint(garbage)
    empty = tmp_path / "empty.pt"
    torch.save({"epoch": 1}, empty)
    with pytest.raises(ConversionError, match="no tensors"):
        read_checkpoint(empty)


NOT_A_CHECKPOINT = [
    ("empty", b"", "empty file (0 bytes)"),
    ("text", b"not a pickle at all", "neither a zip archive"),
    ("random", np.random.default_rng(0).bytes(4096), "neither a zip archive"),
    ("stop", b".", "neither a zip archive"),  # torch: "pop from empty list"
    ("protocol and stop", b"\x80\x02.", "neither a zip archive"),
    ("legacy, truncated", b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M", "ends early"),
    ("zip, broken", b"PK\x03\x04" + bytes(100), "damaged or truncated zip archive"),
]


@pytest.mark.parametrize("data, reason", [(d, r) for _, d, r in NOT_A_CHECKPOINT],
                         ids=[i for i, _, _ in NOT_A_CHECKPOINT])
def test_a_file_that_is_no_checkpoint_gets_a_clear_message(tmp_path, data, reason):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(data)
    with pytest.raises(ConversionError) as info:
        read_checkpoint(bad)
    message = str(info.value)
    assert message.startswith(f"{bad}: ") and reason in message, message
    assert "\n" not in message and len(message) < 300, message  # one line, not torch's essay
    assert "pop from empty list" not in message and not message.endswith(": ")


def test_a_checkpoint_that_needs_a_global_names_the_allow_list(tmp_path):
    src = tmp_path / "versioned.pt"
    torch.save({"w": torch.ones(2, 2), "torch_version": torch.__version__}, src)  # a TorchVersion
    with pytest.raises(ConversionError) as info:
        read_checkpoint(src)
    message = str(info.value)
    assert "torch.torch_version.TorchVersion" in message
    assert "safe_globals=['torch.torch_version.TorchVersion']" in message
    assert "--safe-global torch.torch_version.TorchVersion" in message
    assert "weights_only=False" not in message and "\n" not in message

    checkpoint = read_checkpoint(src, safe_globals=["torch.torch_version.TorchVersion"])
    assert list(checkpoint.tensors) == ["w"]
    assert torch.__version__ in checkpoint.metadata[STRUCTURE_KEY]  # a str subclass: kept as its text
    out = tmp_path / "back.pt"
    write_checkpoint(checkpoint.tensors, out, checkpoint.metadata)
    assert torch.load(out, weights_only=True)["torch_version"] == str(torch.__version__)  # loads without it


@pytest.mark.parametrize("name, message", [("no_such_module.Thing", "no_such_module"),
                                           ("torch.torch_version.NoSuchClass", "NoSuchClass"),
                                           ("TorchVersion", "module.name")])
def test_a_safe_global_that_does_not_resolve(tmp_path, name, message):
    src = tmp_path / "w.pt"
    torch.save({"w": torch.ones(1)}, src)
    with pytest.raises(UsageError, match=message):
        read_checkpoint(src, safe_globals=[name])


def test_safe_globals_allow_only_what_is_named(tmp_path):
    # A checkpoint pickling a class stays refused when another global is allowed.
    src = copy_as("pesto-g7.ckpt", tmp_path / "g7.ckpt")
    with pytest.raises(ConversionError, match="omegaconf"):
        read_checkpoint(src, safe_globals=["torch.torch_version.TorchVersion"])


def test_pytorch_writer_refuses_to_overwrite(tmp_path):
    out = tmp_path / "o.pt"
    out.write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        write_checkpoint({"x": np.zeros(2, np.float32)}, out)
    assert out.read_bytes() == b"keep"
    write_checkpoint({"x": np.zeros(2, np.float32)}, out, overwrite=True)
    assert torch.equal(torch.load(out, weights_only=True)["x"], torch.zeros(2))


def test_an_io_error_while_torch_reads_is_a_storage_error_not_a_conversion_error(tmp_path, monkeypatch):
    import errno

    torch = pytest.importorskip("torch")
    from dcformat.convert.torch_io import TorchSource
    from dcformat.errors import ConversionError, ReadFailed

    torch.save({"w": torch.zeros(3)}, tmp_path / "m.pt")

    def failing_load(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(torch, "load", failing_load)
    with pytest.raises(ReadFailed) as caught:
        list(TorchSource(tmp_path / "m.pt"))
    assert isinstance(caught.value, OSError) and not isinstance(caught.value, ConversionError)
