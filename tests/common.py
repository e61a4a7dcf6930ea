"""Checks shared by the test modules (numcodecs ``tests/common.py`` is the model)."""

from __future__ import annotations

import json

import numpy as np

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
