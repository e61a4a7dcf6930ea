"""The reference decoder against files built byte by byte from spec/FORMAT.md.

The builder below is deliberately tiny and literal (struct.pack and zlib.crc32, one
helper per spec structure) so that it shares nothing with the decoder it checks. The
valid files are decoded and compared bit for bit; then each rejection rule R1-R33 of
Appendix B (and PLANES' R40-R43) is broken in turn and the exact error class is asserted.
"""

from __future__ import annotations

import json
import pathlib
import struct
import sys
import zlib
from dataclasses import dataclass, replace

import ml_dtypes
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dcformat import errors
from dcformat.reference import DecodedFile, decode_file
from dcformat.reference.primitives import canonical_codes

MAGIC = b"\x89DCF\r\n\x1a\n"
BYTES, PACKED, HUFFMAN = 0, 1, 2
DENSE, SPARSE = 0, 1
RAW, CODEBOOK, BANK, PLANES = 0, 1, 2, 4
HUFF_CHUNK, RAW_CHUNK = 0, 1
# DType codes (Appendix A.1)
BOOL, U8, I8, I16, U16, I32, U32, I64, U64, F16, BF16, F32, F64, F8_E4M3, F8_E5M2 = range(15)
NP = {
    BOOL: np.bool_, U8: np.uint8, I8: np.int8, I16: np.int16, U16: np.uint16, I32: np.int32,
    U32: np.uint32, I64: np.int64, U64: np.uint64, F16: np.float16, BF16: ml_dtypes.bfloat16,
    F32: np.float32, F64: np.float64, F8_E4M3: ml_dtypes.float8_e4m3fn,
    F8_E5M2: ml_dtypes.float8_e5m2,
}


# === a tiny writer, straight from the spec ==============================================


def u8(x):
    return struct.pack("<B", x)


def u32(x):
    return struct.pack("<I", x)


def u64(x):
    return struct.pack("<Q", x)


def string(s):
    b = s.encode() if isinstance(s, str) else s
    return u32(len(b)) + b


def align_up(x, a):
    return (x + a - 1) // a * a


def le_bytes(values, dtype_code):
    """Values of a DType as little-endian bytes (the test host is little-endian)."""
    assert sys.byteorder == "little"
    return np.asarray(values, dtype=NP[dtype_code]).tobytes()


