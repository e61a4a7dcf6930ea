"""Properties of valid containers: round trip, fast == reference decoder, deterministic save.

Inputs come from :mod:`dcformat.testing` (arbitrary tensors of every dtype, every layout
x value-kind combination, banks, metadata); the oracle is
:func:`dcformat.testing.expected_tensors`, plain numpy written apart from both decoders.
"""

from __future__ import annotations

import doctest
import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dcformat
from dcformat.container.file import ContainerFile
from dcformat.format.constants import DECODE_RECORD_CHARGE, ChunkMode
from dcformat.errors import DecodeLimitExceeded, InvalidHeader
from dcformat.reference import decode_file
from dcformat.streams import HuffmanCodec, PackedCodec
from dcformat.testing import (
    DTYPE_NAMES,
    WIRE_NUMPY_DTYPES,
    ContainerSpec,
    arrays,
    containers,
    encoded_tensors,
    expected_banks,
    expected_tensors,
    field_offsets,
    future_version,
    special_bit_patterns,
    stream_codecs,
    symbol_streams,
)
from tests.common import assert_bit_equal, assert_dicts_bit_equal

#: No test lets a file make a decoder allocate more than this.
BUDGET = 64 << 20

FAST = settings(max_examples=100, deadline=None)
SLOW = settings(max_examples=int(os.environ.get("DCFORMAT_SLOW_EXAMPLES", 1500)), deadline=None)
COMBINATIONS = list(itertools.product(["dense", "sparse"], ["raw", "codebook", "bank", "planes"]))


def fast_decode(data: bytes, *, verify: bool = True):
    """Every bank and tensor through the fast path, banks first (the reference's order)."""
    container = ContainerFile(data, verify=verify, decode_budget=BUDGET)
    banks = dict(zip((r.name for r in container.header.banks), container.decode_banks()))
    tensors = {name: container.decode(name) for name in container.keys()}
    return container.header.version, container.metadata, banks, tensors


def reference_decode(data: bytes, *, verify: bool = True):
    decoded = decode_file(data, verify_checksums=verify, decode_budget=BUDGET)
    return decoded.version, decoded.metadata, decoded.banks, decoded.tensors


def assert_same_decode(fast, reference) -> None:
    assert fast[0] == reference[0], "version"
    assert fast[1] == reference[1], "metadata"
    assert_dicts_bit_equal(fast[2], reference[2])
    assert_dicts_bit_equal(fast[3], reference[3])


# --- the properties -----------------------------------------------------------------


def check_round_trip(spec: ContainerSpec) -> None:
    data = spec.save()
    assert_dicts_bit_equal(dcformat.load(data, decode_budget=BUDGET), expected_tensors(spec))
    fast = fast_decode(data)
    assert fast[1] == spec.metadata
    assert_dicts_bit_equal(fast[2], expected_banks(spec))


def check_fast_matches_reference(spec: ContainerSpec) -> None:
    data = spec.save()
    for verify in (True, False):
        assert_same_decode(fast_decode(data, verify=verify), reference_decode(data, verify=verify))


@FAST
@given(containers())
def test_round_trip(spec):
    check_round_trip(spec)


@FAST
@given(containers())
def test_fast_matches_reference(spec):
    check_fast_matches_reference(spec)


@FAST
@given(containers())
def test_save_is_deterministic(spec):
    first = spec.save()
    assert spec.save() == first
    # a fresh copy of every array (other buffers, same values) writes the same bytes
    copied = ContainerSpec({k: v.copy() if isinstance(v, np.ndarray) else v for k, v in spec.tensors.items()},
                           {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in spec.banks.items()},
                           dict(spec.metadata), spec.alignment)
    assert copied.save() == first
    if spec.alignment is None:
        assert dcformat.save(spec.tensors, spec.metadata, banks=spec.banks) == first


@FAST
@given(containers(max_tensors=3), st.integers(1, 65535), st.integers(0, 2**32 - 1), st.binary(max_size=80))
def test_later_minor_versions_decode_the_same(spec, minor, optional, extension):
    # spec "Versions and features": a reader decodes every file of its major whatever the
    # minor, skips the header Extension of a later minor and ignores Optional_Features
    data = future_version(spec.save(), minor=minor, optional_features=optional, extension=extension)
    expected = expected_tensors(spec)
    fast, reference = fast_decode(data), reference_decode(data)
    assert fast[0] == reference[0] == (1, minor)
    assert_dicts_bit_equal(fast[3], expected)
    assert_same_decode(fast, reference)
    if extension:  # the same bytes from a minor-0 file are refused by both
        bad = future_version(spec.save(), minor=0, extension=extension)
        for decode in (fast_decode, reference_decode):
            with pytest.raises(InvalidHeader):
                decode(bad)


