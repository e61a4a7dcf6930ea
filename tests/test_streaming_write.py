"""Streaming conversion: StreamingWriter's bytes, atomicity, one tensor at a time, bounded memory."""

from __future__ import annotations

import errno
import os
import tempfile
import tracemalloc
import weakref
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from safetensors.numpy import save_file as save_safetensors

import dcformat
from dcformat.compress import CompressionSettings, compress_tensors
from dcformat.compress.pipeline import iter_compress
from dcformat.format.constants import DEFAULT_ALIGNMENT
from dcformat.container.writer import ContainerWriter, StreamingWriter
from dcformat.convert import Checkpoint, compress_checkpoint, compress_into, read_checkpoint
from dcformat.errors import ConversionError, OutputExists, UsageError
from dcformat.testing import containers

from .test_convert_net2016 import SQZ_NET, SQZ_PROTO, needs_squeezenet

PRESETS = ("default", "rd", "paper")


def stream(spec, path: Path) -> bytes:
    with StreamingWriter(path, spec.metadata, alignment=spec.alignment or DEFAULT_ALIGNMENT) as writer:
        for name, bank in spec.banks.items():
            writer.add_bank(name, bank)
        for name, tensor in spec.tensors.items():
            writer.add_tensor(name, tensor)
    return path.read_bytes()


def weights(count: int = 6, rows: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """A small fc stack: float32 weights (compressed by every preset) and biases (kept exact)."""
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(count):
        out[f"layer{i}.weight"] = (rng.standard_normal((rows, 1024)) * 0.05).astype(np.float32)
        out[f"layer{i}.bias"] = (rng.standard_normal(rows) * 0.01).astype(np.float32)
    return out


def in_memory_route(tensors, settings, metadata=None) -> bytes:
    """What converting did before streaming: every tensor, then every encoding, then the file."""
    encoded, _ = compress_tensors(tensors, settings, metadata=metadata)  # a budget counts the metadata
    writer = ContainerWriter(metadata)
    for name, value in encoded.items():
        writer.add_tensor(name, value)
    return writer.to_bytes()


class Recording(Mapping):
    """Makes each tensor when indexed and notes how many it made before are still alive then."""

    def __init__(self, tensors: dict[str, np.ndarray], fail_at: int | None = None):
        self._tensors = tensors
        self.fail_at = fail_at
        self.accesses: list[str] = []
        self.alive_at_access: list[int] = []
        self._made: list[weakref.ref] = []

    def __getitem__(self, name: str) -> np.ndarray:
        if len(self.accesses) == self.fail_at:
            raise KeyboardInterrupt
        self.alive_at_access.append(sum(ref() is not None for ref in self._made))
        self.accesses.append(name)
        array = self._tensors[name].copy()
        self._made.append(weakref.ref(array))
        return array

    def __iter__(self):
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)


# --- the bytes ------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(containers(max_tensors=4))
def test_streamed_file_is_the_in_memory_file(spec):
    with tempfile.TemporaryDirectory() as tmp:
        assert stream(spec, Path(tmp) / "s.dcf") == spec.save()


@pytest.mark.parametrize("kernel_copy", ["unavailable", "stops after 100 bytes"])
def test_user_space_copy_gives_the_same_bytes(tmp_path, monkeypatch, kernel_copy):
    tensors = {f"t{i}": np.arange(1000 * (i + 1), dtype=np.float32) for i in range(4)}
    real, calls = os.copy_file_range, []

    def copy_file_range(src, dst, count, offset_src=None, offset_dst=None):
        calls.append(count)
        if kernel_copy == "unavailable" or len(calls) > 1:
            raise OSError(errno.EXDEV, "cross-device")
        return real(src, dst, min(count, 100), offset_src)

    monkeypatch.setattr(os, "copy_file_range", copy_file_range)
    path = tmp_path / "x.dcf"
    dcformat.save_file(tensors, path)
    assert calls and path.read_bytes() == dcformat.save(tensors)


def test_save_file_streams_and_writes_what_save_returns(tmp_path):
    tensors = weights(count=3)
    encoded, _ = compress_tensors(tensors, CompressionSettings.preset("paper"))
    dcformat.save_file(encoded, tmp_path / "p.dcf", {"k": "v"})
    assert (tmp_path / "p.dcf").read_bytes() == dcformat.save(encoded, {"k": "v"})


# --- atomicity ------------------------------------------------------------------------


def test_exception_mid_stream_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError, match="mid-stream"):
        with StreamingWriter(tmp_path / "x.dcf") as writer:
            writer.add_tensor("a", np.ones(100_000, np.float32))
            raise RuntimeError("mid-stream")
    assert list(tmp_path.iterdir()) == []


def test_interrupted_lazy_save_leaves_no_file(tmp_path):
    source = Recording(weights(count=3), fail_at=2)
    with pytest.raises(KeyboardInterrupt):
        dcformat.save_file(source, tmp_path / "x.dcf")
    assert source.accesses == ["layer0.weight", "layer0.bias"]
    assert list(tmp_path.iterdir()) == []