def pack_bits(bits):
    """A bit list into bytes, bit i at bit i%8 of byte i//8 (LSB first)."""
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        out[i // 8] |= bit << (i % 8)
    return bytes(out)


def lsb_bits(value, width):
    return [(value >> k) & 1 for k in range(width)]


def width_of(alphabet):
    return max(1, (alphabet - 1).bit_length())


def packed(symbols, alphabet):
    w = width_of(alphabet)
    return pack_bits([b for s in symbols for b in lsb_bits(s, w)])


def rfc1951_codes(lengths):
    """Canonical codes as RFC 1951 3.2.2 computes them (bl_count / next_code)."""
    max_len = max(lengths, default=0)
    bl_count = [0] * (max_len + 1)
    for n in lengths:
        if n:
            bl_count[n] += 1
    code, next_code = 0, [0] * (max_len + 2)
    for bits in range(1, max_len + 1):
        code = (code + bl_count[bits - 1]) << 1
        next_code[bits] = code
    codes = {}
    for sym, n in enumerate(lengths):
        if n:
            codes[sym] = (n, next_code[n])
            next_code[n] += 1
    return codes


def huffman_chunk(symbols, lengths):
    codes = rfc1951_codes(lengths)
    bits = []
    for s in symbols:
        n, c = codes[s]
        bits += [(c >> (n - 1 - k)) & 1 for k in range(n)]  # MSB first
    return pack_bits(bits)


@dataclass
class Huff:
    """The parts of a Huffman stream segment, to be mutated and assembled."""

    lengths: list
    entries: list  # [Mode, Byte_Offset, First_Symbol, Start_Position]
    bit_streams: bytes
    table_size: int | None = None
    nibble_pad: int = 0
    chunk_count: int | None = None

    def payload(self):
        t = len(self.lengths) if self.table_size is None else self.table_size
        nib = list(self.lengths) + ([self.nibble_pad] if len(self.lengths) % 2 else [])
        table = bytes(nib[i] | nib[i + 1] << 4 for i in range(0, len(nib), 2))
        n = len(self.entries) if self.chunk_count is None else self.chunk_count
        return (u32(t) + table + u32(n) + b"".join(struct.pack("<BQQQ", *e) for e in self.entries)
                + self.bit_streams)


def huff(chunks, lengths, alphabet, *, gap_stream=False):
    """chunks: list of (mode, symbols)."""
    w = width_of(alphabet)
    entries, bodies, offset, first, covered = [], [], 0, 0, 0
    for mode, symbols in chunks:
        body = huffman_chunk(symbols, lengths) if mode == HUFF_CHUNK else packed(symbols, alphabet)
        entries.append([mode, offset, first, covered if gap_stream else 0])
        bodies.append(body)
        offset += len(body)
        first += len(symbols)
        covered += sum(g + 1 for g in symbols)
    return Huff(list(lengths), entries, b"".join(bodies))


@dataclass
class Seg:
    codec: int
    payload: bytes
    offset_delta: int = 0  # added to the right Offset in the header
    length: int | None = None  # Length override
    checksum: int | None = None  # Checksum override


@dataclass
class Rec:
    name: object
    dtype: int
    shape: tuple
    segments: list
    layout: int = DENSE
    value_kind: int = RAW
    gap_bits: int = 1
    entry_count: int = 0
    codebook_size: int = 1
    bank_index: int = 0
    block_size: int = 1

    def to_bytes(self, offsets):
        b = string(self.name) + u8(self.dtype) + u8(len(self.shape))
        b += b"".join(u64(d) for d in self.shape) + u8(self.layout) + u8(self.value_kind)
        if self.layout == SPARSE:
            b += u8(self.gap_bits) + u64(self.entry_count)
        if self.value_kind == CODEBOOK:
            b += u32(self.codebook_size)
        if self.value_kind == BANK:
            b += u32(self.bank_index)
        if self.value_kind == PLANES:
            b += u64(self.block_size)
        for s in self.segments:
            length = len(s.payload) if s.length is None else s.length
            crc = zlib.crc32(s.payload) if s.checksum is None else s.checksum
            b += struct.pack("<BQQI", s.codec, next(offsets) + s.offset_delta, length, crc)
        return b


def build(tensors=(), banks=(), metadata=(), *, alignment=64, version=(1, 0), required=0,
          optional=0, extension=b"", header=None, header_cut=0, header_size=None,
          checksum=None):
    """A whole file: preamble, header, zero padding, segments aligned to ``alignment``."""
    segments = [s for r in list(banks) + list(tensors) for s in r.segments]
    data, offsets = bytearray(), []
    for s in segments:
        offset = align_up(len(data), alignment)
        data += bytes(offset - len(data)) + s.payload
        offsets.append(offset)
    if header is None:
        it = iter(offsets)
        header = u32(alignment) + u32(len(metadata))
        header += b"".join(string(k) + string(v) for k, v in metadata)
        header += u32(len(banks)) + b"".join(r.to_bytes(it) for r in banks)
        header += u32(len(tensors)) + b"".join(r.to_bytes(it) for r in tensors)
        header += extension
    header = header[:len(header) - header_cut]
    size = len(header) if header_size is None else header_size
    pre = MAGIC + struct.pack("<HHIIQ", *version, required, optional, size)
    crc = zlib.crc32(pre + header) if checksum is None else checksum
    out = pre + u32(crc) + header
    return out + bytes(align_up(len(out), alignment) - len(out)) + bytes(data)


# --- record helpers ------------------------------------------------------------------


def raw(name, values, dtype, shape=None):
    values = np.asarray(values, dtype=NP[dtype])
    shape = values.shape if shape is None else shape
    return Rec(name, dtype, tuple(shape), [Seg(BYTES, le_bytes(values.ravel(), dtype))])


def f32(name="w", values=(1.0, 2.0, -3.5)):
    return raw(name, list(values), F32)


def codebook_rec(name, dtype, shape, codebook, codes_seg, *, gaps_seg=None, gap_bits=1, m=0):
    segs = [Seg(BYTES, le_bytes(codebook, dtype))] + ([gaps_seg] if gaps_seg else []) + [codes_seg]
    return Rec(name, dtype, tuple(shape), segs, layout=SPARSE if gaps_seg else DENSE,
               value_kind=CODEBOOK, codebook_size=len(codebook), gap_bits=gap_bits, entry_count=m)


def sparse_raw(name, dtype, shape, gaps, values, gap_bits, *, gaps_seg=None):
    gaps_seg = gaps_seg or Seg(PACKED, packed(gaps, 2 ** gap_bits))
    return Rec(name, dtype, tuple(shape), [gaps_seg, Seg(BYTES, le_bytes(values, dtype))],
               layout=SPARSE, gap_bits=gap_bits, entry_count=len(gaps))


def bank_tensor(name, shape, selectors, *, alphabet, bank_index=0, dtype=F32, seg=None):
    seg = seg or Seg(PACKED, packed(selectors, alphabet))
    return Rec(name, dtype, tuple(shape), [seg], value_kind=BANK, bank_index=bank_index)


#: PLANES values: "the float layout" of each float DType, (W, E, M).
FLOAT_LAYOUT = {F16: (16, 5, 10), BF16: (16, 8, 7), F32: (32, 8, 23), F64: (64, 11, 52), F8_E4M3: (8, 4, 3),
                F8_E5M2: (8, 5, 2)}
V12 = {"version": (1, 2), "required": 1 << 1}  # a file with PLANES values: Required_Features bit 1


def split_planes(x, dtype):
    """The planes of element bits ``x`` and their widths: the exponent, then t = (sign << M) |
    mantissa cut into 8-bit fields from the top, the last holding what remains."""
    w, e, m = FLOAT_LAYOUT[dtype]
    t = ((x >> (w - 1)) << m) | (x & (2 ** m - 1))
    widths = [8] * ((w - e) // 8) + ([(w - e) % 8] if (w - e) % 8 else [])
    fields, shift = [], w - e
    for width in widths:
        shift -= width
        fields.append((t >> shift) & (2 ** width - 1))
    return [(x >> m) & (2 ** e - 1)] + fields, [e] + widths


def planes_rec(name, dtype, bits, block_size, shape=None):
    """A DENSE PLANES record of the element bit patterns ``bits``, every plane PACKED."""
    segs = []
    for start in range(0, len(bits), block_size):
        split = [split_planes(x, dtype) for x in bits[start:start + block_size]]
        for k, width in enumerate(split[0][1]):
            segs.append(Seg(PACKED, packed([symbols[k] for symbols, _ in split], 2 ** width)))
    shape = (len(bits),) if shape is None else shape
    return Rec(name, dtype, shape, segs, value_kind=PLANES, block_size=block_size)


def assert_same(actual, expected):
    expected = np.asarray(expected)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.tobytes() == expected.tobytes(), (actual, expected)


def refuse(data, error, match=None, **kwargs):
    """Decode and require exactly ``error`` (not a subclass of it, not a parent).

    ``match``, a substring of the message, pins the check when two checks in a row
    would raise the same class.
    """
    with pytest.raises(errors.FormatError) as info:
        decode_file(data, **kwargs)
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    assert match is None or match in str(info.value), str(info.value)
    return info.value


# === the hand-made Huffman stream ======================================================

# Codes stream of a 4-entry codebook: lengths (1, 2, 3, 3) give the canonical codes
# 0 -> 0, 1 -> 10, 2 -> 110, 3 -> 111. Chunk 0 (Huffman) holds 0 1 2 3 0: the bits
# 0 10 110 111 0, LSB first into bytes: 0b11011010 0b......01 -> DA 01. Chunk 1 (raw,
# w = 2) holds 3 2 1: bits 11 01 10 LSB first -> 0b00011011 -> 1B.
HAND_HUFFMAN = (
    u32(4) + bytes([0x21, 0x33]) + u32(2)
    + struct.pack("<BQQQ", 0, 0, 0, 0) + struct.pack("<BQQQ", 1, 2, 5, 0)
    + bytes([0xDA, 0x01, 0x1B])
)
HAND_CODES = [0, 1, 2, 3, 0, 3, 2, 1]
HAND_CODEBOOK = [0.0, 0.5, -1.25, 8.0]


def test_test_builder_matches_hand_made_huffman():
    stream = huff([(HUFF_CHUNK, [0, 1, 2, 3, 0]), (RAW_CHUNK, [3, 2, 1])], [1, 2, 3, 3], 4)
    assert stream.payload() == HAND_HUFFMAN


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 15), max_size=40))
def test_canonical_codes_match_rfc1951(lengths):
    """The spec's sentence ("each next code is the previous plus one, shifted left by
    the difference in length") assigns the codes RFC 1951's algorithm does."""
    assume(sum(2.0 ** -n for n in lengths if n) <= 1)
    expected = {(n, c): sym for sym, (n, c) in rfc1951_codes(lengths).items()}
    assert canonical_codes(lengths) == expected


# === valid files ========================================================================


