"""FP16 artifacts for GPU targets (CUDA, TensorRT, Jetson).

Weights and compute in half precision; the graph's inputs and outputs keep their
types (uint8 image in, float32 probabilities out) so the runtime feeds every
precision the same way. On a CPU, ONNX Runtime has few FP16 kernels and inserts
casts, so the export report usually shows FP16 slower there — it is measured,
not assumed, and only recommended where it is faster.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from onnxruntime.transformers.float16 import convert_float_to_float16


def convert_fp16(fp32_path: Path, out_path: Path) -> dict:
    model = convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True)
    onnx.checker.check_model(model)
    partial = out_path.with_name(out_path.name + ".tmp")
    onnx.save(model, str(partial))
    os.replace(partial, out_path)
    return {"format": "fp16", "keep_io_types": True}
