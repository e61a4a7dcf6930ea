"""Atomic file output: nothing the user had is lost, no partial file is ever visible.

:func:`atomic_output` yields a file object on a temporary file beside the destination;
only when the ``with`` block finishes does the file move into place (fsync'd, with the
permissions a normal ``open`` would give). On any exception, KeyboardInterrupt
included, the temporary file is removed and the destination is untouched. An existing
destination is replaced only with ``overwrite=True``; without it, a file that appears
while we write is not clobbered either (the final step is ``link``, which fails if the
name exists).

Every ``OSError`` met on the way (a missing directory, a read-only or full disk) is
raised as the :class:`~dcformat.errors.StorageError` for writing the destination, and
names the destination, never the temporary file. A write that fails inside the block is
raised as such even when the caller (``torch.save``, say) turns it into another error.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

from .errors import DCFormatError, OutputExists, StorageError, storage_errors


@contextlib.contextmanager
def atomic_output(path, *, overwrite: bool = False):
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExists(str(path))
    with storage_errors(path, "write"):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
        with storage_errors(path, "write"):
            os.chmod(tmp, 0o666 & ~_umask())
            _publish(tmp, path, overwrite)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class _Target(io.FileIO):
    """The temporary file: a failed write raises (and remembers) the StorageError for ``path``."""

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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
