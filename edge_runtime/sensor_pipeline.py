"""The sensor loop: samples → ring → windows → infer → decide → sinks, one verdict record per window.

Every sample is taken (a sensor stream is never thinned to its newest value as a
camera is): UDP datagrams wait in a 4 MB socket buffer, serial lines in the
driver's, while a window is decided. Records use the vision schema, so every
sink works unchanged; `frame_id` is the window id.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from edge_runtime.decision import output_flags, record_score
from edge_runtime.errors import SourceError
from edge_runtime.model import EdgeModel
from edge_runtime.pipeline import Sink, emit, tally
from edge_runtime.sensor_samples import WAIT, Problem
from edge_runtime.sensor_window import Window, Windower
from edge_runtime.stats import StageStats


@dataclass
class SensorSummary:
    windows: int = 0
    invalid: int = 0
    outages: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    flags: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    latency_ms: dict = field(default_factory=dict)
    samples: dict = field(default_factory=dict)

    def record(self) -> dict:
        rate = self.windows / self.seconds if self.seconds else 0.0
        return {"type": "summary", "windows": self.windows, "frames": self.windows, "invalid": self.invalid,
                "outages": self.outages, "samples": self.samples, "verdicts": self.counts, "flags": self.flags,
                "seconds": round(self.seconds, 3), "windows_per_s": round(rate, 2), "latency_ms": self.latency_ms}


class ProblemLog:
    """One stderr line for the first problem of each kind, then at most one per kind every `every_s`, with counts."""

    def __init__(self, name: str, echo: Callable[[str], None] | None, every_s: float = 5.0):
        self.name, self.echo, self.every_s = name, echo, every_s
        self._last: dict[str, float] = {}
        self._unsaid: dict[str, int] = {}

    def __call__(self, problem: Problem) -> None:
        if self.echo is None:
            return
        now = time.monotonic()
        self._unsaid[problem.kind] = self._unsaid.get(problem.kind, 0) + 1
        if now - self._last.get(problem.kind, -1e9) >= self.every_s:
            count = self._unsaid.pop(problem.kind)
            more = f" ({count} since the last line)" if count > 1 else ""
            self.echo(f"{self.name}: {problem.kind}: {problem.detail}{more}; not used as input")
            self._last[problem.kind] = now


def _sample_counts(windower: Windower) -> dict:
    c = windower.counts
    return {"taken": c.samples, "gaps": c.gaps, "missed": c.missed, "late": c.late, "lost": c.missed - c.late,
            "duplicates": c.duplicates, "non_finite_windows": c.non_finite, "problems": dict(c.problems)}


def run_sensor_pipeline(
    source,
    model: EdgeModel,
    sinks: list[Sink],
    max_windows: int | None = None,
    stop: threading.Event | None = None,
    on_live: Callable[[str], None] | None = None,
    live_every_s: float = 1.0,
    on_start: Callable[[], None] | None = None,
    on_beat: Callable[[], None] | None = None,
    swapper=None,
    max_age_ms: float = 0.0,
    echo: Callable[[str], None] | None = None,
    max_outage_s: float | None = None,
) -> SensorSummary:
    """Decide on every window of the source's samples until it ends, `stop` is set or `max_windows` are decided.

    `max_age_ms` flags a window `stale` (invalid) when its last sample arrived longer ago than that (0: off).
    `echo` gets the rate-limited lines about malformed input.
    """
    stop = stop or threading.Event()
    stats = StageStats()
    summary = SensorSummary()
    sha = model.sha256
    stride = int(model.info.extra.get("stride", model.window))
    windower = Windower(model.window, stride, len(model.channels), source.name)
    say_problem = ProblemLog(source.name, echo)
    source.open()
    if on_start:
        on_start()

    started = time.perf_counter()
    last_live, windows_at_live, last_sample = started, 0, started
    prev_sink_ms = 0.0
    try:
        while not stop.is_set() and (max_windows is None or summary.windows < max_windows):
            if on_beat:
                on_beat()
            if swapper is not None:
                for event in swapper.poll():
                    emit(sinks, event)
                model, sha = swapper.model, swapper.model.sha256
            t0 = time.perf_counter()
            item = source.read(timeout=0.5)
            for event in source.pop_events():
                summary.outages += 1
                emit(sinks, event)
            if item is WAIT:
                if max_outage_s is not None and time.perf_counter() - last_sample > max_outage_s:
                    raise SourceError(f"{source.name} sent no samples for more than {max_outage_s:g} s "
                                      "(--max-outage-s): check the sensor and its address, then restart")
                continue
            last_sample = time.perf_counter()
            if item is None:
                break
            t1 = time.perf_counter()
            if isinstance(item, Problem):
                say_problem(item)
                for event in windower.problem(item):
                    emit(sinks, event)
                continue
            wait_ms = (t1 - t0) * 1e3
            pushed = windower.push(item)
            pre_ms = (time.perf_counter() - t1) * 1e3  # ring insert and window copies, counted on the first window
            for out in pushed:
                if not isinstance(out, Window):
                    emit(sinks, out)
                    continue
                if max_windows is not None and summary.windows >= max_windows:
                    break
                t2 = time.perf_counter()
                flags = list(out.flags)
                decision, infer_ms, post_ms = None, 0.0, 0.0
                if not flags:
                    scores = model.infer(out.values[None])
                    t4 = time.perf_counter()
                    decision = model.decide(scores)[0]
                    flags += output_flags(scores[0])
                    t5 = time.perf_counter()
                    infer_ms, post_ms = (t4 - t2) * 1e3, (t5 - t4) * 1e3
                else:
                    t5 = time.perf_counter()
                decided = time.time()
                since_ms = (t5 - out.received) * 1e3
                if max_age_ms and since_ms > max_age_ms:
                    flags.append("stale")
                verdict = "invalid" if flags or decision is None else decision.verdict
                age_ms = (decided - out.last_at) * 1e3
                record = {
                    "type": "verdict",
                    "source": source.name,
                    "window_id": out.window_id,
                    "frame_id": out.window_id,
                    "first_sample": out.first_index,
                    "last_sample": out.last_index,
                    "first_sample_at": round(out.first_at, 6),
                    "last_sample_at": round(out.last_at, 6),
                    "captured_at": round(out.last_at, 6),
                    "decided_at": round(decided, 6),
                    "age_ms": round(age_ms, 3),  # decision − capture of the window's last sample
                    "received_age_ms": round(since_ms, 3),  # decision − its arrival here
                    "verdict": verdict,
                    "label": decision.label if decision else None,
                    "score": record_score(decision),
                    "latency_ms": {
                        "capture_wait": round(wait_ms, 3),
                        "preprocess": round(pre_ms, 3),
                        "inference": round(infer_ms, 3),
                        "postprocess": round(post_ms, 3),
                        "sink_prev": round(prev_sink_ms, 3),  # a record cannot hold its own write time
                    },
                    "dropped": windower.counts.missed - windower.counts.late,
                    "flags": flags,
                    "model_sha256": sha,
                }
                emit(sinks, record)
                t6 = time.perf_counter()
                prev_sink_ms = (t6 - t5) * 1e3
                summary.windows += 1
                tally(summary, verdict, flags)
                for stage, ms in (("capture_wait", wait_ms), ("preprocess", pre_ms), ("inference", infer_ms),
                                  ("postprocess", post_ms), ("sink", prev_sink_ms), ("total", (t6 - t2) * 1e3 + pre_ms),
                                  ("age", age_ms)):
                    stats.add(stage, ms)
                wait_ms = pre_ms = 0.0  # the next windows of this read waited for nothing
            now = time.perf_counter()
            if now - last_live >= live_every_s:
                rate = (summary.windows - windows_at_live) / (now - last_live)
                counts = _sample_counts(windower)
                emit(sinks, {"type": "stats", "at": round(time.time(), 6), "windows": summary.windows,
                             "frames": summary.windows, "fps": round(rate, 2), "dropped": counts["lost"],
                             "samples": counts, "verdicts": dict(summary.counts), "latency_ms": stats.summary()})
                if on_live:
                    on_live(stats.live_line(rate, summary.counts, counts["lost"])
                            .replace("fps", "windows/s", 1).replace("drops", "samples lost", 1))
                last_live, windows_at_live = now, summary.windows
    finally:
        source.close()
        for event in source.pop_events():
            summary.outages += 1
            emit(sinks, event)
        summary.seconds = time.perf_counter() - started
        summary.samples = _sample_counts(windower)
        summary.latency_ms = stats.summary()
    return summary

