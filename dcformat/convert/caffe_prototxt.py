"""A small reader for the part of Caffe's prototxt net definitions that importers need.

A ``.net`` file from Deep Compression (2016) stores no names and no shapes: they come
from the Caffe deploy prototxt the network was trained with. This module parses the
protobuf text format generically (messages, repeated fields, strings, numbers, enum
identifiers, ``#`` comments), then walks the layers in order, propagating blob shapes
``(N, C, H, W)`` from the net's inputs, so that every parameter layer gets its weight
shape:

- ``Convolution``: ``(num_output, C_in / group, kh, kw)``;
- ``Deconvolution``: ``(C_in, num_output / group, kh, kw)``;
- ``InnerProduct``: ``(num_output, prod(input dims from axis))``;

and a bias of ``num_output`` values when ``bias_term`` is true (the default).

Layer types understood for shape propagation: Input / Data-like layers, Convolution,
Deconvolution, InnerProduct, Pooling (Caffe's ceil rounding, ``global_pooling``),
Concat, Eltwise, Flatten, Split, and the shape-preserving ones (ReLU, Dropout, LRN,
BatchNorm, Scale, Softmax, ...). Both the current ``layer { type: "Convolution" }``
syntax and the V1 ``layers { type: CONVOLUTION }`` syntax are read. A layer of any other
type leaves its outputs' shapes unknown; that is an error only if a parameter layer
needs one of them.

Every problem is a :class:`~dcformat.errors.ConversionError` naming the file position
or the layer.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConversionError

__all__ = [
    "Message",
    "CaffeLayer",
    "ParamLayer",
    "CaffeNet",
    "parse_text_proto",
    "parse_prototxt",
    "load_prototxt",
]


# --- protobuf text format ------------------------------------------------------------


class Message:
    """A parsed text-format message: an ordered multimap of field name -> values."""

    __slots__ = ("fields",)

    def __init__(self) -> None:
        self.fields: list[tuple[str, Any]] = []

    def add(self, key: str, value: Any) -> None:
        self.fields.append((key, value))

    def all(self, key: str) -> list[Any]:
        """Every value of a (repeated) field, in file order."""
        return [v for k, v in self.fields if k == key]

    def get(self, key: str, default: Any = None) -> Any:
        """The last value of a field (protobuf's rule for a repeated singular field)."""
        vals = self.all(key)
        return vals[-1] if vals else default

    def msg(self, key: str) -> "Message":
        """A sub-message, or an empty one when the field is absent."""
        v = self.get(key)
        if v is None:
            return Message()
        if not isinstance(v, Message):
            raise ConversionError(f"prototxt field {key!r} should be a message, found {v!r}")
        return v

    def __contains__(self, key: str) -> bool:
        return any(k == key for k, _ in self.fields)

    def __repr__(self) -> str:
        return f"Message({self.fields!r})"


class _Ident(str):
    """An unquoted identifier value (an enum name or true/false)."""


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<num>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf(?:inity)?|nan)[fF]?(?![\w.]))
  | (?P<ident>[A-Za-z_][\w.]*)
  | (?P<punct>[{}:;,<>\[\]])
    """,
    re.VERBOSE,
)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0"}


def _unquote(s: str) -> str:
    body = s[1:-1]
    if "\\" not in body:
        return body
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def _tokenize(text: str, source: str) -> list[tuple[str, Any, int]]:
    tokens: list[tuple[str, Any, int]] = []
    pos = 0
    line = 1
    n = len(text)
    while pos < n:
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise ConversionError(f"{source}:{line}: cannot parse prototxt near {text[pos:pos + 20]!r}")
        kind = m.lastgroup
        tok = m.group()
        if kind == "str":
            tokens.append(("value", _unquote(tok), line))
        elif kind == "num":
            t = tok.rstrip("fF") if not tok.lower().startswith(("inf", "nan")) else tok
            try:
                val: Any = int(t) if re.fullmatch(r"[-+]?\d+", t) else float(t)
            except ValueError:
                raise ConversionError(f"{source}:{line}: bad number {tok!r}") from None
            tokens.append(("value", val, line))
        elif kind == "ident":
            tokens.append(("ident", tok, line))
        elif kind == "punct":
            tokens.append(("punct", tok, line))
        line += tok.count("\n")
        pos = m.end()
    return tokens


def parse_text_proto(text: str, source: str = "<prototxt>") -> Message:
    """Parse protobuf text format into a :class:`Message` tree."""
    tokens = _tokenize(text, source)
    n = len(tokens)
    i = 0

    def err(msg: str, at: int) -> ConversionError:
        line = tokens[at][2] if at < n else (tokens[-1][2] if tokens else 1)
        return ConversionError(f"{source}:{line}: {msg}")

    root = Message()
    stack: list[tuple[Message, str]] = [(root, "")]
    while i < n:
        kind, tok, _ = tokens[i]
        cur, closer = stack[-1]
        if kind == "punct" and tok in ("}", ">"):
            if len(stack) == 1 or tok != closer:
                raise err(f"unexpected {tok!r}", i)
            stack.pop()
            i += 1
            continue
        if kind == "punct" and tok in (";", ","):
            i += 1
            continue
        if kind != "ident":
            raise err(f"expected a field name, found {tok!r}", i)
        key = tok
        i += 1
        has_colon = i < n and tokens[i][0] == "punct" and tokens[i][1] == ":"
        if has_colon:
            i += 1
        if i >= n:
            raise err(f"field {key!r} has no value", i)
        kind, tok, _ = tokens[i]
        if kind == "punct" and tok in ("{", "<"):
            sub = Message()
            cur.add(key, sub)
            stack.append((sub, "}" if tok == "{" else ">"))
            i += 1
        elif kind == "punct" and tok == "[" and has_colon:  # short repeated form: f: [1, 2]
            i += 1
            while i < n and not (tokens[i][0] == "punct" and tokens[i][1] == "]"):
                k2, t2, _ = tokens[i]
                if k2 == "punct" and t2 == ",":
                    i += 1
                    continue
                if k2 == "punct":
                    raise err(f"unexpected {t2!r} in list of {key!r}", i)
                cur.add(key, _Ident(t2) if k2 == "ident" else t2)
                i += 1
            if i >= n:
                raise err(f"unterminated list for {key!r}", i)
            i += 1
        elif not has_colon:
            raise err(f"expected ':' or '{{' after {key!r}", i)
        elif kind == "value":
            # adjacent string literals concatenate
            if isinstance(tok, str):
                while i + 1 < n and tokens[i + 1][0] == "value" and isinstance(tokens[i + 1][1], str):
                    tok = tok + tokens[i + 1][1]
                    i += 1
            cur.add(key, tok)
            i += 1
        elif kind == "ident":
            cur.add(key, _Ident(tok))
            i += 1
        else:
            raise err(f"field {key!r} has no value", i)
    if len(stack) != 1:
        raise ConversionError(f"{source}: unterminated message (missing '}}')")
    return root


# --- the net ---------------------------------------------------------------------------

#: V1 (``layers { type: ENUM }``) type names, mapped to the current string names.
_V1_TYPES = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DATA": "Data", "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice",
    "TANH": "TanH", "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}

#: Layers whose every top has the shape of their first bottom.
_SAME_SHAPE = {
    "ReLU", "PReLU", "ELU", "Sigmoid", "TanH", "AbsVal", "BNLL", "Power", "Exp", "Log",
    "Threshold", "Dropout", "LRN", "MVN", "BatchNorm", "Scale", "Bias", "Softmax",
    "Split", "Eltwise", "Clip", "Swish", "SoftmaxWithLoss", "Silence",
}

#: Types that own weight/bias blobs of the kind importers here handle.
PARAM_TYPES = ("Convolution", "Deconvolution", "InnerProduct")

#: Types that own learnable blobs of other kinds (not supported by the importers).
OTHER_PARAM_TYPES = ("BatchNorm", "Scale", "PReLU", "Bias", "Embed", "LSTM", "RNN")

_DATA_TYPES = {"Input", "Data", "ImageData", "MemoryData", "DummyData", "HDF5Data", "WindowData"}


@dataclass(frozen=True)
class CaffeLayer:
    """One ``layer`` entry: its name, type, bottoms, tops and the raw message."""

    name: str
    type: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    proto: Message = field(repr=False, compare=False)
    index: int = 0


@dataclass(frozen=True)
class ParamLayer:
    """A layer with a weight (and usually a bias): what an importer needs."""

    name: str
    type: str
    index: int  # position among all layers of the net
    num_output: int
    in_channels: int  # C of the input blob (InnerProduct: the flattened input size)
    group: int
    kernel: tuple[int, ...]  # (kh, kw); () for InnerProduct
    bias_term: bool
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None

    @property
    def weight_shape(self) -> tuple[int, ...]:
        if self.type == "InnerProduct":
            return (self.num_output, self.in_channels)
        if self.type == "Deconvolution":
            return (self.in_channels, self.num_output // self.group, *self.kernel)
        return (self.num_output, self.in_channels // self.group, *self.kernel)

    @property
    def bias_shape(self) -> tuple[int, ...]:
        return (self.num_output,) if self.bias_term else (0,)

    @property
    def weight_size(self) -> int:
        return math.prod(self.weight_shape)

    @property
    def bias_size(self) -> int:
        return self.num_output if self.bias_term else 0


@dataclass
class CaffeNet:
    """A parsed net: its inputs, every layer in order, the blob shapes, the parameter layers."""

    name: str
    inputs: dict[str, tuple[int, ...]]
    layers: list[CaffeLayer]
    blob_shapes: dict[str, tuple[int, ...] | None]
    param_layers: list[ParamLayer]
    source: str = "<prototxt>"

    def param_layer(self, name: str) -> ParamLayer:
        for p in self.param_layers:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        return {p.name: p.weight_shape for p in self.param_layers}


def _as_int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConversionError(f"{what} must be an integer, found {v!r}")
    return v


def _as_bool(v: Any, what: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    raise ConversionError(f"{what} must be true or false, found {v!r}")


def _spatial(p: Message, base: str, n_spatial: int, default: int | None, lname: str) -> tuple[int, ...]:
    """kernel/stride/pad/dilation: ``base_h``/``base_w`` or repeated ``base_size``/``base``."""
    what = f"layer {lname!r}: {base}"
    h, w = p.get(f"{base}_h"), p.get(f"{base}_w")
    if h is not None or w is not None:
        if h is None or w is None or n_spatial != 2:
            raise ConversionError(f"{what}_h and {base}_w must be given together, for 2-D blobs")
        return (_as_int(h, what + "_h"), _as_int(w, what + "_w"))
    key = "kernel_size" if base == "kernel" else base
    vals = [_as_int(v, what) for v in p.all(key)]
    if not vals:
        if default is None:
            raise ConversionError(f"layer {lname!r} has no {key}")
        return (default,) * n_spatial
    if len(vals) == 1:
        return (vals[0],) * n_spatial
    if len(vals) != n_spatial:
        raise ConversionError(f"{what}: {len(vals)} values for {n_spatial} spatial dimensions")
    return tuple(vals)


def _conv_params(layer: CaffeLayer, in_shape: tuple[int, ...] | None) -> tuple[ParamLayer, tuple[int, ...] | None]:
    lname = layer.name
    p = layer.proto.msg("convolution_param")
    if "num_output" not in p:
        raise ConversionError(f"layer {lname!r} ({layer.type}) has no num_output")
    num_output = _as_int(p.get("num_output"), f"layer {lname!r}: num_output")
    group = _as_int(p.get("group", 1), f"layer {lname!r}: group")
    bias_term = _as_bool(p.get("bias_term", True), f"layer {lname!r}: bias_term")
    axis = _as_int(p.get("axis", 1), f"layer {lname!r}: axis")
    if in_shape is None:
        raise ConversionError(f"layer {lname!r}: the shape of its input {layer.bottoms[0]!r} is unknown")
    if axis < 0:
        axis += len(in_shape)
    if not 0 <= axis < len(in_shape):
        raise ConversionError(f"layer {lname!r}: axis out of range for input shape {in_shape}")
    n_spatial = len(in_shape) - axis - 1
    if n_spatial < 1:
        raise ConversionError(f"layer {lname!r}: input shape {in_shape} has no spatial dimensions")
    kernel = _spatial(p, "kernel", n_spatial, None, lname)
    stride = _spatial(p, "stride", n_spatial, 1, lname)
    pad = _spatial(p, "pad", n_spatial, 0, lname)
    dil = _spatial(p, "dilation", n_spatial, 1, lname)
    in_c = in_shape[axis]
    if num_output <= 0 or group <= 0 or any(k <= 0 for k in kernel) or any(s <= 0 for s in stride):
        raise ConversionError(f"layer {lname!r}: num_output, group, kernel and stride must be positive")
    if in_c % group or num_output % group:
        raise ConversionError(
            f"layer {lname!r}: group {group} does not divide input channels {in_c} and num_output {num_output}")
    if layer.type == "Deconvolution":
        spatial = tuple((d - 1) * s - 2 * pd + dl * (k - 1) + 1
                        for d, k, s, pd, dl in zip(in_shape[axis + 1:], kernel, stride, pad, dil))
    else:
        spatial = tuple((d + 2 * pd - (dl * (k - 1) + 1)) // s + 1
                        for d, k, s, pd, dl in zip(in_shape[axis + 1:], kernel, stride, pad, dil))
    if any(d <= 0 for d in spatial):
        raise ConversionError(f"layer {lname!r}: output spatial size {spatial} from input {in_shape}")
    out_shape = (*in_shape[:axis], num_output, *spatial)
    pl = ParamLayer(lname, layer.type, layer.index, num_output, in_c, group, kernel, bias_term,
                    in_shape, out_shape)
    return pl, out_shape


def _ip_params(layer: CaffeLayer, in_shape: tuple[int, ...] | None) -> tuple[ParamLayer, tuple[int, ...] | None]:
    lname = layer.name
    p = layer.proto.msg("inner_product_param")
    if "num_output" not in p:
        raise ConversionError(f"layer {lname!r} (InnerProduct) has no num_output")
    num_output = _as_int(p.get("num_output"), f"layer {lname!r}: num_output")
    bias_term = _as_bool(p.get("bias_term", True), f"layer {lname!r}: bias_term")
    axis = _as_int(p.get("axis", 1), f"layer {lname!r}: axis")
    if _as_bool(p.get("transpose", False), f"layer {lname!r}: transpose"):
        raise ConversionError(f"layer {lname!r}: transposed InnerProduct is not supported")
    if num_output <= 0:
        raise ConversionError(f"layer {lname!r}: num_output must be positive")
    if in_shape is None:
        raise ConversionError(f"layer {lname!r}: the shape of its input {layer.bottoms[0]!r} is unknown")
    if axis < 0:
        axis += len(in_shape)
    if not 0 <= axis < len(in_shape):
        raise ConversionError(f"layer {lname!r}: axis out of range for input shape {in_shape}")
    k = math.prod(in_shape[axis:])
    out_shape = (*in_shape[:axis], num_output)
    pl = ParamLayer(lname, "InnerProduct", layer.index, num_output, k, 1, (), bias_term, in_shape, out_shape)
    return pl, out_shape


def _pool_shape(layer: CaffeLayer, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    lname = layer.name
    p = layer.proto.msg("pooling_param")
    if len(in_shape) != 4:
        raise ConversionError(f"layer {lname!r}: pooling needs a 4-D input, found {in_shape}")
    n, c, h, w = in_shape
    if _as_bool(p.get("global_pooling", False), f"layer {lname!r}: global_pooling"):
        return (n, c, 1, 1)
    kh, kw = _spatial(p, "kernel", 2, None, lname)
    sh, sw = _spatial(p, "stride", 2, 1, lname)
    ph, pw = _spatial(p, "pad", 2, 0, lname)
    if min(kh, kw, sh, sw) <= 0:
        raise ConversionError(f"layer {lname!r}: pooling kernel and stride must be positive")
    floor = str(p.get("round_mode", "CEIL")).upper() == "FLOOR"

    def one(d: int, k: int, s: int, pd: int) -> int:
        span = d + 2 * pd - k
        out = (span // s if floor else -(-span // s)) + 1
        if pd and (out - 1) * s >= d + pd:  # Caffe: the last window must start inside the image
            out -= 1
        return out

    oh, ow = one(h, kh, sh, ph), one(w, kw, sw, pw)
    if oh <= 0 or ow <= 0:
        raise ConversionError(f"layer {lname!r}: pooling output {oh}x{ow} from input {in_shape}")
    return (n, c, oh, ow)


def _input_shapes(root: Message, source: str) -> dict[str, tuple[int, ...]]:
    inputs: dict[str, tuple[int, ...]] = {}
    names = [str(v) for v in root.all("input")]
    dims = [_as_int(v, "input_dim") for v in root.all("input_dim")]
    shapes = [tuple(_as_int(d, "input_shape.dim") for d in m.all("dim")) for m in root.all("input_shape")]
    if dims:
        if len(dims) != 4 * len(names):
            raise ConversionError(f"{source}: {len(dims)} input_dim values for {len(names)} inputs (need 4 each)")
        for i, nm in enumerate(names):
            inputs[nm] = tuple(dims[4 * i:4 * i + 4])
    elif shapes:
        if len(shapes) != len(names):
            raise ConversionError(f"{source}: {len(shapes)} input_shape entries for {len(names)} inputs")
        inputs.update(zip(names, shapes))
    elif names:
        raise ConversionError(f"{source}: inputs {names} have no input_dim or input_shape")
    return inputs


def parse_prototxt(text: str, source: str = "<prototxt>") -> CaffeNet:
    """Parse a Caffe net definition and derive every parameter layer's shapes."""
    root = parse_text_proto(text, source)
    inputs = _input_shapes(root, source)
    entries = root.all("layer") or root.all("layers")
    if root.all("layer") and root.all("layers"):
        raise ConversionError(f"{source}: mixes 'layer' and V1 'layers' entries")
    layers: list[CaffeLayer] = []
    for i, m in enumerate(entries):
        if not isinstance(m, Message):
            raise ConversionError(f"{source}: layer entry {i} is not a message")
        name = m.get("name")
        ltype = m.get("type")
        if name is None or ltype is None:
            raise ConversionError(f"{source}: layer entry {i} has no name or no type")
        ltype = str(ltype)
        ltype = _V1_TYPES.get(ltype, ltype)
        layers.append(CaffeLayer(str(name), ltype, tuple(str(b) for b in m.all("bottom")),
                                 tuple(str(t) for t in m.all("top")), m, i))
    seen: set[str] = set()
    for layer in layers:
        if layer.name in seen:
            raise ConversionError(f"{source}: two layers are named {layer.name!r}")
        seen.add(layer.name)

    shapes: dict[str, tuple[int, ...] | None] = dict(inputs)
    params: list[ParamLayer] = []
    for layer in layers:
        # Layers restricted to the TRAIN phase are not part of a deploy net.
        phases = [str(inc.get("phase", "")) for inc in layer.proto.all("include") if isinstance(inc, Message)]
        if phases and "TEST" not in phases and "" not in phases:
            continue
        missing = [b for b in layer.bottoms if b not in shapes]
        if missing:
            raise ConversionError(f"layer {layer.name!r}: input blob {missing[0]!r} is produced by no earlier layer")
        ins = [shapes[b] for b in layer.bottoms]
        outs: list[tuple[int, ...] | None]
        t = layer.type
        if t in PARAM_TYPES:
            if len(layer.bottoms) != 1:
                raise ConversionError(f"layer {layer.name!r} ({t}) must have exactly one bottom")
            if t == "InnerProduct":
                pl, out = _ip_params(layer, ins[0])
            else:
                pl, out = _conv_params(layer, ins[0])
            params.append(pl)
            outs = [out] * len(layer.tops)
        elif t == "Input":
            dims = [tuple(_as_int(d, f"layer {layer.name!r}: shape.dim") for d in s.all("dim"))
                    for s in layer.proto.msg("input_param").all("shape")]
            if len(dims) == 1:
                dims = dims * len(layer.tops)
            outs = list(dims) if len(dims) == len(layer.tops) else [None] * len(layer.tops)
        elif t in _SAME_SHAPE:
            outs = [ins[0] if ins else None] * len(layer.tops)
        elif t == "Pooling":
            outs = [_pool_shape(layer, ins[0]) if ins and ins[0] is not None else None] * len(layer.tops)
        elif t == "Concat":
            cp = layer.proto.msg("concat_param")
            axis = _as_int(cp.get("axis", cp.get("concat_dim", 1)), f"layer {layer.name!r}: axis")
            if not ins or any(s is None for s in ins):
                out = None
            else:
                rank = len(ins[0])
                ax = axis + rank if axis < 0 else axis
                if not 0 <= ax < rank or any(len(s) != rank for s in ins) or any(
                        s[:ax] + s[ax + 1:] != ins[0][:ax] + ins[0][ax + 1:] for s in ins):
                    raise ConversionError(f"layer {layer.name!r}: cannot concatenate shapes {ins} on axis {axis}")
                out = (*ins[0][:ax], sum(s[ax] for s in ins), *ins[0][ax + 1:])
            outs = [out] * len(layer.tops)
        elif t == "Flatten":
            s = ins[0] if ins else None
            outs = [None if s is None else (s[0], math.prod(s[1:]))] * len(layer.tops)
        else:
            outs = [None] * len(layer.tops)
        for top, s in zip(layer.tops, outs):
            shapes[top] = s

    return CaffeNet(str(root.get("name", "")), inputs, layers, shapes, params, source)


def load_prototxt(path: str | Path) -> CaffeNet:
    """Read and parse a ``.prototxt`` file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConversionError(f"cannot read prototxt {str(path)!r}: {e}") from None
    return parse_prototxt(text, str(path))
