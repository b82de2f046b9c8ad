"""The things a benchmark times: each builds a callable `run(batch) -> outputs` and says what it is.

A builder that cannot run on this machine raises `Skipped` with the reason, which
the report shows; any other failure is an error the report shows as such.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from edge_runtime.errors import ProviderError
from edge_runtime.model import EdgeModel


class Skipped(Exception):
    """This variant does not apply on this machine (the message says why)."""


def skip(reason: str):
    raise Skipped(reason)


def _first(outputs) -> np.ndarray:
    """The output decisions are made on (an anomaly model also returns its heat map; every variant computes it)."""
    return (outputs[0] if isinstance(outputs, tuple) else outputs).float().cpu().numpy()


def torch_eager(model: torch.nn.Module, threads: int):
    def run(x: np.ndarray):
        with torch.inference_mode():
            return _first(model(torch.from_numpy(x)))

    return {"name": "torch eager fp32", "framework": "torch", "precision": "fp32", "provider": "torch-cpu"}, run


def torch_cuda(model: torch.nn.Module, half: bool):
    """torch eager on the GPU, fed and read back through host memory like ORT's CUDA provider is here, so
    the two compare on equal terms; fp16 under autocast, as a GPU user would run it."""
    if not torch.cuda.is_available():
        raise Skipped("torch sees no CUDA GPU")
    gpu = model.to("cuda").eval()

    def run(x: np.ndarray):
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=half):
            out = _first(gpu(torch.from_numpy(x).to("cuda")))
        return out  # .cpu() inside _first synchronises: the timing holds the whole call

    precision = "fp16" if half else "fp32"
    return {"name": f"torch eager {precision} cuda", "framework": "torch", "precision": precision,
            "provider": f"torch-cuda {torch.cuda.get_device_name(0)}"}, run


def torch_compiled(model: torch.nn.Module, threads: int, example: np.ndarray):
    """torch.compile (inductor); compile time is the cold start. Skipped where the toolchain is missing."""
    started = time.perf_counter()
    try:
        compiled = torch.compile(model, dynamic=False)
        with torch.inference_mode():
            for batch in {1, len(example)}:
                compiled(torch.from_numpy(example[:batch]))
    except Exception as exc:  # inductor needs a C++ compiler and a supported platform
        raise Skipped(f"torch.compile failed here: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}") from exc
    cold = (time.perf_counter() - started) * 1e3

    def run(x: np.ndarray):
        with torch.inference_mode():
            return _first(compiled(torch.from_numpy(x)))

    return {"name": "torch compile fp32", "framework": "torch", "precision": "fp32", "provider": "torch-inductor",
            "cold_start_ms": round(cold, 1)}, run


def onnxruntime(path: Path, threads: int, device: str = "cpu"):
    """ORT on `device`; a GPU provider this machine lacks is a skip with the reason, not a CPU run."""
    started = time.perf_counter()
    try:
        model = EdgeModel(path, device=device, threads=threads)
    except ProviderError as exc:
        raise Skipped(str(exc)) from exc
    model.infer(model.blank_input())
    cold_ms = (time.perf_counter() - started) * 1e3
    suffix = "" if device == "cpu" else f" {device}"
    return {"name": f"onnxruntime {model.info.precision}{suffix}", "framework": "onnxruntime", "precision": model.info.precision,
            "provider": model.provider, "cold_start_ms": round(cold_ms, 2), "file": path.name}, model.infer


def openvino(path: Path, threads: int, precision: str):
    """OpenVINO's own runtime on the same ONNX file — what Intel industrial PC owners would use instead."""
    from export.openvino_runtime import openvino_installed, openvino_runner

    if not openvino_installed():  # imported here, before the cold-start clock
        raise Skipped("openvino is not installed (pip install openvino, or the bench extra)")
    started = time.perf_counter()
    run, provider = openvino_runner(path, threads)
    cold_ms = (time.perf_counter() - started) * 1e3
    return {"name": f"openvino {precision}", "framework": "openvino", "precision": precision,
            "provider": provider, "cold_start_ms": round(cold_ms, 2), "file": path.name}, run


def call_floor(example: np.ndarray, threads: int):
    """A one-node Identity graph taking the model's input: the least one ORT call costs from Python here.
    No ONNX Runtime variant can beat it, so it bounds the speedup over torch a tiny model can show."""
    import tempfile

    import onnx
    from onnx import helper

    from edge_runtime.bound_run import BoundRunner
    from edge_runtime.session import create_session

    dtype = helper.np_dtype_to_tensor_dtype(example.dtype)
    shape = ["batch", *example.shape[1:]]
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "call_floor",
                              [helper.make_tensor_value_info("x", dtype, shape)],
                              [helper.make_tensor_value_info("y", dtype, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    with tempfile.TemporaryDirectory() as tmp:  # the runtime's own session factory, as the variants it bounds
        path = Path(tmp) / "call_floor.onnx"
        onnx.save(model, path)
        runner = BoundRunner(create_session(path, "cpu", threads), "x")  # the call path EdgeModel.run takes

    def run(x: np.ndarray):
        return runner(x)[0]

    return run
