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
