"""Turning model outputs into verdicts — the rule every tool shares.

A classifier outputs class probabilities. The part is rejected when the
probability that it is *not* good reaches the model's threshold; an anomaly
model outputs a score, and the part is rejected when the score reaches the
threshold calibrated on good parts. That one knob trades false rejects against
escapes, which is how a line engineer tunes it.
Export parity, evaluation and benchmarks all compare verdicts made here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_runtime.metadata import ModelInfo


# The label of an output holding a NaN or an infinity: no comparison with a threshold is true for NaN, so without
# this the rule would pass the part as good. It is rejected instead, and metrics count it as a miss of its class.
NO_VERDICT = "no_verdict"


@dataclass(frozen=True)
class Decision:
    verdict: str  # "good" | "defect"
    label: str  # the class name (good or a defect kind), "anomaly", or NO_VERDICT
    score: float  # classify: probability of "not good"; anomaly: the anomaly score (0..1)


def decide_classify(probs: np.ndarray, info: ModelInfo) -> list[Decision]:
    """Decisions for a batch of class probabilities (N x classes).

    A model without a good class (identifying which appliance or machine state it
    sees, e.g. PLAID) gives the most probable class as its verdict.
    """
    rows = np.asarray(probs, dtype=np.float64)
    if info.good_label not in info.labels:
        return [Decision(NO_VERDICT, NO_VERDICT, float("nan")) if output_flags(row)
                else Decision(info.labels[int(row.argmax())], info.labels[int(row.argmax())], float(row.max()))
                for row in rows]
    good = info.labels.index(info.good_label)
    out = []
    for row in rows:
        score = float(1.0 - row[good])
        if output_flags(row):
            out.append(Decision("defect", NO_VERDICT, float("nan")))
        elif score >= info.threshold:
            defect_row = row.copy()
            defect_row[good] = -1.0
            out.append(Decision("defect", info.labels[int(defect_row.argmax())], score))
        else:
            out.append(Decision("good", info.good_label, score))
    return out


def passes(scores, threshold: float) -> np.ndarray:
    """Which anomaly scores pass as good: under the threshold and finite. NaN or ±inf is rejected (no_verdict):
    no comparison with NaN is true, so `score >= threshold` alone would pass it."""
    scores = np.asarray(scores, dtype=np.float64)
    return (scores < threshold) & np.isfinite(scores)


def decide_anomaly(scores: np.ndarray, info: ModelInfo) -> list[Decision]:
    """Decisions for a batch of anomaly scores (N): reject when the score reaches the calibrated threshold."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    return [Decision("good", info.good_label, float(s)) if ok
            else Decision("defect", "anomaly" if np.isfinite(s) else NO_VERDICT, float(s))
            for s, ok in zip(scores, passes(scores, info.threshold))]


def decide_quality(values: np.ndarray, info: ModelInfo) -> list[Decision]:
    """Decisions for predicted quality values (N or N x 1): reject when a value leaves the spec limits.

    A quality model trained on a pass/fail column outputs class probabilities
    instead (metadata `quality_output` = "class") and is decided like a classifier.
    """
    if decides_by_class(info):
        return decide_classify(values, info)
    out = []
    for v in np.asarray(values, dtype=np.float64).reshape(len(values), -1)[:, 0]:
        label = spec_call(v, info)
        out.append(Decision("good" if label == info.good_label else "defect", label, float(v)))
    return out


def decides_by_class(info: ModelInfo) -> bool:
    """Whether the model outputs class probabilities (one column per label) that decide_classify reads."""
    return info.task in ("classify", "sensor_classify") or info.extra.get("quality_output") == "class"


def spec_call(value: float, info: ModelInfo) -> str:
    """The quality label of a value (predicted or measured) against the model's spec limits."""
    lower, upper = info.extra.get("spec", [None, None])
    bad = not np.isfinite(value) or (lower is not None and value < lower) or (upper is not None and value > upper)
    return "out_of_spec" if bad else info.good_label


# Tasks this runtime can decide on; a model of another task is refused at load.
DECIDERS = {"classify": decide_classify, "anomaly": decide_anomaly, "sensor_classify": decide_classify,
            "sensor_anomaly": decide_anomaly, "quality": decide_quality}
# Tasks whose input is a window of sensor samples (float32 N x T x C) rather than an image.
SENSOR_TASKS = ("sensor_classify", "sensor_anomaly", "quality")


def output_flags(output: np.ndarray) -> list[str]:
    """["non_finite_output"] when the model's output for one input holds a NaN or an infinity (the decision's score
    is read from it): every comparison with the threshold is False, so the rule would pass the part as good, and
    a NaN in another class's column would hide behind a finite good one. The pipelines make that frame invalid."""
    return [] if np.isfinite(np.asarray(output, dtype=np.float64)).all() else ["non_finite_output"]


def record_score(decision: Decision | None) -> float | None:
    """The score as a verdict record carries it: rounded; None when there is none or it is not finite (JSON has
    no NaN)."""
    return round(decision.score, 6) if decision is not None and np.isfinite(decision.score) else None


def decide(outputs: np.ndarray, info: ModelInfo) -> list[Decision]:
    """Dispatch on the model's task."""
    return DECIDERS[info.task](outputs, info)
