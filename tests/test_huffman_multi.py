"""The multi-symbol Huffman readers against the single-symbol ones they stand in for.

Every stream is decoded twice, with and without a multi-symbol table
(:func:`dcformat.kernels.huffman.build_multi_table`): the statuses must agree chunk by
chunk, the symbols of every chunk that decodes must agree (and be the stream's), a chunk
that fails must agree on the symbols before its first bad code, and nothing outside the
Huffman chunks' own output ranges may be written. Streams are drawn for every code length
limit, skewed and uniform, with chunks of one symbol to thousands, then corrupted; the
real data is the exponent plane of a real fp32 checkpoint. The kernel tests rerun with
``NUMBA_BOUNDSCHECK=1`` and without the JIT in a subprocess.
"""

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dcformat.streams.huffman as H
from dcformat.errors import FormatError
from dcformat.kernels import huffman as hk
from dcformat.streams import HuffmanCodec
from dcformat.streams.canonical import code_lengths
from dcformat.streams.huffman import parse_stream

from .real_checkpoints import raw_safetensors, real_checkpoint
from .test_kernels_streams import JIT_OFF, mutate, run_in_subprocess

#: Drawn streams per property test (fewer in pure Python).
EXAMPLES = 6 if JIT_OFF else 120
SENTINEL = 0xA5A5A5A5


# --- streams ---------------------------------------------------------------------------


def draw_symbols(rng, n, alphabet, used, shape):
    """``n`` symbols over ``used`` distinct values of the alphabet: uniform, geometric or Zipf."""
    support = np.sort(rng.choice(alphabet, used, replace=False))
    if shape == "uniform":
        p = np.ones(used)
    elif shape == "geometric":
        p = rng.uniform(0.2, 0.9) ** np.arange(used)
    else:  # Zipf-like, as exponent planes are
        p = 1.0 / np.arange(1, used + 1) ** rng.uniform(1.0, 3.0)
    return support[rng.choice(used, n, p=p / p.sum())].astype(np.uint16)


