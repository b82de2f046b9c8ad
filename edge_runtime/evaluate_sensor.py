"""Metrics of a deployed sensor-family model on a labelled file, through the runtime itself.

The file is read and cut exactly as at training (the model's metadata says how:
window, stride, length fit, label column). Fault classifier: accuracy per class
and the confusion matrix, beside a 1-nearest-neighbour Euclidean baseline on
the same inputs when a training file is given. Signal anomaly model: AUROC, F1
and the line's rates at the stored threshold, overall and per fault kind.
Quality model: MAE / RMSE / R² and the accuracy of its in/out-of-spec calls.
"""

from __future__ import annotations

import numpy as np

from edge_runtime.anomaly_metrics import auroc, kind_escapes, line_rates
from edge_runtime.decision import spec_call
from edge_runtime.disturb import SIGNAL_DISTURBANCES
from edge_runtime.errors import InputFileError
from edge_runtime.metrics import classification_metrics, figure, rate_cell, regression_metrics
from edge_runtime.model import EdgeModel
from edge_runtime.process_table import read_process_table
from edge_runtime.sensor_files import fit_length, read_series


def model_inputs(model: EdgeModel, path: str) -> tuple[np.ndarray, list[str] | None]:
    """(N x window x C float32 inputs, labels) of a file, cut as the model was trained."""
    extra = model.info.extra
    if model.info.task == "quality":
        table = read_process_table(path, extra.get("target"), model.channels)
        return np.ascontiguousarray(table.features[:, None, :]), table.target
    # A wide CSV is cut into the model's windows at its stride; series files give their own series.
    series = read_series(path, label_column=extra.get("label_column", "label"), window=model.window,
                         stride=extra.get("stride") or model.window)
    if series.channels != model.channels:
        raise InputFileError(f"{path} has channels {', '.join(series.channels)}; the model reads "
                             f"{', '.join(model.channels)}: evaluate on data from the same sensors")
    return fit_length(series.series, model.window, extra.get("length_fit", "resample")), series.labels


def outputs(model: EdgeModel, x: np.ndarray, batch: int = 256) -> np.ndarray:
    return np.concatenate([model.infer(x[i : i + batch]) for i in range(0, len(x), batch)])


def nearest_neighbour_accuracy(train_x: np.ndarray, train_y: list[str], test_x: np.ndarray, test_y: list[str]) -> float:
    """1-NN with Euclidean distance on the same fitted inputs: the classic time-series baseline."""
    a, b = train_x.reshape(len(train_x), -1).astype(np.float64), test_x.reshape(len(test_x), -1).astype(np.float64)
    distances = (b**2).sum(1)[:, None] - 2 * b @ a.T + (a**2).sum(1)[None, :]
    nearest = distances.argmin(axis=1)
    return float(np.mean([train_y[j] == t for j, t in zip(nearest, test_y)]))


def sensor_metrics(model: EdgeModel, path: str, baseline_train: str | None = None,
                   disturbances: list[str] = ()) -> dict:
    """The metrics on the file as recorded, and under each named signal disturbance (`disturbed`, with deltas)."""
    x, labels = model_inputs(model, path)
    metrics = _metrics(model, x, labels, path, baseline_train)
    if disturbances:
        scale = np.maximum(x.reshape(-1, x.shape[-1]).std(axis=0), 1e-6).astype(np.float32)
        metrics["disturbed"] = {}
        for name in disturbances:
            row = _metrics(model, SIGNAL_DISTURBANCES[name](x, scale, np.random.default_rng(0)), labels, path, None)
            keys = [k for k in HEADLINE if k in row]
            metrics["disturbed"][name] = {**{k: row[k] for k in keys},
                                          **{f"delta_{k}": row[k] - metrics[k] for k in keys
                                             if row[k] is not None and metrics.get(k) is not None}}
    return metrics


# What is compared under a disturbance: the task's metric first, then the line's two rates.
HEADLINE = ("accuracy", "auroc", "r2", "mae", "false_reject_rate", "escape_rate")


