"""INT8 with its most lossy layer quantized vs kept in float, against ORT fp32, torch eager and (where they are
installed) OpenVINO's runtime and ORT's OpenVINO provider (`--device openvino`) on the same files, on this CPU.

    python -m benchmarks.int8_ab runs/brick data/demo/brick                 # build here and time
    python -m benchmarks.int8_ab runs/brick data/demo/brick --target vnni --save DIR   # build for another CPU
    python -m benchmarks.int8_ab runs/brick --load DIR                      # time files built elsewhere

edge-export's dominant-layer rule keeps that layer (usually the stem) in float
unless quantizing it is faster; this times what it costs, interleaved (10 rounds,
each variant in turn) at batch 1 with 2 threads and 1, on a random uint8 batch
(speed does not depend on the pixels). `--save`/`--load` let a machine without
the training data (a lent VNNI host) time files quantized for it here.
docs/gpu/vnni_interleaved.md holds its VNNI/AMX figures.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from benchmarks.variants import Skipped, openvino
from edge_runtime.metadata import to_props
from edge_runtime.model import EdgeModel
from edge_runtime.stats import percentile, time_interleaved
from export.gate_set import OUTPUT_NAMES, calibration_images, gate_set, input_name
from export.int8_debug import layer_errors
from export.onnx_graph import export_fp32, set_metadata
from export.quantize import prepare, quantize_int8
from export.run_export import default_calib_method, model_info
from train.checkpoint import load_checkpoint

FILES = {"fp32": "model.fp32.onnx", "int8 all": "int8-all.onnx", "int8 stem float": "int8-stem-float.onnx"}


def build(run: str, data: str, tmp: Path, target: str = "auto") -> dict:
    """fp32, INT8 all quantized and INT8 with the worst layer in float, as edge-export builds them (for `target`)."""
    model, config = load_checkpoint(run)
    root, images, _, _ = gate_set(config, data)
    paths = {name: tmp / file for name, file in FILES.items()}
    prepared = tmp / "prepared.onnx"
    export_fp32(model, torch.from_numpy(images[:2]), paths["fp32"], 18, OUTPUT_NAMES[config["task"]],
                input_name(config["task"]))
    set_metadata(paths["fp32"], to_props(model_info(config, "fp32", {})))
    prepare(paths["fp32"], prepared)
    calibration = calibration_images(config, root, None, 128, seed=0)
    method = default_calib_method(config["task"])
    name = input_name(config["task"])
    quantize_int8(prepared, paths["int8 all"], calibration, input_name=name, target=target, method=method)
    worst = layer_errors(prepared, paths["int8 all"], images[:32], name)[0]["nodes"]
    print(f"worst layer: {'+'.join(worst)}")
    quantize_int8(prepared, paths["int8 stem float"], calibration, input_name=name, target=target, method=method,
                  exclude=worst)
    return paths


def time_all(run: str, paths: dict) -> None:
    model, _ = load_checkpoint(run)
    x = EdgeModel(paths["fp32"]).blank_input()
    x[...] = np.random.default_rng(0).integers(0, 256, x.shape, dtype=np.uint8) if x.dtype == np.uint8 else 0
    for threads in (2, 1):
        torch.set_num_threads(threads)

        def eager():
            with torch.inference_mode():
                model(torch.from_numpy(x))

        calls = [(name, (lambda m=EdgeModel(path, threads=threads): m.infer(x))) for name, path in paths.items()]
        for name, path in paths.items():
            try:
                _, call = openvino(path, threads, name.split()[0])
                calls.append((f"openvino {name}", lambda call=call: call(x)))
            except Skipped as skip:
                print(f"openvino skipped: {skip}")
                break
        if "OpenVINOExecutionProvider" in ort.get_available_providers():  # lineside's own --device openvino
            calls += [(f"ov-ep {name}", (lambda m=EdgeModel(path, "openvino", threads): m.infer(x)))
                      for name, path in paths.items()]
        samples, errors, _ = time_interleaved([*calls, ("torch eager", eager)], 30, 400, threads)
        p50 = {name: percentile(values, 50) for name, values in samples.items() if values}
        print(f"{run} · {threads} threads · " + " · ".join(
            f"{name} {ms:.4f} ms ({p50['fp32'] / ms:.2f}x ORT fp32)" for name, ms in p50.items())
            + (f" · errors {errors}" if errors else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("data", nargs="?")
    parser.add_argument("--target", default="auto", choices=["auto", "vnni", "avx2", "arm"])
    parser.add_argument("--save", type=Path, help="keep the built files here")
    parser.add_argument("--load", type=Path, help="time the files --save wrote (no data needed)")
    args = parser.parse_args()
    if args.load:
        time_all(args.run, {name: args.load / file for name, file in FILES.items()})
        return
    with tempfile.TemporaryDirectory() as tmp:
        paths = build(args.run, args.data, Path(tmp), args.target)
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            for path in paths.values():
                shutil.copy(path, args.save / path.name)
        time_all(args.run, paths)


if __name__ == "__main__":
    main()
