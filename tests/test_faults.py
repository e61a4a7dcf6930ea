"""Conditions of the machine and of the path (FORMAT.md is silent on them; dcformat/errors.py).

A missing input, a directory, a file we may not read, a missing or read-only output
directory, a full disk: each is a :class:`StorageError` that is also the built-in
``OSError`` subclass for the same condition, names the path, and leaves no partial
output. Disk full is a real tmpfs where this process may mount one (root), and a real
file size limit (``RLIMIT_FSIZE``) everywhere.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import dcformat
from dcformat.container.writer import ContainerWriter, StreamingWriter
from dcformat.convert.safetensors_io import SafetensorsSource, write_safetensors
from dcformat.errors import (
    AccessDenied,
    DCFormatError,
    DirectoryNotFound,
    InputNotFound,
    IsADirectory,
    OutputExists,
    ReadOnlyFileSystem,
    StorageError,
    StorageFull,
    WriteFailed,
)

TENSORS = {"w": np.arange(1 << 20, dtype=np.float32), "b": np.ones(3, np.float16)}


def _torch_source(path):
    pytest.importorskip("torch")
    from dcformat.convert.torch_io import TorchSource

    return TorchSource(path)


def _write_torch(tensors, path, **kw):
    pytest.importorskip("torch")
    from dcformat.convert.torch_io import write_torch

    write_torch(tensors, path, **kw)


def _open_and_read(path):
    with dcformat.safe_open(path) as f:
        return f.keys()


READERS = {
    "load_file": dcformat.load_file,
    "load_metadata": dcformat.load_metadata,
    "safe_open": _open_and_read,
    "SafetensorsSource": SafetensorsSource,
    "TorchSource": _torch_source,
}


def _streaming(tensors, path, **kw):
    with StreamingWriter(path, **kw) as writer:
        for name, value in tensors.items():
            writer.add_tensor(name, value)


def _in_memory(tensors, path, **kw):
    writer = ContainerWriter()
    for name, value in tensors.items():
        writer.add_tensor(name, value)
    writer.write(path, **kw)


WRITERS = {
    "save_file": lambda tensors, path, **kw: dcformat.save_file(tensors, path, **kw),
    "StreamingWriter": _streaming,
    "ContainerWriter.write": _in_memory,
    "write_safetensors": write_safetensors,
    "write_torch": _write_torch,
}


def _check(error: StorageError, path, code: int) -> None:
    assert isinstance(error, DCFormatError) and isinstance(error, OSError)
    assert error.errno == code and error.filename == str(path)
    assert str(path) in str(error) and ".tmp" not in str(error) and "Errno" not in str(error)


# --- reading -------------------------------------------------------------------------


@pytest.mark.parametrize("read", READERS.values(), ids=READERS)
def test_a_missing_input_is_input_not_found(tmp_path, read):
    path = tmp_path / "missing.dcf"
    with pytest.raises(InputNotFound) as caught:
        read(path)
    assert isinstance(caught.value, FileNotFoundError)
    _check(caught.value, path, errno.ENOENT)


@pytest.mark.parametrize("read", READERS.values(), ids=READERS)
def test_a_directory_as_input_is_is_a_directory(tmp_path, read):
    with pytest.raises(IsADirectory) as caught:
        read(tmp_path)
    assert isinstance(caught.value, IsADirectoryError)
    _check(caught.value, tmp_path, errno.EISDIR)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
@pytest.mark.parametrize("read", READERS.values(), ids=READERS)
def test_an_unreadable_input_is_access_denied(tmp_path, read):
    path = tmp_path / "secret.dcf"
    dcformat.save_file({"x": np.zeros(1, np.float32)}, path)
    path.chmod(0)
    with pytest.raises(AccessDenied) as caught:
        read(path)
    assert isinstance(caught.value, PermissionError)
    _check(caught.value, path, errno.EACCES)


def test_storage_errors_keep_their_class_through_pickling():
    import pickle

    error = StorageError.from_os_error(OSError(errno.ENOSPC, "No space left on device"), "/x/out.dcf", "write")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is StorageFull and str(again) == str(error) and again.errno == errno.ENOSPC


# --- writing -------------------------------------------------------------------------


def test_output_exists_names_the_keyword_that_replaces(tmp_path):
    (tmp_path / "x.dcf").write_bytes(b"precious")
    with pytest.raises(OutputExists, match=r"overwrite=True \(CLI: --force\)"):
        dcformat.save_file(TENSORS, tmp_path / "x.dcf")


@pytest.mark.parametrize("write", WRITERS.values(), ids=WRITERS)
def test_writing_into_a_missing_directory_names_the_target(tmp_path, write):
    path = tmp_path / "no" / "such" / "out.dcf"
    with pytest.raises(DirectoryNotFound) as caught:
        write(TENSORS, path)
    assert isinstance(caught.value, FileNotFoundError)
    _check(caught.value, path, errno.ENOENT)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("write", WRITERS.values(), ids=WRITERS)
def test_a_directory_as_the_target_is_is_a_directory(tmp_path, write):
    target = tmp_path / "out.dcf"
    target.mkdir()
    with pytest.raises(IsADirectory) as caught:
        write(TENSORS, target, overwrite=True)
    _check(caught.value, target, errno.EISDIR)
    assert [p.name for p in tmp_path.iterdir()] == ["out.dcf"] and list(target.iterdir()) == []


def _mount(args: list[str], where) -> bool:
    if sys.platform != "linux" or os.geteuid() != 0:
        return False
    return subprocess.run(["mount", *args, str(where)], capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (a disk that fills up), where this process may mount one."""
    where = tmp_path / "disk"
    where.mkdir()
    if not _mount(["-t", "tmpfs", "-o", "size=2m", "tmpfs"], where):
        pytest.skip("cannot mount a tmpfs here (not root, or no mount rights)")
    yield where
    subprocess.run(["umount", str(where)], check=True)


