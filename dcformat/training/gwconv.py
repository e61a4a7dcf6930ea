"""Global Weight convolutions: one bank of L kernels for the whole network.

A :class:`GWConv2d` is a drop-in for ``nn.Conv2d`` (``groups=1``, square kernel ``K x K``,
``padding_mode="zeros"``) that holds no weights of its own: it keeps a reference to a
:class:`KernelBank` (an ``nn.Module`` whose ``weight`` is an ``(L, K, K)`` parameter,
shared *by reference* by every layer) and a ``selectors`` parameter of shape
``(out, in)``, one value in ``[0, 1]`` per channel pair. The kernel of pair (o, i) is
``bank.weight[index[o, i]]`` with ``index = round(clamp(selector, 0, 1) * (L - 1))``
(``torch.round``: half to even). The effective weight is exactly that gather, so
:func:`export_gw` can write it as selectors into a file-level bank and the decoder rebuilds
it bit for bit.

Training rules for the rounding (``GWConv2d.rule``; measured in
``benchmarks/gwconv_bench.py``, results in ``benchmarks/results/gwconv_bench.txt``):

``"ste"`` (straight-through, the default)
    The forward pass uses ``bank[index]``. The backward pass gives the bank the exact
    gradient of the gather (summed per bank kernel by autograd's scatter-add) and gives
    each selector the gradient of the *linear interpolation* between the two bank
    kernels around its continuous position ``p = s * (L - 1)``:
    ``dL/ds = (L - 1) * <dL/dW, bank[floor p + 1] - bank[floor p]>``. The post-hoc bank
    is ordered along its first principal component (:func:`dcformat.compress.bank.order_bank`),
    so neighbouring indices hold similar kernels and this 1-D gradient means something.
    Call :func:`clamp_selectors_` after each optimizer step.
``"reassign"`` (periodic reassignment)
    Selectors get no gradient. Each layer accumulates the gradient ``G`` of its effective
    weight; :func:`reassign_` (call it every few steps) moves each pair to the bank
    kernel nearest to ``bank[index] - step * G`` (a full-precision shadow weight that
    is reset onto the bank at every reassignment), then clears ``G``.

With ``selectors.requires_grad = False`` (:func:`freeze_selectors`) only the bank trains:
the post-hoc fine-tuning of the bank with fixed selectors.

:func:`convert_to_gwconv` turns every eligible ``nn.Conv2d`` of a trained model into a
GWConv2d sharing one bank initialised post-hoc by :func:`dcformat.compress.bank.build_bank`
(k-means over all kernels of the network); 1x1 convs, grouped convs and linear layers
stay as they are. Changing the weights (conversion, bank quantization) moves the
activation statistics that BatchNorm's running averages describe;
:func:`recalibrate_batchnorm_` recomputes them from a few training batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair

from ..compress.bank import build_bank, nearest_kernels
from ..compress.kmeans import assign, kmeans_1d
from ..container.writer import ContainerWriter
from ..encodings.model import BankValues, CodebookValues, Dense, EncodedTensor
from ..errors import UsageError
from ..format.constants import DEFAULT_ALIGNMENT
from ..interop.torch_arrays import to_numpy, wire_name
from ..streams.choose import code_stream
from .export import export_tensors

__all__ = ["KernelBank", "GWConv2d", "RULES", "gw_layers", "eligible_conv", "convert_to_gwconv",
           "clamp_selectors_", "freeze_selectors", "reassign_", "quantize_bank_", "recalibrate_batchnorm_",
           "export_gw", "save_gw", "parameter_counts"]

RULES = ("ste", "reassign")


class KernelBank(nn.Module):
    """``weight``: an ``(L, K, K)`` parameter of kernels shared by every GWConv2d."""

    def __init__(self, bank_size: int, kernel_size: int, *, init: torch.Tensor | None = None,
                 device=None, dtype=None):
        super().__init__()
        if not 1 <= bank_size <= 1 << 16:
            raise UsageError(f"bank_size must be in [1, 65536], got {bank_size}")
        if init is None:
            w = torch.empty(bank_size, kernel_size, kernel_size, device=device, dtype=dtype)
            nn.init.normal_(w, std=(2.0 / (kernel_size * kernel_size * 16)) ** 0.5)
        else:
            w = torch.as_tensor(init, device=device, dtype=dtype).detach().clone()
            if w.shape != (bank_size, kernel_size, kernel_size):
                raise UsageError(f"bank init has shape {tuple(w.shape)}, expected "
                                 f"{(bank_size, kernel_size, kernel_size)}")
        self.weight = nn.Parameter(w)

    @property
    def size(self) -> int:
        return self.weight.shape[0]

    @property
    def kernel_size(self) -> int:
        return self.weight.shape[-1]

    def extra_repr(self) -> str:
        return f"L={self.size}, K={self.kernel_size}x{self.kernel_size}"


class GWConv2d(nn.Module):
    """``nn.Conv2d`` whose (out, in) kernels are ``bank[round(selector * (L - 1))]``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", *, bank: KernelBank,
                 rule: str = "ste", device=None, dtype=None):
        super().__init__()
        ks = _pair(kernel_size)
        if groups != 1 or padding_mode != "zeros":
            raise UsageError("GWConv2d supports groups=1 and padding_mode='zeros' only")
        if ks[0] != ks[1] or ks[0] != bank.kernel_size:
            raise UsageError(f"kernel_size {ks} does not match the bank's {bank.kernel_size}x{bank.kernel_size}")
        if rule not in RULES:
            raise UsageError(f"rule must be one of {RULES}, got {rule!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.dilation = ks, _pair(stride), _pair(dilation)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        self.groups, self.padding_mode, self.rule = 1, padding_mode, rule
        self.bank = bank  # a submodule of every layer: parameters() lists it once
        dtype = dtype or bank.weight.dtype
        self.selectors = nn.Parameter(torch.rand(out_channels, in_channels, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(out_channels, device=device, dtype=dtype)) if bias else None
        self.register_buffer("weight_grad", None, persistent=False)  # "reassign": accumulated dL/dW

    # -- indices ---------------------------------------------------------------------
    def indices(self) -> torch.Tensor:
        """int64 (out, in): the bank kernel each pair uses, as the forward pass does."""
        with torch.no_grad():
            return torch.round(self.selectors.clamp(0, 1) * (self.bank.size - 1)).long()

    def set_indices(self, index) -> None:
        """Point each pair at bank kernel ``index[o, i]`` (selector = index / (L - 1))."""
        index = torch.as_tensor(index, dtype=torch.float64, device=self.selectors.device)
        if index.shape != self.selectors.shape:
            raise UsageError(f"index shape {tuple(index.shape)} != {tuple(self.selectors.shape)}")
        if index.numel() and (index.min() < 0 or index.max() > self.bank.size - 1):
            raise UsageError("index out of the bank's range")
        s = index / max(self.bank.size - 1, 1)
        with torch.no_grad():
            self.selectors.copy_(s.to(self.selectors.dtype))
        if not torch.equal(self.indices(), index.long()):  # float rounding must not move an index
            raise UsageError("selector dtype cannot represent these indices")

    def effective_weight(self) -> torch.Tensor:
        """The (out, in, K, K) weight the forward pass uses (differentiable in the bank)."""
        return self.bank.weight[self.indices()]

    def _ste_weight(self) -> torch.Tensor:
        bank = self.bank.weight
        L = bank.shape[0]
        w = bank[self.indices()]
        if L < 2 or not self.selectors.requires_grad:
            return w
        p = self.selectors.clamp(0, 1) * (L - 1)
        lo = torch.floor(p.detach()).long().clamp(max=L - 2)
        frac = (p - lo.to(p.dtype))[..., None, None]
        b = bank.detach()
        interp = b[lo] + frac * (b[lo + 1] - b[lo])  # differentiable in the selectors only
        return w + (interp - interp.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and torch.is_grad_enabled():
            if self.rule == "ste":
                w = self._ste_weight()
            else:
                w = self.effective_weight()
                if not w.requires_grad:
                    w = w.detach().requires_grad_(True)
                w.register_hook(self._accumulate)
        else:
            w = self.effective_weight()
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, 1)

    def _accumulate(self, g: torch.Tensor) -> None:
        g = g.detach()
        if self.weight_grad is None or self.weight_grad.shape != g.shape:
            self.weight_grad = g.clone()
        else:
            self.weight_grad.add_(g)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, bias={self.bias is not None}, "
                f"rule={self.rule!r}")


# -- model-level helpers -----------------------------------------------------------------

def gw_layers(model: nn.Module) -> Iterator[tuple[str, GWConv2d]]:
    """(name, layer) of every GWConv2d of ``model``, in module order."""
    for name, m in model.named_modules():
        if isinstance(m, GWConv2d):
            yield name, m


def eligible_conv(m: nn.Module) -> bool:
    """A K x K ``nn.Conv2d`` with K > 1, groups=1 and zero padding mode."""
    return (type(m) is nn.Conv2d and m.groups == 1 and m.padding_mode == "zeros"
            and m.kernel_size[0] == m.kernel_size[1] and m.kernel_size[0] > 1)


def convert_to_gwconv(model: nn.Module, bank_size: int, *, rule: str = "ste", iterations: int = 50,
                      seed: int = 0) -> KernelBank:
    """Replace every eligible conv of ``model`` (in place) by a GWConv2d; returns the bank.

    The bank is built post-hoc from the convs' current kernels (network-wide k-means,
    :func:`dcformat.compress.bank.build_bank`) and may hold fewer than ``bank_size``
    kernels when the network has fewer distinct ones; each pair points at its nearest
    bank kernel. Biases, stride, padding and dilation are kept.
    """
    convs = [(n, m) for n, m in model.named_modules() if eligible_conv(m)]
    if not convs:
        raise UsageError("the model has no eligible K x K conv (K > 1, groups=1)")
    sizes = {m.kernel_size[0] for _, m in convs}
    if len(sizes) != 1:
        raise UsageError(f"eligible convs have several kernel sizes {sorted(sizes)}; one bank needs one")
    k = sizes.pop()
    ref = convs[0][1].weight
    kernels = np.concatenate([to_numpy(m.weight.detach().cpu(), n).reshape(-1, k, k) for n, m in convs])
    result = build_bank(kernels.astype(np.float32), bank_size, iterations=iterations, seed=seed)
    bank = KernelBank(result.bank.shape[0], k, init=torch.from_numpy(result.bank).to(ref.dtype),
                      device=ref.device, dtype=ref.dtype)
    start = 0
    for name, conv in convs:
        gw = GWConv2d(conv.in_channels, conv.out_channels, k, conv.stride, conv.padding, conv.dilation,
                      bias=conv.bias is not None, bank=bank, rule=rule, device=ref.device, dtype=ref.dtype)
        n = conv.out_channels * conv.in_channels
        gw.set_indices(torch.from_numpy(result.selectors[start:start + n].astype(np.int64))
                       .reshape(conv.out_channels, conv.in_channels))
        start += n
        if conv.bias is not None:
            with torch.no_grad():
                gw.bias.copy_(conv.bias)
        gw.train(conv.training)
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, gw)
    return bank


