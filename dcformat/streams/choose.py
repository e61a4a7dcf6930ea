"""Which codec a writer should give a stream: the one constant that decides it, in one place."""

from __future__ import annotations

import numpy as np

from .base import StreamCodec
from .huffman import HuffmanCodec
from .packed import PackedCodec

#: Streams up to this many symbols are encoded both ways and the smaller payload wins:
#: below it, Huffman's framing (table, chunk entries) can cost more than coding saves.
#: Longer streams keep Huffman, whose per-chunk raw fallback bounds the loss to that framing.
SMALL_STREAM_SYMBOLS = 1 << 14


def stream_codec(symbols: np.ndarray, alphabet_size: int, *, huffman: bool = True,
                 gap_stream: bool = False) -> StreamCodec:
    """PackedCodec when Huffman is off or does not pay on a small stream, else HuffmanCodec.

    Examples
    --------
    >>> import numpy as np
    >>> stream_codec(np.array([3, 1, 4], np.uint16), 8)
    PackedCodec()
    >>> stream_codec(np.zeros(100_000, np.uint16), 256)
    HuffmanCodec(chunk_symbols=65536, max_code_length=11, chunk_multiple=4)
    """
    packed = PackedCodec()
    if not huffman:
        return packed
    coded = HuffmanCodec()
    symbols = np.ascontiguousarray(symbols, dtype=np.uint16)
    if symbols.size > SMALL_STREAM_SYMBOLS:
        return coded
    sizes = [len(c.encode(symbols, alphabet_size, gap_stream=gap_stream)) for c in (packed, coded)]
    return packed if sizes[0] <= sizes[1] else coded
