"""Import the ``.net`` files released with Deep Compression (Han, Mao, Dally, 2016).

A ``.net`` file holds no names, shapes, magic or checksum; its layout (see
``shared/reference/README.md``) is, all little-endian:

1. a header of L ``uint32``: for each parameter layer whose name contains ``conv``,
   ``fc`` or ``ip`` (in prototxt order), its number of stored entries, fillers included;
2. per layer: the codebook (``2**b`` float32; ``b = 8`` for ``conv`` layers, else 4),
   the bias (``num_output`` float32), the codes (one byte each for ``b = 8``; two per
   byte, low nibble first, for ``b = 4``) and the relative gaps (4 bits, two per byte,
   low nibble first);
3. nothing else: the file ends right after the last layer's gaps.

Layer ``i``'s weight (C-order flattened ``(out, in/group, kh, kw)`` or ``(out, in)``) is
zero except at ``positions = cumsum(gaps + 1) - 1``, where it is ``codebook[codes]``.

:func:`read_net` parses and checks a file against its prototxt (every size is checked
against the file length before anything is sliced; any malformed input is a
:class:`~dcformat.errors.ConversionError` naming the layer) and keeps both the raw
streams and the decoded weights. :func:`net_to_encoded` re-encodes the layers as
dcformat records (sparse + codebook), choosing per layer the gap width, the codebook
(used entries only) and, where smaller, a dense layout, so that the container is as
small as the stream codecs allow while decoding to bit-identical weights.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..encodings.model import CodebookValues, Dense, EncodedTensor, Sparse
from ..encodings.sparse import SparseEntries, smallest_sparse
from ..errors import ConversionError
from ..streams import HuffmanCodec, PackedCodec
from ..streams.choose import CodedStream, code_stream, shortest_code_limit
from .caffe_prototxt import CaffeNet, ParamLayer, load_prototxt

__all__ = [
    "NetLayer",
    "NetFile",
    "read_net",
    "parse_net",
    "net_layer_selection",
    "code_bits_for",
    "LayerPlan",
    "plan_layer",
    "plan_net",
    "plan_to_encoded",
    "net_to_encoded",
    "decode_encoded",
    "estimate_stream_bytes",
]

_KEYWORDS = ("conv", "fc", "ip")


def net_layer_selection(net: CaffeNet) -> list[ParamLayer]:
    """The parameter layers a ``.net`` file stores, in order (Han's ``decode.py`` rule)."""
    return [p for p in net.param_layers if any(k in p.name for k in _KEYWORDS)]


def code_bits_for(layer_name: str) -> int:
    """Bits per codebook index: 8 for a layer named ``*conv*``, else 4."""
    return 8 if "conv" in layer_name else 4


# --- reading -------------------------------------------------------------------------


@dataclass(eq=False)
class NetLayer:
    """One layer of a ``.net`` file: the raw streams as stored, and the decoded weight."""

    name: str
    type: str
    weight_shape: tuple[int, ...]
    code_bits: int
    count: int  # stored entries, fillers included (the header value)
    offset: int  # byte offset of the layer's codebook in the file
    codebook: np.ndarray  # float32, 2**code_bits entries
    bias: np.ndarray  # float32, num_output entries (0 when bias_term is false)
    codes: np.ndarray  # uint8, count entries (nibbles unpacked for 4-bit layers)
    gaps: np.ndarray  # uint8, count entries, each 0..15
    codes_bytes: bytes = field(repr=False)  # the codes as stored
    gaps_bytes: bytes = field(repr=False)  # the gaps as stored
    positions: np.ndarray = field(repr=False)  # int64, count entries, strictly increasing
    weight: np.ndarray = field(repr=False)  # float32, weight_shape, decoded

    @property
    def weight_size(self) -> int:
        return math.prod(self.weight_shape)

    @property
    def stored_bytes(self) -> int:
        """Bytes this layer takes in the ``.net`` file."""
        return 4 * (self.codebook.size + self.bias.size) + len(self.codes_bytes) + len(self.gaps_bytes)

    @property
    def nonzero_count(self) -> int:
        """Stored entries whose value is not +0.0 (bitwise): the ones a re-encoding keeps."""
        return int(np.count_nonzero(self.codebook.view(np.uint32)[self.codes]))


@dataclass(eq=False)
class NetFile:
    """A parsed ``.net`` file with its prototxt."""

    net: CaffeNet
    layers: list[NetLayer]
    file_size: int
    path: str = ""

    def __getitem__(self, name: str) -> NetLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def __iter__(self):
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def weight_count(self) -> int:
        return sum(layer.weight_size for layer in self.layers)

    @property
    def bias_count(self) -> int:
        return sum(layer.bias.size for layer in self.layers)

    @property
    def stored_count(self) -> int:
        return sum(layer.count for layer in self.layers)

    @property
    def nonzero_count(self) -> int:
        return sum(layer.nonzero_count for layer in self.layers)

    def dense_weights(self) -> dict[str, np.ndarray]:
        """``{"<layer>.weight": array, "<layer>.bias": array}``, decoded, as plain numpy."""
        out: dict[str, np.ndarray] = {}
        for layer in self.layers:
            out[f"{layer.name}.weight"] = layer.weight
            if layer.bias.size:
                out[f"{layer.name}.bias"] = layer.bias
        return out


def _unpack_nibbles(buf: np.ndarray, count: int) -> np.ndarray:
    out = np.empty(2 * buf.size, dtype=np.uint8)
    out[0::2] = buf & 0x0F
    out[1::2] = buf >> 4
    return out[:count]


def parse_net(data: bytes | bytearray | memoryview, net: CaffeNet, *, source: str = "<.net>") -> NetFile:
    """Parse the bytes of a ``.net`` file whose layers ``net`` describes."""
    buf = np.frombuffer(data, dtype=np.uint8)
    size = int(buf.size)
    specs = net_layer_selection(net)
    if not specs:
        raise ConversionError(f"{source}: the prototxt has no parameter layer named *conv*, *fc* or *ip*")
    nl = len(specs)
    header_bytes = 4 * nl
    if size < header_bytes:
        raise ConversionError(
            f"{source}: file is {size} bytes, too short for the header of {nl} layer counts ({header_bytes} bytes)")
    counts = [int(c) for c in buf[:header_bytes].view("<u4")]

    layers: list[NetLayer] = []
    pos = header_bytes
    for spec, count in zip(specs, counts):
        name = spec.name
        wsize = spec.weight_size
        bits = code_bits_for(name)
        if count > wsize:
            raise ConversionError(
                f"{source}: layer {name!r}: header says {count} stored entries, but its weight "
                f"{spec.weight_shape} has only {wsize} elements")
        cb_n = 1 << bits
        bias_n = spec.bias_size
        codes_len = count if bits == 8 else (count + 1) // 2
        gaps_len = (count + 1) // 2
        need = 4 * cb_n + 4 * bias_n + codes_len + gaps_len
        if pos + need > size:
            raise ConversionError(
                f"{source}: layer {name!r} (header count {count}) needs {need} bytes at offset {pos} "
                f"(codebook {4 * cb_n}, bias {4 * bias_n}, codes {codes_len}, gaps {gaps_len}), "
                f"but the file has only {size - pos} left: truncated file or wrong header/prototxt")
        off = pos
        codebook = buf[pos:pos + 4 * cb_n].view("<f4").astype(np.float32)
        pos += 4 * cb_n
        bias = buf[pos:pos + 4 * bias_n].view("<f4").astype(np.float32)
        pos += 4 * bias_n
        codes_raw = buf[pos:pos + codes_len]
        pos += codes_len
        gaps_raw = buf[pos:pos + gaps_len]
        pos += gaps_len
        codes = codes_raw.copy() if bits == 8 else _unpack_nibbles(codes_raw, count)
        gaps = _unpack_nibbles(gaps_raw, count)
        positions = np.cumsum(gaps.astype(np.int64) + 1) - 1
        if count and positions[-1] >= wsize:
            first_bad = int(np.searchsorted(positions, wsize))
            raise ConversionError(
                f"{source}: layer {name!r}: entry {first_bad} of {count} lands at position "
                f"{int(positions[first_bad])}, past the {wsize} elements of its weight {spec.weight_shape}")
        weight = np.zeros(wsize, dtype=np.float32)
        weight[positions] = codebook[codes]
        layers.append(NetLayer(
            name=name, type=spec.type, weight_shape=spec.weight_shape, code_bits=bits, count=count,
            offset=off, codebook=codebook, bias=bias, codes=codes, gaps=gaps,
            codes_bytes=codes_raw.tobytes(), gaps_bytes=gaps_raw.tobytes(), positions=positions,
            weight=weight.reshape(spec.weight_shape)))
    if pos != size:
        raise ConversionError(
            f"{source}: {size - pos} bytes left after the last layer {specs[-1].name!r} "
            f"(read {pos} of {size}): the file does not match the prototxt or has trailing data")
    return NetFile(net, layers, size, source)


def read_net(net_path: str | os.PathLike, prototxt_path: str | os.PathLike | CaffeNet) -> NetFile:
    """Read a Deep Compression ``.net`` file, with its Caffe deploy prototxt (a path or a parsed net)."""
    net = prototxt_path if isinstance(prototxt_path, CaffeNet) else load_prototxt(prototxt_path)
    p = Path(net_path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ConversionError(f"cannot read {str(p)!r}: {e}") from None
    return parse_net(data, net, source=str(p))


# --- size model ------------------------------------------------------------------------


def estimate_stream_bytes(symbols: np.ndarray, alphabet_size: int, *, max_length: int = 11,
                          chunk_symbols: int = 1 << 16) -> int:
    """Deprecated: ``code_stream(symbols, alphabet_size, codec=HuffmanCodec(chunk_symbols,
    max_length)).nbytes`` (:func:`dcformat.streams.choose.code_stream`), which keeps the payload."""
    warnings.warn("estimate_stream_bytes is deprecated: use dcformat.streams.choose.code_stream(...).nbytes",
                  DeprecationWarning, stacklevel=2)
    return code_stream(symbols, alphabet_size, codec=HuffmanCodec(chunk_symbols, max_length)).nbytes


def _entropy_bits(freqs: np.ndarray) -> float:
    f = np.asarray(freqs, dtype=np.float64)
    f = f[f > 0]
    n = f.sum()
    return float(-(f * np.log2(f / n)).sum()) if n else 0.0


# --- re-encoding ---------------------------------------------------------------------------


@dataclass(eq=False)
class LayerPlan:
    """How one weight is re-encoded: layout, gap width, codebook, streams and their codecs.

    A plan from :func:`plan_layer` holds its streams coded (``codes_stream``,
    ``gaps_stream``): :func:`plan_to_encoded` hands those payloads to the writer.
    """

    name: str
    shape: tuple[int, ...]
    layout: str  # "sparse" or "dense"
    gap_bits: int  # 0 for dense
    codebook: np.ndarray  # float32: the distinct values stored, plus +0.0 when fillers or dense need it
    codes: np.ndarray  # uint16
    gaps: np.ndarray | None  # uint16, or None for dense
    filler_count: int = 0
    codes_codec: str = "huffman"  # "huffman" or "packed"
    gaps_codec: str = "huffman"
    codes_max_length: int = 15  # Huffman code length limit of each stream
    gaps_max_length: int = 15
    est_codes_bytes: int = 0  # segment sizes, exactly as the stream codecs write them
    est_gaps_bytes: int = 0
    codes_stream: CodedStream | None = field(default=None, repr=False)  # the codes, coded
    gaps_stream: CodedStream | None = field(default=None, repr=False)

    @property
    def entries(self) -> int:
        return int(self.codes.size)

    @property
    def est_bytes(self) -> int:
        """Codebook + codes + gaps segment bytes (no container header or padding)."""
        return 4 * self.codebook.size + self.est_codes_bytes + self.est_gaps_bytes

    @property
    def code_entropy_bits(self) -> float:
        return _entropy_bits(np.bincount(self.codes))

    @property
    def gap_entropy_bits(self) -> float:
        return 0.0 if self.gaps is None else _entropy_bits(np.bincount(self.gaps))


def plan_layer(name: str, weight: np.ndarray, *, gap_bits: int | None = None, allow_dense: bool = True,
               allow_packed: bool = True, max_code_length: int = 15,
               preferred_code_length: int = 11) -> LayerPlan:
    """Choose the smallest encoding of ``weight`` (float32) as codebook codes, sparse or dense.

    - Entries whose bits are +0.0 are not stored; fillers (gap ``2**gap_bits - 1``, a code
      whose value is +0.0) are inserted only where a gap overflows the chosen width.
      Any other value, -0.0 included, is kept, so the decoding is bit-identical.
    - The codebook is the distinct values stored, most frequent first, plus +0.0 when
      fillers (or zeros in a dense layout) need it: unused entries cost nothing.
    - ``gap_bits=None`` tries every width from 1 to 16
      (:func:`dcformat.encodings.sparse.smallest_sparse`) and, with ``allow_dense``, a DENSE
      layout with +0.0 as one more code; each stream is Huffman-coded or, with
      ``allow_packed``, packed, whichever is smaller. Sizes are those of the payloads
      the stream codecs write, at code lengths up to ``max_code_length``, codebook
      entries included; each Huffman stream then gets the smallest limit from
      ``preferred_code_length`` up that keeps that size (short codes decode faster). The
      chosen plan keeps its coded streams, so nothing is encoded again.
    """
    flat = np.ascontiguousarray(weight, dtype=np.float32).reshape(-1)
    bits = flat.view(np.uint32)
    nz = np.flatnonzero(bits)  # +0.0 is all-zero bits; -0.0 and everything else is kept
    uniq, inv, counts = np.unique(bits[nz], return_inverse=True, return_counts=True)
    order = np.argsort(-counts, kind="stable")  # most frequent first
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    base_codebook = uniq[order].view(np.float32)
    base_codes = rank[inv].astype(np.uint16).reshape(-1)
    shape = tuple(int(d) for d in weight.shape)
    codecs = [HuffmanCodec(max_code_length=max_code_length)] + ([PackedCodec()] if allow_packed else [])
    widths = [gap_bits] if gap_bits is not None else range(1, 17)
    if not all(isinstance(gb, (int, np.integer)) and 1 <= gb <= 16 for gb in widths):
        raise ValueError(f"gap_bits must be 1..16, got {gap_bits}")
    # +0.0 is the fillers' own code, after the stored values; an empty codebook gets it too
    sparse = smallest_sparse(nz, base_codes, widths, filler=None, alphabet=max(base_codebook.size, 1),
                             codecs=codecs, symbol_bytes=4)
    plan = _sparse_plan(name, shape, base_codebook, sparse)
    if allow_dense and gap_bits is None:
        dense = _dense_plan(name, shape, base_codebook, base_codes, nz, flat.size, codecs)
        if dense.est_bytes < plan.est_bytes:  # ties: sparse
            plan = dense
    return _shortest_codes(plan, min(preferred_code_length, max_code_length))


def _sparse_plan(name: str, shape: tuple, base_codebook: np.ndarray, sparse: SparseEntries) -> LayerPlan:
    codebook = base_codebook
    if sparse.alphabet > base_codebook.size:  # the fillers' +0.0 (or an empty codebook's entry)
        codebook = np.append(base_codebook, np.float32(0.0))
    plan = LayerPlan(name, shape, "sparse", sparse.gap_bits, codebook, sparse.values, sparse.gaps.symbols,
                     sparse.fillers)
    return _with_streams(plan, sparse.coded, sparse.gaps)


def _dense_plan(name: str, shape: tuple, base_codebook: np.ndarray, base_codes: np.ndarray, nz: np.ndarray,
                size: int, codecs) -> LayerPlan:
    zero_code = base_codebook.size  # the code of +0.0 when one is needed
    codes = np.full(size, zero_code, dtype=np.uint16)
    codes[nz] = base_codes
    codebook = base_codebook if nz.size == size else np.append(base_codebook, np.float32(0.0))
    if codebook.size == 0:  # nothing stored: one +0.0 entry keeps the codebook valid
        codebook = np.zeros(1, dtype=np.float32)
    coded = code_stream(codes, codebook.size, codecs=codecs)
    return _with_streams(LayerPlan(name, shape, "dense", 0, codebook, coded.symbols, None, 0), coded, None)


def _with_streams(plan: LayerPlan, codes: CodedStream, gaps: CodedStream | None) -> LayerPlan:
    """``plan`` holding its coded streams, its codec fields and sizes read from them."""
    plan.codes_stream, plan.est_codes_bytes = codes, codes.nbytes
    plan.codes_codec, plan.codes_max_length = _codec_fields(codes, plan.codes_max_length)
    if gaps is not None:
        plan.gaps_stream, plan.est_gaps_bytes = gaps, gaps.nbytes
        plan.gaps_codec, plan.gaps_max_length = _codec_fields(gaps, plan.gaps_max_length)
    return plan


def _codec_fields(coded: CodedStream, max_length: int) -> tuple[str, int]:
    """(codec id, code length limit) of a coded stream; a packed one keeps ``max_length``."""
    if isinstance(coded.codec, HuffmanCodec):
        return "huffman", coded.codec.max_code_length
    return "packed", max_length


def _shortest_codes(plan: LayerPlan, low: int) -> LayerPlan:
    """Each Huffman stream of ``plan`` at the lowest code length limit from ``low`` that keeps its size."""
    codes = shortest_code_limit(plan.codes_stream, low)
    gaps = None if plan.gaps_stream is None else shortest_code_limit(plan.gaps_stream, low)
    plan.codes, plan.gaps = codes.symbols, (None if gaps is None else gaps.symbols)
    return _with_streams(plan, codes, gaps)


def plan_net(netfile: NetFile, **kwargs: Any) -> list[LayerPlan]:
    """:func:`plan_layer` for every layer of a parsed ``.net`` file."""
    return [plan_layer(layer.name, layer.weight, **kwargs) for layer in netfile.layers]


def plan_to_encoded(plan: LayerPlan):
    """Build the :class:`~dcformat.encodings.model.EncodedTensor` of a plan.

    The streams a plan holds coded are stored as they are; a stream that was replaced
    since (or a plan built by hand) is coded by the writer with the plan's codec.
    """
    if plan.layout == "dense":
        layout: Any = Dense()
    else:
        gaps = _planned_stream(plan.gaps, plan.gaps_stream, plan.gaps_codec, plan.gaps_max_length)
        layout = (Sparse.coded(plan.gap_bits, gaps) if isinstance(gaps, CodedStream)
                  else Sparse(plan.gap_bits, plan.gaps.astype(np.uint16), gaps))
    codebook = plan.codebook.astype(np.float32)
    codes = _planned_stream(plan.codes, plan.codes_stream, plan.codes_codec, plan.codes_max_length)
    values = (CodebookValues.coded(codebook, codes) if isinstance(codes, CodedStream)
              else CodebookValues(codebook, plan.codes.astype(np.uint16), codes))
    return EncodedTensor("F32", tuple(int(d) for d in plan.shape), layout, values)


def _planned_stream(symbols: np.ndarray, coded: CodedStream | None, which: str, max_length: int):
    """The plan's coded stream when it still is the plan's (same array, same codec), else the codec to use."""
    codec = PackedCodec() if which == "packed" else HuffmanCodec(max_code_length=max_length)
    if coded is not None and coded.symbols is symbols and coded.codec.get_config() == codec.get_config():
        return coded
    return codec


def net_to_encoded(netfile: NetFile, *, reencode: bool = True, allow_dense: bool = True,
                   allow_packed: bool = True, gap_bits: int | None = None,
                   max_code_length: int = 15) -> dict[str, Any]:
    """Every layer as dcformat tensors: ``{"<layer>.weight": EncodedTensor, "<layer>.bias": float32 array}``.

    Names keep the Caffe layer names (``fire2/conv1x1_1.weight``); a layer without a bias
    has no ``.bias`` entry. Each weight decodes to exactly (bit for bit) the ``.net``
    decoding. With ``reencode`` (the default) each weight gets the smallest encoding
    :func:`plan_layer` finds (``allow_dense=False`` keeps every weight SPARSE,
    ``allow_packed=False`` Huffman-codes every stream, ``gap_bits`` fixes the gap width,
    ``max_code_length`` caps Huffman code lengths). With ``reencode=False`` the 2016
    streams are kept as they are (4-bit gaps with their fillers, the full codebook),
    each Huffman-coded with the codec's defaults.
    """
    out: dict[str, Any] = {}
    if reencode:
        weights = [plan_to_encoded(plan) for plan in plan_net(
            netfile, allow_dense=allow_dense, allow_packed=allow_packed, gap_bits=gap_bits,
            max_code_length=max_code_length)]
    else:
        weights = [EncodedTensor("F32", layer.weight_shape,
                                 Sparse(4, layer.gaps.astype(np.uint16), HuffmanCodec()),
                                 CodebookValues(layer.codebook.copy(), layer.codes.astype(np.uint16), HuffmanCodec()))
                   for layer in netfile.layers]
    for layer, weight in zip(netfile.layers, weights):
        out[f"{layer.name}.weight"] = weight
        if layer.bias.size:
            out[f"{layer.name}.bias"] = layer.bias.copy()
    return out


def decode_encoded(t) -> np.ndarray:
    """Reconstruct an EncodedTensor with codebook values in numpy (no container involved)."""
    from ..encodings.model import Sparse

    n = t.size
    cb = np.asarray(t.values.codebook, dtype=np.float32)
    vals = cb[np.asarray(t.values.codes, dtype=np.int64)]
    out = np.zeros(n, dtype=np.float32)
    if isinstance(t.layout, Sparse):
        pos = np.cumsum(np.asarray(t.layout.gaps, dtype=np.int64) + 1) - 1
        if pos.size and pos[-1] >= n:
            raise ValueError("gap overrun")
        out[pos] = vals
    else:
        out[:] = vals
    return out.reshape(t.shape)
