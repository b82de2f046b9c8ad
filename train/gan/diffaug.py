"""Differentiable augmentation for the discriminator (Zhao et al. 2020, "DiffAugment").

With five real defects D memorises them within a few hundred steps and its
gradient stops teaching G anything. Augmenting what D sees — real and fake
alike, so D cannot tell them apart by the augmentation — keeps it learning.
Every operation is differentiable, so G's gradient flows through it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def diff_augment(patch: torch.Tensor, mask: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: mild brightness and contrast jitter, then one of the 8 flips/quarter turns and a shift of up to
    1/8 of the side (patch and mask moved together).

    Colour jitter is kept mild and hue/saturation are left alone: the colour of a
    stain is what makes it a stain, and a D blind to colour lets G paint any.
    """
    n, device = patch.shape[0], patch.device
    rand = lambda *shape: torch.rand(*shape, generator=generator).to(device)
    x = patch + (rand(n, 1, 1, 1) - 0.5) * 0.2
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (0.9 + 0.2 * rand(n, 1, 1, 1)) + mean

    quarter = torch.randint(0, 4, (n,), generator=generator).float() * (math.pi / 2)
    mirror = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * 0.25 * 2  # normalised coords: ±1/8 of the side
    cos, sin = torch.cos(quarter).round(), torch.sin(quarter).round()
    theta = torch.stack([torch.stack([cos * mirror, -sin, shift[:, 0]], 1),
                         torch.stack([sin * mirror, cos, shift[:, 1]], 1)], 1).to(device)
    both = torch.cat([x, mask], 1)
    grid = F.affine_grid(theta, list(both.shape), align_corners=False)
    both = F.grid_sample(both, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return both[:, :3], both[:, 3:]
