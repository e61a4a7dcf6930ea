"""What a bits-per-parameter budget counts: every byte of the file.

``CompressionSettings.bits_per_param`` is ``8 x (file bytes) / parameters``, the
parameters being the elements of every tensor the pipeline yields. The file is counted
as the writer lays it out (spec/FORMAT.md, from the outside in):

- the preamble (``PREAMBLE_SIZE``) and the header: Alignment, Metadata_Count, every
  metadata entry (two Strings), Bank_Count, Tensor_Count and one record per tensor
  (its name String, DType, Rank, Shape, Layout, Value_Kind, the layout and value
  parameters and a Segment_Ref per segment), padded to the alignment;
- every segment, each starting at the next multiple of the alignment
  (``DEFAULT_ALIGNMENT``, as the writers use it): the raw values of a tensor kept
  exact, a codebook, a code or gap stream with its Huffman table and chunk entries.

Sizes of exact and k-means tensors are measured (:func:`stored_cost` on what the
encoder gives the writer); the ECQ tensors' are predicted from their planning summaries
(:mod:`dcformat.compress.ratedistortion`) with :func:`stream_bytes`, which follows
:func:`~dcformat.streams.choose.code_stream` and the Huffman codec's framing, and
:func:`gap_frequencies` for a sparse layout's gaps. :class:`BudgetRun` then keeps the
file on the budget while the tensors are encoded: each tensor's real size corrects the
global slope of those still to come, and the last ECQ tensor is encoded again (at most
twice) if the file would still miss the budget.

Tolerance: a budget that can be met and spent lands within :data:`REL_TOLERANCE` of
it or :data:`ABS_TOLERANCE` bits per parameter, whichever is larger.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..encodings.encode import encode_tensor
from ..format import constants as C
from ..streams.canonical import code_lengths
from ..streams.choose import SMALL_STREAM_SYMBOLS
from ..streams.huffman import chunk_length

#: A file on a budget lands within this share of it ...
REL_TOLERANCE = 0.01
#: ... or within this many bits per parameter, whichever is larger.
ABS_TOLERANCE = 0.02

# Field sizes of spec/FORMAT.md ("Header", "Records", "Huffman streams").
_U8, _U32, _U64 = 1, 4, 8
#: Alignment, Metadata_Count, Bank_Count, Tensor_Count.
HEADER_FIELDS = _U32 + _U32 + _U32 + _U32
#: DType, Rank, Layout, Value_Kind (the Name and the Shape come on top).
RECORD_FIELDS = _U8 + _U8 + _U8 + _U8
#: Gap_Bits and Entry_Count of a SPARSE record.
SPARSE_FIELDS = _U8 + _U64
#: Codebook_Size or Bank_Index.
VALUE_FIELDS = _U32
#: GROUPED values: Codebook_Size, Group_Size, Scale_Count, Offset_Count.
GROUPED_FIELDS = _U32 + _U64 + _U32 + _U32
#: Table_Size and Chunk_Count of a Huffman stream.
HUFFMAN_FIELDS = _U32 + _U32


def tolerance(bits_per_param: float) -> float:
    """How far from ``bits_per_param`` (bits per parameter) a file on that budget may land."""
    return max(REL_TOLERANCE * bits_per_param, ABS_TOLERANCE)


def string_bytes(text: str) -> int:
    """A String: its u32 length and its UTF-8 bytes."""
    return _U32 + len(text.encode("utf-8"))


def header_bytes(metadata: Mapping[str, str] | None) -> int:
    """The header without its records: the four counts and the metadata entries."""
    return HEADER_FIELDS + sum(string_bytes(k) + string_bytes(v) for k, v in (metadata or {}).items())


def record_bytes(name: str, rank: int, layout: C.Layout, value_kind: C.ValueKind, segments: int) -> int:
    """One record of the header (FORMAT.md "Records")."""
    return (string_bytes(name) + RECORD_FIELDS + _U64 * rank + (SPARSE_FIELDS if layout == C.Layout.SPARSE else 0)
            + (GROUPED_FIELDS if value_kind == C.ValueKind.GROUPED else VALUE_FIELDS if value_kind != C.ValueKind.RAW
               else 0) + segments * C.SEGMENT_REF_SIZE)


def sparse_beats_dense(gap_bytes: float, value_bytes: float, dense_bytes: float) -> bool:
    """Whether a sparse layout's gap and value streams store fewer bytes than the dense
    codes: each segment with its padding, and the sparse record's fields and extra
    Segment_Ref. A tensor of a few hundred values saves a few bytes of stream and pays a
    segment's padding."""
    return (padded(gap_bytes) + padded(value_bytes) + SPARSE_FIELDS + C.SEGMENT_REF_SIZE) < padded(dense_bytes)


