"""The line loop: newest frame → checks → preprocess → infer → decide → sinks, timed per stage."""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from edge_runtime.decision import output_flags, record_score
from edge_runtime.errors import SourceError
from edge_runtime.frame_checks import FrameChecker, FrameLimits, frame_problem
from edge_runtime.model import EdgeModel
from edge_runtime.newest import NewestFrameReader
from edge_runtime.preprocess import Roi, roi_fits
from edge_runtime.stats import StageStats

Sink = Callable[..., None]  # sink(record, frame)


@dataclass
class RunSummary:
    frames: int = 0
    dropped: int = 0
    invalid: int = 0
    outages: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    flags: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    latency_ms: dict = field(default_factory=dict)

    def record(self) -> dict:
        fps = self.frames / self.seconds if self.seconds else 0.0
        return {"type": "summary", "frames": self.frames, "dropped": self.dropped, "invalid": self.invalid,
                "outages": self.outages, "verdicts": self.counts, "flags": self.flags,
                "seconds": round(self.seconds, 3), "fps": round(fps, 2), "latency_ms": self.latency_ms}


class _DirectReader:
    """Files and folders are judged completely, frame by frame (no drops)."""

    dropped = 0
    WAIT = NewestFrameReader.WAIT

    def __init__(self, source):
        self.source = source

    def read(self, timeout: float = 0.5):
        return self.source.read()

    def stop(self) -> bool:
        return True


def emit(sinks: list[Sink], record: dict, frame=None) -> None:
    for sink in sinks:
        sink(record, frame)


def tally(summary, verdict: str, flags: list[str]) -> None:
    """Count one decided frame or window in a run summary (its verdict, and each flag it carries)."""
    summary.counts[verdict] = summary.counts.get(verdict, 0) + 1
    summary.invalid += verdict == "invalid"
    for flag in flags:
        summary.flags[flag] = summary.flags.get(flag, 0) + 1


def refuse_roi(roi: Roi, shape: tuple[int, ...], source_name: str) -> None:
    """The one line for an --roi that does not fit a source's frames."""
    raise SourceError(f"--roi {roi} does not fit in the {shape[1]}x{shape[0]} frames of {source_name}")


