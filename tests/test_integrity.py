"""Integrity and resource limits: every bit flip is reported; small files cannot allocate much.

The container leaves no byte unchecked: the header and every segment carry a CRC-32,
and padding must be zero. So a single flipped bit anywhere must be refused; there is no
"harmless" place for it (a flip that still decoded would have to leave the tensors
exactly as written, which the test also accepts and checks).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import dcformat
from dcformat import CodebookValues, Dense, EncodedTensor, RawValues, Sparse
from dcformat.errors import ChecksumMismatch, DCFormatError, DecodeLimitExceeded, LimitExceeded
from dcformat.streams import HuffmanCodec, PackedCodec

from .common import assert_dicts_bit_equal

RNG = np.random.default_rng(7)


def small_file() -> tuple[bytes, dict]:
    """A file with every encoding, a bank and metadata, about 1.5 KB."""
    codes = RNG.integers(0, 6, 96).astype(np.uint16)
    codebook = np.linspace(-1, 1, 6).astype(np.float32)
    gaps = RNG.integers(0, 4, 20).astype(np.uint16)
    tensors = {
        "raw": RNG.standard_normal(5).astype(np.float16),
        "codebook": EncodedTensor("F32", (8, 12), Dense(), CodebookValues(codebook, codes, HuffmanCodec(chunk_symbols=40))),
        "sparse": EncodedTensor("F32", (100,), Sparse(2, gaps, PackedCodec()), RawValues(np.arange(20, dtype=np.float32))),
        "flags": np.array([True, False, True]),
    }
    data = dcformat.save(tensors, {"model": "tiny"})
    return data, dcformat.load(data)


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def check_flip(data: bytes, bit: int, expected: dict) -> bool:
    """True when the flip was refused; False (after checking it changed nothing) otherwise."""
    try:
        decoded = dcformat.load(flip(data, bit))
    except DCFormatError:
        return True
    assert_dicts_bit_equal(decoded, expected)
    return False


def test_every_bit_flip_of_a_small_file_is_reported():
    data, expected = small_file()
    assert len(data) < 2048
    missed = [bit for bit in range(8 * len(data)) if not check_flip(data, bit, expected)]
    assert missed == [], f"flips at bits {missed[:10]} decoded (harmlessly) instead of being reported"


def test_sampled_bit_flips_of_a_larger_file_are_reported():
    from dcformat.compress import CompressionSettings, compress_tensors

    weights = {"w": RNG.standard_normal((256, 256)).astype(np.float32),
               "b": RNG.standard_normal(256).astype(np.float32)}
    encoded, _ = compress_tensors(weights, CompressionSettings.preset("paper"))
    data = dcformat.save(encoded)
    expected = dcformat.load(data)
    bits = RNG.choice(8 * len(data), size=3000, replace=False)
    refused = [check_flip(data, int(bit), expected) for bit in bits]
    assert all(refused)


def test_flips_are_still_caught_without_checksums_where_structure_allows():
    """With verification off a flip may decode to other values, but never crashes."""
    data, _ = small_file()
    for bit in range(0, 8 * len(data), 7):
        try:
            dcformat.load(flip(data, bit), verify=False)
        except DCFormatError:
            pass


def peak_allocation(func) -> int:
    tracemalloc.start()
    try:
        func()
    except DCFormatError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def hostile_sparse(shape) -> bytes:
    from dcformat.container.writer import ContainerWriter

    empty = EncodedTensor("F32", shape, Sparse(16, np.zeros(0, np.uint16)), RawValues(np.zeros(0, np.float32)))
    writer = ContainerWriter(decode_budget=1 << 62)  # for a reader that would allow it
    writer.add_tensor("huge", empty)
    return writer.to_bytes()


@pytest.mark.parametrize("shape", [(1 << 16, 1 << 16), (1 << 30, 1 << 10), (1 << 24, 1 << 24)])
def test_a_tiny_file_cannot_make_the_reader_allocate_gigabytes(shape):
    data = hostile_sparse(shape)
    assert len(data) < 1024
    with pytest.raises((DecodeLimitExceeded, LimitExceeded)):
        dcformat.load(data)
    assert peak_allocation(lambda: dcformat.load(data)) < 1 << 20


def test_declared_counts_are_checked_against_payload_sizes():
    """A dense codebook tensor claiming 2**40 codes in a few bytes is refused before allocation."""
    from dcformat.testing import field_offsets, refresh_checksums

    data = dcformat.save({"c": EncodedTensor("F32", (4,), Dense(), CodebookValues(
        np.zeros(2, np.float32), np.array([0, 1, 0, 1], np.uint16), HuffmanCodec()))})
    fields = {f.name: f for f in field_offsets(data)}
    shape = next(f for name, f in fields.items() if "Shape" in name)
    patched = bytearray(data)
    patched[shape.offset:shape.offset + 8] = (1 << 40).to_bytes(8, "little")
    patched = refresh_checksums(bytes(patched))
    assert peak_allocation(lambda: dcformat.load(patched, decode_budget=1 << 50)) < 1 << 24
    with pytest.raises(DCFormatError):
        dcformat.load(patched, decode_budget=1 << 50)


def test_checksum_switch_is_documented_and_works():
    data, expected = small_file()
    bad = bytearray(data)
    bad[-1] ^= 0x01  # last byte of the last payload ("flags"): 0x01 -> 0x00, still valid BOOL
    with pytest.raises(ChecksumMismatch):
        dcformat.load(bytes(bad))
    decoded = dcformat.load(bytes(bad), verify=False)
    assert decoded["flags"].tolist() == [True, False, False]


@pytest.mark.parametrize("sizes", [(0,), (1,), (7, 0, 5000), (1 << 20, 3)])
def test_checksum_is_zlibs_crc32_whatever_the_backend(sizes):
    import zlib

    from dcformat.container import checksum

    rng = np.random.default_rng(len(sizes))
    parts = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in sizes]
    want = 0
    for part in parts:
        want = zlib.crc32(part, want)
    views = [memoryview(p)[1:] for p in parts]  # unaligned views, as the reader passes
    want_views = 0
    for v in views:
        want_views = zlib.crc32(v, want_views)
    assert checksum.crc32(*parts) == want and checksum.crc32(*views) == want_views
    assert checksum.BACKEND in ("isal", "zlib")
