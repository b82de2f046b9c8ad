"""The ends of a sensor model's graph stay in float: what lies between the raw input and the first
weighted layer, and between the last weighted layer and the outputs.

Raw sensor values and the values a decision compares are not centred on zero,
and INT8 ranges always include zero: a part width of 50.00 mm quantized over
[0, 50.1] comes out in steps of 0.2 mm against a spec of ±0.07 mm (measured:
R² 0.93 → −1.3, 90 % of spec calls flipped), and FP16 holds 50.0 in steps of
0.03. The ends are a handful of elementwise ops; the layers between them, where
the time goes, are quantized.
"""

from __future__ import annotations

from pathlib import Path

import onnx

WEIGHTED_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "LSTM", "GRU", "RNN"}


def float_ends(path: Path) -> list[str]:
    """Names of the nodes from the graph inputs to the first weighted ops, and from the last ones to the outputs."""
    graph = onnx.load(str(path)).graph
    consumers: dict[str, list] = {}
    producer = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
        for name in node.output:
            producer[name] = node

    def walk(start: list, step) -> set[str]:
        # each walk has its own visited set: an autoencoder's forward walk reaches the output through the
        # reconstruction error, and a shared set stopped the backward walk there, before the decoder's last Reshape
        seen: set[str] = set()
        stack = list(start)
        while stack:
            node = stack.pop()
            if node.op_type in WEIGHTED_OPS or node.name in seen:
                continue
            seen.add(node.name)
            stack += step(node)
        return seen

    head = walk([n for i in graph.input for n in consumers.get(i.name, [])],
                lambda node: [n for out in node.output for n in consumers.get(out, [])])
    tail = walk([producer[o.name] for o in graph.output if o.name in producer],
                lambda node: [producer[i] for i in node.input if i in producer])
    return sorted(head | tail)