@st.composite
def streams(draw):
    """(codec, symbols, alphabet): every code length limit, tiny to large chunks."""
    limit = draw(st.integers(1, 15))
    alphabet = draw(st.sampled_from([2, 3, 17, 256, 300, 4096, 65536]))
    used = draw(st.integers(1, min(alphabet, 1 << limit, 600)))
    shape = draw(st.sampled_from(["uniform", "geometric", "zipf"]))
    n = draw(st.one_of(st.integers(1, 64), st.integers(1, 40_000)))
    chunk = draw(st.one_of(st.integers(1, 40), st.integers(1, 9_000)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    codec = HuffmanCodec(chunk_symbols=chunk, max_code_length=limit, chunk_multiple=draw(st.sampled_from([1, 4])))
    return codec, draw_symbols(rng, n, alphabet, used, shape), alphabet, rng


def values_for(rng, alphabet, kind):
    """The value table a decode maps symbols through: the symbols, or random 2- or 4-byte bits."""
    if kind == "symbols":
        return np.arange(alphabet, dtype=np.uint16)
    dtype = np.uint16 if kind == "u16" else np.uint32
    return rng.integers(0, np.iinfo(dtype).max, alphabet, dtype=np.uint64, endpoint=True).astype(dtype)


# --- one decode, both ways ---------------------------------------------------------------


def tables(lengths, values):
    """The single-symbol value table, its index width and its multi-symbol table (maybe empty)."""
    maxlen = max(1, int(lengths.max()) if lengths.size else 1)
    table = np.zeros(1 << maxlen, dtype=np.uint64)
    if lengths.any():
        hk.build_decode_table(lengths, values, maxlen, table)
    multi = np.zeros(hk.multi_table_size(maxlen, values.dtype.itemsize) if lengths.any() else 0, dtype=np.uint64)
    if multi.size:
        hk.build_multi_table(table, maxlen, multi)
    return table, maxlen, multi


def decode_huffman(bits, table, maxlen, multi, modes, begins, ends, firsts, counts, dtype):
    """(status, out) of decode_huffman_chunks into a sentinel-filled output with a margin."""
    total = int(firsts[-1] + counts[-1])
    out = np.full(total + 8, SENTINEL, dtype=np.uint64).astype(dtype)
    status = np.full(modes.shape[0], 99, dtype=np.uint8)
    hk.decode_huffman_chunks(bits, table, maxlen, multi, modes, begins, ends, firsts, counts, out, status)
    return status, out


def decoded_prefix(bits, table, maxlen, begin, end, count):
    """How many of a chunk's first symbols decode before a bad code or the end of its bytes."""
    lo, hi = 0, count  # the first lo decode; the first hi + 1 do not (or hi == count)
    huffman = np.zeros(1, dtype=np.uint8)
    while lo < hi:
        k = (lo + hi + 1) // 2
        status = np.zeros(1, dtype=np.uint8)
        out = np.zeros(k, dtype=np.uint16)
        hk.decode_huffman_chunks(bits, table, maxlen, np.zeros(0, np.uint64), huffman, np.array([begin]),
                                 np.array([end]), np.zeros(1, np.int64), np.array([k]), out, status)
        if status[0] in (hk.STATUS_INVALID_CODE, hk.STATUS_PAST_END):
            hi = k - 1
        else:
            lo = k
    return lo


def assert_same_decode(bits, lengths, values, modes, begins, ends, firsts, counts):
    """Decode with and without the multi-symbol table; compare as the module docstring says.

    Returns the statuses and the multi-symbol output.
    """
    table, maxlen, multi = tables(lengths, values)
    args = (bits, table, maxlen)
    spans = (modes, begins, ends, firsts, counts, values.dtype)
    single_status, single = decode_huffman(*args, np.zeros(0, np.uint64), *spans)
    multi_status, many = decode_huffman(*args, multi, *spans)
    np.testing.assert_array_equal(multi_status, single_status)
    outside = np.ones(many.shape[0], dtype=bool)
    for c in np.flatnonzero(modes == 0):
        first, count = int(firsts[c]), int(counts[c])
        outside[first:first + count] = False
        if single_status[c] != hk.STATUS_OK:
            count = decoded_prefix(bits, table, maxlen, int(begins[c]), int(ends[c]), count)
        bad = np.flatnonzero(many[first:first + count] != single[first:first + count])
        assert not bad.size, f"chunk {c} (status {single_status[c]}): {bad.size} symbols differ, first at {bad[0]}"
    assert (many[outside] == np.asarray(SENTINEL).astype(values.dtype)).all(), "written outside the Huffman chunks"
    return multi_status, many


def chunk_arrays(payload, count, alphabet):
    chunks = parse_stream(payload, count, alphabet)
    return chunks, (chunks.modes.copy(), chunks.begins, chunks.ends, chunks.firsts, chunks.counts)


# --- the table ---------------------------------------------------------------------------


def test_multi_table_entries_hold_the_codes_that_fit():
    rng = np.random.default_rng(5)
    for maxlen in range(1, hk.MULTI_BITS + 1):
        for kind in ("u16", "u32"):
            used = int(rng.integers(1, (1 << maxlen) + 1))
            freqs = np.zeros(40 + used, dtype=np.int64)
            freqs[rng.choice(freqs.size, used, replace=False)] = rng.geometric(0.3, used)
            lengths = code_lengths(freqs, maxlen)
            if rng.integers(2) and np.count_nonzero(lengths) > 1:
                lengths[np.flatnonzero(lengths)[0]] = 0  # a hole: patterns no code starts with
            values = values_for(rng, lengths.size, kind)
            table, bits, multi = tables(lengths, values)
            for i in range(1 << hk.MULTI_BITS):
                got, used_bits = [], 0
                while len(got) < 3:
                    e = int(table[(i >> used_bits) & ((1 << bits) - 1)])
                    ln = e & 15
                    if not ln or used_bits + ln > hk.MULTI_BITS:
                        break
                    got.append(e >> 32)
                    used_bits += ln
                lanes = got + [0] * (3 - len(got))
                if kind == "u16":
                    expected = [lanes[0] | lanes[1] << 16 | lanes[2] << 32 | used_bits << 48 | len(got) << 54]
                else:
                    expected = [lanes[0] | lanes[1] << 32, lanes[2] | used_bits << 32 | len(got) << 62]
                entry = [int(multi[i])] if kind == "u16" else [int(multi[i]), int(multi[i + (1 << hk.MULTI_BITS)])]
                assert entry == expected, (maxlen, kind, i)


def test_multi_table_only_where_it_applies():
    assert hk.multi_table_size(hk.MULTI_BITS, 2) == 1 << hk.MULTI_BITS
    assert hk.multi_table_size(1, 4) == 2 << hk.MULTI_BITS
    assert hk.multi_table_size(hk.MULTI_BITS + 1, 2) == 0  # longer codes: the plain readers
    assert hk.multi_table_size(8, 1) == hk.multi_table_size(8, 8) == 0
    symbols = np.arange(H.MULTI_MIN_SYMBOLS, dtype=np.uint16) % 7
    chunks = parse_stream(HuffmanCodec().encode(symbols, 7), symbols.size, 7)
    table = chunks.value_table(np.arange(7, dtype=np.uint16))
    assert chunks.multi_table(table, 2, symbols.size).size == 1 << hk.MULTI_BITS
    assert chunks.multi_table(table, 2, H.MULTI_MIN_SYMBOLS - 1).size == 0  # too short to pay


# --- kernels: drawn streams, valid and corrupt -------------------------------------------


@given(streams(), st.sampled_from(["symbols", "u16", "u32"]))
@settings(max_examples=EXAMPLES, deadline=None)
def test_multi_equals_single_on_valid_streams(stream, kind):
    codec, symbols, alphabet, rng = stream
    chunks, spans = chunk_arrays(codec.encode(symbols, alphabet), symbols.size, alphabet)
    values = values_for(rng, max(alphabet, 1), kind)
    status, out = assert_same_decode(chunks.bits, chunks.lengths, values, *spans)
    huffman = spans[0] == 0
    assert (status[huffman] == hk.STATUS_OK).all()
    expected = values[symbols]
    for c in np.flatnonzero(huffman):
        first, count = int(chunks.firsts[c]), int(chunks.counts[c])
        np.testing.assert_array_equal(out[first:first + count], expected[first:first + count])


@given(streams(), st.sampled_from(["symbols", "u16", "u32"]), st.booleans())
@settings(max_examples=EXAMPLES, deadline=None)
def test_multi_equals_single_on_hostile_chunks(stream, kind, hole):
    """Bit flips, cuts, extra bytes, set trailing bits and random bytes in some chunks;
    some chunks marked raw (skipped, so never written); sometimes a code dropped."""
    codec, symbols, alphabet, rng = stream
    chunks, (modes, begins, ends, firsts, counts) = chunk_arrays(codec.encode(symbols, alphabet), symbols.size,
                                                                 alphabet)
    lengths = chunks.lengths.copy()
    if not lengths.any():
        return
    if hole and np.count_nonzero(lengths) > 1:
        lengths[rng.choice(np.flatnonzero(lengths))] = 0  # its codes become patterns no code starts with
    pieces = []
    for c in range(modes.shape[0]):
        piece = chunks.bits[begins[c]:ends[c]].tobytes()
        pieces.append(mutate(rng, piece) if rng.integers(3) == 0 else piece)
        modes[c] = 1 if rng.integers(6) == 0 else 0
    bits = np.frombuffer(b"".join(pieces), dtype=np.uint8)
    ends = np.cumsum([len(p) for p in pieces]).astype(np.int64)
    begins = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    assert_same_decode(bits, lengths, values_for(rng, max(alphabet, 1), kind), modes, begins, ends, firsts, counts)


@pytest.mark.parametrize("lengths", [[1], [1, 1], [1, 2, 2], [2, 2, 2, 2], [1, 3, 3, 3, 3]])
def test_hostile_zero_tails_keep_writes_inside_each_chunk(lengths):
    # Zero bytes decode as the all-zero code, three symbols a lookup; a chunk with many
    # more bytes than its symbols need binds the readers by its symbol count alone.
    lengths = np.array(lengths, dtype=np.uint8)
    rng = np.random.default_rng(int(lengths.sum()))
    for _ in range(12):
        counts = rng.integers(1, 400, int(rng.integers(1, 10)))
        pieces = [bytes(int(c) // int(rng.integers(1, 9)) + int(rng.integers(0, 200))) for c in counts]
        bits = np.frombuffer(b"".join(pieces), dtype=np.uint8)
        ends = np.cumsum([len(p) for p in pieces]).astype(np.int64)
        begins = np.concatenate([[0], ends[:-1]]).astype(np.int64)
        firsts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        modes = (rng.integers(0, 4, counts.size) == 0).astype(np.uint8)
        for kind in ("u16", "u32"):
            assert_same_decode(bits, lengths, values_for(rng, lengths.size, kind), modes, begins, ends, firsts,
                               counts.astype(np.int64))


def test_hostile_reader_stuck_on_a_missing_code_deep_in_long_chunks():
    # A long run of short codes, then the dropped symbol: the fast loops must stop, not spin.
    rng = np.random.default_rng(8)
    symbols = draw_symbols(rng, 60_000, 40, 40, "zipf")
    symbols[[5_000, 23_456, 41_000, 59_990]] = 39
    chunks, spans = chunk_arrays(HuffmanCodec(chunk_symbols=15_000).encode(symbols, 40), symbols.size, 40)
    lengths = chunks.lengths.copy()
    lengths[39] = 0
    status, _ = assert_same_decode(chunks.bits, lengths, np.arange(40, dtype=np.uint16), *spans)
    assert (status == hk.STATUS_INVALID_CODE).all()


@pytest.mark.skipif(JIT_OFF or os.environ.get("NUMBA_BOUNDSCHECK") == "1", reason="already in the subprocess")
def test_multi_kernels_with_boundscheck():
    run_in_subprocess({"NUMBA_BOUNDSCHECK": "1"}, __file__, "multi_table or multi_equals or hostile")


@pytest.mark.skipif(JIT_OFF or os.environ.get("NUMBA_BOUNDSCHECK") == "1", reason="already in the subprocess")
def test_multi_kernels_in_pure_python():
    run_in_subprocess({"NUMBA_DISABLE_JIT": "1"}, __file__, "multi_equals or stuck")


# --- codecs: the public decoders with and without the table ---------------------------


def decode_all_ways(payload, count, alphabet, values):
    """What decode, decode_gather (into the values' width) and decode_narrow give: each
    one's result, or the error it raises (type and message)."""
    codec = HuffmanCodec()
    outcomes = []
    for call in (lambda: codec.decode(payload, count, alphabet, threads=1),
                 lambda: codec.decode_gather(payload, count, values, threads=1),
                 lambda: codec.decode_narrow(payload, count, alphabet, threads=1)):
        try:
            outcomes.append(np.asarray(call()).copy())
        except FormatError as exc:
            outcomes.append((type(exc), str(exc)))
    return outcomes


def assert_same_outcomes(monkeypatch, payload, count, alphabet, values):
    monkeypatch.setattr(H, "MULTI_MIN_SYMBOLS", 1 << 62)
    single = decode_all_ways(payload, count, alphabet, values)
    monkeypatch.setattr(H, "MULTI_MIN_SYMBOLS", 0)
    many = decode_all_ways(payload, count, alphabet, values)
    for a, b in zip(single, many):
        if isinstance(a, tuple) or isinstance(b, tuple):
            assert a == b
        else:
            np.testing.assert_array_equal(a, b)
    return many


@pytest.mark.parametrize("limit", range(1, 16))
@pytest.mark.parametrize("shape", ["uniform", "zipf"])
def test_codecs_agree_for_every_code_length_limit(monkeypatch, limit, shape):
    rng = np.random.default_rng(limit)
    alphabet = 300
    symbols = draw_symbols(rng, 50_000, alphabet, min(alphabet, 1 << limit), shape)
    payload = HuffmanCodec(max_code_length=limit).encode(symbols, alphabet)
    values = values_for(rng, alphabet, "u32")
    outcomes = assert_same_outcomes(monkeypatch, payload, symbols.size, alphabet, values)
    np.testing.assert_array_equal(outcomes[0], symbols)
    np.testing.assert_array_equal(outcomes[1], values[symbols])


def test_codecs_agree_on_corrupt_payloads(monkeypatch):
    rng = np.random.default_rng(9)
    symbols = draw_symbols(rng, 30_000, 256, 20, "zipf")
    payload = HuffmanCodec(chunk_symbols=4_000).encode(symbols, 256)
    values = values_for(rng, 256, "u16")
    for _ in range(40):
        corrupt = bytearray(payload)
        kind = rng.integers(3)
        if kind == 0:  # flip bits in the chunks' bit streams
            for _ in range(int(rng.integers(1, 4))):
                i = int(rng.integers(len(payload) - 2000, len(payload)) * 8 + rng.integers(8))
                corrupt[i // 8] ^= 1 << (i % 8)
        elif kind == 1:
            del corrupt[int(rng.integers(len(payload) - 2000, len(payload))):]
        else:
            corrupt += bytes(rng.integers(0, 256, int(rng.integers(1, 4))).astype(np.uint8))
        assert_same_outcomes(monkeypatch, bytes(corrupt), symbols.size, 256, values)


# --- real data -----------------------------------------------------------------------------


def real_exponents():
    """The exponent byte of every F32 weight of the Silero VAD checkpoint, in file order."""
    _, tensors = raw_safetensors(real_checkpoint("silero-vad.safetensors"))
    bits = np.concatenate([np.frombuffer(raw, dtype="<u4") for dtype, _, raw in tensors.values() if dtype == "F32"])
    return ((bits >> 23) & 0xFF).astype(np.uint16)


@pytest.mark.parametrize("kind", ["fp32", "bf16"])
def test_real_exponent_plane(monkeypatch, kind):
    exponents = real_exponents()
    assert exponents.size > H.MULTI_MIN_SYMBOLS
    payload = HuffmanCodec().encode(exponents, 256)
    chunks = parse_stream(payload, exponents.size, 256)
    assert chunks.maxlen <= hk.MULTI_BITS
    # the exponent placed as decode_planes places it, in a 4- or 2-byte value
    values = np.arange(256, dtype=np.uint32) << 23 if kind == "fp32" else np.arange(256, dtype=np.uint16) << 7
    outcomes = assert_same_outcomes(monkeypatch, payload, exponents.size, 256, values)
    np.testing.assert_array_equal(outcomes[0], exponents)
    np.testing.assert_array_equal(outcomes[1], values[exponents])
    rng = np.random.default_rng(10)
    for _ in range(10):  # a flipped bit in the chunks
        corrupt = bytearray(payload)
        i = int(rng.integers(len(payload) - int(chunks.bits.size), len(payload)))
        corrupt[i] ^= 1 << int(rng.integers(8))
        assert_same_outcomes(monkeypatch, bytes(corrupt), exponents.size, 256, values)
