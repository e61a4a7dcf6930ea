"""The Huffman codec's fused decoding (``decode_gather``, ``decode_scatter`` over
kernels/fused.py) against the checked defaults of the codec interface (decode the
symbols, then gather or scatter), and the one thread policy.

Valid files: the fused path must give the bit-identical tensor, for dense and sparse
CODEBOOK records, many chunks, raw chunks, several dtypes, into ``out=`` or not, on one
thread or several. Corrupt files: the error (class and message) must be the one the
checked path raises, and nothing may be written outside ``out``.
"""

from __future__ import annotations

import numpy as np
import pytest

import threading

import dcformat
import dcformat.streams.huffman as H
from dcformat.container.file import ContainerFile
from dcformat.encodings.model import CodebookValues, Dense, EncodedTensor, Sparse
from dcformat.errors import DCFormatError
from dcformat.streams import HuffmanCodec
from dcformat.streams.base import StreamCodec

FUSED = ("decode_gather", "decode_scatter")


def _slow():
    """The Huffman codec with the interface's checked defaults instead of its fused kernels."""
    class Off:
        def __enter__(self):
            self.keep = {m: HuffmanCodec.__dict__[m] for m in FUSED}
            for m in FUSED:
                setattr(HuffmanCodec, m, getattr(StreamCodec, m))

        def __exit__(self, *exc):
            for m, f in self.keep.items():
                setattr(HuffmanCodec, m, f)
    return Off()


def _sparse_tensor(rng, shape, density, gap_bits, code_bits, dtype="F32", chunk=64, skew=True):
    size = int(np.prod(shape))
    mask = rng.random(size) < density
    pos = np.flatnonzero(mask)
    # bridge long gaps with filler entries (code 0 decodes to zero)
    limit = (1 << gap_bits) - 1
    entries, gaps, prev = [], [], -1
    for p in pos:
        g = p - prev - 1
        while g > limit:
            entries.append(0)
            gaps.append(limit)
            g -= limit + 1
        entries.append(1 + rng.integers(0, (1 << code_bits) - 1))
        gaps.append(g)
        prev = p
    if not entries:
        entries, gaps = [1], [0]
    codes = np.array(entries, dtype=np.uint16)
    if not skew:
        codes = rng.integers(0, 1 << code_bits, codes.size).astype(np.uint16)
    np_dtype = {"F32": np.float32, "F16": np.float16, "I8": np.int8}[dtype]
    codebook = np.concatenate([[0], rng.standard_normal((1 << code_bits) - 1) * 3]).astype(np_dtype)
    codec = HuffmanCodec(chunk_symbols=chunk)
    return EncodedTensor(dtype, shape, Sparse(gap_bits, np.array(gaps, dtype=np.uint16), codec),
                         CodebookValues(codebook, codes, codec))


def _dense_tensor(rng, shape, code_bits, dtype="F32", chunk=64, uniform=False):
    size = int(np.prod(shape))
    if uniform:  # incompressible: chunks are stored raw
        codes = rng.integers(0, 1 << code_bits, size).astype(np.uint16)
    else:
        codes = np.minimum(rng.geometric(0.3, size) - 1, (1 << code_bits) - 1).astype(np.uint16)
    np_dtype = {"F32": np.float32, "F16": np.float16, "I8": np.int8}[dtype]
    codebook = (rng.standard_normal(1 << code_bits) * 3).astype(np_dtype)
    return EncodedTensor(dtype, shape, Dense(), CodebookValues(codebook, codes, HuffmanCodec(chunk_symbols=chunk)))


def _tensors(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "sparse": _sparse_tensor(rng, (97, 131), 0.1, 5, 5),
        "sparse_dense": _sparse_tensor(rng, (50, 50), 0.9, 2, 3, chunk=7),
        "sparse_f16": _sparse_tensor(rng, (300,), 0.3, 4, 4, dtype="F16", chunk=16),
        "sparse_i8_raw": _sparse_tensor(rng, (40, 40), 0.5, 8, 8, dtype="I8", chunk=33, skew=False),
        "dense": _dense_tensor(rng, (123, 77), 8),
        "dense_raw": _dense_tensor(rng, (64, 65), 8, uniform=True, chunk=100),
        "dense_f16": _dense_tensor(rng, (1000,), 4, dtype="F16", chunk=9),
        "dense_one_chunk": _dense_tensor(rng, (5,), 2, chunk=1 << 16),
    }


def _load_both(data):
    fast = dcformat.load(data)
    with _slow():
        slow = dcformat.load(data)
    return fast, slow


