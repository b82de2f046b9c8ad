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


ROUNDS = 10
SPIN_PAUSE_S = 0.1


def time_interleaved(calls: list[tuple], warmup: int, iters: int, threads: int,
                     rounds: int = ROUNDS) -> tuple[dict, dict, bool]:
    """Milliseconds per call of each (name, fn()) in `calls`, in `rounds` rounds of iters / rounds calls,
    the callables in turn; returns (samples per name, error per name, interrupted).

    Timed one after the other, a callable measured while the machine is in a slow
    phase looks slow: torch eager on the quality MLP ran 62 µs in one stretch and
    117-165 µs in another of the same process (a shared host), which moved its
    speedup over ORT between 6× and 12× from run to run. Interleaved, every one
    sees the same phases. With more than one thread each block is followed by a
    pause: every runtime's pool (torch's OpenMP, ORT's, OpenVINO's) spins for a
    while after a call and steals the cores from the next one (ORT fp32 1.8× slower
    right after torch; without the pauses ORT's p99 on the brick classifier rose
    from 0.8 to 4.7 ms). A callable that raises is dropped with its error; Ctrl-C
    returns the samples taken so far.
    """
    samples: dict[str, list[float]] = {name: [] for name, _ in calls}
    errors: dict[str, str] = {}
    per_round = max(iters // rounds, 1)
    try:
        for r in range(rounds):
            for name, fn in calls:
                if name in errors:
                    continue
                try:
                    samples[name] += time_calls(fn, warmup if r == 0 else 2, per_round)
                except Exception as exc:  # noqa: BLE001 - this one's error; the others go on
                    errors[name] = f"{type(exc).__name__}: {str(exc)[:300]}"
                if threads > 1:
                    time.sleep(SPIN_PAUSE_S)
    except KeyboardInterrupt:
        return samples, errors, True
    return samples, errors, False
