"""Write a trained model to ``.dcf`` exactly as it evaluates.

A weight parametrized by :class:`~dcformat.training.quantize.SharedWeight` is written from
its codebook and codes directly, never re-clustered: the decoded tensor is
``codebook[code]`` in the weight's dtype, bit for bit the tensor the forward pass used.
A pruned weight is stored ``Sparse`` (relative gaps of ``gap_bits`` bits, fillers where a
gap is too wide, whose code points at an exact ``0.0``), an unpruned one ``Dense``; both
with ``CodebookValues``, laid out by :func:`dcformat.encodings.sparse.build_sparse`. Streams
are Huffman-coded, or packed at fixed width when that is smaller for a short stream
(:func:`dcformat.streams.choose.code_stream`), or all packed with ``huffman=False``; each is
coded once, and the writer stores that payload. Every other tensor of the state dict is
stored exactly (raw), or, with ``raw_sparse=True``, a floating tensor of two or more
dimensions holding zeros is stored ``Sparse`` with raw values (a pruned but unquantized
model; a pruned ``-0.0`` is not kept, it decodes to ``+0.0``).

Names are the model's own state-dict names (``ip1.weight``, not
``ip1.parametrizations.weight.original``), so the file loads into the unparametrized model.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from ..container.writer import ContainerWriter
from ..encodings.model import CodebookValues, Dense, EncodedTensor
from ..encodings.sparse import build_sparse, positions_to_gaps
from ..errors import UsageError
from ..format.constants import DEFAULT_ALIGNMENT
from ..interop.torch_arrays import to_numpy
from ..streams.choose import code_stream
from .gaps import choose_gap_bits, choose_gaps, needs_fillers
from .quantize import SharedWeight

# choose_gap_bits and needs_fillers live in .gaps (quantize needs them too); still importable from here.
__all__ = ["choose_gap_bits", "needs_fillers", "encode_shared", "effective_state_dict", "export_tensors",
           "export_dcf"]

_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def _canonical_codebook(codebook: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge entries with identical bits and sort by value; codes remapped. Values unchanged."""
    carrier = _UINT[codebook.dtype.itemsize]
    bits, inverse = np.unique(codebook.view(carrier), return_inverse=True)
    values = bits.view(codebook.dtype)
    order = np.argsort(values.astype(np.float64), kind="stable")
    rank = np.empty(order.size, np.int64)
    rank[order] = np.arange(order.size)
    return values[order].copy(), rank[inverse.ravel()][codes]


def encode_shared(codebook: np.ndarray, codes: np.ndarray, *, gap_bits: int | None = None,
                  huffman: bool = True) -> EncodedTensor:
    """The EncodedTensor of a shared weight: ``codebook`` (k entries) and ``codes`` in [0, k].

    Code ``k`` marks a pruned entry (decodes to 0.0 and is not stored). With any pruned
    entry the layout is ``Sparse`` with ``gap_bits``-bit gaps (default
    :func:`choose_gap_bits`); fillers get an exact ``+0.0`` codebook entry, reusing one if
    the codebook has it. The decoded tensor equals ``concatenate([codebook, [0]])[codes]``
    bit for bit.
    """
    from ..format.dtypes import dtype_of

    codebook = np.ascontiguousarray(codebook)
    if codebook.ndim != 1 or codebook.size == 0:
        raise UsageError("codebook must be a non-empty 1-d array")
    wire = dtype_of(codebook).name
    shape = tuple(int(d) for d in np.shape(codes))
    flat = np.asarray(codes, dtype=np.int64).ravel()
    k = codebook.size
    if flat.size and (flat.min() < 0 or flat.max() > k):
        raise UsageError(f"codes must be in [0, {k}] (k = pruned)")
    kept = flat != k
    if kept.all():
        cb, stream = _canonical_codebook(codebook, flat)
        return EncodedTensor(dtype=wire, shape=shape, layout=Dense(), values=CodebookValues.coded(
            cb, code_stream(stream, cb.size, huffman=huffman)))
    positions = np.flatnonzero(kept)
    gs, coded_gaps = _gap_stream(positions, gap_bits, huffman)
    cb, kept_codes = _canonical_codebook(codebook, flat[positions])
    zero_code = 0
    if gs.fillers:
        zero_bits = np.zeros(1, codebook.dtype).view(_UINT[codebook.itemsize])[0]
        hit = np.flatnonzero(cb.view(_UINT[codebook.itemsize]) == zero_bits)
        if hit.size:
            zero_code = int(hit[0])
        else:  # append +0.0 in value order (after any -0.0 and the negatives)
            zero_code = int(np.searchsorted(cb.astype(np.float64), 0.0, side="right"))
            kept_codes = kept_codes + (kept_codes >= zero_code)
            cb = np.insert(cb, zero_code, np.zeros(1, cb.dtype))
    sparse = build_sparse(gs, kept_codes, filler=zero_code, alphabet=cb.size, huffman=huffman, gaps=coded_gaps)
    return EncodedTensor(dtype=wire, shape=shape, layout=sparse.layout, values=sparse.codebook_values(cb))


