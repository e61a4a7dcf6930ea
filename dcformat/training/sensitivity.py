"""How much each tensor's quantization error moves a model's output: ``rd_weight`` per tensor.

The ``bits_per_param`` allocation (:mod:`dcformat.compress.ratedistortion`) gives every
tensor the same SQNR unless told that some matter more. This module measures that from
the model itself, with inputs that need not be real data (random tokens, noise audio):

For an output ``f(W)`` and a small error ``E`` in one tensor, the output moves by
``||J E||**2`` on average, where ``J`` is the Jacobian of the output with respect to that
tensor. With independent, zero-mean errors of equal variance (what uniform quantization
leaves), its expectation is ``sum_i (J^T J)_ii * E_i**2``: the diagonal of the
Gauss-Newton matrix ``J^T J`` weighs each element's squared error. That diagonal is
estimated with random sign vectors ``u``: ``E[(J^T u)_i**2] = (J^T J)_ii``, one backward
pass per probe (Hutchinson's estimator, as in HAWQ-style sensitivity analyses).

The allocator measures distortion relative to each tensor's mean square, so a
tensor's weight is its mean Gauss-Newton diagonal times its mean square
(:func:`rd_weights`). Only the ratios between tensors matter.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

import numpy as np
import torch

from ..errors import InvalidSettings

#: Weight given to tensors the output does not depend on (relative to the median):
#: the allocator then spends almost nothing on them.
UNUSED_WEIGHT = 1e-4


def output_sensitivity(forward: Callable, params: Mapping[str, torch.Tensor], batches: Iterable, *,
                       probes: int = 2, seed: int = 0) -> dict[str, float]:
    """Mean diagonal of the output's Gauss-Newton matrix, per tensor of ``params``.

    ``forward(params, batch)`` returns the output (a tensor, or a tuple/list of
    tensors, all of which count) computed from the tensors in ``params``; it is called
    once per batch, and the output is probed ``probes`` times. Tensors the output does
    not reach get 0.
    """
    if probes < 1:
        raise InvalidSettings(f"probes must be >= 1, got {probes!r}")
    leaves = {name: p.detach().clone().requires_grad_(True) for name, p in params.items()
              if p.is_floating_point()}
    if not leaves:
        raise InvalidSettings("output_sensitivity needs at least one floating-point tensor")
    sums = {name: torch.zeros_like(p) for name, p in leaves.items()}
    gen = torch.Generator().manual_seed(seed)
    count = 0
    for batch in batches:
        outputs = _floating_outputs(forward({**params, **leaves}, batch))
        for probe in range(probes):
            signs = [torch.randint(0, 2, o.shape, generator=gen).to(o.dtype) * 2 - 1 for o in outputs]
            projected = sum((o * s).sum() for o, s in zip(outputs, signs))
            grads = torch.autograd.grad(projected, list(leaves.values()), retain_graph=probe + 1 < probes,
                                        allow_unused=True)
            for name, g in zip(leaves, grads):
                if g is not None:
                    sums[name] += g.detach() ** 2
            count += 1
    if count == 0:
        raise InvalidSettings("output_sensitivity needs at least one batch")
    return {name: float(s.double().mean()) / count for name, s in sums.items()}


def rd_weights(sensitivity: Mapping[str, float], tensors: Mapping, *, exponent: float = 1.0) -> dict[str, float]:
    """``rd_weight`` factors from :func:`output_sensitivity`: (mean diagonal x mean square) ** exponent.

    Normalised so the median over the tensors the output reaches is 1; the others get
    :data:`UNUSED_WEIGHT`. Pass the result as ``CompressionSettings(rd_weights=...)``.
    An ``exponent`` below 1 softens the weights, for calibration inputs that differ
    from what the model will see (white noise for an audio net: 0.5 did better on
    torchcrepe; random tokens for MiniLM: 1.0 was best).
    """
    if not (isinstance(exponent, (int, float)) and 0.0 < exponent <= 4.0):
        raise InvalidSettings(f"exponent must be in (0, 4], got {exponent!r}")
    raw = {}
    for name, s in sensitivity.items():
        t = tensors[name]
        values = t.detach().double() if isinstance(t, torch.Tensor) else torch.from_numpy(np.asarray(t, np.float64))
        raw[name] = s * float((values ** 2).mean()) if values.numel() else 0.0
    used = [w for w in raw.values() if w > 0.0]
    if not used:
        raise InvalidSettings("the output depends on none of the tensors")
    median = float(np.median(used))
    return {name: ((w / median) ** exponent if w > 0.0 else UNUSED_WEIGHT) for name, w in raw.items()}


def module_rd_weights(module: torch.nn.Module, batches: Iterable, *, probes: int = 2, seed: int = 0,
                      exponent: float = 1.0) -> dict[str, float]:
    """:func:`rd_weights` of an ``nn.Module``'s parameters, keyed by ``state_dict`` names.

    Each batch is passed as ``module(batch)``, or ``module(*batch)`` when it is a tuple.
    The module is evaluated in its current mode (call ``module.eval()`` first for
    inference behaviour: dropout off, batch-norm running statistics).
    """
    from torch.func import functional_call

    params = dict(module.named_parameters())

    def forward(p, batch):
        return functional_call(module, p, batch if isinstance(batch, tuple) else (batch,))

    sensitivity = output_sensitivity(forward, params, batches, probes=probes, seed=seed)
    return rd_weights(sensitivity, params, exponent=exponent)


def _floating_outputs(out) -> list[torch.Tensor]:
    items = list(out) if isinstance(out, (tuple, list)) else [out]
    tensors = [o for o in items if isinstance(o, torch.Tensor) and o.is_floating_point()]
    if not tensors:
        raise InvalidSettings("forward must return a floating-point tensor (or a tuple of them)")
    return tensors
