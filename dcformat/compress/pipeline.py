"""The compression pipeline: selection, pruning, weight sharing, sparse layout.

For each tensor :class:`~dcformat.compress.settings.CompressionSettings` picks
settings or keeps it exact. A compressed tensor becomes an
:class:`~dcformat.encodings.model.EncodedTensor`:

- unpruned: ``Dense`` layout, ``CodebookValues`` over every element;
- pruned: ``Sparse`` layout over the surviving non-zero weights, relative gaps of
  ``gap_bits`` bits with fillers where a gap is too wide, ``CodebookValues``.

The codebook comes from 1-D k-means over the stored weights, is cast to the tensor's
own dtype (so ``codebook[code]`` is exactly the decoded value) and is ascending, with
at most ``2**code_bits`` distinct entries. When fillers are present it holds an exact
``0.0`` for them (spec/FORMAT.md, "Fillers"), and k-means gets ``2**code_bits - 1``
clusters to leave room for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from ..encodings.lossless import exact_tensor
from ..encodings.model import AffineCodebook, CodebookValues, Dense, EncodedTensor, GroupedValues, PlaneValues, RawValues
from ..encodings.sparse import SparseEntries, build_sparse, gaps_to_positions, positions_to_gaps, smallest_sparse
from ..errors import InvalidSettings, UnsupportedDType, UsageError
from ..format.affine import round_to
from ..format.constants import AFFINE_CODEBOOK_BYTES, DEFAULT_ALIGNMENT, PREAMBLE_SIZE, DType
from ..kernels.kmeans import coded_squared_error, squared_sum
from ..streams.choose import CodedStream, code_stream
from . import budget, grouped, rowsums, uniform
from ._dtypes import COMPRESSIBLE, numpy_dtype, scale_exponent, wire_name, work_dtype
from .ecq import SPARSE_GAP_BITS, SPARSE_TRY_ZERO_SHARE, ZERO_SNAP_ERROR_SHARE
from .kmeans import Patterns, assign, kmeans_1d
from .prune import prune_mask
from .report import CODEBOOK, EXACT, GROUPED_ROWS, SPARSE_CODEBOOK, SPARSE_GROUPED_ROWS, TensorReport, error_measures
from .settings import CompressionSettings, TensorSettings


def _energy(x: np.ndarray, e: int) -> float:
    """sum((x * 2**-e)**2) in float64 (no float64 copy of a float32 ``x``)."""
    if e:
        x = np.ldexp(x, -e)
    return squared_sum(np.ascontiguousarray(x))


def _exact_report(name: str, array: np.ndarray, reason: str) -> TensorReport:
    shape = tuple(int(d) for d in array.shape)
    return TensorReport(name=name, shape=shape, dtype=wire_name(array.dtype) or str(array.dtype),
                        kind=EXACT, elements=int(array.size), kept=int(array.size), reason=reason)


def _codebook(centroids: np.ndarray, dtype: np.dtype, with_zero: bool) -> np.ndarray:
    """Centroids cast to the tensor dtype, plus 0.0 if asked: ascending, distinct, float64."""
    cb = np.asarray(centroids, np.float64).astype(dtype).astype(np.float64)
    if with_zero or cb.size == 0:
        cb = np.append(cb, 0.0)
    return np.unique(cb) + 0.0  # + 0.0 turns a -0.0 into +0.0


def _squared_error(values: np.ndarray, codebook: np.ndarray, codes: np.ndarray, e: int) -> float:
    """sum(((values - codebook[codes]) * 2**-e)**2) in float64 (scaled first: no overflow).

    Both sides are scaled, not the difference by ``2**-e``: that factor alone overflows
    for subnormal float64 weights (e near -1074).
    """
    codebook = np.asarray(codebook, np.float64)
    if e:  # float64 weights of extreme magnitude only: the copies are rare, the scaling exact
        values, codebook = np.ldexp(values, -e), np.ldexp(codebook, -e)
    return coded_squared_error(values, np.ascontiguousarray(codebook), codes)


class _NonFinite(Exception):
    pass


def compress_tensor(array: np.ndarray, settings: TensorSettings,
                    name: str = "") -> tuple[EncodedTensor, TensorReport]:
    """Compress one floating tensor (F16, BF16, F32, F64; finite values) with ``settings``.

    Parameters
    ----------
    array : ndarray
        The weights; any shape, read in C order.
    settings : TensorSettings
    name : str
        Used in the report and in error messages.

    Returns
    -------
    (EncodedTensor, TensorReport)

    Examples
    --------
    >>> w = np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8)
    >>> enc, rep = compress_tensor(w, TensorSettings(sparsity=0.5, code_bits=2, gap_bits=2, huffman=False))
    >>> rep.kind, rep.kept, len(enc.values.codebook) <= 4
    ('sparse codebook', 32, True)
    >>> bool(np.all(reconstruct(enc)[np.abs(w) < 0.5] == 0))
    True
    """
    try:
        return _compress(array, settings, name)
    except _NonFinite:
        raise InvalidSettings(f"tensor {name!r} has NaN or infinite values; keep it exact") from None


#: An assignment function: (the tensor's values as the ecq quantizer sees them, flat in C
#: order; its ascending codebook, float64) -> one code (uint16) per value.
Assign = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Hints:
    """What the caller measured of one tensor's layer (:func:`iter_compress`'s ``assign`` and
    ``input_weights``): codes chosen by ``assign``, the row sums weighed by ``input_weights``."""

    assign: Assign | None = None
    input_weights: np.ndarray | None = None


NO_HINTS = Hints()


def _compress(array: np.ndarray, settings: TensorSettings, name: str,
              step: float | None = None, hints: Hints = NO_HINTS) -> tuple[EncodedTensor, TensorReport]:
    if not isinstance(settings, TensorSettings):
        raise InvalidSettings(f"settings must be TensorSettings, got {type(settings).__name__}")
    if settings.quantizer == "ecq":
        return _compress_ecq(_candidate(array, settings, name), step, hints)
    if hints.assign is not None:
        raise InvalidSettings(f"tensor {name!r}: an assign function picks codes in the ecq quantizer's codebook, "
                              f"and this tensor uses {settings.quantizer!r}; use quantizer 'ecq' for it")
    bound = settings.max_relative_error
    while True:
        encoded, report = _compress_kmeans(array, settings, name)
        if bound is None or report.rel_rms_error <= bound or settings.code_bits >= 16:
            return encoded, report
        settings = TensorSettings.from_dict(dict(settings.to_dict(), code_bits=settings.code_bits + 1))


def _candidate(array: np.ndarray, settings: TensorSettings, name: str):
    from .ratedistortion import Candidate

    if settings.pruned:
        raise InvalidSettings(f"tensor {name!r}: the ecq quantizer does not prune; drop sparsity/quality")
    array = np.asarray(array)
    wire = wire_name(array.dtype)
    if wire not in COMPRESSIBLE:
        raise UnsupportedDType(array.dtype, name)
    work = np.ascontiguousarray(array.astype(work_dtype(wire), copy=False).ravel())
    if work.size == 0 or not np.isfinite(work).all():
        raise _NonFinite
    if scale_exponent(work):
        raise InvalidSettings(f"tensor {name!r}: values too large or small for the ecq quantizer; use kmeans")
    shape = tuple(int(d) for d in array.shape)
    scales = None
    if settings.groups == "rows" and grouped.applies(shape) and wire in ("F32", "F16", "BF16"):
        scales = grouped.row_scales(work, shape[0])
        work = grouped.normalized(work, scales)
    return Candidate(name, work, settings, 32 if scales is not None else 8 * numpy_dtype(wire).itemsize,
                     shape=shape, wire=wire, scales=scales)


def _compress_ecq(cand, step: float | None, hints: Hints = NO_HINTS) -> tuple[EncodedTensor, TensorReport]:
    from . import ecq
    from .ratedistortion import final_plan

    h, p = final_plan(cand, step)
    assign = hints.assign
    dtype = numpy_dtype(cand.wire)
    book_dtype = np.dtype(np.float32) if cand.scales is not None else dtype
    cb = p.codebook.astype(book_dtype).astype(np.float64) + 0.0
    code_of_bin = p.code_of_bin
    if cb.size > 1 and not np.all(cb[1:] > cb[:-1]):  # neighbours that round to one value
        cb, inverse = np.unique(cb, return_inverse=True)
        code_of_bin = inverse[code_of_bin]
    p.code_of_bin = code_of_bin
    codes, error = ecq.emit(cand.x, h, p, cb)
    if assign is not None:  # the caller's codes in the same codebook, their true error
        codes = _assigned(cand, assign, cb)
        error = _squared_error(cand.x, cb, codes, 0)
    n = codes.size
    cb, error = _exact_zero_code(cand.x, cb, codes, error)
    book = cb.astype(book_dtype)
    dense, sparse = _coded(codes, cb, cand.settings.huffman)
    if assign is None and uniform.worth_trying(cb.size, cand.value_bits, n, cand.wire):
        grid = uniform.uniform_codes(cand.x, p.delta, cand.wire, cand.max_entries,
                                     float32_book=cand.scales is not None)
        bound = cand.max_distortion  # the tensor's own error bound holds on the grid too
        if grid is not None and (bound is None or grid.error <= bound):
            grid_streams = _coded(grid.codes, grid.entries, cand.settings.huffman)
            if uniform.better(_stream_bytes(dense, sparse) + cb.size * book.itemsize, error,
                              _stream_bytes(*grid_streams) + AFFINE_CODEBOOK_BYTES, grid.error, n):
                codes, cb, book, error, (dense, sparse) = grid.codes, grid.entries, grid.book, grid.error, grid_streams
    if assign is None and cand.settings.keep_row_sums and rowsums.applies(cand.shape):
        kept_sums = rowsums.keep_row_sums(cand.x, codes, cb, cand.shape[0], input_weights=hints.input_weights)
        kept_error = _squared_error(cand.x, cb, kept_sums, 0)
        bound = cand.max_distortion  # a floor outranks the correction
        if bound is None or kept_error <= bound:
            codes, error = kept_sums, kept_error
            dense, sparse = _coded(codes, cb, cand.settings.huffman)
    if sparse is None:
        layout, stream = Dense(), dense
        kept, entries, fillers, gap_bits, kind = n, n, 0, None, CODEBOOK
    else:
        layout, stream = sparse.layout, sparse.coded
        kept, entries, fillers, gap_bits = sparse.kept, sparse.entries, sparse.fillers, sparse.gap_bits
        kind = SPARSE_CODEBOOK
    energy = cand.energy
    if cand.scales is None:
        values = CodebookValues.coded(book, stream)
    else:  # the same codes, each row scaled back by the reader
        scales = cand.scales
        values = GroupedValues.coded(scales.row, book, stream, scales.table, scales.codes)
        kind = GROUPED_ROWS if sparse is None else SPARSE_GROUPED_ROWS
        original = cand.x * scales.per_row.repeat(scales.row)  # the tensor's own values (x / s * s, exact)
        decoded = grouped.scaled_back(cb[codes], scales).astype(dtype).astype(np.float64)
        error = float(np.sum(np.square(original - decoded)))
        energy = float(np.sum(np.square(original)))
    encoded = EncodedTensor(dtype=cand.wire, shape=cand.shape, layout=layout, values=values)
    rel, sqnr = error_measures(energy, error)
    report = TensorReport(name=cand.name, shape=cand.shape, dtype=cand.wire, kind=kind, elements=n,
                          kept=kept, entries=entries, fillers=fillers, gap_bits=gap_bits,
                          code_bits=int(max(cb.size - 1, 1)).bit_length(),
                          codebook_size=int(cb.size), rel_rms_error=rel, sqnr_db=sqnr)
    return encoded, report


def _assigned(cand, assign: Assign, cb: np.ndarray) -> np.ndarray:
    """``assign(cand.x, cb)``, checked: one code per value, each inside the codebook."""
    codes = np.asarray(assign(cand.x, cb))
    if codes.shape != cand.x.shape or codes.dtype.kind not in "iu":
        raise UsageError(f"tensor {cand.name!r}: the assign function returned {codes.dtype} codes of shape "
                         f"{codes.shape}, expected integers of shape {cand.x.shape}")
    if codes.size and (int(codes.min()) < 0 or int(codes.max()) >= cb.size):
        raise UsageError(f"tensor {cand.name!r}: the assign function returned a code outside the codebook "
                         f"of {cb.size} entries")
    return np.ascontiguousarray(codes, dtype=np.uint16)


def _exact_zero_code(x: np.ndarray, cb: np.ndarray, codes: np.ndarray, error: float):
    """(codebook, error) with the code nearest zero made exactly 0.0, when that is nearly free.

    Only a code that decodes to exactly zero can be left out of a sparse layout. The
    centroid of the bin around zero is the mean of its values, close to zero for
    most weights; moving it there adds ``count * centroid**2`` to the squared error,
    accepted up to 1 % of the error when the bin holds a large share of the codes.
    """
    z = int(np.argmin(np.abs(cb)))
    if cb[z] == 0.0 or codes.size == 0:
        return cb, error
    count = int(np.count_nonzero(codes == z))
    if count < SPARSE_TRY_ZERO_SHARE * codes.size or count * cb[z] ** 2 > ZERO_SNAP_ERROR_SHARE * error:
        return cb, error
    snapped = cb.copy()
    snapped[z] = 0.0
    if (z > 0 and snapped[z - 1] >= 0.0) or (z + 1 < cb.size and snapped[z + 1] <= 0.0):
        return cb, error  # would no longer be ascending
    return snapped, _squared_error(x, snapped, codes, 0)


def _coded(codes: np.ndarray, cb: np.ndarray, huffman: bool) -> tuple[CodedStream, SparseEntries | None]:
    """The codes coded dense, and the sparse layout when that is smaller (else None)."""
    dense = code_stream(codes, cb.size, huffman=huffman)
    return dense, _sparse_if_smaller(codes, cb, dense, huffman)


def _stream_bytes(dense: CodedStream, sparse: SparseEntries | None) -> int:
    return dense.nbytes if sparse is None else sparse.nbytes


def _sparse_if_smaller(codes: np.ndarray, cb: np.ndarray, dense: CodedStream,
                       huffman: bool) -> SparseEntries | None:
    """The same values in the sparse layout when that stores fewer bytes than ``dense``
    (the codes coded as they are; segments padded, the record's sparse fields counted), else None.

    Huffman spends at least a bit per code, so a tensor whose codes are mostly the
    zero code (dead taps, heavily quantized layers) costs less as relative indices
    of its non-zeros. The values decoded are identical either way.
    """
    zero = np.flatnonzero(cb == 0.0)
    if zero.size == 0 or codes.size == 0:
        return None
    zero_code = int(zero[0])
    is_zero = codes == zero_code
    if is_zero.mean() < SPARSE_TRY_ZERO_SHARE:
        return None
    positions = np.flatnonzero(~is_zero)
    sparse = smallest_sparse(positions, codes[positions], SPARSE_GAP_BITS, filler=zero_code, alphabet=cb.size,
                             huffman=huffman)
    return sparse if budget.sparse_beats_dense(sparse.gaps.nbytes, sparse.coded.nbytes, dense.nbytes) else None


def _compress_kmeans(array: np.ndarray, settings: TensorSettings, name: str) -> tuple[EncodedTensor, TensorReport]:
    array = np.asarray(array)
    wire = wire_name(array.dtype)
    if wire not in COMPRESSIBLE:
        raise UnsupportedDType(array.dtype, name)
    dtype = numpy_dtype(wire)
    shape = tuple(int(d) for d in array.shape)
    n = array.size
    patterns = None if settings.pruned else Patterns.of(array)
    if patterns is not None:  # a 16-bit float tensor, unpruned: worked on by bit pattern, no float32 copy
        if not patterns.finite():
            raise _NonFinite
        e, signal = 0, patterns.energy()
    else:
        work = np.ascontiguousarray(array.astype(work_dtype(wire), copy=False).ravel())
        if not np.isfinite(work).all():
            raise _NonFinite
        e = scale_exponent(work)  # 0 except for float64 weights of extreme magnitude
        signal = _energy(work, e)

    # Stage 1: prune, then store only the surviving non-zero weights.
    gap_stream = None
    if patterns is not None:
        values = narrow = patterns
    elif settings.pruned:
        mask = prune_mask(work, sparsity=settings.sparsity, quality=settings.quality)
        positions = np.flatnonzero(mask & (work != 0))
        pruned_energy = _energy(work[~mask], e)  # what is not stored decodes to zero
        del mask
        values = work[positions]
        # the survivors of a 16-bit float tensor are clustered and coded by bit pattern too
        narrow = (Patterns.of(array.reshape(-1)[positions]) if array.dtype.itemsize <= 2 else None) or values
        gap_stream = positions_to_gaps(positions, settings.gap_bits)
        del positions
    else:
        values = narrow = work
    fillers = gap_stream is not None and gap_stream.fillers > 0

    # Stage 2: share weights; the fillers' zero takes one of the 2**b codebook slots.
    k = (1 << settings.code_bits) - (1 if fillers else 0)
    if values.size:
        centroids = kmeans_1d(narrow, k, init=settings.init, iterations=settings.kmeans_iterations,
                              seed=settings.seed).centroids
    else:
        centroids = np.zeros(0)
    cb = _codebook(centroids, dtype, fillers)
    codes = assign(narrow, cb) if values.size else np.zeros(0, np.uint16)
    del narrow
    error = patterns.squared_error(cb) if patterns is not None else _squared_error(values, cb, codes, e)

    if gap_stream is None:
        layout = Dense()
        stored = CodebookValues.coded(cb.astype(dtype), code_stream(codes, cb.size, huffman=settings.huffman))
        entries, n_fillers, kind = n, 0, CODEBOOK
    else:
        sparse = build_sparse(gap_stream, codes, filler=int(np.searchsorted(cb, 0.0)) if fillers else 0,
                              alphabet=cb.size, huffman=settings.huffman)
        layout, stored = sparse.layout, sparse.codebook_values(cb.astype(dtype))
        entries, n_fillers, kind = gap_stream.entries, gap_stream.fillers, SPARSE_CODEBOOK
        error += pruned_energy
    encoded = EncodedTensor(dtype=wire, shape=shape, layout=layout, values=stored)

    rel, sqnr = error_measures(signal, error)
    report = TensorReport(name=name, shape=shape, dtype=wire, kind=kind, elements=n, kept=int(values.size),
                          entries=entries, fillers=n_fillers, code_bits=settings.code_bits,
                          gap_bits=settings.gap_bits if gap_stream is not None else None,
                          codebook_size=int(cb.size), rel_rms_error=rel, sqnr_db=sqnr)
    return encoded, report


def compress_tensors(tensors: Mapping[str, np.ndarray], settings: CompressionSettings | None = None, *,
                     progress: bool = False, metadata: Mapping[str, str] | None = None,
                     assign: Mapping[str, Assign] | None = None, input_weights: Mapping[str, np.ndarray] | None = None
                     ) -> tuple[dict[str, np.ndarray | EncodedTensor], list[TensorReport]]:
    """Compress a state dict of numpy arrays.

    Parameters
    ----------
    tensors : mapping of name to ndarray
    settings : CompressionSettings, optional
        Default: the "default" preset (no pruning, 8-bit linear-initialised codebooks
        for floating tensors of at least 2 dimensions and 4096 elements, 9-bit for
        those of 64 Mi elements or more).
    progress : bool
        Show a tqdm progress bar over the tensors.
    metadata : mapping of str to str, optional
        The metadata the file will carry, which a ``bits_per_param`` budget counts
        (see :func:`iter_compress`).
    assign : mapping of str to callable, optional
        Tensor name -> function choosing that tensor's codes (see :func:`iter_compress`).
    input_weights : mapping of str to ndarray, optional
        Tensor name -> the means of its layer's inputs, for row sums (see :func:`iter_compress`).

    Returns
    -------
    (dict, list of TensorReport)
        The dict has the input's names in the input's order: an ``EncodedTensor`` for
        each compressed tensor; for each tensor kept exact (non-floating, too small,
        matched by a keep rule, or with NaN or infinity) the input array itself, or, for
        a float tensor whose bit planes store fewer bytes (``settings.exact``, default
        "planes"), an ``EncodedTensor`` of PLANES values that decodes to it bit for bit.

    See Also
    --------
    iter_compress : the same, one tensor at a time, for inputs too large to hold twice.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> sd = {"fc.weight": rng.standard_normal((64, 128)).astype(np.float32),
    ...       "fc.bias": np.zeros(64, np.float32)}
    >>> out, reports = compress_tensors(sd, CompressionSettings.preset("paper"))
    >>> [r.kind for r in reports]
    ['sparse codebook', 'exact']
    >>> out["fc.bias"] is sd["fc.bias"]
    True
    """
    out: dict[str, np.ndarray | EncodedTensor] = {}
    reports: list[TensorReport] = []
    for name, value, report in iter_compress(tensors, settings, progress=progress, metadata=metadata,
                                             assign=assign, input_weights=input_weights):
        out[name] = value
        reports.append(report)
    return out, reports


def iter_compress(tensors: Mapping[str, np.ndarray], settings: CompressionSettings | None = None, *,
                  progress: bool = False, metadata: Mapping[str, str] | None = None,
                  assign: Mapping[str, Assign] | None = None, input_weights: Mapping[str, np.ndarray] | None = None
                  ) -> Iterator[tuple[str, np.ndarray | EncodedTensor, TensorReport]]:
    """Compress tensors one at a time: yield ``(name, value, report)`` in the input's order.

    ``value`` and ``report`` are what :func:`compress_tensors` gives for ``name``.
    ``tensors`` may be lazy, a mapping that loads each value when indexed (the sources
    of :func:`dcformat.convert.open_checkpoint`): each value is fetched with
    ``tensors[name]`` when its turn comes and dropped once it is yielded, so this holds
    one input tensor and its encoding at a time (the caller should drop what it is
    given, too).

    Settings with ``bits_per_param`` read every tensor once more, first, to plan the
    budget, and keep only a summary of each ``ecq`` tensor (its statistics and planning
    histogram). The budget is the file the yielded tensors make, written with the
    default alignment, in bits per parameter, and counts every byte of it
    (:mod:`dcformat.compress.budget`): the file lands within 1 % of it or 0.02 bits per
    parameter, whichever is larger. A budget the model cannot meet raises
    :class:`~dcformat.errors.InvalidSettings` naming the smallest one it can, before any
    tensor is encoded; so does one these settings cannot spend (every ``ecq`` tensor at
    its finest), naming the largest. ``metadata`` is the metadata the file will carry,
    counted too; by default the ``metadata`` attribute of ``tensors`` when it has one
    (the sources of :func:`dcformat.convert.open_checkpoint` do), else none.

    ``assign`` maps a tensor's name to ``f(x, codebook) -> codes`` for an ``ecq`` tensor
    (any other quantizer named there raises :class:`~dcformat.errors.InvalidSettings`):
    the step, the plan and the codebook stay the quantizer's, only the codes are ``f``'s
    (``x`` the tensor's values flat in C order, divided by their row scales with
    ``groups="rows"``; ``codebook`` ascending, float64; one integer code per value),
    instead of each value's own cell. The report gives the error of those codes, and a
    budget counts the bytes they take. Error-compensating assignment
    (:mod:`dcformat.training.gptq`) plugs in here; tensors not named are unchanged.

    ``input_weights`` maps a tensor's name to the means of its layer's inputs over their
    spread (:func:`dcformat.training.calibrate.input_weights`): where its settings keep row
    sums, each row's error is summed weighed by them (:func:`dcformat.compress.rowsums.keep_row_sums`),
    the bias that those inputs would see, instead of unweighted.

    Examples
    --------
    >>> w = {"fc.weight": np.linspace(-1, 1, 8192, dtype=np.float32).reshape(64, 128)}
    >>> [(name, report.kind) for name, _, report in iter_compress(w)]
    [('fc.weight', 'codebook')]
    """
    if settings is None:
        settings = CompressionSettings.preset("default")
    if not isinstance(settings, CompressionSettings):
        raise InvalidSettings(f"settings must be CompressionSettings, got {type(settings).__name__}")
    return _iter_compress(tensors, settings, progress, metadata, assign or {}, input_weights or {})


def _iter_compress(tensors: Mapping, settings: CompressionSettings, progress: bool, metadata, assign: Mapping,
                   input_weights: Mapping):
    from tqdm.auto import tqdm

    alloc = None
    if settings.bits_per_param is not None:
        alloc = _plan_budget(tensors, settings, getattr(tensors, "metadata", None) if metadata is None else metadata)
    bar = tqdm(list(tensors), disable=not progress, unit="tensor", desc="compressing")
    for name in bar:
        if progress:
            bar.set_postfix_str(name, refresh=False)
        array = _array(name, tensors[name])
        hints = Hints(assign.get(name), input_weights.get(name))
        if alloc is not None and name in alloc:
            item = (name, *_compress_on_budget(name, array, settings, alloc, hints))
        else:
            item = (name, *_compress_entry(name, array, settings, hints))
        del array
        yield item
        del item  # the caller has it: keeping it here would hold two tensors while the next loads


def _compress_entry(name: str, array: np.ndarray, settings: CompressionSettings,
                    hints: Hints = NO_HINTS) -> tuple[np.ndarray | EncodedTensor, TensorReport]:
    shape = tuple(int(d) for d in array.shape)
    wire = wire_name(array.dtype)
    reason = settings.exact_reason(name, shape, wire)
    if reason is None:
        try:
            return _compress(array, settings.settings_for(name, shape, wire), name, hints=hints)
        except _NonFinite:
            reason = "non-finite values"
    return exact_tensor(name, array, settings.exact), _exact_report(name, array, reason)


def _compress_on_budget(name: str, array: np.ndarray, settings: CompressionSettings,
                        alloc, hints: Hints = NO_HINTS) -> tuple[EncodedTensor, TensorReport]:
    """An ``ecq`` tensor at the step ``alloc`` gives it, its stored size reported back."""
    ts = settings.settings_for(name, tuple(int(d) for d in array.shape), wire_name(array.dtype))

    def encode(step: float):
        encoded, report = _compress(array, ts, name, step, hints)
        return (encoded, report), budget.stored_cost(name, encoded).total

    return alloc.encode(name, encode)


def _array(name: str, value) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise UsageError(f"tensor {name!r} is a {type(value).__name__}, expected a numpy array")
    return value


def _plan_budget(tensors: Mapping[str, np.ndarray], settings: CompressionSettings, metadata):
    """The :class:`~dcformat.compress.ratedistortion.Allocation` of the ``ecq`` tensors under
    the ``bits_per_param`` budget, or None when there are no parameters.

    The budget is the whole file (:mod:`dcformat.compress.budget`): exact tensors count at
    their stored size with their records and padding, ``kmeans`` tensors are compressed
    once here to count theirs, the header and the metadata come on top; the ``ecq``
    tensors share the rest by equal slope. Tensors are read one at a time and only the
    planning summaries of the ``ecq`` ones are kept. A budget the model cannot meet (or
    that these settings cannot spend) is refused here, before anything is encoded.
    """
    from .ratedistortion import Allocation, balance

    pad = (DEFAULT_ALIGNMENT - 1) / 2
    fixed = PREAMBLE_SIZE + budget.header_bytes(metadata) + pad  # the header's padding, on average
    params, trailing, cands = 0, 0.0, []
    for name in tensors:
        array = _array(name, tensors[name])
        params += int(array.size)
        entry = _budget_entry(name, array, settings)
        del array
        if isinstance(entry, budget.StoredCost):
            fixed += entry.total
            trailing = entry.trailing
        else:
            cands.append(entry)
            trailing = pad
    if params == 0:
        return None
    fixed -= trailing  # no padding after the file's last segment
    balance(cands, settings.tensor_balance)
    bpp = settings.bits_per_param
    target = bpp * params / 8
    alloc = Allocation(cands, budget.tolerance(bpp) * params / 8)
    if not cands and abs(fixed - target) > alloc.tolerance:
        raise InvalidSettings(
            f"a budget of {bpp:g} bits per parameter steers the ecq quantizer, which no tensor uses here; these "
            f"settings store this model in {8 * fixed / params:.2f} bits per parameter: use quantizer 'ecq' or "
            f"drop the budget")
    smallest, largest = fixed + alloc.smallest, fixed + alloc.largest
    if smallest > target:
        raise InvalidSettings(
            f"a budget of {bpp:g} bits per parameter cannot be met: the smallest budget this model can meet is "
            f"{math.ceil(800 * smallest / params) / 100:.2f} bits per parameter (the tensors kept exact and the "
            f"file's framing take {8 * fixed / params:.2f}, the compressed ones the rest, each at its coarsest: "
            f"quantization noise as strong as its weights)")
    if largest < target - alloc.tolerance:
        raise InvalidSettings(
            f"a budget of {bpp:g} bits per parameter cannot be spent: these settings store this model in at most "
            f"{math.floor(800 * largest / params) / 100:.2f} bits per parameter (every ecq tensor at the finest "
            f"step its codebook of 2**code_bits entries allows); lower the budget or raise code_bits")
    return alloc.start(target - fixed)


def _budget_entry(name: str, array: np.ndarray, settings: CompressionSettings):
    """A tensor's planning summary (``ecq``), or what it adds to the file (a StoredCost)."""
    shape = tuple(int(d) for d in array.shape)
    wire = wire_name(array.dtype)
    if settings.exact_reason(name, shape, wire) is None:
        ts = settings.settings_for(name, shape, wire)
        try:
            if ts.quantizer == "ecq":
                return _candidate(array, ts, name).summarize()
            return budget.stored_cost(name, _compress(array, ts, name)[0])
        except _NonFinite:
            pass
    return budget.stored_cost(name, exact_tensor(name, array, settings.exact))


def reconstruct(encoded: EncodedTensor) -> np.ndarray:
    """Decode an in-memory EncodedTensor as a reader must: plain numpy, no validation shortcuts.

    The output starts as zeros of the tensor's dtype; stored unit j holds
    ``codebook[code_j]`` (or the raw value), placed at unit j (dense) or at
    ``cumsum(gaps + 1)[j] - 1`` (sparse). Bank-valued tensors need their bank and are
    refused.
    """
    dtype = numpy_dtype(encoded.dtype)
    n = encoded.size
    vals = encoded.values
    if isinstance(vals, GroupedValues):  # its float32 arithmetic is the format's: decode it as a reader does
        from ..numpy import load, save

        return load(save({"t": encoded}))["t"]
    if isinstance(vals, CodebookValues):
        codebook = vals.codebook
        if isinstance(codebook, AffineCodebook):  # its float32 entries, rounded as a reader rounds them
            codebook = round_to(codebook.entries(), DType[encoded.dtype]).view(dtype)
        codebook = np.asarray(codebook).astype(dtype, copy=False)
        codes = np.asarray(vals.codes, dtype=np.int64)
        if codes.size and (codes.min() < 0 or codes.max() >= codebook.size):
            raise UsageError("a code is outside the codebook")
        stored = codebook[codes]
    elif isinstance(vals, (RawValues, PlaneValues)):
        stored = np.asarray(vals.values).astype(dtype, copy=False).ravel()
    else:
        raise UsageError(f"reconstruct cannot decode {type(vals).__name__} without its bank")
    if isinstance(encoded.layout, Dense):
        if stored.size != n:
            raise UsageError(f"dense tensor stores {stored.size} values for {n} elements")
        return stored.reshape(encoded.shape).copy()
    positions = gaps_to_positions(encoded.layout.gaps)
    if positions.size != stored.size:
        raise UsageError(f"{positions.size} gaps for {stored.size} values")
    if positions.size and positions[-1] >= n:
        raise UsageError(f"gaps reach position {int(positions[-1])}, tensor has {n} elements")
    out = np.zeros(n, dtype)
    out[positions] = stored
    return out.reshape(encoded.shape)
