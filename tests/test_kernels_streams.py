"""Stream kernels against slow pure-Python references, including on hostile bytes.

``reference_chunk`` decodes one Huffman chunk bit by bit as the spec words it (codes
read most significant bit first, bits past the chunk read as zero) and returns the
status the kernel must report. The last two tests rerun the hostile-input cases with
``NUMBA_DISABLE_JIT=1`` and with ``NUMBA_BOUNDSCHECK=1`` in a subprocess.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcformat.errors import FormatError
from dcformat.kernels import bitpack
from dcformat.kernels import huffman as hk
from dcformat.streams import HuffmanCodec, PackedCodec
from dcformat.reference.primitives import canonical_codes as reference_codes
from dcformat.streams.canonical import code_lengths

JIT_OFF = os.environ.get("NUMBA_DISABLE_JIT") == "1"
#: How many hostile payloads each fuzz test tries (fewer in pure Python).
FUZZ_CASES = 40 if JIT_OFF else 400


# --- slow references -----------------------------------------------------------------


def canonical_codes(lengths) -> dict[int, int]:
    """Symbol -> canonical code (most significant bit first), from the reference decoder."""
    return {s: code for (_, code), s in reference_codes([int(x) for x in lengths]).items()}


def decode_table(lengths) -> tuple[np.ndarray, int]:
    """The kernels' decode table (symbols as values) and its index width."""
    lengths = np.asarray(lengths, dtype=np.uint8)
    maxlen = int(lengths.max())
    table = np.zeros(1 << maxlen, dtype=np.uint64)
    hk.build_decode_table(lengths, np.arange(lengths.size, dtype=np.uint16), maxlen, table)
    return table, maxlen


def bits_of(data: bytes):
    """The bits of ``data``, least significant bit of each byte first."""
    return [(byte >> i) & 1 for byte in data for i in range(8)]


