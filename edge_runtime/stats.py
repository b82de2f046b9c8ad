"""Per-stage latency bookkeeping: bounded windows, percentiles, the live line."""

from __future__ import annotations

import collections
import math
import time

STAGES = ("capture_wait", "preprocess", "inference", "postprocess", "sink")


def percentile(values, q: float) -> float:
    """Linear-interpolated percentile (numpy's default method) without numpy arrays."""
    data = sorted(values)
    if not data:
        return math.nan
    rank = (len(data) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


class StageStats:
    """Latencies of the last `window` frames per stage (bounded: runs last months)."""

    def __init__(self, window: int = 2000):
        self.samples = {stage: collections.deque(maxlen=window) for stage in (*STAGES, "total", "age")}

    def add(self, stage: str, ms: float) -> None:
        self.samples[stage].append(ms)

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            stage: {"p50": round(percentile(v, 50), 3), "p99": round(percentile(v, 99), 3)}
            for stage, v in self.samples.items() if v
        }

    def live_line(self, fps: float, counts: dict[str, int], dropped: int) -> str:
        parts = [f"fps {fps:5.1f}"]
        for stage, short in (("preprocess", "pre"), ("inference", "infer"), ("postprocess", "post"),
                             ("sink", "sink"), ("total", "total")):
            values = self.samples[stage]
            if values:
                parts.append(f"{short} {percentile(values, 50):.2f}/{percentile(values, 99):.2f}ms")
        parts.append(f"drops {dropped}")
        parts.append(" ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        return " | ".join(parts)


def time_calls(fn, warmup: int, iters: int) -> list[float]:
    """Milliseconds per call of `fn()` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1e3)
    return out
