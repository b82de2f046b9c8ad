"""Creating an ONNX Runtime session on the provider the user asked for — and proving it.

ONNX Runtime silently falls back to CPU when a GPU provider cannot load (missing
CUDA or cuDNN, wrong versions). We never trust the list we asked for: we read
`session.get_providers()` afterwards and fail loudly when a demanded provider
is not the one running.
"""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path

import onnxruntime as ort

from edge_runtime.errors import ModelFileError, ProviderError

# Provider chains per --device; the first entry is the one the user demands.
DEVICE_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    "openvino": ["OpenVINOExecutionProvider", "CPUExecutionProvider"],
}
DEVICES = ("auto", *DEVICE_PROVIDERS)
_AUTO_ORDER = ("tensorrt", "cuda", "openvino", "cpu")


def provider_options(provider: str, path: Path, threads: int | None = None) -> dict:
    """Options per provider. TensorRT builds an engine per model on first use (minutes on a Jetson), so
    engines are cached under LINESIDE_TRT_CACHE (default ~/.cache/lineside/tensorrt) and a restart reuses
    them; FP16/INT8 are enabled to match the artifact's precision."""
    if provider == "TensorrtExecutionProvider":
        cache = Path(os.environ.get("LINESIDE_TRT_CACHE", Path.home() / ".cache" / "lineside" / "tensorrt"))
        cache.mkdir(parents=True, exist_ok=True)
        return {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache),
                "trt_timing_cache_enable": "True", "trt_fp16_enable": "True" if ".fp16." in path.name else "False",
                "trt_int8_enable": "True" if ".int8." in path.name else "False"}
    if provider == "OpenVINOExecutionProvider":
        # CPU, GPU (Intel iGPU) or NPU; LINESIDE_OPENVINO_DEVICE picks one on Intel industrial PCs.
        # OpenVINO runs its own thread pool and ignores ORT's intra-op count: --threads is passed on.
        options = {"device_type": os.environ.get("LINESIDE_OPENVINO_DEVICE", "CPU")}
        return options | ({"num_of_threads": str(threads)} if threads is not None else {})
    if provider == "CUDAExecutionProvider":
        # HEURISTIC: no exhaustive cuDNN search on each start. TF32 off for an fp32 artifact: its promise
        # (the export gate) is fp32 arithmetic, and TF32 matmuls/convs keep only 10 mantissa bits.
        return {"cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "0" if ".fp32." in path.name else "1"}
    return {}


@functools.cache
def _preload_cuda_libraries() -> None:
    """Load CUDA/cuDNN from the nvidia-* pip packages when that is where they live (a venv with the gpu
    extra and no system CUDA), then from the system paths; a no-op with ORT builds that lack the helper.
    Once per process: a model swap must not load the libraries again."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        try:
            preload(directory="")
        except Exception:  # nothing to preload: the session check below names the real problem
            pass


@functools.cache
def tensorrt_loadable() -> bool:
    """TensorRT 10's runtime library loads. onnxruntime-gpu lists its TensorRT provider whether or not
    TensorRT is installed, then prints a screen of errors and falls back to CUDA (seen on an H100 machine)."""
    try:
        ctypes.CDLL("libnvinfer.so.10")
        return True
    except OSError:
        return False


def _requested(device: str) -> list[str]:
    if device == "auto":
        available = set(ort.get_available_providers())
        if "TensorrtExecutionProvider" in available and not tensorrt_loadable():
            available.discard("TensorrtExecutionProvider")
        for name in _AUTO_ORDER:
            if DEVICE_PROVIDERS[name][0] in available:
                return DEVICE_PROVIDERS[name]
    return DEVICE_PROVIDERS[device]


def create_session(path: str | Path, device: str = "cpu", threads: int | None = None) -> ort.InferenceSession:
    """Open `path` on `device` with `threads` intra-op threads (None: ORT's default).

    Raises ModelFileError for a file that is not a loadable ONNX model and
    ProviderError when `device` is not auto and its provider is not active.
    """
    if device not in DEVICES:
        raise ProviderError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist: pass the .onnx written by edge-export")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: fallbacks are checked below, not logged
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    requested = _requested(device)
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" in requested and "CUDAExecutionProvider" in available:
        _preload_cuda_libraries()
    if requested[0] not in available:
        raise ProviderError(
            f"--device {device} needs {requested[0]}, which this ONNX Runtime build does not have (it has "
            f"{', '.join(available)}): install the matching onnxruntime package "
            "(see README, Install), or use --device cpu"
        )
    if requested[0] == "TensorrtExecutionProvider" and not tensorrt_loadable():
        raise ProviderError("--device tensorrt needs TensorRT 10 (libnvinfer.so.10), which does not load here: "
                            "install TensorRT (JetPack has it; pip install tensorrt-cu13 elsewhere), or use --device cuda")
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=requested,
                                       provider_options=[provider_options(p, path, threads) for p in requested])
    except Exception as exc:  # ORT raises several types for a bad file
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path} is not a loadable ONNX model ({reason}): re-export it with edge-export") from exc
    active = session.get_providers()
    if device != "auto" and active[0] != requested[0]:
        raise ProviderError(
            f"--device {device} asked for {requested[0]} but ONNX Runtime is running {active[0]}: "
            "install the matching onnxruntime package and drivers (see README, Install), or use --device cpu"
        )
    return session
