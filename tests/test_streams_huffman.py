"""HuffmanCodec: round trips, the writer's choices, and one test per rejection rule."""

import heapq
import itertools
import json
import multiprocessing
import os
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dcformat.streams.huffman as huffman_module
from dcformat.format.constants import CHUNK_ENTRY_SIZE, SegmentCodec, symbol_width
from dcformat.errors import (
    CodeOutOfRange,
    CorruptStream,
    InvalidHuffmanTable,
    InvalidSettings,
    NonZeroPadding,
    SelectorOutOfRange,
    SymbolOutOfRange,
    TruncatedError,
    UnknownEncoding,
    UsageError,
)
from dcformat.streams import HuffmanCodec, codec_for_wire_id, get_codec
from dcformat.streams.canonical import code_lengths, kraft_sum, pack_lengths

# --- helpers ---------------------------------------------------------------------------


def parse(payload: bytes):
    """(lengths, entries, bit streams) of a payload, without validation."""
    (table_size,) = struct.unpack_from("<I", payload, 0)
    pos = 4 + (table_size + 1) // 2
    nibbles = np.frombuffer(payload[4:pos], dtype=np.uint8)
    lengths = np.stack([nibbles & 15, nibbles >> 4], axis=1).reshape(-1)[:table_size]
    (n_chunks,) = struct.unpack_from("<I", payload, pos)
    pos += 4
    entries = [struct.unpack_from("<BQQQ", payload, pos + CHUNK_ENTRY_SIZE * k) for k in range(n_chunks)]
    return lengths, entries, payload[pos + CHUNK_ENTRY_SIZE * n_chunks:]


def build(lengths, entries, stream, table_size=None):
    """A payload from its parts; ``table_size`` overrides the length count."""
    table_size = len(lengths) if table_size is None else table_size
    return b"".join([struct.pack("<I", table_size), pack_lengths(np.array(lengths, dtype=np.uint8)),
                     struct.pack("<I", len(entries)),
                     b"".join(struct.pack("<BQQQ", *e) for e in entries), stream])


def round_trip(symbols, alphabet, codec=None, gap=False):
    codec = codec or HuffmanCodec()
    payload = codec.encode(symbols, alphabet, gap_stream=gap)
    decoded = codec.decode(payload, len(symbols), alphabet, gap_stream=gap)
    np.testing.assert_array_equal(decoded, symbols)
    assert decoded.dtype == np.uint16
    return payload


def gaussian_codes(n, bits, seed=0):
    x = np.random.default_rng(seed).normal(size=n) * (1 << (bits - 3))
    return np.clip(np.round(x) + (1 << (bits - 1)), 0, (1 << bits) - 1).astype(np.uint16)


# --- round trips -----------------------------------------------------------------------


@st.composite
def cases(draw):
    alphabet = draw(st.sampled_from([1, 2, 3, 16, 17, 64, 256, 1000, 65536]) | st.integers(1, 65536))
    count = draw(st.integers(0, 1500))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    shape = draw(st.sampled_from(["uniform", "geometric", "few", "constant"]))
    if shape == "uniform":
        symbols = rng.integers(0, alphabet, count)
    elif shape == "geometric":
        symbols = np.minimum(rng.geometric(draw(st.floats(0.01, 0.99)), count) - 1, alphabet - 1)
    elif shape == "few":
        symbols = rng.choice(rng.integers(0, alphabet, 3), count)
    else:
        symbols = np.full(count, rng.integers(0, alphabet))
    codec = HuffmanCodec(chunk_symbols=draw(st.integers(1, 700)), max_code_length=draw(st.integers(1, 15)),
                         chunk_multiple=draw(st.sampled_from([4, 1, 3])))
    return symbols.astype(np.uint16), alphabet, codec, draw(st.booleans())


