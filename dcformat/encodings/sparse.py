"""The one sparse builder: relative indices with fillers, their entries, both streams coded once.

Entry ``j`` is placed at ``p_j = cumsum(gap + 1)[j] - 1`` over the C-order units
(spec/FORMAT.md, "Decoding a record"). A gap wider than ``2**gap_bits - 1`` is bridged
by *filler* entries of gap ``2**gap_bits - 1`` whose value must decode to zero
("Fillers"): skipping ``d`` units takes ``d // 2**gap_bits`` fillers and a final gap
of ``d % 2**gap_bits``.

:func:`positions_to_gaps` lays positions out as a :class:`GapStream`;
:func:`build_sparse` gives its entries their values (fillers get the caller's filler)
and codes the gap and value streams once; :func:`smallest_sparse` does so for several
gap widths and keeps the smallest. The :class:`SparseEntries` they return hold the
payloads, which the writer stores as they are: what was measured is what is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidSettings, UsageError
from ..kernels.placement import count_gap_entries, fill_gap_entries
from ..streams.base import StreamCodec
from ..streams.choose import CodedStream, code_stream
from ..streams.packed import as_symbols, check_alphabet
from .model import BankValues, CodebookValues, RawValues, Sparse

__all__ = ["GapStream", "positions_to_gaps", "gaps_to_positions", "code_gaps", "SparseEntries",
           "build_sparse", "smallest_sparse"]


@dataclass(frozen=True, eq=False)
class GapStream:
    """The gaps of a sparse layout and which of its entries are fillers.

    ``gaps`` (uint16, each below ``2**gap_bits``) has one symbol per entry, fillers
    included; ``kept_index[i]`` is the entry that holds the i-th stored position, so
    ``entries[kept_index] = values`` and every other entry is a filler.
    """

    gaps: np.ndarray
    kept_index: np.ndarray
    gap_bits: int

    @property
    def entries(self) -> int:
        return int(self.gaps.size)

    @property
    def fillers(self) -> int:
        return int(self.gaps.size - self.kept_index.size)


def positions_to_gaps(positions: np.ndarray, gap_bits: int) -> GapStream:
    """Encode strictly increasing non-negative positions as gaps of ``gap_bits`` bits.

    Examples
    --------
    >>> g = positions_to_gaps(np.array([0, 2, 12]), 2)
    >>> g.gaps.tolist(), g.kept_index.tolist(), g.fillers
    ([0, 1, 3, 3, 1], [0, 1, 4], 2)
    >>> gaps_to_positions(g.gaps).tolist()
    [0, 2, 6, 10, 12]
    """
    if isinstance(gap_bits, bool) or not isinstance(gap_bits, (int, np.integer)) or not 1 <= gap_bits <= 16:
        raise InvalidSettings(f"gap_bits must be an integer from 1 to 16, got {gap_bits!r}")
    p = np.ascontiguousarray(np.asarray(positions).ravel())
    if p.dtype.kind not in "iu":
        p = p.astype(np.int64)
    span = 1 << gap_bits  # units covered by one filler (max gap + 1)
    # two passes and no temporaries the size of the positions: a tensor's worth of int64
    # arrays was most of the peak memory of compressing a mostly-zero tensor
    entries = count_gap_entries(p, span)
    if entries < 0:
        raise InvalidSettings("positions must be non-negative and strictly increasing")
    gaps = np.empty(entries, dtype=np.uint16)
    kept_index = np.empty(p.size, dtype=np.int64)
    fill_gap_entries(p, span, gaps, kept_index)
    return GapStream(gaps, kept_index, int(gap_bits))


def gaps_to_positions(gaps: np.ndarray) -> np.ndarray:
    """The unit each entry goes to: ``cumsum(gaps + 1) - 1`` (int64)."""
    return np.cumsum(np.asarray(gaps, dtype=np.int64) + 1) - 1


def code_gaps(gap_stream: GapStream, *, huffman: bool = True,
              codecs: Sequence[StreamCodec] | None = None) -> CodedStream:
    """The gap stream coded once, as the writer stores it (see :func:`~dcformat.streams.choose.code_stream`).

    Examples
    --------
    >>> code_gaps(positions_to_gaps(np.array([0, 2, 12]), 2)).nbytes  # five 2-bit gaps, packed
    2
    """
    return code_stream(gap_stream.gaps, 1 << gap_stream.gap_bits, huffman=huffman, codecs=codecs,
                       gap_stream=True)


@dataclass(frozen=True, eq=False)
class SparseEntries:
    """A sparse layout with its entries' values, both streams coded (see :func:`build_sparse`).

    ``values`` has one value per entry, fillers included: symbols (``coded`` is then their
    coded stream, and ``values`` is ``coded.symbols``) or raw values (``coded`` is None).
    """

    gap_stream: GapStream
    gaps: CodedStream
    values: np.ndarray
    coded: CodedStream | None

    @property
    def gap_bits(self) -> int:
        return self.gap_stream.gap_bits

    @property
    def entries(self) -> int:
        return self.gap_stream.entries

    @property
    def fillers(self) -> int:
        return self.gap_stream.fillers

    @property
    def kept(self) -> int:
        """Stored positions: the entries that are not fillers."""
        return self.entries - self.fillers

    @property
    def alphabet(self) -> int | None:
        """The values' alphabet (None for raw values)."""
        return None if self.coded is None else self.coded.alphabet_size

    @property
    def nbytes(self) -> int:
        """Payload bytes of the gap and value streams (raw values at their size)."""
        return self.gaps.nbytes + (self.values.nbytes if self.coded is None else self.coded.nbytes)

    @property
    def layout(self) -> Sparse:
        """The layout, its gap stream coded: the writer stores the payload as is."""
        return Sparse.coded(self.gap_bits, self.gaps)

    def codebook_values(self, codebook: np.ndarray) -> CodebookValues:
        """The entries as codes into ``codebook``, their stream coded."""
        return CodebookValues.coded(codebook, self._coded("codes"))

    def bank_values(self, bank: str) -> BankValues:
        """The entries as selectors into the bank named ``bank``, their stream coded."""
        return BankValues.coded(bank, self._coded("selectors"))

    def raw_values(self) -> RawValues:
        """The entries' raw values."""
        if self.coded is not None:
            raise UsageError("these entries are symbols: use codebook_values or bank_values")
        return RawValues(self.values)

    def _coded(self, what: str) -> CodedStream:
        if self.coded is None:
            raise UsageError(f"these entries are raw values, not {what}: use raw_values")
        return self.coded


