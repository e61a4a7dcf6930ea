"""One exception hierarchy for everything dcformat raises on purpose.

Every rule in ``spec/FORMAT.md`` names the class a reader raises when a file breaks
it. All of them derive from :class:`DCFormatError`, so a loader can catch that one
class and know the file was refused rather than crashed on. Facts are kept as
attributes; messages are short and name the field or tensor.

``FormatError`` and its subclasses mean "this file is not a valid dcformat file".
``UsageError`` and its subclasses mean "the call was wrong" (bad arguments, bad
settings); they also derive from :class:`ValueError` so ordinary Python code that
expects ``ValueError`` keeps working.

``StorageError`` and its subclasses mean "a path could not be read or written" (it does
not exist, is a directory, is not ours to write, the disk is full): conditions of the
machine, not of the file's bytes nor of the call. Each is also the built-in ``OSError``
subclass Python raises for the same condition (``FileNotFoundError``,
``IsADirectoryError``, ``PermissionError``, or ``OSError`` itself) and keeps its
``errno``, ``strerror`` and ``filename``, so ``except DCFormatError`` and ``except
OSError`` both catch it. :func:`storage_errors` turns the ``OSError`` of a block into one.
"""

from __future__ import annotations

import contextlib
import errno as _errno


class DCFormatError(Exception):
    """Base class of every error dcformat raises on purpose."""


# --- the file is not valid -------------------------------------------------------


class FormatError(DCFormatError, ValueError):
    """The bytes are not a valid dcformat container."""


class BadMagic(FormatError):
    """The file does not start with the dcformat magic."""

    def __init__(self, found: bytes):
        self.found = bytes(found)
        super().__init__(f"not a dcformat file: magic {self.found!r}")


class UnsupportedVersion(FormatError):
    """The file's major version is not one this reader implements."""

    def __init__(self, found: tuple[int, int], supported: int):
        self.found = found
        self.supported = supported
        super().__init__(
            f"file is format version {found[0]}.{found[1]}, this reader supports major "
            f"version {supported}; upgrade dcformat to read it"
        )


class UnsupportedFeature(FormatError):
    """The file sets a required feature bit this reader does not know."""

    def __init__(self, bits: int):
        self.bits = bits
        super().__init__(f"file requires unknown features 0x{bits:08x}; upgrade dcformat")


class TruncatedError(FormatError):
    """A read ran past the end of the data that holds it."""

    def __init__(self, field: str, needed: int, available: int):
        self.field = field
        self.needed = needed
        self.available = available
        super().__init__(f"truncated while reading {field}: needed {needed} bytes, {available} left")


class FileChanged(TruncatedError):
    """The file got shorter while it was read: another process truncated or rewrote it.

    It held every byte its header names when it was opened; ``path`` is the file.
    """

    def __init__(self, path: str, field: str, needed: int, available: int):
        super().__init__(field, needed, available)
        self.path = path
        self.args = (f"{path} changed while it was read: {field} needs {needed} bytes, the file now "
                     f"holds {available} of them",)


class LimitExceeded(FormatError):
    """A count or size is beyond what the spec or the reader's limits allow."""

    def __init__(self, field: str, value: int, limit: int):
        self.field = field
        self.value = value
        self.limit = limit
        super().__init__(f"{field} is {value}, limit is {limit}")


class InvalidHeader(FormatError):
    """A header field holds a value the spec does not allow."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"invalid {field}: {reason}")


class UnknownDType(InvalidHeader):
    """A dtype code that this version does not define."""

    def __init__(self, code: int, tensor: str = ""):
        self.code = code
        self.tensor = tensor
        super().__init__("dtype", f"unknown dtype code {code}" + (f" in tensor {tensor!r}" if tensor else ""))


class UnknownEncoding(InvalidHeader):
    """A layout, value kind or stream codec code that this version does not define."""

    def __init__(self, field: str, code: int, tensor: str = ""):
        self.code = code
        self.tensor = tensor
        super().__init__(field, f"unknown code {code}" + (f" in tensor {tensor!r}" if tensor else ""))


class DuplicateName(InvalidHeader):
    """Two tensors, banks or metadata keys share a name."""

    def __init__(self, kind: str, name: str):
        self.name = name
        super().__init__(kind, f"duplicate name {name!r}")


class InvalidLayout(FormatError):
    """Payload segments are misaligned, overlap, leave holes, or miss the file end."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"invalid payload layout: {reason}")