def reference_chunk(data: bytes, lengths, count):
    """(status, symbols) for one Huffman chunk, decoded bit by bit."""
    codes = canonical_codes(lengths)
    by_code = {(int(ln), codes[s]): s for s, ln in enumerate(lengths) if ln}
    maxlen = max(int(x) for x in lengths)
    bits = bits_of(data)
    total = len(bits)
    pos = 0
    symbols = []
    for _ in range(count):
        code = 0
        for ln in range(1, maxlen + 1):
            code = (code << 1) | (bits[pos + ln - 1] if pos + ln - 1 < total else 0)
            if (ln, code) in by_code:
                break
        else:
            return hk.STATUS_INVALID_CODE, symbols
        if pos + ln > total:
            return hk.STATUS_PAST_END, symbols
        symbols.append(by_code[(ln, code)])
        pos += ln
    if len(data) != -(-pos // 8):
        return hk.STATUS_SIZE_MISMATCH, symbols
    if any(bits[pos:]):
        return hk.STATUS_NONZERO_PADDING, symbols
    return hk.STATUS_OK, symbols


def random_lengths(rng, size, complete=True):
    """A prefix code for ``size`` symbols (some unused), complete or with holes."""
    freqs = rng.geometric(rng.uniform(0.05, 0.9), size) * rng.integers(0, 2, size)
    if freqs.sum() == 0:
        freqs[rng.integers(size)] = 1
    lengths = code_lengths(freqs, int(rng.integers(max(1, int(np.ceil(np.log2(max(2, np.count_nonzero(freqs)))))), 16)))
    if not complete and np.count_nonzero(lengths) > 1:
        lengths[np.flatnonzero(lengths)[0]] = 0  # drop a code: a hole in the code space
    return lengths


def decode_with_kernel(lengths, chunks, counts, width=16, modes=None, multi=False):
    """Run decode_chunks over byte strings ``chunks`` (through a multi-symbol table where
    ``multi`` and the codes allow); return (statuses, out, firsts)."""
    data = np.frombuffer(b"".join(chunks), dtype=np.uint8)
    ends = np.cumsum([len(c) for c in chunks]).astype(np.int64)
    begins = np.concatenate([[0], ends[:-1]]).astype(np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    firsts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    table, maxlen = decode_table(lengths)
    modes = np.zeros(len(chunks), dtype=np.uint8) if modes is None else np.asarray(modes, dtype=np.uint8)
    out = np.full(int(counts.sum()), 0xFFFF, dtype=np.uint16)
    status = np.full(len(chunks), 99, dtype=np.uint8)
    many = np.zeros(hk.multi_table_size(maxlen, 2) if multi else 0, dtype=np.uint64)
    if many.size:
        hk.build_multi_table(table, maxlen, many)
    hk.decode_chunks(data, table, maxlen, many, modes, begins, ends, firsts, counts, width, out, status)
    return status, out, firsts


# --- bit packing -----------------------------------------------------------------------


@pytest.mark.parametrize("width", range(1, 17))
def test_pack_unpack_against_python_ints(width):
    rng = np.random.default_rng(width)
    for count in (0, 1, 2, 3, 5, 8, 13, 31, 100):
        symbols = rng.integers(0, 1 << width, count).astype(np.uint16)
        out = np.full(-(-count * width // 8), 0xAA, dtype=np.uint8)
        bitpack.pack(symbols, width, out)
        value = sum(int(s) << (j * width) for j, s in enumerate(symbols))
        assert out.tobytes() == value.to_bytes(out.size, "little")
        back = np.full(count + 3, 0xBEEF, dtype=np.uint16)
        bitpack.unpack(out, count, width, back)
        np.testing.assert_array_equal(back[:count], symbols)
        assert (back[count:] == 0xBEEF).all()  # nothing written past count


# --- tables --------------------------------------------------------------------------


def test_decode_table_matches_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(30):
        lengths = random_lengths(rng, int(rng.integers(1, 40)), complete=bool(rng.integers(2)))
        codes = canonical_codes(lengths)
        table, maxlen = decode_table(lengths)
        for pattern in range(1 << maxlen):
            # the pattern as peeked: its bit 0 is the first bit of the stream
            msb_first = [(pattern >> i) & 1 for i in range(maxlen)]
            expected = 0
            for s, ln in enumerate(lengths):
                if ln and int("".join(map(str, msb_first[:ln])), 2) == codes[s]:
                    expected = (s << 32) | 16 | int(ln)
            assert table[pattern] == expected, (pattern, lengths)


# --- Huffman chunks: valid and hostile --------------------------------------------------


def encode_chunk(lengths, symbols):
    codes = canonical_codes(lengths)
    bits = []
    for s in symbols:
        ln = int(lengths[s])
        bits += [(int(codes[s]) >> (ln - 1 - i)) & 1 for i in range(ln)]
    bits += [0] * (-len(bits) % 8)
    return bytes(sum(b << i for i, b in enumerate(bits[k:k + 8])) for k in range(0, len(bits), 8))


@pytest.mark.parametrize("multi", [False, True], ids=["single", "multi"])
def test_valid_chunks_match_reference_in_groups_of_four_and_alone(multi):
    rng = np.random.default_rng(2)
    for n_chunks in (1, 3, 4, 5, 8, 9):
        lengths = random_lengths(rng, 50)
        used = np.flatnonzero(lengths)
        counts = rng.integers(1, 300, n_chunks)
        chunk_symbols = [rng.choice(used, c) for c in counts]
        chunks = [encode_chunk(lengths, s) for s in chunk_symbols]
        status, out, firsts = decode_with_kernel(lengths, chunks, counts, multi=multi)
        assert (status == 0).all()
        np.testing.assert_array_equal(out, np.concatenate(chunk_symbols))
        for chunk, c, s in zip(chunks, counts, chunk_symbols):
            assert reference_chunk(chunk, lengths, c) == (0, list(s))


@pytest.mark.parametrize("maxlen", [1, 2, 7, 11, 12, 14, 15])
@pytest.mark.parametrize("multi", [False, True], ids=["single", "multi"])
def test_every_codes_per_refill_variant(maxlen, multi):
    # lengths 1, 2, ..., maxlen, maxlen: 5, 4 or 3 codes per refill in the fast loops
    lengths = code_lengths(np.array([1 << (maxlen - k) for k in range(maxlen)] + [1]), maxlen)
    assert lengths.max() == maxlen
    rng = np.random.default_rng(maxlen)
    counts = [700] * 8 + [333]
    chunk_symbols = [rng.choice(maxlen + 1, c, p=np.full(maxlen + 1, 1 / (maxlen + 1))) for c in counts]
    chunks = [encode_chunk(lengths, s) for s in chunk_symbols]
    status, out, _ = decode_with_kernel(lengths, chunks, counts, multi=multi)
    assert (status == 0).all()
    np.testing.assert_array_equal(out, np.concatenate(chunk_symbols))


def mutate(rng, chunk: bytes) -> bytes:
    data = bytearray(chunk)
    kind = rng.integers(5)
    if kind == 0 and data:  # flip a bit
        i = int(rng.integers(len(data) * 8))
        data[i // 8] ^= 1 << (i % 8)
    elif kind == 1 and data:  # cut the end
        del data[int(rng.integers(len(data))):]
    elif kind == 2:  # add bytes
        data += bytes(rng.integers(0, 256, int(rng.integers(1, 3))).astype(np.uint8))
    elif kind == 3 and data:  # set trailing bits
        data[-1] |= 0x80
    else:  # random bytes
        data = bytearray(rng.integers(0, 256, len(data)).astype(np.uint8))
    return bytes(data)


@pytest.mark.parametrize("multi", [False, True], ids=["single", "multi"])
def test_hostile_chunks_get_the_reference_status(multi):
    rng = np.random.default_rng(3)
    for _ in range(FUZZ_CASES // 4):
        lengths = random_lengths(rng, int(rng.integers(1, 70)), complete=bool(rng.integers(2)))
        used = np.flatnonzero(lengths)
        n_chunks = int(rng.integers(1, 7))
        counts = rng.integers(1, 120, n_chunks)
        chunks = [mutate(rng, encode_chunk(lengths, rng.choice(used, c))) if rng.integers(2)
                  else encode_chunk(lengths, rng.choice(used, c)) for c in counts]
        status, out, firsts = decode_with_kernel(lengths, chunks, counts, multi=multi)
        for k, (chunk, c) in enumerate(zip(chunks, counts)):
            ref_status, ref_symbols = reference_chunk(chunk, lengths, int(c))
            assert status[k] == ref_status, (k, chunk.hex(), lengths.tolist(), int(c))
            if ref_status == 0:
                np.testing.assert_array_equal(out[firsts[k]:firsts[k] + c], ref_symbols)


@pytest.mark.parametrize("multi", [False, True], ids=["single", "multi"])
@given(st.binary(max_size=64), st.integers(1, 600), st.integers(0, 2**32 - 1))
@settings(max_examples=FUZZ_CASES // 2, deadline=None)
def test_random_bytes_any_count(multi, data, count, seed):
    lengths = random_lengths(np.random.default_rng(seed), 20, complete=seed % 2 == 0)
    status, out, _ = decode_with_kernel(lengths, [data], [count], multi=multi)
    assert status[0] == reference_chunk(data, lengths, count)[0]


@pytest.mark.parametrize("multi", [False, True], ids=["single", "multi"])
def test_single_code_of_length_one(multi):
    lengths = np.array([0, 0, 1], dtype=np.uint8)  # symbol 2 is code "0"; "1" is no code

    def status(data, count):
        return decode_with_kernel(lengths, [data], [count], multi=multi)[0][0]

    assert status(b"\x00", 8) == hk.STATUS_OK
    assert status(b"\x00", 9) == hk.STATUS_PAST_END
    assert status(b"\x10", 8) == hk.STATUS_INVALID_CODE
    assert status(b"\x00", 7) == hk.STATUS_OK  # trailing bit zero
    assert status(b"\x80", 7) == hk.STATUS_NONZERO_PADDING
    assert status(b"\x00\x00", 8) == hk.STATUS_SIZE_MISMATCH


def test_raw_chunks_between_huffman_chunks():
    lengths = np.array([1, 2, 2], dtype=np.uint8)
    huff = encode_chunk(lengths, [0, 1, 2, 0])
    raw = np.zeros(1, dtype=np.uint8)
    bitpack.pack(np.array([3, 1, 2, 0], dtype=np.uint16), 2, raw)
    status, out, _ = decode_with_kernel(lengths, [huff, raw.tobytes(), huff, huff, huff, huff],
                                        [4, 4, 4, 4, 4, 4], width=2, modes=[0, 1, 0, 0, 0, 0])
    assert (status == 0).all()
    np.testing.assert_array_equal(out, [0, 1, 2, 0, 3, 1, 2, 0] + [0, 1, 2, 0] * 4)


# --- whole payloads through the codecs --------------------------------------------------


def hostile_payloads(rng, count):
    """Valid Huffman and packed payloads with random bytes changed, cut or added."""
    for _ in range(count):
        alphabet = int(rng.choice([2, 5, 16, 64, 300, 65536]))
        n = int(rng.integers(0, 400))
        symbols = np.minimum(rng.geometric(0.3, n) - 1, alphabet - 1).astype(np.uint16)
        codec = HuffmanCodec(chunk_symbols=int(rng.integers(1, 100)), max_code_length=int(rng.integers(1, 16)))
        if rng.integers(4) == 0:
            codec = PackedCodec()
        gap = bool(rng.integers(2))
        payload = bytearray(codec.encode(symbols, alphabet, gap_stream=gap))
        for _ in range(int(rng.integers(1, 4))):
            kind = rng.integers(4)
            if kind == 0 and payload:
                i = int(rng.integers(len(payload)))
                payload[i] = int(rng.integers(256))
            elif kind == 1 and payload:
                del payload[int(rng.integers(len(payload))):]
            elif kind == 2:
                payload += bytes([int(rng.integers(256))])
            elif payload:
                i = int(rng.integers(len(payload) * 8))
                payload[i // 8] ^= 1 << (i % 8)
        yield codec, bytes(payload), n + int(rng.integers(-2, 3)) * int(rng.integers(2)), alphabet, gap


def test_hostile_payloads_raise_only_format_errors():
    rng = np.random.default_rng(4)
    outcomes = {}
    for codec, payload, n, alphabet, gap in hostile_payloads(rng, FUZZ_CASES):
        try:
            decoded = codec.decode(payload, max(n, 0), alphabet, gap_stream=gap)
        except FormatError as exc:
            outcomes[type(exc).__name__] = outcomes.get(type(exc).__name__, 0) + 1
        else:
            assert decoded.shape == (max(n, 0),)
            assert decoded.size == 0 or int(decoded.max()) < alphabet
    assert len(outcomes) >= 4, outcomes  # the mutations reach several rules


def run_in_subprocess(env_extra, test_file=__file__, keywords="hostile or single_code or raw_chunks_between"):
    """Run the tests of ``test_file`` matching ``keywords`` in pytest with ``env_extra`` set."""
    # A cache of its own: Numba's cache key ignores NUMBA_BOUNDSCHECK, so sharing the
    # normal cache could hand back kernels built without bounds checks. Keeping it
    # between runs spares the recompile until a kernel's source changes.
    cache = Path(tempfile.gettempdir()) / "dcformat-numba-cache-boundscheck"
    env = dict(os.environ, **env_extra, NUMBA_CACHE_DIR=str(cache))
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(Path(test_file)), "-k", keywords],
        cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.skipif(JIT_OFF or os.environ.get("NUMBA_BOUNDSCHECK") == "1", reason="already in the subprocess")
def test_kernels_in_pure_python():
    run_in_subprocess({"NUMBA_DISABLE_JIT": "1"})


@pytest.mark.skipif(JIT_OFF or os.environ.get("NUMBA_BOUNDSCHECK") == "1", reason="already in the subprocess")
def test_kernels_with_boundscheck():
    run_in_subprocess({"NUMBA_BOUNDSCHECK": "1"})
