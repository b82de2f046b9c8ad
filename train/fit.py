"""One small training loop for models that fit in memory (sensor windows, process parameters)."""

from __future__ import annotations

import time

import numpy as np
import torch

from edge_runtime.cli_support import progress
from edge_runtime.errors import TrainingError


def check_finite(model: torch.nn.Module, when: str, lr: float) -> None:
    """Stop a training whose weights went NaN or infinite (too high a learning rate): every later step stays NaN,
    and a saved NaN model exports and deploys as a model that judges nothing."""
    tensors = [*model.parameters(), *(b for b in model.buffers() if b.is_floating_point())]  # BatchNorm's stats too
    if not all(torch.isfinite(t).all() for t in tensors):
        raise TrainingError(f"training diverged: the weights became NaN or infinite {when} with --lr {lr:g}; "
                            "train again with a lower --lr (nothing was saved)")


def fit(model: torch.nn.Module, loss_fn, x: np.ndarray, y: np.ndarray, epochs: int, batch_size: int, lr: float,
        seed: int, device: torch.device, echo=print) -> float:
    """AdamW with a one-cycle schedule; `loss_fn(model, xb, yb)` → scalar. Returns the seconds spent."""
    model.to(device).train()
    xs, ys = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(np.asarray(y))
    steps = int(np.ceil(len(xs) / batch_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps)
    started = time.perf_counter()
    with progress(range(epochs), "epochs") as bar:
        for epoch in bar:
            order = torch.randperm(len(xs), generator=torch.Generator().manual_seed(seed * 1000 + epoch))
            losses = []
            for i in range(steps):
                idx = order[i * batch_size : (i + 1) * batch_size]
                loss = loss_fn(model, xs[idx].to(device), ys[idx].to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                losses.append(loss.item())
            check_finite(model, f"in epoch {epoch + 1}", lr)
            if epoch == epochs - 1 or (epoch + 1) % max(1, epochs // 5) == 0:
                echo(f"epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.4f}")
    model.cpu().eval()
    return time.perf_counter() - started


def predict(model: torch.nn.Module, x: np.ndarray, batch: int = 256, output=None) -> np.ndarray:
    """The model's deployed output (probabilities, scores or values) on CPU, in batches; `output(xb)` in its place
    (a bound method of `model`, e.g. its features) when given."""
    model.eval()
    output = output or model
    with torch.inference_mode():
        return np.concatenate([output(torch.from_numpy(np.ascontiguousarray(x[i : i + batch], dtype=np.float32))).numpy()
                               for i in range(0, len(x), batch)])