@pytest.fixture
def readonly_dir(tmp_path):
    """A directory this process cannot write to: a read-only bind mount as root, else mode 0o555."""
    where = tmp_path / "ro"
    where.mkdir()
    if os.geteuid() != 0:
        where.chmod(0o555)
        yield where, errno.EACCES
        where.chmod(0o755)
        return
    if not (_mount(["--bind", str(where)], where) and _mount(["-o", "remount,bind,ro"], where)):
        pytest.skip("root, and cannot make a read-only bind mount here")
    yield where, errno.EROFS
    subprocess.run(["umount", str(where)], check=True)


@pytest.mark.parametrize("write", WRITERS.values(), ids=WRITERS)
def test_a_full_disk_is_storage_full_and_leaves_nothing(small_disk, write):
    big = {"w": np.ones(1 << 20, np.float32)}  # 4 MiB on a 2 MiB disk
    path = small_disk / "out.dcf"
    with pytest.raises(StorageFull) as caught:
        write(big, path)
    _check(caught.value, path, errno.ENOSPC)
    assert list(small_disk.iterdir()) == []


@pytest.mark.parametrize("write", WRITERS.values(), ids=WRITERS)
def test_a_read_only_target_is_refused_and_leaves_nothing(readonly_dir, write):
    where, code = readonly_dir
    path = where / "out.dcf"
    with pytest.raises(StorageError) as caught:
        write(TENSORS, path)
    assert isinstance(caught.value, ReadOnlyFileSystem if code == errno.EROFS else AccessDenied)
    _check(caught.value, path, code)
    assert list(where.iterdir()) == []


_LIMITED = textwrap.dedent("""
    import os, resource, signal, sys, numpy as np
    sys.path.insert(0, {root!r})
    from dcformat.errors import WriteFailed
    from tests.test_faults import WRITERS
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
    for name, write in WRITERS.items():
        path = os.path.join({where!r}, name, "out.dcf")
        os.mkdir(os.path.dirname(path))
        try:
            write({{"w": np.ones(1 << 20, np.float32)}}, path)
        except WriteFailed as exc:
            print(name, exc.errno, exc.filename == path, os.listdir(os.path.dirname(path)), exc)
    """)


