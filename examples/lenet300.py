"""LeNet-300-100, the fully connected MNIST network of the Deep Compression paper.

Architecture: 784 -> 300 -> 100 -> 10, ReLU after the first two layers, no
softmax (logits). Parameter names follow the Caffe model the paper uses::

    ip1.weight [300, 784]  ip1.bias [300]
    ip2.weight [100, 300]  ip2.bias [100]
    ip3.weight [10, 100]   ip3.bias [10]

Weights are stored ``[out_features, in_features]`` (PyTorch ``nn.Linear`` and Caffe
``InnerProduct`` agree), so a layer computes ``y = x @ W.T + b``.

Input preprocessing (recorded in the safetensors metadata as well): uint8 pixels
are scaled to [0, 1] and normalised with MNIST_MEAN / MNIST_STD, then flattened
row-major to 784 features.

:func:`evaluate` runs the forward pass in plain numpy (float32) on a state dict
of numpy arrays, so decoded weights can be checked without PyTorch. The torch
:class:`LeNet300` module is only defined when torch is importable.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = [
    "LAYERS",
    "MNIST_MEAN",
    "MNIST_STD",
    "PARAM_SHAPES",
    "PREPROCESSING",
    "WEIGHTS_PATH",
    "LeNet300",
    "evaluate",
    "load_state_dict",
    "logits",
    "predict",
    "preprocess",
]

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
PREPROCESSING = f"x = (uint8 / 255 - {MNIST_MEAN}) / {MNIST_STD}, float32, flattened row-major to 784"

#: (name, in_features, out_features) in forward order
LAYERS = (("ip1", 784, 300), ("ip2", 300, 100), ("ip3", 100, 10))
PARAM_SHAPES = {}
for _name, _fan_in, _fan_out in LAYERS:
    PARAM_SHAPES[f"{_name}.weight"] = (_fan_out, _fan_in)
    PARAM_SHAPES[f"{_name}.bias"] = (_fan_out,)
del _name, _fan_in, _fan_out

#: the trained model shipped with the repository (see train_lenet300.py)
WEIGHTS_PATH = Path(__file__).resolve().parent / "lenet300" / "lenet-300-100.safetensors"


def preprocess(images: np.ndarray) -> np.ndarray:
    """uint8 images ``[N, 28, 28]`` (or ``[N, 784]``) -> normalised float32 ``[N, 784]``."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"preprocess expects uint8 images, got {images.dtype}")
    x = images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255.0)
    if x.shape[1] != 784:
        raise ValueError(f"expected 784 pixels per image, got {x.shape[1]}")
    return (x - np.float32(MNIST_MEAN)) / np.float32(MNIST_STD)


def float32_params(state_dict: Mapping[str, object], shapes: Mapping[str, tuple] = PARAM_SHAPES
                   ) -> dict[str, np.ndarray]:
    """The tensors ``shapes`` names, as float32 arrays of those shapes (torch tensors accepted)."""
    params = {}
    for name, shape in shapes.items():
        if name not in state_dict:
            raise ValueError(f"state dict is missing {name!r} (has {sorted(state_dict)})")
        value = state_dict[name]
        if hasattr(value, "detach"):  # a torch tensor slipped in: accept it
            value = value.detach().cpu().numpy()
        arr = np.asarray(value, dtype=np.float32)
        if arr.shape != shape:
            raise ValueError(f"{name} has shape {arr.shape}, expected {shape}")
        params[name] = arr
    return params


def logits(state_dict: Mapping[str, object], x: np.ndarray, batch_size: int = 10000) -> np.ndarray:
    """Forward pass in numpy float32. ``x`` is preprocessed float ``[N, 784]``."""
    p = float32_params(state_dict)
    x = np.asarray(x, dtype=np.float32)
    out = np.empty((x.shape[0], LAYERS[-1][2]), dtype=np.float32)
    for start in range(0, x.shape[0], batch_size):
        h = x[start : start + batch_size]
        for i, (name, _, _) in enumerate(LAYERS):
            h = h @ p[f"{name}.weight"].T + p[f"{name}.bias"]
            if i < len(LAYERS) - 1:
                h = np.maximum(h, np.float32(0.0))
        out[start : start + batch_size] = h
    return out


def predict(state_dict: Mapping[str, object], images: np.ndarray) -> np.ndarray:
    """Predicted digit per image. uint8 images are preprocessed; float input is taken as preprocessed."""
    images = np.asarray(images)
    x = preprocess(images) if images.dtype == np.uint8 else images.reshape(images.shape[0], -1)
    return np.argmax(logits(state_dict, x), axis=1)


def evaluate(state_dict: Mapping[str, object], images: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy (a fraction in [0, 1]) of LeNet-300-100 with the given weights.

    ``state_dict`` maps the six parameter names to numpy arrays (torch tensors are
    accepted too); ``images`` are uint8 as returned by ``mnist.load_mnist`` (float
    input is taken as already preprocessed); ``labels`` are the true digits.
    """
    labels = np.asarray(labels)
    pred = predict(state_dict, images)
    if pred.shape != labels.shape:
        raise ValueError(f"{pred.shape[0]} images but labels have shape {labels.shape}")
    return float(np.mean(pred == labels))


def load_state_dict(path: str | Path = WEIGHTS_PATH) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Load the shipped (or any) LeNet-300-100 safetensors file as numpy arrays plus its metadata."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        metadata = dict(f.metadata() or {})
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return tensors, metadata


try:
    import torch
    from torch import nn
except ImportError:  # torch is an optional extra; the numpy path above still works
    torch = None

if torch is not None:

    class LeNet300(nn.Module):
        """LeNet-300-100 with Caffe parameter names (ip1, ip2, ip3)."""

        def __init__(self) -> None:
            super().__init__()
            for name, fan_in, fan_out in LAYERS:
                setattr(self, name, nn.Linear(fan_in, fan_out))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x.reshape(x.shape[0], -1)
            x = torch.relu(self.ip1(x))
            x = torch.relu(self.ip2(x))
            return self.ip3(x)

else:

    class LeNet300:  # type: ignore[no-redef]
        def __init__(self, *args, **kwargs) -> None:
            raise ImportError("LeNet300 needs PyTorch: pip install 'dcformat[torch]'")
