"""PackedCodec: round trips at every width, exact sizes, and rule R22 / R30 rejections."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcformat.format.constants import SegmentCodec, symbol_width
from dcformat.errors import (
    CodeOutOfRange,
    CorruptStream,
    NonZeroPadding,
    SelectorOutOfRange,
    SymbolOutOfRange,
    UsageError,
)
from dcformat.streams import PackedCodec, codec_for_wire_id, get_codec

ALPHABETS = [1, 2, 3, 4, 5, 16, 17, 100, 255, 256, 257, 1000, 4096, 32768, 32769, 65535, 65536]


def slow_pack(symbols, width):
    value = 0
    for j, s in enumerate(symbols):
        value |= int(s) << (j * width)
    return value.to_bytes(-(-len(symbols) * width // 8), "little")


@st.composite
def streams(draw):
    alphabet = draw(st.sampled_from(ALPHABETS) | st.integers(1, 65536))
    count = draw(st.integers(0, 300))
    seed = draw(st.integers(0, 2**32 - 1))
    symbols = np.random.default_rng(seed).integers(0, alphabet, count).astype(np.uint16)
    return symbols, alphabet


@given(streams())
@settings(max_examples=150, deadline=None)
def test_round_trip_matches_slow_pack(case):
    symbols, alphabet = case
    payload = PackedCodec().encode(symbols, alphabet)
    assert payload == slow_pack(symbols, symbol_width(alphabet))
    decoded = PackedCodec().decode(payload, symbols.size, alphabet)
    assert decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, symbols)


@pytest.mark.parametrize("width", range(1, 17))
@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 63, 64, 65, 1001])
def test_every_width_and_tail(width, count):
    alphabet = 1 << width
    symbols = np.random.default_rng(width * 1000 + count).integers(0, alphabet, count).astype(np.uint16)
    if count:
        symbols[-1] = alphabet - 1  # the top bits of the last symbol sit next to the padding
    payload = PackedCodec().encode(symbols, alphabet)
    assert len(payload) == -(-count * width // 8)
    np.testing.assert_array_equal(PackedCodec().decode(payload, count, alphabet), symbols)


def test_known_bytes():
    # LSB first: symbol j in bits [3j, 3j+3)
    assert PackedCodec().encode(np.array([1, 2, 3, 4, 5], dtype=np.uint16), 8) == bytes([0xD1, 0x58])
    assert PackedCodec().encode(np.array([0x1234], dtype=np.uint16), 65536) == b"\x34\x12"


def test_single_symbol_alphabet_uses_one_bit():
    payload = PackedCodec().encode(np.zeros(9, dtype=np.uint16), 1)
    assert payload == b"\x00\x00"
    np.testing.assert_array_equal(PackedCodec().decode(payload, 9, 1), np.zeros(9))


def test_accepts_other_integer_dtypes_and_buffers():
    symbols = np.array([3, 0, 2], dtype=np.int64)
    payload = PackedCodec().encode(symbols, 4)
    for buf in (payload, bytearray(payload), memoryview(payload), np.frombuffer(payload, np.uint8)):
        np.testing.assert_array_equal(PackedCodec().decode(buf, 3, 4), symbols)


def test_decode_into_out():
    symbols = np.arange(10, dtype=np.uint16)
    out = np.empty(10, dtype=np.uint16)
    result = PackedCodec().decode(PackedCodec().encode(symbols, 10), 10, 10, out=out)
    assert result is out
    np.testing.assert_array_equal(out, symbols)
    with pytest.raises(UsageError):
        PackedCodec().decode(PackedCodec().encode(symbols, 10), 10, 10, out=np.empty(9, np.uint16))
    with pytest.raises(UsageError):
        PackedCodec().decode(PackedCodec().encode(symbols, 10), 10, 10, out=np.empty(10, np.int32))


def test_usage_errors():
    with pytest.raises(UsageError):
        PackedCodec().encode(np.array([4], dtype=np.uint16), 4)
    with pytest.raises(UsageError):
        PackedCodec().encode(np.array([-1]), 4)
    with pytest.raises(UsageError):
        PackedCodec().encode(np.array([1.0]), 4)
    with pytest.raises(UsageError):
        PackedCodec().encode(np.zeros((2, 2), dtype=np.uint16), 4)
    for alphabet in (0, 65537, 2.0):
        with pytest.raises(UsageError):
            PackedCodec().encode(np.zeros(1, dtype=np.uint16), alphabet)
    with pytest.raises(UsageError):
        PackedCodec().decode(b"", -1, 4)
    with pytest.raises(UsageError):
        PackedCodec().decode(b"\x00", 1, 4, range_error=ValueError)


# --- R22: length and trailing bits; R30: symbol range -------------------------------


def test_r22_wrong_length_is_corrupt_stream():
    payload = PackedCodec().encode(np.arange(5, dtype=np.uint16), 8)  # 15 bits -> 2 bytes
    with pytest.raises(CorruptStream):
        PackedCodec().decode(payload[:1], 5, 8)
    with pytest.raises(CorruptStream):
        PackedCodec().decode(payload + b"\x00", 5, 8)
    with pytest.raises(CorruptStream):
        PackedCodec().decode(b"\x00", 0, 8)


def test_r22_trailing_bits_are_non_zero_padding():
    payload = bytearray(PackedCodec().encode(np.arange(5, dtype=np.uint16), 8))
    payload[-1] |= 0x80  # bit 15, after the last symbol
    with pytest.raises(NonZeroPadding):
        PackedCodec().decode(bytes(payload), 5, 8)


@pytest.mark.parametrize("error", [SymbolOutOfRange, CodeOutOfRange, SelectorOutOfRange])
def test_r30_symbol_out_of_range(error):
    payload = PackedCodec().encode(np.array([1, 7, 2], dtype=np.uint16), 8)
    with pytest.raises(error) as info:
        PackedCodec().decode(payload, 3, 6, range_error=error, name="codes")
    assert type(info.value) is error
    assert (info.value.symbol, info.value.alphabet_size, info.value.stream) == (7, 6, "codes")


def test_r30_single_symbol_alphabet():
    with pytest.raises(SymbolOutOfRange):
        PackedCodec().decode(b"\x02", 2, 1)


# --- interface -----------------------------------------------------------------------


def test_config_registry_and_repr():
    codec = PackedCodec()
    config = codec.get_config()
    assert config == {"id": "packed"}
    assert get_codec(json.loads(json.dumps(config))) == codec
    assert eval(repr(codec)) == codec
    assert codec_for_wire_id(SegmentCodec.PACKED) is PackedCodec
    assert PackedCodec.wire_id == 1
