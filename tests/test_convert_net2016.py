"""Importing the Deep Compression (2016) ``.net`` files and their Caffe prototxt."""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcformat import load, load_file, save, save_file
from dcformat.convert.caffe_prototxt import load_prototxt, parse_prototxt, parse_text_proto
from dcformat.convert.net2016 import (
    code_bits_for,
    decode_encoded,
    estimate_stream_bytes,
    net_layer_selection,
    net_to_encoded,
    parse_net,
    plan_layer,
    plan_net,
    plan_to_encoded,
    read_net,
)
from dcformat.encodings.model import CodebookValues, EncodedTensor, Sparse
from dcformat.errors import ConversionError
from dcformat.streams import HuffmanCodec, PackedCodec

SHARED = Path(os.environ.get("DCFORMAT_SHARED_DIR") or Path(__file__).resolve().parents[1].parent / "shared")
REF = SHARED / "reference"
SQZ_DIR = REF / "squeezenet-deep-compression"
SQZ_NET = SQZ_DIR / "compressed_SqueezeNet.net"
SQZ_PROTO = SQZ_DIR / "SqueezeNet_deploy.prototxt"
ALEX_PROTO = REF / "alexnet-deep-compression" / "bvlc_alexnet_deploy.prototxt"
SQZ_SHA256 = "e4ab6960ae8cd81505e1c2136921201507e930966c53deaf15862a395b3a3261"

needs_squeezenet = pytest.mark.skipif(not (SQZ_NET.exists() and SQZ_PROTO.exists()),
                                      reason=f"reference files not found under {REF}")
needs_alexnet = pytest.mark.skipif(not ALEX_PROTO.exists(), reason=f"{ALEX_PROTO} not found")


# --- a tiny writer of the 2016 format, for synthetic files ---------------------------------


def _pack_nibbles(vals: np.ndarray) -> bytes:
    v = np.asarray(vals, dtype=np.uint8)
    if v.size % 2:
        v = np.append(v, np.uint8(0))
    return (v[0::2] | (v[1::2] << 4)).astype(np.uint8).tobytes()


