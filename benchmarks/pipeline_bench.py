"""The whole edge-run path at a fixed camera rate, against a plain reference loop on the same clip.

lineside: a paced source → newest-frame capture thread → checks → preprocess →
ORT → decision → JSONL sink, timed per stage by the pipeline itself.
Reference: the loop people write by hand — cv2 read, crop, resize, colour
swap, session.run — paced the same way, in the same process and run. The
difference per frame is lineside's own overhead, a measured number.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from benchmarks.environment import environment
from edge_runtime.errors import ModelFileError, SourceError
from edge_runtime.model import EdgeModel
from edge_runtime.pipeline import refuse_roi, run_pipeline
from edge_runtime.preprocess import Roi, roi_fits
from edge_runtime.sinks import JsonlSink
from edge_runtime.sources import CaptureSource
from edge_runtime.web import WebView

SCHEMA = 1


def _stats(values: list[float]) -> dict:
    data = np.asarray(values, dtype=np.float64)
    if not data.size:
        return {}
    return {"p50": round(float(np.percentile(data, 50)), 4), "p90": round(float(np.percentile(data, 90)), 4),
            "p99": round(float(np.percentile(data, 99)), 4), "max": round(float(data.max()), 4)}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Collect:
    """An in-memory sink for the benchmark's own statistics."""

    def __init__(self):
        self.records: list[dict] = []

    def __call__(self, record: dict, frame=None) -> None:
        if record["type"] == "verdict":
            self.records.append(record)


def _viewer(base: str, stop: threading.Event) -> None:
    """What the web page does: a frame every ~100 ms, the status every 500 ms."""
    next_status = 0.0
    while not stop.is_set():
        paths = ["/frame.jpg"]
        if time.time() >= next_status:
            paths.append("/api/status")
            next_status = time.time() + 0.5
        for path in paths:
            try:
                with urllib.request.urlopen(base + path, timeout=2) as response:
                    response.read()
            except OSError:
                pass
        stop.wait(0.1)


def lineside_run(clip: str, model_path: str, fps: float, roi: Roi | None, frames: int, threads: int,
                 viewers: int = 0) -> dict:
    model = EdgeModel(model_path, threads=threads)
    source = CaptureSource(clip, live=False, realtime=True, rate=fps, loop=True)
    collect = _Collect()
    stop_viewers = threading.Event()
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        sinks = [collect, stack.enter_context(JsonlSink(Path(tmp) / "v.jsonl"))]
        if viewers:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            sinks.append(stack.enter_context(WebView(f":{port}", roi, model.describe())))
            for _ in range(viewers):
                threading.Thread(target=_viewer, args=(f"http://127.0.0.1:{port}", stop_viewers), daemon=True).start()
        cpu0, wall0 = _cpu_seconds(), time.perf_counter()
        try:
            summary = run_pipeline(source, model, sinks, roi=roi, max_frames=frames, stop=threading.Event())
        finally:
            stop_viewers.set()
        wall = time.perf_counter() - wall0
    recs = collect.records
    per_stage = {stage: _stats([r["latency_ms"][stage] for r in recs])
                 for stage in ("capture_wait", "preprocess", "inference", "postprocess")}
    per_stage["sink"] = _stats([r["latency_ms"]["sink_prev"] for r in recs[1:]])
    work = [sum(r["latency_ms"][s] for s in ("preprocess", "inference", "postprocess")) + n["latency_ms"]["sink_prev"]
            for r, n in zip(recs, recs[1:])]  # each frame's work, its sink time read from the next record
    overhead = [w - r["latency_ms"]["inference"] for w, r in zip(work, recs)]
    return {"name": "lineside edge-run pipeline" + (f" with {viewers} web viewers" if viewers else ""),
            "viewers": viewers, "frames": summary.frames, "dropped": summary.dropped,
            "stages_ms": per_stage, "work_ms": _stats(work), "overhead_beyond_inference_ms": _stats(overhead),
            "capture_to_decision_ms": _stats([r["age_ms"] for r in recs]), "seconds": round(wall, 3),
            "fps": round(summary.frames / wall, 2), "cpu_load": round((_cpu_seconds() - cpu0) / wall, 3)}