def _banks(model: nn.Module) -> list[KernelBank]:
    out: list[KernelBank] = []
    for _, layer in gw_layers(model):
        if not any(layer.bank is b for b in out):
            out.append(layer.bank)
    return out


def clamp_selectors_(model: nn.Module) -> None:
    """Clamp every selector into [0, 1] (call after each optimizer step)."""
    with torch.no_grad():
        for _, layer in gw_layers(model):
            layer.selectors.clamp_(0, 1)


def freeze_selectors(model: nn.Module, frozen: bool = True) -> None:
    """Fix (or free) every selector: with them fixed only the bank (and the rest) trains."""
    for _, layer in gw_layers(model):
        layer.selectors.requires_grad_(not frozen)


@torch.no_grad()
def reassign_(model: nn.Module, step: float) -> float:
    """Rule "reassign": move each pair to the bank kernel nearest ``bank[index] - step * G``
    (``G`` the gradient accumulated since the last call), clear ``G``; returns the fraction
    of pairs that changed kernel."""
    changed = total = 0
    for _, layer in gw_layers(model):
        if layer.weight_grad is None:
            continue
        bank = layer.bank.weight.detach().double().cpu()
        old = layer.indices().cpu()
        target = (bank[old] - step * layer.weight_grad.double().cpu()).reshape(old.numel(), -1)
        new, _ = nearest_kernels(target.numpy(), bank.reshape(bank.shape[0], -1).numpy())
        new = torch.from_numpy(new).reshape(old.shape)
        changed += int((new != old).sum())
        total += old.numel()
        layer.set_indices(new)
        layer.weight_grad = None
    return changed / total if total else 0.0


