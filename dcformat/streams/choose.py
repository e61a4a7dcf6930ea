"""Which codec a writer gives a stream, and the stream coded once with it.

:func:`code_stream` decides (the one constant that decides it lives here) and keeps the
winner's payload, so a builder that measures a stream's size hands the writer bytes it
need not encode again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


def code_stream(symbols, alphabet_size: int, *, codec: StreamCodec | None = None, huffman: bool = True,
                gap_stream: bool = False) -> CodedStream:
    """``symbols`` coded once: by ``codec`` if given, else by the smaller of packed and
    Huffman for a short stream, Huffman for a long one, packed when Huffman is off.

    Examples
    --------
    >>> import numpy as np
    >>> code_stream(np.array([3, 1, 4], np.uint16), 8).codec
    PackedCodec()
    >>> coded = code_stream(np.zeros(100_000, np.uint16), 256)
    >>> coded.codec, coded.nbytes < 100_000 // 8 + 200  # a bit a symbol, and the framing
    (HuffmanCodec(chunk_symbols=65536, max_code_length=11, chunk_multiple=4), True)
    """
    alphabet_size = check_alphabet(alphabet_size)
    own = np.array(as_symbols(symbols, alphabet_size), dtype=np.uint16, copy=True)
    own.flags.writeable = False
    if codec is None:
        candidates = [PackedCodec()] if not huffman else (
            [HuffmanCodec()] if own.size > SMALL_STREAM_SYMBOLS else [PackedCodec(), HuffmanCodec()])
    else:
        candidates = [codec]
    coded = [(c.encode(own, alphabet_size, gap_stream=gap_stream), c) for c in candidates]
    payload, chosen = min(coded, key=lambda pc: len(pc[0]))  # ties: the first (packed)
    return CodedStream(own, alphabet_size, gap_stream, chosen, payload)


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
