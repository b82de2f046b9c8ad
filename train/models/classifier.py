"""DefectNet: a small CNN that tells good parts from defect kinds, fast on a CPU.

Global max pooling beside average pooling because defects are small and local:
a scratch covers a few percent of the image and averaging would wash it out.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from train.models.image_input import NormalizedStem
from train.models.registry import register_model


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DefectNet(nn.Module):
    """uint8 NHWC image → class probabilities (softmax in the graph; `logits` for training)."""

    def __init__(self, num_classes: int, mean: list[float], std: list[float], width: int = 32):
        super().__init__()
        w = width
        self.stem = NormalizedStem(w * 3 // 4, mean, std)
        self.features = nn.Sequential(
            nn.BatchNorm2d(w * 3 // 4), nn.ReLU(inplace=True),
            _conv(w * 3 // 4, w, 2), _conv(w, w, 1),
            _conv(w, 2 * w, 2), _conv(2 * w, 2 * w, 1),
            _conv(2 * w, 3 * w, 2), _conv(3 * w, 3 * w, 1),
        )
        self.head = nn.Linear(6 * w, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features, what the head sees (also the GAN quality measure's features)."""
        f = self.features(self.stem(x))
        return torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=1)


@register_model("defectnet")
def defectnet(num_classes: int, mean: list[float], std: list[float], width: int = 32) -> DefectNet:
    return DefectNet(num_classes, mean, std, width)
