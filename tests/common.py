"""Checks shared by the test modules (numcodecs ``tests/common.py`` is the model)."""

from __future__ import annotations

import json

import numpy as np

from dcformat.errors import DCFormatError
from dcformat.format.dtypes import storage_view


def assert_bit_equal(actual: np.ndarray, expected: np.ndarray, what: str = "tensor") -> None:
    """Same dtype, shape and bits; on failure, name the first bad element and count bit flips."""
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    a = storage_view(np.ascontiguousarray(actual).reshape(-1))
    b = storage_view(np.ascontiguousarray(expected).reshape(-1))
    bad = np.flatnonzero(a != b)
    if bad.size:
        first = int(bad[0])
        flips = int(np.unpackbits((a[bad] ^ b[bad]).view(np.uint8)).sum())
        raise AssertionError(f"{what}: {bad.size} of {a.size} elements differ; first at flat index {first}: "
                             f"{actual.reshape(-1)[first]!r} != {expected.reshape(-1)[first]!r}; "
                             f"{flips} bits differ in all")


def assert_decoders_give(data: bytes, name: str, want: np.ndarray, tmp_dir) -> None:
    """Every reader decodes tensor ``name`` of the file ``data`` to ``want``, bit for bit:
    ``dcformat.load``, ``safe_open`` on the file written under ``tmp_dir``, the reference decoder."""
    import dcformat
    from dcformat.reference import decode_file

    assert_bit_equal(dcformat.load(data)[name], want, "dcformat.load")
    path = tmp_dir / "t.dcf"
    path.write_bytes(data)
    with dcformat.safe_open(path) as f:
        assert_bit_equal(f.get_tensor(name), want, "safe_open")
    assert_bit_equal(decode_file(data).tensors[name], want, "reference")


def assert_dicts_bit_equal(actual: dict, expected: dict) -> None:
    assert list(actual) == list(expected)
    for name in expected:
        assert_bit_equal(actual[name], expected[name], name)


def check_config(codec) -> None:
    """A codec's config survives JSON and the registry; its repr evaluates back to it."""
    from dcformat.streams import get_codec
    import dcformat.streams as streams

    config = codec.get_config()
    assert config == json.loads(json.dumps(config))
    assert get_codec(config) == codec
    assert eval(repr(codec), vars(streams)) == codec


def scan_from(monkeypatch, records: int) -> None:
    """The header-scan kernel reads headers of ``records`` tensor records or more, Numba
    loaded or not (below that the Python parser reads them, as it does after the kernel
    stops at a record it cannot vouch for)."""
    from dcformat.container import reader

    monkeypatch.setattr(reader, "SCAN_MIN_RECORDS", records)
    monkeypatch.setattr(reader, "SCAN_MIN_RECORDS_BEFORE_NUMBA", records)


def outcome(data: bytes, *, scan: bool, monkeypatch) -> tuple:
    """What reading ``data``'s framing gives, through the kernel (``scan``) or the Python
    parser: the header's records, or the error class and message."""
    from dcformat.container import reader

    scan_from(monkeypatch, 0 if scan else 1 << 30)
    try:
        header = reader.parse_header(data, verify=False)
        reader.check_data_layout(header, data)
    except DCFormatError as exc:
        return type(exc), str(exc)
    return header.banks, tuple(header.tensors), header.metadata
