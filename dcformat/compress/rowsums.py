"""Row sums kept through quantization: a data-free correction of the bias quantization adds.

A layer's output ``y = W x`` shifts by ``E[dW x]`` when its weights are quantized. Inputs
after a ReLU, a GELU or a batch norm's shift have a mean ``m`` that is far from zero, and
the part of the shift common to all input channels, ``m * sum_j dW[r, j]``, adds up layer
after layer: rounding errors of a row do not average out once every input is positive.
Data-free quantization (Nagel et al., 2019) corrects it from the batch norm statistics;
without the network's graph, a checkpoint still allows the part that needs no statistics:
keep each row's sum. :func:`keep_row_sums` moves a few codes of each row (a convolution's
output channel, a linear layer's output neuron) to the neighbouring codebook entry, the
cheapest first, while each move brings the row's error sum nearer zero and pays. A row of
``n`` values takes about ``sqrt(n / 12)`` moves, each chosen among ``n``, so the squared
error grows little, and the file keeps its format: only codes change.

A move's price counts its bits as well as its error: at a coarse step, where most values
share the zero code, moving one off it costs several bits, and a correction blind to that
missed the budget's smallest files by 3 % (fracast at 4.16 bits a parameter). Its worth is
what it takes off the row's squared bias, weighed by :data:`BIAS_WEIGHT` (an input's squared
mean over its variance): ``E[(dW x)**2] = v * |e|**2 + m**2 * (sum e)**2`` for inputs of
mean m and variance v, ``e`` the row's error.

On MobileNetV2's 176 tuning crops, from the checkpoint alone on the rd preset's budget, it
moves the logit cosine from 0.99685 to 0.99818 at 6 bits a parameter and from 0.99906 to
0.99947 at 7; bias weights 1, 2, 4 and unbounded gave the same to within 0.00002
(``benchmarks/posttraining_mobilenet_rd.py`` reports the held-out crops). On MiniLM's
tuning sentences it changes the embeddings' mean cosine by less than 0.0001 either way: layer
norms leave little common bias.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import UsageError
from ..kernels.ecq import keep_row_sums as _keep_row_sums


#: What an output's bias is worth against its noise: ``m**2 / v`` of a layer's inputs, of
#: mean m and variance v (a ReLU of a standard normal: 1.75).
BIAS_WEIGHT = 1.75


def applies(shape: tuple[int, ...]) -> bool:
    """Whether a tensor of ``shape`` has rows whose sums matter: two or more dimensions,
    more than one row, rows of at least two values."""
    return len(shape) >= 2 and shape[0] >= 2 and int(np.prod(shape[1:], dtype=np.int64)) >= 2


def keep_row_sums(x: np.ndarray, codes: np.ndarray, codebook: np.ndarray, rows: int,
                  bias_weight: float | None = None, input_weights: np.ndarray | None = None) -> np.ndarray:
    """``codes`` (of the flat values ``x`` in the ascending ``codebook``) with each of the
    ``rows`` rows' error sum brought nearer zero where that pays; a new array, ``codes`` is
    left as it is.

    A move's price is its added squared error and its added bits, each bit at the slope of
    an entropy-coded uniform quantizer of the codebook's step (``2 ln 2 * step**2 / 12``);
    its worth, ``bias_weight`` times what it takes off the squared row sum (the bias an
    input of mean m and variance v adds, m**2 / v times the noise).

    ``input_weights`` (measured: :func:`dcformat.training.calibrate.input_weights`) weighs
    each value of a row in the sum by the mean of the input it multiplies over the inputs'
    spread, ``m_j / sqrt(v)``: an array of ``(groups, row)``, row r taking line
    ``r // (rows / groups)`` (a grouped convolution's rows see their group's inputs), which
    already carries ``m**2 / v``, so ``bias_weight`` is then 1 unless given. Without it every
    value weighs 1 and ``bias_weight`` is :data:`BIAS_WEIGHT`.
    """
    out = np.array(codes, copy=True)
    row = x.size // rows
    if input_weights is None:
        weights, weight = np.ones((1, row)), BIAS_WEIGHT
    else:
        weights, weight = _checked(input_weights, rows, row), 1.0
    counts = np.bincount(out, minlength=codebook.size).astype(np.float64)
    # code lengths as the entropy coder will give them; an unused code as one seen half a time
    bits = -np.log2(np.maximum(counts, 0.5) / max(out.size, 1))
    step = float(np.median(np.diff(codebook))) if codebook.size > 1 else 0.0
    rate_weight = 2.0 * math.log(2.0) * step * step / 12.0
    _keep_row_sums(np.ascontiguousarray(x), out, np.ascontiguousarray(codebook, dtype=np.float64), bits,
                   rate_weight, float(weight if bias_weight is None else bias_weight), weights,
                   rows // weights.shape[0], np.empty(row, np.float64), np.empty(row, np.int64))
    return out


def _checked(input_weights, rows: int, row: int) -> np.ndarray:
    weights = np.ascontiguousarray(input_weights, dtype=np.float64)
    if weights.ndim != 2 or weights.shape[1] != row or not 1 <= weights.shape[0] <= rows \
            or rows % weights.shape[0] or not np.isfinite(weights).all():
        raise UsageError(f"input weights must be a finite (groups, {row}) array with groups dividing {rows}, "
                         f"got shape {weights.shape}")
    return weights
