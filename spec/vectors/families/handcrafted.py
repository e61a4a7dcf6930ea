"""The hand-made Huffman streams of "huffman-handcrafted", the base of most stream vectors.

A code stream with Huffman, raw, Huffman chunks (21, 24 raw and 17 bits); an incomplete gap
code with an odd Table_Size (lengths 2 2 3 0 3), three chunks with Start_Positions 0, 11
and 26, and a raw last chunk holding gaps that have no code; a selector stream whose
Table_Size (2) is below the bank size (3).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from dcformat import BankValues, CodebookValues, Dense, RawValues, Sparse
from dcformat.format import constants as C

from .common import PACKED, build, enc, u16
from .huff import Huff, craft_huffman, huffman_bits_used, stream_edited
from .model import parse, serialize


#: The symbols of the hand-made streams of "huffman-handcrafted" (see handcrafted()).
HC_CODES = [0, 1, 2, 3, 4, 5, 0, 1,   5, 4, 3, 2, 1, 0, 1, 2,   2, 2, 0, 1, 3, 0, 0, 1]
HC_CODE_LENGTHS = [2, 2, 2, 3, 4, 4]
HC_GAPS = [0, 2, 4, 1,   4, 2, 4, 1,   7, 5]
HC_GAP_LENGTHS = [2, 2, 3, 0, 3]  # symbols 0 1 2 4 coded (Kraft 3/4), 3 and 5-7 not
HC_SELECTORS = [1, 0, 1,   2, 0]


def handcrafted() -> tuple[bytes, dict, dict, dict[str, Huff]]:
    """The writer's file for the "huffman-handcrafted" inputs, its streams replaced by hand-made ones."""
    book = np.array([0.0, 1.5, -2.0, 3.25, 4.0, -5.5], "<f4")
    kernels = np.array([[0, 0], [1, 2], [3, 4]], "<f4")
    values = np.array([100, -200, 300, -400, 500, -600, 700, -800, 900, -1000], "<i2")
    tensors = {
        "codes": enc("F32", (4, 6), Dense(), CodebookValues(book, u16(HC_CODES), PACKED)),
        "gaps": enc("I16", (5, 8), Sparse(3, u16(HC_GAPS), PACKED), RawValues(values)),
        "sel": enc("F32", (5, 2), Dense(), BankValues("k", u16(HC_SELECTORS), PACKED)),
    }
    data, expected, metadata = build(tensors, banks={"k": kernels})
    streams = {
        "codes": craft_huffman(HC_CODES, 6, HC_CODE_LENGTHS, [0, 8, 16], [0, 1, 0], gap_stream=False),
        "gaps": craft_huffman(HC_GAPS, 8, HC_GAP_LENGTHS, [0, 4, 8], [0, 0, 1], gap_stream=True),
        "sel": craft_huffman(HC_SELECTORS, 3, [1, 1], [0, 3], [0, 1], gap_stream=False),
    }
    # the slack bits and byte counts the invalid vectors rely on
    codes, gaps = streams["codes"], streams["gaps"]
    assert [huffman_bits_used(codes, c, HC_CODES) for c in (0, 2)] == [21, 17]
    assert [codes.chunk_bytes(c) for c in range(3)] == [(0, 3), (3, 6), (6, 9)]
    assert [gaps.chunk_bytes(c) for c in range(3)] == [(0, 2), (2, 4), (4, 5)]
    model = parse(data)
    for name, role in (("codes", "codes"), ("gaps", "gaps"), ("sel", "selectors")):
        seg = model.tensor(name).seg(role)
        seg.codec = C.SegmentCodec.HUFFMAN
        seg.payload = streams[name].to_bytes()
    assert np.flatnonzero(np.cumsum(np.array(HC_GAPS) + 1) - 1)[-1] == len(HC_GAPS) - 1
    assert (np.cumsum(np.array(HC_GAPS) + 1) - 1)[-1] == 39
    return serialize(model)[0], expected, metadata, streams


def hc_stream(tensor: str, change: Callable[[Huff], object]) -> Callable[[], bytes]:
    """A vector maker: "huffman-handcrafted" with one hand-made stream changed."""
    role = {"codes": "codes", "gaps": "gaps", "sel": "selectors"}[tensor]
    return stream_edited(lambda: handcrafted()[0], tensor, role, change)


def restream(tensor: str, symbols) -> Callable[[Huff], None]:
    """A change re-making one hand-made stream from other symbols (same code, chunks, modes)."""
    alphabet, lengths, firsts, modes, gap = {"codes": (6, HC_CODE_LENGTHS, [0, 8, 16], [0, 1, 0], False),
                                            "gaps": (8, HC_GAP_LENGTHS, [0, 4, 8], [0, 0, 1], True),
                                            "sel": (3, [1, 1], [0, 3], [0, 1], False)}[tensor]

    def change(huff: Huff) -> None:
        new = craft_huffman(symbols, alphabet, lengths, firsts, modes, gap_stream=gap)
        huff.chunks, huff.bits = new.chunks, new.bits
    return change


def hc_symbols(tensor: str, symbols) -> Callable[[], bytes]:
    """"huffman-handcrafted" with one stream re-made from other symbols (same code, chunks, modes)."""
    return hc_stream(tensor, restream(tensor, symbols))


def truncated_huffman(cut_payload: Callable[[bytes], bytes]) -> Callable[[], bytes]:
    """"huffman-handcrafted" with its code stream segment cut short (the record itself unchanged)."""
    def make() -> bytes:
        m = parse(handcrafted()[0])
        seg = m.tensor("codes").seg("codes")
        seg.payload = cut_payload(seg.payload)
        return serialize(m)[0]
    return make
