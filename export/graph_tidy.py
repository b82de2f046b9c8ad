"""Rewrites of the exported graph that change no value, only the work done per call.

torch's dynamo exporter keeps the batch axis dynamic by computing shapes at run
time: a Shape → Slice → Mul → Concat → Reshape chain after every LSTM to merge its
direction axis, zero initial states built with Expand, z-normalisation as separate
Sub/Div nodes. ONNX Runtime runs each of those nodes on every call, and on small
models that is a large share of the call (the machine LSTM: 81 nodes, 11-17 %
faster without them). Each rule here is exact: it replaces a node by one that
computes the same values, or (fold_affines, the fp32 artifact only) folds
constants into a Gemm's weights: float rounding only, which the export gate
measures.
"""

from __future__ import annotations

import contextlib
import tempfile

import numpy as np
import onnx
from onnx import helper, numpy_helper


MAX_PASSES = 10


def tidy(model: onnx.ModelProto) -> onnx.ModelProto:
    """Apply the shape rules until none changes the graph (a rewrite can enable another)."""
    for _ in range(MAX_PASSES):
        changed = _rewrite(model)
        remove_dead(model.graph)
        if not changed:
            break
    return model


def fold_affines(model: onnx.ModelProto) -> onnx.ModelProto:
    """Constant affine maps before and after a Gemm (a quality model's normalisation), into its weights.

    For the fp32 artifact only: INT8 and FP16 are made from the unfolded graph, whose
    float ends (export/float_ends.py) keep raw values out of their ranges.
    """
    _fold_gemm_affines(model)
    remove_dead(model.graph)
    return model


def _rewrite(model: onnx.ModelProto) -> bool:
    """One pass of the shape rules over the graph; whether anything changed."""
    g = model.graph
    shapes = _symbolic_shapes(model)
    consts = graph_constants(model)
    zeros = _zero_tensors(model, consts)
    producer = {o: n for n in g.node for o in n.output}
    uses = tensor_uses(g)

    def axes(axis: int, node) -> str:  # Squeeze/Unsqueeze axes: an int64 input since opset 13
        return _add_constant(g, np.array([axis], np.int64), node.output[0])

    def single_use(name: str) -> bool:
        return uses.get(name, 0) == 1

    nodes, alias, changed, kept = [], {}, False, 0
    for n in g.node:
        src = shapes.get(n.input[0]) if n.input else None
        dst = shapes.get(n.output[0])
        if n.op_type in ("Reshape", "Expand") and _known(src) and src == dst:
            alias[n.output[0]] = n.input[0]  # reshape or expand to the shape it already has
            continue
        if n.op_type == "Reshape" and (k := _dropped_unit_axis(src, dst)) is not None:
            nodes.append(helper.make_node("Squeeze", [n.input[0], axes(k, n)], [n.output[0]], name=n.name))
            continue
        if n.op_type == "Reshape" and (k := _dropped_unit_axis(dst, src)) is not None:
            nodes.append(helper.make_node("Unsqueeze", [n.input[0], axes(k, n)], [n.output[0]], name=n.name))
            continue
        if n.op_type == "Squeeze" and (merged := _squeeze_through_transpose(n, producer, consts, single_use)):
            source, axis = merged
            nodes.append(helper.make_node("Squeeze", [source, axes(axis, n)], [n.output[0]], name=n.name))
            continue
        if n.op_type in ("LSTM", "GRU", "RNN"):
            for slot in (5, 6):  # initial_h, initial_c: absent means zeros
                if len(n.input) > slot and n.input[slot] in zeros:
                    n.input[slot] = ""
                    changed = True
        kept += 1
        nodes.append(n)
    changed = changed or kept < len(g.node)  # every other node was replaced or is now an alias

    def resolve(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    for n in nodes:
        for i, name in enumerate(n.input):
            n.input[i] = resolve(name)
    for o in g.output:  # a graph output that was an alias keeps its name
        if o.name in alias:
            nodes.append(helper.make_node("Identity", [resolve(o.name)], [o.name], name=f"{o.name}_tidy_identity"))
    del g.node[:]
    g.node.extend(nodes)
    return changed


def _fold_gemm_affines(model: onnx.ModelProto) -> None:
    g = model.graph
    consts = graph_constants(model)
    producer = {o: n for n in g.node for o in n.output}
    uses = tensor_uses(g)
    shapes = _symbolic_shapes(model)
    for n in list(g.node):
        if n.op_type == "Gemm":
            _fold_affine_into_gemm(g, n, producer, consts, shapes, uses)
    _fold_gemm_output_affine(model, graph_constants(model))


def _add_constant(g: onnx.GraphProto, values, hint: str) -> str:
    """A new weight named after `hint`, under a name no tensor of the graph has; returns it."""
    taken = {t.name for t in g.initializer} | {o for n in g.node for o in n.output} | {i.name for i in g.input}
    k = 0
    while f"{hint}_tidy{k}" in taken:
        k += 1
    name = f"{hint}_tidy{k}"
    g.initializer.append(numpy_helper.from_array(np.asarray(values), name))
    return name


def tensor_uses(g) -> dict[str, int]:
    """How many node inputs and graph outputs read each tensor."""
    uses: dict[str, int] = {}
    for name in [i for n in g.node for i in n.input] + [o.name for o in g.output]:
        uses[name] = uses.get(name, 0) + 1
    return uses


def _symbolic_shapes(model: onnx.ModelProto) -> dict[str, list]:
    """Each tensor's shape with the batch axis as a symbol, so shape chains can be judged."""
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    try:  # where it gives up it saves its input into the working directory: let that be a temporary one
        with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
            # auto_merge off: two dims it cannot prove equal stay unequal, so no rule trusts a guess
            inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=False)
    except Exception:  # noqa: BLE001 - its inference lacks some ops (ReduceMax with axes as input): no shape rules then
        return {}
    shapes = {}
    for v in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
        t = v.type.tensor_type
        if t.HasField("shape"):
            shapes[v.name] = [d.dim_param if d.HasField("dim_param") else d.dim_value if d.HasField("dim_value")
                              else None for d in t.shape.dim]
    return shapes


