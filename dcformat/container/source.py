"""Where a container's bytes come from: one bounds-checked read, from memory or from a file.

:class:`~dcformat.container.file.ContainerFile` reads every byte it checks or decodes
through one :class:`ByteSource` method, ``read(start, length, field)``, which refuses a
range past the source's end with ``TruncatedError`` naming the field:

- :class:`MemorySource` serves views of a buffer in memory (bytes, say) with no copy.
- :class:`FileSource` reads each range from an open file with ``pread`` into fresh memory
  that the caller owns (or into the caller's buffer). Nothing is mapped, so a file that
  shrinks under the reader (a process truncates or rewrites it) cannot kill the process
  with ``SIGBUS``, as touching a mapped page past the new end would: the read comes back
  short, and is refused with :class:`~dcformat.errors.FileChanged`, a ``TruncatedError``.
  Reading costs no more than mapping did: a compressed file's segments are a fraction of
  what they decode to, and a raw segment is read straight into its tensor.

:func:`open_source` opens a path; one that cannot be read raises the
:class:`~dcformat.errors.StorageError` for its condition.
"""

from __future__ import annotations

import mmap
import os
import threading

import numpy as np

from ..errors import FileChanged, FileClosed, TruncatedError, storage_errors


class ByteSource:
    """The bytes of one container: ``size`` and a bounds-checked ``read``."""

    #: Bytes in the source (for a file: its size when it was opened).
    size: int = 0

    def read(self, start: int, length: int, field: str, into=None) -> memoryview:
        """Bytes ``[start, start + length)`` as a memoryview; TruncatedError past the end.

        ``into``, a writable buffer of ``length`` bytes, receives them where the source
        copies anyway (a file): the view returned is then ``into``'s memory.
        """
        raise NotImplementedError

    #: Whether reading copies the bytes (so that reading ``into`` a buffer saves a copy).
    copies = False
    #: Whether a view ``read`` returns may be handed out as a tensor's memory: it stays
    #: valid after :meth:`close` and is writable without changing the source.
    shares = False

    def close(self) -> None:
        """Release the file (if any); a read afterwards raises FileClosed."""

    def _check_range(self, start: int, length: int, field: str) -> None:
        if start + length > self.size:
            raise TruncatedError(field, length, max(0, self.size - start))


class MemorySource(ByteSource):
    """A buffer already in memory: reads are views of it, no copy."""

    def __init__(self, buf):
        self._view = memoryview(buf).cast("B") if not isinstance(buf, memoryview) or buf.format != "B" else buf
        self.size = len(self._view)
        self.closed = False

    def read(self, start: int, length: int, field: str, into=None) -> memoryview:
        if self.closed:
            raise FileClosed()
        self._check_range(start, length, field)
        return self._view[start:start + length]

    def close(self) -> None:
        self.closed = True


class FileSource(ByteSource):
    """An open file, each read a ``pread`` into memory of its own (see the module docstring).

    Reads may come from several threads at once: ``pread`` does not move a shared
    position, and releases the GIL while the kernel copies.
    """

    def __init__(self, file, path):
        self._file = file
        self._fd = file.fileno()
        self.path = str(path)
        with storage_errors(path, "read"):
            self.size = os.fstat(self._fd).st_size
        self._lock = threading.Lock()  # only where the OS has no pread

    @property
    def closed(self) -> bool:
        return self._file.closed

    copies = True

    def read(self, start: int, length: int, field: str, into=None) -> memoryview:
        if self._file.closed:
            raise FileClosed()
        self._check_range(start, length, field)
        view = memoryview(np.empty(length, np.uint8) if into is None else into).cast("B")
        if len(view) != length:
            raise ValueError(f"into holds {len(view)} bytes, not {length}")
        done = 0
        with storage_errors(self.path, "read"):
            while done < length:
                got = self._pread_into(view[done:], start + done)
                if got == 0:  # the file ends before the size it had when opened
                    raise FileChanged(self.path, field, length, done)
                done += got
        return view

    def _pread_into(self, view: memoryview, offset: int) -> int:
        if hasattr(os, "preadv"):
            return os.preadv(self._fd, [view], offset)
        if hasattr(os, "pread"):
            chunk = os.pread(self._fd, len(view), offset)
            view[:len(chunk)] = chunk
            return len(chunk)
        with self._lock:  # no positional read here: seek and read under a lock
            self._file.seek(offset)
            return self._file.readinto(view)

    def close(self) -> None:
        self._file.close()


class MappedSource(MemorySource):
    """A file mapped copy-on-write (``mmap.ACCESS_COPY``): reads are views of the mapping.

    A view stays valid after :meth:`close` (the mapping goes when the last view does), and
    writing to it changes this process's copy of the page, never the file. Only for files
    that nothing truncates while they are mapped (see the module docstring).
    """

    shares = True

    def __init__(self, file, path):
        self.path = str(path)
        with storage_errors(path, "read"):
            size = os.fstat(file.fileno()).st_size
            # an empty file cannot be mapped; it has no bytes to serve either
            self._map = mmap.mmap(file.fileno(), size, access=mmap.ACCESS_COPY) if size else None
        super().__init__(self._map if self._map is not None else b"")

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        self._view.release()
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # tensors still share its pages: unmapped when the last goes
                pass


def as_source(data) -> ByteSource:
    """``data`` itself if it is a ByteSource, else a MemorySource over it."""
    return data if isinstance(data, ByteSource) else MemorySource(data)


def open_source(path, *, mapped: bool = False) -> ByteSource:
    """The file at ``path``, read with ``pread`` (or mapped: :class:`MappedSource`); a
    StorageError if it cannot be opened."""
    with storage_errors(path, "read"):
        file = open(path, "rb", buffering=0)
    if mapped:
        with file:  # the mapping outlives the descriptor
            return MappedSource(file, path)
    try:
        return FileSource(file, path)
    except BaseException:
        file.close()
        raise
