"""Where does INT8 lose precision? Per-layer error against fp32, with ORT's QDQ debugging tools.

For every quantized activation, the signal-to-quantization-noise ratio (SQNR,
dB; higher is better) of the INT8 graph's value against the fp32 graph's, on
real images. Error accumulates downstream, so each layer is charged only with
what it adds: its SQNR drop below the worst of its inputs. The layers that add
most are the ones worth keeping in float when INT8 fails the gate. (ORT's own
pre/post-QDQ figure is misleading here: where a Relu is fused into the
quantization, "pre" still holds the negative values.)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization.qdq_loss_debug import (collect_activations, compute_activation_error,
                                                    create_activation_matching,
                                                    modify_model_output_intermediate_tensors)

from export.quantize import _Batches

EXACT_DB = 60.0  # the graph input is exact; float32 round-off sits far above this

def _graph(model_path: Path) -> dict[str, tuple[str, str, list[str]]]:
    """tensor name → (node name, op type, input tensors) of the node that writes it."""
    model = onnx.load(str(model_path))
    return {out: (node.name, node.op_type, list(node.input)) for node in model.graph.node for out in node.output}


def layer_errors(fp32_path: Path, int8_path: Path, images: np.ndarray, input_name: str = "image") -> list[dict]:
    """[{tensor, node, op, vs_fp32_db, added_loss_db}] per quantized activation, biggest added loss first."""
    with tempfile.TemporaryDirectory() as tmp:
        float_aug, qdq_aug = Path(tmp) / "float.onnx", Path(tmp) / "qdq.onnx"
        modify_model_output_intermediate_tensors(str(fp32_path), str(float_aug), save_as_external_data=False)
        modify_model_output_intermediate_tensors(str(int8_path), str(qdq_aug), save_as_external_data=False)
        float_acts = collect_activations(str(float_aug), _Batches(input_name, images, batch=8))
        qdq_acts = collect_activations(str(qdq_aug), _Batches(input_name, images, batch=8))
    errors = compute_activation_error(create_activation_matching(qdq_acts, float_acts))
    sqnr = {t: float(e["xmodel_err"]) for t, e in errors.items() if "xmodel_err" in e}
    graph = _graph(fp32_path)

    def upstream(tensor: str, seen: frozenset = frozenset()) -> float:
        """The worst SQNR among the measured tensors feeding `tensor` (inf at the graph input)."""
        worst = float("inf")
        for source in graph.get(tensor, (None, None, []))[2]:
            if source in sqnr:
                worst = min(worst, sqnr[source])
            elif source in graph and source not in seen:
                worst = min(worst, upstream(source, seen | {source}))
        return worst

    rows = []
    for tensor, value in sqnr.items():
        if tensor not in graph:  # the graph input
            continue
        node, op, _ = graph[tensor]
        added = min(upstream(tensor), EXACT_DB) - value
        rows.append({"tensor": tensor, "node": node, "op": op, "vs_fp32_db": round(value, 2),
                     "added_loss_db": round(max(added, 0.0), 2), "nodes": nodes_between(graph, tensor, set(sqnr))})
    return sorted(rows, key=lambda r: -r["added_loss_db"])


def nodes_between(graph: dict, tensor: str, measured: set[str]) -> list[str]:
    """The nodes from the previous measured tensors up to `tensor` (e.g. a Conv and its fused Relu):
    what to keep in float to take this layer's loss out."""
    names, stack, seen = [], [tensor], set()
    while stack:
        current = stack.pop()
        if current in seen or current not in graph:
            continue
        seen.add(current)
        node, _, inputs = graph[current]
        names.append(node)
        stack += [i for i in inputs if i not in measured]
    return sorted(set(names))
