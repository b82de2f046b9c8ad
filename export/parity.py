"""Does the exported artifact decide like the trained model? Figures per precision.

A model may have several outputs (an anomaly model: score, then heat map);
decisions are made on the first, and the error of every output is reported.
"""

from __future__ import annotations

import numpy as np
import torch

from edge_runtime.anomaly_metrics import auroc, line_rates
from edge_runtime.decision import decide, output_flags, spec_call
from edge_runtime.metadata import ModelInfo
from edge_runtime.metrics import classification_metrics, regression_metrics
from edge_runtime.model import EdgeModel


def _as_list(outputs) -> list:
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def batched(fn, images: np.ndarray, batch: int = 64) -> list[np.ndarray]:
    """Every output of `fn` over `images`, in batches, concatenated per output."""
    parts = [_as_list(fn(images[i : i + batch])) for i in range(0, len(images), batch)]
    return [np.concatenate(chunks) for chunks in zip(*parts)]


def torch_outputs(model: torch.nn.Module, images: np.ndarray) -> list[np.ndarray]:
    with torch.inference_mode():
        return batched(lambda x: [t.numpy() for t in _as_list(model(torch.from_numpy(x)))], images)


def onnx_outputs(model: EdgeModel, images: np.ndarray) -> list[np.ndarray]:
    return batched(model.run, images)


def task_metrics(info: ModelInfo, truth: list[str], decisions: list, scores: np.ndarray) -> dict:
    """The task's headline metric (`metric`) and the line's rates, from decisions on labelled inputs."""
    if info.task == "quality" and info.extra.get("quality_output") == "value":
        values = np.array([float(t) for t in truth])
        regression = regression_metrics(values, scores)  # a quality decision's score is the predicted value
        return {"metric_name": "r2", "metric": regression["r2"], "mae": regression["mae"],
                **_call_rates(info, [d.label for d in decisions], [spec_call(v, info) for v in values])}
    if info.task in ("anomaly", "sensor_anomaly"):
        is_bad = np.array([t != info.good_label for t in truth])
        rates = line_rates(is_bad, scores, info.threshold)
        return {"metric_name": "auroc", "metric": auroc(is_bad, scores), "accuracy": rates["accuracy"],
                "false_reject_rate": rates["false_reject_rate"], "escape_rate": rates["escape_rate"]}
    rates = _call_rates(info, [d.label for d in decisions], truth)
    return {"metric_name": "accuracy", "metric": rates["accuracy"], **rates}


def _call_rates(info: ModelInfo, predicted: list[str], truth: list[str]) -> dict:
    """Accuracy and the line's two rates of the verdicts' labels against the true ones."""
    metrics = classification_metrics(truth, predicted, info.labels, info.good_label)
    return {"accuracy": metrics["accuracy"], "false_reject_rate": metrics.get("false_reject_rate"),
            "escape_rate": metrics.get("escape_rate")}


def compare(reference, outputs, info: ModelInfo, truth: list[str], masks: np.ndarray | None = None,
            reference_info: ModelInfo | None = None) -> dict:
    """Output error, decision flips against the reference (torch, deciding by `reference_info` where the artifact
    has its own threshold), and the task metric on `truth`; with true anomaly `masks`, the pixel AUROC of the heat
    map (the second output) too."""
    reference, outputs = _as_list(reference), _as_list(outputs)
    ref = decide(reference[0], reference_info or info)
    got = decide(outputs[0], info)
    flips = sum(a.verdict != b.verdict or a.label != b.label for a, b in zip(ref, got))
    errors = [np.abs(o.astype(np.float64) - r.astype(np.float64)) for o, r in zip(outputs, reference)]
    figures = {
        "count": len(truth),
        "max_abs_error": float(errors[0].max()),
        # relative to the output's own scale: a 50 mm part width is judged like a 0..1 probability
        "max_rel_error": float(errors[0].max() / max(float(np.abs(reference[0]).max()), 1e-6)),
        "mean_abs_error": float(errors[0].mean()),
        "flips": int(flips),
        "flip_rate": flips / max(len(truth), 1),
        # inputs whose decision output holds a NaN or an infinity: a diverged training, or an export that broke it
        "non_finite_outputs": int(sum(bool(output_flags(row)) for row in outputs[0])),
        **task_metrics(info, truth, got, np.array([d.score for d in got])),
    }
    if len(errors) > 1:  # e.g. the heat map; decisions come from the first output
        figures["other_outputs_max_abs_error"] = [float(e.max()) for e in errors[1:]]
    if masks is not None and len(outputs) > 1:
        # every 2nd pixel each way: a quarter of the pixels gives the same AUROC to 1e-3, 4x sooner
        figures["pixel_auroc"] = auroc(masks[:, ::2, ::2], outputs[1][:, ::2, ::2])
    return figures
