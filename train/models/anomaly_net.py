"""SurfaceNet: a small U-Net that maps an image to a per-pixel anomaly probability, fast on a CPU.

It is DRAEM's discriminative half without the reconstruction network: trained
from scratch on good images with synthetic anomalies (train/anomaly_synth.py),
it learns what the normal surface looks like well enough to point at anything
else. Dropping the reconstruction network halves the cost and keeps the graph
a plain stack of convolutions, which INT8 handles well.

Outputs (both in the graph, so the runtime only reads them):
  score       N      — how strongly the map says "anomaly" somewhere, pooled so a
                       single noisy pixel does not reject a part: score="line"
                       (trained since 2026-11-27) takes the highest mean along a
                       short line in any of 8 directions at quarter resolution, so
                       a thin crack counts with its whole length instead of being
                       diluted by the good pixels around it in a box; score="box"
                       (older runs) the highest 2k+1 box mean at half resolution
  anomaly_map N×H×W  — probability per input pixel, 0..1
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from train.models.image_input import NormalizedStem
from train.models.registry import register_model


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def line_kernels(length: int = 11, directions: int = 8) -> torch.Tensor:
    """directions x 1 x L x L kernels, each the mean along one line through the centre."""
    kernels = torch.zeros(directions, 1, length, length)
    c = (length - 1) / 2
    for i in range(directions):
        angle = torch.tensor(i * torch.pi / directions)
        for r in torch.linspace(-c, c, 4 * length):
            kernels[i, 0, int(round(float(c + r * torch.sin(angle)))), int(round(float(c + r * torch.cos(angle))))] = 1
    return kernels / kernels.sum(dim=(2, 3), keepdim=True)


class SurfaceNet(nn.Module):
    def __init__(self, mean: list[float], std: list[float], width: int = 16, pool: int = 4, score: str = "box",
                 line: int = 11):
        super().__init__()
        if score not in ("box", "line"):
            raise ValueError(f"score must be box or line, not {score!r}")
        w = width
        self.pool = pool
        self.score_kind = score
        # fixed, not learnt, not stored: rebuilt from the arguments, so older checkpoints load unchanged
        self.register_buffer("lines", line_kernels(line), persistent=False)
        self.stem = NormalizedStem(w, mean, std, kernel=2, stride=2)  # a 2x2 stride-2 stem: exact halving, no pad
        self.enc1 = nn.Sequential(nn.BatchNorm2d(w), nn.ReLU(inplace=True), _conv(w, w))  # H/2
        self.enc2 = nn.Sequential(_conv(w, 2 * w, 2), _conv(2 * w, 2 * w))  # H/4
        self.enc3 = nn.Sequential(_conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w))  # H/8
        self.enc4 = nn.Sequential(_conv(4 * w, 4 * w, 2), _conv(4 * w, 4 * w))  # H/16: context for larger defects
        self.dec3 = _conv(8 * w, 4 * w)
        self.dec2 = _conv(6 * w, 2 * w)
        self.dec1 = _conv(3 * w, w)
        self.head = nn.Conv2d(w, 1, 1)

    @staticmethod
    def _up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="nearest")

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """N x 1 x H/2 x W/2 anomaly logits for a uint8 NHWC batch."""
        e1 = self.enc1(self.stem(x))
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        d3 = self.dec3(torch.cat([self._up(e4), e3], 1))
        d2 = self.dec2(torch.cat([self._up(d3), e2], 1))
        d1 = self.dec1(torch.cat([self._up(d2), e1], 1))
        return self.head(d1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        prob = torch.sigmoid(self.logits(x))
        if self.score_kind == "line":
            # quarter resolution keeps the 8 fixed 11x11 convolutions at ~4 M multiply-adds (21x21 at half: 58 M)
            pad = self.lines.shape[-1] // 2  # reflected, so a crack running off the edge is not diluted by zeros
            local = F.conv2d(F.pad(F.avg_pool2d(prob, 2), (pad, pad, pad, pad), mode="reflect"), self.lines)
        else:
            k = 2 * self.pool + 1
            local = F.avg_pool2d(prob, k, stride=1, padding=self.pool, count_include_pad=False)
        score = local.amax(dim=(1, 2, 3))
        amap = F.interpolate(prob, scale_factor=2.0, mode="bilinear", align_corners=False)[:, 0]
        return score, amap


@register_model("surfacenet")
def surfacenet(mean: list[float], std: list[float], width: int = 16, pool: int = 4, score: str = "box",
               line: int = 11) -> SurfaceNet:
    return SurfaceNet(mean, std, width, pool, score, line)
