"""Integer-stream codecs: bit packing and chunked canonical Huffman (spec/FORMAT.md, "Streams")."""

from .base import SYMBOL_DTYPE, StreamCodec, codec_for_wire_id, get_codec, register_codec
from .huffman import HuffmanCodec
from .packed import PackedCodec
from .choose import CodedStream, code_stream, stream_codec

__all__ = ["SYMBOL_DTYPE", "StreamCodec", "PackedCodec", "HuffmanCodec", "get_codec",
           "codec_for_wire_id", "register_codec", "stream_codec", "code_stream", "CodedStream"]
