"""Tiny real ONNX sensor models for tests, built with onnx.helper (no training): the score is mean |x| over a window.

    anomaly_model(path, window=20, stride=10, channels=("x", "y", "z"), threshold=1.0)
    classify_model(path, ...)   # 2 classes: P(defect) = sigmoid(8 * (mean|x| - threshold))
    mean_abs(windows)            # the same score in numpy, for expected verdicts
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_runtime.metadata import ModelInfo, to_props


def _save(path: Path, nodes, output, info: ModelInfo, window: int, channels: int) -> Path:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("samples", TensorProto.FLOAT, ["N", window, channels])
    graph = helper.make_graph(nodes, "sensor_test_model", [x], [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in to_props(info).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _info(task: str, labels: list[str], threshold: float, window: int, stride: int, channels, rate) -> ModelInfo:
    extra = {"channels": list(channels), "window": window, "stride": stride}
    if rate:
        extra["sample_rate_hz"] = rate
    return ModelInfo(task=task, labels=labels, threshold=threshold, precision="fp32", input_dtype="float32",
                     input_layout="NTC", extra=extra)


def _mean_abs_nodes():
    from onnx import helper

    return [helper.make_node("Abs", ["samples"], ["abs"]),
            helper.make_node("ReduceMean", ["abs"], ["score"], axes=[1, 2], keepdims=0)]


def anomaly_model(path, window: int = 20, stride: int = 10, channels=("x", "y", "z"), threshold: float = 1.0,
                  sample_rate_hz: float | None = None) -> Path:
    """task sensor_anomaly: score = mean |x| over the window; rejected when it reaches `threshold`."""
    from onnx import TensorProto, helper

    out = helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"])
    info = _info("sensor_anomaly", ["good", "anomaly"], threshold, window, stride, channels, sample_rate_hz)
    return _save(path, _mean_abs_nodes(), out, info, window, len(channels))


def classify_model(path, window: int = 20, stride: int = 10, channels=("x", "y", "z"), threshold: float = 1.0,
                   sample_rate_hz: float | None = None) -> Path:
    """task sensor_classify, labels good/chatter: P(chatter) = sigmoid(8 (mean|x| - threshold)), threshold 0.5."""
    from onnx import TensorProto, helper

    const = lambda name, v: helper.make_node("Constant", [], [name], value=helper.make_tensor(  # noqa: E731
        name, TensorProto.FLOAT, [], [v]))
    nodes = _mean_abs_nodes() + [
        const("t", threshold), const("k", 8.0), const("one", 1.0),
        helper.make_node("Sub", ["score", "t"], ["d"]), helper.make_node("Mul", ["d", "k"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p_bad"]), helper.make_node("Sub", ["one", "p_bad"], ["p_good"]),
        helper.make_node("Unsqueeze", ["p_good", "axis"], ["g"]), helper.make_node("Unsqueeze", ["p_bad", "axis"], ["b"]),
        helper.make_node("Concat", ["g", "b"], ["probs"], axis=1),
        helper.make_node("Constant", [], ["axis"], value=helper.make_tensor("axis", TensorProto.INT64, [1], [1])),
    ]
    nodes = nodes[-1:] + nodes[:-1]  # the axis constant first (topological order)
    out = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 2])
    info = _info("sensor_classify", ["good", "chatter"], 0.5, window, stride, channels, sample_rate_hz)
    return _save(path, nodes, out, info, window, len(channels))


def mean_abs(windows: np.ndarray) -> np.ndarray:
    return np.abs(np.asarray(windows, np.float32)).mean(axis=(1, 2))
