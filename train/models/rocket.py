"""`seq_rocket`: random-convolution features (MiniRocket, Dempster et al. 2021) and a linear head.

No gradient training. 84 fixed kernels of length 9 (weights -1, with three 2s:
every choice of 3 of 9 positions) run at dilations spread exponentially over
the window; each kernel/dilation gives a few features, each the share of its
outputs above a bias (PPV). Biases are quantiles of the kernel's output on
training windows; the head is a ridge regression on the standardised features
(`train/rocket_fit.py`). On sktime's eight bundled UCR/UEA sets, with default
settings, it beat 1-NN on all eight, where the gradient-trained 1D-CNN lost to
1-NN on three of them (README, "Fault classifier"). It keeps the paper's zero
padding by default; `edges="repeat"` (edge-train's --ignore-offset) cancels a
sensor's offset instead.

Everything that depends only on (channels, length, seed) — kernel weights,
channel choices, dilations, which kernels pad — is rebuilt from the model
arguments; biases and the head are in the checkpoint.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from train.models.registry import register_model
from train.models.sequence import ChannelNorm

KERNEL_LENGTH = 9
# The 84 kernels: the three positions of weight 2 (the other six are -1, so each kernel sums to zero)
TWOS = np.array(list(itertools.combinations(range(KERNEL_LENGTH), 3)))
FEATURES_PER_KERNEL = 119  # 84 x 119 = 9,996 features, the paper's default of about 10,000
FEATURES = len(TWOS) * FEATURES_PER_KERNEL
MAX_DILATIONS = 32


def dilations(length: int) -> tuple[np.ndarray, np.ndarray]:
    """(dilations, features of each kernel at each): exponentially spaced so the widest kernel spans the window."""
    top = np.log2(max(length - 1, 1) / (KERNEL_LENGTH - 1))
    count = min(FEATURES_PER_KERNEL, MAX_DILATIONS)
    values, repeats = np.unique(np.floor(np.logspace(0, max(top, 0.0), count, base=2)).astype(int),
                                return_counts=True)
    features = (repeats * FEATURES_PER_KERNEL / count).astype(int)
    features[: FEATURES_PER_KERNEL - features.sum()] += 1
    return values, features


class SeqRocket(nn.Module):
    def __init__(self, channels: int, num_classes: int, mean: list[float], std: list[float], length: int,
                 seed: int = 0, edges: str = "zero"):
        super().__init__()
        self.norm = ChannelNorm(mean, std)
        # "zero": the paper's zero padding, through which a window's level reaches the features at its edges.
        # "repeat": the edges repeat the end samples, so a channel's offset (a sensor's zero point) cancels in
        # the zero-sum kernels everywhere (PLAID under a 0.25-spread offset: 0.63 -> 0.90), at the cost of
        # the level where it is information (JapaneseVowels 0.99 -> 0.86).
        self.edges = edges
        rng = np.random.default_rng(seed)
        self.dilations, self.counts = dilations(length)
        self.convs = nn.ModuleList()
        self.padded: list[int] = []  # per dilation: how many kernels (the first ones) read the padded edges
        self.crops: list[int] = []  # per dilation: samples cut from each end for the unpadded kernels
        for i, (dilation, count) in enumerate(zip(self.dilations.tolist(), self.counts.tolist())):
            crop = (KERNEL_LENGTH - 1) * dilation // 2
            # Half the kernel/dilation pairs read the padded edges, half only the valid middle (as in the
            # paper): padded ones first, so each group is one slice of the convolution's output.
            order = sorted(range(len(TWOS)), key=lambda k: (i + k) % 2)
            weight = np.zeros((len(TWOS), channels, KERNEL_LENGTH), np.float32)
            for row, k in enumerate(order):
                # Each kernel sums a random subset of the channels (1 .. min(C, 9)), as MiniRocket's multivariate form
                picked = rng.choice(channels, int(2 ** rng.uniform(0, np.log2(min(channels, 9) + 1))), replace=False)
                weight[row, picked] = -1.0
                weight[row, picked[:, None], TWOS[k][None]] = 2.0
            conv = nn.Conv1d(channels, len(TWOS), KERNEL_LENGTH, dilation=dilation,
                             padding=crop if edges == "zero" else 0, bias=False)
            conv.weight.data.copy_(torch.from_numpy(weight))
            conv.requires_grad_(False)
            self.convs.append(conv)
            valid = length - 2 * crop > 0
            self.padded.append(sum((i + k) % 2 == 0 for k in range(len(TWOS))) if valid else len(TWOS))
            self.crops.append(crop if valid else 0)
            self.register_buffer(f"bias{i}", torch.zeros(len(TWOS), count, 1))
        self.head = nn.Linear(int(len(TWOS) * self.counts.sum()), num_classes)

    def conv_outputs(self, x: torch.Tensor):
        """Per dilation: (outputs of the padded kernels N x k x T, outputs of the others over the valid middle)."""
        z = self.norm(x).transpose(1, 2)
        for conv, k, crop in zip(self.convs, self.padded, self.crops):
            if self.edges == "repeat":  # as wide as the zero padding: the crop, (KERNEL_LENGTH - 1) * dilation // 2
                out = conv(F.pad(z, (crop, crop), mode="replicate"))
            else:
                out = conv(z)
            yield out[:, :k], out[:, k:, crop : out.shape[2] - crop]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        parts = []
        for i, (padded, middle) in enumerate(self.conv_outputs(x)):
            bias = getattr(self, f"bias{i}")
            k = padded.shape[1]
            for out, b in ((padded, bias[:k]), (middle, bias[k:])):
                if out.shape[1]:
                    parts.append((out.unsqueeze(2) > b).float().mean(dim=3).flatten(1))
        return torch.cat(parts, dim=1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=1)


@register_model("seq_rocket")
def seq_rocket(channels: int, num_classes: int, mean: list[float], std: list[float], length: int,
               seed: int = 0, edges: str = "zero") -> SeqRocket:
    return SeqRocket(channels, num_classes, mean, std, length, seed, edges)