def test_fast_equals_checked_path():
    data = dcformat.save(_tensors())
    fast, slow = _load_both(data)
    assert fast.keys() == slow.keys()
    for k in fast:
        assert fast[k].dtype == slow[k].dtype and fast[k].shape == slow[k].shape
        assert fast[k].tobytes() == slow[k].tobytes(), k


def _counting(monkeypatch, calls, active=None):
    """Wrap the fused kernels: count calls, and (with ``active``) the threads inside at once."""
    lock = threading.Lock()
    for kernel in ("decode_values", "sparse_rebuild"):
        real = getattr(H.fused, kernel)

        def spy(*args, _real=real, _kernel=kernel):
            calls.append(_kernel)
            if active is not None:
                with lock:
                    active["now"] += 1
                    active["most"] = max(active["most"], active["now"])
            try:
                return _real(*args)
            finally:
                if active is not None:
                    with lock:
                        active["now"] -= 1
        monkeypatch.setattr(H.fused, kernel, spy)


def test_fast_path_is_taken(monkeypatch):
    calls = []
    _counting(monkeypatch, calls)
    dcformat.load(dcformat.save(_tensors()))
    tensors = _tensors()
    assert calls.count("decode_values") == sum(isinstance(t.layout, Dense) for t in tensors.values())
    assert calls.count("sparse_rebuild") == sum(isinstance(t.layout, Sparse) for t in tensors.values())


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_threads_split_chunks(monkeypatch, threads):
    monkeypatch.setattr(H, "PARALLEL_MIN_SYMBOLS", 1)
    split = []
    groups = H.ChunkedStream.groups
    monkeypatch.setattr(H.ChunkedStream, "groups", lambda self, n: split.append((n, self.count)) or groups(self, n))
    data = dcformat.save(_tensors(seed=3))
    fast = dcformat.load(data, threads=threads)
    assert split and all(n == min(threads, -(-chunks // 4)) for n, chunks in split)
    assert max(n for n, _ in split) == threads
    with _slow():
        slow = dcformat.load(data)
    for k in fast:
        assert fast[k].tobytes() == slow[k].tobytes(), k


def _big_tensors(count=6, size=1 << 18):
    rng = np.random.default_rng(7)
    return {f"t{i}": _dense_tensor(rng, (size,), 6, chunk=1 << 12) for i in range(count)}


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_threads_is_the_most_threads_decoding_whatever_the_call(monkeypatch, threads):
    # a file's tensors side by side, each split in chunk groups: one team of `threads`
    monkeypatch.setattr(H, "PARALLEL_MIN_SYMBOLS", 1)
    data = dcformat.save(_big_tensors())
    calls, active = [], {"now": 0, "most": 0}
    _counting(monkeypatch, calls, active)
    ContainerFile(data).decode_all(threads=threads)
    assert calls and active["most"] <= threads


def test_the_environment_is_read_at_every_call(monkeypatch):
    monkeypatch.setattr(H, "PARALLEL_MIN_SYMBOLS", 1)
    data = dcformat.save(_big_tensors())
    dcformat.load(data)  # the pool exists now
    from dcformat.threads import ENV

    monkeypatch.setenv(ENV, "1")
    calls, active = [], {"now": 0, "most": 0}
    _counting(monkeypatch, calls, active)
    dcformat.load(data)
    assert calls and active["most"] == 1


@pytest.mark.parametrize("value, ok", [("3", True), ("0", False), ("two", False), ("", True)])
def test_thread_count_from_the_environment(monkeypatch, value, ok):
    from dcformat.errors import UsageError
    from dcformat.threads import ENV, default_threads

    monkeypatch.setenv(ENV, value)
    if ok:
        assert default_threads() == 3 if value else default_threads() >= 1
    else:
        with pytest.raises(UsageError, match=ENV):
            default_threads()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts_are_usage_errors(bad):
    from dcformat.errors import UsageError

    with pytest.raises(UsageError, match="threads"):
        dcformat.load(dcformat.save({"x": np.zeros(3, np.float32)}), threads=bad)


def test_out_is_written_in_place():
    data = dcformat.save(_tensors(seed=4))
    ref = dcformat.load(data)
    c = ContainerFile(data)
    for k, v in ref.items():
        out = np.full_like(v, 7)
        got = c.decode(k, out)
        assert got is out and out.tobytes() == v.tobytes()


def _error(fn):
    try:
        fn()
    except DCFormatError as exc:
        return type(exc), str(exc)
    return None


@pytest.mark.parametrize("seed", range(6))
def test_corrupt_payloads_raise_as_the_checked_path(seed):
    rng = np.random.default_rng(100 + seed)
    data = bytearray(dcformat.save(_tensors(seed=seed)))
    header = ContainerFile(bytes(data)).header
    # payload bytes only (not the header): flip bytes inside the segments
    lo = header.data_offset
    for trial in range(40):
        bad = bytearray(data)
        for _ in range(1 + trial % 3):
            i = int(rng.integers(lo, len(bad)))
            bad[i] ^= int(rng.integers(1, 256))
        bad = bytes(bad)
        if _error(lambda: ContainerFile(bad, verify=False)) is not None:
            continue  # a padding byte: refused before any record is decoded
        for name in ContainerFile(bad, verify=False).keys():
            ref_shape = ContainerFile(bad, verify=False).record(name).shape
            fast_out = np.zeros(ref_shape, dtype=np.float32 if "f16" not in name and "i8" not in name
                                else (np.float16 if "f16" in name else np.int8))
            guard = np.zeros(fast_out.size + 64, dtype=fast_out.dtype)
            out = guard[32:32 + fast_out.size].reshape(ref_shape)
            fast = _error(lambda: ContainerFile(bad, verify=False).decode(name, out))
            with _slow():
                slow = _error(lambda: ContainerFile(bad, verify=False).decode(name))
            assert fast == slow, (seed, trial, name)
            assert not guard[:32].any() and not guard[-32:].any()


def _sequential(data, **kw):
    c = ContainerFile(data, **kw)
    c.decode_banks()
    return {n: c.decode(n) for n in c.keys()}


@pytest.mark.parametrize("seed", range(4))
def test_threaded_load_raises_the_first_error_in_order(seed):
    rng = np.random.default_rng(200 + seed)
    data = dcformat.save(_tensors(seed=seed))
    header = ContainerFile(data).header
    for trial in range(10):
        bad = bytearray(data)
        picks = rng.choice(len(header.tensors), size=2, replace=False)
        for t in picks:
            ref = next(iter(header.tensors[int(t)].segments.values()))
            i = header.data_offset + ref.offset + int(rng.integers(0, ref.length))
            bad[i] ^= 0x5A
        bad = bytes(bad)
        for verify in (True, False):
            got = _error(lambda: ContainerFile(bad, verify=verify).decode_all(threads=3))
            want = _error(lambda: _sequential(bad, verify=verify))
            assert got == want, (seed, trial, verify)


@pytest.mark.parametrize("budget", [0, 1000, 40000, 80000, 10 ** 9])
def test_threaded_load_charges_the_budget_in_order(budget):
    data = dcformat.save(_tensors())
    got = _error(lambda: ContainerFile(data, decode_budget=budget).decode_all(threads=2))
    want = _error(lambda: _sequential(data, decode_budget=budget))
    assert got == want
    if want is None:
        a = ContainerFile(data, decode_budget=budget).decode_all(threads=2)
        b = _sequential(data, decode_budget=budget)
        assert list(a) == list(b) and all(a[k].tobytes() == b[k].tobytes() for k in a)


@pytest.mark.parametrize("threads", [1, 2])
def test_load_shares_one_aligned_allocation(threads):
    tensors = {**_tensors(), "raw_f64": np.arange(7.0), "raw_bool": np.array([True, False]),
               "empty": np.zeros((0, 3), np.float32), "scalar": np.float32(2.5)}
    data = dcformat.save(tensors)
    got = ContainerFile(data).decode_all(threads=threads)
    want = _sequential(data)
    assert list(got) == list(want)
    for name, array in got.items():
        assert array.dtype == want[name].dtype and array.shape == want[name].shape
        assert array.tobytes() == want[name].tobytes(), name
        assert array.flags.c_contiguous and array.flags.writeable
        assert array.size == 0 or array.ctypes.data % 64 == 0
    arrays = [a for a in got.values() if a.size]
    assert len({id(a.base) for a in arrays}) == 1  # numpy points every view at the owner
    # writing one tensor leaves the others alone
    before = {k: v.copy() for k, v in got.items()}
    got["sparse"][...] = 7
    assert all((got[k] == before[k]).all() for k in got if k != "sparse")


def test_load_file_maps_and_closes(tmp_path):
    path = tmp_path / "t.dcf"
    dcformat.save_file(_tensors(), path)
    a = dcformat.load_file(path)
    b = dcformat.load(path.read_bytes())
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)
