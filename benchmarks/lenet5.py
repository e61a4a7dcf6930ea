"""Caffe's LeNet-5 for MNIST, as used in the Deep Compression paper (its "LeNet-5").

Architecture (Caffe ``lenet_train_test.prototxt``), parameter names as in Caffe::

    conv1.weight [20, 1, 5, 5]   conv1.bias [20]    5x5 conv, stride 1, no padding -> 20x24x24
                                                     2x2 max pool, stride 2          -> 20x12x12
    conv2.weight [50, 20, 5, 5]  conv2.bias [50]    5x5 conv                        -> 50x8x8
                                                     2x2 max pool                    -> 50x4x4
    ip1.weight [500, 800]        ip1.bias [500]     fc, then ReLU (the only non-linearity)
    ip2.weight [10, 500]         ip2.bias [10]      fc -> 10 logits

431,080 parameters (1,724,320 bytes as float32). Inputs are preprocessed as for
LeNet-300-100 (``examples.lenet300.preprocess``: scaled to [0, 1] and normalised), as
``[N, 1, 28, 28]``. :func:`evaluate` runs the forward pass in plain numpy float32, so the
weights decoded from a ``.dcf`` file are checked without PyTorch.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from examples.lenet300 import MNIST_MEAN, MNIST_STD, float32_params

PARAM_SHAPES = {
    "conv1.weight": (20, 1, 5, 5), "conv1.bias": (20,),
    "conv2.weight": (50, 20, 5, 5), "conv2.bias": (50,),
    "ip1.weight": (500, 800), "ip1.bias": (500,),
    "ip2.weight": (10, 500), "ip2.bias": (10,),
}


def preprocess(images: np.ndarray) -> np.ndarray:
    """uint8 images ``[N, 28, 28]`` -> normalised float32 ``[N, 1, 28, 28]``."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"preprocess expects uint8 images, got {images.dtype}")
    x = images.reshape(images.shape[0], 1, 28, 28).astype(np.float32) / np.float32(255.0)
    return (x - np.float32(MNIST_MEAN)) / np.float32(MNIST_STD)


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Valid 2-D convolution (cross-correlation, as torch and Caffe), NCHW, float32."""
    win = np.lib.stride_tricks.sliding_window_view(x, w.shape[2:], axis=(2, 3))  # N C H W kh kw
    out = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3]))  # N H W O
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2)) + b[None, :, None, None]


def _pool(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def logits(state_dict: Mapping[str, object], x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Forward pass in numpy float32 of preprocessed ``x`` ``[N, 1, 28, 28]``."""
    p = float32_params(state_dict, PARAM_SHAPES)
    out = np.empty((x.shape[0], 10), np.float32)
    for s in range(0, x.shape[0], batch_size):
        h = _pool(_conv(x[s:s + batch_size], p["conv1.weight"], p["conv1.bias"]))
        h = _pool(_conv(h, p["conv2.weight"], p["conv2.bias"]))
        h = np.maximum(h.reshape(h.shape[0], -1) @ p["ip1.weight"].T + p["ip1.bias"], np.float32(0))
        out[s:s + batch_size] = h @ p["ip2.weight"].T + p["ip2.bias"]
    return out


def evaluate(state_dict: Mapping[str, object], images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy (fraction) of LeNet-5 with the given weights on uint8 ``images``."""
    pred = np.argmax(logits(state_dict, preprocess(images)), axis=1)
    return float(np.mean(pred == np.asarray(labels)))


try:
    import torch
    from torch import nn
except ImportError:  # numpy evaluation still works
    torch = None

if torch is not None:

    class LeNet5(nn.Module):
        """Caffe LeNet-5 (conv20-pool-conv50-pool-fc500-ReLU-fc10) with Caffe names."""

        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 20, 5)
            self.conv2 = nn.Conv2d(20, 50, 5)
            self.ip1 = nn.Linear(800, 500)
            self.ip2 = nn.Linear(500, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.max_pool2d(self.conv1(x.reshape(-1, 1, 28, 28)), 2)
            x = torch.max_pool2d(self.conv2(x), 2)
            return self.ip2(torch.relu(self.ip1(x.flatten(1))))
