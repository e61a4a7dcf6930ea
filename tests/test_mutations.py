"""Mutated containers: decoded exactly or refused with a DCFormatError, never crashed on.

Each file from :func:`dcformat.testing.containers` (or from a small hand-built corpus
with every record kind and multi-chunk Huffman streams) is edited by
:func:`dcformat.testing.mutations`. Then:

- with checksum verification on and the CRCs left stale, the fast path returns exactly
  the written tensors or raises a DCFormatError;
- with verification off (and with it on after the CRCs are recomputed) the fast path
  and the reference decoder agree: the same arrays, or a DCFormatError from both.
  When both refuse with different classes, the pair is recorded as a hypothesis event
  (``pytest --hypothesis-show-statistics``) and in ``CLASS_DIFFERENCES``.

``safe_open`` (lazy, per tensor, read with pread) returns the reference's tensors or
refuses. Any other exception (IndexError, a numpy or numba error) fails the test.
"""

from __future__ import annotations

import collections
import functools
import os
import tempfile
import warnings

import ml_dtypes
import numpy as np
import pytest
from hypothesis import Phase, currently_in_test_context, event, given, note, settings
from hypothesis import strategies as st

import dcformat
from dcformat import BankValues, CodebookValues, Dense, EncodedTensor, PlaneValues, RawValues, Sparse
from dcformat.container.file import ContainerFile
from dcformat.errors import DCFormatError
from dcformat.reference import decode_file
from dcformat.streams import HuffmanCodec, PackedCodec
from dcformat.testing import ContainerSpec, containers, expected_banks, expected_tensors, mutations
from tests.common import assert_bit_equal, assert_dicts_bit_equal

#: Decode budget of every decode here: a mutated shape cannot make a test allocate more
#: than this per decoder (the reference holds about three copies of its output).
BUDGET = 16 << 20

FAST = settings(max_examples=300, deadline=None)
SLOW = settings(max_examples=int(os.environ.get("DCFORMAT_SLOW_EXAMPLES", 3000)), deadline=None)

#: (fast error class, reference error class) -> count, over the whole session.
CLASS_DIFFERENCES: collections.Counter = collections.Counter()


def _corpus() -> list[ContainerSpec]:
    """Hand-built files: every layout x value kind but GROUPED, multi-chunk Huffman with both modes."""
    rng = np.random.default_rng(7)
    skewed = np.minimum(rng.geometric(0.5, 1000) - 1, 12).astype(np.uint16)
    skewed[600:] = rng.integers(0, 13, 400)  # a uniform tail: raw chunks after Huffman ones
    positions = np.flatnonzero(rng.random(500) < 0.1)
    gaps3 = np.diff(positions, prepend=-1) - 1
    gaps3 = gaps3[gaps3 <= 7].astype(np.uint16)  # gap_bits 3, no fillers needed
    bank = rng.standard_normal((5, 3, 3)).astype(np.float32)
    bank[0] = 0
    tensors = {
        "dense_codebook": EncodedTensor("F32", (40, 25), Dense(), CodebookValues(
            np.linspace(-1, 1, 13, dtype=np.float32), skewed, HuffmanCodec(64, 5))),
        "sparse_codebook": EncodedTensor("F16", (500,), Sparse(3, gaps3, HuffmanCodec(8, 11)), CodebookValues(
            np.array([0, 1.5, -2, np.nan], dtype=np.float16), rng.integers(0, 4, gaps3.size).astype(np.uint16),
            PackedCodec())),
        "sparse_raw": EncodedTensor("I32", (7, 9), Sparse(1, np.array([0, 1, 1, 0, 1, 1, 1], dtype=np.uint16),
                                                          PackedCodec()),
                                    RawValues(np.arange(-3, 4, dtype=np.int32))),
        "bank_dense": EncodedTensor("F32", (4, 6, 3, 3), Dense(), BankValues(
            "k", np.minimum(rng.geometric(0.6, 24) - 1, 4).astype(np.uint16), HuffmanCodec(5, 3))),
        "bank_sparse": EncodedTensor("F32", (30, 3, 3), Sparse(2, np.array([3, 0, 3, 3, 1], dtype=np.uint16),
                                                               HuffmanCodec(2, 2)),
                                     BankValues("k", np.array([1, 2, 0, 0, 4], dtype=np.uint16), PackedCodec())),
        "flags": rng.integers(0, 2, (3, 5)).astype(bool),
        "bf16": rng.standard_normal(6).astype(ml_dtypes.bfloat16),
        "planes": EncodedTensor("F32", (6, 50), Dense(), PlaneValues(  # 3 blocks, Huffman and packed planes
            (rng.standard_normal(300) * 0.1).astype(np.float32), 128,
            (HuffmanCodec(64, 5), PackedCodec(), HuffmanCodec(32, 11), HuffmanCodec(16, 8)))),
        "sparse_planes": EncodedTensor("BF16", (500,), Sparse(3, gaps3, PackedCodec()), PlaneValues(
            rng.standard_normal(gaps3.size).astype(ml_dtypes.bfloat16), 16)),
    }
    coded_bank = EncodedTensor("U8", (3, 2), Sparse(4, np.array([1, 2], dtype=np.uint16)),
                               CodebookValues(np.array([0, 9, 200], dtype=np.uint8), np.array([2, 1], dtype=np.uint16)))
    return [
        ContainerSpec(tensors, {"k": bank}, {"name": "corpus", "note": "every record kind"}),
        ContainerSpec({"u": EncodedTensor("U8", (2, 2, 2), Dense(), BankValues("cb", np.array([0, 1, 2, 1], dtype=np.uint16)))},
                      {"unused": np.ones((1,), dtype=np.int8), "cb": coded_bank}),
    ]