@FAST
@given(containers(max_tensors=3))
def test_decode_budget_is_exact(spec):
    # the budget bounds the decoded bytes of every bank and tensor together, and 128 for
    # each record (R33)
    data = spec.save()
    arrays = (*expected_banks(spec).values(), *expected_tensors(spec).values())
    total = sum(a.nbytes for a in arrays) + DECODE_RECORD_CHARGE * len(arrays)
    assert_dicts_bit_equal(dcformat.load(data, decode_budget=total), expected_tensors(spec))
    assert_dicts_bit_equal(decode_file(data, decode_budget=total).tensors, expected_tensors(spec))
    if total:
        with pytest.raises(DecodeLimitExceeded):
            dcformat.load(data, decode_budget=total - 1)
        with pytest.raises(DecodeLimitExceeded):
            decode_file(data, decode_budget=total - 1)


@pytest.mark.parametrize("layout,kind", COMBINATIONS)
@settings(max_examples=15, deadline=None)
@given(st.data())
def test_every_combination_round_trips(layout, kind, data):
    spec = data.draw(containers(layouts=[layout], values=[kind], min_tensors=1, max_tensors=2,
                                plain_arrays=False))
    check_round_trip(spec)
    check_fast_matches_reference(spec)


@pytest.mark.parametrize("dtype", DTYPE_NAMES)
@settings(max_examples=10, deadline=None)
@given(st.data())
def test_every_dtype_round_trips(dtype, data):
    spec = data.draw(containers([dtype], min_tensors=1, max_tensors=2))
    check_round_trip(spec)
    check_fast_matches_reference(spec)


# --- slow variants: many more examples ----------------------------------------------


@pytest.mark.slow
@SLOW
@given(containers())
def test_round_trip_slow(spec):
    check_round_trip(spec)


@pytest.mark.slow
@SLOW
@given(containers())
def test_fast_matches_reference_slow(spec):
    check_fast_matches_reference(spec)


@settings(max_examples=10, deadline=None)
@given(encoded_tensors(["F16", "U8"], values=["codebook"], max_codebook_size=65536,
                       shapes=st.tuples(st.integers(0, 2000))))
def test_codebooks_up_to_the_limit(tensor):
    spec = ContainerSpec({"t": tensor})
    check_round_trip(spec)
    check_fast_matches_reference(spec)


@pytest.mark.slow
@settings(max_examples=8, deadline=None)
@given(encoded_tensors(["F32", "I8"], layouts=["dense", "sparse"], values=["codebook"],
                       shapes=st.tuples(st.integers(1 << 20, 3 << 20)),
                       codecs=st.builds(HuffmanCodec, st.integers(1000, 70000), st.integers(1, 15))))
def test_round_trip_million_symbol_streams_slow(tensor):
    # streams of a million symbols or more decode on several threads; the reference is
    # too slow for them, so only the oracle is checked
    check_round_trip(ContainerSpec({"t": tensor}))


# --- the strategies draw what they promise ------------------------------------------


def _huffman_chunk_modes(data: bytes) -> list[list[int]]:
    """The chunk modes of every Huffman segment of a valid file."""
    modes = []
    fields = {f.name: f for f in field_offsets(data)}
    for name, f in fields.items():
        if name.endswith("Chunk_Count"):
            count = int.from_bytes(data[f.offset:f.offset + 4], "little")
            modes.append([data[f.offset + 4 + 25 * c] for c in range(count)])
    return modes


def _find(strategy, condition, max_examples=3000):
    """Assert that ``strategy`` draws an example meeting ``condition`` (no shrinking)."""
    from hypothesis import Phase, find

    return find(strategy, condition, settings=settings(max_examples=max_examples, deadline=None, database=None,
                                                        phases=[Phase.generate]))


def test_strategies_reach_multi_chunk_huffman_with_both_modes():
    def mixed(spec):
        modes = [m for segment in _huffman_chunk_modes(spec.save()) for m in segment]
        return len(modes) >= 2 and ChunkMode.HUFFMAN in modes and ChunkMode.RAW in modes
    _find(containers(values=["codebook"], max_tensors=2, plain_arrays=False), mixed)


def test_strategies_reach_sparse_fillers_and_empty_sparse():
    def fillers(t):
        gaps = t.layout.gaps
        return gaps.size >= 3 and (gaps == (1 << t.layout.gap_bits) - 1).sum() >= 2
    _find(encoded_tensors(layouts=["sparse"]), fillers)
    _find(encoded_tensors(layouts=["sparse"]), lambda t: t.layout.gaps.size == 0 and t.size > 0)


