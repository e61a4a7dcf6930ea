"""The training side of Deep Compression in PyTorch: one import for all of it.

- pruning with retraining: :class:`Pruner`, :func:`magnitude_mask`,
  :func:`iterative_schedule`, :func:`prune_and_retrain` (:mod:`dcformat.torch.prune`);
- trained quantization (weight sharing with per-cluster summed gradients):
  :class:`WeightSharing`, :class:`SharedWeight` (:mod:`dcformat.torch.quantize`);
- Dense-Sparse-Dense: :func:`dsd`, :func:`epoch_trainer` (:mod:`dcformat.torch.dsd`);
- export to ``.dcf`` of exactly what is evaluated: :func:`export_dcf`,
  :func:`export_tensors`, :func:`effective_state_dict`, :func:`encode_shared`
  (:mod:`dcformat.torch.export`).
"""

from .dsd import PHASES, DSDResult, dsd, epoch_trainer
from .export import (
    choose_gap_bits,
    effective_state_dict,
    encode_shared,
    export_dcf,
    export_tensors,
    needs_fillers,
)
from .prune import Pruner, default_prunable, iterative_schedule, magnitude_mask, prune_and_retrain
from .quantize import LayerSharing, SharedWeight, WeightSharing, shared_weight_of

__all__ = [
    "Pruner", "magnitude_mask", "iterative_schedule", "prune_and_retrain", "default_prunable",
    "WeightSharing", "SharedWeight", "LayerSharing", "shared_weight_of",
    "dsd", "DSDResult", "epoch_trainer", "PHASES",
    "export_dcf", "export_tensors", "effective_state_dict", "encode_shared", "choose_gap_bits",
    "needs_fillers",
]