def build_net_bytes(layers: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> bytes:
    """``layers``: (name, codebook (2**b float32, [0] == 0), bias, weight with values in the codebook)."""
    header, body = [], []
    for name, codebook, bias, weight in layers:
        bits = code_bits_for(name)
        assert codebook.size == 1 << bits and codebook[0] == 0
        flat = weight.reshape(-1)
        pos = np.flatnonzero(flat)
        lookup = {float(v): i for i, v in enumerate(codebook)}
        gaps, codes, prev = [], [], -1
        for p in pos:
            g = int(p) - prev - 1
            while g > 15:
                gaps.append(15)
                codes.append(0)
                g -= 16
            gaps.append(g)
            codes.append(lookup[float(flat[p])])
            prev = int(p)
        header.append(len(gaps))
        body.append(codebook.astype("<f4").tobytes())
        body.append(bias.astype("<f4").tobytes())
        body.append(bytes(np.asarray(codes, np.uint8)) if bits == 8 else _pack_nibbles(np.asarray(codes)))
        body.append(_pack_nibbles(np.asarray(gaps)))
    return struct.pack(f"<{len(header)}I", *header) + b"".join(body)


TINY_PROTO = """
name: "Tiny"  # a comment
input: "data"
input_dim: 1 input_dim: 2 input_dim: 6 input_dim: 6
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 stride: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc1" type: "InnerProduct" bottom: "pool1" top: "fc1"
        inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "fc1" top: "prob" }
"""


def _tiny_layers(rng: np.random.Generator, density: float = 0.3):
    net = parse_prototxt(TINY_PROTO)
    out = []
    for p in net.param_layers:
        bits = code_bits_for(p.name)
        codebook = np.concatenate([[0.0], rng.standard_normal((1 << bits) - 1)]).astype(np.float32)
        codes = rng.integers(1, 1 << bits, size=p.weight_size)
        keep = rng.random(p.weight_size) < density
        weight = np.where(keep, codebook[codes], np.float32(0)).astype(np.float32).reshape(p.weight_shape)
        bias = rng.standard_normal(p.num_output).astype(np.float32)
        out.append((p.name, codebook, bias, weight))
    return net, out


# --- prototxt --------------------------------------------------------------------------------


@needs_alexnet
def test_alexnet_prototxt_shapes():
    net = load_prototxt(ALEX_PROTO)
    assert net.inputs == {"data": (10, 3, 227, 227)}
    assert net.weight_shapes == {
        "conv1": (96, 3, 11, 11),
        "conv2": (256, 48, 5, 5),
        "conv3": (384, 256, 3, 3),
        "conv4": (384, 192, 3, 3),
        "conv5": (256, 192, 3, 3),
        "fc6": (4096, 9216),
        "fc7": (4096, 4096),
        "fc8": (1000, 4096),
    }
    assert net.param_layer("conv2").group == 2
    assert net.param_layer("conv1").group == 1
    assert [p.bias_shape for p in net.param_layers][-1] == (1000,)
    assert net.blob_shapes["pool5"] == (10, 256, 6, 6)
    assert net.blob_shapes["norm1"] == (10, 96, 55, 55)
    total = sum(p.weight_size + p.bias_size for p in net.param_layers)
    assert total == 60_965_224  # AlexNet's well-known parameter count


@needs_squeezenet
def test_squeezenet_prototxt_shapes():
    net = load_prototxt(SQZ_PROTO)
    shapes = net.weight_shapes
    assert len(shapes) == 26
    assert list(shapes)[:4] == ["conv1", "fire2/conv1x1_1", "fire2/conv1x1_2", "fire2/conv3x3_2"]
    assert shapes["conv1"] == (96, 3, 7, 7)
    assert shapes["fire2/conv1x1_1"] == (16, 96, 1, 1)
    assert shapes["fire3/conv1x1_1"] == (16, 128, 1, 1)  # input is fire2's concat: 64 + 64
    assert shapes["fire4/conv3x3_2"] == (128, 32, 3, 3)
    assert shapes["fire9/conv1x1_1"] == (64, 512, 1, 1)
    assert shapes["conv_final"] == (1000, 512, 1, 1)  # after drop9, on fire9's concat
    assert sum(p.weight_size for p in net.param_layers) == 1_244_448
    assert sum(p.bias_size for p in net.param_layers) == 3_976
    assert net.blob_shapes["pool_final"] == (1, 1000, 1, 1)


def test_prototxt_v1_syntax_and_input_shape():
    net = parse_prototxt("""
        input: "x"
        input_shape { dim: 2 dim: 8 dim: 5 dim: 5 }
        layers { name: "conv_a" type: CONVOLUTION bottom: "x" top: "a"
                 convolution_param { num_output: 6 kernel_h: 3 kernel_w: 1 group: 2 bias_term: false } }
        layers { name: "flat" type: FLATTEN bottom: "a" top: "f" }
        layers { name: "ip1" type: INNER_PRODUCT bottom: "f" top: "y" inner_product_param { num_output: 7 } }
    """)
    assert net.weight_shapes == {"conv_a": (6, 4, 3, 1), "ip1": (7, 6 * 3 * 5)}
    assert net.param_layer("conv_a").bias_size == 0


def test_prototxt_input_layer_concat_and_pool_rounding():
    net = parse_prototxt("""
        layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 10 dim: 10 } } }
        layer { name: "c1" type: "Convolution" bottom: "data" top: "c1"
                convolution_param { num_output: 4 kernel_size: 1 } }
        layer { name: "c2" type: "Convolution" bottom: "data" top: "c2"
                convolution_param { num_output: 6 kernel_size: 3 pad: 1 } }
        layer { name: "cat" type: "Concat" bottom: "c1" bottom: "c2" top: "cat" }
        layer { name: "p" type: "Pooling" bottom: "cat" top: "p" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
        layer { name: "fc" type: "InnerProduct" bottom: "p" top: "fc" inner_product_param { num_output: 2 } }
    """)
    # Caffe rounds pooling up: ceil((10 - 3) / 2) + 1 = 5
    assert net.blob_shapes["p"] == (1, 10, 5, 5)
    assert net.weight_shapes == {"c1": (4, 3, 1, 1), "c2": (6, 3, 3, 3), "fc": (2, 250)}


def test_text_proto_values():
    m = parse_text_proto('a: 1 b: -2.5e-3 c: "x\\"y" d: TRUE_ENUM e { f: 1 f: 2 } g: [3, 4] h < i: "j" >')
    assert m.get("a") == 1 and m.get("b") == -2.5e-3 and m.get("c") == 'x"y'
    assert m.get("d") == "TRUE_ENUM"
    assert m.msg("e").all("f") == [1, 2]
    assert m.all("g") == [3, 4]
    assert m.msg("h").get("i") == "j"


@pytest.mark.parametrize("text, needle", [
    ('input: "data" input_dim: 1 input_dim: 3 input_dim: 4 input_dim: 4\n'
     'layer { name: "c" type: "Convolution" bottom: "data" top: "c" }', "num_output"),
    ('layer { name: "d" type: "Data" top: "data" }\n'
     'layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 2 kernel_size: 1 } }',
     "unknown"),
    ('input: "data" input_dim: 1 input_dim: 3 input_dim: 4 input_dim: 4\n'
     'layer { name: "c" type: "Convolution" bottom: "nope" top: "c" convolution_param { num_output: 2 kernel_size: 1 } }',
     "nope"),
    ('input: "data" input_dim: 1 input_dim: 3 input_dim: 4 input_dim: 4\n'
     'layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 4 kernel_size: 1 group: 2 } }',
     "group"),
    ('layer { name: "c" type: "ReLU" ', "unterminated"),
    ('layer { name: "c" } }', "unexpected"),
    ('layer { name: "c" type: "ReLU" @ }', "cannot parse"),
    ('input: "data" input_dim: 1 input_dim: 3', "input_dim"),
])
def test_prototxt_errors(text, needle):
    with pytest.raises(ConversionError, match=needle):
        parse_prototxt(text)


# --- reading the real SqueezeNet file -----------------------------------------------------


@pytest.fixture(scope="module")
def squeezenet():
    if not (SQZ_NET.exists() and SQZ_PROTO.exists()):
        pytest.skip(f"reference files not found under {REF}")
    return read_net(SQZ_NET, SQZ_PROTO)


@needs_squeezenet
def test_squeezenet_file_checksum():
    assert hashlib.sha256(SQZ_NET.read_bytes()).hexdigest() == SQZ_SHA256


def test_read_squeezenet_counts(squeezenet):
    nf = squeezenet
    assert nf.file_size == 675_763
    assert len(nf) == 26
    assert all(layer.code_bits == 8 for layer in nf)
    assert nf.weight_count == 1_244_448
    assert nf.bias_count == 3_976
    assert nf.stored_count == 422_083
    assert nf.nonzero_count == 415_921
    assert sum(int(np.count_nonzero(layer.weight)) for layer in nf) == 415_921
    assert nf.layers[0].name == "conv1" and nf.layers[0].count == 13_902
    assert nf["conv_final"].count == 105_973 and nf["conv_final"].weight.shape == (1000, 512, 1, 1)
    # every byte accounted for
    assert 4 * len(nf) + sum(layer.stored_bytes for layer in nf) == nf.file_size


def test_read_squeezenet_decoding_matches_layout(squeezenet):
    """Decode the first and last layers again straight from the bytes, the README's way."""
    data = SQZ_NET.read_bytes()
    for layer in (squeezenet.layers[0], squeezenet["fire2/conv3x3_2"], squeezenet.layers[-1]):
        off = layer.offset
        cb = np.frombuffer(data, "<f4", 256, off)
        off += 1024
        bias = np.frombuffer(data, "<f4", layer.bias.size, off)
        off += 4 * layer.bias.size
        codes = np.frombuffer(data, np.uint8, layer.count, off)
        off += layer.count
        g = np.frombuffer(data, np.uint8, (layer.count + 1) // 2, off)
        gaps = np.stack([g & 15, g >> 4], axis=1).reshape(-1)[:layer.count]
        w = np.zeros(layer.weight_size, np.float32)
        w[np.cumsum(gaps.astype(np.int64) + 1) - 1] = cb[codes]
        assert w.tobytes() == layer.weight.tobytes()
        assert bias.tobytes() == layer.bias.tobytes()
        assert np.array_equal(layer.codes, codes) and np.array_equal(layer.gaps, gaps)
        assert cb[0] == 0.0
        # fillers: gap 15 and a code whose value is 0
        zero = layer.codebook[layer.codes] == 0
        assert np.all(layer.gaps[zero] == 15)


# --- malformed files ----------------------------------------------------------------------------


def _squeeze_bytes() -> bytes:
    if not SQZ_NET.exists():
        pytest.skip(f"{SQZ_NET} not found")
    return SQZ_NET.read_bytes()


@needs_squeezenet
@pytest.mark.parametrize("cut", [0, 3, 103, 104, 105, 2000, 675_762])
def test_truncated_file(cut):
    data = _squeeze_bytes()[:cut]
    net = load_prototxt(SQZ_PROTO)
    with pytest.raises(ConversionError):
        parse_net(data, net)


@needs_squeezenet
@pytest.mark.parametrize("extra", [b"\x00", b"\x00" * 4, b"garbage!"])
def test_extended_file(extra):
    net = load_prototxt(SQZ_PROTO)
    with pytest.raises(ConversionError, match="left after the last layer"):
        parse_net(_squeeze_bytes() + extra, net)


@needs_squeezenet
@pytest.mark.parametrize("layer, value", [(0, 13_903), (0, 14_113), (0, 0xFFFFFFFF), (25, 106_000), (25, 2**31)])
def test_header_count_too_large(layer, value):
    data = bytearray(_squeeze_bytes())
    struct.pack_into("<I", data, 4 * layer, value)
    net = load_prototxt(SQZ_PROTO)
    with pytest.raises(ConversionError, match=load_prototxt(SQZ_PROTO).param_layers[layer].name):
        parse_net(bytes(data), net)


@needs_squeezenet
def test_header_counts_shifted_between_layers():
    """Counts that still sum to the file size but misplace the streams: refused, not IndexError."""
    data = bytearray(_squeeze_bytes())
    c0, c1 = struct.unpack_from("<2I", data, 0)
    struct.pack_into("<2I", data, 0, c0 - 2, c1 + 2)
    with pytest.raises(ConversionError):
        parse_net(bytes(data), load_prototxt(SQZ_PROTO))


@needs_squeezenet
def test_gap_overrun():
    nf_data = bytearray(_squeeze_bytes())
    nf = read_net(SQZ_NET, SQZ_PROTO)
    last = nf.layers[-1]
    gaps_off = nf.file_size - len(last.gaps_bytes)
    nf_data[gaps_off:] = b"\xff" * len(last.gaps_bytes)  # every gap 15: runs far past the end
    with pytest.raises(ConversionError, match="conv_final.*past"):
        parse_net(bytes(nf_data), load_prototxt(SQZ_PROTO))


def test_wrong_prototxt_for_file():
    if not (SQZ_NET.exists() and ALEX_PROTO.exists()):
        pytest.skip("reference files not found")
    with pytest.raises(ConversionError):
        read_net(SQZ_NET, ALEX_PROTO)


def test_missing_file(tmp_path):
    with pytest.raises(ConversionError):
        read_net(tmp_path / "nope.net", parse_prototxt(TINY_PROTO))


# --- synthetic files: both code widths --------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_synthetic_roundtrip_4_and_8_bit(seed):
    rng = np.random.default_rng(seed)
    net, layers = _tiny_layers(rng, density=[0.05, 0.3, 0.9, 1.0, 0.0][seed])
    data = build_net_bytes(layers)
    nf = parse_net(data, net)
    assert [layer.code_bits for layer in nf] == [8, 4]
    assert nf["fc1"].weight.shape == (5, 16)
    for (name, codebook, bias, weight), layer in zip(layers, nf):
        assert layer.weight.tobytes() == weight.tobytes()
        assert layer.bias.tobytes() == bias.tobytes()
        assert layer.codebook.tobytes() == codebook.tobytes()


def test_synthetic_4bit_nibble_order():
    net = parse_prototxt(TINY_PROTO)
    conv = np.zeros((4, 2, 3, 3), np.float32)
    fc = np.zeros((5, 16), np.float32)
    cb4 = np.arange(16, dtype=np.float32)
    fc.reshape(-1)[[0, 1, 20]] = [3, 5, 7]
    data = build_net_bytes([("conv1", np.arange(256, dtype=np.float32), np.zeros(4, np.float32), conv),
                            ("fc1", cb4, np.zeros(5, np.float32), fc)])
    nf = parse_net(data, net)
    # 3 fc entries: codes 3,5 | 7 (+pad), gaps 0,0 | 18 -> filler 15 + 2  => 4 entries
    assert nf["fc1"].count == 4
    assert nf["fc1"].codes_bytes == bytes([3 | 5 << 4, 0 | 7 << 4])
    assert nf["fc1"].gaps_bytes == bytes([0 | 0 << 4, 15 | 2 << 4])
    assert nf["fc1"].weight.tobytes() == fc.tobytes()


# --- re-encoding ----------------------------------------------------------------------------------


def _reconstruct(plan) -> np.ndarray:
    out = np.zeros(int(np.prod(plan.shape)), np.float32)
    vals = plan.codebook[plan.codes.astype(np.int64)]
    if plan.layout == "dense":
        out[:] = vals
    else:
        assert plan.gaps.max(initial=0) < (1 << plan.gap_bits)
        out[np.cumsum(plan.gaps.astype(np.int64) + 1) - 1] = vals
    return out.reshape(plan.shape)


@pytest.mark.parametrize("gap_bits", [None, 1, 2, 4, 8, 16])
def test_plan_layer_bit_identical(gap_bits):
    rng = np.random.default_rng(1)
    w = np.zeros((7, 5, 3, 3), np.float32)
    flat = w.reshape(-1)
    flat[rng.random(flat.size) < 0.2] = rng.standard_normal(1)[0]
    flat[[3, 100, 314]] = -0.0  # negative zero is not +0.0: it must survive
    flat[200] = np.float32(1e-45)
    plan = plan_layer("x", w, gap_bits=gap_bits)
    assert _reconstruct(plan).tobytes() == w.tobytes()
    if plan.layout == "sparse":
        # only +0.0 entries that are fillers are stored
        vals = plan.codebook[plan.codes]
        zero = vals.view(np.uint32) == 0
        assert int(zero.sum()) == plan.filler_count
        assert np.all(plan.gaps[zero] == (1 << plan.gap_bits) - 1)


def test_plan_layer_all_zero_and_full():
    z = np.zeros((3, 4), np.float32)
    assert _reconstruct(plan_layer("z", z)).tobytes() == z.tobytes()
    f = np.arange(1, 13, dtype=np.float32).reshape(3, 4)
    assert _reconstruct(plan_layer("f", f)).tobytes() == f.tobytes()


def test_squeezenet_plans_bit_identical(squeezenet):
    plans = plan_net(squeezenet)
    for layer, plan in zip(squeezenet, plans):
        assert _reconstruct(plan).tobytes() == layer.weight.tobytes(), layer.name
        # unused codebook entries are gone: at most the 255 non-zero values plus a +0.0
        assert plan.codebook.size <= 256
    # the re-encoding estimate beats plain Huffman of the 2016 streams
    assert sum(p.est_bytes for p in plans) + 4 * squeezenet.bias_count < 550_000


def test_net_to_encoded_bit_identical(squeezenet):
    enc = net_to_encoded(squeezenet)
    assert len(enc) == 52
    assert list(enc)[:3] == ["conv1.weight", "conv1.bias", "fire2/conv1x1_1.weight"]
    for layer in squeezenet:
        t = enc[f"{layer.name}.weight"]
        assert isinstance(t, EncodedTensor) and isinstance(t.values, CodebookValues)
        assert t.dtype == "F32" and t.shape == layer.weight_shape
        assert t.values.codebook.dtype == np.float32
        assert decode_encoded(t).tobytes() == layer.weight.tobytes(), layer.name
        b = enc[f"{layer.name}.bias"]
        assert isinstance(b, np.ndarray) and b.dtype == np.float32 and b.tobytes() == layer.bias.tobytes()


def test_squeezenet_dcf_file(squeezenet, tmp_path):
    path = tmp_path / "squeezenet.dcf"
    save_file(net_to_encoded(squeezenet), path)
    size = path.stat().st_size
    assert size <= 550_000, size
    back = load_file(path)
    for layer in squeezenet:
        assert np.asarray(back[f"{layer.name}.weight"]).tobytes() == layer.weight.tobytes()
        assert np.asarray(back[f"{layer.name}.bias"]).tobytes() == layer.bias.tobytes()


def test_squeezenet_all_sparse_huffman_only(squeezenet):
    """The restricted re-encoding (every weight SPARSE, every stream Huffman) and the verbatim one are exact too."""
    for enc in (net_to_encoded(squeezenet, allow_dense=False, allow_packed=False),
                net_to_encoded(squeezenet, reencode=False)):
        for layer in squeezenet:
            t = enc[f"{layer.name}.weight"]
            assert isinstance(t.layout, Sparse) and isinstance(t.values.codec, HuffmanCodec)
        back = load(save(enc))
        for layer in squeezenet:
            assert back[f"{layer.name}.weight"].tobytes() == layer.weight.tobytes()
    verbatim = net_to_encoded(squeezenet, reencode=False)["conv1.weight"]
    assert verbatim.layout.gap_bits == 4 and verbatim.values.codebook.size == 256


# --- selection rules, bias_term, arbitrary bytes ---------------------------------------------------


def test_layer_selection_and_code_bits():
    net = parse_prototxt("""
        input: "data" input_dim: 1 input_dim: 3 input_dim: 4 input_dim: 4
        layer { name: "conv1" type: "Convolution" bottom: "data" top: "c"
                convolution_param { num_output: 2 kernel_size: 3 bias_term: false } }
        layer { name: "ip1" type: "InnerProduct" bottom: "c" top: "i" inner_product_param { num_output: 3 } }
        layer { name: "score" type: "InnerProduct" bottom: "i" top: "s" inner_product_param { num_output: 2 } }
    """)
    sel = net_layer_selection(net)
    assert [p.name for p in sel] == ["conv1", "ip1"]  # "score" is not stored in a .net file
    assert [code_bits_for(p.name) for p in sel] == [8, 4]
    # conv1 has no bias: none is read, and no .bias tensor is produced
    conv = np.zeros((2, 3, 3, 3), np.float32)
    conv.reshape(-1)[[0, 40]] = [1.0, 2.0]
    ip = np.zeros((3, 8), np.float32)
    ip[2, 7] = 3.0
    data = build_net_bytes([("conv1", np.arange(256, dtype=np.float32), np.zeros(0, np.float32), conv),
                            ("ip1", np.arange(16, dtype=np.float32), np.ones(3, np.float32), ip)])
    nf = parse_net(data, net)
    assert nf["conv1"].bias.size == 0
    assert set(nf.dense_weights()) == {"conv1.weight", "ip1.weight", "ip1.bias"}
    assert nf["conv1"].weight.tobytes() == conv.tobytes() and nf["ip1"].weight.tobytes() == ip.tobytes()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2200))
