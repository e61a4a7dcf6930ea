"""PLANES values (v1.2): float values stored losslessly, split into bit planes.

Every drawn PLANES tensor must come back bit for bit through every reader (``load``,
``safe_open``, decoding into a caller's array, one thread or two); the split and merge
kernels must invert each other on every pattern and cut the bits as the spec's formula
does; the reference decoder must agree with the fast one, on valid files and on mutated
ones; a file says v1.2 and sets Required_Features bit 1 exactly when it holds a PLANES
record; a truncated file is refused with a DCFormatError; a real checkpoint shrinks.
Results are compared as bytes, never as values (NaN payloads, -0.0).
"""

from __future__ import annotations

import importlib.util
import os
import struct
import tempfile
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

import dcformat
from dcformat import AffineCodebook, Dense, EncodedTensor, GroupedValues, PlaneValues, Sparse
from dcformat.container.reader import parse_header
from dcformat.errors import DCFormatError
from dcformat.format.constants import (FEATURE_AFFINE, FEATURE_GROUPED, FEATURE_PLANES, PREAMBLE_FORMAT, DType,
                                       Layout, plane_widths)
from dcformat.kernels import planes as plane_kernels
from dcformat.streams import HuffmanCodec, PackedCodec
from dcformat.testing import (
    WIRE_NUMPY_DTYPES,
    ContainerSpec,
    containers,
    encoded_tensors,
    expected_tensors,
    field_offsets,
    mutations,
    refresh_checksums,
    special_bit_patterns,
)

ROOT = Path(__file__).resolve().parents[1]

FLOATS = ("F16", "BF16", "F32", "F64", "F8_E4M3", "F8_E5M2")
#: No decode here may allocate more than this.
BUDGET = 64 << 20

#: "The float layout" (FORMAT.md, "PLANES values"), written out here: dtype -> (W element
#: bits, E exponent bits, M mantissa bits), the sign the top bit.
LAYOUT = {"F16": (16, 5, 10), "BF16": (16, 8, 7), "F32": (32, 8, 23), "F64": (64, 11, 52),
          "F8_E4M3": (8, 4, 3), "F8_E5M2": (8, 5, 2)}
#: The planes' widths: E, then W - E bits cut into 8-bit fields from the top.
WIDTHS = {"F16": (5, 8, 3), "BF16": (8, 8), "F32": (8, 8, 8, 8), "F64": (11, 8, 8, 8, 8, 8, 8, 5),
          "F8_E4M3": (4, 4), "F8_E5M2": (5, 3)}
_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def planes_only(**kwargs):
    """Containers of PLANES tensors (of every float type), nothing else."""
    return containers(FLOATS, values=["planes"], plain_arrays=False, **kwargs)


def as_bytes(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8).tobytes()


def assert_same_bytes(got: dict, want: dict, what: str) -> None:
    assert list(got) == list(want), what
    for name, array in want.items():
        assert got[name].dtype == array.dtype and got[name].shape == array.shape, f"{what}: {name!r}"
        assert as_bytes(got[name]) == as_bytes(array), f"{what}: {name!r} bits differ"


def outcome(decode, *args, **kwargs):
    """What a decoder returns, or the DCFormatError it raised; anything else propagates."""
    try:
        return decode(*args, **kwargs)
    except DCFormatError as exc:
        return exc


# --- (a) round trips through every reader --------------------------------------------------


def check_every_reader(spec: ContainerSpec) -> None:
    data = spec.save()
    want = expected_tensors(spec)
    for threads in (None, 1, 2):
        assert_same_bytes(dcformat.load(data, decode_budget=BUDGET, threads=threads), want, f"load threads={threads}")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "planes.dcf")
        dcformat.save_file(spec.tensors, path, spec.metadata, banks=spec.banks)
        if spec.alignment is None:
            with open(path, "rb") as f:
                assert f.read() == data, "save_file and save wrote different bytes"
        for threads in (1, 2):
            with dcformat.safe_open(path, threads=threads, decode_budget=BUDGET) as f:
                assert_same_bytes({n: f.get_tensor(n) for n in f.keys()}, want, f"get_tensor threads={threads}")
                assert_same_bytes(f.get_tensors(), want, f"get_tensors threads={threads}")
                for name, array in want.items():  # all ones first: SPARSE must write its zeros
                    out = np.frombuffer(b"\xff" * array.nbytes, array.dtype).reshape(array.shape).copy()
                    assert f.get_tensor(name, out=out) is out
                    assert as_bytes(out) == as_bytes(array), f"get_tensor(out=) threads={threads}: {name!r}"


