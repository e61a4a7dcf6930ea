"""The one sparse builder: entries and fillers, streams coded once and written as coded."""

from __future__ import annotations

import numpy as np
import pytest

import dcformat
from dcformat.compress import sparse as compress_sparse
from dcformat.encodings import sparse
from dcformat.encodings.model import EncodedTensor
from dcformat.encodings.sparse import build_sparse, code_gaps, positions_to_gaps, smallest_sparse
from dcformat.errors import InvalidSettings, UsageError
from dcformat.streams import HuffmanCodec, PackedCodec
from dcformat.streams.choose import code_stream, shortest_code_limit


def _positions(n=5000, density=0.05, seed=0):
    rng = np.random.default_rng(seed)
    return np.flatnonzero(rng.random(n) < density)


def count_encodes(monkeypatch) -> list:
    """Every stream codec's ``encode`` from now on appends its codec to the list returned."""
    calls = []
    for cls in (HuffmanCodec, PackedCodec):
        original = cls.encode
        monkeypatch.setattr(cls, "encode", lambda self, *a, _o=original, **k: calls.append(self) or _o(self, *a, **k))
    return calls


def test_compress_sparse_keeps_its_names():
    assert compress_sparse.positions_to_gaps is sparse.positions_to_gaps
    assert compress_sparse.GapStream is sparse.GapStream


@pytest.mark.parametrize("gap_bits", [1, 3, 8, 16])
def test_entries_place_values_and_fillers(gap_bits):
    positions = _positions()
    kept = (np.arange(positions.size) % 7 + 1).astype(np.uint16)
    s = build_sparse(positions_to_gaps(positions, gap_bits), kept, filler=0, alphabet=8)
    placed = np.cumsum(s.gap_stream.gaps.astype(np.int64) + 1) - 1
    assert np.array_equal(placed[s.gap_stream.kept_index], positions)
    assert np.array_equal(s.values[s.gap_stream.kept_index], kept)
    assert s.kept == positions.size and s.entries == s.kept + s.fillers
    assert np.all(np.delete(s.values, s.gap_stream.kept_index) == 0)
    assert s.nbytes == s.gaps.nbytes + s.coded.nbytes


def test_a_filler_symbol_of_its_own_grows_the_alphabet_only_where_needed():
    positions = np.array([0, 40, 41])
    narrow = build_sparse(positions_to_gaps(positions, 2), np.array([1, 2, 0]), filler=None, alphabet=3)
    wide = build_sparse(positions_to_gaps(positions, 8), np.array([1, 2, 0]), filler=None, alphabet=3)
    assert narrow.alphabet == 4 and set(np.delete(narrow.values, narrow.gap_stream.kept_index)) == {3}
    assert wide.alphabet == 3 and wide.fillers == 0


def test_raw_values_keep_their_dtype():
    gs = positions_to_gaps(np.array([3, 70]), 4)
    s = build_sparse(gs, np.array([1.5, -2.0], np.float16), filler=0)
    assert s.values.dtype == np.float16 and s.alphabet is None
    assert s.nbytes == s.gaps.nbytes + 2 * s.entries
    with pytest.raises(UsageError):
        s.codebook_values(np.zeros(1, np.float16))
    with pytest.raises(UsageError):
        build_sparse(gs, np.array([1, 2]), filler=0, alphabet=8).raw_values()


@pytest.mark.parametrize("kwargs", [dict(filler=8, alphabet=8), dict(filler=None), dict(filler=0, alphabet=2)])
def test_bad_arguments_are_usage_errors(kwargs):
    gs = positions_to_gaps(np.array([0, 100]), 2)
    with pytest.raises(UsageError):
        build_sparse(gs, np.array([1, 5]), **kwargs)  # filler or value outside the alphabet, no alphabet


