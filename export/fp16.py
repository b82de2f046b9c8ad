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

from export.graph_tidy import remove_dead


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


def _drop_round_trips(graph: onnx.GraphProto, original: onnx.GraphProto) -> None:
    """Undo the converter's float32 → float16 → float32 round trips into float32 nodes.

    Around a node kept in float32 the converter still casts a float32 input down and
    back up, and stores the node's constants in float16 with a cast up — which loses
    exactly the precision the node was kept for (a raw 883.72 bar input becomes
    883.5). Each round trip is rewired to the float32 tensor it started from.
    """
    producer = {out: node for node in graph.node for out in node.output}
    weights = {t.name: t for t in original.initializer}
    current = {t.name: t for t in graph.initializer}
    to_float = [n for n in graph.node if n.op_type == "Cast" and n.attribute[0].i == onnx.TensorProto.FLOAT]
    rename: dict[str, str] = {}  # a round trip's float32 end → the float32 tensor it started from
    dropped: set[str] = set()  # outputs of the casts up that go
    outputs = {o.name for o in graph.output}
    for cast in to_float:
        source = producer.get(cast.input[0])
        if source is not None and source.op_type == "Cast" and source.attribute[0].i == onnx.TensorProto.FLOAT16:
            if cast.output[0] in outputs:  # the graph's output keeps its name: pass the float32 tensor through
                cast.op_type, cast.input[0] = "Identity", source.input[0]
                del cast.attribute[:]
            else:
                rename[cast.output[0]] = source.input[0]
                dropped.add(cast.output[0])
        elif cast.input[0] in current and cast.input[0] in weights:  # a constant stored in float16
            restored = onnx.TensorProto()  # the float32 original, under the name the cast gave it
            restored.CopyFrom(weights[cast.input[0]])
            restored.name = cast.output[0]
            graph.initializer.append(restored)
            dropped.add(cast.output[0])
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = rename.get(name, name)
    keep = [n for n in graph.node if not (n.op_type == "Cast" and n.output[0] in dropped)]
    del graph.node[:]
    graph.node.extend(keep)
    remove_dead(graph)


def convert_fp16(fp32_path: Path, out_path: Path, keep_nodes: list[str] = ()) -> dict:
    """`keep_nodes` stay in float32 (a sensor model's ends, see export.float_ends)."""
    original = onnx.load(str(fp32_path))
    # Resize stays in float32 (its scales and ROI inputs must be float32); upsampling costs little.
    model = convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True,
                                     op_block_list=[*DEFAULT_OP_BLOCK_LIST, "Resize"], node_block_list=list(keep_nodes))
    if keep_nodes:
        _drop_round_trips(model.graph, original.graph)
    _sort_nodes(model.graph)
    onnx.checker.check_model(model)
    partial = out_path.with_name(out_path.name + ".tmp")
    onnx.save(model, str(partial))
    os.replace(partial, out_path)
    return {"format": "fp16", "keep_io_types": True, "kept_in_float32": ["Resize", *keep_nodes]}
