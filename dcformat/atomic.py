"""Atomic file output: nothing the user had is lost, no partial file is ever visible.

:func:`atomic_output` yields a file object on a temporary file beside the destination;
only when the ``with`` block finishes does the file move into place (fsync'd, with the
permissions a normal ``open`` would give). On any exception, KeyboardInterrupt
included, the temporary file is removed and the destination is untouched. An existing
destination is replaced only with ``overwrite=True``; without it, a file that appears
while we write is not clobbered either (the final step is ``link``, which fails if the
name exists).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .errors import OutputExists


@contextlib.contextmanager
def atomic_output(path, *, overwrite: bool = False):
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExists(str(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        _publish(tmp, path, overwrite)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
