"""Which codec a writer gives a stream, and the stream coded once with it.

:func:`code_stream` decides (the one constant that decides it lives here) and keeps the
winner's payload, so a builder that measures a stream's size hands the writer bytes it
need not encode again. :func:`shortest_code_limit` trades a Huffman stream for one with
shorter codes (faster to decode) when that costs no byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from .base import StreamCodec
from .huffman import HuffmanCodec
from .packed import PackedCodec, as_symbols, check_alphabet

#: Streams up to this many symbols are encoded both ways and the smaller payload wins:
#: below it, Huffman's framing (table, chunk entries) can cost more than coding saves.
#: Longer streams keep Huffman, whose per-chunk raw fallback bounds the loss to that framing.
SMALL_STREAM_SYMBOLS = 1 << 14


@dataclass(frozen=True, eq=False)
class CodedStream:
    """A symbol stream with the payload its codec wrote for it.

    ``symbols`` is a read-only uint16 array of the stream's own (no caller can change it
    under the payload); ``payload`` is ``codec.encode(symbols, alphabet_size,
    gap_stream=gap_stream)``.
    """

    symbols: np.ndarray
    alphabet_size: int
    gap_stream: bool
    codec: StreamCodec
    payload: bytes

    @property
    def nbytes(self) -> int:
        """Bytes of the payload: what the stream costs in the file."""
        return len(self.payload)

    def fits(self, symbols: np.ndarray, alphabet_size: int, gap_stream: bool) -> bool:
        """Whether this payload is the one a writer would encode for ``symbols``."""
        return symbols is self.symbols and alphabet_size == self.alphabet_size and gap_stream == self.gap_stream


def code_stream(symbols, alphabet_size: int, *, codec: StreamCodec | None = None,
                codecs: Sequence[StreamCodec] | None = None, huffman: bool = True,
                gap_stream: bool = False) -> CodedStream:
    """``symbols`` coded once: by ``codec`` if given; else by each of ``codecs``, the
    smallest payload kept (ties: the first); else by the smaller of packed and Huffman
    for a short stream, Huffman for a long one, packed when Huffman is off.

    Examples
    --------
    >>> import numpy as np
    >>> code_stream(np.array([3, 1, 4], np.uint16), 8).codec
    PackedCodec()
    >>> coded = code_stream(np.zeros(100_000, np.uint16), 256)
    >>> coded.codec, coded.nbytes < 100_000 // 8 + 200  # a bit a symbol, and the framing
    (HuffmanCodec(chunk_symbols=65536, max_code_length=11, chunk_multiple=4), True)
    >>> code_stream(np.array([3, 1, 4], np.uint16), 8, codecs=[HuffmanCodec(), PackedCodec()]).nbytes
    2
    """
    alphabet_size = check_alphabet(alphabet_size)
    own = np.array(as_symbols(symbols, alphabet_size), dtype=np.uint16, copy=True)
    own.flags.writeable = False
    coded = [(c.encode(own, alphabet_size, gap_stream=gap_stream), c)
             for c in _candidates(own.size, codec, codecs, huffman)]
    payload, chosen = min(coded, key=lambda pc: len(pc[0]))  # ties: the first
    return CodedStream(own, alphabet_size, gap_stream, chosen, payload)


def _candidates(size: int, codec, codecs, huffman: bool) -> list[StreamCodec]:
    if codec is not None and codecs is not None:
        raise UsageError("give codec or codecs, not both")
    if codec is not None:
        return [codec]
    if codecs is not None:
        if not codecs:
            raise UsageError("codecs must name at least one codec")
        return list(codecs)
    if not huffman:
        return [PackedCodec()]
    return [HuffmanCodec()] if size > SMALL_STREAM_SYMBOLS else [PackedCodec(), HuffmanCodec()]


def shortest_code_limit(coded: CodedStream, low: int) -> CodedStream:
    """``coded`` again, Huffman-coded at the lowest code-length limit from ``low`` up to its
    own whose payload is no larger; ``coded`` itself when none is, or it is not Huffman.

    Shorter codes decode faster; the limit that first keeps the size costs nothing.

    Examples
    --------
    >>> import numpy as np
    >>> coded = code_stream(np.arange(64, dtype=np.uint16) % 8, 8, codec=HuffmanCodec(max_code_length=15))
    >>> shortest_code_limit(coded, 3).codec.max_code_length
    3
    """
    codec = coded.codec
    if not isinstance(codec, HuffmanCodec):
        return coded
    for limit in range(low, codec.max_code_length):
        shorter = code_stream(coded.symbols, coded.alphabet_size, gap_stream=coded.gap_stream,
                              codec=HuffmanCodec(codec.chunk_symbols, limit, codec.chunk_multiple))
        if shorter.nbytes <= coded.nbytes:
            return shorter
    return coded


def stream_codec(symbols: np.ndarray, alphabet_size: int, *, huffman: bool = True,
                 gap_stream: bool = False) -> StreamCodec:
    """The codec :func:`code_stream` chooses (prefer ``code_stream``, which keeps the payload).

    Examples
    --------
    >>> import numpy as np
    >>> stream_codec(np.array([3, 1, 4], np.uint16), 8)
    PackedCodec()
    >>> stream_codec(np.zeros(100_000, np.uint16), 256)
    HuffmanCodec(chunk_symbols=65536, max_code_length=11, chunk_multiple=4)
    """
    return code_stream(symbols, alphabet_size, huffman=huffman, gap_stream=gap_stream).codec
