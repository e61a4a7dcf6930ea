"""Huffman chunks: raw chunks (R27), Huffman-coded chunks (R28), Start_Position (R29)."""

from __future__ import annotations

from .handcrafted import hc_stream
from .huff import invalid_code_chunk, resize_chunk, set_bits, set_chunk, stream_edited
from .huffman import huffman_single_symbol
from .registry import invalid


# R27 raw chunks
invalid("huffman-raw-chunk-too-long", "R27", "CorruptStream",
        "The raw chunk (8 symbols at 3 bits: 3 bytes) given a fourth, zero byte.", hc_stream("codes", resize_chunk(1, 1)))
invalid("huffman-raw-chunk-too-short", "R27", "CorruptStream",
        "The raw chunk (8 symbols at 3 bits: 3 bytes) cut to 2 bytes.", hc_stream("codes", resize_chunk(1, -1)))
invalid("huffman-raw-chunk-trailing-bits", "R27", "NonZeroPadding",
        "A raw gap chunk of 2 symbols at 3 bits whose bit 7 is set.", hc_stream("gaps", set_bits(2, -1, 0x80)))

# R28 Huffman chunks
invalid("huffman-chunk-reads-past-end", "R28", "CorruptStream",
        "The last chunk (17 bits of codes, 3 bytes) cut to 2 bytes: its last code runs past the chunk.",
        hc_stream("codes", resize_chunk(2, -1)))
invalid("huffman-invalid-code", "R28", "CorruptStream",
        "An incomplete gap code (lengths 2 2 3 0 3) and a chunk holding the bits 110, which no code starts with.",
        hc_stream("gaps", invalid_code_chunk))


invalid("huffman-single-symbol-invalid-code", "R28", "CorruptStream",
        "The one-symbol code of 'huffman-single-symbol' (code 0) and a 1 bit in its chunk.",
        stream_edited(lambda: huffman_single_symbol()[0], "codes_u8", "codes", set_bits(0, 3, 0x01)))
invalid("huffman-chunk-too-long", "R28", "CorruptStream",
        "The last chunk (17 bits of codes) given a fourth, zero byte.", hc_stream("codes", resize_chunk(2, 1)))
invalid("huffman-chunk-trailing-bits", "R28", "NonZeroPadding",
        "Chunk 0 (21 bits of codes in 3 bytes) with bit 23 set.", hc_stream("codes", set_bits(0, -1, 0x80)))
invalid("huffman-last-chunk-trailing-bits", "R28", "NonZeroPadding",
        "The last chunk (17 bits of codes in 3 bytes) with bit 23 set.", hc_stream("codes", set_bits(2, -1, 0x80)))

# R29 Start_Position
invalid("huffman-gap-start-position-wrong", "R29", "CorruptStream",
        "Gap chunk 1's Start_Position one more than the 11 units its predecessors cover.",
        hc_stream("gaps", set_chunk(1, 3, 12)))
invalid("huffman-gap-first-start-position-nonzero", "R29", "CorruptStream", "Gap chunk 0 with Start_Position 1.",
        hc_stream("gaps", set_chunk(0, 3, 1)))
invalid("huffman-gap-raw-chunk-start-position-wrong", "R29", "CorruptStream",
        "The raw gap chunk with Start_Position 25 instead of 26.", hc_stream("gaps", set_chunk(2, 3, 25)))
invalid("huffman-codes-start-position-nonzero", "R29", "CorruptStream",
        "Chunk 1 of a code stream (not a gap stream) with Start_Position 8.", hc_stream("codes", set_chunk(1, 3, 8)))
