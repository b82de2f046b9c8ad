"""INT8 with its most lossy layer quantized vs kept in float, against ORT fp32 and torch eager, on this CPU.

    python -m benchmarks.int8_ab runs/brick data/demo/brick

edge-export's dominant-layer rule keeps that layer (usually the stem) in float;
this times what it costs, interleaved (10 rounds, each variant in turn) at batch 1
with 2 threads and 1. docs/gpu/vnni_interleaved.md holds its VNNI/AMX figures.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

from edge_runtime.metadata import to_props
from edge_runtime.model import EdgeModel
from edge_runtime.stats import percentile, time_interleaved
from export.gate_set import OUTPUT_NAMES, calibration_images, gate_set, input_name
from export.int8_debug import layer_errors
from export.onnx_graph import export_fp32, set_metadata
from export.quantize import prepare, quantize_int8
from export.run_export import default_calib_method, model_info
from train.checkpoint import load_checkpoint


def build(run: str, data: str, tmp: Path) -> tuple[torch.nn.Module, dict, object]:
    """fp32, INT8 all quantized and INT8 with the worst layer in float, as edge-export builds them."""
    model, config = load_checkpoint(run)
    root, images, _, _ = gate_set(config, data)
    fp32, prepared = tmp / "model.fp32.onnx", tmp / "prepared.onnx"
    export_fp32(model, torch.from_numpy(images[:2]), fp32, 18, OUTPUT_NAMES[config["task"]],
                input_name(config["task"]))
    set_metadata(fp32, to_props(model_info(config, "fp32", {})))
    prepare(fp32, prepared)
    calibration = calibration_images(config, root, None, 128, seed=0)
    method = default_calib_method(config["task"])
    (tmp / "all").mkdir()
    (tmp / "float").mkdir()
    name = input_name(config["task"])
    quantize_int8(prepared, tmp / "all" / "model.int8.onnx", calibration, input_name=name, method=method)
    worst = layer_errors(prepared, tmp / "all" / "model.int8.onnx", images[:32], name)[0]["nodes"]
    quantize_int8(prepared, tmp / "float" / "model.int8.onnx", calibration, input_name=name, method=method,
                  exclude=worst)
    paths = {"fp32": fp32, "int8 all": tmp / "all" / "model.int8.onnx",
             f"int8 {'+'.join(worst)} float": tmp / "float" / "model.int8.onnx"}
    return model, paths, images[:1]


def main(run: str, data: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        model, paths, x = build(run, data, Path(tmp))
        for threads in (2, 1):
            torch.set_num_threads(threads)

            def eager():
                with torch.inference_mode():
                    model(torch.from_numpy(x))

            calls = [(name, (lambda m=EdgeModel(path, threads=threads): m.infer(x))) for name, path in paths.items()]
            samples, _, _ = time_interleaved([*calls, ("torch eager", eager)], 30, 400, threads)
            p50 = {name: percentile(values, 50) for name, values in samples.items()}
            print(f"{run} · {threads} threads · " + " · ".join(
                f"{name} {ms:.4f} ms ({p50['fp32'] / ms:.2f}x fp32)" for name, ms in p50.items()))


if __name__ == "__main__":
    main(*sys.argv[1:3])