def test_arbitrary_bytes_never_crash(data):
    net = parse_prototxt(TINY_PROTO)
    try:
        nf = parse_net(data, net)
    except ConversionError:
        return
    assert nf.file_size == len(data)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 1.0), st.integers(0, 60))
def test_mutated_files_never_crash(seed, density, n_flips):
    rng = np.random.default_rng(seed)
    net, layers = _tiny_layers(rng, density)
    data = bytearray(build_net_bytes(layers))
    for _ in range(n_flips):
        data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
    cut = int(rng.integers(len(data) + 1)) if rng.random() < 0.3 else len(data)
    try:
        parse_net(bytes(data[:cut]), net)
    except ConversionError:
        pass


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 1.0))
def test_synthetic_dcf_roundtrip(seed, density):
    rng = np.random.default_rng(seed)
    net, layers = _tiny_layers(rng, density)
    nf = parse_net(build_net_bytes(layers), net)
    back = load(save(net_to_encoded(nf)))
    for name, _, bias, weight in layers:
        assert back[f"{name}.weight"].tobytes() == weight.tobytes()
        assert back[f"{name}.bias"].tobytes() == bias.tobytes()


# --- the plan keeps its coded streams ---------------------------------------------------------


def test_a_plan_is_coded_once_and_written_as_coded(squeezenet, monkeypatch):
    from .test_encodings_sparse import count_encodes

    layer = squeezenet["fire2/conv3x3_2"]
    plan = plan_layer(layer.name, layer.weight)
    calls = count_encodes(monkeypatch)
    enc = plan_to_encoded(plan)
    data = save({"w": enc})
    assert calls == []  # the payloads measured are the ones written
    assert load(data)["w"].tobytes() == layer.weight.tobytes()
    assert len(plan.codes_stream.payload) == plan.est_codes_bytes
    assert len(plan.gaps_stream.payload) == plan.est_gaps_bytes


