"""Huffman streams as the writer makes them and by hand; their tables and chunk entries (R23-R26)."""

from __future__ import annotations

import struct

import numpy as np

from dcformat import CodebookValues, Dense, RawValues, Sparse
from dcformat.streams import HuffmanCodec

from .bases import base_all_raw_huffman, base_sparse_empty, base_zero_size
from .common import HUFFMAN, M64, Rand, build, enc, sparsify, u16
from .edits import edited
from .handcrafted import handcrafted, hc_stream, truncated_huffman
from .huff import huffman_modes, set_chunk, stream_edited
from .registry import invalid, valid


@valid("huffman-chunks-in-fours", "HUFFMAN streams split as the writer splits them by default: a "
       "multiple of four nearly equal chunks, so that readers decode four at a time. A code stream "
       "of 701 symbols with at most 512 per chunk (four chunks, 176 symbols each but the last, 173) "
       "and a gap stream in eight chunks whose Start_Positions follow from that split.")
def _huffman_chunks_in_fours():
    r = Rand(21)
    dense = np.concatenate([r.mask(300, 30), r.mask(300, 6)])
    gaps, units = sparsify(dense, 3)
    codes = r.skewed(len(units), 5)
    tensors = {
        "codes_f32": enc("F32", (701,), Dense(), CodebookValues(
            np.linspace(-1, 1, 8, dtype="<f4"), u16(r.skewed(701, 8)), HuffmanCodec(chunk_symbols=512))),
        "gaps_f32": enc("F32", (600,), Sparse(3, gaps, HuffmanCodec(chunk_symbols=30)),
                        CodebookValues(np.linspace(0.5, 2.5, 5, dtype="<f4"), u16(codes), HUFFMAN)),
    }
    data, expected, metadata = build(tensors)
    chunks = huffman_modes(data, "tensor", "codes_f32", "codes").chunks
    assert [c[2] for c in chunks] == [0, 176, 352, 528], chunks
    chunks = huffman_modes(data, "tensor", "gaps_f32", "gaps").chunks
    assert len(chunks) % 4 == 0 and len({c[2] - p[2] for p, c in zip(chunks, chunks[1:])}) == 1, chunks
    assert all(c[3] > 0 for c in chunks[1:])
    return data, expected, metadata


@valid("huffman-multi-chunk-with-raw-fallback", "One HUFFMAN code stream cut into chunks of 100 "
       "symbols (the last shorter): skewed chunks are Huffman-coded, uniform ones stored raw at "
       "width 6 with the same stream's code table.")
def _huffman_multi_chunk():
    r = Rand(7)
    parts = [r.skewed(100, 64), r.skewed(100, 64), r.ints(100, 64), r.skewed(100, 64),
             r.ints(100, 64), r.skewed(100, 64), r.ints(50, 64)]
    codes = np.concatenate(parts)
    book = (np.arange(64) * 1031 % 65536).astype("<u2")
    tensors = {"codes_u16": enc("U16", (13, 50), Dense(),
                                CodebookValues(book, u16(codes), HuffmanCodec(chunk_symbols=100, chunk_multiple=1)))}
    data, expected, metadata = build(tensors)
    modes = [c[0] for c in huffman_modes(data, "tensor", "codes_u16", "codes").chunks]
    assert len(modes) == 7 and 0 in modes and 1 in modes, modes
    return data, expected, metadata


@valid("huffman-single-symbol", "HUFFMAN streams using one symbol: a single code of length 1 (the "
       "incomplete code FORMAT.md allows), one bit per symbol, for a code stream (alphabet 256) and "
       "a gap stream (every third unit, gap 2).")
