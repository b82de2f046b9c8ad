"""Evaluation metrics that need nothing but numpy (shared by training and edge-eval)."""

from __future__ import annotations

import numpy as np

from edge_runtime.decision import NO_VERDICT


def confusion_matrix(true: list[int], pred: list[int], n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true, dtype=np.int64), np.asarray(pred, dtype=np.int64)), 1)
    return matrix


def wilson(hits: int, n: int, z: float = 1.959964) -> list[float] | None:
    """The Wilson score interval (95 % at the default z) of the rate hits / n; None when n is 0.

    Why: a test set holds tens of parts per class, so "escape 0.000 on 30 defects" still allows up to 11 % on
    the line. Wilson stays inside 0..1 and is not empty at 0 or n, where the textbook p ± z·se interval is."""
    if n == 0:
        return None
    p, zz = hits / n, z * z / n
    centre, half = (p + zz / 2) / (1 + zz), z * np.sqrt(p * (1 - p) / n + zz / (4 * n)) / (1 + zz)
    return [round(max(0.0, float(centre - half)), 6), round(min(1.0, float(centre + half)), 6)]


def with_interval(value, interval, spec: str = ".4f") -> str:
    """A rate and its 95 % interval for a table: "0.0000 [0.000-0.116]", or "-" where it is undefined."""
    return figure(value, spec) + ("" if value is None or interval is None else
                                  f" [{interval[0]:.3f}-{interval[1]:.3f}]")


def rate_cell(row: dict, key: str) -> str:
    """with_interval of row[key] and its interval, row["interval_95"][key], as every metrics dict holds them."""
    return with_interval(row[key], row.get("interval_95", {}).get(key))


def classification_metrics(true: list[str], pred: list[str], labels: list[str], good: str = "good") -> dict:
    """Accuracy, per-class accuracy (recall), the confusion matrix, and the line's two rates.

    `false_reject_rate`: good parts rejected; `escape_rate`: defective parts passed as good. A prediction of
    NO_VERDICT (the model output a NaN) is outside the matrix: a miss of its class, rejected, never an escape.
    """
    index = {name: i for i, name in enumerate(labels)}
    true_index = np.array([index[t] for t in true], dtype=np.int64)
    decided = np.array([p != NO_VERDICT for p in pred], dtype=bool)
    matrix = confusion_matrix(true_index[decided], [index[p] for p in pred if p != NO_VERDICT], len(labels))
    support = np.bincount(true_index, minlength=len(labels))
    per_class = {
        name: {"accuracy": float(matrix[i, i] / support[i]) if support[i] else None, "support": int(support[i]),
               "interval_95": wilson(int(matrix[i, i]), int(support[i]))}
        for i, name in enumerate(labels)
    }
    result = {
        "accuracy": float(np.trace(matrix) / max(len(true), 1)),
        "per_class": per_class,
        "labels": labels,
        "confusion_matrix": matrix.tolist(),
        "count": len(true),
        "no_verdict": int((~decided).sum()),
        "interval_95": {"accuracy": wilson(int(np.trace(matrix)), len(true))},
    }
    if good in index:
        g = index[good]
        good_total, bad_total = int(support[g]), int(support.sum() - support[g])
        result["false_reject_rate"] = float((support[g] - matrix[g, g]) / good_total) if good_total else None
        escapes = int(matrix[:, g].sum() - matrix[g, g])
        result["escape_rate"] = escapes / bad_total if bad_total else None
        result["interval_95"].update(false_reject_rate=wilson(int(support[g] - matrix[g, g]), good_total),
                                     escape_rate=wilson(escapes, bad_total))
    return result


def format_table(metrics: dict) -> str:
    """Per-class accuracy and the confusion matrix as plain text for a terminal."""
    labels = metrics["labels"]
    width = max(8, *(len(n) for n in labels)) + 2
    lines = [f"accuracy {rate_cell(metrics, 'accuracy')} on {metrics['count']} {metrics.get('unit', 'images')} "
             "(95 % intervals in brackets)"]
    for key in ("false_reject_rate", "escape_rate"):
        if metrics.get(key) is not None:
            lines.append(f"{key.replace('_', ' ')} {rate_cell(metrics, key)}")
    if metrics.get("no_verdict"):
        lines.append(f"no verdict {metrics['no_verdict']} (the model output NaN or infinity: counted as missed and "
                     "rejected; check the model and its inputs)")
    lines.append("")
    lines.append("class".ljust(width) + "accuracy [95 % interval]  support")
    for name in labels:
        row = metrics["per_class"][name]
        lines.append(name.ljust(width) + with_interval(row["accuracy"], row.get("interval_95")).ljust(24)
                     + f"{row['support']:9d}")
    lines.append("")
    lines.append("confusion (rows true, columns predicted)")
    lines.append("".ljust(width) + "".join(n[:width - 1].rjust(width) for n in labels))
    for name, row in zip(labels, metrics["confusion_matrix"]):
        lines.append(name.ljust(width) + "".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)


def figure(value, spec: str = ".4f") -> str:
    """A metric for a table: "-" where it is undefined (None: no parts of that kind, constant targets)."""
    return "-" if value is None else format(value, spec)


def regression_metrics(true: np.ndarray, pred: np.ndarray) -> dict:
    """MAE, RMSE and R² of predicted values against measured ones."""
    true, pred = np.asarray(true, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    err = pred - true
    spread = float(((true - true.mean()) ** 2).sum())
    constant = len(true) == 0 or np.ptp(true) == 0  # rounding leaves equal values a spread of ~1e-33, not 0
    return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean())),
            "r2": None if constant else float(1 - (err**2).sum() / spread), "count": int(len(true))}
