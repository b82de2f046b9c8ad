"""The artifact contract: the keys a lineside ONNX file carries in `metadata_props`.

Export writes these keys, the runtime reads them; both go through this module so
the names exist once. Values are strings in ONNX; structured ones are JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from edge_runtime import __version__
from edge_runtime.errors import ModelFileError

SCHEMA_VERSION = 1
TASKS = ("classify", "anomaly", "sensor_classify", "sensor_anomaly", "quality")

# Keys whose values are JSON (everything else is a plain string).
_JSON_KEYS = {
    "labels",
    "input_size",
    "mean",
    "std",
    "metrics",
    "quantization",
    "parity",
    # sensor-family models
    "channels",
    "window",
    "stride",
    "sample_rate_hz",
    "spec",
}
_REQUIRED = ("lineside.schema", "task", "labels", "threshold", "precision")


@dataclass(frozen=True)
class ModelInfo:
    """What the runtime needs to know about a model, read from its own file."""

    task: str
    labels: list[str]
    threshold: float
    precision: str
    good_label: str = "good"
    input_size: tuple[int, int] = (128, 128)  # (height, width)
    input_layout: str = "NHWC"
    input_dtype: str = "uint8"
    channel_order: str = "RGB"
    resize: str = "area"
    mean: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    std: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    schema: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)


def to_props(info: ModelInfo) -> dict[str, str]:
    """Encode a ModelInfo (plus its `extra` keys) as ONNX metadata strings."""
    props: dict[str, Any] = {
        "lineside.schema": str(info.schema),
        "lineside.version": __version__,
        "task": info.task,
        "labels": info.labels,
        "good_label": info.good_label,
        "threshold": repr(float(info.threshold)),
        "precision": info.precision,
        "input_size": list(info.input_size),
        "input_layout": info.input_layout,
        "input_dtype": info.input_dtype,
        "channel_order": info.channel_order,
        "resize": info.resize,
        "mean": info.mean,
        "std": info.std,
        **info.extra,
    }
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in props.items()}


def from_props(props: dict[str, str], origin: str) -> ModelInfo:
    """Decode ONNX metadata into a ModelInfo; `origin` names the file in errors."""
    if "lineside.schema" not in props:
        raise ModelFileError(
            f"{origin} has no lineside metadata: export it with `edge-export` "
            "(a plain ONNX file does not say how to preprocess or decide)"
        )
    missing = [k for k in _REQUIRED if k not in props]
    if missing:
        raise ModelFileError(
            f"{origin} lacks metadata {', '.join(missing)}: re-export it with `edge-export`"
        )
    try:
        schema = int(props["lineside.schema"])
        decoded = {k: json.loads(v) if k in _JSON_KEYS else v for k, v in props.items()}
        threshold = float(props["threshold"])
    except ValueError as exc:
        raise ModelFileError(f"{origin} has malformed lineside metadata ({exc}): re-export it") from exc
    if schema > SCHEMA_VERSION:
        raise ModelFileError(
            f"{origin} uses artifact schema {schema}, this runtime reads up to "
            f"{SCHEMA_VERSION}: upgrade lineside on this machine"
        )
    if decoded["task"] not in TASKS:
        raise ModelFileError(f"{origin} has unknown task {decoded['task']!r}; known: {', '.join(TASKS)}")
    known = {
        "task", "labels", "good_label", "threshold", "precision", "input_size", "input_layout",
        "input_dtype", "channel_order", "resize", "mean", "std",
    }
    return ModelInfo(
        task=decoded["task"],
        labels=list(decoded["labels"]),
        threshold=threshold,
        precision=decoded["precision"],
        good_label=decoded.get("good_label", "good"),
        input_size=tuple(decoded.get("input_size", (128, 128))),
        input_layout=decoded.get("input_layout", "NHWC"),
        input_dtype=decoded.get("input_dtype", "uint8"),
        channel_order=decoded.get("channel_order", "RGB"),
        resize=decoded.get("resize", "area"),
        mean=list(decoded.get("mean", [0.0, 0.0, 0.0])),
        std=list(decoded.get("std", [1.0, 1.0, 1.0])),
        schema=schema,
        extra={k: v for k, v in decoded.items() if k not in known and k != "lineside.schema"},
    )
