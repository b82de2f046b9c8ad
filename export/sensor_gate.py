"""The inputs a sensor-family export is judged and calibrated on.

Classifier and quality model: the run's own validation rows. Signal anomaly
model: its held-out normal windows plus a copy of each with a sensor fault
(drift, spike or dropout; seeded), as the image anomaly gate pastes synthetic
defects — real faults are for edge-eval.
"""

from __future__ import annotations

import numpy as np

from train.data.sensor_gen import inject_sensor_fault
from train.sensor import run_inputs

FAULTS = ("drift", "spike", "dropout")


def with_faults(x: np.ndarray, seed: int) -> np.ndarray:
    """A copy of every window with one sensor fault, kinds in turn (a window of 1 sample gets a spike)."""
    rng = np.random.default_rng(seed)
    kinds = FAULTS if x.shape[1] > 1 else ("spike",)
    return np.stack([inject_sensor_fault(w, kinds[i % len(kinds)], rng) for i, w in enumerate(x)])


def sensor_gate_set(config: dict, data: str | None) -> tuple[np.ndarray, list[str]]:
    x, labels = run_inputs(config, data)
    val = np.array(config["validation_index"], dtype=np.int64)
    if config["task"] == "sensor_anomaly":
        normal = x[val]
        return np.concatenate([normal, with_faults(normal, seed=0)]), \
            [config["good_label"]] * len(normal) + ["anomaly"] * len(normal)
    return x[val], [labels[i] for i in val]


def sensor_calibration(config: dict, data: str | None, count: int, seed: int) -> np.ndarray:
    """INT8 calibration inputs: training rows/windows (never validation); an anomaly model's half with faults."""
    x, _ = run_inputs(config, data)
    candidates = np.setdiff1d(np.arange(len(x)), np.array(config["validation_index"], dtype=np.int64))
    pick = np.sort(np.random.default_rng(seed).permutation(candidates)[:count])
    chosen = x[pick]
    if config["task"] == "sensor_anomaly":
        half = len(chosen) // 2
        chosen = np.concatenate([chosen[:half], with_faults(chosen[half:], seed)])
    return np.ascontiguousarray(chosen, dtype=np.float32)