def huffman_single_symbol():
    n = 600
    gaps = u16([2] * (n // 3))
    tensors = {
        "codes_u8": enc("U8", (500,), Dense(), CodebookValues(np.arange(256, dtype=np.uint8)[::-1].copy(),
                                                             u16([200] * 500), HUFFMAN)),
        "gaps_f32": enc("F32", (n,), Sparse(4, gaps, HUFFMAN),
                        RawValues(np.arange(1, n // 3 + 1, dtype="<f4"))),
    }
    data, expected, metadata = build(tensors)
    for name, role, symbol in (("codes_u8", "codes", 200), ("gaps_f32", "gaps", 2)):
        huff = huffman_modes(data, "tensor", name, role)
        assert huff.lengths == [0] * symbol + [1] and [c[0] for c in huff.chunks] == [0], huff.lengths
    return data, expected, metadata


@valid("huffman-code-length-15", "A HUFFMAN stream with Fibonacci symbol frequencies whose codes "
       "reach the maximum length, 15 bits, in chunks of 1000 symbols.")
def huffman_code_length_15():
    r = Rand(8)
    counts = [1, 1]
    while len(counts) < 17:
        counts.append(counts[-1] + counts[-2])
    symbols = r.shuffle([s for s, n in enumerate(counts) for _ in range(n)])
    tensors = {"fib_u8": enc("U8", (len(symbols),), Dense(), CodebookValues(
        (np.arange(17) * 13).astype(np.uint8), u16(symbols), HuffmanCodec(chunk_symbols=1000, max_code_length=15, chunk_multiple=1)))}
    data, expected, metadata = build(tensors)
    huff = huffman_modes(data, "tensor", "fib_u8", "codes")
    assert max(huff.lengths) == 15 and all(c[0] == 0 for c in huff.chunks), huff.lengths
    return data, expected, metadata


@valid("huffman-handcrafted", "HUFFMAN streams written by hand (the base of most stream vectors in "
       "invalid/): a code stream with Huffman, raw, Huffman chunks; an incomplete gap code with an odd "
       "Table_Size, three chunks, non-zero Start_Positions, a raw last chunk holding symbols that have "
       "no code, and an entry on the last unit; a selector stream whose Table_Size is below the bank size.")
def _huffman_handcrafted():
    data, expected, metadata, _ = handcrafted()
    return data, expected, metadata


# R23 Huffman table size
invalid("huffman-table-size-over-alphabet", "R23", "InvalidHuffmanTable",
        "A code stream (alphabet 6) whose Table_Size is 7.",
        hc_stream("codes", lambda h: h.lengths.append(0)))
invalid("huffman-gap-table-size-over-alphabet", "R23", "InvalidHuffmanTable",
        "A gap stream (alphabet 8) whose Table_Size is 9.",
        hc_stream("gaps", lambda h: h.lengths.extend([0, 0, 0, 0])))
invalid("huffman-odd-table-high-nibble", "R23", "NonZeroPadding",
        "Table_Size 5 and the unused high nibble of the last Code_Lengths byte set to 1.",
        hc_stream("gaps", lambda h: setattr(h, "high_nibble", 1)))

# R24 Kraft, and Huffman chunks need codes
invalid("huffman-kraft-over-one", "R24", "InvalidHuffmanTable",
        "Code lengths 1 2 2 3 4 4: the Kraft sum is 5/4.",
        hc_stream("codes", lambda h: h.lengths.__setitem__(0, 1)))


invalid("huffman-kraft-over-one-by-2-15", "R24", "InvalidHuffmanTable",
        "The complete 15-bit code of 'huffman-code-length-15' with one length 15 made 14: the Kraft "
        "sum is 1 + 2^-15.",
        stream_edited(lambda: huffman_code_length_15()[0], "fib_u8", "codes",
                      lambda h: h.lengths.__setitem__(h.lengths.index(15), 14)))
invalid("huffman-coded-chunk-without-codes", "R24", "InvalidHuffmanTable",
        "Table_Size 0 and a chunk of Mode 0 (Huffman-coded).",
        stream_edited(base_all_raw_huffman, "r", "codes", set_chunk(0, 0, 0)))
invalid("huffman-coded-chunk-zero-lengths", "R24", "InvalidHuffmanTable",
        "Table_Size 3 with every length 0, and a chunk of Mode 0.",
        stream_edited(base_all_raw_huffman, "r", "codes",
                      lambda h: (h.lengths.extend([0, 0, 0]), set_chunk(0, 0, 0)(h))))


# R25 chunk count
invalid("huffman-chunk-count-zero", "R25", "CorruptStream", "Chunk_Count 0 for a stream of 24 symbols.",
        hc_stream("codes", lambda h: setattr(h, "chunk_count", 0)))
invalid("huffman-chunk-count-over-symbols", "R25", "CorruptStream", "Chunk_Count 6 for a stream of 5 symbols.",
        hc_stream("sel", lambda h: setattr(h, "chunk_count", 6)))
invalid("huffman-chunk-count-for-empty-stream", "R25", "CorruptStream",
        "Chunk_Count 1 for the gap stream of a SPARSE tensor with no entries (payload of 8 bytes).",
        edited(base_sparse_empty, lambda m: setattr(m.tensor("h").seg("gaps"), "payload", struct.pack("<II", 0, 1))))
invalid("huffman-chunk-count-for-zero-size-tensor", "R25", "CorruptStream",
        "Chunk_Count 1 for the code stream of a zero-size tensor (payload of 8 bytes).",
        edited(base_zero_size, lambda m: setattr(m.tensor("ch").seg("codes"), "payload", struct.pack("<II", 0, 1))))
invalid("huffman-chunk-table-truncated", "R25", "TruncatedError",
        "Chunk_Count 20 (at most the 24 symbols) but the segment holds only 3 entries and the bits.",
        hc_stream("codes", lambda h: setattr(h, "chunk_count", 20)))

# R26 chunk offsets and first symbols
invalid("huffman-first-byte-offset-nonzero", "R26", "CorruptStream", "Chunk 0 with Byte_Offset 1.",
        hc_stream("gaps", set_chunk(0, 1, 1)))
invalid("huffman-byte-offsets-decreasing", "R26", "CorruptStream",
        "Chunk 2's Byte_Offset one below chunk 1's.", hc_stream("codes", set_chunk(2, 1, lambda h: h.chunks[1][1] - 1)))
invalid("huffman-byte-offset-past-end", "R26", "CorruptStream",
        "The last chunk's Byte_Offset one past the end of the bit streams.",
        hc_stream("codes", set_chunk(2, 1, lambda h: len(h.bits) + 1)))
invalid("huffman-byte-offset-u64-max", "R26", "CorruptStream", "The last chunk's Byte_Offset is 2^64 - 1.",
        hc_stream("codes", set_chunk(2, 1, M64)))
invalid("huffman-first-symbol-nonzero", "R26", "CorruptStream", "Chunk 0 with First_Symbol 1.",
        hc_stream("codes", set_chunk(0, 2, 1)))
invalid("huffman-first-symbols-equal", "R26", "CorruptStream", "Chunks 1 and 2 with the same First_Symbol.",
        hc_stream("codes", set_chunk(2, 2, 8)))
invalid("huffman-first-symbol-past-count", "R26", "CorruptStream",
        "The last chunk's First_Symbol equals the symbol count (24).", hc_stream("codes", set_chunk(2, 2, 24)))


# R25: empty streams and reads past the end of a Huffman segment's tables
invalid("huffman-empty-stream-trailing-byte", "R25", "CorruptStream",
        "The HUFFMAN gap stream of a SPARSE tensor with no entries: Chunk_Count 0, then one byte of bit "
        "streams (they must be empty).",
        edited(base_sparse_empty, lambda m: setattr(m.tensor("h").seg("gaps"), "payload", struct.pack("<II", 0, 0) + b"\x00")))
invalid("huffman-segment-empty", "R25", "TruncatedError",
        "A HUFFMAN gap stream segment of 0 bytes: Table_Size cannot be read.",
        edited(base_sparse_empty, lambda m: setattr(m.tensor("h").seg("gaps"), "payload", b"")))
invalid("huffman-code-lengths-truncated", "R25", "TruncatedError",
        "A HUFFMAN code stream segment cut after 2 of its 3 Code_Lengths bytes.",
        truncated_huffman(lambda payload: payload[:4 + 2]))
invalid("huffman-chunk-count-truncated", "R25", "TruncatedError",
        "A HUFFMAN code stream segment that ends in the middle of Chunk_Count.",
        truncated_huffman(lambda payload: payload[:4 + 3 + 2]))
