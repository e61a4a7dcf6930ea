"""The two readers of tensor records agree: the kernel that scans a header of many records
into columns (dcformat.kernels.records) and the Python parser that reads one field at a
time and names every rule broken (container/reader.py).

The kernel runs on headers of SCAN_MIN_RECORDS records or more (SCAN_MIN_RECORDS_BEFORE_NUMBA
before Numba is imported); here both thresholds are set to 0 or out of reach, so both read the same files: every conformance vector, and
mutated files of every record kind (sparse, codebook, bank). The outcome of each, the
records or the error with its message, must be the same.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dcformat
from dcformat.container import reader
from dcformat.container.file import ContainerFile
from dcformat.format.records import RecordTable
from dcformat.testing import containers
from dcformat.testing.mutate import field_offsets, mutations

from .common import outcome, scan_from

VECTORS = sorted((Path(__file__).resolve().parent.parent / "spec" / "vectors").glob("*/*.dcf"))


def test_the_vectors_read_alike(monkeypatch):
    assert len(VECTORS) > 200
    scanned = 0
    for path in VECTORS:
        data = path.read_bytes()
        python = outcome(data, scan=False, monkeypatch=monkeypatch)
        assert outcome(data, scan=True, monkeypatch=monkeypatch) == python, path.name
        scanned += not isinstance(python[0], type)
    assert scanned > 100  # the valid vectors, and invalid ones refused past the records


@pytest.fixture(scope="module")
def sample() -> list[bytes]:
    rng = np.random.default_rng(7)
    """Files of every record kind: dense, empty, sparse, codebook and bank records, GROUPED
    ones and AFFINE codebooks."""
    rng = np.random.default_rng(7)
    kinds = ("bank-sparse", "bank-codebook-quantized", "codebook-huffman", "sparse-", "many-tensors", "grouped-",
             "affine-")
    full = dcformat.EncodedTensor(  # Entry_Count equal to the units: one more is refused
        "F32", (2, 3), dcformat.Sparse(2, np.zeros(6, np.uint16)),
        dcformat.CodebookValues(np.arange(4, dtype=np.float32), rng.integers(0, 4, 6).astype(np.uint16)))
    return [dcformat.save({"dense": rng.standard_normal((3, 4)).astype(np.float32), "empty": np.zeros((0, 2)),
                           "full": full}),
            *(path.read_bytes() for path in VECTORS
              if path.parent.name == "valid" and path.name.startswith(kinds))]


def test_the_kernel_vouches_for_every_valid_vector():
    # the fallback makes the outcomes equal whenever the kernel stops: it must not stop on
    # a valid file, of any record kind (GROUPED included)
    scanned = 0
    for path in VECTORS:
        if path.parent.name != "valid":
            continue
        data = path.read_bytes()
        header = reader.parse_header(data)
        r = _after_banks(data)
        count = int.from_bytes(r.buf[r.pos:r.pos + 4], "little")
        table = reader._scan_tensors(r, count, header.banks, header.required_features)
        assert table is not None, path.name
        assert list(table) == list(header.tensors), path.name
        scanned += 1
    assert scanned > 40


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_headers_read_alike(data, sample, monkeypatch):
    original = data.draw(st.sampled_from(sample))
    mutated = data.draw(mutations(original, max_edits=2, fix_checksums=True))
    assert outcome(mutated, scan=True, monkeypatch=monkeypatch) == outcome(mutated, scan=False,
                                                                            monkeypatch=monkeypatch)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=containers(min_tensors=1, max_tensors=5))
def test_drawn_containers_read_alike_and_decode_alike(spec, monkeypatch):
    data = spec.save()
    assert outcome(data, scan=True, monkeypatch=monkeypatch) == outcome(data, scan=False, monkeypatch=monkeypatch)
    scan_from(monkeypatch, 0)
    container = ContainerFile(data)
    container.decode_banks()
    scanned = container.decode_all()
    scan_from(monkeypatch, 1 << 30)
    python = dcformat.load(data)
    assert list(scanned) == list(python)
    for name in python:
        assert scanned[name].dtype == python[name].dtype and scanned[name].shape == python[name].shape
        assert scanned[name].tobytes() == python[name].tobytes()


def test_a_table_gives_back_the_records_it_was_made_from():
    rng = np.random.default_rng(1)
    data = dcformat.save({f"t{i}": rng.standard_normal(i + 1).astype(np.float32) for i in range(5)})
    records = reader._parse_records(_after_banks(data), "tensor", 10, banks=())
    table = RecordTable.from_records(records)
    assert list(table) == list(records) and table[-1] == records[-1] and table[1:3] == list(records[1:3])
    assert table.position("t3") == 3 and table.shapes(np.arange(5)) == [r.shape for r in records]
    assert table.nbytes().tolist() == [r.nbytes for r in records]
    with pytest.raises(IndexError):
        table[5]
    with pytest.raises(KeyError):
        table.position("nope")


def _after_banks(data: bytes) -> reader.ByteReader:
    """A ByteReader over ``data``'s header positioned at Tensor_Count."""
    header = reader.parse_header(data)
    r = reader.ByteReader(bytes(data[reader.C.PREAMBLE_SIZE:reader.C.PREAMBLE_SIZE + header.header_size]))
    r.u32("Alignment")
    reader._parse_metadata(r)
    reader._parse_records(r, "bank", reader.C.MAX_BANKS, banks=(), features=header.required_features)
    return r


