"""Metrics of a deployed artifact on a labelled data set, through the runtime itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_runtime.datasets import load_image
from edge_runtime.disturb import DISTURBANCES
from edge_runtime.errors import DatasetLayoutError
from edge_runtime.metrics import classification_metrics
from edge_runtime.model import EdgeModel


def check_classes(model: EdgeModel, pairs: list[tuple[Path, str]], data: str | Path) -> None:
    """Every class in the data must be one the model knows."""
    foreign = sorted({label for _, label in pairs} - set(model.info.labels))
    if foreign:
        raise DatasetLayoutError(
            f"{data} has classes {', '.join(foreign)} that the model does not know "
            f"(it knows {', '.join(model.info.labels)}): evaluate on data of the same classes"
        )


def evaluate(model: EdgeModel, pairs: list[tuple[Path, str]], batch: int = 32, progress=None,
             disturbance: str | None = None) -> dict:
    """Per-class accuracy, confusion matrix and line rates of `model` on labelled images (optionally disturbed)."""
    predicted: list[str] = []
    for start in range(0, len(pairs), batch):
        chunk = pairs[start : start + batch]
        inputs = []
        for index, (path, _) in enumerate(chunk, start):
            image = load_image(path)
            if disturbance:
                image = DISTURBANCES[disturbance](image, None, index)[0]
            inputs.append(model.prepare(image))
        predicted += [d.label for d in model.decide(model.infer(np.stack(inputs)))]
        if progress:
            progress(len(chunk))
    metrics = classification_metrics([label for _, label in pairs], predicted, model.info.labels, model.info.good_label)
    return {"model": model.describe(), **metrics}
