"""Fitting `seq_rocket`: biases from training windows, then a ridge head chosen by leave-one-out error.

The ridge is solved in closed form, for every candidate penalty at once, from
one eigendecomposition (of the n x n Gram matrix when there are fewer windows
than features, else of the feature covariance); its exact leave-one-out
predictions pick the penalty and then a softmax temperature, so the model's
class probabilities (what `decide` thresholds) are calibrated on windows the
head did not fit, not on training windows a 10,000-feature ridge reproduces exactly.
"""

from __future__ import annotations

import numpy as np
import torch

from train.fit import predict
from train.models.rocket import SeqRocket

ALPHAS = np.logspace(-3, 3, 10)
# Biases sit a little above their quantile: TIE_SHIFT of the sample output's spread, plus a hundredth of that
# relative to all this dilation's sampled outputs (a flat sample window has no spread of its own). A zero-sum
# kernel over a flat stretch (a padded tail, a stuck sensor) or over ADC steps gives many equal outputs; a
# quantile among them would split them by rounding, and torch and ONNX Runtime round ~1e-7 apart. Above
# them, both runtimes agree (tests/train/test_rocket.py).
TIE_SHIFT = 1e-4
GOLDEN = (np.sqrt(5) + 1) / 2


@torch.no_grad()
def fit_biases(model: SeqRocket, x: np.ndarray, seed: int) -> None:
    """Each kernel's biases: quantiles of its output on one random training window (low-discrepancy levels)."""
    rng = np.random.default_rng(seed)
    xs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    used = 0
    for i, (padded, middle) in enumerate(model.conv_outputs(xs[rng.integers(len(xs), size=len(model.convs[0].weight))])):
        bias = getattr(model, f"bias{i}")
        count = bias.shape[1]
        levels = ((np.arange(used, used + count) + 1) * GOLDEN) % 1
        used += count
        k = padded.shape[1]  # window r was drawn for kernel r, in the order of the convolution's outputs
        rows = [padded[r, r] for r in range(k)] + [middle[k + r, r] for r in range(middle.shape[1])]
        floor = 0.01 * float(torch.cat([padded.flatten(), middle.flatten()]).double().std())
        for r, out in enumerate(rows):
            values = out.double().numpy()
            bias[r, :, 0] = torch.from_numpy(np.quantile(values, levels) + TIE_SHIFT * (values.std() + floor))


def ridge_loo(f: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """(weights F x K, the chosen penalty, leave-one-out predictions n x K) of a ridge on centred f and targets."""
    n, width = f.shape
    if n <= width:  # the smaller Gram matrix: basis = the left singular vectors of f either way
        s, basis = np.linalg.eigh(f @ f.T)
    else:
        s, v = np.linalg.eigh(f.T @ f)
        basis = f @ v / np.sqrt(np.maximum(s, 1e-12))
    s = np.maximum(s, 0.0)
    projected = basis.T @ targets
    best = None
    for alpha in ALPHAS:
        shrink = s / (s + alpha)
        fitted = basis @ (shrink[:, None] * projected)
        hat = (basis**2) @ shrink + 1.0 / n  # the intercept's share of each window's own fit
        residual = (targets - fitted) / np.maximum(1.0 - hat, 1e-9)[:, None]
        error = float((residual**2).mean())
        if best is None or error < best[0]:
            best = (error, alpha, targets - residual)
    _, alpha, loo = best
    weights = f.T @ (basis @ ((1.0 / (s + alpha))[:, None] * projected))  # f'(ff' + alpha)^-1 t
    return weights, float(alpha), loo


def _temperature(scores: np.ndarray, y: np.ndarray) -> float:
    """The softmax temperature that makes `scores` the most likely probabilities of the true classes."""
    def nll(t: float) -> float:
        z = t * scores
        z = z - z.max(axis=1, keepdims=True)
        return float(-(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(axis=1))).mean())

    grid = np.exp(np.linspace(np.log(0.1), np.log(30.0), 58))  # capped: separable LOO scores push it up forever
    return float(grid[int(np.argmin([nll(t) for t in grid]))])


def fit_rocket(model: SeqRocket, x: np.ndarray, y: np.ndarray, seed: int) -> dict:
    """Fit the biases and the head on training windows x (N x T x C raw) with class indices y."""
    fit_biases(model, x, seed)
    f = predict(model, x, 64, output=model.features).astype(np.float64)
    mean, spread = f.mean(axis=0), f.std(axis=0)
    spread[spread < 1e-6] = np.inf  # a feature constant in training carries nothing: weight 0
    targets = -np.ones((len(y), model.head.out_features))
    targets[np.arange(len(y)), y] = 1.0
    offset = targets.mean(axis=0)
    weights, alpha, loo = ridge_loo((f - mean) / spread, targets - offset)
    temperature = _temperature(loo + offset, y)
    scaled = temperature * weights / spread[:, None]  # the standardisation folded into the head
    model.head.weight.data = torch.from_numpy(np.ascontiguousarray(scaled.T)).float()
    model.head.bias.data = torch.from_numpy(temperature * offset - mean @ scaled).float()
    loo_accuracy = float(((loo + offset).argmax(axis=1) == y).mean())
    return {"alpha": alpha, "temperature": round(temperature, 3), "features": int(f.shape[1]),
            "loo_accuracy": round(loo_accuracy, 4)}