@settings(max_examples=60, deadline=None)
@given(planes_only(min_tensors=1, max_tensors=3))
def test_planes_round_trip_through_every_reader(spec):
    check_every_reader(spec)


@settings(max_examples=25, deadline=None)
@given(containers(values=["raw", "codebook", "grouped", "planes"], min_tensors=2, max_tensors=4))
def test_planes_beside_other_kinds_round_trip(spec):
    check_every_reader(spec)


@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_planes_decoded_on_threads_are_exact(layout):
    # past PLANES_PARALLEL_MIN stored units the blocks decode on several threads: the
    # same bits as on one, into the caller's array too
    rng = np.random.default_rng(5)
    count = 1_300_000
    bits = (rng.standard_normal(count) * 0.02).astype(np.float16).view(np.uint16)
    bits[rng.integers(0, count, 64)] = np.array(special_bit_patterns("F16"), np.uint16)[rng.integers(0, 24, 64)]
    values = bits.view(np.float16)
    if layout == "dense":
        tensor = EncodedTensor("F16", (1300, 1000), Dense(), PlaneValues(values, block_size=1 << 18))
        want = values.reshape(1300, 1000)
    else:
        gaps = np.ones(count, np.uint16)  # every other unit
        tensor = EncodedTensor("F16", (2 * count + 1,), Sparse(2, gaps, PackedCodec()),
                               PlaneValues(values, block_size=300_000, codec=(HuffmanCodec(),) * 3))
        want = np.zeros(2 * count + 1, np.float16)
        want[1::2] = values
    data = dcformat.save({"t": tensor})
    for threads in (1, 2, None):
        assert as_bytes(dcformat.load(data, threads=threads)["t"]) == as_bytes(want), f"threads={threads}"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.dcf")
        with open(path, "wb") as f:
            f.write(data)
        with dcformat.safe_open(path, threads=2) as f:
            out = np.full(want.shape, np.float16(7))
            assert f.get_tensor("t", out=out) is out and as_bytes(out) == as_bytes(want)


# --- the strategies draw what the tests rely on ----------------------------------------


def _find(strategy, condition, max_examples=2000):
    return find(strategy, condition, settings=settings(max_examples=max_examples, deadline=None, database=None,
                                                        phases=[Phase.generate],
                                                        suppress_health_check=list(HealthCheck)))


