"""What CPU this is, in the terms that decide INT8 speed (VNNI, AMX, AVX2, ARM dot product)."""

from __future__ import annotations

import os
import platform
from functools import lru_cache

# Flags that change which INT8 kernels ONNX Runtime / OpenVINO can use.
INTERESTING_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16",
                     "amx_tile", "avx512_bf16", "asimddp", "i8mm", "sve")


@lru_cache(maxsize=1)
def cpu_info() -> dict:
    """Model name, architecture, logical cores and the INT8-relevant flags present."""
    model, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "hardware") and model in ("unknown", "", platform.machine()):
                    model = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass  # not Linux: model from platform, no flags
    return {
        "model": model,
        "arch": platform.machine(),
        "logical_cores": os.cpu_count(),
        "flags": [f for f in INTERESTING_FLAGS if f in flags],
    }


def int8_target(info: dict | None = None) -> str:
    """The INT8 format family for this CPU: `vnni` (x86 with VNNI/AMX), `avx2` (x86 without), or `arm`."""
    info = info or cpu_info()
    flags = set(info["flags"])
    if info["arch"].lower() in ("aarch64", "arm64"):
        return "arm"
    if flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        return "vnni"
    return "avx2"
