"""Atomic file output: nothing the user had is lost, no partial file is ever visible.

:func:`atomic_output` yields a file object on a new file in the destination's directory;
only when the ``with`` block finishes does the file take its name (fsync'd, with the
permissions a normal ``open`` would give). On any exception, KeyboardInterrupt
included, the new file is removed and the destination is untouched. An existing
destination is replaced only with ``overwrite=True``; without it, a file that appears
while we write is not clobbered either (the final step is ``link``, which fails if the
name exists).

Where the system has ``O_TMPFILE`` (Linux, on most local file systems), the new file has
no name until it is linked into place, so a process killed at any moment (``SIGKILL``,
the OOM killer, a power cut before the data reached the disk) leaves nothing behind:
the kernel frees a file that no name and no process refers to. ``overwrite=True``
links it to a temporary name beside the destination and renames that over the
destination, atomically; a kill between those two system calls leaves the temporary
file, a complete copy of the output, behind. Elsewhere (macOS, Windows, file systems
without ``O_TMPFILE``) the new file is a named temporary file, ``.NAME.XXXXXXXX.tmp``,
from its creation on, and a process killed while it writes leaves it behind: such files
are never read by dcformat, and may be deleted whenever no dcformat process is writing
NAME.

Every ``OSError`` met on the way (a missing directory, a read-only or full disk) is
raised as the :class:`~dcformat.errors.StorageError` for writing the destination, and
names the destination, never the temporary file. A write that fails inside the block is
raised as such even when the caller (``torch.save``, say) turns it into another error.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import secrets
import tempfile
from pathlib import Path

from .errors import DCFormatError, OutputExists, StorageError, storage_errors

#: The errno values with which a system or file system says it has no O_TMPFILE, or
#: cannot link an unnamed file through /proc/self/fd.
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT, errno.EXDEV, errno.EPERM}

#: Cleared once linking an unnamed file failed here: later outputs are named from the start.
_unnamed_works = True


@contextlib.contextmanager
def atomic_output(path, *, overwrite: bool = False):
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExists(str(path))
    with storage_errors(path, "write"):
        fd, tmp = _new_file(path)
    try:
        raw = _Target(fd, path)
        with io.BufferedWriter(raw) as f:
            try:
                yield f
            except Exception as exc:
                if raw.failure is not None and not isinstance(exc, DCFormatError):
                    raise raw.failure from exc  # the write that failed, not what the caller made of it
                raise
            with storage_errors(path, "write"):
                f.flush()
                os.fsync(f.fileno())
                if tmp is None:
                    tmp = _publish_unnamed(f.fileno(), path, overwrite)
                if tmp is not None:
                    os.chmod(tmp, 0o666 & ~_umask())
                    _publish(tmp, path, overwrite)
    finally:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)


def _new_file(path: Path) -> tuple[int, str | None]:
    """An open descriptor on a new file in ``path``'s directory, and its name (None: unnamed)."""
    if _unnamed_works and hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd"):
        try:  # the mode, less the umask, is the file's once it is linked
            return os.open(path.parent, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o666), None
        except OSError as exc:
            if exc.errno not in _NO_TMPFILE or not path.parent.is_dir():
                raise
    return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)


def _publish_unnamed(fd: int, path: Path, overwrite: bool) -> str | None:
    """Give the unnamed file ``fd`` the name ``path``; where it cannot be linked, copy it
    to a named temporary file and return that file's name, for :func:`_publish`."""
    global _unnamed_works
    name = path.name if not overwrite else f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        _link(fd, path.parent, name)  # atomic and refuses an existing name
    except FileExistsError:
        if not overwrite:
            raise OutputExists(str(path)) from None
        raise
    except OSError as exc:
        if exc.errno not in _NO_TMPFILE:
            raise
        _unnamed_works = False
        return _named_copy(fd, path)
    if overwrite:
        tmp = os.path.join(path.parent, name)
        try:
            os.replace(tmp, path)  # a kill before this leaves tmp, a complete copy, behind
        except BaseException:
            os.unlink(tmp)
            raise
    return None


def _named_copy(fd: int, path: Path) -> str:
    """A named temporary file beside ``path`` with the bytes of ``fd``, fsync'd."""
    out, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        offset, size = 0, os.fstat(fd).st_size
        while offset < size:
            chunk = os.pread(fd, min(1 << 20, size - offset), offset)
            if not chunk:
                raise OSError(errno.EIO, "the unnamed output file ended early")
            os.write(out, chunk)  # a short write on a regular file raises instead
            offset += len(chunk)
        os.fsync(out)
    except BaseException:
        os.close(out)
        os.unlink(tmp)
        raise
    os.close(out)
    return tmp


def _link(fd: int, directory: Path, name: str) -> None:
    """``linkat`` the open file ``fd`` to ``directory/name``, following /proc/self/fd/N to it
    (os.link's plain ``link`` would link the /proc entry itself: EXDEV)."""
    dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC)
    try:
        os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dir_fd, follow_symlinks=True)
    finally:
        os.close(dir_fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _Target(io.FileIO):
    """The new file: a failed write raises (and remembers) the StorageError for ``path``."""

    def __init__(self, fd: int, path: Path):
        super().__init__(fd, "wb")
        self.path = path
        self.failure: StorageError | None = None

    def write(self, data) -> int:
        try:
            return super().write(data)
        except OSError as exc:
            self.failure = StorageError.from_os_error(exc, self.path, "write")
            raise self.failure from exc


def _publish(tmp: str, path: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # atomic and refuses an existing name
    except FileExistsError:
        raise OutputExists(str(path)) from None
    except OSError:  # file systems without hard links
        if path.exists():
            raise OutputExists(str(path)) from None
        os.replace(tmp, path)
