"""MobileNetV2 (Sandler et al. 2018) in plain torch, with torchvision's state-dict names.

torchvision has no CPU build for the pinned torch here, so ``benchmarks/posttraining_mobilenet.py``
builds the network from this module. Parameter and buffer names match
``torchvision.models.mobilenet_v2`` exactly (``features.0.0.weight``,
``features.N.conv.M...``, ``classifier.1.weight``), so torchvision's ImageNet checkpoint
``mobilenet_v2-b0353104.pth`` loads with ``strict=True``::

    model = MobileNetV2()
    model.load_state_dict(torch.load(path, weights_only=True), strict=True)

Layout (torchvision's): ``features.0`` is a 3x3 stride-2 conv + batch norm + ReLU6; features
1-17 are inverted residual blocks, each a ``conv`` Sequential of [1x1 expand conv + BN + ReLU6]
(absent when the expansion is 1), a 3x3 depthwise conv + BN + ReLU6, a 1x1 projection conv and
its BN, with the residual added when the stride is 1 and the widths match; ``features.18`` is
a 1x1 conv to 1280 channels + BN + ReLU6; then global average pooling and ``classifier``
(dropout 0.2, a 1280 -> 1000 linear layer). Batch norm uses torch's defaults (eps 1e-5).
"""

from __future__ import annotations

import torch
from torch import nn

#: (expansion t, output channels c, repeats n, first stride s), as in the paper's Table 2.
INVERTED_RESIDUAL_SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                             (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class ConvBNReLU6(nn.Sequential):
    """Conv2d (no bias) + BatchNorm2d + ReLU6: children 0, 1, 2 as torchvision's Conv2dNormActivation."""

    def __init__(self, inp: int, oup: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(nn.Conv2d(inp, oup, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(oup), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(inp, hidden, kernel=1))
        layers += [ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """Width multiplier 1.0, 224x224 inputs, 1000 ImageNet classes (torchvision's configuration)."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        inp, last = 32, 1280
        features: list[nn.Module] = [ConvBNReLU6(3, inp, stride=2)]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                features.append(InvertedResidual(inp, c, s if i == 0 else 1, t))
                inp = c
        features.append(ConvBNReLU6(inp, last, kernel=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(last, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)


def layer_kind(name: str) -> str:
    """Which part of the network a weight tensor of the state dict belongs to.

    ``first conv`` (features.0), ``depthwise`` (3x3 per-channel convs), ``expand`` (1x1 convs
    that widen a block), ``project`` (1x1 convs that narrow it), ``last conv`` (features.18),
    ``classifier``; anything else (batch-norm vectors, biases, counters) is ``other``.
    """
    parts = name.split(".")
    if not name.endswith("weight") or parts[0] not in ("features", "classifier"):
        return "other"
    if parts[0] == "classifier":
        return "classifier" if parts[1] == "1" else "other"
    block = int(parts[1])
    if block == 0:
        return "first conv" if parts[2:] == ["0", "weight"] else "other"
    if block == 18:
        return "last conv" if parts[2:] == ["0", "weight"] else "other"
    # features.N.conv.M.0.weight (conv inside a ConvBNReLU6) or features.N.conv.M.weight (projection)
    expands = block != 1
    m = int(parts[3])
    if parts[4:] == ["0", "weight"]:
        return "expand" if expands and m == 0 else "depthwise"
    if parts[4:] == ["weight"] and m == (2 if expands else 1):
        return "project"
    return "other"


def batchnorm_of(name: str) -> str | None:
    """The batch norm that follows the conv weight ``name`` (its prefix), or None for the classifier."""
    parts = name.split(".")
    if parts[0] != "features":
        return None
    if parts[-2] == "0" and len(parts) >= 3:  # ...M.0.weight -> ...M.1
        return ".".join(parts[:-2] + ["1"])
    return ".".join(parts[:-2] + [str(int(parts[-2]) + 1)])  # features.N.conv.M.weight -> conv.(M+1)