@given(cases())
@settings(max_examples=150, deadline=None)
def test_round_trip(case):
    symbols, alphabet, codec, gap = case
    payload = round_trip(symbols, alphabet, codec, gap)
    lengths, entries, stream = parse(payload)
    assert len(lengths) <= alphabet
    assert kraft_sum(lengths) <= 1 << 15
    used = len(np.unique(symbols))
    if lengths.any():
        limit = max(codec.max_code_length, (used - 1).bit_length())
        assert lengths.max() <= limit
    sizes = np.diff([e[2] for e in entries] + [len(symbols)]) if len(symbols) else np.zeros(1, np.int64)
    assert sizes.max() <= codec.chunk_symbols and (sizes[:-1] == sizes[0]).all() and sizes[-1] <= sizes[0]
    requested = -(-len(symbols) // codec.chunk_symbols)
    if codec.chunk_multiple == 1:
        assert len(entries) == requested and all(sizes[:-1] == codec.chunk_symbols)
    target = -(-requested // codec.chunk_multiple) * codec.chunk_multiple  # a multiple of chunk_multiple
    assert len(entries) <= target
    if len(entries) > 1 and sizes[0] >= target:  # then equal chunks make exactly the target
        assert len(entries) == target
    units = np.cumsum(symbols.astype(np.int64) + 1)
    for mode, offset, first, start in entries:
        assert start == ((int(units[first - 1]) if first else 0) if gap else 0)
    assert codec.encode(symbols, alphabet, gap_stream=gap) == payload  # deterministic


def test_empty_stream():
    payload = round_trip(np.zeros(0, dtype=np.uint16), 10)
    assert payload == bytes(8)


def test_one_symbol():
    for alphabet in (1, 2, 300, 65536):
        round_trip(np.array([alphabet - 1], dtype=np.uint16), alphabet)


def test_single_symbol_alphabet():
    payload = round_trip(np.zeros(100_000, dtype=np.uint16), 1)
    lengths, entries, _ = parse(payload)
    assert len(lengths) == 0 and all(e[0] == 1 for e in entries)  # 1-bit raw is as small as it gets


def test_constant_stream_uses_one_bit_codes():
    payload = round_trip(np.full(1000, 77, dtype=np.uint16), 256)
    lengths, entries, stream = parse(payload)
    assert len(lengths) == 78 and lengths[77] == 1 and lengths.sum() == 1
    assert len(stream) == 125


def test_alphabet_65536_too_many_symbols_for_15_bits_is_all_raw():
    symbols = np.random.default_rng(0).permutation(65536).astype(np.uint16)
    payload = round_trip(symbols, 65536)
    lengths, entries, stream = parse(payload)
    assert len(lengths) == 0 and all(e[0] == 1 for e in entries)
    assert len(stream) == 2 * 65536


def test_limit_grows_to_fit_the_used_symbols():
    rng = np.random.default_rng(1)
    symbols = np.concatenate([np.arange(3000), rng.geometric(0.1, 50_000)]).astype(np.uint16)
    lengths, _, _ = parse(round_trip(symbols, 65536, HuffmanCodec(max_code_length=11)))
    assert lengths.max() == 12  # 3000 used symbols need 12 bits; 11 cannot hold them


@pytest.mark.parametrize("limit", range(1, 16))
def test_max_code_length_respected(limit):
    symbols = np.minimum(np.random.default_rng(limit).geometric(0.3, 5000) - 1, (1 << limit) - 1)
    lengths, _, _ = parse(round_trip(symbols.astype(np.uint16), 1 << 16, HuffmanCodec(max_code_length=limit)))
    assert 1 <= lengths.max() <= limit
    assert kraft_sum(lengths) <= 1 << 15


def test_incompressible_chunks_are_raw():
    rng = np.random.default_rng(2)
    symbols = np.concatenate([rng.integers(0, 256, 4096), np.zeros(4096, dtype=np.int64)]).astype(np.uint16)
    _, entries, _ = parse(round_trip(symbols, 256, HuffmanCodec(chunk_symbols=1024)))
    assert [e[0] for e in entries] == [1, 1, 1, 1, 0, 0, 0, 0]


def test_uniform_power_of_two_alphabet_is_all_raw_without_table():
    symbols = np.random.default_rng(3).integers(0, 16, 10_000).astype(np.uint16)
    payload = round_trip(symbols, 16)
    lengths, entries, stream = parse(payload)
    assert len(lengths) == 0 and all(e[0] == 1 for e in entries)
    assert len(stream) == 5000


def test_skewed_stream_compresses():
    symbols = gaussian_codes(1 << 16, 6)
    payload = round_trip(symbols, 64)
    assert len(payload) * 8 / symbols.size < 5.2  # the entropy is about 5.05 bits, packed is 6


def test_chunk_count_is_capped(monkeypatch):
    monkeypatch.setattr(huffman_module, "MAX_CHUNKS", 4)
    symbols = gaussian_codes(1000, 5)
    _, entries, _ = parse(round_trip(symbols, 32, HuffmanCodec(chunk_symbols=10)))
    assert [e[2] for e in entries] == [0, 250, 500, 750]


def test_gap_stream_start_positions():
    gaps = np.array([0, 5, 2, 0, 0, 9, 1, 3], dtype=np.uint16)
    _, entries, _ = parse(round_trip(gaps, 16, HuffmanCodec(chunk_symbols=3), gap=True))
    assert [e[2] for e in entries] == [0, 2, 4, 6]  # three chunks of 3 become four of 2
    assert [e[3] for e in entries] == [0, 1 + 6, 7 + 3 + 1, 11 + 1 + 10]


def test_long_streams_get_four_equal_chunks():
    symbols = gaussian_codes(100_000, 5)
    _, entries, _ = parse(round_trip(symbols, 32))  # 65,536 per chunk would make two
    assert [e[2] for e in entries] == [0, 25_000, 50_000, 75_000]
    _, entries, _ = parse(round_trip(symbols[:60_000], 32))  # too short to pay for three more entries
    assert len(entries) == 1
    _, entries, _ = parse(round_trip(symbols, 32, HuffmanCodec(chunk_multiple=1)))  # as 1.0's writer
    assert [e[2] for e in entries] == [0, 65_536]


def test_pinned_bytes():
    symbols = np.array([0, 1, 2, 0, 0, 0, 3, 0] * 4, dtype=np.uint16)
    payload = HuffmanCodec(chunk_symbols=8).encode(symbols, 64, gap_stream=True)
    # lengths 0:1 1:3 2:3 3:2 -> codes 0, 110, 111, 10; each chunk is the 13 bits
    # 0 110 111 0 0 0 10 0, written first bit lowest: 0x76 0x04; each covers 14 units
    assert payload.hex() == ("04000000" "3123" "04000000"
                             "00" "0000000000000000" "0000000000000000" "0000000000000000"
                             "00" "0200000000000000" "0800000000000000" "0e00000000000000"
                             "00" "0400000000000000" "1000000000000000" "1c00000000000000"
                             "00" "0600000000000000" "1800000000000000" "2a00000000000000"
                             "7604" "7604" "7604" "7604")


def test_threads_give_the_same_symbols():
    symbols = gaussian_codes(300_000, 7, seed=5)
    codec = HuffmanCodec(chunk_symbols=7000)
    payload = codec.encode(symbols, 128)
    for threads in (1, 2, 3, 64):
        np.testing.assert_array_equal(codec.decode(payload, symbols.size, 128, threads=threads), symbols)


def _decode_in_child(payload, count, queue):
    queue.put(HuffmanCodec().decode(payload, count, 128, threads=2).sum(dtype=np.int64))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_threads_after_fork():
    symbols = gaussian_codes(300_000, 7, seed=8)
    payload = HuffmanCodec(chunk_symbols=7000).encode(symbols, 128)
    HuffmanCodec().decode(payload, symbols.size, 128, threads=2)  # the parent's pool exists now
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_decode_in_child, args=(payload, symbols.size, queue))
    child.start()
    try:
        assert queue.get(timeout=60) == symbols.sum(dtype=np.int64)
    finally:
        child.join(timeout=60)
        if child.is_alive():
            child.kill()


def test_decode_into_out():
    symbols = gaussian_codes(5000, 5)
    out = np.empty(5000, dtype=np.uint16)
    assert HuffmanCodec().decode(HuffmanCodec().encode(symbols, 32), 5000, 32, out=out) is out
    np.testing.assert_array_equal(out, symbols)


# --- the code-length construction ----------------------------------------------------------


def huffman_cost(freqs):
    heap = [int(f) for f in freqs if f]
    heapq.heapify(heap)
    cost = 0
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        cost += merged
        heapq.heappush(heap, merged)
    return cost


def test_lengths_are_optimal_without_a_binding_limit():
    rng = np.random.default_rng(6)
    for _ in range(50):
        freqs = rng.integers(0, 1000, int(rng.integers(2, 200)))
        freqs[:2] += 1
        lengths = code_lengths(freqs, 15)
        if (freqs > 0).sum() > 1:
            assert int((lengths.astype(np.int64) * freqs).sum()) == huffman_cost(freqs)
        assert kraft_sum(lengths) <= 1 << 15


def test_lengths_are_optimal_under_a_limit():
    rng = np.random.default_rng(7)
    for _ in range(40):
        n = int(rng.integers(2, 7))
        limit = int(rng.integers(max(1, (n - 1).bit_length()), 5))
        freqs = rng.geometric(0.2, n) ** 3
        best = min(sum(int(f) * ln for f, ln in zip(freqs, lens))
                   for lens in itertools.product(range(1, limit + 1), repeat=n)
                   if sum(2.0 ** -ln for ln in lens) <= 1)
        lengths = code_lengths(freqs, limit)
        assert lengths.max() <= limit
        assert int((lengths.astype(np.int64) * freqs).sum()) == best


# --- rejections, one per rule (spec Appendix B) ---------------------------------------------

# A=4, lengths 0:1 1:2 2:2 (codes 0, 10, 11). Chunk 0: Huffman [0, 1, 2, 0] = bits
# 0 10 11 0 -> 0x1A. Chunk 1: raw [3, 0] at 2 bits -> 0x03.
LENGTHS = [1, 2, 2]
ENTRIES = [(0, 0, 0, 0), (1, 1, 4, 0)]
STREAM = b"\x1a\x03"


def decode(payload, count=6, alphabet=4, **kwargs):
    return HuffmanCodec().decode(payload, count, alphabet, **kwargs)


def test_hand_made_payload_is_valid():
    np.testing.assert_array_equal(decode(build(LENGTHS, ENTRIES, STREAM)), [0, 1, 2, 0, 3, 0])
    gap_entries = [(0, 0, 0, 0), (1, 1, 4, 7)]
    np.testing.assert_array_equal(decode(build(LENGTHS, gap_entries, STREAM), gap_stream=True), [0, 1, 2, 0, 3, 0])


def test_r23_table_size_above_alphabet():
    with pytest.raises(InvalidHuffmanTable):
        decode(build(LENGTHS + [0, 0], ENTRIES, STREAM))


def test_r23_odd_table_padding_nibble():
    payload = bytearray(build(LENGTHS, ENTRIES, STREAM))
    payload[5] |= 0x10
    with pytest.raises(NonZeroPadding):
        decode(bytes(payload))


def test_r24_kraft_inequality():
    with pytest.raises(InvalidHuffmanTable):
        decode(build([1, 1, 1], ENTRIES, STREAM))


@pytest.mark.parametrize("lengths", [[], [0, 0, 0]])
def test_r24_huffman_chunk_without_codes(lengths):
    with pytest.raises(InvalidHuffmanTable):
        decode(build(lengths, ENTRIES, STREAM))


def test_raw_only_stream_without_table_is_valid():
    np.testing.assert_array_equal(decode(build([], [(1, 0, 0, 0)], b"\x39"), count=3), [1, 2, 3])


def test_r14_unknown_chunk_mode():
    with pytest.raises(UnknownEncoding):
        decode(build(LENGTHS, [(0, 0, 0, 0), (2, 1, 4, 0)], STREAM))


@pytest.mark.parametrize("count, entries", [
    (6, []),                                       # no chunk for symbols
    (0, [(1, 0, 0, 0)]),                           # a chunk for no symbols
    (1, [(0, 0, 0, 0), (1, 1, 4, 0)]),             # more chunks than symbols
])
def test_r25_chunk_count(count, entries):
    with pytest.raises(CorruptStream):
        decode(build(LENGTHS, entries, STREAM), count=count)


@pytest.mark.parametrize("cut", [0, 3, 5, 8, 9, 20, 57])
def test_r25_truncated_table_or_entries(cut):
    with pytest.raises(TruncatedError):
        decode(build(LENGTHS, ENTRIES, STREAM)[:cut])


@pytest.mark.parametrize("entries", [
    [(0, 1, 0, 0), (1, 1, 4, 0)],                  # first Byte_Offset not 0
    [(0, 0, 0, 0), (1, 3, 4, 0)],                  # Byte_Offset past the bit streams
    [(0, 0, 0, 0), (0, 1, 2, 0), (1, 0, 4, 0)],    # Byte_Offsets decrease
    [(0, 0, 1, 0), (1, 1, 4, 0)],                  # first First_Symbol not 0
    [(0, 0, 0, 0), (1, 1, 0, 0)],                  # First_Symbols do not increase
    [(0, 0, 0, 0), (1, 1, 6, 0)],                  # First_Symbol not below S
    [(0, 0, 0, 0), (1, 1, 2**64 - 1, 0)],
])
def test_r26_offsets_and_first_symbols(entries):
    with pytest.raises(CorruptStream):
        decode(build(LENGTHS, entries, STREAM))


def test_r27_raw_chunk_size():
    with pytest.raises(CorruptStream):
        decode(build(LENGTHS, ENTRIES, STREAM + b"\x00"))


def test_r27_raw_chunk_trailing_bits():
    with pytest.raises(NonZeroPadding):
        decode(build(LENGTHS, ENTRIES, b"\x1a\x83"))


def test_r28_invalid_code():
    with pytest.raises(CorruptStream):  # code 11 removed: bits 1,1 start no code
        decode(build([1, 2, 0], ENTRIES, STREAM))


def test_r28_read_past_the_chunk():
    # four 2-bit codes fill the byte; a fifth symbol needs bits that are not there
    with pytest.raises(CorruptStream):
        decode(build(LENGTHS, [(0, 0, 0, 0)], b"\xff"), count=5)
    with pytest.raises(CorruptStream):  # fewer bits than symbols: refused before decoding
        decode(build(LENGTHS, [(0, 0, 0, 0)], b"\x00"), count=9)


def test_r28_chunk_longer_than_its_codes():
    with pytest.raises(CorruptStream):
        decode(build(LENGTHS, [(0, 0, 0, 0), (1, 2, 4, 0)], b"\x1a\x00\x03"))


def test_r28_trailing_bits_after_last_code():
    with pytest.raises(NonZeroPadding):
        decode(build(LENGTHS, ENTRIES, b"\x9a\x03"))


def test_r28_single_code_stream():
    # the single-symbol code is "0"; a set bit is no code
    assert decode(build([0, 1], [(0, 0, 0, 0)], b"\x00"), count=8, alphabet=2).tolist() == [1] * 8
    with pytest.raises(CorruptStream):
        decode(build([0, 1], [(0, 0, 0, 0)], b"\x04"), count=8, alphabet=2)


@pytest.mark.parametrize("gap, start", [(True, 6), (True, 0), (False, 7)])
def test_r29_start_position(gap, start):
    with pytest.raises(CorruptStream):
        decode(build(LENGTHS, [(0, 0, 0, 0), (1, 1, 4, start)], STREAM), gap_stream=gap)


def test_r29_first_chunk_start_position():
    with pytest.raises(CorruptStream):
        decode(build(LENGTHS, [(0, 0, 0, 1), (1, 1, 4, 8)], STREAM), gap_stream=True)


@pytest.mark.parametrize("error", [SymbolOutOfRange, CodeOutOfRange, SelectorOutOfRange])
def test_r30_symbol_out_of_range(error):
    with pytest.raises(error) as info:
        decode(build(LENGTHS, ENTRIES, STREAM), alphabet=3, range_error=error, name="selectors")
    assert type(info.value) is error
    assert (info.value.symbol, info.value.alphabet_size, info.value.stream) == (3, 3, "selectors")


def test_empty_stream_with_trailing_bytes():
    with pytest.raises(CorruptStream):
        decode(bytes(8) + b"\x00", count=0)


# --- order of checks (spec Appendix B): entries one at a time, then chunks in order ------------


@pytest.mark.parametrize("entries, error", [
    ([(0, 1, 0, 0), (2, 1, 4, 0)], CorruptStream),        # entry 0's Byte_Offset before entry 1's Mode
    ([(2, 1, 0, 0), (1, 1, 4, 0)], UnknownEncoding),      # an entry's Mode before its Byte_Offset
    ([(0, 0, 1, 0), (2, 1, 4, 0)], CorruptStream),        # entry 0's First_Symbol before entry 1's Mode
])
def test_order_chunk_entries_one_at_a_time(entries, error):
    with pytest.raises(error) as info:
        decode(build(LENGTHS, entries, STREAM))
    assert type(info.value) is error


@pytest.mark.parametrize("lengths, entries, stream, count, error", [
    # Huffman chunk 0 (trailing bits) before raw chunk 1 (size)
    (LENGTHS, ENTRIES, b"\x9a\x03\x00", 6, NonZeroPadding),
    # Huffman chunk 0 (no code starts with 11) before raw chunk 1 (trailing bits)
    ([1, 2, 0], ENTRIES, b"\x1a\x83", 6, CorruptStream),
    # raw chunk 0 (trailing bits) before Huffman chunk 1 (20 symbols in 8 bits)
    (LENGTHS, [(1, 0, 0, 0), (0, 1, 2, 0)], b"\x83\x00", 22, NonZeroPadding),
    # Huffman chunk 0 (trailing bits) before Huffman chunk 1 (20 symbols in 8 bits)
    (LENGTHS, [(0, 0, 0, 0), (0, 1, 4, 0)], b"\x9a\x00", 24, NonZeroPadding),
])
def test_order_chunks_in_order(lengths, entries, stream, count, error):
    with pytest.raises(error) as info:
        decode(build(lengths, entries, stream), count=count)
    assert type(info.value) is error


def test_order_start_positions_after_every_chunk():
    with pytest.raises(NonZeroPadding):  # chunk 1's trailing bits come before chunk 1's Start_Position
        decode(build(LENGTHS, [(0, 0, 0, 0), (1, 1, 4, 5)], b"\x1a\x83"), gap_stream=True)


# --- interface -----------------------------------------------------------------------------


def test_config_registry_and_repr():
    codec = HuffmanCodec(chunk_symbols=1000, max_code_length=9)
    config = codec.get_config()
    assert config == {"id": "huffman", "chunk_symbols": 1000, "max_code_length": 9, "chunk_multiple": 4}
    assert get_codec(json.loads(json.dumps(config))) == codec
    assert eval(repr(codec)) == codec
    assert get_codec("huffman") == HuffmanCodec()
    assert codec_for_wire_id(SegmentCodec.HUFFMAN) is HuffmanCodec


@pytest.mark.parametrize("kwargs", [{"chunk_symbols": 0}, {"chunk_symbols": 1.5},
                                    {"max_code_length": 0}, {"max_code_length": 16},
                                    {"chunk_multiple": 0}, {"chunk_multiple": 65}, {"chunk_multiple": True}])
def test_bad_settings(kwargs):
    with pytest.raises(InvalidSettings):
        HuffmanCodec(**kwargs)


def test_usage_errors():
    payload = build(LENGTHS, ENTRIES, STREAM)
    with pytest.raises(UsageError):
        decode(payload, threads=0)
    with pytest.raises(UsageError):
        decode(payload, out=np.empty(5, np.uint16))
    with pytest.raises(UsageError):
        HuffmanCodec().encode(np.array([4]), 4)
    for count in (-1, 2 ** 48 + 1, 2 ** 64, 2 ** 70, True):  # not an OverflowError from below
        with pytest.raises(UsageError, match="count"):
            HuffmanCodec().decode(payload, count, 16)
    assert symbol_width(4) == 2