def build_sparse(gap_stream: GapStream, kept_values: np.ndarray, *, filler, alphabet: int | None = None,
                 huffman: bool = True, codecs: Sequence[StreamCodec] | None = None,
                 gaps: CodedStream | None = None) -> SparseEntries:
    """The entries of ``gap_stream`` with their values, and both streams coded once.

    Parameters
    ----------
    gap_stream : GapStream
        The layout, from :func:`positions_to_gaps`.
    kept_values : ndarray
        One value per stored position, in order.
    filler : int, float or None
        What each filler entry holds: a symbol (or raw value) that decodes to zero. None
        (symbols only): a symbol of its own, ``alphabet``, which the stream's alphabet
        then counts where there are fillers.
    alphabet : int, optional
        Symbols below it: the entries are symbols, coded once. Without it the entries are
        raw values (``kept_values``' dtype) and only the gaps are coded.
    huffman, codecs
        How both streams are coded (:func:`~dcformat.streams.choose.code_stream`).
    gaps : CodedStream, optional
        ``gap_stream`` as :func:`code_gaps` already coded it (while choosing its width,
        say): kept, not coded again.

    Returns
    -------
    SparseEntries
        Its ``layout`` and ``codebook_values`` / ``bank_values`` / ``raw_values`` go into an
        :class:`~dcformat.encodings.model.EncodedTensor`; the writer stores their payloads as is.

    Examples
    --------
    >>> gs = positions_to_gaps(np.array([0, 2, 12]), 2)
    >>> s = build_sparse(gs, np.array([5, 6, 7]), filler=0, alphabet=8)
    >>> s.values.tolist(), s.fillers, s.layout.gap_bits
    ([5, 6, 0, 0, 7], 2, 2)
    >>> build_sparse(gs, np.array([5, 6, 7]), filler=None, alphabet=8).values.tolist()
    [5, 6, 8, 8, 7]
    >>> build_sparse(gs, np.array([0.5, -1.0, 2.0], np.float32), filler=0).raw_values().values.tolist()
    [0.5, -1.0, 0.0, 0.0, 2.0]
    """
    values, alphabet = _entry_values(gap_stream, kept_values, filler, alphabet)
    gaps = _gaps(gap_stream, gaps, huffman, codecs)
    if alphabet is None:
        return SparseEntries(gap_stream, gaps, values, None)
    coded = code_stream(values, alphabet, huffman=huffman, codecs=codecs)
    return SparseEntries(gap_stream, gaps, coded.symbols, coded)