def sample():
    """One file holding every kind of record; returns (bytes, expected)."""
    expected_tensors, tensors = {}, []

    def add(rec, array):
        tensors.append(rec)
        expected_tensors[rec.name] = array

    add(f32("dense.f32", [1.0, -2.5, 3.25, float("inf")]), np.array([1, -2.5, 3.25, np.inf], np.float32))
    add(raw("bool", [[True, False], [False, True]], BOOL), np.array([[1, 0], [0, 1]], np.bool_))
    bf = np.array([1.5, -0.0078125, 3e38], dtype=ml_dtypes.bfloat16)
    add(raw("bf16", bf, BF16), bf)
    add(raw("scalar", np.array(-7, np.int64), I64), np.array(-7, np.int64))
    add(Rec("empty", F32, (0, 5), [Seg(BYTES, b"")]), np.zeros((0, 5), np.float32))

    # codebook tensor with the hand-made Huffman codes stream (2 chunks, one raw)
    add(codebook_rec("hand", F32, (2, 4), HAND_CODEBOOK, Seg(HUFFMAN, HAND_HUFFMAN)),
        np.array(HAND_CODEBOOK, np.float32)[HAND_CODES].reshape(2, 4))

    # sparse RAW tensor: nonzeros at 1, 2, 9, 15 of 20 with Gap_Bits 2 (gaps <= 3),
    # so gaps 1 0 [3] 2 [3] 1 with fillers [] of value zero; the gap stream is Huffman
    # in two chunks, the second raw with Start_Position 7.
    gaps = [1, 0, 3, 2, 3, 1]
    gap_stream = huff([(HUFF_CHUNK, gaps[:3]), (RAW_CHUNK, gaps[3:])], [2, 2, 2, 2], 4, gap_stream=True)
    assert gap_stream.entries[1][3] == 7
    dense = np.zeros(20, np.float32)
    dense[[1, 2, 9, 15]] = [0.5, -1.0, 2.0, 4.0]
    add(sparse_raw("sparse", F32, (4, 5), gaps, [0.5, -1.0, 0.0, 2.0, 0.0, 4.0], 2,
                   gaps_seg=Seg(HUFFMAN, gap_stream.payload())), dense.reshape(4, 5))

    # sparse CODEBOOK tensor (I8), packed gaps and codes, one filler (code 0 -> value 0)
    cb = [0, -3, 5]
    # (Gap_Bits 1: entries at 0, 2 (filler), 4, 6)
    add(codebook_rec("sparse.cb", I8, (10,), cb, Seg(PACKED, packed([1, 0, 2, 1], 3)),
                     gaps_seg=Seg(PACKED, packed([0, 1, 1, 1], 2)), gap_bits=1, m=4),
        np.array([-3, 0, 0, 0, 5, 0, -3, 0, 0, 0], np.int8))
    # empty codebook stream: S = 0 Huffman stream with no chunk
    add(codebook_rec("empty.cb", F16, (3, 0), [1.0], Seg(HUFFMAN, Huff([1], [], b"").payload())),
        np.zeros((3, 0), np.float16))

    # bank (L=3 kernels of 2x2) and two tensors over it
    kernels = np.arange(12, dtype=np.float32).reshape(3, 2, 2) - 5
    bank = raw("k", kernels, F32)
    add(bank_tensor("gw", (2, 2, 2, 2), [2, 0, 1, 2], alphabet=3),
        kernels[[2, 0, 1, 2]].reshape(2, 2, 2, 2))
    sparse_bank = Rec("gw.sparse", F32, (3, 2, 2),
                      [Seg(PACKED, packed([1, 0], 2)), Seg(PACKED, packed([1, 2], 3))],
                      layout=SPARSE, value_kind=BANK, gap_bits=1, entry_count=2)
    exp = np.zeros((3, 2, 2), np.float32)
    exp[1], exp[2] = kernels[1], kernels[2]
    add(sparse_bank, exp)

    # every other dtype, dense raw
    for code, values in [(U8, [0, 255]), (I8, [-128, 127]), (I16, [-32768, 1]), (U16, [65535, 2]),
                         (I32, [-2**31, 3]), (U32, [2**32 - 1, 4]), (U64, [2**64 - 1, 5]),
                         (F16, [65504.0, -0.5]), (F64, [np.pi, -1e300]),
                         (F8_E4M3, [448.0, -0.015625]), (F8_E5M2, [57344.0, -1.5])]:
        a = np.array(values, dtype=NP[code])
        add(raw(f"dtype{code}", a, code), a)

    metadata = [("format", "pt"), ("ünï", "✓ value")]
    return build(tensors, [bank], metadata), expected_tensors, {"k": kernels}, dict(metadata)


def test_decode_sample_file():
    data, tensors, banks, metadata = sample()
    decoded = decode_file(data)
    assert isinstance(decoded, DecodedFile)
    assert decoded.version == (1, 0)
    assert decoded.metadata == metadata
    assert list(decoded.tensors) == list(tensors)
    for name, expected in tensors.items():
        assert_same(decoded.tensors[name], expected)
    assert list(decoded.banks) == ["k"]
    assert_same(decoded.banks["k"], banks["k"])
    assert decoded.tensors["bf16"].dtype == np.dtype(ml_dtypes.bfloat16)
    assert decoded.tensors["scalar"].shape == ()


def test_decode_empty_file():
    decoded = decode_file(build())
    assert (decoded.metadata, decoded.tensors, decoded.banks) == ({}, {}, {})
    assert len(build()) == 64  # 32 + 12 header bytes, padded to Alignment


def test_checksums_off_decodes_the_same():
    data, tensors, _, _ = sample()
    decoded = decode_file(data, verify_checksums=False)
    for name, expected in tensors.items():
        assert_same(decoded.tensors[name], expected)


def test_alignment_other_than_64():
    for alignment in (8, 4096):
        data = build([f32("a"), f32("b", [5.0])], alignment=alignment)
        assert_same(decode_file(data).tensors["b"], np.array([5.0], np.float32))


def test_bank_and_tensor_may_share_a_name():
    kernels = np.ones((2, 3), np.float32)
    data = build([bank_tensor("x", (4, 3), [0, 1, 1, 0], alphabet=2)], [raw("x", kernels, F32)])
    decoded = decode_file(data)
    assert_same(decoded.tensors["x"], np.ones((4, 3), np.float32))


def test_bank_of_rank_one_has_scalar_kernels():
    data = build([bank_tensor("t", (2, 2), [1, 0, 0, 1], alphabet=2)], [raw("b", [7.0, 9.0], F32)])
    assert_same(decode_file(data).tensors["t"], np.array([[9, 7], [7, 9]], np.float32))


def test_extension_ignored_in_later_minor():
    data = build([f32()], version=(1, 3), extension=b"future fields")
    decoded = decode_file(data)
    assert decoded.version == (1, 3)
    assert_same(decoded.tensors["w"], np.array([1, 2, -3.5], np.float32))


def test_optional_features_ignored():
    assert decode_file(build([f32()], optional=0xFFFFFFFF)).tensors["w"].shape == (3,)


def test_huffman_all_raw_chunks_need_no_codes():
    stream = huff([(RAW_CHUNK, [1, 0, 2])], [], 3)
    data = build([codebook_rec("t", U8, (3,), [10, 20, 30], Seg(HUFFMAN, stream.payload()))])
    assert_same(decode_file(data).tensors["t"], np.array([20, 10, 30], np.uint8))


def test_huffman_single_symbol_code_of_length_one():
    stream = huff([(HUFF_CHUNK, [1, 1, 1])], [0, 1], 2)
    assert stream.bit_streams == b"\x00"
    data = build([codebook_rec("t", U8, (3,), [10, 20], Seg(HUFFMAN, stream.payload()))])
    assert_same(decode_file(data).tensors["t"], np.array([20, 20, 20], np.uint8))