def test_a_file_size_limit_is_write_failed_and_leaves_nothing(tmp_path):
    # RLIMIT_FSIZE: a real write error from the kernel (EFBIG), without root, one
    # subprocess for every writer
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = _LIMITED.format(root=root, where=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=root)
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines()}
    for name in WRITERS:
        assert lines.get(name, "").startswith(f"{name} {errno.EFBIG} True [] "), done.stdout + done.stderr


def test_write_failed_is_the_parent_of_storage_full():
    assert issubclass(StorageFull, WriteFailed) and issubclass(ReadOnlyFileSystem, WriteFailed)


# --- reading a file that changes under the reader -----------------------------------------

_READER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    import dcformat
    from dcformat.errors import DCFormatError
    with dcformat.safe_open({path!r}{options}) as f:
        print("open", flush=True)
        sys.stdin.readline()  # the file is truncated now
        try:
            for name in f.keys():
                f.get_tensor(name)
            print("read everything")
        except DCFormatError as exc:
            print(type(exc).__name__, [c.__name__ for c in type(exc).__mro__], exc)
    """)


def _segment_start(path, name: str) -> int:
    from dcformat.container.reader import parse_header

    header = parse_header(path.read_bytes())
    record = next(r for r in header.tensors if r.name == name)
    return header.data_offset + record.segments["values"].offset


@pytest.mark.parametrize("options", ["", ", threads=1", ", verify=False"])
def test_a_file_truncated_under_an_open_reader_is_a_typed_error(tmp_path, options):
    # The reader runs in a subprocess, so that a SIGBUS (a truncated mapping) shows as a
    # signal exit rather than killing the test run; this process truncates the file.
    path = tmp_path / "shrinks.dcf"
    dcformat.save_file({f"t{i}": np.full(1 << 18, i, np.float32) for i in range(4)}, path)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = _READER.format(root=root, path=str(path), options=options)
    reader = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=root)
    try:
        assert reader.stdout.readline() == "open\n"
        os.truncate(path, _segment_start(path, "t2"))  # t0 and t1 still whole
        out, err = reader.communicate("go\n", timeout=120)
    finally:
        reader.kill()
        reader.wait()
    assert reader.returncode == 0, f"reader exited with {reader.returncode}: {err}"
    assert "TruncatedError" in out and "'t2'" in out, out + err


def test_load_file_of_a_file_truncated_while_it_is_read_is_file_changed(tmp_path, monkeypatch):
    from dcformat.container.source import FileSource
    from dcformat.errors import FileChanged, TruncatedError

    path = tmp_path / "shrinks.dcf"
    dcformat.save_file({f"t{i}": np.full(1000, i, np.float32) for i in range(3)}, path)
    real_read, cut = FileSource.read, _segment_start(path, "t1")

    def read_then_truncate(self, start, length, field, into=None):
        view = real_read(self, start, length, field, into)
        if "segment of 't0'" in field:
            os.truncate(path, cut)  # as another process would, while t0 is decoded
        return view

    monkeypatch.setattr(FileSource, "read", read_then_truncate)
    with pytest.raises(FileChanged, match="changed while it was read") as caught:
        dcformat.load_file(path, threads=1)
    assert isinstance(caught.value, TruncatedError) and caught.value.path == str(path)
    assert "'t1'" in str(caught.value) and caught.value.available == 0


def test_each_segment_is_read_from_the_file_once(tmp_path, monkeypatch):
    from dcformat.compress import CompressionSettings, compress_tensors
    from dcformat.container.reader import iter_segments, parse_header
    from dcformat.container.source import FileSource

    rng = np.random.default_rng(0)
    tensors = {"fc.weight": rng.standard_normal((64, 256)).astype(np.float32), "fc.bias": np.ones(64, np.float32)}
    encoded, _ = compress_tensors(tensors, CompressionSettings.preset("paper"))
    path = tmp_path / "m.dcf"
    dcformat.save_file(encoded, path)
    header = parse_header(path.read_bytes())
    segments = sorted((header.data_offset + ref.offset, ref.length) for _, _, ref in iter_segments(header))
    reads = []
    real_read = FileSource.read
    monkeypatch.setattr(FileSource, "read", lambda self, start, length, field, into=None:
                        reads.append((start, length, field)) or real_read(self, start, length, field, into))
    loaded = dcformat.load_file(path)
    assert sorted((s, n) for s, n, field in reads if "segment" in field) == segments
    assert list(loaded) == list(encoded)
    assert sum(length for _, length, _ in reads) < 2 * path.stat().st_size  # the padding checks read little


# --- killed while writing ------------------------------------------------------------------

_WRITER = textwrap.dedent("""
    import itertools, os, sys
    import numpy as np
    sys.path.insert(0, {root!r})
    from tests.test_faults import KILLED, WRITERS
    where = sys.argv[1]
    print("ready", flush=True)
    written = []
    for i in itertools.count():  # file after file until killed, the two last kept
        name = ("save_file", "ContainerWriter.write", "write_safetensors")[i % 3]
        written.append(os.path.join(where, f"out{{i}}" + (".safetensors" if "safetensors" in name else ".dcf")))
        WRITERS[name](KILLED, written[-1])
        if len(written) > 2:
            os.unlink(written.pop(0))
    """)

#: What the killed writer writes, again and again: 8 MiB a file.
KILLED = {"w": np.arange(2 << 20, dtype=np.float32), "b": np.ones(7, np.float16)}


def _complete(path) -> bool:
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file as load_safetensors

        loaded = load_safetensors(str(path))
    else:
        loaded = dcformat.load_file(path)
    return loaded.keys() == KILLED.keys() and all(np.array_equal(loaded[k], v) for k, v in KILLED.items())


@pytest.mark.parametrize("seed", range(4))
def test_a_writer_killed_at_any_moment_leaves_complete_files_and_nothing_else(tmp_path, seed):
    # SIGKILL at a random moment of a run of writes: every file there is complete, and
    # there is no temporary file beside them (the output is an unnamed file, O_TMPFILE,
    # linked into place once written). The assertion holds whenever the kill lands.
    import random
    import signal

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    writer = subprocess.Popen([sys.executable, "-c", _WRITER.format(root=root), str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root)
    try:
        assert writer.stdout.readline() == "ready\n", writer.stderr.read()
        import time

        time.sleep(random.Random(seed).uniform(0.05, 0.6))
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert writer.returncode == -signal.SIGKILL, writer.stderr.read()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert all(n.startswith("out") and not n.endswith(".tmp") for n in names), names
    assert all(_complete(tmp_path / n) for n in names), names


@pytest.mark.parametrize("overwrite", [False, True])
def test_where_an_unnamed_file_cannot_be_linked_the_output_is_copied_to_a_named_one(tmp_path, monkeypatch, overwrite):
    import dcformat.atomic as atomic

    def cannot_link(fd, directory, name):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(atomic, "_link", cannot_link)
    monkeypatch.setattr(atomic, "_unnamed_works", True)
    path = tmp_path / "out.dcf"
    if overwrite:
        path.write_bytes(b"old")
    dcformat.save_file(KILLED, path, overwrite=overwrite)
    assert _complete(path) and [p.name for p in tmp_path.iterdir()] == ["out.dcf"]
    assert atomic._unnamed_works is False  # later outputs are named from the start


@pytest.mark.parametrize("unnamed", [True, False])
@pytest.mark.parametrize("overwrite", [False, True])
def test_an_interrupted_write_leaves_the_target_as_it_was(tmp_path, monkeypatch, unnamed, overwrite):
    import dcformat.atomic as atomic

    monkeypatch.setattr(atomic, "_unnamed_works", unnamed)
    path = tmp_path / "out.dcf"
    if overwrite:
        path.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_output(path, overwrite=overwrite) as f:
            f.write(b"partial")
            raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == (["out.dcf"] if overwrite else [])
    assert not overwrite or path.read_bytes() == b"old"
    with atomic.atomic_output(path, overwrite=True) as f:
        f.write(b"new")
    assert path.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["out.dcf"]
    assert path.stat().st_mode & 0o777 == 0o666 & ~atomic._umask()