def test_strategies_reach_every_kind_of_planes_tensor():
    planes = encoded_tensors(FLOATS, values=["planes"])
    blocks = (lambda t: -(-t.values.values.size // t.values.block_size))
    _find(planes, lambda t: blocks(t) >= 16)
    _find(planes, lambda t: t.values.block_size == 1 and t.values.values.size > 1)
    _find(planes, lambda t: t.values.block_size > t.values.values.size > 0)
    _find(planes, lambda t: isinstance(t.values.codec, (tuple, list)) and len(set(map(repr, t.values.codec))) > 1)
    _find(planes, lambda t: isinstance(t.layout, Sparse) and t.values.values.size > 1 and blocks(t) > 1)
    for name in FLOATS:  # -0.0 and a NaN of payload 1 (F8_E4M3: a finite number) in one tensor
        total, exponent, mantissa = LAYOUT[name]
        wanted = {1 << (total - 1), ((1 << exponent) - 1) << mantissa | 1}
        storage = _UINT[total // 8]
        _find(encoded_tensors([name], values=["planes"]),
              lambda t: wanted <= set(np.ascontiguousarray(t.values.values).view(storage).tolist()))


def test_planes_are_drawn_only_for_floats():
    with pytest.raises(ValueError, match="PLANES"):
        encoded_tensors(["U8", "I32"], values=["planes"])
    _find(containers(["U8", "F32"], max_tensors=2),
          lambda s: any(isinstance(t, EncodedTensor) and isinstance(t.values, PlaneValues) for t in s.tensors.values()))


# --- (b) the planes' symbols -----------------------------------------------------------


def spec_planes(bits: np.ndarray, name: str) -> list[np.ndarray]:
    """The planes of ``bits`` by the spec's formula, in numpy: plane 0 the exponent
    ``(x >> M) & (2^E - 1)``, then ``t = sign << M | mantissa`` cut from the top."""
    total, exponent, mantissa = LAYOUT[name]
    x = bits.astype(np.uint64)
    planes = [(x >> np.uint64(mantissa)) & np.uint64((1 << exponent) - 1)]
    t = ((x >> np.uint64(total - 1)) << np.uint64(mantissa)) | (x & np.uint64((1 << mantissa) - 1))
    left = total - exponent
    while left:
        width = min(8, left)
        left -= width
        planes.append((t >> np.uint64(left)) & np.uint64((1 << width) - 1))
    return planes


def patterns(name: str) -> np.ndarray:
    """Every pattern of an 8- or 16-bit type; random, special and ordinary ones of wider types."""
    total = LAYOUT[name][0]
    storage = _UINT[total // 8]
    if total <= 16:
        return np.arange(1 << total, dtype=np.uint64).astype(storage)
    rng = np.random.default_rng(total)
    random = np.frombuffer(rng.bytes(8 * 65536), dtype=storage)
    ordinary = rng.standard_normal(4096).astype(WIRE_NUMPY_DTYPES[name]).view(storage)
    specials = np.array(special_bit_patterns(name), dtype=storage)
    # every exponent with the extreme mantissas, both signs
    exponent, mantissa = LAYOUT[name][1:]
    e = np.arange(1 << exponent, dtype=np.uint64) << np.uint64(mantissa)
    edges = np.concatenate([e, e | np.uint64((1 << mantissa) - 1), e | np.uint64(1 << (mantissa - 1))])
    edges = np.concatenate([edges, edges | np.uint64(1 << (total - 1))]).astype(storage)
    return np.concatenate([random, ordinary, specials, edges])


@pytest.mark.parametrize("name", FLOATS)
def test_plane_widths_are_the_spec_table(name):
    assert plane_widths(DType[name]) == WIDTHS[name]
    total, exponent, mantissa = LAYOUT[name]
    assert total == 1 + exponent + mantissa == 8 * WIRE_NUMPY_DTYPES[name].itemsize
    assert sum(WIDTHS[name]) == total and WIDTHS[name][0] == exponent


@pytest.mark.parametrize("name", FLOATS)
def test_split_matches_the_spec_and_merge_inverts_it(name):
    bits = patterns(name)
    total, exponent, _ = LAYOUT[name]
    widths = np.array(WIDTHS[name], np.int64)
    symbols = np.full((widths.size, bits.size), 0xFFFF, np.uint16)
    plane_kernels.split(bits, total, exponent, widths, symbols)
    for k, want in enumerate(spec_planes(bits, name)):
        bad = np.flatnonzero(symbols[k] != want)
        assert not bad.size, (f"plane {k} of {name}: {bad.size} symbols differ, first for bits "
                              f"{int(bits[bad[0]]):#x}: {int(symbols[k][bad[0]])} != {int(want[bad[0]])}")
        assert int(symbols[k].max()) < 1 << int(widths[k])
    # the decoder's way: the exponent at its place, then each mantissa plane merged in at
    # the bits of t left below it, its symbols as uint8 (a raw 8-bit payload) or uint16
    mantissa = total - exponent - 1
    for narrow in (np.uint8, np.uint16):
        merged = (symbols[0].astype(np.uint64) << np.uint64(mantissa)).astype(bits.dtype)
        for k in range(1, widths.size):
            plane_kernels.merge(merged, symbols[k].astype(narrow), int(widths[k + 1:].sum()), mantissa, total)
        bad = np.flatnonzero(merged != bits)
        assert not bad.size, f"{name}: merged planes != x for {bad.size} patterns, first {int(bits[bad[0]]):#x}"


# --- (c) the reference decoder agrees --------------------------------------------------


def _reference():
    pytest.importorskip("dcformat.reference.planes", reason="the PLANES reference decoder is not written yet")
    from dcformat.reference import decode_file

    return decode_file


def check_same_decode(data: bytes) -> None:
    decode_file = _reference()
    for verify in (False, True):
        fast = outcome(dcformat.load, data, verify=verify, decode_budget=BUDGET)
        reference = outcome(lambda: decode_file(data, verify_checksums=verify, decode_budget=BUDGET).tensors)
        if isinstance(fast, DCFormatError) or isinstance(reference, DCFormatError):
            assert type(fast) is type(reference), f"verify={verify}: fast {fast!r}, reference {reference!r}"[:2000]
        else:
            assert_same_bytes(fast, reference, f"verify={verify}")


@settings(max_examples=30, deadline=None)
@given(planes_only(min_tensors=1, max_tensors=2))
def test_reference_decodes_planes_as_the_fast_reader(spec):
    _reference()
    data = spec.save()
    check_same_decode(data)
    assert_same_bytes(_reference()(data).tensors, expected_tensors(spec), "reference")


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_reference_and_fast_reader_agree_on_mutated_planes(data):
    _reference()
    spec = data.draw(containers(values=["planes", "raw"], min_tensors=1, max_tensors=2,
                                dtypes=FLOATS, plain_arrays=False).filter(_has_planes))
    check_same_decode(data.draw(mutations(spec.save(), fix_checksums=None)))


@settings(max_examples=30, deadline=None)
@given(planes_only(min_tensors=1, max_tensors=3))
def test_field_offsets_name_block_size_and_every_plane_segment(spec):
    # what mutations aim at: Block_Size, and each plane's Segment_Ref, read back right
    data = spec.save()
    assert refresh_checksums(data) == data
    fields = {f.name: f for f in field_offsets(data)}

    def read(name: str) -> int:
        return int.from_bytes(data[fields[name].offset:fields[name].offset + fields[name].size], "little")

    for i, record in enumerate(parse_header(data).tensors):
        assert read(f"tensor[{i}] Block_Size") == record.block_size
        blocks = -(-record.stored_count // record.block_size)  # none when nothing is stored
        assert len(record.segments) == (record.layout == Layout.SPARSE) + blocks * len(WIDTHS[record.dtype.name])
        for role, ref in record.segments.items():
            assert (read(f"tensor[{i}] {role} Offset"), read(f"tensor[{i}] {role} Length"),
                    read(f"tensor[{i}] {role} Checksum")) == (ref.offset, ref.length, ref.checksum)


def test_fuzz_seeds_hold_planes_records_that_both_readers_decode():
    loaded = importlib.util.spec_from_file_location("fuzz_reader", ROOT / "fuzz" / "fuzz_reader.py")
    fuzz_reader = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(fuzz_reader)
    seeds = fuzz_reader.written_seeds()
    assert {f"planes-{name}" for name in FLOATS} <= set(seeds)
    for name, data in seeds.items():
        assert len(data) <= 65536, name  # the fuzzer's -max_len
        assert struct.unpack_from(PREAMBLE_FORMAT, data)[3] & FEATURE_PLANES, name
        if importlib.util.find_spec("dcformat.reference.planes") is not None:
            fuzz_reader.test_one_input(data)


# --- (d) version and feature bit -------------------------------------------------------


def _has(spec: ContainerSpec, kind) -> bool:
    return any(isinstance(t, EncodedTensor) and isinstance(t.values, kind) for t in spec.tensors.values())


def _has_planes(spec: ContainerSpec) -> bool:
    return _has(spec, PlaneValues)


def _has_affine(spec: ContainerSpec) -> bool:
    records = [*spec.tensors.values(), *spec.banks.values()]
    return any(isinstance(t, EncodedTensor) and isinstance(getattr(t.values, "codebook", None), AffineCodebook)
               for t in records)


@settings(max_examples=60, deadline=None)
@given(containers(max_tensors=3))
def test_planes_set_version_minor_2_and_feature_bit_1(spec):
    # the minor is the largest among the features used (AFFINE codebooks: 3, bit 2)
    planes, grouped, affine = _has_planes(spec), _has(spec, GroupedValues), _has_affine(spec)
    data = spec.save()
    with tempfile.TemporaryDirectory() as tmp:  # the streaming writer too
        path = os.path.join(tmp, "f.dcf")
        dcformat.save_file(spec.tensors, path, spec.metadata, banks=spec.banks)
        with open(path, "rb") as f:
            streamed = f.read()
    for written in (data, streamed):
        _, major, minor, required, _, _, _ = struct.unpack_from(PREAMBLE_FORMAT, written)
        assert major == 1
        assert bool(required & FEATURE_PLANES) == planes
        assert bool(required & FEATURE_GROUPED) == grouped
        assert bool(required & FEATURE_AFFINE) == affine
        assert required & ~(FEATURE_PLANES | FEATURE_GROUPED | FEATURE_AFFINE) == 0
        assert minor == (3 if affine else 2 if planes else 1 if grouped else 0)


# --- (e) truncated files ---------------------------------------------------------------


def _small_planes_file() -> tuple[bytes, int]:
    """A small file of every kind of PLANES record; and where its data section starts."""
    rng = np.random.default_rng(3)
    f32 = rng.standard_normal(40).astype(np.float32)
    f32[:4] = np.array([-0.0, np.inf, np.nan, 1e-45], np.float32)
    bf16 = rng.standard_normal(6).astype(ml_dtypes.bfloat16)
    data = dcformat.save({
        "dense": EncodedTensor("F32", (5, 8), Dense(), PlaneValues(f32, block_size=16)),
        "sparse": EncodedTensor("BF16", (20,), Sparse(2, np.array([0, 3, 3, 1, 0, 2], np.uint16)),
                                PlaneValues(bf16, block_size=4, codec=(PackedCodec(), HuffmanCodec(4, 3)))),
        "f8": EncodedTensor("F8_E5M2", (3,), Dense(),
                            PlaneValues(np.array([1, -2, 0.5], np.float32).astype(ml_dtypes.float8_e5m2))),
    }, {"k": "v"})
    (header_size,) = struct.unpack_from("<Q", data, 20)
    return data, struct.calcsize(PREAMBLE_FORMAT) + header_size


def test_truncated_planes_files_are_refused_with_typed_errors():
    data, header_end = _small_planes_file()
    assert dcformat.load(data)  # whole, it decodes
    lengths = [*range(header_end + 1), *range(header_end + 1, len(data), max(1, (len(data) - header_end) // 40)),
               len(data) - 1]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "cut.dcf")
        for length in lengths:
            cut = data[:length]
            for verify in (True, False):
                assert isinstance(outcome(dcformat.load, cut, verify=verify), DCFormatError), (length, verify)
            with open(path, "wb") as f:
                f.write(cut)
            opened = outcome(dcformat.safe_open, path)
            if not isinstance(opened, DCFormatError):  # lazy: the tensor cut short is refused
                with opened:
                    assert any(isinstance(outcome(opened.get_tensor, n), DCFormatError) for n in opened.keys())


def test_truncated_planes_files_the_reference_refuses_alike():
    decode_file = _reference()
    data, header_end = _small_planes_file()
    for length in [*range(0, header_end + 1, 3), len(data) - 1]:
        cut = data[:length]
        fast = outcome(dcformat.load, cut, verify=False)
        reference = outcome(decode_file, cut, verify_checksums=False)
        assert isinstance(fast, DCFormatError) and type(fast) is type(reference), (length, fast, reference)


# --- (f) a real checkpoint -------------------------------------------------------------


def _real_f32() -> dict[str, np.ndarray]:
    from tests.real_checkpoints import raw_safetensors, real_checkpoint

    _, tensors = raw_safetensors(real_checkpoint("fracast.safetensors"))
    out = {name: np.frombuffer(raw, np.float32).reshape(shape) for name, (dtype, shape, raw) in tensors.items()
           if dtype == "F32"}
    assert out, "fracast.safetensors holds F32 tensors"
    return out


@pytest.mark.parametrize("name", ["F32", "BF16", "F16"])
def test_real_checkpoint_as_planes_is_exact_and_smaller(name):
    arrays = {k: v.astype(WIRE_NUMPY_DTYPES[name]) for k, v in _real_f32().items()}
    raw = dcformat.save(arrays)
    for block_size in (1 << 18, 4096):
        planes = dcformat.save({k: EncodedTensor(name, v.shape, Dense(), PlaneValues(v.reshape(-1), block_size))
                                for k, v in arrays.items()})
        assert len(planes) < len(raw), f"{name} block {block_size}: {len(planes)} bytes, raw {len(raw)}"
        for threads in (1, 2):
            assert_same_bytes(dcformat.load(planes, threads=threads), arrays, f"{name} block {block_size}")


def test_a_record_of_more_than_255_segments_loads():
    # 64 blocks of one F32 unit: 256 plane segments (the segment count was once kept in 8 bits)
    values = np.arange(64, dtype=np.float32) - 31.5
    data = dcformat.save({"t": EncodedTensor("F32", (64,), Dense(), PlaneValues(values, block_size=1))})
    assert len(parse_header(data).tensors[0].segments) == 256
    assert dcformat.load(data)["t"].tobytes() == values.tobytes()
