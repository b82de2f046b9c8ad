"""INT8 for a score="gauss" anomaly model: the features in INT8, the Gaussian fitted again on what INT8 computes.

The gauss score's sensitivity lives in the feature directions where good surfaces hardly vary, and INT8 moves
the features there. Quantizing the whole graph (distances included) flipped 22 % of the gate's decisions on
grass (AUROC 0.9985 -> 0.78); quantizing only the features (light gain, stem, enc1) still cost 0.7 points,
because INT8's small systematic error in those quiet directions is large next to the good parts' own spread
there. So the Gaussian is fitted again on the INT8 features of good images, the way BatchNorm statistics are
re-estimated after quantization: the distances then measure how unlike the INT8 good parts a part is (grass,
edge-eval on the demo test set: 0.9978). On brick that still cost 1.5 AUROC points on the gate's synthetic
anomalies, until the light gain and the stem stayed in float as well (0.07 points; only enc1's convolution,
the bulk of the features' work, is INT8).

The fitted Gaussian goes into the torch model, which is exported and quantized again with the same calibration:
the quantized features are the same as those the Gaussian was fitted on, and nothing is patched in the graph.

A refitted score is a new score, so its threshold is calibrated again, by the run's rule on its held-out good
images (`int8_threshold`). INT8 narrows the scores a little (gravel: good -0.0004, anomalies -0.004 on the
gate set), and at the fp32 threshold three borderline anomalies of gravel's gate set (fp32 0.155-0.158,
threshold 0.1515) fell just under it (INT8 0.1507-0.1509): 1.25 % flips, over the gate. With the rule on the
INT8's own held-out scores (0.1493) none flips.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import torch

from edge_runtime.model import EdgeModel
from export.onnx_graph import export_fp32
from export.parity import batched
from export.quantize import prepare, quantize_int8
from train.anomaly import _scores, calibrate
from train.models.anomaly_net import SurfaceNet, fit_gaussian

FEATURE_WEIGHT = "enc1.2.0.weight"  # the last convolution of SurfaceNet.features (stem + enc1)
REFIT_IMAGES = 400  # good training images the INT8 features' Gaussian is fitted on (as many as training's)


def feature_region(graph: onnx.GraphProto) -> tuple[str, list[str]]:
    """(the features tensor, the names of every node that stays in float): all but enc1's convolution (with its
    BatchNorm and ReLU, where the graph still has them apart), whose input and output are quantized."""
    producer = {out: node for node in graph.node for out in node.output}
    last = [node for node in graph.node if node.op_type == "Conv" and FEATURE_WEIGHT in node.input]
    if len(last) != 1:
        raise ValueError(f"no single Conv reads {FEATURE_WEIGHT}: not a SurfaceNet graph")
    features = last[0]
    while True:
        readers = [node for node in graph.node if features.output[0] in node.input]
        if len(readers) != 1 or readers[0].op_type not in ("BatchNormalization", "Relu"):
            break
        features = readers[0]

    def ancestors(node) -> set[str]:
        found, todo = set(), [node]
        while todo:
            node = todo.pop()
            if node.name not in found:
                found.add(node.name)
                todo += [producer[name] for name in node.input if name in producer]
        return found

    stem = next(node for node in graph.node if node.op_type == "Conv" and node.name in ancestors(features))
    quantized = ancestors(features) - ancestors(stem)
    return features.output[0], [node.name for node in graph.node if node.name not in quantized]


def int8_features(int8_path: Path, tensor: str):
    """A function uint8 NHWC batch -> the INT8 graph's features (what its float Gaussian part reads)."""
    import onnxruntime

    model = onnx.load(str(int8_path))
    quantized = {n.input[0]: n.output[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    dequantized = {n.input[0]: n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    name = dequantized.get(quantized.get(tensor, ""), tensor)
    model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    return lambda batch: torch.from_numpy(session.run([name], {feed: batch.numpy()})[0])


def quantize_gauss(model: SurfaceNet, unfolded: Path, tmp: Path, calibration: np.ndarray, good: np.ndarray,
                   target: str, method: str, opset: int, output_names: list[str], input_name: str) -> tuple[Path, dict]:
    """INT8 of a gauss model exported to `unfolded`: features quantized, Gaussian refitted on them from `good`
    images. Returns (the INT8 file, quantization details)."""
    prepared, first = tmp / "gauss.prepared.onnx", tmp / "gauss.first.int8.onnx"
    prepare(unfolded, prepared)
    tensor, excluded = feature_region(onnx.load(str(prepared)).graph)
    quantize_int8(prepared, first, calibration, input_name=input_name, target=target, method=method, exclude=excluded)
    refit = copy.deepcopy(model).eval()
    summary = fit_gaussian(refit, good, features_of=int8_features(first, tensor))  # the graph's light gain included
    again, out = tmp / "gauss.refit.onnx", tmp / "model.int8.onnx"
    export_fp32(refit, torch.from_numpy(calibration[:2]), again, opset, output_names, input_name)
    graph = onnx.load(str(again))
    graph.metadata_props.extend(onnx.load(str(unfolded)).metadata_props)  # the artifact contract travels with it
    onnx.save(graph, str(again))
    prepare(again, prepared)
    tensor, excluded = feature_region(onnx.load(str(prepared)).graph)
    details = quantize_int8(prepared, out, calibration, input_name=input_name, target=target, method=method,
                            exclude=excluded)
    details.update(quantized_region=f"enc1's convolution (its output {tensor}); all else in float",
                   gaussian_refit={"images": int(len(good)), **summary})
    return out, details


def int8_threshold(config: dict, int8_path: Path, model: SurfaceNet, held_out: np.ndarray, source: str) -> dict:
    """The refitted INT8 model's own threshold: the stored one, moved by as much as the run's rule moves between
    the torch model's and the INT8 graph's scores of the good images the run's threshold was set on (`source`:
    the held-out training images, or those edge-train calibrate --good used), i.e. the rule applied to the INT8
    scores."""
    rule = config.get("calibration") or config["train"]
    int8 = EdgeModel(int8_path, threads=1)
    on_int8, _ = calibrate(batched(int8.run, held_out)[0].ravel(), rule["target_frr"], rule["margin"])
    on_torch, _ = calibrate(_scores(model, held_out, torch.device("cpu")), rule["target_frr"], rule["margin"])
    threshold = float(np.clip(config["threshold"] + on_int8 - on_torch, 0.0, 0.999))
    return {"fp32": config["threshold"], "int8": threshold,
            "why": f"the Gaussian is refitted on INT8 features: the threshold rule again, on the INT8 scores of "
                   f"{len(held_out)} images ({source})"}
