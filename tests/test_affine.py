"""AFFINE codebooks (v1.3): the fast reader and the reference decoder give the same bytes,
both equal to dcformat.testing's numpy oracle; F16 and BF16 entries round as numpy's casts
do; entries are computed without fused multiply-add; files without AFFINE codebooks are
written as before; the writer refuses what readers refuse; the header-scan kernel reads
AFFINE records as the Python parser does and hands every error it cannot name back to it."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dcformat
from dcformat import AffineCodebook, CodebookValues, Dense, EncodedTensor, GroupedValues, Sparse
from dcformat.container import reader
from dcformat.errors import InvalidHeader, InvalidSettings
from dcformat.format import constants as C
from dcformat.reference import decode_file
from dcformat.testing import ContainerSpec, affine_entries, containers, encoded_tensors, expected_tensors, field_offsets

from .common import assert_bit_equal, assert_decoders_give, assert_dicts_bit_equal, outcome, scan_from

AFFINE_DTYPES = ["F32", "F16", "BF16"]
NUMPY = {"F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16}
VECTORS = Path(__file__).resolve().parent.parent / "spec" / "vectors"


def codes(*values) -> np.ndarray:
    return np.asarray(values, np.uint16)


def codebook_tensor(dtype: str, book: AffineCodebook, shape=None) -> EncodedTensor:
    """A DENSE CODEBOOK tensor holding every entry of ``book`` once, in order."""
    return EncodedTensor(dtype, shape or (book.size,), Dense(),
                         CodebookValues(book, np.arange(book.size, dtype=np.uint16)))


def grouped_tensor(dtype: str, book: AffineCodebook, scale: float = 1.0) -> EncodedTensor:
    """A DENSE GROUPED tensor holding every entry of ``book`` once, in one group of scale ``scale``."""
    return EncodedTensor(dtype, (book.size,), Dense(),
                         GroupedValues(book.size, book, np.arange(book.size, dtype=np.uint16),
                                       np.array([scale], np.float32), codes(0)))


def decoded_both(tensors: dict, banks: dict | None = None) -> dict[str, np.ndarray]:
    """The tensors of the file ``tensors`` save to, after checking that the fast reader and
    the reference decoder give the same bits."""
    data = dcformat.save(tensors, banks=banks)
    fast, reference = dcformat.load(data), decode_file(data).tensors
    assert_dicts_bit_equal(fast, reference)
    return fast


def preamble(data: bytes) -> tuple[int, int]:
    """(Version_Minor, Required_Features)."""
    return struct.unpack_from("<HI", data, 10)


def has_affine(tensor) -> bool:
    return isinstance(tensor, EncodedTensor) and isinstance(getattr(tensor.values, "codebook", None), AffineCodebook)


def spec_has_affine(spec: ContainerSpec) -> bool:
    return any(has_affine(t) for t in [*spec.tensors.values(), *spec.banks.values()])


# --- the three decoders agree ----------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(encoded_tensors(AFFINE_DTYPES, values=["codebook", "grouped"]).filter(has_affine))
def test_fast_reference_and_oracle_agree(tmp_path_factory, tensor):
    data = dcformat.save({"t": tensor})
    want = expected_tensors(ContainerSpec({"t": tensor}))["t"]
    assert_decoders_give(data, "t", want, tmp_path_factory.mktemp("affine"))
    minor, required = preamble(data)
    assert minor == 3 and required & C.FEATURE_AFFINE


@settings(max_examples=40, deadline=None)
@given(containers(min_tensors=1, max_tensors=4))
def test_drawn_containers_set_bit_2_exactly_when_a_codebook_is_affine(spec):
    data = spec.save()
    assert_dicts_bit_equal(dcformat.load(data), expected_tensors(spec))
    assert_dicts_bit_equal(decode_file(data).tensors, expected_tensors(spec))
    minor, required = preamble(data)
    assert bool(required & C.FEATURE_AFFINE) == spec_has_affine(spec)
    assert (minor == 3) == spec_has_affine(spec)


def test_entries_are_computed_in_float32_then_scaled():
    book = AffineCodebook(-1.25, 0.05, 50)
    want = (np.float32(-1.25) + np.float32(0.05) * np.arange(50, dtype=np.float32)).astype(np.float32)
    assert np.array_equal(affine_entries(book), want)
    out = decoded_both({"c": codebook_tensor("F32", book), "g": grouped_tensor("F32", book, scale=2.0)})
    assert_bit_equal(out["c"], want)
    assert_bit_equal(out["g"], want * np.float32(2.0))  # GROUPED: f32(entry x scale)


# --- rounding to F16 and BF16 ------------------------------------------------------------


@pytest.mark.parametrize("dtype, book", [
    ("F16", AffineCodebook(1.0, 2.0 ** -11, 16)),     # half an F16 spacing: every odd entry a tie
    ("F16", AffineCodebook(-1.0, -(2.0 ** -11), 8)),
    ("F16", AffineCodebook(0.0, 2.0 ** -25, 8)),      # subnormal ties
    ("F16", AffineCodebook(65504.0, 8.0, 5)),         # 65512 -> 65504, 65520 (a tie) -> +inf
    ("F16", AffineCodebook(-65504.0, -16.0, 3)),
    ("F16", AffineCodebook(-0.7, 0.0123, 300)),
    ("BF16", AffineCodebook(1.0, 2.0 ** -8, 16)),
    ("BF16", AffineCodebook(-1.0, -(2.0 ** -8), 8)),
    ("BF16", AffineCodebook(0.0, 2.0 ** -134, 8)),    # float32 subnormals
    ("BF16", AffineCodebook(3.3895313892515355e38, 2.0 ** 119, 3)),  # the largest BF16, a tie, past float32
    ("BF16", AffineCodebook(-3.3, 1e-4, 4000)),
])
def test_rounding_matches_numpy_casts(dtype, book):
    with np.errstate(over="ignore"):
        want = affine_entries(book).astype(NUMPY[dtype])
    out = decoded_both({"c": codebook_tensor(dtype, book)})
    assert_bit_equal(out["c"], want)


def test_f16_ties_by_hand():
    out = decoded_both({"c": codebook_tensor("F16", AffineCodebook(1.0, 2.0 ** -11, 8)),
                        "top": codebook_tensor("F16", AffineCodebook(65504.0, 8.0, 4))})
    ulp = 2.0 ** -10
    assert out["c"].astype(float).tolist() == [1, 1, 1 + ulp, 1 + 2 * ulp, 1 + 2 * ulp, 1 + 2 * ulp, 1 + 3 * ulp,
                                               1 + 4 * ulp]
    assert out["top"].astype(float).tolist() == [65504, 65504, np.inf, np.inf]


def test_bf16_ties_by_hand():
    out = decoded_both({"c": codebook_tensor("BF16", AffineCodebook(1.0, 2.0 ** -8, 8))})
    assert out["c"].view(np.uint16).tolist() == [0x3F80, 0x3F80, 0x3F81, 0x3F82, 0x3F82, 0x3F82, 0x3F83, 0x3F84]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["F16", "BF16"]), st.floats(width=32, allow_nan=False, allow_infinity=False),
       st.floats(width=32, allow_nan=False, allow_infinity=False), st.integers(1, 64))
def test_any_grid_rounds_as_numpy_casts(dtype, base, step, size):
    book = AffineCodebook(base, step, size)
    with np.errstate(over="ignore"):
        want = affine_entries(book).astype(NUMPY[dtype])
    assert_bit_equal(decoded_both({"c": codebook_tensor(dtype, book)})["c"], want)


# --- no fused multiply-add ---------------------------------------------------------------


def test_entries_are_not_fused():
    # entry 3 of -(3 + 2^-21) + (1 + 2^-23) i: the product 3 + 3 x 2^-23 is a tie in float32
    # and rounds to 3 + 2^-21, so the sum is 0; fused (float64 here holds both exactly), -2^-23
    base, step = -(3 + 2.0 ** -21), 1 + 2.0 ** -23
    assert np.float32(base) == base and np.float32(step) == step
    fused = np.float32(np.float64(base) + np.float64(step) * 3)
    unfused = np.float32(base) + np.float32(np.float32(step) * np.float32(3))
    assert fused == -(2.0 ** -23) and unfused == 0 and fused != unfused
    book = AffineCodebook(base, step, 4)
    out = decoded_both({"c": codebook_tensor("F32", book), "g": grouped_tensor("F32", book)})
    for name in ("c", "g"):
        assert out[name][3] == 0 and not np.signbit(out[name][3]), name


# --- what a writer writes ----------------------------------------------------------------


def _expand(tensor):
    """The same tensor with its AFFINE codebook written out as a stored table."""
    if not has_affine(tensor):
        return tensor
    values, entries = tensor.values, affine_entries(tensor.values.codebook)
    if isinstance(values, GroupedValues):
        expanded = GroupedValues(values.group_size, entries, values.codes, values.scales, values.scale_codes,
                                 values.offsets, values.offset_codes, values.codec, values.table_codec)
    else:
        with np.errstate(over="ignore"):
            table = entries.astype(NUMPY[tensor.dtype])
        expanded = CodebookValues(table, values.codes, values.codec)
    return EncodedTensor(tensor.dtype, tensor.shape, tensor.layout, expanded)


@settings(max_examples=40, deadline=None)
@given(containers(min_tensors=1, max_tensors=4))
def test_an_affine_codebook_decodes_as_its_table_and_only_it_needs_v1_3(spec):
    expanded = ContainerSpec({n: _expand(t) for n, t in spec.tensors.items()},
                             {n: _expand(b) for n, b in spec.banks.items()}, spec.metadata, spec.alignment)
    data, plain = spec.save(), expanded.save()
    assert_dicts_bit_equal(dcformat.load(plain), dcformat.load(data))
    minor, required = preamble(plain)
    assert minor <= 2 and not required & C.FEATURE_AFFINE
    if spec_has_affine(spec):
        assert preamble(data) == (3, required | C.FEATURE_AFFINE)
    else:
        assert data == plain


def test_files_without_affine_codebooks_are_the_vectors_they_were():
    # every valid vector made by the writer alone before v1.3 is still what the writer
    # writes (test_vectors checks the bytes): none has Version_Minor 3 or bit 2
    manifest = json.loads((VECTORS / "MANIFEST.json").read_text())
    for entry in manifest["vectors"]:
        if entry["kind"] == "valid" and not entry["name"].startswith("affine-"):
            minor, required = preamble((VECTORS / entry["file"]).read_bytes())
            assert not required & C.FEATURE_AFFINE and (minor <= 2 or minor == 0xFFFF), entry["name"]


def _grouped(book: AffineCodebook, dtype: str = "F32") -> EncodedTensor:
    """Two units of GROUPED values, both code 0, one group of scale 1."""
    return EncodedTensor(dtype, (2,), Dense(), GroupedValues(2, book, codes(0, 0), np.array([1.0], np.float32),
                                                             codes(0)))


@pytest.mark.parametrize("tensor", [
    EncodedTensor("F32", (2,), Dense(), CodebookValues(AffineCodebook(float("nan"), 1.0, 3), codes(0, 1))),
    EncodedTensor("F16", (2,), Dense(), CodebookValues(AffineCodebook(0.0, float("inf"), 3), codes(0, 1))),
    EncodedTensor("BF16", (2,), Dense(), CodebookValues(AffineCodebook(float("-inf"), 1.0, 3), codes(0, 1))),
    EncodedTensor("F64", (2,), Dense(), CodebookValues(AffineCodebook(0.0, 1.0, 3), codes(0, 1))),
    EncodedTensor("I8", (2,), Dense(), CodebookValues(AffineCodebook(0.0, 1.0, 3), codes(0, 1))),
    EncodedTensor("F8_E4M3", (2,), Dense(), CodebookValues(AffineCodebook(0.0, 1.0, 3), codes(0, 1))),
    EncodedTensor("F32", (0,), Dense(), CodebookValues(AffineCodebook(0.0, 1.0, 0), codes())),
    EncodedTensor("F32", (2,), Dense(), CodebookValues(AffineCodebook(0.0, 1.0, C.MAX_CODEBOOK_SIZE + 1), codes(0, 1))),
    EncodedTensor("F32", (2,), Dense(), CodebookValues(AffineCodebook(0.0, 1.0, 3), codes(0, 3))),
    _grouped(AffineCodebook(float("nan"), 1.0, 3)),
    _grouped(AffineCodebook(0.0, float("inf"), 3)),
    _grouped(AffineCodebook(3e38, 1e38, 3)),  # entry 1: the sum overflows (GROUPED tables are finite)
    _grouped(AffineCodebook(-3e38, 2.0 ** 127, 3)),  # entry 2: the product overflows
    _grouped(AffineCodebook(1.0, 1.0, 0)),
    _grouped(AffineCodebook(1.0, 1.0, C.MAX_CODEBOOK_SIZE + 1)),
    _grouped(AffineCodebook(1.0, 1.0, 3), "I8"),
], ids=lambda t: f"{t.dtype}-{type(t.values).__name__}-{t.values.codebook}")
def test_writer_refuses_what_readers_refuse(tensor, tmp_path):
    with pytest.raises(InvalidSettings):
        dcformat.save({"t": tensor})
    with pytest.raises(InvalidSettings):  # the streaming writer too
        dcformat.save_file({"t": tensor}, tmp_path / "t.dcf")


def test_codebook_entries_may_overflow_grouped_ones_may_not():
    book = AffineCodebook(3e38, 1e38, 3)
    out = decoded_both({"c": codebook_tensor("F32", book)})
    assert out["c"][0] == np.float32(3e38) and np.isposinf(out["c"][1:]).all()


# --- the header-scan kernel --------------------------------------------------------------


def many_records() -> dict:
    """300 small records, a third AFFINE CODEBOOK (F32, F16, BF16, dense and sparse), a third
    GROUPED with an AFFINE codebook, a third with stored codebooks."""
    rng = np.random.default_rng(5)
    tensors = {}
    for i in range(300):
        dtype = AFFINE_DTYPES[i % 3]
        book = AffineCodebook(float(rng.normal()), float(rng.uniform(0.01, 0.5)), int(rng.integers(1, 40)))
        symbols = rng.integers(0, book.size, 6).astype(np.uint16)
        if i % 3 == 0:
            layout = Sparse(2, codes(0, 1, 3)) if i % 2 else Dense()
            shape = (8,) if i % 2 else (2, 3)
            values = CodebookValues(book, symbols[:3] if i % 2 else symbols)
        elif i % 3 == 1:
            layout, shape = Dense(), (6,)
            values = GroupedValues(3, book, symbols, np.array([0.5, 2.0], np.float32), codes(1, 0),
                                   np.array([0.25], np.float32), codes(0, 0))
        else:
            layout, shape = Dense(), (6,)
            values = CodebookValues(affine_entries(book).astype(NUMPY[dtype]), symbols)
        tensors[f"t{i}"] = EncodedTensor(dtype, shape, layout, values)
    return tensors


@pytest.fixture(scope="module")
def many() -> bytes:
    return dcformat.save(many_records())


def _scan(data: bytes):
    """The kernel's table of ``data``'s tensor records (a header without banks, read from
    its preamble alone), None where the kernel stops at one."""
    features, header_size = struct.unpack_from("<I4xQ", data, 12)
    r = reader.ByteReader(bytes(data[C.PREAMBLE_SIZE:C.PREAMBLE_SIZE + header_size]))
    r.u32("Alignment")
    reader._parse_metadata(r)
    assert r.u32("Bank_Count") == 0
    count = int.from_bytes(r.buf[r.pos:r.pos + 4], "little")
    return reader._scan_tensors(r, count, (), features)


def test_the_kernel_reads_affine_records_as_the_parser_does(many, monkeypatch):
    table = _scan(many)
    assert table is not None and list(table) == list(reader.parse_header(many).tensors)
    assert len(table) == 300 and sum(r.segments["codebook"].codec == C.SegmentCodec.AFFINE for r in table) == 200
    assert outcome(many, scan=True, monkeypatch=monkeypatch) == outcome(many, scan=False, monkeypatch=monkeypatch)
    scan_from(monkeypatch, 0)
    scanned = dcformat.load(many)
    scan_from(monkeypatch, 1 << 30)
    assert_dicts_bit_equal(scanned, dcformat.load(many))
    assert_dicts_bit_equal(scanned, expected_tensors(ContainerSpec(many_records())))


def _at(data: bytes, name: str) -> int:
    """The offset of the header field ``name`` (as :func:`field_offsets` names it)."""
    return next(f.offset for f in field_offsets(data) if f.name == name)


def _edit(data: bytes, at: int, fmt: str, value) -> bytes:
    out = bytearray(data)
    struct.pack_into("<" + fmt, out, at, value)
    return bytes(out)


def _without_affine_bit(data: bytes) -> bytes:
    return _edit(data, 12, "I", C.FEATURE_GROUPED)


@pytest.mark.parametrize("edit, message", [
    (_without_affine_bit, "Required_Features bit 2"),
    (lambda d: _edit(d, _at(d, "tensor[297] DType"), "B", C.DType.F64), "F32, F16 or BF16"),
    (lambda d: _edit(d, _at(d, "tensor[297] DType"), "B", C.DType.I16), "F32, F16 or BF16"),
    (lambda d: _edit(d, _at(d, "tensor[297] codebook Length"), "Q", 7), "expected 8"),
    (lambda d: _edit(d, _at(d, "tensor[298] codebook Length"), "Q", 9), "expected 8"),
    (lambda d: _edit(d, _at(d, "tensor[299] codes Codec"), "B", C.SegmentCodec.AFFINE), "codes"),
    (lambda d: _edit(d, _at(d, "tensor[298] scales Codec"), "B", C.SegmentCodec.AFFINE), "scales"),
], ids=["feature-bit", "dtype-f64", "dtype-i16", "length-7", "grouped-length-9", "codes-codec", "scales-codec"])
def test_the_kernel_hands_affine_errors_to_the_parser(many, edit, message, monkeypatch):
    edited = edit(many)
    assert _scan(edited) is None  # the kernel stops at the record, the parser names the rule
    python = outcome(edited, scan=False, monkeypatch=monkeypatch)
    assert python[0] is InvalidHeader and message in python[1], python
    assert outcome(edited, scan=True, monkeypatch=monkeypatch) == python
    with pytest.raises(InvalidHeader):
        decode_file(edited, verify_checksums=False)
