"""`edge-run doctor`: what this machine can actually do, checked by doing it.

Providers are proven by creating a session and running a tiny model on each
(an installed provider that cannot load its libraries is the classic silent
fallback); cameras by opening them; the model by loading it like edge-run does.
"""

from __future__ import annotations

import glob
import platform
from pathlib import Path

import click
import cv2
import numpy as np
import onnxruntime as ort

from edge_runtime import __version__
from edge_runtime.cpu import cpu_info, int8_target
from edge_runtime.errors import LinesideError
from edge_runtime.session import DEVICE_PROVIDERS, create_session
from edge_runtime.sinks import has_gui
from edge_runtime.sources import has_gstreamer

PROBE = Path(__file__).parent / "data" / "probe.onnx"


def working_providers() -> dict[str, str]:
    """{device: "ok" | the reason it does not work} for every provider this ORT build lists."""
    available = set(ort.get_available_providers())
    result = {}
    for device, chain in DEVICE_PROVIDERS.items():
        if chain[0] not in available:
            continue
        try:
            session = create_session(PROBE, device=device)
            session.run(None, {"x": np.ones((1, 4), np.float32)})
            result[device] = "ok"
        except LinesideError as exc:
            result[device] = str(exc)
    return result


def opencv_io() -> dict[str, str]:
    info = cv2.getBuildInformation().splitlines()
    keys = ("FFMPEG", "GStreamer", "v4l/v4l2", "DirectShow", "AVFoundation")
    found = {}
    for line in info:
        name, _, value = line.strip().partition(":")
        if name.strip() in keys:
            found[name.strip()] = value.strip().split()[0] if value.strip() else ""
    return found


def cameras() -> list[str]:
    found = []
    for device in sorted(glob.glob("/dev/video*")):
        capture = cv2.VideoCapture(device)
        ok = capture.isOpened() and capture.read()[0]
        capture.release()
        found.append(f"{device}: {'delivers frames' if ok else 'present, no frames'}")
    return found


def run_doctor(model: str | None, device: str | None, needs_gui: bool, needs_gstreamer: bool, echo=click.echo) -> int:
    """Print the report; returns the number of problems (things the given needs lack)."""
    problems = []
    cpu = cpu_info()
    echo(f"lineside {__version__} · Python {platform.python_version()} · {platform.system()} {platform.release()}")
    echo(f"cpu: {cpu['model']} ({cpu['arch']}, {cpu['logical_cores']} logical cores), flags: "
         f"{' '.join(cpu['flags']) or 'none'} → INT8 format {int8_target(cpu)}")
    echo(f"onnxruntime {ort.__version__}: available {', '.join(ort.get_available_providers())}")
    for name, status in working_providers().items():
        echo(f"  {name}: {status}")
        if name == device and status != "ok":
            problems.append(f"--device {device}: {status}")
    if device and device != "auto" and device not in working_providers():
        problems.append(f"--device {device}: this ONNX Runtime build has no {DEVICE_PROVIDERS[device][0]}")
    io = opencv_io()
    echo(f"opencv {cv2.__version__}: " + ", ".join(f"{k} {v}" for k, v in io.items()) + f", GUI {'yes' if has_gui() else 'no'}")
    if needs_gui and not has_gui():
        problems.append("--show needs OpenCV with a GUI (pip install opencv-python)")
    if needs_gstreamer and not has_gstreamer():
        problems.append("GStreamer/csi:// sources need OpenCV built with GStreamer")
    found = cameras()
    echo("cameras: " + ("; ".join(found) if found else "none (/dev/video* absent)"))
    if model:
        from edge_runtime.model import EdgeModel

        try:
            loaded = EdgeModel(model, device=device or "cpu")
            echo(f"model {model}: ok — {loaded.info.task}, {loaded.info.precision}, labels "
                 f"{','.join(loaded.info.labels)}, threshold {loaded.info.threshold}, {loaded.provider}")
        except LinesideError as exc:
            problems.append(str(exc))
    for problem in problems:
        echo(f"PROBLEM: {problem}")
    echo("ok" if not problems else f"{len(problems)} problem(s)")
    return len(problems)