CORPUS = _corpus()
CORPUS_FILES = [spec.save() for spec in CORPUS]


# --- decoders -------------------------------------------------------------------------


def _note(text: str) -> None:
    if currently_in_test_context():
        note(text)


def _event(text: str) -> None:
    if currently_in_test_context():
        event(text)


def outcome(decode, *args, **kwargs):
    """The decoder's result, or the DCFormatError it raised; anything else propagates."""
    try:
        return decode(*args, **kwargs)
    except DCFormatError as exc:
        return exc


def fast_decode(data: bytes, *, verify: bool):
    """Every bank and tensor through the fast path, banks first (the reference's order)."""
    container = ContainerFile(data, verify=verify, decode_budget=BUDGET)
    banks = dict(zip((r.name for r in container.header.banks), container.decode_banks()))
    tensors = {name: container.decode(name) for name in container.keys()}
    return container.header.version, container.metadata, banks, tensors


def reference_decode(data: bytes, *, verify: bool):
    decoded = decode_file(data, verify_checksums=verify, decode_budget=BUDGET)
    return decoded.version, decoded.metadata, decoded.banks, decoded.tensors


def check_agreement(data: bytes, *, verify: bool) -> None:
    """Fast path and reference: identical results, or a DCFormatError from both."""
    fast = outcome(fast_decode, data, verify=verify)
    reference = outcome(reference_decode, data, verify=verify)
    public = outcome(dcformat.load, data, verify=verify, decode_budget=BUDGET)
    fast_failed, reference_failed = isinstance(fast, DCFormatError), isinstance(reference, DCFormatError)
    _note(f"fast: {fast!r}"[:300])
    _note(f"reference: {reference!r}"[:300])
    assert fast_failed == reference_failed, (
        f"fast {'refused' if fast_failed else 'accepted'} the file, reference "
        f"{'refused' if reference_failed else 'accepted'} it: {fast!r} / {reference!r}"[:2000])
    if fast_failed:
        pair = (type(fast).__name__, type(reference).__name__)
        _event(f"refused: {pair[0]}" if pair[0] == pair[1] else f"classes differ: fast {pair[0]} / reference {pair[1]}")
        if pair[0] != pair[1]:
            CLASS_DIFFERENCES[pair] += 1
    else:
        _event("decoded")
        assert fast[0] == reference[0] and fast[1] == reference[1], "version or metadata differ"
        assert_dicts_bit_equal(fast[2], reference[2])
        assert_dicts_bit_equal(fast[3], reference[3])
        # dcformat.load decodes every bank and every tensor, as ContainerFile did here
        assert not isinstance(public, DCFormatError), f"load refused what ContainerFile decoded: {public!r}"
        assert_dicts_bit_equal(public, fast[3])


def check_exact_or_refused(data: bytes, spec: ContainerSpec) -> None:
    """Checksums verified and not repaired: the written tensors exactly, or an error."""
    for result in (outcome(dcformat.load, data, decode_budget=BUDGET), outcome(fast_decode, data, verify=True)):
        if isinstance(result, DCFormatError):
            _event(f"verified: {type(result).__name__}")
            continue
        _event("verified: decoded")
        tensors = result if isinstance(result, dict) else result[3]
        assert_dicts_bit_equal(tensors, expected_tensors(spec))
        if not isinstance(result, dict):
            assert result[1] == spec.metadata
            assert_dicts_bit_equal(result[2], expected_banks(spec))


# --- strategies -------------------------------------------------------------------------


@st.composite
def mutated(draw, fix_checksums, donors=True):
    """(spec, mutated file): a drawn container or a corpus file, then edited."""
    if draw(st.booleans()):
        index = draw(st.sampled_from(range(len(CORPUS))))
        spec, data = CORPUS[index], CORPUS_FILES[index]
    else:
        spec = draw(containers(max_tensors=3))
        data = spec.save()
    pool = CORPUS_FILES if donors else ()
    return spec, draw(mutations(data, donors=pool, fix_checksums=fix_checksums))