def reference_run(clip: str, model_path: str, fps: float, roi: Roi | None, frames: int, threads: int) -> dict:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    height, width = session.get_inputs()[0].shape[1:3]
    capture = cv2.VideoCapture(clip)
    if not capture.isOpened():
        raise SourceError(f"cannot open {clip}")
    decode, work, period = [], [], 1.0 / fps
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    due = time.perf_counter()
    while len(work) < frames:
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        due += period
        t0 = time.perf_counter()
        ok, image = capture.read()
        if not ok:
            break
        t1 = time.perf_counter()
        if roi:
            x, y, w, h = roi
            image = image[y:y + h, x:x + w]
        x_in = cv2.cvtColor(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        session.run(None, {name: x_in[None]})
        work.append((time.perf_counter() - t1) * 1e3)
        decode.append((t1 - t0) * 1e3)
    wall = time.perf_counter() - wall0
    capture.release()
    return {"name": "reference loop (cv2 read + resize + ORT)", "frames": len(work), "decode_ms": _stats(decode),
            "work_ms": _stats(work), "seconds": round(wall, 3), "fps": round(len(work) / wall, 2),
            "cpu_load": round((_cpu_seconds() - cpu0) / wall, 3)}


def _check_inputs(clip: str, model_path: str, roi: Roi | None) -> None:
    """What edge-run refuses, refused before the reference loop (raw ORT and cv2) trips over it."""
    model = EdgeModel(model_path)  # a missing or foreign file: EdgeModel's own one-line errors
    if model.is_sensor:
        raise ModelFileError(f"{model.path.name} is a {model.info.task} model: edge-bench pipeline runs image "
                             "models on video; benchmark a sensor model with `edge-bench sensor-stream`")
    source = CaptureSource(clip, live=False)
    source.open()
    shape = source.frame_shape
    source.close()
    capture = cv2.VideoCapture(clip)
    frames = sum(capture.read()[0] for _ in range(2))  # a still image opens as a one-frame video; read, as many
    capture.release()  # containers report no frame count
    if frames < 2:
        raise SourceError(f"--source {clip} holds {frames} frame(s): the pipeline benchmark plays a video clip "
                          "(e.g. data/demo/line_clip.mp4)")
    if roi is not None and shape is not None and not roi_fits(roi, shape):
        refuse_roi(roi, shape, source.name)


def bench_pipeline(clip: str, model_path: str, fps: float, roi: Roi | None, frames: int, threads: int,
                   viewers: int = 0, echo=print) -> dict:
    if not Path(clip).is_file():
        raise SourceError(f"--source {clip} is not a video file")
    _check_inputs(clip, model_path, roi)
    echo(f"reference loop at {fps:g} fps")
    reference = reference_run(clip, model_path, fps, roi, frames, threads)
    echo(f"lineside pipeline at {fps:g} fps")
    lineside = lineside_run(clip, model_path, fps, roi, frames, threads)
    ratio = lineside["work_ms"]["p50"] / reference["work_ms"]["p50"]
    extra = {}
    if viewers:
        echo(f"lineside pipeline at {fps:g} fps with {viewers} web viewers")
        watched = lineside_run(clip, model_path, fps, roi, frames, threads, viewers)
        extra = {"lineside_with_viewers": watched,
                 "viewer_overhead_p50_ms": round(watched["work_ms"]["p50"] - lineside["work_ms"]["p50"], 4)}
    return {**extra,"schema": SCHEMA, "kind": "pipeline", "source": clip, "model": model_path,
            "settings": {"fps": fps, "roi": list(roi) if roi else None, "frames": frames, "threads": threads},
            "environment": environment(threads), "lineside": lineside, "reference": reference,
            "work_p50_ratio_vs_reference": round(ratio, 3)}