def run_pipeline(
    source,
    model: EdgeModel,
    sinks: list[Sink],
    roi: Roi | None = None,
    max_frames: int | None = None,
    stop: threading.Event | None = None,
    on_live: Callable[[str], None] | None = None,
    live_every_s: float = 1.0,
    on_start: Callable[[], None] | None = None,
    limits: FrameLimits = FrameLimits(),
    on_beat: Callable[[], None] | None = None,
    swapper=None,
) -> RunSummary:
    """Decide on every frame the source delivers (or the newest, for live sources) until it ends or `stop` is set.

    `on_beat` is called every turn of the loop (at least every 0.5 s, frames or not): the watchdog.
    `swapper` (a ModelSwapper) may replace the model between two frames.
    """
    stop = stop or threading.Event()
    stats = StageStats()
    summary = RunSummary()
    checker = FrameChecker(limits)
    sha = model.sha256
    source.open()
    shape = getattr(source, "frame_shape", None)
    if roi is not None and shape is not None and not roi_fits(roi, shape):
        source.close()
        refuse_roi(roi, shape, source.name)
    if on_start:
        on_start()
    reader = NewestFrameReader(source).start() if source.live else _DirectReader(source)
    pop_events = getattr(source, "pop_events", lambda: [])
    started = time.perf_counter()
    last_live, frames_at_live = started, 0
    prev_sink_ms = 0.0
    roi_fitted = False
    try:
        while not stop.is_set() and (max_frames is None or summary.frames < max_frames):
            if on_beat:
                on_beat()
            if swapper is not None:
                for event in swapper.poll():
                    emit(sinks, event)
                model, sha = swapper.model, swapper.model.sha256
            t0 = time.perf_counter()
            frame = reader.read(timeout=0.5)
            for event in pop_events():
                summary.outages += 1
                emit(sinks, event)
            if frame is reader.WAIT:
                continue
            if frame is None:
                break
            t1 = time.perf_counter()
            flags = list(frame.flags)
            decision, pre_ms, infer_ms, post_ms = None, 0.0, 0.0, 0.0
            problem = frame_problem(frame.image) if frame.image is not None else None
            if problem:
                flags.append(problem)
            elif frame.image is not None:
                if roi is not None and not roi_fits(roi, frame.image.shape):
                    if not roi_fitted:  # the first frame already: the ROI is wrong for this source
                        refuse_roi(roi, frame.image.shape, source.name)
                    # later, in a folder of mixed sizes (or a camera that changed mode): this frame is not
                    # judged, and the run and its summary go on
                    flags.append("roi_outside")
                else:
                    roi_fitted = True
                    flags += checker.before(frame.image)
            if frame.image is not None and not flags:  # flagged frames are recorded, never judged
                x = model.prepare(frame.image, roi)[None]
                t2 = time.perf_counter()
                outputs = model.run(x)
                t3 = time.perf_counter()
                decision = model.decide(outputs[0])[0]
                flags += output_flags(outputs[0][0])
                if len(outputs) > 1 and model.info.task == "anomaly":
                    frame = dataclasses.replace(frame, heatmap=outputs[1][0])
                t4 = time.perf_counter()
                pre_ms, infer_ms, post_ms = (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3
            else:
                t4 = time.perf_counter()
            age_ms = (t4 - frame.captured_mono) * 1e3
            flags += checker.after(age_ms)
            verdict = "invalid" if flags or decision is None else decision.verdict
            record = {
                "type": "verdict",
                "source": frame.source,
                "frame_id": frame.frame_id,
                "captured_at": round(frame.captured_at, 6),
                "decided_at": round(time.time(), 6),
                "age_ms": round(age_ms, 3),
                "verdict": verdict,
                "label": decision.label if decision else None,
                "score": record_score(decision),
                "latency_ms": {
                    "capture_wait": round((t1 - t0) * 1e3, 3),
                    "preprocess": round(pre_ms, 3),
                    "inference": round(infer_ms, 3),
                    "postprocess": round(post_ms, 3),
                    "sink_prev": round(prev_sink_ms, 3),  # a record cannot hold its own write time
                },
                "dropped": reader.dropped,
                "flags": flags,
                "model_sha256": sha,
            }
            emit(sinks, record, frame)
            t5 = time.perf_counter()
            prev_sink_ms = (t5 - t4) * 1e3
            summary.frames += 1
            tally(summary, verdict, flags)
            for stage, ms in (("capture_wait", (t1 - t0) * 1e3), ("preprocess", pre_ms), ("inference", infer_ms),
                              ("postprocess", post_ms), ("sink", prev_sink_ms), ("total", (t5 - t1) * 1e3),
                              ("age", age_ms)):
                stats.add(stage, ms)
            if t5 - last_live >= live_every_s:  # the live figures, on the console and in the record stream
                fps = (summary.frames - frames_at_live) / (t5 - last_live)
                emit(sinks, {"type": "stats", "at": round(time.time(), 6), "frames": summary.frames,
                              "fps": round(fps, 2), "dropped": reader.dropped, "verdicts": dict(summary.counts),
                              "latency_ms": stats.summary()})
                if on_live:
                    on_live(stats.live_line(fps, summary.counts, reader.dropped))
                last_live, frames_at_live = t5, summary.frames
    finally:
        if reader.stop():
            source.close()  # only once the capture thread is out of it; otherwise it dies with the process
        for event in pop_events():
            summary.outages += 1
            emit(sinks, event)
        summary.seconds = time.perf_counter() - started
        summary.dropped = reader.dropped
        summary.latency_ms = stats.summary()
    return summary
