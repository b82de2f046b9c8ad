"""Tiny real ONNX image models for tests, built with onnx.helper (no training), whose answers are known.

    image_model(folder)       # anomaly: score = the mean pixel value (the smallest image model the runtime accepts)
    red_spot_model(path)      # classify good/red: P(red) from the reddest pixel, max-pooled like DefectNet
    nan_model(folder)         # anomaly: finite on the blank warm-up input, NaN on every real frame
    nan_classifier(folder)    # classify good/bad: finite on dark images (mean pixel < 100), NaN on brighter ones
"""

from __future__ import annotations

from pathlib import Path

from edge_runtime.metadata import ModelInfo, to_props


def _const(name: str, values: list, integer: bool = False, scalar: bool = False):
    from onnx import TensorProto, helper

    return helper.make_node("Constant", [], [name], value=helper.make_tensor(
        name, TensorProto.INT64 if integer else TensorProto.FLOAT, [] if scalar else [len(values)], values))


def _save(path: Path, nodes: list, info: ModelInfo, classes: int | None = None) -> Path:
    """uint8 N x 128 x 128 x 3 `image` → `score` (N) or `probs` (N x classes), with `info` as its metadata."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", 128, 128, 3])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", classes]) if classes else \
        helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"])
    model = helper.make_model(helper.make_graph(nodes, path.stem, [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in to_props(info).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def image_model(folder: Path) -> Path:
    """The smallest image model the runtime accepts (uint8 N x 128 x 128 x 3 → an anomaly score)."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["f"], ["score"], axes=[1, 2, 3], keepdims=0)]
    info = ModelInfo(task="anomaly", labels=["good", "anomaly"], threshold=100.0, precision="fp32")
    return _save(Path(folder) / "image.onnx", nodes, info)


def red_spot_model(path: Path, threshold: float = 0.5) -> Path:
    """classify good/red: P(red) = sigmoid(0.2 (max over pixels of R - G, minus 60)) — max-pooled like DefectNet."""
    from onnx import TensorProto, helper

    nodes = [
        _const("r0", [0], integer=True), _const("r1", [1], integer=True), _const("g1", [2], integer=True),
        _const("ax", [3], integer=True), _const("t", [60.0], scalar=True), _const("k", [0.2], scalar=True),
        _const("one", [1.0], scalar=True), _const("axis", [1], integer=True),
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Slice", ["f", "r0", "r1", "ax"], ["red"]),
        helper.make_node("Slice", ["f", "r1", "g1", "ax"], ["green"]),
        helper.make_node("Sub", ["red", "green"], ["redness"]),
        helper.make_node("ReduceMax", ["redness"], ["peak"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Sub", ["peak", "t"], ["d"]), helper.make_node("Mul", ["d", "k"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p_red"]), helper.make_node("Sub", ["one", "p_red"], ["p_good"]),
        helper.make_node("Unsqueeze", ["p_good", "axis"], ["g"]), helper.make_node("Unsqueeze", ["p_red", "axis"], ["b"]),
        helper.make_node("Concat", ["g", "b"], ["probs"], axis=1),
    ]
    info = ModelInfo(task="classify", labels=["good", "red"], threshold=threshold, precision="fp32")
    return _save(Path(path), nodes, info, classes=2)


def nan_model(folder: Path) -> Path:
    """anomaly: score = sqrt(1 - mean pixel / 100): finite on the blank warm-up input, NaN on any brighter frame."""
    from onnx import TensorProto, helper

    nodes = [_const("hundred", [100.0], scalar=True), _const("one", [1.0], scalar=True),
             helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["f"], ["mean"], axes=[1, 2, 3], keepdims=0),
             helper.make_node("Div", ["mean", "hundred"], ["share"]), helper.make_node("Sub", ["one", "share"], ["d"]),
             helper.make_node("Sqrt", ["d"], ["score"])]
    info = ModelInfo(task="anomaly", labels=["good", "anomaly"], threshold=2.0, precision="fp32")
    return _save(Path(folder) / "nan.onnx", nodes, info)


def nan_classifier(folder: Path) -> Path:
    """classify good/bad: P(bad) = 1 - sqrt(1 - mean pixel / 100): good on dark images, NaN on brighter ones."""
    from onnx import TensorProto, helper

    nodes = [_const("hundred", [100.0], scalar=True), _const("one", [1.0], scalar=True),
             _const("axis", [1], integer=True),
             helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["f"], ["mean"], axes=[1, 2, 3], keepdims=0),
             helper.make_node("Div", ["mean", "hundred"], ["share"]), helper.make_node("Sub", ["one", "share"], ["d"]),
             helper.make_node("Sqrt", ["d"], ["p_good"]), helper.make_node("Sub", ["one", "p_good"], ["p_bad"]),
             helper.make_node("Unsqueeze", ["p_good", "axis"], ["g"]),
             helper.make_node("Unsqueeze", ["p_bad", "axis"], ["b"]),
             helper.make_node("Concat", ["g", "b"], ["probs"], axis=1)]
    info = ModelInfo(task="classify", labels=["good", "bad"], threshold=0.5, precision="fp32")
    return _save(Path(folder) / "nan_classifier.onnx", nodes, info, classes=2)

