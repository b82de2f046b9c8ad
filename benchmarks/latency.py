"""Latency statistics from repeated calls: percentiles, throughput."""

from __future__ import annotations

import numpy as np

from edge_runtime.stats import time_calls


def latency_stats(samples_ms: list[float], batch: int) -> dict:
    """p50/p90/p99/max/mean in ms and items per second (linear-interpolated percentiles)."""
    data = np.asarray(samples_ms, dtype=np.float64)
    p50 = float(np.percentile(data, 50))
    return {
        "iterations": int(data.size),
        "p50_ms": round(p50, 4),
        "p90_ms": round(float(np.percentile(data, 90)), 4),
        "p99_ms": round(float(np.percentile(data, 99)), 4),
        "max_ms": round(float(data.max()), 4),
        "mean_ms": round(float(data.mean()), 4),
        "throughput_per_s": round(batch * 1e3 / float(data.mean()), 2),
        "samples_ms": [round(float(v), 4) for v in data],  # for the report's latency CDF
    }


def cycling(fn_for_batch, inputs: np.ndarray, batch: int):
    """A no-argument call of `fn_for_batch` on consecutive batches of real inputs, cycling through them."""
    batches = [np.take(inputs, range(i, i + batch), axis=0, mode="wrap") for i in range(0, max(len(inputs), batch), batch)]
    state = {"i": 0}

    def one_call():
        fn_for_batch(batches[state["i"] % len(batches)])
        state["i"] += 1

    return one_call


def measure(fn_for_batch, inputs: np.ndarray, batch: int, warmup: int, iters: int) -> dict:
    """Time `fn_for_batch(x)` on consecutive real inputs, cycling through them."""
    return latency_stats(time_calls(cycling(fn_for_batch, inputs, batch), warmup, iters), batch)