def _metrics(model: EdgeModel, x: np.ndarray, labels: list[str] | None, path: str, baseline_train: str | None) -> dict:
    if labels is None:
        raise InputFileError(f"{path} has no labels: edge-eval needs labelled data "
                             f"(column {model.info.extra.get('label_column') or model.info.extra.get('target')})")
    out = outputs(model, x)
    decisions = model.decide(out)
    info = model.info
    if info.task == "sensor_anomaly":
        return anomaly_window_metrics(info.good_label, labels, np.array([d.score for d in decisions]), info.threshold)
    if info.task == "quality" and info.extra.get("quality_output") == "value":
        values = np.array([float(t) for t in labels])
        calls = classification_metrics([spec_call(v, info) for v in values], [d.label for d in decisions],
                                       info.labels, info.good_label)
        return {**regression_metrics(values, np.array([d.score for d in decisions])), "spec_call": calls,
                "false_reject_rate": calls["false_reject_rate"], "escape_rate": calls["escape_rate"]}
    foreign = sorted(set(labels) - set(info.labels))
    if foreign:
        raise InputFileError(f"{path} has classes {', '.join(foreign)} the model does not know "
                             f"({', '.join(info.labels)}): evaluate on data of the same classes")
    metrics = {**classification_metrics(labels, [d.label for d in decisions], info.labels, info.good_label),
               "unit": "series"}
    if baseline_train:
        train_x, train_y = model_inputs(model, baseline_train)
        metrics["baseline_1nn_euclidean"] = nearest_neighbour_accuracy(train_x, train_y, x, labels)
    return metrics


def anomaly_window_metrics(good: str, labels: list[str], scores: np.ndarray, threshold: float) -> dict:
    """AUROC and rates for normal vs every fault, and per fault kind (normal vs that kind)."""
    is_bad = np.array([lbl != good for lbl in labels])
    if is_bad.all() or not is_bad.any():
        raise InputFileError(f"the data holds only {'faults' if is_bad.all() else 'normal windows'}: AUROC needs both")
    per_kind = {}
    for kind in sorted(set(labels) - {good}):
        pick = np.array([lbl in (good, kind) for lbl in labels])
        truth = np.array([lbl == kind for lbl in labels])[pick]
        per_kind[kind] = {"auroc": auroc(truth, scores[pick]), "count": int(truth.sum()),  # NaN: rejected
                          **kind_escapes(scores[pick][truth], threshold)}
    return {"auroc": auroc(is_bad, scores), **line_rates(is_bad, scores, threshold), "count": len(labels), "normal": int((~is_bad).sum()), "faults": int(is_bad.sum()), "per_kind": per_kind}


def format_sensor_table(metrics: dict) -> str:
    """Anomaly and quality metrics as a few lines for a terminal (classifiers use format_table)."""
    if "mae" in metrics:
        call = metrics["spec_call"]
        return (f"MAE {metrics['mae']:.4g}, RMSE {metrics['rmse']:.4g}, R² {figure(metrics['r2'])} on "
                f"{metrics['count']} parts; in/out-of-spec accuracy {rate_cell(call, 'accuracy')}, false reject "
                f"{rate_cell(call, 'false_reject_rate')}, escape {rate_cell(call, 'escape_rate')} (95 % intervals "
                "in brackets)")
    lines = [f"AUROC {figure(metrics['auroc'])}, F1 {figure(metrics['f1'])}, false reject "
             f"{rate_cell(metrics, 'false_reject_rate')}, escape {rate_cell(metrics, 'escape_rate')} at threshold "
             f"{metrics['threshold']:.4f} ({metrics['normal']} normal, {metrics['faults']} fault windows; 95 % "
             "intervals in brackets)", "",
             "kind          AUROC  count  escape"]
    for kind, row in metrics["per_kind"].items():
        lines.append(f"{kind[:12]:12s}  {figure(row['auroc']):>6s}  {row['count']:5d}  {rate_cell(row, 'escape_rate')}")
    return "\n".join(lines)