def test_strategies_reach_large_odd_codebooks():
    _find(encoded_tensors(values=["codebook"]),
          lambda t: t.values.codebook.size > 256 and t.values.codebook.size & (t.values.codebook.size - 1))


@pytest.mark.parametrize("dtype", ["F16", "BF16", "F32", "F64", "F8_E5M2"])
def test_arrays_reach_nan_payloads_infinities_and_denormals(dtype):
    import ml_dtypes

    np_dtype = WIRE_NUMPY_DTYPES[dtype]
    uint = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[np_dtype.itemsize]
    info = ml_dtypes.finfo(np_dtype)
    nan_payload = int(np.array([np.inf]).astype(np_dtype).view(uint)[0]) | 1  # signalling, payload 1
    patterns = [nan_payload,
                int(np.array([-np.inf]).astype(np_dtype).view(uint)[0]),
                int(np.array([-0.0]).astype(np_dtype).view(uint)[0]),
                int(np.array([info.smallest_subnormal], dtype=np_dtype).view(uint)[0])]
    assert set(patterns) <= set(special_bit_patterns(dtype))
    for pattern in patterns:
        _find(arrays([dtype]), lambda a: (a.view(uint) == pattern).any(), max_examples=2000)


def test_arrays_reach_0d_and_empty_shapes():
    _find(arrays(), lambda a: a.ndim == 0)
    _find(arrays(), lambda a: a.size == 0 and a.ndim >= 2)


@settings(max_examples=30, deadline=None)
@given(stream_codecs(), st.integers(1, 70000), st.data())
def test_symbol_streams_fit_their_alphabet_and_round_trip(codec, alphabet, data):
    symbols = data.draw(symbol_streams(data.draw(st.integers(0, 300)), alphabet))
    assert symbols.dtype == np.uint16 and (symbols.size == 0 or int(symbols.max()) < min(alphabet, 65536))
    alphabet = min(alphabet, 65536)
    decoded = codec.decode(codec.encode(symbols, alphabet), symbols.size, alphabet)
    np.testing.assert_array_equal(decoded, symbols)


def test_expected_tensors_by_hand():
    # SPARSE + CODEBOOK over 7 units with gap_bits 1: a filler (gap 1, code of 0.0) bridges
    # the skip of 3 before the second entry.
    t = dcformat.EncodedTensor(
        "F16", (7,), dcformat.Sparse(1, np.array([0, 1, 1, 0], dtype=np.uint16), PackedCodec()),
        dcformat.CodebookValues(np.array([0.0, -1.5, np.inf], dtype=np.float16),
                                np.array([1, 0, 2, 2], dtype=np.uint16)))
    want = np.array([-1.5, 0, 0, 0, np.inf, np.inf, 0], dtype=np.float16)
    assert_bit_equal(expected_tensors(ContainerSpec({"t": t}))["t"], want)
    assert_bit_equal(dcformat.load(dcformat.save({"t": t}))["t"], want)


def test_field_offsets_name_the_parsed_values():
    spec = ContainerSpec(
        {"w": dcformat.EncodedTensor("U8", (2, 3), dcformat.Dense(),
                                     dcformat.BankValues("k", np.array([1, 0], dtype=np.uint16)))},
        banks={"k": np.arange(6, dtype=np.uint8).reshape(2, 3)}, metadata={"a": "b"})
    data = spec.save()
    fields = {f.name: f for f in field_offsets(data)}

    def read(name):
        f = fields[name]
        return int.from_bytes(data[f.offset:f.offset + f.size], "little")
    header = ContainerFile(data).header
    assert read("Header_Size") == header.header_size
    assert read("Bank_Count") == 1 and read("Tensor_Count") == 1 and read("Metadata_Count") == 1
    assert read("tensor[0] Shape[1]") == 3 and read("bank[0] Shape[0]") == 2
    assert read("tensor[0] selectors Offset") == header.tensors[0].segments["selectors"].offset
    assert read("bank[0] values Length") == 6
    assert data[fields["bank[0] values payload"].offset:][:6] == bytes(range(6))
    for f in fields.values():
        assert 0 <= f.offset and f.offset + f.size <= len(data) and f.size > 0


@pytest.mark.parametrize("path", ["dcformat/testing/README.md"])
def test_readme_examples_run(path):
    root = Path(__file__).resolve().parents[1]
    failures, tests = doctest.testfile(str(root / path), module_relative=False,
                                       optionflags=doctest.ELLIPSIS)
    assert tests > 0 and failures == 0


def test_docstring_examples_run():
    import importlib

    for name in ("elements", "strategies", "expected", "mutate"):
        module = importlib.import_module(f"dcformat.testing.{name}")
        failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert failures == 0, module.__name__
