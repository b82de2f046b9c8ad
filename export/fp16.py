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
from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16


def _sort_nodes(graph: onnx.GraphProto) -> None:
    """Topological order: the converter appends the casts it adds around float32 nodes at the end."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        progress = [n for n in pending if all(i in ready for i in n.input)]
        if not progress:
            raise ValueError("FP16 graph has a cycle or a dangling input")
        for node in progress:
            ordered.append(node)
            ready.update(node.output)
        pending = [n for n in pending if n not in progress]
    del graph.node[:]
    graph.node.extend(ordered)


def convert_fp16(fp32_path: Path, out_path: Path) -> dict:
    # Resize stays in float32 (its scales and ROI inputs must be float32); upsampling costs little.
    model = convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True,
                                     op_block_list=[*DEFAULT_OP_BLOCK_LIST, "Resize"])
    _sort_nodes(model.graph)
    onnx.checker.check_model(model)
    partial = out_path.with_name(out_path.name + ".tmp")
    onnx.save(model, str(partial))
    os.replace(partial, out_path)
    return {"format": "fp16", "keep_io_types": True, "kept_in_float32": ["Resize"]}
