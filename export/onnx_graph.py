"""torch → one self-contained ONNX file, checked, with lineside metadata inside."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import onnx
import torch

from export.graph_tidy import fold_affines, tidy


DEFAULT_OPSET = 18
MIN_OPSET = 17  # the dynamo exporter's floor


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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model.eval(), (example,), dynamo=True, external_data=False, opset_version=opset,
            input_names=[input_name], output_names=list(output_names), dynamic_shapes=({0: batch},), verbose=False,
        )
    program.save(str(path), external_data=False)
    exported = onnx.load(str(path))
    count = len(exported.graph.node)
    tidied = tidy(exported)
    onnx.checker.check_model(tidied, full_check=True)
    onnx.save(tidied, str(path))
    return {"exported": count, "tidied": len(tidied.graph.node)}


def write_folded(source: Path, path: Path) -> int:
    """`source` with constant affine maps folded into its Gemms, for the fp32 artifact; returns its node count."""
    model = fold_affines(onnx.load(str(source)))
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return len(model.graph.node)


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
    onnx.save(model, str(tmp))
    os.replace(tmp, target)  # never leave a half-written artifact under the real name