def _candidates(data: bytes, fields) -> list[int]:
    """Values worth writing over a header field: every header field's value in the file,
    every record's unit count and byte sizes (an Entry_Count's and a Length's bounds),
    each with its neighbours, and the limits."""
    header = reader.parse_header(data)
    sizes = [v for r in header.tensors for v in (r.units, r.size, r.nbytes, r.codebook_size * r.itemsize)]
    values = {0, 1, 2, 15, 16, 17, 255, 256, 4096, 4097, 1 << 16, (1 << 16) + 1, 1 << 48, (1 << 48) + 1,
              (1 << 62) - 1, 1 << 62, (1 << 63) - 1, 1 << 63, (1 << 64) - 1}
    for field in fields:
        v = int.from_bytes(data[field.offset:field.offset + field.size], "little")
        values.update((v - 1, v, v + 1))
    for v in sizes:
        values.update((v - 1, v, v + 1))
    return sorted(v for v in values if v >= 0)


def test_every_header_field_at_every_boundary_reads_alike(sample, monkeypatch):
    for data in sample:
        fields = [f for f in field_offsets(data) if f.section == "header" and f.name.startswith("tensor[")]
        if len(fields) < 200:  # many-tensors.dcf has 3,515
            _check_fields(data, fields, monkeypatch)


def _check_fields(data: bytes, fields, monkeypatch) -> None:
    values = _candidates(data, fields)
    for field in fields:
        for value in values:
            if value >= 1 << (8 * field.size):
                continue
            edited = data[:field.offset] + value.to_bytes(field.size, "little") + data[field.offset + field.size:]
            assert outcome(edited, scan=True, monkeypatch=monkeypatch) == \
                outcome(edited, scan=False, monkeypatch=monkeypatch), (field, value)


def _field(data: bytes, name: str):
    return next(f for f in field_offsets(data) if f.name == name)


def _write(data: bytes, field, value: int) -> bytes:
    return data[:field.offset] + value.to_bytes(field.size, "little") + data[field.offset + field.size:]


def test_edits_no_single_field_reaches_read_alike(sample, monkeypatch):
    # A Codebook_Size of 0 with a codebook segment of 0 bytes (the Length rule holds).
    data = next(d for d in sample if b"full" in d)
    record = next(f.name.split()[0] for f in field_offsets(data) if f.name.endswith("Codebook_Size"))
    edited = _write(_write(data, _field(data, f"{record} codebook Length"), 0), _field(data, f"{record} Codebook_Size"), 0)
    assert outcome(edited, scan=False, monkeypatch=monkeypatch)[0] is dcformat.errors.InvalidHeader
    assert outcome(edited, scan=True, monkeypatch=monkeypatch) == outcome(edited, scan=False, monkeypatch=monkeypatch)

    # A BANK-valued tensor of lower rank than its bank's kernels: dimensions cut out,
    # Rank and Header_Size made to agree.
    banked = next(p.read_bytes() for p in VECTORS if p.name == "bank-dense.dcf")
    header = reader.parse_header(banked)
    i, tensor = next((i, t) for i, t in enumerate(header.tensors) if len(t.shape) >= 2)
    kernel_rank = len(header.banks[tensor.bank_index].shape) - 1
    for rank in range(kernel_rank):
        cut = len(tensor.shape) - rank
        first = _field(banked, f"tensor[{i}] Shape[0]")
        edited = banked[:first.offset] + banked[first.offset + 8 * cut:]
        edited = _write(edited, _field(banked, f"tensor[{i}] Rank"), rank)
        edited = _write(edited, _field(banked, "Header_Size"), header.header_size - 8 * cut)
        assert outcome(edited, scan=False, monkeypatch=monkeypatch)[0] is dcformat.errors.InvalidHeader
        assert outcome(edited, scan=True, monkeypatch=monkeypatch) == \
            outcome(edited, scan=False, monkeypatch=monkeypatch), rank


def test_offsets_on_a_sparse_grouped_record_read_alike(monkeypatch):
    # Offset_Count 1 with an offsets segment of 4 bytes (the Length rule holds): refused,
    # since a SPARSE record has no offsets
    data = next(p.read_bytes() for p in VECTORS if p.name == "grouped-sparse.dcf")
    header = reader.parse_header(data)
    i = next(i for i, t in enumerate(header.tensors) if t.layout == reader.C.Layout.SPARSE and t.groups)
    edited = _write(_write(data, _field(data, f"tensor[{i}] offsets Length"), 4),
                    _field(data, f"tensor[{i}] Offset_Count"), 1)
    assert outcome(edited, scan=False, monkeypatch=monkeypatch)[0] is dcformat.errors.InvalidHeader
    assert outcome(edited, scan=True, monkeypatch=monkeypatch) == outcome(edited, scan=False, monkeypatch=monkeypatch)
