"""Does the exported artifact decide like the trained model? Figures per precision."""

from __future__ import annotations

import numpy as np
import torch

from edge_runtime.decision import decide
from edge_runtime.metadata import ModelInfo
from edge_runtime.metrics import classification_metrics
from edge_runtime.model import EdgeModel


def batched(fn, images: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate([fn(images[i : i + batch]) for i in range(0, len(images), batch)])


def torch_outputs(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return batched(lambda x: model(torch.from_numpy(x)).numpy(), images)


def onnx_outputs(model: EdgeModel, images: np.ndarray) -> np.ndarray:
    return batched(model.infer, images)


def compare(reference: np.ndarray, outputs: np.ndarray, info: ModelInfo, truth: list[str]) -> dict:
    """Output error, decision flips against the reference (torch), and the task metric on `truth`."""
    ref = decide(reference, info)
    got = decide(outputs, info)
    flips = sum(a.verdict != b.verdict or a.label != b.label for a, b in zip(ref, got))
    error = np.abs(outputs.astype(np.float64) - reference.astype(np.float64))
    metrics = classification_metrics(truth, [d.label for d in got], info.labels, info.good_label)
    return {
        "count": len(truth),
        "max_abs_error": float(error.max()),
        "mean_abs_error": float(error.mean()),
        "flips": int(flips),
        "flip_rate": flips / max(len(truth), 1),
        "accuracy": metrics["accuracy"],
        "false_reject_rate": metrics.get("false_reject_rate"),
        "escape_rate": metrics.get("escape_rate"),
    }
