"""Loading with ``mmap=True``: raw records are copy-on-write views of the mapped file.

What a loader author compares with ``safetensors``: no copy of a tensor stored as it is,
after its checksum; every other record decoded as without the mapping; the file never
written; the tensors valid after the file is closed and even unlinked.
"""

from __future__ import annotations

import mmap

import numpy as np
import pytest

import dcformat
from dcformat.errors import ChecksumMismatch, FormatError

from .common import assert_bit_equal


def _mixed(path):
    """A file of raw records beside compressed ones (codebook and PLANES)."""
    rng = np.random.default_rng(0)
    raw = {"raw32": rng.standard_normal((64, 33)).astype(np.float32),
           "raw8": rng.integers(-128, 127, 1000, dtype=np.int8),
           "flag": np.array([True, False, True]),
           "empty": np.zeros((0, 4), np.float32)}
    dcformat.save_file(raw, path)
    from dcformat.compress import CompressionSettings, compress_tensors

    compressed, _ = compress_tensors({"coded": rng.standard_normal((128, 64)).astype(np.float32)},
                                     CompressionSettings.preset("default"))
    coded_path = path.with_name("coded.dcf")
    dcformat.save_file(compressed, coded_path)
    planes_path = path.with_name("planes.dcf")
    dcformat.save_file({"planes": rng.standard_normal(5000).astype(np.float32)}, planes_path, compress="lossless")
    return raw, coded_path, planes_path


def _in_mapping(array: np.ndarray) -> bool:
    base = array
    while getattr(base, "base", None) is not None:
        base = base.base
        if isinstance(base, memoryview):
            base = base.obj
        if isinstance(base, mmap.mmap):
            return True
    return False


def test_raw_records_are_views_of_the_mapping(tmp_path):
    path = tmp_path / "m.dcf"
    raw, _, _ = _mixed(path)
    before = path.read_bytes()
    mapped = dcformat.load_file(path, mmap=True)
    read = dcformat.load_file(path)
    assert list(mapped) == list(raw)
    for name, value in raw.items():
        assert_bit_equal(mapped[name], value)
        assert_bit_equal(read[name], value)
        assert not _in_mapping(read[name])
    for name in ("raw32", "raw8", "flag"):
        assert _in_mapping(mapped[name]), name
        assert mapped[name].flags.writeable
    mapped["raw32"][0, 0] = 12345.0  # copy-on-write: this process's page, not the file
    assert path.read_bytes() == before
    assert dcformat.load_file(path, mmap=True)["raw32"][0, 0] == raw["raw32"][0, 0]


def test_compressed_records_decode_as_without_the_mapping(tmp_path):
    _, coded, planes = _mixed(tmp_path / "m.dcf")
    for path in (coded, planes):
        mapped, read = dcformat.load_file(path, mmap=True), dcformat.load_file(path)
        assert list(mapped) == list(read)
        for name in read:
            assert_bit_equal(mapped[name], read[name])
            assert not _in_mapping(mapped[name])  # decoded into memory of its own


def test_tensors_outlive_the_file(tmp_path):
    path = tmp_path / "m.dcf"
    raw, _, _ = _mixed(path)
    with dcformat.safe_open(path, mmap=True) as f:
        kept = f.get_tensor("raw32")
    path.unlink()
    assert_bit_equal(kept, raw["raw32"])


def test_a_flipped_raw_byte_is_refused_before_it_is_handed_out(tmp_path):
    path = tmp_path / "m.dcf"
    raw, _, _ = _mixed(path)
    data = bytearray(path.read_bytes())
    at = bytes(data).find(raw["raw32"].tobytes()[:64])
    assert at > 0
    data[at + 5] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch):
        dcformat.load_file(path, mmap=True)
    with dcformat.safe_open(path, mmap=True) as f:
        assert_bit_equal(f.get_tensor("raw8"), raw["raw8"])  # the others still load
        with pytest.raises(ChecksumMismatch):
            f.get_tensor("raw32")


@pytest.mark.parametrize("size", [0, 5, 20, 40])
def test_a_short_file_is_refused_as_without_the_mapping(tmp_path, size):
    path = tmp_path / "short.dcf"
    dcformat.save_file({"x": np.arange(8, dtype=np.float32)}, path)
    path.write_bytes(path.read_bytes()[:size])
    with pytest.raises(FormatError) as read:
        dcformat.load_file(path)
    with pytest.raises(FormatError) as mapped:
        dcformat.load_file(path, mmap=True)
    assert type(mapped.value) is type(read.value)
    assert str(mapped.value) == str(read.value)


def test_out_targets_are_copied_into(tmp_path):
    path = tmp_path / "m.dcf"
    raw, _, _ = _mixed(path)
    target = np.empty_like(raw["raw32"])
    with dcformat.safe_open(path, mmap=True) as f:
        got = f.get_tensor("raw32", out=target)
    assert got is target
    assert_bit_equal(target, raw["raw32"])


def test_torch_tensors_share_the_mapped_pages(tmp_path):
    torch = pytest.importorskip("torch")
    import dcformat.torch as dt

    path = tmp_path / "t.dcf"
    state = {"w": torch.randn(300, 7), "h": torch.randn(50).to(torch.bfloat16)}
    dt.save_file(state, path)
    before = path.read_bytes()
    mapped = dt.load_file(path, mmap=True)
    for name, value in state.items():
        assert torch.equal(mapped[name], value)
        # the tensor's bytes are the file's: its memory holds the record at the file's offset
        assert bytes(mapped[name].view(torch.uint8).reshape(-1).numpy()) in before
    mapped["w"].add_(1.0)  # writable, and the file stays as it was
    assert path.read_bytes() == before


def test_a_directory_maps_each_shard(tmp_path):
    from dataclasses import replace

    from safetensors.numpy import save_file

    from dcformat.compress import CompressionSettings
    from dcformat.convert.directory import compress_directory

    src = tmp_path / "model"
    src.mkdir()
    (src / "config.json").write_text('{"model_type": "demo"}')
    rng = np.random.default_rng(1)
    weights = {"a.weight": rng.standard_normal((48, 32)).astype(np.float32),
               "b.weight": rng.standard_normal((16, 8)).astype(np.float32)}
    save_file(weights, str(src / "model.safetensors"))
    out = tmp_path / "model-dcf"
    compress_directory(src, out, replace(CompressionSettings.preset("lossless"), exact="raw"), workers=1)
    with dcformat.safe_open(out, mmap=True) as f:
        got = {name: f.get_tensor(name) for name in f.keys()}
    assert sorted(got) == sorted(weights)
    for name, value in weights.items():
        assert_bit_equal(got[name], value)
        assert _in_mapping(got[name]), name
