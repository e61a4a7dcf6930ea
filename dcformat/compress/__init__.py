"""The compression pipeline (Deep Compression, Han et al. 2016): select, prune, share, lay out.

``compress_tensors(state_dict, settings)`` returns, for each tensor, either an
:class:`~dcformat.encodings.model.EncodedTensor` (pruned sparse codebook, or dense
codebook) or the input array kept exact, with a :class:`TensorReport` each.
``reconstruct`` decodes an EncodedTensor in plain numpy, as a reader must.
"""

from .kmeans import KMeansResult, assign, initial_centroids, kmeans_1d
from .pipeline import compress_tensor, compress_tensors, iter_compress, reconstruct
from .prune import prune_mask, pruned_count
from .report import CODEBOOK, EXACT, SPARSE_CODEBOOK, TensorReport
from .settings import INITS, KINDS, PRESETS, CompressionSettings, Rule, TensorSettings, layer_kind
from .sparse import GapStream, gaps_to_positions, positions_to_gaps

__all__ = [
    "compress_tensors", "iter_compress", "compress_tensor", "reconstruct",
    "CompressionSettings", "TensorSettings", "Rule", "PRESETS", "INITS", "KINDS", "layer_kind",
    "TensorReport", "EXACT", "CODEBOOK", "SPARSE_CODEBOOK",
    "prune_mask", "pruned_count",
    "kmeans_1d", "initial_centroids", "assign", "KMeansResult",
    "positions_to_gaps", "gaps_to_positions", "GapStream",
]
