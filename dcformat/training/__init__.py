"""The training side of Deep Compression in PyTorch (optional: needs ``pip install dcformat[torch]``).

One import for the common names:

- pruning with retraining: :class:`Pruner`, :func:`magnitude_mask`,
  :func:`iterative_schedule`, :func:`prune_and_retrain` (:mod:`dcformat.training.prune`);
- trained quantization (weight sharing with per-cluster summed gradients):
  :class:`WeightSharing`, :class:`SharedWeight` (:mod:`dcformat.training.quantize`);
- Dense-Sparse-Dense: :func:`dsd`, :func:`epoch_trainer` (:mod:`dcformat.training.dense_sparse_dense`);
- export to ``.dcf`` of exactly what is evaluated: :func:`export_dcf`,
  :func:`export_tensors`, :func:`effective_state_dict`, :func:`encode_shared`
  (:mod:`dcformat.training.export`).

Global Weight convolutions are in :mod:`dcformat.training.gwconv`, the per-tensor output
sensitivity that steers a post-training size budget in :mod:`dcformat.training.sensitivity`.
The state-dict bridge a loader needs (``save_file``/``load_file``/``load_model``) is
:mod:`dcformat.torch`, which does not depend on this package.
"""

from .dense_sparse_dense import PHASES, DSDResult, dsd, epoch_trainer
from .export import effective_state_dict, encode_shared, export_dcf, export_tensors
from .gaps import choose_gap_bits, needs_fillers
from .prune import Pruner, default_prunable, iterative_schedule, magnitude_mask, prune_and_retrain
from .quantize import LayerSharing, SharedWeight, WeightSharing, shared_weight_of

__all__ = [
    "Pruner", "magnitude_mask", "iterative_schedule", "prune_and_retrain", "default_prunable",
    "WeightSharing", "SharedWeight", "LayerSharing", "shared_weight_of",
    "dsd", "DSDResult", "epoch_trainer", "PHASES",
    "export_dcf", "export_tensors", "effective_state_dict", "encode_shared", "choose_gap_bits",
    "needs_fillers",
]