def check_all(case, fix) -> None:
    spec, data = case
    if fix is False:
        check_exact_or_refused(data, spec)
    check_agreement(data, verify=False)
    check_agreement(data, verify=True)


# --- tests ----------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def report_class_differences():
    """Say, once per module, which error classes the two decoders disagreed on."""
    yield
    if CLASS_DIFFERENCES:
        pairs = ", ".join(f"{fast} / {ref} x{n}" for (fast, ref), n in CLASS_DIFFERENCES.most_common())
        warnings.warn(f"fast / reference decoders refused mutated files with different classes: {pairs}",
                      stacklevel=1)


def test_corpus_round_trips():
    for spec, data in zip(CORPUS, CORPUS_FILES):
        assert_dicts_bit_equal(dcformat.load(data), expected_tensors(spec))
        check_agreement(data, verify=True)


@FAST
@given(mutated(fix_checksums=False, donors=False))
def test_stale_checksums_decode_exactly_or_refuse(case):
    check_all(case, False)


@FAST
@given(mutated(fix_checksums=True))
def test_repaired_checksums_fast_and_reference_agree(case):
    check_all(case, True)


@FAST
@given(mutated(fix_checksums=None))
def test_fast_and_reference_agree_without_verification(case):
    check_agreement(case[1], verify=False)


@pytest.mark.slow
@SLOW
@given(mutated(fix_checksums=False, donors=False))
def test_stale_checksums_decode_exactly_or_refuse_slow(case):
    check_all(case, False)


@pytest.mark.slow
@SLOW
@given(mutated(fix_checksums=True))
def test_repaired_checksums_fast_and_reference_agree_slow(case):
    check_all(case, True)


@settings(max_examples=100, deadline=None)
@given(mutated(fix_checksums=None))
def test_safe_open_decodes_each_tensor_as_the_reference_or_refuses(case):
    # lazy per-tensor access, read as it decodes: a tensor it returns is the reference's; where
    # the reference accepts the whole file, safe_open accepts every tensor of it
    data = case[1]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "mutated.dcf")
        with open(path, "wb") as f:
            f.write(data)
        for verify in (True, False):
            reference = outcome(reference_decode, data, verify=verify)
            opened = outcome(dcformat.safe_open, path, verify=verify, decode_budget=BUDGET)
            if isinstance(opened, DCFormatError):
                assert isinstance(reference, DCFormatError), f"safe_open refused {opened!r}"
                continue
            with opened:
                for name in opened.keys():
                    tensor = outcome(opened.get_tensor, name)
                    if isinstance(reference, DCFormatError):
                        continue
                    assert not isinstance(tensor, DCFormatError), f"{name!r}: {tensor!r}"
                    assert_bit_equal(tensor, reference[3][name], name)


@functools.lru_cache(maxsize=1)
def _million_symbol_file() -> bytes:
    """Streams long enough (1.2M symbols, many chunks of both modes) to decode on threads."""
    rng = np.random.default_rng(11)
    codes = np.minimum(rng.geometric(0.4, 1_200_000) - 1, 99).astype(np.uint16)
    codes[900_000:] = rng.integers(0, 100, 300_000)
    gaps = np.minimum(rng.geometric(0.5, 1_100_000) - 1, 15).astype(np.uint16)
    units = int(gaps.sum()) + gaps.size
    return dcformat.save({
        "dense": EncodedTensor("F32", (1200, 1000), Dense(), CodebookValues(
            np.linspace(-1, 1, 100, dtype=np.float32), codes, HuffmanCodec(4096, 9))),
        "sparse": EncodedTensor("U8", (units,), Sparse(4, gaps, HuffmanCodec(50_000, 11)),
                                RawValues(np.ones(gaps.size, dtype=np.uint8))),
    })


@pytest.mark.slow
@settings(max_examples=1000, deadline=None)
@given(st.data())
def test_mutated_million_symbol_streams_slow(data):
    # The reference decoder is too slow for these; the fast path must still decode or
    # refuse each mutated file, on several threads, with checksums verified or not.
    mutated_file = data.draw(mutations(_million_symbol_file(), max_edits=2))
    for verify in (True, False):
        result = outcome(dcformat.load, mutated_file, verify=verify, decode_budget=BUDGET)
        _event(type(result).__name__ if isinstance(result, DCFormatError) else "decoded")


# Both readers follow spec/FORMAT.md, Appendix B, "Order of checks".
@settings(max_examples=300, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(mutated(fix_checksums=None))
def test_fast_and_reference_refuse_with_the_same_class(case):
    for verify in (False, True):
        fast = outcome(fast_decode, case[1], verify=verify)
        reference = outcome(reference_decode, case[1], verify=verify)
        if isinstance(fast, DCFormatError) and isinstance(reference, DCFormatError):
            assert type(fast) is type(reference), f"fast: {fast!r}\nreference: {reference!r}"