def test_bad_gap_width_and_count():
    with pytest.raises(InvalidSettings):
        smallest_sparse(np.array([1]), np.array([1]), [17], filler=0, alphabet=2)
    with pytest.raises(UsageError):
        build_sparse(positions_to_gaps(np.array([1, 2]), 4), np.array([1]), filler=0, alphabet=2)
    with pytest.raises(UsageError):
        smallest_sparse(np.array([1]), np.array([1]), [], filler=0, alphabet=2)


def test_gaps_given_are_kept_and_checked(monkeypatch):
    gs = positions_to_gaps(_positions(), 4)
    coded = code_gaps(gs)
    calls = count_encodes(monkeypatch)
    s = build_sparse(gs, np.ones(gs.kept_index.size, np.uint16), filler=0, alphabet=2, gaps=coded)
    assert s.gaps is coded and len(calls) == 2  # the values only: packed and Huffman, short stream
    with pytest.raises(UsageError):
        build_sparse(positions_to_gaps(_positions(), 5), np.ones(gs.kept_index.size), filler=0, alphabet=2,
                     gaps=coded)


def test_smallest_sparse_is_the_smallest_build_and_ties_go_narrower():
    positions = _positions(20000, 0.1, seed=3)
    kept = (np.arange(positions.size) % 5).astype(np.uint16)
    widths = (1, 2, 3, 4, 5, 6, 8)
    sizes = {gb: build_sparse(positions_to_gaps(positions, gb), kept, filler=0, alphabet=5).nbytes for gb in widths}
    best = smallest_sparse(positions, kept, widths[::-1], filler=0, alphabet=5)
    assert best.nbytes == min(sizes.values())
    assert best.gap_bits == min(gb for gb, n in sizes.items() if n == best.nbytes)


def test_smallest_sparse_codes_each_stream_once(monkeypatch):
    positions = np.arange(0, 200000, 10)  # long streams: Huffman only; no fillers from 4 bits up
    calls = count_encodes(monkeypatch)
    best = smallest_sparse(positions, np.ones(positions.size, np.uint16), (2, 4, 8), filler=0, alphabet=2)
    assert len(calls) == 3 + 2  # a gap stream per width; the values with fillers (2 bits), without (4, 8)
    before = len(calls)
    data = dcformat.save({"w": EncodedTensor("F32", (200000,), best.layout, best.codebook_values(
        np.array([0.0, 1.0], np.float32)))})
    assert len(calls) == before  # the writer stores what was coded
    assert np.array_equal(np.flatnonzero(dcformat.load(data)["w"]), positions)


def test_symbol_bytes_charge_a_filler_symbol():
    positions = np.array([0, 20, 21, 22, 23])
    kept = np.array([0, 1, 2, 0, 1])
    free = smallest_sparse(positions, kept, (4, 5), filler=None, alphabet=3)
    charged = smallest_sparse(positions, kept, (4, 5), filler=None, alphabet=3, symbol_bytes=4)
    assert free.gap_bits == 4 and free.alphabet == 4
    assert charged.gap_bits == 5 and charged.alphabet == 3


def test_code_stream_candidates_and_shortest_limit():
    symbols = np.minimum(np.arange(3000) % 64, 8).astype(np.uint16)  # mostly 8: Huffman wins
    first, second = PackedCodec(), PackedCodec()
    assert code_stream(symbols, 9, codecs=[first, second]).codec is first  # ties: the first
    coded = code_stream(symbols, 9, codecs=[PackedCodec(), HuffmanCodec(max_code_length=15)])
    assert isinstance(coded.codec, HuffmanCodec) and coded.nbytes < 3000 * 4 // 8
    short = shortest_code_limit(coded, 5)
    assert short.codec.max_code_length == 5 and short.nbytes <= coded.nbytes
    assert short.payload == HuffmanCodec(max_code_length=5).encode(symbols, 9)
    assert shortest_code_limit(code_stream(symbols, 9, codec=PackedCodec()), 3).codec == PackedCodec()
    with pytest.raises(UsageError):
        code_stream(symbols, 9, codec=PackedCodec(), codecs=[PackedCodec()])
    with pytest.raises(UsageError):
        code_stream(symbols, 9, codecs=[])
