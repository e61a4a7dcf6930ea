"""Files of many records: each is charged to the decode budget (FORMAT.md, "Decode budget"),
and what a reader holds per record stays small, whatever the number of threads.

The full case, 1,048,576 empty records (a 46 MB file, within every limit), runs with
``-m slow``; a scaled-down one (the tensor limit lowered to what the test writes) runs by
default. No assertion depends on timing: memory is counted with tracemalloc.
"""

from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest

import dcformat
from dcformat.container.checksum import crc32
from dcformat.container.file import ContainerFile
from dcformat.container.reader import parse_header
from dcformat.container.writer import ContainerWriter
from dcformat.errors import DecodeLimitExceeded
from dcformat.format import constants as C
from dcformat.reference import decode_file

#: Records written by the default-run tests.
COUNT = 10_000


def writer_file(count: int, size: int = 0) -> bytes:
    """``count`` F32 tensors of ``size`` elements each, written by ContainerWriter."""
    writer = ContainerWriter()
    value = np.zeros(size, np.float32)
    for i in range(count):
        writer.add_tensor(f"t{i:07d}", value)
    return writer.to_bytes()


def empty_records_file(count: int) -> bytes:
    """The bytes ContainerWriter writes for ``count`` empty F32 tensors named ``t0000000``...,
    built at once (the writer takes half a minute for a million)."""
    name = struct.pack("<I", 8)
    fixed = struct.pack("<BB", C.DType.F32, 1) + struct.pack("<Q", 0) + struct.pack("<BB", C.Layout.DENSE, C.ValueKind.RAW)
    ref = struct.pack(C.SEGMENT_REF_FORMAT, C.SegmentCodec.BYTES, 0, 0, 0)
    names = np.char.mod("t%07d", np.arange(count)).astype("S8")
    rows = np.empty(count, dtype=[("len", "S4"), ("name", "S8"), ("fixed", f"S{len(fixed)}"), ("ref", f"S{len(ref)}")])
    rows["len"], rows["name"], rows["fixed"], rows["ref"] = name, names, fixed, ref
    header = struct.pack("<IIII", C.DEFAULT_ALIGNMENT, 0, 0, count) + rows.tobytes()
    preamble = struct.pack(C.PREAMBLE_FORMAT[:-1], C.MAGIC, C.VERSION_MAJOR, C.BASE_VERSION_MINOR, 0, 0, len(header))
    head = preamble + struct.pack("<I", crc32(preamble, header)) + header
    return head + bytes(C.align_up(len(head), C.DEFAULT_ALIGNMENT) - len(head))


def test_the_fast_builder_writes_what_the_writer_writes():
    for count in (0, 1, 7):
        assert empty_records_file(count) == writer_file(count)


@pytest.fixture(scope="module")
def many() -> bytes:
    return empty_records_file(COUNT)


def test_a_file_at_the_tensor_limit_loads(monkeypatch, many):
    monkeypatch.setattr(C, "MAX_TENSORS", COUNT)
    loaded = dcformat.load(many)
    assert len(loaded) == COUNT and all(a.shape == (0,) and a.dtype == np.float32 for a in loaded.values())


@pytest.mark.parametrize("size", [0, 3])
def test_every_record_is_charged_to_the_budget(size):
    count = 50
    data = writer_file(count, size)
    exact = count * (C.DECODE_RECORD_CHARGE + 4 * size)
    assert len(dcformat.load(data, decode_budget=exact)) == count
    assert len(decode_file(data, decode_budget=exact).tensors) == count
    with pytest.raises(DecodeLimitExceeded):
        dcformat.load(data, decode_budget=exact - 1)
    with pytest.raises(DecodeLimitExceeded):
        decode_file(data, decode_budget=exact - 1)
    with pytest.raises(DecodeLimitExceeded):  # one record at a time, as safe_open does
        container = ContainerFile(data, decode_budget=exact - 1)
        for name in container.keys():
            container.decode(name)
    assert container.decoded_bytes == exact - C.DECODE_RECORD_CHARGE - 4 * size


def _kept(call) -> int:
    tracemalloc.start()
    try:
        result = call()
        kept = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del result
    return kept


def _peak(call) -> int:
    tracemalloc.start()
    try:
        result = call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    del result
    return peak


def test_a_reader_holds_little_per_record_whatever_the_threads(many):
    # The parsed header holds its tensor records as columns (format.records.RecordTable,
    # about 175 bytes a record with its name; a Record object each took about 500).
    # Loading holds besides the returned dict and its arrays (about 200 bytes a record)
    # and little else: it held 600 bytes a record more than the header before records
    # were decoded in batches and charged by name. More threads hold no more.
    parse_header(many), dcformat.load(many)  # kernels loaded, caches warm: not counted
    header = _kept(lambda: parse_header(many)) / COUNT
    one, eight = (_peak(lambda: dcformat.load(many, threads=t)) / COUNT - header for t in (1, 8))
    assert header < 250, header
    assert one < 350 and eight < 350, (header, one, eight)
    assert eight < 1.1 * one, (one, eight)


@pytest.mark.slow
def test_a_million_empty_records_load(tmp_path):
    path = tmp_path / "many.dcf"
    path.write_bytes(empty_records_file(C.MAX_TENSORS))
    assert path.stat().st_size < 50 << 20
    loaded = dcformat.load_file(path)
    assert len(loaded) == C.MAX_TENSORS
    with dcformat.safe_open(path) as f:
        assert f.get_tensor("t1048575").shape == (0,)
