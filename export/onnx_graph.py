"""torch → one self-contained ONNX file, checked, with lineside metadata inside."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from edge_runtime.errors import InputFileError
from export.graph_tidy import fold_affines, tidy


DEFAULT_OPSET = 18
MIN_OPSET = 17  # the dynamo exporter's floor
REWRITE_TOLERANCE = 1e-5  # of the output's scale: float rounding of folded weights, far inside the fp32 gate (1e-4)


def export_fp32(model: torch.nn.Module, example: torch.Tensor, path: Path, opset: int = DEFAULT_OPSET,
                output_names: list[str] = ("output",), input_name: str = "image") -> dict:
    """Write `model` to `path` with a dynamic batch axis and the weights inside the file.

    torch 2.13's dynamo exporter writes weights to a `*.onnx.data` side file by
    default; `external_data=False` keeps the artifact one file a line PC can
    verify by one hash. The graph is then tidied (export/graph_tidy.py); returns
    the node counts before and after, for the report.
    """
    if example.shape[0] < 2:  # a batch of 1 would let the exporter specialise the batch axis away
        example = example.repeat(2, *([1] * (example.dim() - 1)))
    batch = torch.export.Dim("batch", min=1, max=1024)
    # a failed opset conversion logs a traceback (the opset is checked below), and torch warns of torchvision
    # ops it cannot register (lineside has none) and of converting below opset 18: none is the user's business
    quiet = {name: logging.getLogger(name) for name in ("onnxscript", "torch.onnx._internal.exporter")}
    levels = {name: logger.level for name, logger in quiet.items()}
    for logger in quiet.values():
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model.eval(), (example,), dynamo=True, external_data=False, opset_version=opset,
                input_names=[input_name], output_names=list(output_names), dynamic_shapes=({0: batch},),
                verbose=False,
            )
    finally:
        for name, logger in quiet.items():
            logger.setLevel(levels[name])
    program.save(str(path), external_data=False)
    exported = onnx.load(str(path))
    written = next(o.version for o in exported.opset_import if o.domain in ("", "ai.onnx"))
    if written != opset:  # the exporter writes its own opset when it cannot convert, and says nothing
        raise InputFileError(f"--opset {opset}: this model cannot be converted to opset {opset} (the exporter "
                             f"wrote {written}): use --opset {DEFAULT_OPSET}")
    count = len(exported.graph.node)
    tidied = _checked_rewrite(exported, tidy, example.numpy())
    onnx.save(tidied, str(path))
    return {"exported": count, "tidied": len(tidied.graph.node)}


def write_folded(source: Path, path: Path, example: np.ndarray) -> int:
    """`source` with constant affine maps folded into its Gemms, for the fp32 artifact; returns its node count."""
    model = _checked_rewrite(onnx.load(str(source)), fold_affines, example)
    onnx.save(model, str(path))
    return len(model.graph.node)


def _checked_rewrite(model: onnx.ModelProto, rewrite, example: np.ndarray) -> onnx.ModelProto:
    """`rewrite(model)` when it passes the checker and computes what `model` does on `example` (batch 1 and
    all of it); otherwise `model` unchanged — the rewrites are an optimisation, never a risk to the artifact."""
    candidate = onnx.ModelProto()
    candidate.CopyFrom(model)
    try:
        candidate = rewrite(candidate)
        onnx.checker.check_model(candidate, full_check=True)
        sessions = _session(model), _session(candidate)
        for batch in (example[:1], example):
            before, after = (_run(session, batch) for session in sessions)
            if any(a.shape != b.shape or np.abs(a - b).max() > REWRITE_TOLERANCE * max(np.abs(a).max(), 1.0)
                   for a, b in zip(before, after)):
                return model
    except Exception:  # noqa: BLE001 - any failure of an optional rewrite: ship the graph as exported
        return model
    return candidate


def _session(model: onnx.ModelProto):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _run(session, batch: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(o, dtype=np.float64) for o in session.run(None, {session.get_inputs()[0].name: batch})]


def set_metadata(path: Path, props: dict[str, str], out: Path | None = None) -> None:
    """Replace the file's metadata_props with `props` (written atomically to `out` or in place)."""
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in sorted(props.items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    target = Path(out or path)
    tmp = target.with_name(target.name + ".tmp")
    try:
        onnx.save(model, str(tmp))
        os.replace(tmp, target)  # never leave a half-written artifact under the real name
    finally:
        tmp.unlink(missing_ok=True)
