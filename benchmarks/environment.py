"""The fingerprint every report carries: a timing means nothing without the machine it came from."""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
from pathlib import Path

from edge_runtime.cpu import cpu_info


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(threads: int) -> dict:
    import cv2
    import numpy
    import onnxruntime
    import torch

    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_info(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "opencv": cv2.__version__,
                     "numpy": numpy.__version__},
        "ort_available_providers": onnxruntime.get_available_providers(),
        "threads": threads,
        "git_commit": _git_commit(),
    }
