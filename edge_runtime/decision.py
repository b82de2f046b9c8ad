"""Turning model outputs into verdicts — the rule every tool shares.

A classifier outputs class probabilities. The part is rejected when the
probability that it is *not* good reaches the model's threshold; that one knob
trades false rejects against escapes, which is how a line engineer tunes it.
Export parity, evaluation and benchmarks all compare verdicts made here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_runtime.metadata import ModelInfo


@dataclass(frozen=True)
class Decision:
    verdict: str  # "good" | "defect"
    label: str  # the class name (good or a defect kind)
    score: float  # probability of "not good", 0..1


def decide_classify(probs: np.ndarray, info: ModelInfo) -> list[Decision]:
    """Decisions for a batch of class probabilities (N x classes)."""
    good = info.labels.index(info.good_label)
    out = []
    for row in np.asarray(probs, dtype=np.float64):
        score = float(1.0 - row[good])
        if score >= info.threshold:
            defect_row = row.copy()
            defect_row[good] = -1.0
            out.append(Decision("defect", info.labels[int(defect_row.argmax())], score))
        else:
            out.append(Decision("good", info.good_label, score))
    return out


# Tasks this runtime can decide on; a model of another task is refused at load.
DECIDERS = {"classify": decide_classify}


def decide(outputs: np.ndarray, info: ModelInfo) -> list[Decision]:
    """Dispatch on the model's task."""
    return DECIDERS[info.task](outputs, info)