def smallest_sparse(positions: np.ndarray, kept_values: np.ndarray, gap_bits_candidates: Iterable[int], *,
                    filler, alphabet: int | None = None, huffman: bool = True,
                    codecs: Sequence[StreamCodec] | None = None, symbol_bytes: int = 0) -> SparseEntries:
    """:func:`build_sparse` at the gap width, of ``gap_bits_candidates``, whose streams take
    the fewest bytes (ties: the narrower); every width is coded once, the winner kept.

    ``symbol_bytes`` is what each symbol of the values' alphabet costs besides the streams
    (a codebook entry), so that a width whose fillers add a symbol (``filler=None``) pays
    for it. A width without fillers has the same value stream as any other: it is coded
    once for all of them.

    Examples
    --------
    >>> positions = np.arange(0, 4000, 40)  # every 40th unit
    >>> s = smallest_sparse(positions, np.ones(100, np.uint16), (2, 4, 6, 8), filler=0, alphabet=2)
    >>> s.gap_bits, s.fillers
    (6, 0)
    """
    best, best_cost, plain = None, 0, None
    for gb in sorted(set(int(g) for g in gap_bits_candidates)):
        gs = positions_to_gaps(positions, gb)
        if gs.fillers == 0 and plain is not None:  # the values stream of every filler-free width
            entries = SparseEntries(gs, _gaps(gs, None, huffman, codecs), plain.values, plain.coded)
        else:
            entries = build_sparse(gs, kept_values, filler=filler, alphabet=alphabet, huffman=huffman,
                                   codecs=codecs)
        if gs.fillers == 0:
            plain = entries
        cost = entries.nbytes + symbol_bytes * (entries.alphabet or 0)
        if best is None or cost < best_cost:
            best, best_cost = entries, cost
    if best is None:
        raise UsageError("smallest_sparse needs at least one gap width")
    return best


def _entry_values(gap_stream: GapStream, kept_values: np.ndarray, filler, alphabet: int | None):
    """(the value of every entry, the alphabet they are coded in) for ``gap_stream``."""
    kept_values = np.asarray(kept_values).reshape(-1)
    if kept_values.size != gap_stream.kept_index.size:
        raise UsageError(f"{kept_values.size} values for {gap_stream.kept_index.size} stored positions")
    if alphabet is None:
        if filler is None:
            raise UsageError("filler=None gives fillers a symbol of their own: it needs an alphabet")
        dtype = kept_values.dtype
    else:
        if filler is None:
            filler, alphabet = alphabet, alphabet + (gap_stream.fillers > 0)
        alphabet = check_alphabet(alphabet)
        if gap_stream.fillers and not 0 <= filler < alphabet:
            raise UsageError(f"filler symbol {filler} is not below the alphabet size {alphabet}")
        kept_values, dtype = as_symbols(kept_values, alphabet), np.uint16
    if not gap_stream.fillers:
        return kept_values, alphabet
    values = np.full(gap_stream.entries, filler, dtype)
    values[gap_stream.kept_index] = kept_values
    return values, alphabet


def _gaps(gap_stream: GapStream, gaps: CodedStream | None, huffman: bool, codecs) -> CodedStream:
    if gaps is None:
        return code_gaps(gap_stream, huffman=huffman, codecs=codecs)
    if not (gaps.gap_stream and gaps.alphabet_size == 1 << gap_stream.gap_bits
            and np.array_equal(gaps.symbols, gap_stream.gaps)):
        raise UsageError("gaps= is not this gap stream coded")
    return gaps