#: How far a predicted segment length may be off: this share of it, and this many bytes more.
PREDICTION_SPREAD, PREDICTION_SLACK = 0.05, 2.0


def padded(length: float, alignment: int = C.DEFAULT_ALIGNMENT) -> float:
    """A segment and the padding after it.

    A predicted (fractional) length is uncertain by ``PREDICTION_SPREAD`` of itself and
    ``PREDICTION_SLACK`` bytes: its padded length is the mean over that window. A long
    segment so gets the mean padding, ``(alignment - 1) / 2``; a segment of a few bytes
    pads to the alignment, as it will.
    """
    if length == int(length):
        return float(C.align_up(int(length), alignment))
    w = PREDICTION_SPREAD * length + PREDICTION_SLACK
    lo, hi = max(length - w, 0.0), length + w
    return alignment * (_ceil_integral(hi / alignment) - _ceil_integral(lo / alignment)) / (hi - lo) * alignment


def _ceil_integral(x: float) -> float:
    """The integral of ceil(t) for t from 0 to ``x`` (>= 0)."""
    k = math.floor(x)
    return k * (k + 1) / 2 + (x - k) * (k + 1)


@dataclass(frozen=True)
class StoredCost:
    """What one tensor adds to a file: its ``record`` in the header, its ``data`` (every
    segment with the padding after it), of which ``trailing`` is the last segment's padding."""

    record: int
    data: int
    trailing: int

    @property
    def total(self) -> int:
        return self.record + self.data


def stored_cost(name: str, value) -> StoredCost:
    """What one tensor adds to a file as the writer stores it: an array (kept exact) or an
    EncodedTensor (its streams as the encoder coded them).

    Examples
    --------
    >>> cost = stored_cost("w", np.zeros((3, 5), np.float32))  # one 60-byte segment
    >>> cost.record, cost.data, cost.trailing
    (46, 64, 4)
    """
    record = encode_tensor(name, value)
    lengths = [len(payload) for _, payload in record.segments.values()]
    padded_lengths = [C.align_up(n, C.DEFAULT_ALIGNMENT) for n in lengths]
    return StoredCost(record_bytes(name, len(record.shape), record.layout, record.value_kind, len(lengths)),
                      sum(padded_lengths), padded_lengths[-1] - lengths[-1] if lengths else 0)


def _huffman_lengths(freqs: np.ndarray) -> np.ndarray | None:
    """The Huffman codec's code lengths for ``freqs`` (None: more than 2**15 symbols used, stored raw)."""
    used = int(np.count_nonzero(freqs))
    limit = C.PREFERRED_MAX_CODE_LENGTH
    while used > (1 << limit):
        limit += 1
    return None if limit > C.MAX_CODE_LENGTH else code_lengths(freqs, limit)