class NonZeroPadding(FormatError):
    """Padding bytes or bits that must be zero are not."""

    def __init__(self, where: str):
        self.where = where
        super().__init__(f"non-zero padding in {where}")


class ChecksumMismatch(FormatError):
    """A stored CRC-32 does not match the bytes it covers."""

    def __init__(self, section: str, stored: int, computed: int):
        self.section = section
        self.stored = stored
        self.computed = computed
        super().__init__(f"checksum mismatch in {section}: stored 0x{stored:08x}, computed 0x{computed:08x}")


class InvalidHuffmanTable(FormatError):
    """A code-length table that is not a prefix code, or that no chunk can use."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"invalid Huffman table: {reason}")


class CorruptStream(FormatError):
    """An integer stream whose bits do not decode to exactly the declared symbols."""

    def __init__(self, stream: str, reason: str):
        self.stream = stream
        self.reason = reason
        super().__init__(f"corrupt stream {stream}: {reason}")


class GapOverrun(FormatError):
    """A sparse gap stream places an entry past the end of its tensor."""

    def __init__(self, tensor: str, position: int, size: int):
        self.tensor = tensor
        self.position = position
        self.size = size
        super().__init__(f"gap stream of {tensor!r} reaches position {position}, tensor has {size} units")


class SymbolOutOfRange(FormatError):
    """A decoded symbol is not below its stream's alphabet size.

    The parent of the container's range errors: no 1.0 rule raises it itself (a gap
    stream's alphabet is every Gap_Bits-bit value), but a stream codec called directly
    with an alphabet that is not a power of two does.
    """

    def __init__(self, stream: str, symbol: int, alphabet_size: int):
        self.stream = stream
        self.symbol = symbol
        self.alphabet_size = alphabet_size
        super().__init__(f"{stream}: symbol {symbol} is outside the alphabet of size {alphabet_size}")


class CodeOutOfRange(SymbolOutOfRange):
    """A codebook code is not below the codebook size."""


class SelectorOutOfRange(SymbolOutOfRange):
    """A bank selector is not below the bank size."""


class InvalidValue(FormatError):
    """Stored values that the dtype does not allow (a BOOL byte other than 0 or 1)."""

    def __init__(self, tensor: str, reason: str):
        self.tensor = tensor
        self.reason = reason
        super().__init__(f"invalid values in {tensor!r}: {reason}")


class DecodeLimitExceeded(LimitExceeded):
    """Decoding would allocate more than the reader's configured budget."""


# --- the call was wrong ----------------------------------------------------------


class UsageError(DCFormatError, ValueError):
    """An argument or setting is not acceptable."""


class UnsupportedDType(UsageError):
    """An array dtype that the format cannot store."""

    def __init__(self, dtype: object, name: str = ""):
        self.dtype = dtype
        self.name = name
        super().__init__(f"cannot store dtype {dtype}" + (f" (tensor {name!r})" if name else ""))


class InvalidSettings(UsageError):
    """Compression or encoding settings that cannot be applied."""


class UnknownCodecError(UsageError):
    """A stream codec id that no registered codec has."""

    def __init__(self, codec_id: str):
        self.codec_id = codec_id
        super().__init__(f"no stream codec registered with id {codec_id!r}")


