"""Magnitude pruning with retraining (Deep Compression stage 1, the training side).

A :class:`Pruner` holds one boolean mask per chosen parameter (True: the weight
survives). :meth:`Pruner.prune` tightens the masks, from a target sparsity (the fraction
of the whole tensor that is zero afterwards) or from the paper's quality factor
(``|w| < quality * std`` of the surviving weights goes), and zeroes the pruned weights.
Masks only ever lose entries, so calling it with growing sparsities is an iterative
schedule (:func:`iterative_schedule` makes one; :func:`prune_and_retrain` runs one).

While retraining, pruned weights must stay exactly zero. :meth:`Pruner.attach` makes
sure of it for a torch optimizer:

- a gradient hook zeroes the gradient of every pruned weight, so momentum, Adam moments
  and the like never see anything but zeros there;
- the optimizer's per-parameter state (momentum buffers, moments) is zeroed at the
  pruned positions when a mask changes;
- a post-step hook multiplies every weight by its mask after each ``optimizer.step()``,
  which holds the zeros whatever the optimizer does (weight decay of a zero is zero, but
  an optimizer adding noise, say, would not be).

Example::

    pruner = Pruner(model, ["ip1.weight", "ip2.weight", "ip3.weight"])
    pruner.attach(optimizer)
    for sparsity in iterative_schedule(0.9, steps=3):      # about 0.54, 0.78, 0.90
        pruner.prune(sparsity=sparsity)
        train_one_epoch(model, optimizer)
    pruner.detach()
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn

from ..compress.prune import pruned_count
from ..errors import InvalidSettings, UsageError

__all__ = ["Pruner", "magnitude_mask", "iterative_schedule", "prune_and_retrain", "default_prunable"]


def default_prunable(model: nn.Module) -> list[str]:
    """Names of the floating parameters with at least two dimensions (conv and fc weights)."""
    return [n for n, p in model.named_parameters() if p.dim() >= 2 and p.is_floating_point()]


def magnitude_mask(weight: torch.Tensor, *, sparsity: float | None = None, quality: float | None = None,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """The surviving weights after magnitude pruning, as a bool tensor of ``weight``'s shape.

    Parameters
    ----------
    weight : Tensor
    sparsity : float, optional
        Target fraction in [0, 1) of the whole tensor that is pruned afterwards:
        ``pruned_count(n, sparsity)`` weights (as :func:`dcformat.compress.prune_mask`),
        the already pruned ones first, then the smallest surviving magnitudes, ties to
        the lower C-order position. A target below the current sparsity prunes nothing.
    quality : float, optional
        Prune surviving weights with ``|w| < quality * std``, the population standard
        deviation of the surviving weights (the paper's quality factor).
    mask : Tensor, optional
        The current mask (default: all True); the result is a subset of it.

    Examples
    --------
    >>> magnitude_mask(torch.tensor([0.5, -0.1, 0.1, 2.0]), sparsity=0.5).tolist()
    [True, False, False, True]
    >>> magnitude_mask(torch.tensor([3.0, -1.0, 1.0, -3.0]), quality=0.5).tolist()
    [True, False, False, True]
    """
    if (sparsity is None) == (quality is None):
        raise InvalidSettings("magnitude_mask needs exactly one of sparsity and quality")
    w = weight.detach()
    flat = w.reshape(-1)
    keep = (torch.ones_like(flat, dtype=torch.bool) if mask is None
            else mask.detach().reshape(-1).to(device=flat.device, dtype=torch.bool).clone())
    if keep.numel() != flat.numel():
        raise UsageError(f"mask has {keep.numel()} elements, weight {flat.numel()}")
    mag = flat.abs().to(torch.float64)
    if quality is not None:
        if not quality >= 0:
            raise InvalidSettings(f"quality must be >= 0, got {quality!r}")
        survivors = flat[keep].to(torch.float64)
        if survivors.numel():
            std = float(survivors.std(unbiased=False))
            keep &= mag >= quality * std
        return keep.reshape(w.shape)
    if not 0.0 <= sparsity < 1.0:
        raise InvalidSettings(f"sparsity must be in [0, 1), got {sparsity!r}")
    n = flat.numel()
    k = pruned_count(n, sparsity)
    already = n - int(keep.sum())
    if k <= already:
        return keep.reshape(w.shape)
    # Already pruned entries sort first (score -1), then by magnitude; stable: lower position first.
    score = torch.where(keep, mag, torch.full_like(mag, -1.0))
    order = torch.argsort(score, stable=True)
    keep[order[:k]] = False
    return keep.reshape(w.shape)


class Pruner:
    """Masks on chosen parameters of a model, held through training.

    Parameters
    ----------
    model : nn.Module
    params : iterable of str, optional
        Parameter names (as in ``model.named_parameters()``) to prune; default
        :func:`default_prunable` (every weight with two or more dimensions).
    masks : mapping of str to Tensor, optional
        Start from these masks instead of all True.
    """

    def __init__(self, model: nn.Module, params: Iterable[str] | None = None,
                 masks: Mapping[str, torch.Tensor] | None = None):
        self.model = model
        named = dict(model.named_parameters())
        names = list(default_prunable(model) if params is None else params)
        missing = [n for n in names if n not in named]
        if missing:
            raise UsageError(f"no parameter(s) {missing} in the model (has {sorted(named)})")
        if not names:
            raise UsageError("nothing to prune: no parameter chosen")
        self.params: dict[str, nn.Parameter] = {n: named[n] for n in names}
        self.masks: dict[str, torch.Tensor] = {}
        for n, p in self.params.items():
            m = torch.ones_like(p, dtype=torch.bool) if masks is None or n not in masks else masks[n]
            m = m.detach().to(device=p.device, dtype=torch.bool)
            if m.shape != p.shape:
                raise UsageError(f"mask of {n!r} has shape {tuple(m.shape)}, parameter {tuple(p.shape)}")
            self.masks[n] = m.clone()
        self._optimizers: list[torch.optim.Optimizer] = []
        self._handles: list = []
        self.apply()

    # -- masks ---------------------------------------------------------------------

    def prune(self, sparsity: float | Mapping[str, float] | None = None,
              quality: float | Mapping[str, float] | None = None) -> dict[str, float]:
        """Tighten the masks and zero the pruned weights; returns the sparsity of each tensor.

        ``sparsity`` or ``quality`` is one number for every tensor or a dict by name
        (tensors not in the dict are left as they are).
        """
        if (sparsity is None) == (quality is None):
            raise InvalidSettings("prune needs exactly one of sparsity and quality")
        knob, value = ("sparsity", sparsity) if sparsity is not None else ("quality", quality)
        per = value if isinstance(value, Mapping) else {n: value for n in self.params}
        unknown = sorted(set(per) - set(self.params))
        if unknown:
            raise UsageError(f"{unknown} are not pruned by this Pruner (it has {list(self.params)})")
        for n, v in per.items():
            self.masks[n] = magnitude_mask(self.params[n], mask=self.masks[n], **{knob: v})
        self.apply()
        self._mask_optimizer_state()
        return self.sparsity()

    @torch.no_grad()
    def apply(self) -> None:
        """Zero every pruned weight (in place)."""
        for n, p in self.params.items():
            p.mul_(self.masks[n].to(p.dtype))

    def sparsity(self) -> dict[str, float]:
        """Fraction of pruned entries per tensor."""
        return {n: 1.0 - float(m.sum()) / m.numel() for n, m in self.masks.items()}

    def kept(self) -> tuple[int, int]:
        """(surviving weights, total weights) over the pruned tensors."""
        return (sum(int(m.sum()) for m in self.masks.values()), sum(m.numel() for m in self.masks.values()))

    # -- training ------------------------------------------------------------------

    def attach(self, optimizer: torch.optim.Optimizer) -> "Pruner":
        """Hold the masks through ``optimizer``'s steps (see the module notes); returns self.

        May be called for several optimizers; the gradient hooks are registered once.
        """
        if not self._handles:
            for n, p in self.params.items():
                self._handles.append(p.register_hook(self._grad_hook(n)))
        if any(o is optimizer for o in self._optimizers):
            return self
        self._optimizers.append(optimizer)
        self._handles.append(optimizer.register_step_post_hook(lambda opt, args, kwargs: self.apply()))
        self._mask_optimizer_state()
        return self

    def detach(self) -> None:
        """Remove every hook: the weights train freely again (pruned ones start from zero)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._optimizers.clear()

    def _grad_hook(self, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
        def hook(grad: torch.Tensor) -> torch.Tensor:
            return grad.masked_fill(~self.masks[name], 0)
        return hook

    @torch.no_grad()
    def _mask_optimizer_state(self) -> None:
        for opt in self._optimizers:
            for n, p in self.params.items():
                for value in opt.state.get(p, {}).values():
                    if torch.is_tensor(value) and value.shape == p.shape:
                        value.mul_(self.masks[n].to(value.dtype))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The masks (copies), by parameter name."""
        return {n: m.clone() for n, m in self.masks.items()}


def iterative_schedule(final: float, steps: int) -> list[float]:
    """Sparsities for ``steps`` rounds ending at ``final``, the kept fraction shrinking geometrically.

    Examples
    --------
    >>> [round(s, 3) for s in iterative_schedule(0.9, 3)]
    [0.536, 0.785, 0.9]
    """
    if not 0.0 <= final < 1.0:
        raise InvalidSettings(f"final sparsity must be in [0, 1), got {final!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidSettings(f"steps must be a positive integer, got {steps!r}")
    kept = 1.0 - final
    out = [1.0 - kept ** ((i + 1) / steps) for i in range(steps)]
    out[-1] = final
    return out


def prune_and_retrain(pruner: Pruner, optimizer: torch.optim.Optimizer,
                      train_epoch: Callable[[int], object],
                      schedule: Iterable[float | Mapping[str, float]], *, epochs_per_step: int = 1,
                      knob: str = "sparsity",
                      after_step: Callable[[int, dict[str, float]], object] | None = None) -> list[dict[str, float]]:
    """Prune to each target of ``schedule`` in turn, retraining ``epochs_per_step`` epochs after each.

    ``train_epoch(epoch)`` trains one epoch with ``optimizer`` (which the pruner is
    attached to here, and stays attached to afterwards); ``knob`` says whether the
    schedule holds sparsities or quality factors; ``after_step(step, sparsities)`` is
    called after each step's retraining (e.g. to evaluate). Returns each step's sparsities.
    """
    if knob not in ("sparsity", "quality"):
        raise InvalidSettings(f"knob must be 'sparsity' or 'quality', got {knob!r}")
    pruner.attach(optimizer)
    history, epoch = [], 0
    for step, target in enumerate(schedule):
        history.append(pruner.prune(**{knob: target}))
        for _ in range(epochs_per_step):
            train_epoch(epoch)
            epoch += 1
        if after_step is not None:
            after_step(step, history[-1])
    return history