def _known(shape) -> bool:
    return shape is not None and None not in shape and "" not in shape


def _dropped_unit_axis(longer, shorter) -> int | None:
    """The axis k where `longer` is `shorter` with a literal 1 inserted, if it is."""
    if not (_known(longer) and _known(shorter)) or len(longer) != len(shorter) + 1:
        return None
    for k, size in enumerate(longer):
        if size == 1 and longer[:k] + longer[k + 1:] == shorter:
            return k
    return None


def graph_constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    values[n.output[0]] = numpy_helper.to_array(a.t)
    return values


def _zero_tensors(model: onnx.ModelProto, consts: dict) -> set[str]:
    """Tensors that are all zeros whatever the input: a zero constant moved only by shape ops."""
    zeros = {k for k, v in consts.items() if v.dtype.kind == "f" and v.size and not v.any()}
    for n in model.graph.node:  # nodes are in topological order
        if n.op_type in ("Expand", "Slice", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Identity") \
                and n.input and n.input[0] in zeros:
            zeros.add(n.output[0])
    return zeros


def _squeeze_through_transpose(n, producer, consts, single_use):
    """Squeeze(Transpose(x)) → Squeeze(x) when what the transpose leaves is in order (the LSTM's direction axis)."""
    if len(n.input) != 2 or n.input[1] not in consts or consts[n.input[1]].size != 1:
        return None
    t = producer.get(n.input[0])
    if t is None or t.op_type != "Transpose" or not single_use(t.output[0]):
        return None
    perm = next((list(a.ints) for a in t.attribute if a.name == "perm"), None)
    if not perm:
        return None
    k = int(consts[n.input[1]].reshape(-1)[0]) % len(perm)
    axis = perm[k]
    rest = [p - (p > axis) for i, p in enumerate(perm) if i != k]
    return (t.input[0], axis) if rest == sorted(rest) else None


def _gemm_plain(n) -> bool:
    attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
    return (attrs.get("transA", 0) == 0 and attrs.get("transB", 0) == 1 and attrs.get("alpha", 1.0) == 1.0
            and attrs.get("beta", 1.0) == 1.0 and len(n.input) == 3)


def _fold_affine_into_gemm(g, gemm, producer, consts, shapes, uses) -> bool:
    """(x - m) / s, reshaped only on its leading axes, into Gemm: W' = W / s, b' = b - W' m."""
    if not _gemm_plain(gemm) or gemm.input[1] not in consts or gemm.input[2] not in consts:
        return False

    def single_use(tensor: str) -> bool:
        return uses.get(tensor, 0) == 1

    w, b = consts[gemm.input[1]], consts[gemm.input[2]]
    name = gemm.input[0]
    reshape = producer.get(name)
    if reshape is not None and reshape.op_type in ("Reshape", "Squeeze", "Flatten") and single_use(name):
        name = reshape.input[0]
    else:
        reshape = None
    div = producer.get(name)
    if div is None or div.op_type != "Div" or not single_use(name) or div.input[1] not in consts:
        return False
    sub = producer.get(div.input[0])
    if sub is None or sub.op_type != "Sub" or not single_use(div.input[0]) or sub.input[1] not in consts:
        return False
    if not _known(shapes.get(sub.input[0])) or shapes.get(sub.input[0]) != shapes.get(div.output[0]):
        return False  # the statistics would broadcast x itself to another shape: not a per-column map
    m, s = consts[sub.input[1]], consts[div.input[1]]
    k = w.shape[1]
    if m.shape not in ((k,), (1, k), ()) or s.shape not in ((k,), (1, k), ()):
        return False  # statistics along another axis would not map onto the Gemm's columns
    scaled = (w / np.broadcast_to(s.reshape(-1), (k,))[None, :]).astype(w.dtype)
    bias = (b - scaled @ np.broadcast_to(m.reshape(-1), (k,))).astype(b.dtype)
    gemm.input[1], gemm.input[2] = _add_constant(g, scaled, gemm.input[1]), _add_constant(g, bias, gemm.input[2])
    (reshape or gemm).input[0] = sub.input[0]
    return True


def _fold_gemm_output_affine(model, consts) -> None:
    """Gemm → Mul(c) → Add(d) with constant c, d into the Gemm: W' = c W, b' = c b + d (the target's de-normalisation)."""
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    uses = tensor_uses(g)
    for add in list(g.node):
        if add.op_type != "Add" or add.input[1] not in consts:
            continue
        mul = producer.get(add.input[0])
        if mul is None or mul.op_type != "Mul" or mul.input[1] not in consts or uses.get(add.input[0]) != 1:
            continue
        gemm = producer.get(mul.input[0])
        if gemm is None or gemm.op_type != "Gemm" or not _gemm_plain(gemm) or uses.get(mul.input[0]) != 1 \
                or gemm.input[1] not in consts or gemm.input[2] not in consts:
            continue
        w, b = consts[gemm.input[1]], consts[gemm.input[2]]
        c, d = consts[mul.input[1]], consts[add.input[1]]
        n_out = w.shape[0]
        if c.size not in (1, n_out) or d.size not in (1, n_out) or c.ndim > 1 or d.ndim > 1:
            continue
        c = np.broadcast_to(c.reshape(-1), (n_out,))
        d = np.broadcast_to(d.reshape(-1), (n_out,))
        for slot, values in ((1, (w * c[:, None]).astype(w.dtype)), (2, (b * c + d).astype(b.dtype))):
            gemm.input[slot] = _add_constant(g, values, gemm.input[slot])
        gemm.output[0] = add.output[0]
        g.node.remove(mul)
        g.node.remove(add)


def remove_dead(graph: onnx.GraphProto) -> None:
    """Drop the nodes, weights and shape records nothing feeds on (in any node order)."""
    nodes = list(graph.node)
    while True:
        used = {i for n in nodes for i in n.input} | {o.name for o in graph.output}
        alive = [n for n in nodes if any(o in used for o in n.output)]
        if len(alive) == len(nodes):
            break
        nodes = alive
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in nodes for i in n.input}
    weights = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(weights)
    produced = {o for n in nodes for o in n.output}
    value_info = [v for v in graph.value_info if v.name in produced]
    del graph.value_info[:]
    graph.value_info.extend(value_info)
