"""Static INT8 (QDQ) quantization in the format the target CPU runs fastest.

ONNX Runtime's x86 INT8 kernels multiply unsigned activations by signed weights
(U8S8). Without VNNI they use VPMADDUBSW, whose 16-bit intermediate can
saturate, so weights are quantized to 7 bits (`reduce_range`) there. With VNNI
or AMX there is no saturation and full range is both exact and fast. ARM's dot
product kernels take signed activations.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_dynamic, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

from edge_runtime.cpu import int8_target

INT8_FORMATS = {
    "vnni": {"activation_type": QuantType.QUInt8, "weight_type": QuantType.QInt8, "reduce_range": False},
    "avx2": {"activation_type": QuantType.QUInt8, "weight_type": QuantType.QInt8, "reduce_range": True},
    "arm": {"activation_type": QuantType.QInt8, "weight_type": QuantType.QInt8, "reduce_range": False},
}
CALIB_METHODS = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                 "percentile": CalibrationMethod.Percentile}
# Every op the quantizer supports (Conv, Gemm, Relu, pooling, Concat, ...): on the demo
# classifier this ran 1.3-1.5x faster than quantizing Conv/Gemm only, because the
# activations then stay in uint8 between layers instead of bouncing through float.
OPS_TO_QUANTIZE = None


def pixel_tensors(model_path: Path) -> list[str]:
    """Float tensors that are a uint8 graph input cast to float (through layout-only ops): whole grey levels.

    Calibrated, such a tensor gets scale = (max - min) / 255 of the calibration images:
    brick's reached only 231, so the scale was 0.906, every pixel was rounded to a
    non-integer step, and pixels over 231 on the line would clip. Scale 1 holds 0..255
    exactly. With the classifier's stem quantized it halved the INT8 output error
    (0.156 -> 0.080); the stem's own loss stayed (its output quantization), which is
    why the dominant-layer rule keeps it in float unless quantizing it is faster.
    """
    import onnx

    return _pixel_tensors_in(onnx.load(str(model_path)).graph)


def _pixel_tensors_in(graph) -> list[str]:
    import onnx

    uint8 = {i.name for i in graph.input if i.type.tensor_type.elem_type == onnx.TensorProto.UINT8}
    found = []
    for node in graph.node:  # graph order: a Transpose is seen before the Cast it feeds
        if node.op_type in ("Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity") and node.input[0] in uint8:
            uint8.add(node.output[0])
        elif (node.op_type == "Cast" and node.input[0] in uint8
              and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT for a in node.attribute)):
            found.append(node.output[0])
    return found


def _exact_pixel_overrides(model_path: Path, activation_type: QuantType) -> dict:
    """TensorQuantOverrides that quantize pixel tensors with scale 1: 0..255 as uint8 (zero point 0) or int8
    (zero point -128) — lossless, and the same on every calibration set."""
    zero = np.array(0, np.uint8) if activation_type == QuantType.QUInt8 else np.array(-128, np.int8)
    return {name: [{"scale": np.array(1.0, np.float32), "zero_point": zero}] for name in pixel_tensors(model_path)}


def drop_pixel_requantize(path: Path) -> int:
    """Feed a uint8 image straight to its first quantized layer: Cast to float then QuantizeLinear with scale 1
    and zero point 0 (uint8) gives back the very same bytes, so both nodes go. Exact; returns how many went.

    On the demo classifier they were 38 µs of 410 per call (AVX2, 2 threads). Signed activations (zero point
    -128) shift the values, so there the pair stays.
    """
    import onnx

    from export.graph_tidy import graph_constants, remove_dead, tensor_uses

    model = onnx.load(str(path))
    graph = model.graph
    values, uses = graph_constants(model), tensor_uses(graph)
    quantizers = {node.input[0]: node for node in graph.node if node.op_type == "QuantizeLinear"}
    image_bytes = {}  # the output of a QuantizeLinear that returns the image's bytes -> those bytes
    pixels = set(_pixel_tensors_in(graph))
    for cast in (node for node in graph.node if node.output[0] in pixels):
        quantize = quantizers.get(cast.output[0])
        if quantize is None or uses.get(cast.output[0]) != 1:
            continue
        scale, zero = (values.get(name) for name in (list(quantize.input) + [""])[1:3])
        if scale is not None and zero is not None and scale.size == 1 and float(scale) == 1.0 \
                and zero.dtype == np.uint8 and int(zero) == 0:
            image_bytes[quantize.output[0]] = cast.input[0]
    if not image_bytes:
        return 0
    before = len(graph.node)
    for node in graph.node:
        node.input[:] = [image_bytes.get(name, name) for name in node.input]
    remove_dead(graph)  # the Cast and QuantizeLinear, now read by nothing, and their scale and zero point
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return before - len(graph.node)


def drop_float_requantize(path: Path, float_nodes: list[str]) -> int:
    """Let a sensor graph's float ends (export.float_ends) read the float tensor itself, not its
    quantize-dequantize copy; returns how many inputs were rewired.

    The quantizer puts a QuantizeLinear/DequantizeLinear pair on every tensor a quantized node writes, whoever
    reads it, and that pair rounds and clips to the calibration range. Before a float tail that is pure loss:
    a quality MLP's last Gemm writes the predicted width, its calibrated range [-3.2, 2.2] (in spreads) clipped
    the test parts beyond it — the out-of-spec ones — by up to 0.7 spreads, and INT8 lost 2 R² points; reading
    the float value, that error is gone. ONNX Runtime still fuses such a Gemm or MatMul into its INT8 kernel
    with a float output (QGemm). Not for nodes kept in float elsewhere: a Conv whose output is not quantized
    is not fused at all and runs in float (a gauss anomaly model's INT8 enc1 did, and 13 of 240 gate
    decisions flipped).
    """
    import onnx

    from export.graph_tidy import remove_dead

    model = onnx.load(str(path))
    graph = model.graph
    float_nodes = set(float_nodes)
    quantized_from = {node.output[0]: node.input[0] for node in graph.node if node.op_type == "QuantizeLinear"}
    float_of = {node.output[0]: quantized_from[node.input[0]] for node in graph.node
                if node.op_type == "DequantizeLinear" and node.input[0] in quantized_from}
    rewired = 0
    for node in graph.node:
        if node.name in float_nodes:
            for i, name in enumerate(node.input):
                if name in float_of:
                    node.input[i] = float_of[name]
                    rewired += 1
    if rewired:
        remove_dead(graph)
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
    return rewired


class _Batches(CalibrationDataReader):
    def __init__(self, input_name: str, images: np.ndarray, batch: int = 16):
        self._items = iter([{input_name: images[i : i + batch]} for i in range(0, len(images), batch)])

    def get_next(self):
        return next(self._items, None)


def resolve_target(target: str) -> str:
    return int8_target() if target == "auto" else target


def prepare(fp32_path: Path, out_path: Path) -> None:
    """Shape inference and graph clean-up the quantizer expects (node names are kept)."""
    quant_pre_process(str(fp32_path), str(out_path), skip_symbolic_shape=True)


def has_recurrent(path: Path) -> bool:
    import onnx

    return any(node.op_type in RECURRENT_OPS for node in onnx.load(str(path)).graph.node)


# Static QDQ cannot carry a recurrent layer's state between steps; ORT quantizes LSTM/GRU weights
# dynamically (DynamicQuantizeLSTM) and the activations per call.
RECURRENT_OPS = {"LSTM", "GRU", "RNN"}


def quantize_int8(prepared: Path, out_path: Path, calibration: np.ndarray, input_name: str = "image",
                  target: str = "auto", method: str = "minmax", exclude: list[str] = (),
                  float_ends: list[str] = ()) -> dict:
    """Quantize the `prepare`d model into `out_path`, keeping `exclude` and `float_ends` nodes in float, the
    latter reading their inputs unrounded (drop_float_requantize); returns what was done.

    Models with recurrent layers are quantized dynamically (no calibration needed, none used).
    """
    target = resolve_target(target)
    in_float = sorted(set(exclude) | set(float_ends))
    if has_recurrent(prepared):
        partial = out_path.with_name(out_path.name + ".tmp")
        quantize_dynamic(str(prepared), str(partial), weight_type=QuantType.QInt8, per_channel=True,
                         reduce_range=INT8_FORMATS[target]["reduce_range"],
                         nodes_to_exclude=in_float,
                         op_types_to_quantize=["LSTM", "GRU", "MatMul", "Gemm"], use_external_data_format=False)
        os.replace(partial, out_path)
        return {"format": "dynamic", "target": target, "weight_type": "QInt8", "activation_type": "per call",
                "reduce_range": INT8_FORMATS[target]["reduce_range"], "per_channel": True,
                "ops": ["LSTM", "GRU", "MatMul", "Gemm"], "calibration_method": None, "calibration_count": 0,
                "excluded_nodes": list(exclude), "float_ends": list(float_ends)}
    fmt = INT8_FORMATS[target]
    partial = out_path.with_name(out_path.name + ".tmp")
    quantize_static(
        str(prepared), str(partial), _Batches(input_name, calibration),
        quant_format=QuantFormat.QDQ, per_channel=True, op_types_to_quantize=OPS_TO_QUANTIZE,
        nodes_to_exclude=in_float, calibrate_method=CALIB_METHODS[method],
        use_external_data_format=False,
        extra_options={"TensorQuantOverrides": _exact_pixel_overrides(prepared, fmt["activation_type"])}, **fmt,
    )
    dropped = drop_pixel_requantize(partial)
    float_reads = drop_float_requantize(partial, float_ends)
    os.replace(partial, out_path)
    return {
        "format": "QDQ",
        "target": target,
        "activation_type": fmt["activation_type"].name,
        "weight_type": fmt["weight_type"].name,
        "reduce_range": fmt["reduce_range"],
        "per_channel": True,
        "ops": OPS_TO_QUANTIZE or "all supported",
        "calibration_method": method,
        "calibration_count": int(len(calibration)),
        "calibration_sha256": hashlib.sha256(calibration.tobytes()).hexdigest(),
        "excluded_nodes": list(exclude),
        "float_ends": list(float_ends),
        "pixels_enter_uint8": dropped > 0,
        "float_nodes_read_float": float_reads,
    }
