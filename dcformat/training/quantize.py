"""Trained quantization (Deep Compression stage 2, the training side): weight sharing.

Each chosen weight tensor is replaced, through :mod:`torch.nn.utils.parametrize`, by
``table[codes]``: ``table`` is the layer's trainable codebook (an ``nn.Parameter`` of at
most ``2**bits`` centroids) followed by one fixed ``0.0``, and ``codes`` an integer buffer
of the weight's shape whose pruned entries point at that zero. The forward pass so uses
the shared weights, and autograd's backward of the gather is a scatter-add: the gradient
of each centroid is the sum of the gradients of the weights in its cluster (the paper's
Fig. 3), and an optimizer over the centroids updates them with that sum. Weights of one
cluster stay tied, pruned weights stay exactly zero (the zero is no parameter), and the
weights are not shared across layers.

Initialisation reuses the post-training pipeline: the centroids are
:func:`dcformat.compress.kmeans_1d` of the surviving weights from ``linear``,
``density`` or ``random`` (Forgy) starting points (``kmeans_iterations=0``: the starting
points themselves), cast to the weight's dtype, and the codes
:func:`dcformat.compress.assign` (nearest centroid).

Storage: when the tensor will be stored sparse with gaps of ``gap_bits`` bits and needs
filler entries, a filler must decode to zero, so one of the ``2**bits`` code slots is
kept for the zero and only ``2**bits - 1`` centroids are trained (as the pipeline does).
:func:`dcformat.training.export.export_dcf` then writes the codebooks and codes exactly.

Example::

    q = WeightSharing(model, bits={"ip1.weight": 5, "ip2.weight": 5, "ip3.weight": 5})
    opt = torch.optim.SGD(q.codebooks(), lr=1e-4)   # biases may be trained too
    ... train ...
    export_dcf(model, "model.dcf")
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from ..compress.kmeans import assign, kmeans_1d
from ..compress.settings import INITS, MAX_BITS, MIN_BITS
from ..errors import InvalidSettings, UsageError
from .gaps import choose_gap_bits, needs_fillers
from .prune import default_prunable

__all__ = ["SharedWeight", "WeightSharing", "LayerSharing", "shared_weight_of"]


class SharedWeight(nn.Module):
    """The parametrization: ``weight = cat([codebook, 0])[codes]``.

    ``codebook`` (Parameter, the weight's dtype, ``k`` entries) holds the trainable
    centroids; ``codes`` (int64 buffer, the weight's shape) holds a value in ``[0, k]``
    per weight, ``k`` meaning pruned (the fixed zero). ``gap_bits`` is the width the
    exporter stores the gaps of a pruned tensor with.
    """

    def __init__(self, codebook: torch.Tensor, codes: torch.Tensor, gap_bits: int | None = None):
        super().__init__()
        self.codebook = nn.Parameter(codebook.detach().clone())
        self.register_buffer("codes", codes.detach().to(torch.int64).clone())
        #: gap width the exporter stores a pruned tensor with (None: its own choice)
        self.gap_bits = gap_bits

    @property
    def pruned_code(self) -> int:
        return self.codebook.numel()

    def table(self) -> torch.Tensor:
        """Codebook plus the fixed zero (differentiable in the codebook)."""
        return torch.cat([self.codebook, self.codebook.new_zeros(1)])

    def forward(self, original: torch.Tensor) -> torch.Tensor:  # the original is ignored
        return self.table()[self.codes]

    def mask(self) -> torch.Tensor:
        """True where the weight is not pruned."""
        return self.codes != self.pruned_code

    def extra_repr(self) -> str:
        return f"k={self.codebook.numel()}, shape={tuple(self.codes.shape)}"


@dataclass(frozen=True)
class LayerSharing:
    """What :class:`WeightSharing` did to one tensor."""

    name: str
    module_name: str
    attr: str
    bits: int
    gap_bits: int | None  # None: stored dense (nothing pruned)
    fillers: bool  # whether a code slot is kept for the fillers' zero
    init: str


def _split(name: str) -> tuple[str, str]:
    module_name, _, attr = name.rpartition(".")
    return module_name, attr


def _per(value, names: list[str], what: str) -> dict:
    if isinstance(value, Mapping):
        missing = [n for n in names if n not in value]
        if missing:
            raise InvalidSettings(f"{what} given for {sorted(value)} but not for {missing}")
        return {n: value[n] for n in names}
    return {n: value for n in names}


def shared_weight_of(module: nn.Module, attr: str = "weight") -> SharedWeight | None:
    """The :class:`SharedWeight` parametrizing ``module.<attr>``, if any."""
    if not parametrize.is_parametrized(module, attr):
        return None
    for p in module.parametrizations[attr]:
        if isinstance(p, SharedWeight):
            return p
    return None


class WeightSharing:
    """Replace chosen weights of ``model`` by trainable per-layer codebooks.

    Parameters
    ----------
    model : nn.Module
        Changed in place (parametrized).
    bits : int or dict of str to int
        Codebook of ``2**bits`` entries per tensor (one number, or one per name; the
        dict's keys choose the tensors when ``params`` is not given).
    params : iterable of str, optional
        Parameter names; default: the keys of ``bits`` if a dict, else every weight
        with two or more dimensions.
    init : {"linear", "density", "random"} or dict
        Starting centroids (paper section 3.2). Default linear.
    masks : dict of str to Tensor, optional
        Surviving weights (e.g. ``Pruner.masks``); default: the non-zero weights.
    gap_bits : int, dict, "auto" or None
        Gap width the tensor will be stored with (decides whether a code slot is kept
        for the fillers' zero). ``"auto"`` (default) picks, for each pruned tensor, the
        width giving the smallest Huffman-coded gap stream
        (:func:`dcformat.training.gaps.choose_gap_bits`); ``None``: keep no slot (the
        exporter appends a zero if it needs one).
    kmeans_iterations : int
        Lloyd iterations after the initialisation (0: the initial centroids as they are).
    seed : int
        Seed of the random (Forgy) initialisation.
    """

    def __init__(self, model: nn.Module, bits: int | Mapping[str, int] = 5, *,
                 params: Iterable[str] | None = None, init: str | Mapping[str, str] = "linear",
                 masks: Mapping[str, torch.Tensor] | None = None,
                 gap_bits: int | str | Mapping[str, int] | None = "auto",
                 kmeans_iterations: int = 1000, seed: int = 0):
        self.model = model
        named = dict(model.named_parameters())
        if params is not None:
            names = list(params)
        elif isinstance(bits, Mapping):
            names = list(bits)
        else:
            names = default_prunable(model)
        if not names:
            raise UsageError("no tensor to quantize")
        missing = [n for n in names if n not in named]
        if missing:
            raise UsageError(f"no parameter(s) {missing} in the model (has {sorted(named)})")
        bits_of = _per(bits, names, "bits")
        init_of = _per(init, names, "init")
        gaps_of = _per(gap_bits, names, "gap_bits")
        self.layers: dict[str, LayerSharing] = {}
        self._shared: dict[str, SharedWeight] = {}
        for name in names:
            b, ini, gb = bits_of[name], init_of[name], gaps_of[name]
            if isinstance(b, bool) or not isinstance(b, int) or not MIN_BITS <= b <= MAX_BITS:
                raise InvalidSettings(f"bits of {name!r} must be an integer from {MIN_BITS} to {MAX_BITS}")
            if ini not in INITS:
                raise InvalidSettings(f"init of {name!r} must be one of {list(INITS)}, got {ini!r}")
            weight = named[name].detach()
            mask = (weight != 0) if masks is None or name not in masks else masks[name].to(weight.device).bool()
            if mask.shape != weight.shape:
                raise UsageError(f"mask of {name!r} has shape {tuple(mask.shape)}, weight {tuple(weight.shape)}")
            mask_np = mask.cpu().numpy()
            pruned = not bool(mask_np.all())
            if not pruned:
                gb = None
            elif gb == "auto":
                gb = choose_gap_bits(mask_np)
            elif gb is not None and (isinstance(gb, bool) or not isinstance(gb, int) or not 1 <= gb <= 16):
                raise InvalidSettings(f"gap_bits of {name!r} must be 1..16, 'auto' or None, got {gb!r}")
            fillers = gb is not None and needs_fillers(mask_np, gb)
            k = (1 << b) - (1 if fillers else 0)
            if k < 1:
                raise InvalidSettings(f"{name!r}: {b} bit(s) leave no code for a centroid besides the zero")
            codebook, codes = self._initial(weight, mask, k, ini, kmeans_iterations, seed)
            module_name, attr = _split(name)
            module = model.get_submodule(module_name)
            shared = SharedWeight(codebook, codes, gb)
            parametrize.register_parametrization(module, attr, shared)
            module.parametrizations[attr].original.requires_grad_(False)
            self._shared[name] = shared
            self.layers[name] = LayerSharing(name, module_name, attr, b, gb, fillers, ini)

    @staticmethod
    def _initial(weight: torch.Tensor, mask: torch.Tensor, k: int, init: str, iterations: int,
                 seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = weight.detach().cpu()
        m = mask.cpu()
        np_dtype = torch.empty(0, dtype=w.dtype).numpy().dtype if w.dtype != torch.bfloat16 else None
        if np_dtype is None:
            raise InvalidSettings("trained quantization of bfloat16 weights is not supported; use float32")
        values = w[m].numpy()
        codes = torch.full(w.shape, k, dtype=torch.int64)
        if values.size == 0:
            return torch.zeros(1, dtype=w.dtype), torch.full(w.shape, 1, dtype=torch.int64)
        centroids = kmeans_1d(values, k, init=init, iterations=iterations, seed=seed).centroids
        cb = np.unique(centroids.astype(np_dtype))  # ascending, as the weight's dtype
        codes[m] = torch.from_numpy(assign(values, cb).astype(np.int64))
        # Pruned entries point at the zero just past the codebook.
        codes[~m] = cb.size
        return torch.from_numpy(cb.copy()), codes.to(weight.device)

    # -- access ----------------------------------------------------------------------

    def __contains__(self, name: str) -> bool:
        return name in self._shared

    def shared(self, name: str) -> SharedWeight:
        return self._shared[name]

    def codebooks(self) -> list[nn.Parameter]:
        """The trainable centroids of every layer (for an optimizer)."""
        return [s.codebook for s in self._shared.values()]

    def other_parameters(self) -> list[nn.Parameter]:
        """The model's trainable parameters that are not codebooks (biases, unshared weights)."""
        mine = {id(p) for p in self.codebooks()}
        return [p for p in self.model.parameters() if p.requires_grad and id(p) not in mine]

    def codebook(self, name: str) -> torch.Tensor:
        return self._shared[name].codebook.detach()

    def codes(self, name: str) -> torch.Tensor:
        """Codes (int64, the weight's shape); the pruned ones equal the codebook size."""
        return self._shared[name].codes

    def mask(self, name: str) -> torch.Tensor:
        return self._shared[name].mask()

    @torch.no_grad()
    def weight(self, name: str) -> torch.Tensor:
        """The effective weight, exactly as the forward pass uses it."""
        return self._shared[name].table()[self._shared[name].codes].clone()

    def remove(self) -> None:
        """Drop the parametrizations, leaving plain weights equal to the shared ones."""
        for name, layer in self.layers.items():
            module = self.model.get_submodule(layer.module_name)
            if parametrize.is_parametrized(module, layer.attr):
                parametrize.remove_parametrizations(module, layer.attr, leave_parametrized=True)
                getattr(module, layer.attr).requires_grad_(True)
        self._shared.clear()