def _gap_stream(positions: np.ndarray, gap_bits: int | None, huffman: bool):
    """(gap stream, its coding or None): at ``gap_bits``, else at the width :func:`choose_gaps`
    picks, whose coding is kept when it is the one the export makes (Huffman allowed)."""
    if gap_bits is not None:
        return positions_to_gaps(positions, gap_bits), None
    gs, coded = choose_gaps(positions)
    return gs, (coded if huffman else None)


def _encode_raw_sparse(array: np.ndarray, gap_bits: int | None, huffman: bool) -> EncodedTensor:
    from ..format.dtypes import dtype_of

    flat = array.ravel()
    positions = np.flatnonzero(flat != 0)
    gs, coded_gaps = _gap_stream(positions, gap_bits, huffman)
    sparse = build_sparse(gs, flat[positions], filler=0, huffman=huffman, gaps=coded_gaps)
    return EncodedTensor(dtype=dtype_of(array).name, shape=tuple(int(d) for d in array.shape),
                         layout=sparse.layout, values=sparse.raw_values())


def _parametrized(model: nn.Module) -> dict[str, tuple[nn.Module, str, SharedWeight | None]]:
    """Clean name ('a.b.weight') -> (module, attr, SharedWeight or None) of parametrized tensors."""
    from torch.nn.utils import parametrize

    out = {}
    for mname, module in model.named_modules():
        if parametrize.is_parametrized(module):
            for attr, plist in module.parametrizations.items():
                shared = next((p for p in plist if isinstance(p, SharedWeight)), None)
                out[f"{mname}.{attr}" if mname else attr] = (module, attr, shared)
    return out


@torch.no_grad()
def effective_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict under the unparametrized names, with parametrized tensors as the forward sees them.

    Codebooks and codes of shared weights are left out; the result loads into the plain model.
    """
    para = _parametrized(model)
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        prefix, sep, rest = key.partition("parametrizations.")
        if sep and (prefix == "" or prefix.endswith(".")):
            attr, _, tail = rest.partition(".")
            if tail == "original":
                name = prefix + attr
                module, attr_, _ = para[name]
                out[name] = getattr(module, attr_).detach().clone()
            continue
        out[key] = value.detach()
    return out


@torch.no_grad()
def export_tensors(model: nn.Module, *, huffman: bool = True, raw_sparse: bool = False,
                   gap_bits: int | Mapping[str, int] | None = None) -> dict[str, EncodedTensor | np.ndarray]:
    """What :func:`export_dcf` writes: an EncodedTensor per shared (or, with ``raw_sparse``,
    pruned) weight and a numpy array per other tensor, under the unparametrized names.

    ``gap_bits`` overrides the gap width (one number or a dict by name); default: the
    width the weight was quantized for, else :func:`choose_gap_bits`.
    """
    para = _parametrized(model)
    out: dict[str, EncodedTensor | np.ndarray] = {}
    for name, tensor in effective_state_dict(model).items():
        gb = gap_bits.get(name) if isinstance(gap_bits, Mapping) else gap_bits
        shared = para.get(name, (None, None, None))[2]
        if shared is not None:
            if gb is None:
                gb = shared.gap_bits
            out[name] = encode_shared(to_numpy(shared.codebook), to_numpy(shared.codes),
                                      gap_bits=gb, huffman=huffman)
            continue
        array = to_numpy(tensor, name)
        if (raw_sparse and array.ndim >= 2 and array.dtype.kind == "f" and array.size
                and not np.all(array != 0)):
            out[name] = _encode_raw_sparse(array, gb, huffman)
        else:
            out[name] = array
    return out


def export_dcf(model: nn.Module, path, metadata: Mapping[str, str] | None = None, *, huffman: bool = True,
               raw_sparse: bool = False, gap_bits: int | Mapping[str, int] | None = None,
               alignment: int = DEFAULT_ALIGNMENT, overwrite: bool = False) -> dict[str, EncodedTensor | np.ndarray]:
    """Write ``model`` to the ``.dcf`` file ``path`` (atomically); returns what was written.

    ``alignment`` is the segment alignment, by default the 64 bytes writers use
    (:data:`dcformat.format.constants.DEFAULT_ALIGNMENT`); 8, the smallest the format
    allows, saves a few bytes of padding per record on a small model. See
    :func:`export_tensors`.
    """
    tensors = export_tensors(model, huffman=huffman, raw_sparse=raw_sparse, gap_bits=gap_bits)
    writer = ContainerWriter(metadata, alignment=alignment)
    for name, value in tensors.items():
        writer.add_tensor(name, value)
    writer.write(path, overwrite=overwrite)
    return tensors
