"""Dense-Sparse-Dense training (Han et al., ICLR 2017) as a schedule for any model.

1. **Dense**: train normally.
2. **Sparse**: prune the chosen tensors by magnitude to ``sparsity`` and retrain with the
   masks held (:class:`~dcformat.training.prune.Pruner`).
3. **Re-dense**: drop the masks; the pruned connections come back at exactly zero and
   everything is retrained, usually at a lower learning rate.

The caller owns the training loop: ``make_optimizer(phase)`` returns a fresh optimizer
for ``"dense"``, ``"sparse"`` and ``"redense"`` (e.g. a tenth of the learning rate for
the last), and ``train_epoch(optimizer, phase, epoch)`` trains one epoch with it. For the
common case :func:`epoch_trainer` builds ``train_epoch`` from a data loader and a loss.

Example::

    result = dsd(model, epoch_trainer(model, loader, nn.CrossEntropyLoss()),
                 lambda phase: torch.optim.SGD(model.parameters(),
                                               lr=0.01 if phase == "redense" else 0.1, momentum=0.9),
                 epochs=(4, 4, 4), sparsity=0.5)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import InvalidSettings
from .prune import Pruner

__all__ = ["dsd", "DSDResult", "epoch_trainer", "PHASES"]

PHASES = ("dense", "sparse", "redense")


@dataclass
class DSDResult:
    """What :func:`dsd` did: the masks of the sparse phase and one record per epoch.

    ``history`` holds ``{"phase", "epoch", **whatever evaluate returned}`` dicts (just
    phase and epoch without an ``evaluate`` callback); ``restored`` is the number of
    weights brought back at zero for the re-dense phase.
    """

    masks: dict[str, torch.Tensor]
    sparsity: dict[str, float]
    restored: int
    history: list[dict] = field(default_factory=list)


def epoch_trainer(model: nn.Module, loader: Iterable, loss_fn: Callable,
                  device: torch.device | str | None = None,
                  scheduler_step: Callable[[str], object] | None = None) -> Callable:
    """A ``train_epoch(optimizer, phase, epoch)`` running one pass over ``loader``.

    ``loader`` yields ``(inputs, targets)`` batches; ``scheduler_step(phase)``, when given,
    is called after every optimizer step (for per-step learning-rate schedules).
    """
    def train_epoch(optimizer: torch.optim.Optimizer, phase: str, epoch: int) -> None:
        model.train()
        for inputs, targets in loader:
            if device is not None:
                inputs, targets = inputs.to(device), targets.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(inputs), targets).backward()
            optimizer.step()
            if scheduler_step is not None:
                scheduler_step(phase)
    return train_epoch


def dsd(model: nn.Module, train_epoch: Callable[[torch.optim.Optimizer, str, int], object],
        make_optimizer: Callable[[str], torch.optim.Optimizer], *,
        epochs: tuple[int, int, int] = (1, 1, 1), sparsity: float | Mapping[str, float] = 0.5,
        params: Iterable[str] | None = None,
        evaluate: Callable[[str, int], Mapping | None] | None = None) -> DSDResult:
    """Run dense -> sparse -> dense on ``model`` (in place).

    Parameters
    ----------
    model : nn.Module
    train_epoch : callable(optimizer, phase, epoch)
        Trains one epoch; ``epoch`` counts from 0 within the phase.
    make_optimizer : callable(phase) -> Optimizer
        A fresh optimizer per phase (so no momentum carries over the pruning or the
        restoring; the re-dense phase usually takes a lower learning rate).
    epochs : (dense, sparse, redense)
        Epochs per phase; ``dense = 0`` starts from an already trained model.
    sparsity : float or dict of str to float
        Target sparsity of the sparse phase (one for all pruned tensors, or by name).
    params : iterable of str, optional
        Tensors to prune; default: the keys of a ``sparsity`` dict, else every weight with
        two or more dimensions.
    evaluate : callable(phase, epoch) -> dict or None, optional
        Called after every epoch; its dict goes into the history.
    """
    if len(epochs) != 3 or any(isinstance(e, bool) or not isinstance(e, int) or e < 0 for e in epochs):
        raise InvalidSettings(f"epochs must be three non-negative integers, got {epochs!r}")
    if params is None and isinstance(sparsity, Mapping):
        params = list(sparsity)
    history: list[dict] = []

    def run(phase: str, n: int, optimizer: torch.optim.Optimizer) -> None:
        for epoch in range(n):
            train_epoch(optimizer, phase, epoch)
            record = {"phase": phase, "epoch": epoch}
            if evaluate is not None:
                record.update(evaluate(phase, epoch) or {})
            history.append(record)

    run("dense", epochs[0], make_optimizer("dense"))

    pruner = Pruner(model, params)
    levels = pruner.prune(sparsity=sparsity)
    optimizer = make_optimizer("sparse")
    pruner.attach(optimizer)
    run("sparse", epochs[1], optimizer)
    pruner.detach()
    masks = pruner.state_dict()
    restored = sum(int((~m).sum()) for m in masks.values())

    run("redense", epochs[2], make_optimizer("redense"))
    return DSDResult(masks=masks, sparsity=levels, restored=restored, history=history)
