"""The conformance vectors (spec/FORMAT.md, Appendix C) against the fast reader and the reference decoder.

Every valid vector decodes, bit for bit, to its expected tensors through ``dcformat.load``,
``dcformat.safe_open`` (tensor by tensor) and ``dcformat.reference.decode_file``; every invalid
vector is refused by both readers with exactly the error class the manifest names (that class
and not a more specific one); the manifest covers every rule of Appendix B; and the committed
files are exactly what ``spec/vectors/make_vectors.py`` generates.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

import dcformat
from dcformat import errors
from dcformat.format.dtypes import numpy_dtype
from dcformat.reference import decode_file

from .common import assert_bit_equal

VECTORS = Path(__file__).resolve().parent.parent / "spec" / "vectors"
MANIFEST = json.loads((VECTORS / "MANIFEST.json").read_text(encoding="ascii"))
ENTRIES = MANIFEST["vectors"]
VALID = [e for e in ENTRIES if e["kind"] == "valid"]
INVALID = [e for e in ENTRIES if e["kind"] == "invalid"]
RULES = [f"R{i}" for i in range(1, 46)]

#: Vectors the fast reader refuses with another error than the spec names (reported; strict
#: xfail, so a fix turns them into failures to remove from here).
FAST_READER_BUGS: dict[str, str] = {
}


def _ids(entries):
    return [e["name"] for e in entries]


def _data(entry) -> bytes:
    return (VECTORS / entry["file"]).read_bytes()


def read_expected(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """A safetensors file read without the safetensors library (which lacks float8 in numpy)."""
    raw = path.read_bytes()
    size = struct.unpack_from("<Q", raw)[0]
    header = json.loads(raw[8:8 + size])
    metadata = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        start, stop = info["data_offsets"]
        array = np.frombuffer(raw[8 + size + start:8 + size + stop], dtype=numpy_dtype(info["dtype"]))
        tensors[name] = array.reshape(info["shape"])
    return tensors, metadata


def assert_decoded(actual: dict, entry) -> None:
    expected, _ = read_expected(VECTORS / entry["expected"])
    assert list(actual) == entry["tensors"], "tensors missing, extra or out of header order"
    assert sorted(expected) == sorted(entry["tensors"])
    for name in entry["tensors"]:
        assert_bit_equal(np.asarray(actual[name]), expected[name], f"{entry['name']}: {name!r}")


def assert_exact_error(exc: BaseException, name: str) -> None:
    """``exc`` is an instance of errors.<name> and of no subclass of it that errors.py defines."""
    cls = getattr(errors, name)
    assert isinstance(exc, cls), f"expected {name}, got {type(exc).__name__}: {exc}"
    narrower = [c.__name__ for c in vars(errors).values()
                if inspect.isclass(c) and issubclass(c, cls) and c is not cls and isinstance(exc, c)]
    assert not narrower, f"expected {name}, got the more specific {type(exc).__name__}: {exc}"


def _fast(entry):
    """The entry as a pytest param, strict-xfail when it is a known fast-reader bug."""
    reason = FAST_READER_BUGS.get(entry["name"])
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(entry, id=entry["name"], marks=marks)


# --- the manifest ------------------------------------------------------------------------


def test_manifest_covers_every_rule():
    covered = {e["rule"] for e in INVALID}
    assert covered == set(RULES), f"uncovered: {sorted(set(RULES) - covered)}, unknown: {sorted(covered - set(RULES))}"


def test_manifest_lists_exactly_the_files_on_disk():
    listed = {"MANIFEST.json"}
    for e in ENTRIES:
        listed.add(e["file"])
        if e["kind"] == "valid":
            listed.add(e["expected"])
        assert hashlib.sha256(_data(e)).hexdigest() == e["sha256"], e["name"]
        assert e["file"] == f"{e['kind']}/{e['name']}.dcf"
    on_disk = {p.relative_to(VECTORS).as_posix() for pattern in ("valid/*", "invalid/*", "*.json")
               for p in VECTORS.glob(pattern)}
    assert on_disk == listed
    assert len({e["name"] for e in ENTRIES}) == len(ENTRIES)


@pytest.mark.parametrize("entry", INVALID, ids=_ids(INVALID))
def test_manifest_error_is_a_format_error(entry):
    cls = getattr(errors, entry["error"], None)
    assert inspect.isclass(cls) and issubclass(cls, errors.FormatError)
    assert entry["rule"] in RULES and entry["description"]


@pytest.mark.parametrize("entry", VALID, ids=_ids(VALID))
def test_expected_file_is_valid_safetensors(entry):
    safetensors = pytest.importorskip("safetensors")
    expected, metadata = read_expected(VECTORS / entry["expected"])
    with safetensors.safe_open(str(VECTORS / entry["expected"]), framework="numpy") as f:
        assert sorted(f.keys()) == sorted(expected)
        assert (f.metadata() or {}) == metadata
        for name, array in expected.items():
            view = f.get_slice(name)
            assert list(view.get_shape()) == list(array.shape)
            assert numpy_dtype(view.get_dtype()) == array.dtype


# --- valid vectors -----------------------------------------------------------------------


@pytest.mark.parametrize("entry", VALID, ids=_ids(VALID))
def test_valid_load(entry):
    data = _data(entry)
    assert_decoded(dcformat.load(data), entry)
    assert_decoded(dcformat.load(data, verify=False), entry)


@pytest.mark.parametrize("entry", VALID, ids=_ids(VALID))
def test_valid_safe_open_per_tensor(entry):
    _, metadata = read_expected(VECTORS / entry["expected"])
    with dcformat.safe_open(VECTORS / entry["file"]) as f:
        assert f.keys() == entry["tensors"]
        assert f.metadata() == metadata
        # one tensor at a time, last first: each needs only its own segments (and its bank's)
        decoded = {name: f.get_tensor(name) for name in reversed(entry["tensors"])}
    assert_decoded({name: decoded[name] for name in entry["tensors"]}, entry)


@pytest.mark.parametrize("entry", VALID, ids=_ids(VALID))
def test_valid_load_file_mapped(entry):
    """Mapped, raw records are views of the file: the same tensors as read with pread."""
    assert_decoded(dcformat.load_file(VECTORS / entry["file"], mmap=True), entry)


@pytest.mark.parametrize("entry", VALID, ids=_ids(VALID))
def test_valid_reference(entry):
    data = _data(entry)
    _, metadata = read_expected(VECTORS / entry["expected"])
    decoded = decode_file(data)
    assert_decoded(decoded.tensors, entry)
    assert decoded.metadata == metadata
    assert decoded.version == struct.unpack_from("<HH", data, 8)


# --- invalid vectors ---------------------------------------------------------------------


@pytest.mark.parametrize("entry", [_fast(e) for e in INVALID])
def test_invalid_load(entry):
    with pytest.raises(errors.FormatError) as info:
        dcformat.load(_data(entry))
    assert_exact_error(info.value, entry["error"])


@pytest.mark.parametrize("entry", [_fast(e) for e in INVALID])
def test_invalid_load_file_mapped(entry):
    with pytest.raises(errors.FormatError) as info:
        dcformat.load_file(VECTORS / entry["file"], mmap=True)
    assert_exact_error(info.value, entry["error"])


@pytest.mark.parametrize("entry", INVALID, ids=_ids(INVALID))
def test_invalid_reference(entry):
    with pytest.raises(errors.FormatError) as info:
        decode_file(_data(entry))
    assert_exact_error(info.value, entry["error"])


NOT_CHECKSUM = [e for e in INVALID if e["rule"] not in ("R7", "R21")]


@pytest.mark.parametrize("entry", [_fast(e) for e in NOT_CHECKSUM])
def test_invalid_without_checksums_load(entry):
    """Turning checksums off skips R7 and R21 only (FORMAT.md, "Introduction")."""
    with pytest.raises(errors.FormatError) as info:
        dcformat.load(_data(entry), verify=False)
    assert_exact_error(info.value, entry["error"])


@pytest.mark.parametrize("entry", NOT_CHECKSUM, ids=_ids(NOT_CHECKSUM))
def test_invalid_without_checksums_reference(entry):
    with pytest.raises(errors.FormatError) as info:
        decode_file(_data(entry), verify_checksums=False)
    assert_exact_error(info.value, entry["error"])


# --- the generator -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def make_vectors():
    spec = importlib.util.spec_from_file_location("make_vectors", VECTORS / "make_vectors.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def generated(make_vectors):
    return make_vectors.generate()


def test_generator_check_passes(make_vectors, generated, monkeypatch, capsys):
    """``make_vectors.py --check``: the committed files are exactly what the generator writes."""
    assert generated == make_vectors.generate(), "two runs of the generator differ"
    monkeypatch.setattr(make_vectors, "generate", lambda: generated)
    assert make_vectors.main(["--check"]) == 0, capsys.readouterr().err


def test_generator_keeps_files_unless_forced(make_vectors, generated, monkeypatch, tmp_path):
    monkeypatch.setattr(make_vectors, "generate", lambda: generated)
    assert make_vectors.main(["--out", str(tmp_path)]) == 0
    name = "invalid/empty-file.dcf"
    assert (tmp_path / name).read_bytes() == b""
    (tmp_path / name).write_bytes(b"edited")
    (tmp_path / "invalid" / "stale.dcf").write_bytes(b"x")
    assert make_vectors.main(["--check", "--out", str(tmp_path)]) == 1
    assert make_vectors.main(["--out", str(tmp_path)]) == 1
    assert (tmp_path / name).read_bytes() == b"edited"
    assert make_vectors.main(["--force", "--out", str(tmp_path)]) == 0
    assert (tmp_path / name).read_bytes() == b"" and not (tmp_path / "invalid" / "stale.dcf").exists()
    assert make_vectors.main(["--check", "--out", str(tmp_path)]) == 0
