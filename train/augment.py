"""Batch augmentation on uint8 NHWC tensors: what a line camera varies (pose, light, noise)."""

from __future__ import annotations

import torch


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random flips, 90° turns, brightness/contrast and sensor noise; returns uint8 NHWC."""
    n = batch.shape[0]
    x = batch.float()
    if torch.rand(1, generator=generator).item() < 0.5:
        x = x.flip(2)
    if torch.rand(1, generator=generator).item() < 0.5:
        x = x.flip(1)
    if x.shape[1] == x.shape[2]:
        x = torch.rot90(x, int(torch.randint(0, 4, (1,), generator=generator)), dims=(1, 2))
    gain = 1.0 + 0.3 * (torch.rand(n, 1, 1, 1, generator=generator) - 0.5)
    bias = 20.0 * (torch.rand(n, 1, 1, 1, generator=generator) - 0.5)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * gain + mean + bias
    x = x + torch.randn(x.shape, generator=generator) * 3.0 * torch.rand(n, 1, 1, 1, generator=generator)
    return x.round().clamp(0, 255).to(torch.uint8)