class TensorNotFound(UsageError, KeyError):
    """``get_tensor`` asked for a name that the file does not hold."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"no tensor named {name!r} in the file")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class NameInUse(UsageError):
    """A writer was given a tensor, bank or metadata name it already holds."""

    def __init__(self, kind: str, name: str):
        self.kind = kind
        self.name = name
        super().__init__(f"a {kind} named {name!r} was already added")


class OutputExists(UsageError, FileExistsError):
    """The output path exists and overwriting was not asked for."""

    def __init__(self, path: str):
        self.path = path
        super().__init__(f"{path} exists; pass overwrite=True (CLI: --force) to replace it")

    def __str__(self) -> str:
        return self.args[0]


class ConversionError(UsageError):
    """An input checkpoint that a converter cannot read."""


class FileClosed(UsageError):
    """A method of an opened file (``safe_open``) was called after ``close()``."""

    def __init__(self, what: str = "file"):
        super().__init__(f"the {what} is closed; open it again to read it")


# --- the machine or the path -----------------------------------------------------


class StorageError(DCFormatError, OSError):
    """A path could not be read or written, for a reason of the machine or of the path.

    ``errno``, ``strerror`` and ``filename`` are those of the ``OSError`` it stands for;
    ``action`` is ``"read"`` or ``"write"``. The message names the path.
    """

    #: What the message says after the path, unless the condition has no class of its own.
    reason = ""

    def __init__(self, filename, errno: int | None = None, strerror: str | None = None, action: str = "read"):
        OSError.__init__(self, errno, strerror or self.reason or "input/output error", str(filename))
        self.action = action
        self.message = f"cannot {action} {filename}: {self.reason or strerror or 'input/output error'}"

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):
        return type(self), (self.filename, self.errno, self.strerror, self.action)

    @staticmethod
    def from_os_error(exc: OSError, path, action: str) -> "StorageError":
        """The StorageError for ``exc``, an OSError met reading or writing ``path``."""
        code = exc.errno
        cls = _BY_ERRNO.get(code, ReadFailed if action == "read" else WriteFailed)
        if cls is InputNotFound and action == "write":
            cls = DirectoryNotFound
        return cls(path, code, exc.strerror, action)


class InputNotFound(StorageError, FileNotFoundError):
    """Nothing exists at the path to be read."""

    reason = "no such file"


class DirectoryNotFound(StorageError, FileNotFoundError):
    """The directory a file is to be written into does not exist."""

    reason = "its directory does not exist"


class IsADirectory(StorageError, IsADirectoryError):
    """The path names a directory, where a file was expected."""

    reason = "it is a directory, not a file"


class AccessDenied(StorageError, PermissionError):
    """The path may not be read, or written, by this process."""

    reason = "permission denied"


class ReadFailed(StorageError):
    """Reading failed for another reason of the machine (an I/O error, say)."""


class WriteFailed(StorageError):
    """Writing failed for another reason of the machine; no partial output is left."""


class StorageFull(WriteFailed):
    """No space is left on the device, or in the user's quota."""

    reason = "no space left on the device"


class ReadOnlyFileSystem(WriteFailed):
    """The path is on a file system mounted read-only."""

    reason = "the file system is read-only"


_BY_ERRNO = {
    _errno.ENOENT: InputNotFound,
    _errno.EISDIR: IsADirectory,
    _errno.EACCES: AccessDenied,
    _errno.EPERM: AccessDenied,
    _errno.ENOSPC: StorageFull,
    _errno.EDQUOT: StorageFull,
    _errno.EROFS: ReadOnlyFileSystem,
}


@contextlib.contextmanager
def storage_errors(path, action: str):
    """Raise an ``OSError`` of the block as the :class:`StorageError` for reading or
    writing (``action``) ``path``; dcformat's own errors pass through unchanged."""
    try:
        yield
    except DCFormatError:
        raise
    except OSError as exc:
        raise StorageError.from_os_error(exc, path, action) from exc
