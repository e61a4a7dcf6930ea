"""Error-compensating code assignment (GPTQ, Frantar et al. 2022) from calibration inputs.

The ``ecq`` quantizer gives each weight the code of its own cell. When the layer's inputs
are known, the layer's output error ``||(W - Q) X||**2`` is what matters, and it is
lowered by choosing the codes one input column at a time, each column's rounding error
spread onto the columns not yet quantized through the inverse of ``H = E[x x^T]``, the
second moment of the layer's input (GPTQ). The codebook, the step and the bit budget stay
the ``ecq`` plan's; only the codes change (the pipeline's ``assign`` hook,
:func:`dcformat.compress.iter_compress`), so the file is decoded as any other.

What is measured: for each ``Conv2d`` and ``Linear`` of the module, ``H`` over the
calibration batches, from forward pre-hooks on the dense module (every layer sees the
dense model's inputs, not those of the layers quantized before it), accumulated in
float64 one batch at a time; convolution inputs are unfolded
(``torch.nn.functional.unfold``) so that ``H``'s columns are the weight's flattened
``in/groups x kh x kw``, a chunk of samples at a time. Grouped and depthwise convolutions
get one ``H`` per group (a depthwise conv: one ``kh*kw`` square per channel). Convolutions
with string padding ('same'), non-zero padding modes, or other layer kinds are left to
the quantizer's own assignment. The Hessians are held until the compression ends: per
layer ``groups x c x c`` float64 values for ``c`` input columns per group.

The assignment (:func:`gptq_codes`): ``H`` dampened by ``damp`` times its mean diagonal,
the upper Cholesky factor ``U`` of ``H^-1``; columns in blocks of ``block``, each value
snapped to the nearest codebook entry after the updates of the columns before it, the
error ``(w - q) / U[i, i]`` pushed onto the later columns of its block by ``U[i, i:]``,
and onto the later blocks at once; optionally columns in order of decreasing ``H[i, i]``
(``act_order``). Rows are independent, so row scales (``groups="rows"``) do not change it.

Examples
--------
>>> torch.manual_seed(0) and None
>>> net = torch.nn.Sequential(torch.nn.Linear(64, 64))
>>> batches = [torch.randn(32, 64) @ torch.randn(64, 64) for _ in range(4)]
>>> from dcformat.compress import CompressionSettings
>>> settings = CompressionSettings(bits_per_param=6).with_overrides(quantizer="ecq", code_bits=12)
>>> out, reports = compress_module(net, batches, settings)
>>> reports[0].name, reports[0].kind
('0.weight', 'codebook')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InvalidSettings, UsageError

#: Dampening added to H's diagonal, as a share of its mean diagonal.
DAMP = 0.01
#: Columns per block of the lazy batch update.
BLOCK = 128
#: Most elements of one unfolded chunk of a convolution's input (float32: 128 MiB).
UNFOLD_ELEMENTS = 1 << 25


@dataclass
class LayerHessian:
    """The input second moment of one layer: ``sum`` of ``x x^T`` over ``rows`` inputs.

    ``sum`` has shape ``(groups, c, c)``; the weight's output channels split into
    ``groups`` consecutive blocks, block ``j`` reading the inputs of ``sum[j]``.
    """

    sum: torch.Tensor  # float64
    rows: int = 0

    @property
    def groups(self) -> int:
        return int(self.sum.shape[0])

    @property
    def columns(self) -> int:
        return int(self.sum.shape[1])

    def matrix(self) -> np.ndarray:
        """``E[x x^T]``, ``(groups, c, c)`` float64."""
        return (self.sum / max(self.rows, 1)).numpy()


def _handled(layer: torch.nn.Module) -> bool:
    if isinstance(layer, torch.nn.Linear):
        return True
    return (isinstance(layer, torch.nn.Conv2d) and not isinstance(layer.padding, str)
            and layer.padding_mode == "zeros")


def _columns(layer: torch.nn.Module, x: torch.Tensor):
    """Chunks of the layer's input as ``(groups, rows, c)`` float64 tensors."""
    if isinstance(layer, torch.nn.Linear):
        flat = x.detach().reshape(-1, x.shape[-1])
        step = max(1, UNFOLD_ELEMENTS // max(flat.shape[1], 1))
        for i in range(0, flat.shape[0], step):
            yield flat[i:i + step].double()[None]
        return
    g = layer.groups
    x = x.detach()
    per_sample = x[:1].numel() * layer.kernel_size[0] * layer.kernel_size[1]
    step = max(1, UNFOLD_ELEMENTS // max(per_sample, 1))
    for i in range(0, x.shape[0], step):
        u = torch.nn.functional.unfold(x[i:i + step], layer.kernel_size, dilation=layer.dilation,
                                       padding=layer.padding, stride=layer.stride)  # (n, C*kh*kw, L)
        n, c, length = u.shape
        # (groups, n * L, C/groups * kh * kw): unfold's channel-major order is the weight's flattened order
        yield u.reshape(n, g, c // g, length).permute(1, 0, 3, 2).reshape(g, n * length, c // g).double()


def layer_hessians(module: torch.nn.Module, batches: Iterable, *, progress: bool = False
                   ) -> dict[str, LayerHessian]:
    """``H = E[x x^T]`` of every handled layer's input over ``batches``, by weight name.

    Parameters
    ----------
    module : torch.nn.Module
        Run in eval mode, without gradients, on each batch (its mode is restored).
    batches : iterable of tensors
        The calibration inputs, one ``module(batch)`` call each.
    progress : bool
        A progress bar over the batches.

    Returns
    -------
    dict of str to LayerHessian
        Keyed by the weight's ``state_dict`` name (``"features.0.0.weight"``).
    """
    found: dict[str, LayerHessian] = {}

    def visit(name, cols):
        h = found.get(name)
        if h is None:
            h = found[name] = LayerHessian(torch.zeros(cols.shape[0], cols.shape[2], cols.shape[2],
                                                       dtype=torch.float64))
        h.sum += cols.transpose(1, 2) @ cols
        h.rows += int(cols.shape[1])

    visit_layer_inputs(module, batches, visit, progress=progress)
    return found


def visit_layer_inputs(module: torch.nn.Module, batches: Iterable, visit, *, progress: bool = False) -> None:
    """``visit(weight name, cols)`` for every chunk of every handled layer's input over
    ``batches``: ``cols`` is ``(groups, rows, c)`` float64, a row per output position, its
    ``c`` values in the order of a row of the weight (flattened, per group). The module runs
    in eval mode without gradients (its mode is restored)."""
    from tqdm.auto import tqdm

    layers = {f"{name}.weight" if name else "weight": m for name, m in module.named_modules() if _handled(m)}

    def hook(name, layer):
        def pre(_, inputs):
            for cols in _columns(layer, inputs[0]):
                visit(name, cols)
        return pre

    handles = [m.register_forward_pre_hook(hook(name, m)) for name, m in layers.items()]
    training = module.training
    try:
        module.eval()
        with torch.no_grad():
            for batch in tqdm(batches, disable=not progress, unit="batch", desc="layer inputs"):
                module(batch)
    finally:
        for h in handles:
            h.remove()
        module.train(training)


def _snap(w: torch.Tensor, cb: torch.Tensor) -> torch.Tensor:
    """Index of the nearest entry of the ascending ``cb`` for each value of ``w``."""
    hi = torch.searchsorted(cb, w.contiguous()).clamp_(1, max(cb.numel() - 1, 1))
    lo = hi - 1
    if cb.numel() == 1:
        return torch.zeros_like(hi)
    return torch.where((w - cb[lo]).abs() <= (cb[hi] - w).abs(), lo, hi)


def _inverse_factor(h: torch.Tensor, damp: float) -> torch.Tensor:
    """Upper Cholesky factor of ``(H + damp * mean diag * I)^-1`` per group; more damping if needed."""
    h = h.clone()
    diag = torch.diagonal(h, dim1=1, dim2=2)
    diag[diag <= 0] = 1.0  # a column never excited: any code will do, nothing to compensate
    mean = diag.mean(dim=1)
    eye = torch.eye(h.shape[1], dtype=h.dtype)
    for _ in range(6):
        lower, info = torch.linalg.cholesky_ex(h + (damp * mean)[:, None, None] * eye)
        if not bool(info.any()):
            return torch.linalg.cholesky(torch.cholesky_inverse(lower), upper=True)
        damp *= 10.0
    raise UsageError("a layer's input second moment is not positive definite even with dampening")


def gptq_codes(w: np.ndarray, hessian: np.ndarray, codebook: np.ndarray, *, damp: float = DAMP,
               block: int = BLOCK, act_order: bool = False) -> np.ndarray:
    """GPTQ codes of ``w`` (rows x c) in ``codebook`` under ``hessian`` ((groups,) c x c).

    Returns one uint16 code per element of ``w``, in C order (as ``ecq.emit``).
    """
    h = torch.from_numpy(np.asarray(hessian, np.float64))
    if h.ndim == 2:
        h = h[None]
    g, c = int(h.shape[0]), int(h.shape[1])
    w = np.asarray(w, np.float64)
    if w.size % (g * c) or w.size == 0:
        raise UsageError(f"{w.size} weights do not split into {g} group(s) of rows of {c} columns")
    rows = w.size // (g * c)
    W = torch.from_numpy(w.reshape(g, rows, c).copy())
    cb = torch.from_numpy(np.ascontiguousarray(codebook, np.float64))
    perm = None
    if act_order:
        perm = torch.argsort(torch.diagonal(h, dim1=1, dim2=2), dim=1, descending=True)  # (g, c)
        index = torch.arange(g)[:, None, None]
        h = h[index, perm[:, :, None], perm[:, None, :]]
        W = torch.gather(W, 2, perm[:, None, :].expand(g, rows, c))
    U = _inverse_factor(h, damp)
    codes = torch.empty(g, rows, c, dtype=torch.int64)
    for i1 in range(0, c, block):
        i2 = min(i1 + block, c)
        W1, U1 = W[:, :, i1:i2].clone(), U[:, i1:i2, i1:i2]
        E1 = torch.zeros_like(W1)
        for i in range(i2 - i1):
            col = W1[:, :, i]
            k = _snap(col, cb)
            e = (col - cb[k]) / U1[:, i, i][:, None]
            W1[:, :, i:] -= e[:, :, None] * U1[:, None, i, i:]
            E1[:, :, i] = e
            codes[:, :, i1 + i] = k
        if i2 < c:
            W[:, :, i2:] -= E1 @ U[:, i1:i2, i2:]
    if perm is not None:
        codes = torch.empty_like(codes).scatter_(2, perm[:, None, :].expand(g, rows, c), codes)
    return codes.reshape(-1).numpy().astype(np.uint16)


def assigners(hessians: Mapping[str, LayerHessian], *, damp: float = DAMP, block: int = BLOCK,
              act_order: bool = False) -> dict[str, object]:
    """The pipeline's ``assign`` mapping: weight name -> ``f(x, codebook) -> codes`` by GPTQ."""
    def one(h: LayerHessian):
        matrix = h.matrix()

        def assign(x: np.ndarray, codebook: np.ndarray) -> np.ndarray:
            return gptq_codes(x, matrix, codebook, damp=damp, block=block, act_order=act_order)
        return assign

    return {name: one(h) for name, h in hessians.items()}


def compress_module(module: torch.nn.Module, batches: Iterable, settings, *, progress: bool = False,
                    damp: float = DAMP, act_order: bool = False, metadata: Mapping[str, str] | None = None):
    """:func:`~dcformat.compress.compress_tensors` of ``module.state_dict()``, the codes of its
    ``Conv2d`` and ``Linear`` weights chosen by GPTQ on ``batches``.

    ``settings`` must compress those weights with the ``ecq`` quantizer (a bit budget or an
    error bound); the weights it keeps exact stay exact. Returns ``(dict, reports)`` as
    ``compress_tensors`` does.
    """
    from ..compress.pipeline import compress_tensors

    tensors = {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
    hessians = layer_hessians(module, batches, progress=progress)
    return compress_tensors(tensors, settings, progress=progress, metadata=metadata,
                            assign=assigners(_ecq_only(hessians, tensors, settings), damp=damp,
                                             act_order=act_order))


def _ecq_only(hessians: Mapping[str, LayerHessian], tensors: Mapping[str, np.ndarray], settings):
    """The Hessians of the weights ``settings`` compresses with ``ecq`` (the others keep
    their own assignment); a handled weight on another quantizer is refused."""
    from ..compress._dtypes import wire_name

    kept, names = {}, set(tensors)
    for name, h in hessians.items():
        if name not in names:
            continue
        array = tensors[name]
        shape, wire = tuple(int(d) for d in array.shape), wire_name(array.dtype)
        if settings.exact_reason(name, shape, wire) is not None:
            continue
        if settings.settings_for(name, shape, wire).quantizer != "ecq":
            raise InvalidSettings(f"tensor {name!r}: GPTQ assignment needs the ecq quantizer (a bits-per-param "
                                  f"budget or an error bound), these settings use kmeans")
        kept[name] = h
    return kept


def compress_checkpoint(src, dst, settings, module: torch.nn.Module, batches, *, prototxt=None,
                        overwrite: bool = False, progress: bool = False, safe_globals=(), damp: float = DAMP,
                        act_order: bool = False) -> tuple[list, list[str]]:
    """:func:`dcformat.convert.compress_checkpoint` with GPTQ codes for ``module``'s layers
    (``module`` holds ``src``'s tensors: :func:`dcformat.training.calibrate.build_module`)."""
    from ..container.writer import StreamingWriter
    from ..convert import compress_into, open_checkpoint

    hessians = layer_hessians(module, batches, progress=progress)
    with open_checkpoint(src, prototxt=prototxt, safe_globals=safe_globals) as checkpoint, \
            StreamingWriter(dst, checkpoint.metadata, overwrite=overwrite) as writer:
        assign = assigners(_ecq_only(hessians, checkpoint.arrays(), settings), damp=damp, act_order=act_order)
        reports = compress_into(writer, checkpoint, settings, progress=progress, assign=assign)
    return reports, checkpoint.skipped