def test_a_plan_changed_by_hand_is_coded_with_its_codec():
    w = np.zeros((40, 40), np.float32)
    w[::3, ::2] = np.arange(1, 15, dtype=np.float32)[:, None]
    plan = plan_layer("x", w, allow_dense=False)
    plan.codes_codec = "packed" if plan.codes_codec == "huffman" else "huffman"
    enc = plan_to_encoded(plan)
    assert enc.values.codec != plan.codes_stream.codec
    assert load(save({"w": enc}))["w"].tobytes() == w.tobytes()


def test_estimate_stream_bytes_is_deprecated():
    symbols = np.arange(1000, dtype=np.uint16) % 7
    with pytest.warns(DeprecationWarning):
        assert estimate_stream_bytes(symbols, 7) == len(HuffmanCodec().encode(symbols, 7))


def test_a_stream_of_distinct_codes_is_packed_and_a_full_weight_dense():
    w = np.arange(1, 257, dtype=np.float32).reshape(16, 16)  # 256 distinct values, once each: 8 bits a code
    plan = plan_layer("x", w)
    assert plan.layout == "dense" and plan.codes_codec == "packed" and plan.est_codes_bytes == 256
    assert isinstance(plan_to_encoded(plan).values.codec, PackedCodec)
    assert plan_layer("x", w, allow_packed=False).codes_codec == "huffman"