def test_interrupted_conversion_leaves_no_file(tmp_path, monkeypatch):
    from dcformat.convert.safetensors_io import SafetensorsSource

    src = tmp_path / "m.safetensors"
    save_safetensors(weights(count=3), str(src))
    real, seen = SafetensorsSource.__getitem__, []

    def interrupted(self, name):
        seen.append(name)
        if len(seen) == 4:
            raise KeyboardInterrupt
        return real(self, name)

    monkeypatch.setattr(SafetensorsSource, "__getitem__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compress_checkpoint(src, tmp_path / "m.dcf", CompressionSettings.preset("paper"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_existing_output_is_refused_before_any_tensor_is_read(tmp_path):
    path = tmp_path / "x.dcf"
    path.write_bytes(b"precious")
    source = Recording(weights(count=2))
    with pytest.raises(OutputExists):
        dcformat.save_file(source, path)
    assert source.accesses == [] and path.read_bytes() == b"precious"
    dcformat.save_file(source, path, overwrite=True)
    assert list(dcformat.load_file(path)) == list(weights(count=2))


def test_a_failed_payload_write_breaks_the_writer(tmp_path, monkeypatch):
    writer = StreamingWriter(tmp_path / "x.dcf")
    writer.add_tensor("a", np.ones(10, np.float32))

    def full(data):
        raise OSError(errno.ENOSPC, "no space left")

    monkeypatch.setattr(writer, "_sink", full)
    with pytest.raises(OSError, match="no space"):
        writer.add_tensor("b", np.ones(10, np.float32))
    with pytest.raises(UsageError, match="broken"):
        writer.add_tensor("c", np.ones(10, np.float32))
    with pytest.raises(UsageError, match="broken"):
        writer.finish()
    assert list(tmp_path.iterdir()) == []


def test_streaming_writer_finishes_once_and_close_discards(tmp_path):
    writer = StreamingWriter(tmp_path / "x.dcf")
    writer.add_tensor("t", np.zeros(1, np.float32))
    writer.finish()
    for call in (writer.finish, lambda: writer.add_tensor("u", np.zeros(1, np.float32))):
        with pytest.raises(UsageError, match="finished"):
            call()
    assert list(dcformat.load_file(tmp_path / "x.dcf")) == ["t"]
    unfinished = StreamingWriter(tmp_path / "y.dcf")
    unfinished.add_tensor("t", np.zeros(1000, np.float32))
    unfinished.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.dcf"]


def test_record_error_leaves_the_writer_usable(tmp_path):
    with StreamingWriter(tmp_path / "x.dcf") as writer:
        with pytest.raises(UsageError):
            writer.add_tensor("bad", np.zeros(2, np.complex64))
        writer.add_tensor("good", np.arange(3, dtype=np.int16))
    assert (tmp_path / "x.dcf").read_bytes() == dcformat.save({"good": np.arange(3, dtype=np.int16)})


# --- one tensor at a time -------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS)
def test_conversion_reads_one_tensor_at_a_time(tmp_path, preset):
    tensors = weights()
    source = Recording(tensors)
    settings_ = CompressionSettings.preset(preset)
    with StreamingWriter(tmp_path / "x.dcf", {"m": "1"}) as writer:
        reports = compress_into(writer, Checkpoint(source), settings_)
    passes = 2 if settings_.bits_per_param is not None else 1  # rd plans its budget first
    assert source.accesses == list(tensors) * passes
    # when a tensor is read, none read before it is still alive: not in the pipeline, not in the writer
    assert source.alive_at_access == [0] * len(source.accesses)
    assert [r.name for r in reports] == list(tensors)
    assert (tmp_path / "x.dcf").read_bytes() == in_memory_route(tensors, settings_, {"m": "1"})


def test_iter_compress_yields_what_compress_tensors_returns():
    tensors = weights(count=2)
    out, reports = compress_tensors(tensors, CompressionSettings.preset("paper"))
    streamed = list(iter_compress(tensors, CompressionSettings.preset("paper")))
    assert [name for name, _, _ in streamed] == list(out)
    assert [report for _, _, report in streamed] == reports
    assert dcformat.save({n: v for n, v, _ in streamed}) == dcformat.save(out)


def test_iter_compress_checks_its_settings_when_called():
    with pytest.raises(UsageError, match="CompressionSettings"):
        iter_compress(weights(count=1), settings="paper")


# --- lazy sources ---------------------------------------------------------------------


def test_safetensors_source_reads_one_tensor_per_access(tmp_path):
    from dcformat.convert.safetensors_io import SafetensorsSource

    tensors = weights(count=2)
    save_safetensors(tensors, str(tmp_path / "m.safetensors"), metadata={"k": "v"})
    source = SafetensorsSource(tmp_path / "m.safetensors")
    assert list(source) == sorted(tensors) and source.metadata == {"k": "v"} and len(source) == 4
    array = source["layer1.weight"]
    assert array.flags.writeable  # a copy of its own, not a view of the (closed) mapping
    np.testing.assert_array_equal(array, tensors["layer1.weight"])
    with pytest.raises(KeyError):
        source["missing"]


def test_torch_source_maps_the_file_afresh_to_bound_resident_pages(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    import dcformat.convert.torch_io as torch_io

    state = {name: torch.from_numpy(array) for name, array in weights(count=3).items()}
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "m.pt")
    monkeypatch.setattr(torch_io, "REMAP_BYTES", 300_000)  # more than one weight, less than two
    source = torch_io.TorchSource(tmp_path / "m.pt")
    loads = []
    real_load = source._load
    monkeypatch.setattr(source, "_load", lambda: loads.append(1) or real_load())
    got = {name: source[name] for name in source}
    assert len(loads) == 2 and source.skipped == []  # the epoch is kept in the metadata now
    assert list(got) == [f"state_dict.{name}" for name in state]
    for name, tensor in state.items():
        np.testing.assert_array_equal(got[f"state_dict.{name}"], tensor.numpy())
    torch.save({"other": torch.zeros(70_000)}, tmp_path / "m.pt")
    with pytest.raises(ConversionError, match="changed while it was read"):
        [source[name] for name in source]


def test_converted_file_matches_the_in_memory_route_for_every_source(tmp_path):
    torch = pytest.importorskip("torch")
    tensors = weights(count=3)
    settings_ = CompressionSettings.preset("paper")
    save_safetensors(tensors, str(tmp_path / "m.safetensors"), metadata={"k": "v"})
    torch.save({k: torch.from_numpy(v) for k, v in tensors.items()}, tmp_path / "zip.pt")
    torch.save({k: torch.from_numpy(v) for k, v in tensors.items()}, tmp_path / "legacy.pt",
               _use_new_zipfile_serialization=False)
    dcformat.save_file(tensors, tmp_path / "exact.dcf", {"k": "v"})
    for src in ("m.safetensors", "zip.pt", "legacy.pt", "exact.dcf"):
        checkpoint = read_checkpoint(tmp_path / src)
        out = tmp_path / f"{src}.out.dcf"
        reports, skipped = compress_checkpoint(tmp_path / src, out, settings_)
        assert out.read_bytes() == in_memory_route(checkpoint.tensors, settings_, checkpoint.metadata), src
        assert [r.name for r in reports] == list(checkpoint.tensors) and skipped == []


@needs_squeezenet
def test_net2016_weights_pass_through_and_biases_are_compressed_in_order(tmp_path):
    from dcformat.encodings.model import EncodedTensor

    settings_ = CompressionSettings.preset("paper")
    reports, _ = compress_checkpoint(SQZ_NET, tmp_path / "s.dcf", settings_, prototxt=SQZ_PROTO)
    checkpoint = read_checkpoint(SQZ_NET, prototxt=SQZ_PROTO)
    arrays = {k: v for k, v in checkpoint.tensors.items() if not isinstance(v, EncodedTensor)}
    assert [r.name for r in reports] == list(arrays) and len(arrays) < len(checkpoint.tensors)
    encoded, _ = compress_tensors(arrays, settings_)
    expected = dcformat.save({k: encoded.get(k, v) for k, v in checkpoint.tensors.items()}, checkpoint.metadata)
    assert (tmp_path / "s.dcf").read_bytes() == expected


# --- bounded memory -------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["default", "paper"])
def test_peak_allocation_is_a_few_times_the_largest_tensor(tmp_path, preset):
    """Streaming holds one tensor and its working arrays; the in-memory route holds the model.

    16 weights of 512 KiB (8 MiB in all). Measured: the streamed conversion peaks at
    about 6.2x the largest tensor with the default preset (k-means sorts a copy and
    takes two float64 prefix sums) and 4.4x with paper's; the in-memory route at 29x
    and 21x. The bound, 8x, separates the two with room on both sides.
    """
    tensors = weights(count=16, rows=128)
    largest = max(a.nbytes for a in tensors.values())
    src = tmp_path / "m.safetensors"
    save_safetensors(tensors, str(src))
    del tensors
    settings_ = CompressionSettings.preset(preset)
    compress_checkpoint(src, tmp_path / "warm.dcf", settings_)  # kernels load outside the measurement

    def peak(convert) -> int:
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            convert()
            return tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()

    streamed = peak(lambda: compress_checkpoint(src, tmp_path / "new.dcf", settings_))
    in_memory = peak(lambda: (tmp_path / "old.dcf").write_bytes(
        in_memory_route(read_checkpoint(src).tensors, settings_)))
    assert streamed <= 8 * largest < in_memory, (streamed / largest, in_memory / largest)
    assert (tmp_path / "new.dcf").read_bytes() == (tmp_path / "old.dcf").read_bytes()
