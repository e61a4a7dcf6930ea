"""GROUPED values (v1.1): the fast reader and the reference decoder give the same bytes,
both equal to an independent numpy computation; the writer refuses what readers refuse."""

from __future__ import annotations

import struct

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dcformat
from dcformat import AffineCodebook, Dense, EncodedTensor, GroupedValues, Sparse
from dcformat.errors import InvalidSettings
from dcformat.format import constants as C
from dcformat.reference import decode_file
from dcformat.reference.grouped import round_float32_bits
from dcformat.testing import ContainerSpec, containers, encoded_tensors, expected_tensors

from .common import assert_bit_equal, assert_decoders_give, assert_dicts_bit_equal

GROUPED_DTYPES = ["F32", "F16", "BF16"]


def grouped(group_size=2, codebook=(1.0, -2.0), codes=(0, 1, 1, 0), scales=(0.5,), scale_codes=(0, 0),
            offsets=None, offset_codes=None) -> GroupedValues:
    f32 = (lambda t: None if t is None else np.asarray(t, np.float32))
    u16 = (lambda t: None if t is None else np.asarray(t, np.uint16))
    return GroupedValues(group_size, f32(codebook), u16(codes), f32(scales), u16(scale_codes), f32(offsets),
                         u16(offset_codes))


def independent(tensor: EncodedTensor) -> np.ndarray:
    """The tensor computed here with numpy alone (float32 arrays; F16/BF16 by numpy's casts)."""
    v = tensor.values
    n = int(np.prod(tensor.shape))
    units = (np.cumsum(np.asarray(tensor.layout.gaps, np.int64) + 1) - 1) if isinstance(tensor.layout, Sparse) \
        else np.arange(n)
    g = units // v.group_size
    with np.errstate(over="ignore"):
        x = np.float32(v.codebook)[np.int64(v.codes)] * np.float32(v.scales)[np.int64(v.scale_codes)][g]
        if v.offsets is not None:
            x = x + np.float32(v.offsets)[np.int64(v.offset_codes)][g]
        out = np.zeros(n, np.float32)
        out[units] = x
        dtype = {"F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16}[tensor.dtype]
        return out.astype(dtype).reshape(tensor.shape)


@settings(max_examples=150, deadline=None)
@given(encoded_tensors(GROUPED_DTYPES, layouts=["dense", "sparse"], values=["grouped"], affine=False))
def test_fast_and_reference_agree_with_numpy(tmp_path_factory, tensor):
    data = dcformat.save({"t": tensor})
    want = independent(tensor)
    assert_decoders_give(data, "t", want, tmp_path_factory.mktemp("grouped"))
    assert_bit_equal(expected_tensors(ContainerSpec({"t": tensor}))["t"], want, "dcformat.testing")


@settings(max_examples=30, deadline=None)
@given(containers(GROUPED_DTYPES + ["U8"], values=["raw", "grouped"], max_tensors=3, plain_arrays=False))
def test_containers_with_grouped_values(spec):
    data = dcformat.save(spec.tensors, spec.metadata, banks=spec.banks)
    want = expected_tensors(spec)
    assert_dicts_bit_equal(dcformat.load(data), want)
    assert_dicts_bit_equal(decode_file(data).tensors, want)
    grouped_values = [t.values for t in spec.tensors.values()
                      if isinstance(t, EncodedTensor) and isinstance(t.values, GroupedValues)]
    affine_used = any(isinstance(v.codebook, AffineCodebook) for v in grouped_values)
    minor, required = struct.unpack_from("<HI", data, 10)
    want_required = (C.FEATURE_GROUPED if grouped_values else 0) | (C.FEATURE_AFFINE if affine_used else 0)
    assert (minor, required) == (3 if affine_used else 1 if grouped_values else 0, want_required)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_explicit_rounding_matches_numpy_casts(bits):
    value = np.array([bits], np.uint32).view(np.float32)
    if np.isnan(value[0]):
        return
    with np.errstate(over="ignore"):
        f16 = int(value.astype(np.float16).view(np.uint16)[0])
    bf16 = int(value.astype(ml_dtypes.bfloat16).view(np.uint16)[0])
    assert round_float32_bits(bits, exponent_bits=5, fraction_bits=10) == f16
    assert round_float32_bits(bits, exponent_bits=8, fraction_bits=7) == bf16


def test_products_and_sums_are_not_fused():
    e = 1 + 2.0 ** -23
    t = EncodedTensor("F32", (1,), Dense(), grouped(1, [e], [0], [e], [0], [-(1 + 2.0 ** -22)], [0]))
    data = dcformat.save({"t": t})
    assert dcformat.load(data)["t"][0] == 0 and decode_file(data).tensors["t"][0] == 0


# --- what the writer refuses -----------------------------------------------------------


@pytest.mark.parametrize("values", [
    grouped(codebook=[1.0, np.nan]),
    grouped(codebook=[np.inf, 1.0]),
    grouped(scales=[0.0]),
    grouped(scales=[-0.0]),
    grouped(scales=[-1.0]),
    grouped(scales=[np.inf]),
    grouped(offsets=[np.nan], offset_codes=[0, 0]),
    grouped(group_size=0),
    grouped(scale_codes=[0, 1]),  # a scale code past the table
    grouped(scale_codes=[0]),  # one code for two groups
], ids=["codebook-nan", "codebook-inf", "scale-zero", "scale-negative-zero", "scale-negative", "scale-inf",
        "offset-nan", "group-size-0", "scale-code-range", "scale-codes-short"])
def test_writer_refuses_invalid_tables(values):
    with pytest.raises(InvalidSettings):
        dcformat.save({"t": EncodedTensor("F32", (4,), Dense(), values)})


def test_writer_refuses_offsets_with_sparse():
    values = grouped(codes=[0], scale_codes=[0, 0], offsets=[1.0], offset_codes=[0, 0])
    with pytest.raises(InvalidSettings, match="offsets"):
        dcformat.save({"t": EncodedTensor("F32", (4,), Sparse(2, np.array([2], np.uint16)), values)})


@pytest.mark.parametrize("dtype", ["F64", "I8", "U8", "BOOL", "F8_E4M3"])
def test_writer_refuses_other_dtypes(dtype):
    with pytest.raises(InvalidSettings, match="F32, F16 or BF16"):
        dcformat.save({"t": EncodedTensor(dtype, (4,), Dense(), grouped())})


def test_writer_refuses_a_grouped_bank():
    bank = EncodedTensor("F32", (2, 2), Dense(), grouped())
    with pytest.raises(InvalidSettings, match="bank"):
        dcformat.save({}, banks={"b": bank})


def test_a_file_without_grouped_values_is_a_v1_0_file():
    data = dcformat.save({"a": np.arange(3, dtype=np.float32)})
    assert struct.unpack_from("<HHI", data, 8) == (1, 0, 0)
