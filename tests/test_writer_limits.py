"""What the writer accepts, the reader loads: every limit a reader enforces, the writer
enforces first, and a caller's mistake is a UsageError (never a FormatError)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dcformat
from dcformat.container.writer import ContainerWriter
from dcformat.encodings.model import CodebookValues, Dense, EncodedTensor, RawValues, Sparse
from dcformat.errors import FormatError, InvalidSettings, NameInUse, UsageError
from dcformat.format import constants as C

#: Limits shrunk so that a test reaches them (reader and writer read them at call time).
SMALL = {"MAX_BANKS": 3, "MAX_TENSORS": 5, "MAX_NAME_BYTES": 12, "MAX_METADATA_VALUE_BYTES": 20,
         "DECODE_BUDGET_FLOOR": 4096}


@pytest.fixture
def small_limits(monkeypatch):
    for name, value in SMALL.items():
        monkeypatch.setattr(C, name, value)


# names with lone surrogates, empty ones, and ones around the byte limit
_texts = st.text(st.characters(blacklist_categories=()), max_size=14)
_names = st.one_of(st.sampled_from(["w", "b", "", "é", "e\u0301"]), _texts)
_dims = st.sampled_from([0, 1, 2, 3, 2 ** 24, 2 ** 47, 2 ** 49, 2 ** 63])


@st.composite
def _tensor(draw):
    kind = draw(st.sampled_from(["raw", "bool", "shape", "sparse", "codebook"]))
    if kind == "raw":
        return np.arange(draw(st.integers(0, 6)), dtype=np.float32)
    if kind == "bool":  # bytes other than 0 and 1 are not BOOL values
        return np.frombuffer(bytes(draw(st.lists(st.integers(0, 3), max_size=4))), dtype=np.bool_)
    if kind == "shape":  # a zero dimension keeps it empty whatever the others are
        shape = tuple(draw(st.lists(_dims, max_size=3))) + (0,)
        return EncodedTensor("F32", shape, Dense(), RawValues(np.zeros(0, np.float32)))
    if kind == "sparse":  # nearly empty and possibly huge: the decode budget
        units = draw(st.sampled_from([4, 1000, 1 << 20]))
        return EncodedTensor("F32", (units,), Sparse(4, np.array([3], np.uint16)), RawValues(np.ones(1, np.float32)))
    size = draw(st.integers(1, 4))
    codes = np.array(draw(st.lists(st.integers(0, size - 1), max_size=5)), dtype=np.uint16)
    return EncodedTensor("F32", (codes.size,), Dense(), CodebookValues(np.arange(size, dtype=np.float32), codes))


@st.composite
def _calls(draw):
    banks = draw(st.lists(st.tuples(_names, st.integers(1, 3)), max_size=5))
    tensors = draw(st.lists(st.tuples(_names, _tensor()), max_size=7))
    metadata = draw(st.dictionaries(_texts, _texts, max_size=3))
    return banks, tensors, metadata


def _write(banks, tensors, metadata) -> bytes:
    writer = ContainerWriter(metadata)
    for name, size in banks:
        writer.add_bank(name, np.zeros((size, 2), np.float32))
    for name, tensor in tensors:
        writer.add_tensor(name, tensor)
    return writer.to_bytes()


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])  # the limits stay put
@given(_calls())
def test_whatever_the_writer_accepts_the_reader_loads(small_limits, calls):
    try:
        data = _write(*calls)
    except UsageError:
        return  # refused as the caller's mistake: the only way a writer may refuse
    loaded = dcformat.load(data)  # never a FormatError or DecodeLimitExceeded
    banks, tensors, _ = calls
    assert list(loaded) == [name for name, _ in tensors]


def test_bank_and_tensor_counts_are_refused_before_the_reader_would(small_limits):
    writer = ContainerWriter()
    for i in range(SMALL["MAX_BANKS"]):
        writer.add_bank(f"b{i}", np.zeros((1, 1), np.float32))
    with pytest.raises(InvalidSettings, match="at most 3 banks"):
        writer.add_bank("one more", np.zeros((1, 1), np.float32))


def test_the_real_bank_limit():
    # 1,025 banks of shape (1, 1) used to be written, and then refused by the reader
    writer = ContainerWriter()
    for i in range(C.MAX_BANKS):
        writer.add_bank(f"b{i}", np.zeros((1, 1), np.float32))
    with pytest.raises(InvalidSettings):
        writer.add_bank("b1024", np.zeros((1, 1), np.float32))
    assert len(dcformat.load(writer.to_bytes())) == 0


@pytest.mark.parametrize("add", ["add_tensor", "add_bank"])
def test_a_duplicate_name_is_the_callers_mistake(add):
    writer = ContainerWriter()
    getattr(writer, add)("w", np.zeros((1, 1), np.float32))
    with pytest.raises(NameInUse) as caught:
        getattr(writer, add)("w", np.zeros((1, 1), np.float32))
    assert isinstance(caught.value, UsageError) and not isinstance(caught.value, FormatError)


def test_a_file_beyond_the_default_decode_budget_is_refused():
    huge = EncodedTensor("F32", (1 << 27,), Sparse(4, np.array([3], np.uint16)), RawValues(np.ones(1, np.float32)))
    with pytest.raises(InvalidSettings, match="decode"):
        dcformat.save({"mostly_empty": huge})


def test_lone_surrogates_are_refused_as_usage_errors():
    with pytest.raises(InvalidSettings, match="Unicode"):
        dcformat.save({"\ud800": np.zeros(1, np.float32)})
    with pytest.raises(InvalidSettings, match="Unicode"):
        dcformat.save({}, metadata={"k": "\udfff"})


def test_a_coded_stream_is_written_as_coded_and_not_encoded_again(monkeypatch):
    from dcformat.streams import HuffmanCodec, code_stream

    rng = np.random.default_rng(0)
    codes = code_stream(np.minimum(rng.geometric(0.3, 50_000) - 1, 15).astype(np.uint16), 16)
    gaps = code_stream(rng.integers(0, 4, codes.symbols.size).astype(np.uint16), 16, gap_stream=True)
    tensor = EncodedTensor("F32", (4 * codes.symbols.size,), Sparse.coded(4, gaps),
                           CodebookValues.coded(np.arange(16, dtype=np.float32), codes))
    plain = EncodedTensor("F32", tensor.shape, Sparse(4, gaps.symbols, gaps.codec),
                          CodebookValues(np.arange(16, dtype=np.float32), codes.symbols, codes.codec))
    expected = dcformat.save({"t": plain})
    encodes = []
    real = HuffmanCodec.encode
    monkeypatch.setattr(HuffmanCodec, "encode", lambda self, *a, **k: encodes.append(1) or real(self, *a, **k))
    assert dcformat.save({"t": tensor}) == expected and not encodes
    with pytest.raises(ValueError):  # the coded symbols cannot change under the payload
        codes.symbols[0] = 1