def test_long_codes_and_large_alphabet():
    # lengths 1, 2, ..., 14, 15, 15: a complete code with codes of every length to 15
    lengths = list(range(1, 16)) + [15]
    symbols = list(range(16)) * 3
    cb = list(range(16))
    stream = huff([(HUFF_CHUNK, symbols[:20]), (HUFF_CHUNK, symbols[20:])], lengths, 16)
    data = build([codebook_rec("t", I16, (48,), cb, Seg(HUFFMAN, stream.payload()))])
    assert_same(decode_file(data).tensors["t"], np.array(symbols, np.int16))


def test_gap_bits_16_and_max_gap_fillers():
    # one entry at unit 70000 of 70001 units with Gap_Bits 16: one filler of gap 65535
    # (reaching unit 65535), then gap 4464.
    gaps = [65535, 70000 - 65536]
    rec = sparse_raw("s", U8, (70001,), gaps, [0, 9], 16)
    out = decode_file(build([rec])).tensors["s"]
    assert out.shape == (70001,) and out[70000] == 9 and int(out.sum()) == 9


@settings(max_examples=40, deadline=None)
@given(
    dtype=st.sampled_from([U8, I16, F32, F64, BF16, BOOL]),
    n=st.integers(0, 60),
    density=st.floats(0, 1),
    gap_bits=st.integers(1, 4),
    codebook=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_sparse_round_trip(dtype, n, density, gap_bits, codebook, seed):
    """Any array, stored sparse with fillers (packed gaps), decodes to itself."""
    rng = np.random.default_rng(seed)
    palette = np.array([0, 1, 2, 3], dtype=NP[dtype]) if dtype != BOOL else np.array([0, 1], np.bool_)
    dense = palette[rng.integers(0, len(palette), n)] * (rng.random(n) < density).astype(NP[dtype])
    gaps, values, last = [], [], -1
    for p in np.flatnonzero(dense != 0):
        while p - last - 1 > 2 ** gap_bits - 1:
            gaps.append(2 ** gap_bits - 1)
            values.append(0)
            last += 2 ** gap_bits
        gaps.append(int(p - last - 1))
        values.append(dense[p])
        last = p
    values = np.array(values, dtype=NP[dtype])
    if codebook:
        codes = [int(np.flatnonzero(palette == v)[0]) for v in values]
        rec = codebook_rec("t", dtype, (n,), palette, Seg(PACKED, packed(codes, len(palette))),
                           gaps_seg=Seg(PACKED, packed(gaps, 2 ** gap_bits)), gap_bits=gap_bits,
                           m=len(gaps))
    else:
        rec = sparse_raw("t", dtype, (n,), gaps, values, gap_bits)
    assert_same(decode_file(build([rec])).tensors["t"], dense)


def test_planes_by_hand():
    # F16 -65504 (0xFBFF): exponent 30; t = 1 << 10 | 0x3FF = 0x7FF, cut 8 + 3: 0xFF, 7
    planes = [Seg(PACKED, packed([30], 32)), Seg(PACKED, packed([0xFF], 256)), Seg(PACKED, packed([7], 8))]
    decoded = decode_file(build([Rec("h", F16, (), planes, value_kind=PLANES, block_size=5)], **V12))
    assert decoded.tensors["h"].view(np.uint16).tolist() == 0xFBFF
    assert split_planes(0xFBFF, F16) == ([30, 0xFF, 7], [5, 8, 3])


@settings(max_examples=40, deadline=None)
@given(dtype=st.sampled_from(sorted(FLOAT_LAYOUT)), n=st.integers(0, 24), block_size=st.integers(1, 30),
       seed=st.integers(0, 2**32 - 1))
def test_property_planes_round_trip(dtype, n, block_size, seed):
    """Any bit patterns of a float DType, stored as PLANES in blocks of any size, decode to themselves."""
    width = FLOAT_LAYOUT[dtype][0]
    rng = np.random.default_rng(seed)
    bits = [int.from_bytes(rng.bytes(width // 8), "little") for _ in range(n)]
    expected = np.array(bits, dtype=f"<u{width // 8}").view(NP[dtype])
    assert_same(decode_file(build([planes_rec("t", dtype, bits, block_size)], **V12)).tensors["t"], expected)


def test_planes_sparse_and_empty():
    # SPARSE: the gaps, then the planes of the M = 2 entries; unstored units are +0.0
    rec = planes_rec("s", BF16, [0xBF80, 0x7FC1], 1, shape=(5,))
    gaps = Seg(PACKED, packed([1, 2], 4))
    rec = replace(rec, layout=SPARSE, gap_bits=2, entry_count=2, segments=[gaps] + rec.segments)
    assert decode_file(build([rec], **V12)).tensors["s"].view(np.uint16).tolist() == [0, 0xBF80, 0, 0, 0x7FC1]
    # S = 0: B = 0 blocks, no plane segment
    assert decode_file(build([planes_rec("e", F64, [], 3, shape=(0, 2))], **V12)).tensors["e"].shape == (0, 2)


# === rejection rules, Appendix B ========================================================


def patch(data, offset, new):
    return data[:offset] + new + data[offset + len(new):]


def header_end(data):
    return 32 + struct.unpack_from("<Q", data, 20)[0]


def test_r1_bad_magic():
    refuse(b"", errors.BadMagic)
    refuse(b"\x89DCF", errors.BadMagic)
    refuse(MAGIC[::-1] + bytes(40), errors.BadMagic)
    refuse(patch(build(), 0, b"\x09"), errors.BadMagic)  # 7-bit transfer
    refuse(build().replace(b"\r\n", b"\n", 1), errors.BadMagic)


def test_r2_truncated_preamble():
    refuse(MAGIC, errors.TruncatedError)
    refuse(build()[:31], errors.TruncatedError)


def test_r3_unsupported_version():
    refuse(build(version=(2, 0)), errors.UnsupportedVersion)
    refuse(build(version=(0, 9)), errors.UnsupportedVersion)


def test_r4_unknown_required_feature():
    refuse(build(required=1 << 3), errors.UnsupportedFeature)  # v1.3 knows bits 0 (GROUPED), 1 (PLANES), 2 (AFFINE)
    refuse(build(required=1 << 31), errors.UnsupportedFeature)


def test_r5_header_size_limit_before_truncation():
    refuse(build(header_size=100 * 1024 * 1024 + 1), errors.LimitExceeded)


def test_r6_truncated_header():
    data = build([f32()])
    refuse(data[:header_end(data) - 1], errors.TruncatedError)
    refuse(build(header_size=10_000), errors.TruncatedError)


def test_r7_header_checksum():
    data = build([f32()], [], [("k", "value")])
    bad = data.replace(b"value", b"valuf")
    refuse(bad, errors.ChecksumMismatch)
    assert decode_file(bad, verify_checksums=False).metadata == {"k": "valuf"}
    # the checked bytes include the preamble: Version_Minor 0 -> 1
    refuse(patch(data, 10, b"\x01"), errors.ChecksumMismatch)
    refuse(build(checksum=0), errors.ChecksumMismatch)


def test_r8_header_reads_stay_in_header():
    refuse(build([f32()], header_cut=1), errors.TruncatedError)
    refuse(build(header=u32(64)), errors.TruncatedError)
    refuse(build(header=u32(64) + u32(1) + u32(5) + b"ab"), errors.TruncatedError)  # key bytes
    refuse(build(header=b"\x40\x00"), errors.TruncatedError)


def test_r9_alignment():
    for alignment in (0, 4, 48, 8192, 3):
        refuse(build(header=u32(alignment) + u32(0) * 3), errors.InvalidHeader)


def test_r10_limits():
    a = u32(64)
    refuse(build(header=a + u32(65537)), errors.LimitExceeded)
    refuse(build(header=a + u32(1) + u32(4097)), errors.LimitExceeded)
    refuse(build(header=a + u32(1) + string("k") + u32(16 * 1024 * 1024 + 1)), errors.LimitExceeded)
    refuse(build(header=a + u32(0) + u32(1025)), errors.LimitExceeded)
    refuse(build(header=a + u32(0) + u32(0) + u32(2**20 + 1)), errors.LimitExceeded)
    refuse(build([f32("n" * 4097)]), errors.LimitExceeded)
    refuse(build([Rec("r", F32, (1,) * 9, [Seg(BYTES, b"\0" * 4)])]), errors.LimitExceeded)
    refuse(build([Rec("big", U8, (2**24, 2**24 + 1), [Seg(BYTES, b"")])]), errors.LimitExceeded, " N ")
    cb = codebook_rec("c", U8, (1,), [0], Seg(PACKED, b"\0"))
    refuse(build([replace(cb, codebook_size=65537)]), errors.LimitExceeded)
    refuse(build([], [Rec("b", U8, (65537,), [Seg(BYTES, bytes(65537))])]), errors.LimitExceeded)
    # "The product of the non-zero dimensions ... must be at most 2^48": N = 0 here
    refuse(build([Rec("z", U8, (0, 2**30, 2**30), [Seg(BYTES, b"")])]), errors.LimitExceeded, "Shape")
    refuse(build([Rec("z", U8, (0, 2**64 - 1), [Seg(BYTES, b"")])]), errors.LimitExceeded, "Shape")


def test_r10_limits_at_the_edge_are_accepted():
    assert decode_file(build([Rec("z", U8, (0, 2**48), [Seg(BYTES, b"")])])).tensors["z"].shape == (0, 2**48)
    assert decode_file(build([f32("n" * 4096)])).tensors["n" * 4096].shape == (3,)


def test_r11_utf8():
    refuse(build([], [], [(b"\xff", "v")]), errors.InvalidHeader)
    refuse(build([], [], [("k", b"\xc3")]), errors.InvalidHeader)
    refuse(build([f32(b"w\xed\xa0\x80")]), errors.InvalidHeader)  # a surrogate


def test_r12_duplicate_names():
    refuse(build([], [], [("k", "1"), ("k", "2")]), errors.DuplicateName)
    refuse(build([f32("w"), f32("w")]), errors.DuplicateName)
    refuse(build([], [raw("b", [1.0], F32), raw("b", [2.0], F32)]), errors.DuplicateName)


def test_r13_unknown_dtype():
    for code in (15, 255):
        refuse(build([Rec("t", code, (1,), [Seg(BYTES, b"\0")])]), errors.UnknownDType)


def test_r14_unknown_encodings():
    refuse(build([replace(f32(), layout=2)]), errors.UnknownEncoding)
    refuse(build([replace(f32(), value_kind=5)]), errors.UnknownEncoding)  # 3 GROUPED (v1.1), 4 PLANES (v1.2)
    refuse(build([Rec("t", U8, (1,), [Seg(4, b"\0")])]), errors.UnknownEncoding)  # 3 is AFFINE (v1.3)
    stream = huff([(HUFF_CHUNK, [0, 1])], [1, 1], 2)
    stream.entries[0][0] = 2
    refuse(build([codebook_rec("t", U8, (2,), [1, 2], Seg(HUFFMAN, stream.payload()))]),
           errors.UnknownEncoding)


def test_r15_invalid_header_fields():
    sp = sparse_raw("s", F32, (4,), [0, 1], [1.0, 2.0], 1)
    refuse(build([replace(sp, gap_bits=0)]), errors.InvalidHeader)
    refuse(build([replace(sp, gap_bits=17)]), errors.InvalidHeader)
    refuse(build([replace(sp, entry_count=5)]), errors.InvalidHeader, "Entry_Count")  # M > U = 4
    cb = codebook_rec("c", U8, (2,), [1], Seg(PACKED, b"\0"))
    refuse(build([replace(cb, codebook_size=0, segments=[Seg(BYTES, b""), cb.segments[1]])]),
           errors.InvalidHeader)

    bank = raw("b", np.zeros((2, 3), np.float32), F32)
    gw = bank_tensor("g", (4, 3), [0, 1, 0, 1], alphabet=2)
    assert decode_file(build([gw], [bank])).tensors["g"].shape == (4, 3)
    refuse(build([replace(gw, bank_index=1)], [bank]), errors.InvalidHeader)
    refuse(build([gw]), errors.InvalidHeader)  # no bank at all
    refuse(build([replace(gw, dtype=F64)], [bank]), errors.InvalidHeader)
    refuse(build([replace(gw, shape=(4, 2))], [bank]), errors.InvalidHeader)
    refuse(build([replace(gw, shape=())], [raw("b", np.zeros((2, 3, 1), np.float32), F32)]),
           errors.InvalidHeader, "Rank")  # Rank below r
    # bank shape rules and no BANK-valued bank
    refuse(build([], [Rec("b", F32, (), [Seg(BYTES, b"\0" * 4)])]), errors.InvalidHeader)
    refuse(build([], [Rec("b", F32, (0, 3), [Seg(BYTES, b"")])]), errors.InvalidHeader)
    refuse(build([], [Rec("b", F32, (2, 0), [Seg(BYTES, b"")])]), errors.InvalidHeader)
    refuse(build([], [bank, replace(gw, name="b2")]), errors.InvalidHeader)
    # segment codec must fit the segment
    refuse(build([Rec("t", U8, (1,), [Seg(PACKED, b"\0")])]), errors.InvalidHeader)
    refuse(build([replace(cb, segments=[cb.segments[0], Seg(BYTES, b"\0")])]), errors.InvalidHeader)
    refuse(build([replace(cb, segments=[Seg(HUFFMAN, b"\0"), cb.segments[1]])]), errors.InvalidHeader)


def test_r16_no_extension_in_minor_0():
    refuse(build([f32()], extension=b"\0"), errors.InvalidHeader)


def test_r17_padding_is_zero():
    data = build([f32("a"), f32("b")])
    assert header_end(data) % 64
    refuse(patch(data, header_end(data), b"\x01"), errors.NonZeroPadding)
    data_offset = align_up(header_end(data), 64)
    refuse(patch(data, data_offset + 12, b"\x01"), errors.NonZeroPadding)  # after segment a
    refuse(patch(data, data_offset + 63, b"\x80"), errors.NonZeroPadding)


def test_r18_layout():
    two = [f32("a"), f32("b")]
    refuse(build([two[0], replace(two[1], segments=[Seg(BYTES, two[1].segments[0].payload, 8)])]),
           errors.InvalidLayout)  # misaligned (and a hole)
    refuse(build([two[0], replace(two[1], segments=[Seg(BYTES, two[1].segments[0].payload, -64)])]),
           errors.InvalidLayout)  # overlap
    refuse(build([two[0], replace(two[1], segments=[Seg(BYTES, two[1].segments[0].payload, 64)])]),
           errors.InvalidLayout)  # hole of a whole alignment unit
    refuse(build([replace(two[0], segments=[Seg(BYTES, two[0].segments[0].payload, 64)])]),
           errors.InvalidLayout)  # first segment not at 0
    refuse(build(two) + b"\0", errors.InvalidLayout)  # bytes after the last segment
    refuse(build() + b"\0", errors.InvalidLayout)


def test_r19_file_holds_every_segment():
    data = build([f32("a"), f32("b")])
    refuse(data[:-1], errors.TruncatedError)
    refuse(data[:-70], errors.TruncatedError)


def test_r20_bytes_length():
    refuse(build([Rec("t", F32, (3,), [Seg(BYTES, b"\0" * 8)])]), errors.InvalidHeader)
    refuse(build([Rec("t", F32, (3,), [Seg(BYTES, b"\0" * 16)])]), errors.InvalidHeader)
    cb = codebook_rec("c", F32, (2,), [1.0, 2.0], Seg(PACKED, b"\x02"))
    refuse(build([replace(cb, codebook_size=3)]), errors.InvalidHeader)
    refuse(build([sparse_raw("s", F32, (4,), [0, 1], [1.0], 1)]), errors.InvalidHeader)


def test_r21_segment_checksum():
    data = build([f32()])
    bad = patch(data, len(data) - 1, b"\x41")  # sign byte of -3.5
    refuse(bad, errors.ChecksumMismatch)
    assert_same(decode_file(bad, verify_checksums=False).tensors["w"], np.array([1, 2, 14], np.float32))
    rec = f32()
    rec.segments[0].checksum = 0
    refuse(build([rec]), errors.ChecksumMismatch)


def test_r22_packed_stream():
    cb = [10, 20, 30]
    ok = codebook_rec("c", U8, (3,), cb, Seg(PACKED, packed([0, 1, 2], 3)))
    assert_same(decode_file(build([ok])).tensors["c"], np.array(cb, np.uint8))
    refuse(build([codebook_rec("c", U8, (3,), cb, Seg(PACKED, packed([0, 1, 2], 3) + b"\0"))]),
           errors.CorruptStream)
    refuse(build([codebook_rec("c", U8, (5,), cb, Seg(PACKED, packed([0, 1, 2], 3)))]),
           errors.CorruptStream)  # too short for 5 symbols
    refuse(build([codebook_rec("c", U8, (3,), cb, Seg(PACKED, bytes([0b01100100 | 0x40])))]),
           errors.NonZeroPadding)
    refuse(build([codebook_rec("c", U8, (3,), cb, Seg(PACKED, bytes([0b10100100])))]),
           errors.NonZeroPadding)
    refuse(build([codebook_rec("c", U8, (0,), cb, Seg(PACKED, b"\0"))]), errors.CorruptStream)


def hand_huffman_file(mutate=None, payload=None):
    """The hand-made codebook tensor, with its Huffman stream parts mutated."""
    stream = huff([(HUFF_CHUNK, [0, 1, 2, 3, 0]), (RAW_CHUNK, [3, 2, 1])], [1, 2, 3, 3], 4)
    if mutate:
        mutate(stream)
    payload = stream.payload() if payload is None else payload
    return build([codebook_rec("hand", F32, (2, 4), HAND_CODEBOOK, Seg(HUFFMAN, payload))])


def test_hand_huffman_file_is_valid():
    out = decode_file(hand_huffman_file()).tensors["hand"]
    assert_same(out, np.array(HAND_CODEBOOK, np.float32)[HAND_CODES].reshape(2, 4))


def test_r23_table_size_and_nibble():
    refuse(hand_huffman_file(lambda s: s.lengths.append(0)), errors.InvalidHuffmanTable)  # T=5 > 4

    def odd_table(s):
        s.lengths[:] = [1, 2, 2]
        s.nibble_pad = 1
        s.entries[0][0] = RAW_CHUNK
    refuse(hand_huffman_file(odd_table), errors.NonZeroPadding)


def test_r24_kraft_and_codes_for_huffman_chunks():
    def oversubscribed(s):
        s.lengths[:] = [1, 1, 1, 0]
    refuse(hand_huffman_file(oversubscribed), errors.InvalidHuffmanTable)

    def no_codes(s):
        s.lengths[:] = [0, 0, 0, 0]
    refuse(hand_huffman_file(no_codes), errors.InvalidHuffmanTable)


def test_r25_chunk_count():
    def count(n):
        return lambda s: setattr(s, "chunk_count", n)
    refuse(hand_huffman_file(count(0)), errors.CorruptStream)
    refuse(hand_huffman_file(count(9)), errors.CorruptStream)  # > S = 8
    refuse(hand_huffman_file(payload=u32(4) + bytes([0x21, 0x33]) + u32(2) + b"\0" * 30),
           errors.TruncatedError)  # the chunk table does not fit
    refuse(hand_huffman_file(payload=u32(4) + bytes([0x21])), errors.TruncatedError)
    empty = Huff([1], [[0, 0, 0, 0]], b"")
    refuse(build([codebook_rec("e", U8, (0,), [1], Seg(HUFFMAN, empty.payload()))]), errors.CorruptStream,
           "Chunk_Count")


def test_empty_huffman_stream_with_stray_bytes():
    # "When S = 0 the bit streams must be empty (the segment ends after Chunk_Count) else
    # CorruptStream."
    stray = Huff([1], [], b"\0")
    refuse(build([codebook_rec("e", U8, (0,), [1], Seg(HUFFMAN, stray.payload()))]), errors.CorruptStream)


def test_r26_chunk_positions():
    def entry(c, i, value):
        def mutate(s):
            s.entries[c][i] = value
        return mutate
    corrupt = errors.CorruptStream
    refuse(hand_huffman_file(entry(0, 1, 1)), corrupt, "chunk 0 Byte_Offset")  # not 0
    refuse(hand_huffman_file(entry(1, 1, 4)), corrupt, "past the bit streams")  # B = 3
    refuse(hand_huffman_file(entry(0, 2, 1)), corrupt, "chunk 0 First_Symbol")  # not 0
    refuse(hand_huffman_file(entry(1, 2, 0)), corrupt, "does not increase")  # equal
    refuse(hand_huffman_file(entry(1, 2, 8)), corrupt, "not below the symbol count")

    def decreasing(s):
        s.entries.append([RAW_CHUNK, 1, 7, 0])
        s.entries[1][2] = 5
    refuse(hand_huffman_file(decreasing), errors.CorruptStream, "decreases")


def test_r27_raw_chunk():
    def longer(s):
        s.bit_streams += b"\0"
    refuse(hand_huffman_file(longer), errors.CorruptStream)

    def trailing(s):
        s.bit_streams = s.bit_streams[:2] + b"\x5B"  # bit 6 set after 3 x 2 bits
    refuse(hand_huffman_file(trailing), errors.NonZeroPadding)


def test_r28_huffman_chunk():
    def read_past(s):  # chunk 0 given 1 byte for 10 bits
        s.bit_streams = s.bit_streams[:1] + s.bit_streams[2:]
        s.entries[1][1] = 1
    refuse(hand_huffman_file(read_past), errors.CorruptStream, "past the chunk")

    def extra_byte(s):
        s.bit_streams = s.bit_streams[:2] + b"\0" + s.bit_streams[2:]
        s.entries[1][1] = 3
    refuse(hand_huffman_file(extra_byte), errors.CorruptStream)

    def trailing(s):
        s.bit_streams = s.bit_streams[:1] + b"\x81" + s.bit_streams[2:]
    refuse(hand_huffman_file(trailing), errors.NonZeroPadding)

    # a bit pattern no code starts with: a single code "0" and a stream bit 1
    bad = huff([(HUFF_CHUNK, [1, 1, 1])], [0, 1], 2)
    bad.bit_streams = b"\x02"
    refuse(build([codebook_rec("t", U8, (3,), [10, 20], Seg(HUFFMAN, bad.payload()))]),
           errors.CorruptStream, "start no code")


def test_r29_start_position():
    refuse(hand_huffman_file(lambda s: s.entries[1].__setitem__(3, 5)), errors.CorruptStream)
    gaps = [1, 0, 3, 2]
    stream = huff([(HUFF_CHUNK, gaps[:2]), (RAW_CHUNK, gaps[2:])], [2, 2, 2, 2], 4, gap_stream=True)
    assert stream.entries[1][3] == 3

    def sparse_file(s):
        return build([sparse_raw("s", U8, (12,), gaps, [1, 2, 3, 4], 2, gaps_seg=Seg(HUFFMAN, s.payload()))])
    assert_same(decode_file(sparse_file(stream)).tensors["s"],
                np.array([0, 1, 2, 0, 0, 0, 3, 0, 0, 4, 0, 0], np.uint8))
    stream.entries[1][3] = 2
    refuse(sparse_file(stream), errors.CorruptStream)
    stream.entries[1][3] = 3
    stream.entries[0][3] = 1
    refuse(sparse_file(stream), errors.CorruptStream)


def test_r30_symbol_range():
    refuse(build([codebook_rec("c", U8, (2,), [1, 2, 3], Seg(PACKED, packed([0, 3], 4)))]),
           errors.CodeOutOfRange)
    raw_chunk = huff([(RAW_CHUNK, [3, 0])], [], 4)
    refuse(build([codebook_rec("c", U8, (2,), [1, 2, 3], Seg(HUFFMAN, raw_chunk.payload()))]),
           errors.CodeOutOfRange)
    bank = raw("b", np.zeros((3, 2), np.float32), F32)
    refuse(build([bank_tensor("g", (2, 2), [0, 3], alphabet=4)], [bank]), errors.SelectorOutOfRange)


def test_r31_gap_overrun():
    refuse(build([sparse_raw("s", U8, (4,), [3, 0], [1, 2], 2)]), errors.GapOverrun)
    refuse(build([sparse_raw("s", U8, (4,), [1, 1, 1], [1, 2, 3], 1)]), errors.GapOverrun)
    assert_same(decode_file(build([sparse_raw("s", U8, (4,), [3], [7], 2)])).tensors["s"],
                np.array([0, 0, 0, 7], np.uint8))


def bool_codebook(codebook_bytes):
    return Rec("b", BOOL, (2,), [Seg(BYTES, codebook_bytes), Seg(PACKED, packed([0, 1], 2))],
               value_kind=CODEBOOK, codebook_size=2)


def test_r32_bool_bytes():
    refuse(build([Rec("b", BOOL, (3,), [Seg(BYTES, b"\x00\x01\x02")])]), errors.InvalidValue)
    refuse(build([bool_codebook(b"\x00\xff")]), errors.InvalidValue)
    assert_same(decode_file(build([bool_codebook(b"\x00\x01")])).tensors["b"], np.array([0, 1], np.bool_))


def test_r33_decode_budget():
    data = build([f32("a"), f32("b")])  # 12 bytes each, and 128 for each record
    refuse(data, errors.DecodeLimitExceeded, decode_budget=139)
    refuse(data, errors.DecodeLimitExceeded, decode_budget=279)  # the budget is per file
    assert len(decode_file(data, decode_budget=280).tensors) == 2
    # a sparse record's N is bounded only by the budget: refused before allocating
    huge = sparse_raw("s", U8, (2**47,), [], [], 1)
    refuse(build([huge]), errors.DecodeLimitExceeded)
    with pytest.raises(errors.UsageError):
        decode_file(data, decode_budget=-1)


def test_r40_to_r43_planes_records():
    rec = planes_rec("p", F32, [0x3F800000, 0x80000000, 0x7FC00001], 2)  # blocks of 2 and 1: 8 segments
    assert decode_file(build([rec], **V12)).tensors["p"].view(np.uint32).tolist() == [0x3F800000, 0x80000000,
                                                                                       0x7FC00001]
    # R40: a tensor record, Required_Features bit 1, a float DType
    refuse(build([rec], version=(1, 2)), errors.InvalidHeader, "Required_Features bit 1")
    refuse(build([rec], version=(1, 2), required=1), errors.InvalidHeader, "Required_Features bit 1")
    refuse(build([replace(rec, dtype=I32)], **V12), errors.InvalidHeader, "float type")
    refuse(build([], [rec], **V12), errors.InvalidHeader, "bank")
    # R41, R42: Block_Size from 1 to 2^48
    refuse(build([replace(rec, block_size=0)], **V12), errors.InvalidHeader, "Block_Size")
    refuse(build([replace(rec, block_size=2**48 + 1)], **V12), errors.LimitExceeded, "Block_Size")
    one_block = planes_rec("p", F32, [0x3F800000, 1], 2**48)
    assert decode_file(build([one_block], **V12)).tensors["p"].view(np.uint32).tolist() == [0x3F800000, 1]
    # R43: Block_Size 1 asks for 12 Segment_Refs where the header holds 8
    refuse(build([replace(rec, block_size=1)], **V12), errors.TruncatedError, "Segment_Refs")
    refuse(build([replace(rec, shape=(2**40,), block_size=1)], **V12), errors.TruncatedError, "Segment_Refs")
    # a plane is a stream: PACKED or HUFFMAN
    refuse(build([replace(rec, segments=[Seg(BYTES, rec.segments[0].payload)] + rec.segments[1:])], **V12),
           errors.InvalidHeader, "Codec")


# === order of the checks ================================================================


def test_order_checksum_before_header_fields():
    refuse(build([Rec("t", 99, (1,), [Seg(BYTES, b"\0")])], checksum=1), errors.ChecksumMismatch)
    refuse(build([Rec("t", 99, (1,), [Seg(BYTES, b"\0")])], checksum=1), errors.UnknownDType,
           verify_checksums=False)


def test_order_layout_before_padding_before_records():
    data = build([f32("a"), f32("b")])
    refuse(patch(data, header_end(data), b"\x01") + b"\0", errors.InvalidLayout)
    bad_value = build([Rec("b", BOOL, (1,), [Seg(BYTES, b"\x05")])])
    refuse(patch(bad_value, header_end(bad_value), b"\x01"), errors.NonZeroPadding)


def test_order_segment_checksums_before_content():
    rec = bool_codebook(b"\x00\x02")
    rec.segments[1].checksum = 0
    refuse(build([rec]), errors.ChecksumMismatch)
    refuse(build([rec]), errors.InvalidValue, verify_checksums=False)


def test_order_banks_then_tensors_and_budget_first():
    bank = Rec("b", BOOL, (2,), [Seg(BYTES, b"\x00\x07")])
    refuse(build([f32()], [bank]), errors.InvalidValue)
    refuse(build([f32()], [bank]), errors.DecodeLimitExceeded, decode_budget=1)


def test_limits_are_inclusive():
    a = u32(64)
    entries = b"".join(string(f"{i:05}") + string("") for i in range(65536))
    assert len(decode_file(build(header=a + u32(65536) + entries + u32(0) + u32(0))).metadata) == 65536
    assert decode_file(build([Rec("r", U8, (1,) * 8, [Seg(BYTES, b"\1")])])).tensors["r"].ndim == 8
    # N = 2^48 passes the header; the decode budget then refuses it
    refuse(build([sparse_raw("s", U8, (2**24, 2**24), [], [], 1)]), errors.DecodeLimitExceeded)
    big_cb = codebook_rec("c", U8, (1,), np.zeros(65536, np.uint8), Seg(PACKED, b"\0\0"))
    assert decode_file(build([big_cb])).tensors["c"].shape == (1,)
    bank = raw("b", np.arange(65536, dtype=np.uint16).astype(np.uint8), U8)
    gw = bank_tensor("g", (1,), [65535], alphabet=65536, dtype=U8)
    assert_same(decode_file(build([gw], [bank])).tensors["g"], np.array([255], np.uint8))
    # Chunk_Count up to min(S, 2^24): one symbol per chunk is allowed ...
    stream = huff([(RAW_CHUNK, [s]) for s in HAND_CODES], [], 4)
    data = build([codebook_rec("t", F32, (8,), HAND_CODEBOOK, Seg(HUFFMAN, stream.payload()))])
    assert_same(decode_file(data).tensors["t"], np.array(HAND_CODEBOOK, np.float32)[HAND_CODES])
    # ... and 2^24 + 1 chunks are refused before the table is read
    n = 2**24 + 1
    for count, error in [(n, errors.CorruptStream), (n - 1, errors.TruncatedError)]:
        table = Huff([], [], b"", chunk_count=count).payload()
        data = build([codebook_rec("t", U8, (n,), [0], Seg(HUFFMAN, table))])
        refuse(data, error)


# === conformance vectors (spec/vectors/, Appendix C) =====================================

VECTORS = pathlib.Path(__file__).resolve().parent.parent / "spec" / "vectors"


def read_safetensors(path):
    """Tensors of a safetensors file; dtype names are the spec's DType names."""
    raw_bytes = path.read_bytes()
    (n,) = struct.unpack_from("<Q", raw_bytes, 0)
    header = json.loads(raw_bytes[8:8 + n])
    names = ["BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64", "F16", "BF16", "F32",
             "F64", "F8_E4M3", "F8_E5M2"]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = np.dtype(NP[names.index(info["dtype"])])
        out[name] = np.frombuffer(raw_bytes[8 + n + begin:8 + n + end], dtype).reshape(info["shape"])
    return out


@pytest.mark.parametrize("path", sorted(VECTORS.glob("valid/*.dcf")), ids=lambda p: p.stem)
def test_valid_vectors(path):
    decoded = decode_file(path.read_bytes())
    expected = read_safetensors(path.with_name(path.stem + ".expected.safetensors"))
    assert sorted(decoded.tensors) == sorted(expected)
    for name, array in expected.items():
        assert_same(decoded.tensors[name], array)


def manifest_errors():
    """{file name: error class name} for the invalid vectors MANIFEST.json lists
    (entries carry "file" and "error", per spec/vectors/make_vectors.py)."""
    path = VECTORS / "MANIFEST.json"
    found = {}

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("file"), str) and isinstance(node.get("error"), str):
                found[pathlib.PurePosixPath(node["file"]).name] = node["error"]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    if path.exists():
        walk(json.loads(path.read_text()))
    return found


@pytest.mark.parametrize("path", sorted(VECTORS.glob("invalid/*.dcf")), ids=lambda p: p.stem)
def test_invalid_vectors(path):
    expected = manifest_errors().get(path.name)
    with pytest.raises(errors.FormatError) as info:
        decode_file(path.read_bytes())
    if expected is not None:
        assert type(info.value).__name__ == expected, f"{type(info.value).__name__}: {info.value}"


# === a header that ends inside a group of fields ======================================


def _cut_header(data: bytes, edits: dict[int, int], cut: int) -> bytes:
    """``data`` with bytes replaced, its header ``cut`` bytes shorter (Header_Size and
    checksum made to agree): the header now ends inside the fields after the edits."""
    from dcformat.testing.mutate import refresh_checksums

    out = bytearray(data)
    for offset, value in edits.items():
        out[offset] = value
    struct.pack_into("<Q", out, 20, struct.unpack_from("<Q", out, 20)[0] - cut)
    return refresh_checksums(bytes(out))


@pytest.mark.parametrize("case", ["segment-ref-codec", "gap-bits"])
def test_fields_before_the_end_of_the_header_are_checked_first(case):
    """FORMAT.md checks each field as soon as it is read: a bad Codec, or a bad Gap_Bits,
    that the header still holds is refused for itself, not as the truncation after it;
    the fast reader (which reads these groups of fields at once) says the same."""
    import dcformat

    if case == "segment-ref-codec":
        data = dcformat.save({"w": np.zeros(3, np.float32)})
        data, error = _cut_header(data, {65: 4}, 10), errors.UnknownEncoding  # Codec 4, 11 of 21 bytes left
    else:
        sparse = dcformat.EncodedTensor("U8", (8,), dcformat.Sparse(2, np.array([0, 1, 0], np.uint16)),
                                        dcformat.RawValues(np.array([1, 2, 3], np.uint8)))
        data = dcformat.save({"w": sparse})
        data, error = _cut_header(data, {65: 0}, 116 - 70), errors.InvalidHeader  # Gap_Bits 0, 4 of 8 bytes left
    refuse(data, error, verify_checksums=False)
    with pytest.raises(errors.FormatError) as fast:
        dcformat.load(data, verify=False)
    assert type(fast.value) is error, fast.value