def stream_bytes(freqs, alphabet_size: int, *, huffman: bool = True) -> float:
    """The payload :func:`~dcformat.streams.choose.code_stream` writes for a stream with these
    symbol frequencies (``freqs[s]``: how many times symbol ``s`` occurs; may be fractional).

    Exact but for the chunks' last bytes (the symbols are taken as spread evenly over the
    chunks, each ending half a byte on average past its bits) and frequencies rounded to
    whole symbols for the code lengths.

    Examples
    --------
    >>> from dcformat.streams.choose import code_stream
    >>> symbols = np.random.default_rng(0).integers(0, 5, 100_000).astype(np.uint16)
    >>> real = code_stream(symbols, 5).nbytes
    >>> abs(stream_bytes(np.bincount(symbols), 5) - real) < 4
    True
    """
    freqs = np.asarray(freqs, dtype=np.float64)
    count = int(round(float(freqs.sum())))
    width = C.symbol_width(alphabet_size)
    packed = -(-count * width // 8)
    if not huffman:
        return float(packed)
    coded = _huffman_bytes(freqs, count, width)
    return float(min(packed, coded)) if count <= SMALL_STREAM_SYMBOLS else coded


def _huffman_bytes(freqs: np.ndarray, count: int, width: int) -> float:
    """HuffmanCodec.encode's payload size (dcformat/streams/huffman.py), chunk by chunk.

    A symbol expected fewer than half a time gets no code here; it occurs now and then
    all the same (Poisson), at about the longest code's length, and extends the table
    when it lies beyond the last expected symbol.
    """
    if count == 0:
        return float(HUFFMAN_FIELDS)
    chunk = chunk_length(count, C.DEFAULT_CHUNK_SYMBOLS)
    n_chunks = -(-count // chunk)
    counts = np.full(n_chunks, chunk, dtype=np.int64)
    counts[-1] = count - chunk * (n_chunks - 1)
    raw = (counts * width + 7) // 8
    whole = np.rint(freqs).astype(np.int64)
    lengths = _huffman_lengths(whole)
    sizes = raw.astype(np.float64)
    table_size = 0.0
    if lengths is not None and whole.any():
        rare = whole == 0
        bits = float(np.dot(freqs[~rare], lengths[~rare])) + float(freqs[rare].sum()) * (int(lengths.max()) + 1)
        coded = bits * counts / count / 8 + 0.5
        use = coded < raw
        last = int(np.flatnonzero(whole)[-1])
        tail = np.cumsum(freqs[last + 1:][::-1])[::-1]  # expected symbols at or beyond each
        table_size = last + 1 + float(np.sum(-np.expm1(-tail)))
        if float((raw - coded)[use].sum()) > (table_size + 1) / 2:
            sizes = np.where(use, coded, raw)
        else:  # the table would cost more than it saves: every chunk raw
            table_size = 0.0
    return HUFFMAN_FIELDS + (table_size + 1) / 2 + C.CHUNK_ENTRY_SIZE * n_chunks + float(sizes.sum())


def gap_frequencies(units: int, kept: int, gap_bits: int) -> tuple[np.ndarray, float]:
    """(expected gap-symbol frequencies, expected fillers) of ``kept`` stored positions among
    ``units``, spread at random.

    Gaps are then geometric: ``P(g) = p**g * q`` with ``q = kept / units``, ``p = 1 - q``.
    A gap of ``g`` units is ``g // 2**gap_bits`` fillers (gap symbol ``2**gap_bits - 1``)
    and a final gap ``g % 2**gap_bits`` (spec/FORMAT.md, "Fillers").

    Examples
    --------
    >>> freqs, fillers = gap_frequencies(1000, 500, 2)  # every other unit, at random
    >>> [round(f) for f in freqs], round(fillers)
    ([267, 133, 67, 67], 33)
    """
    span = 1 << gap_bits
    freqs = np.zeros(span)
    if kept <= 0:
        return freqs, 0.0
    q = min(1.0, kept / units)
    p = 1.0 - q
    if p <= 0.0:
        freqs[0] = kept
        return freqs, 0.0
    ps = p ** span
    freqs[:] = kept * q * p ** np.arange(span) / (1.0 - ps)
    fillers = kept * ps / (1.0 - ps)
    freqs[-1] += fillers
    return freqs, fillers