@torch.no_grad()
def quantize_bank_(bank: KernelBank, bits: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Snap the bank's values in place onto a ``2**bits`` codebook (1-D k-means, linear
    init); returns (codebook, codes) as :func:`export_gw` will store them."""
    values = to_numpy(bank.weight.detach().cpu(), "bank").ravel()
    codebook = kmeans_1d(values.astype(np.float64), 1 << bits, init="linear", seed=seed).centroids
    codebook = np.unique(codebook.astype(values.dtype))
    codes = assign(values, codebook.astype(np.float64))
    bank.weight.copy_(torch.from_numpy(codebook[codes].reshape(tuple(bank.weight.shape))))
    return codebook, codes


@torch.no_grad()
def recalibrate_batchnorm_(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Recompute the running mean and variance of every BatchNorm of ``model`` from ``batches``.

    Each norm's statistics are reset and re-estimated as the plain average over the
    batches (``momentum=None`` while it runs) of the batch statistics its input has
    under the current weights; only the norms run in training mode, every other module
    in eval mode (no dropout). Modes and momenta are restored; returns the number of
    norms recalibrated (those that track running statistics).

    Examples
    --------
    >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    >>> recalibrate_batchnorm_(net, [torch.randn(4, 1, 5, 5) for _ in range(2)])
    1
    """
    norms = [m for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    modes = [(m, m.training) for m in model.modules()]
    momenta = [m.momentum for m in norms]
    model.eval()
    try:
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average: every batch counts the same
            norm.train()
        for x in batches:
            model(x)
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        for m, training in modes:
            m.train(training)
    return len(norms)


#: The float dtypes a bank may have (wire names; float8 banks are not written).
_BANK_DTYPES = ("F16", "BF16", "F32", "F64")


def export_gw(model: nn.Module, *, bank_name: str = "gw", bank_bits: int | None = None,
              huffman: bool = True) -> tuple[dict, dict]:
    """``(tensors, banks)`` for :func:`dcformat.save_file` (``banks=banks``).

    Every GWConv2d weight becomes ``EncodedTensor(dtype, (O, I, K, K), Dense(),
    BankValues(bank_name, selectors))`` under the state-dict name ``<layer>.weight``
    (selectors Huffman-coded unless ``huffman=False``), so the decoded file is an ordinary
    ``nn.Conv2d`` state dict; selectors and shared-bank entries are not written. The bank
    is stored exactly (raw array), or with ``bank_bits`` as ``CodebookValues`` over its
    values: it must then take at most ``2**bank_bits`` distinct values (call
    :func:`quantize_bank_` first), so the decoded weights are still exactly the module's.
    Every other state-dict entry is stored as :func:`dcformat.training.export.export_tensors`
    stores it: a weight under trained quantization
    (:class:`~dcformat.training.quantize.WeightSharing`, e.g. the 1x1 convs and the fc layer)
    as its codebook and codes, exactly as evaluated; the rest raw.
    """
    banks = _banks(model)
    if len(banks) != 1:
        raise UsageError(f"export_gw needs exactly one shared bank, found {len(banks)}")
    bank = banks[0]
    bank_np = to_numpy(bank.weight.detach().cpu(), bank_name)
    dtype = wire_name(bank.weight.dtype)
    if dtype not in _BANK_DTYPES:
        raise UsageError(f"bank dtype {bank.weight.dtype} is not a float type export_gw writes")
    if bank_bits is None:
        bank_record = bank_np
    else:
        codebook, codes = np.unique(bank_np.ravel(), return_inverse=True)
        if codebook.size > 1 << bank_bits:
            raise UsageError(f"the bank holds {codebook.size} distinct values, more than 2**{bank_bits}; "
                             "call quantize_bank_ first")
        bank_record = EncodedTensor(dtype, tuple(bank_np.shape), Dense(), CodebookValues.coded(
            codebook, code_stream(codes.ravel(), codebook.size, huffman=huffman)))
    tensors: dict = {}
    layers = {f"{name}.selectors" if name else "selectors": (name, layer) for name, layer in gw_layers(model)}
    for key, value in export_tensors(model, huffman=huffman).items():
        if key in layers:  # the pair's selectors become the layer's weight, in state-dict order
            name, layer = layers[key]
            selectors = code_stream(layer.indices().cpu().numpy().ravel(), bank.size, huffman=huffman)
            tensors[f"{name}.weight" if name else "weight"] = EncodedTensor(
                dtype, (layer.out_channels, layer.in_channels, *layer.kernel_size), Dense(),
                BankValues.coded(bank_name, selectors))
        elif not (key.endswith("bank.weight") and _is_bank_key(model, key)):
            tensors[key] = value
    return tensors, {bank_name: bank_record}


def _is_bank_key(model: nn.Module, key: str) -> bool:
    owner = key[: -len(".weight")]
    try:
        return isinstance(model.get_submodule(owner), KernelBank)
    except AttributeError:
        return False


def save_gw(model: nn.Module, path, metadata=None, *, alignment: int = DEFAULT_ALIGNMENT,
            overwrite: bool = False, **kwargs) -> None:
    """:func:`export_gw`, then write the file atomically.

    ``alignment`` is the segment alignment, by default the 64 bytes writers use, as
    :func:`dcformat.training.export.export_dcf` does; 8, the smallest the format allows,
    pads the many short records of a GW model less.
    """
    tensors, banks = export_gw(model, **kwargs)
    writer = ContainerWriter(metadata, alignment=alignment)
    for name, bank in banks.items():
        writer.add_bank(name, bank)
    for name, tensor in tensors.items():
        writer.add_tensor(name, tensor)
    writer.write(path, overwrite=overwrite)


def parameter_counts(model: nn.Module) -> dict:
    """Counts as the Global Weight slides do: ``H = sum(I * O)`` over GW layers, ``K``
    elements per kernel, ``L`` bank kernels; ``gw_conv`` = K*L + H against ``dense_conv``
    = K*H; ``gw_total``/``dense_total`` add every other parameter of the model."""
    layers = [m for _, m in gw_layers(model)]
    banks = _banks(model)
    h = sum(m.in_channels * m.out_channels for m in layers)
    k = banks[0].kernel_size ** 2 if banks else 0
    L = banks[0].size if banks else 0
    gw_ids = {id(m.selectors) for m in layers} | {id(b.weight) for b in banks}
    other = sum(p.numel() for p in model.parameters() if id(p) not in gw_ids)
    return {"H": h, "K": k, "L": L, "gw_conv": k * L + h, "dense_conv": k * h,
            "gw_total": k * L + h + other, "dense_total": k * h + other}
