"""OpenVINO's own runtime on an exported ONNX file: what owners of Intel industrial PCs run instead of ONNX
Runtime. Optional (`pip install openvino`, or the bench extra): edge-export times every artifact with it when it
is installed, edge-bench compares it with torch and ONNX Runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from edge_runtime.errors import ModelFileError


def openvino_installed() -> bool:
    try:
        import openvino  # noqa: F401
    except Exception:  # not installed, or installed without its shared libraries: either way not usable here
        return False
    return True


def openvino_runner(path: Path, threads: int) -> tuple[Callable, str]:
    """(run(x) -> first output, 'OpenVINO <version> CPU') for the ONNX file, compiled for latency on this CPU.
    ImportError when openvino is not installed; ModelFileError when it cannot compile the graph."""
    import openvino as ov

    try:
        compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                              "PERFORMANCE_HINT": "LATENCY"})
        request = compiled.create_infer_request()
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses and its own types for unsupported graphs
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ModelFileError(f"OpenVINO cannot compile {Path(path).name}: {first}") from exc
    output = compiled.outputs[0]

    def run(x):
        return request.infer({0: x})[output]

    return run, f"OpenVINO {ov.__version__.split('-')[0]} CPU"
