"""Generated sensor and process data: a rotating machine's signals and an injection-moulding process.

Machine (`machine_signal`, `machine_stream`): an induction motor on a 50 Hz supply driving
a pump through a coupling, shaft at about 24.3-24.9 Hz (slip grows with load), sampled
at 1 kHz on three channels:

- `vib_radial`: radial acceleration at the drive-end bearing housing (g)
- `vib_axial`: axial acceleration at the same housing (g)
- `current`: one motor phase current (A): 50 Hz, amplitude set by the load

Classes, each with its textbook signature on top of a normal machine:

- `normal`: small 1x and 2x (residual imbalance, coupling), a housing resonance
  excited by broadband noise, sensor noise.
- `imbalance`: a raised 1x radial component, little axial, slight 1x modulation of the current.
- `bearing_outer`: an outer-race defect: impulses at BPFO = 3.585x shaft (a 6205 bearing),
  each ringing the housing resonance (250-350 Hz), with 1-2 % random slip between impacts.
- `misalignment`: a strong 2x radial component and a high axial 1x / 2x (axial phase
  locked to the shaft), a little 1x modulation of the current.

Every series draws its own shaft speed (with a slow jitter inside the series), load,
noise level, resonance and fault severity, and the severity ranges of neighbouring
classes overlap a little: the task is learnable, not trivial.

Sensor faults for anomaly work (`inject_sensor_fault`), put on one channel of a signal:
`drift` (a ramp from an onset to the end), `spike` (a few single-sample spikes of 6-15
standard deviations) and `dropout` (the channel stuck at its last value, or at zero).

Process (`process_parts`): injection moulding of a part whose width should be 50.00 mm.
Seven parameters scatter around their set points; shrinkage, and so the width, depends on
them non-linearly (hold pressure, melt and mould temperature, cooling time, a pressure x speed
packing interaction, and resin moisture: humidity hurts only at high melt temperature), plus
measurement noise. `SPEC` gives the limits; about 10 % of parts fall outside them.

All generators take a numpy Generator, so the same seed gives the same arrays.
"""

from __future__ import annotations

import numpy as np

FS = 1000  # Hz
SUPPLY_HZ = 50.0
CHANNELS = ("vib_radial", "vib_axial", "current")
MACHINE_CLASSES = ("normal", "imbalance", "bearing_outer", "misalignment")
SENSOR_FAULTS = ("drift", "spike", "dropout")
BPFO = 3.585  # outer-race defect frequency of a 6205 bearing, in shaft orders


def _smooth_noise(n: int, rng: np.random.Generator, corner_hz: float) -> np.ndarray:
    """Zero-mean, unit-std noise low-passed at about `corner_hz` (a slow wander)."""
    freqs = np.fft.rfftfreq(n, 1 / FS)
    y = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) / (1 + (freqs / corner_hz) ** 2), n)
    y -= y.mean()
    return y / (y.std() + 1e-12)


def _resonance(f_hz: float, zeta: float, length: int = 80) -> np.ndarray:
    """Impulse response of the housing: a damped sine at `f_hz` (peak 1)."""
    t = np.arange(length) / FS
    h = np.exp(-2 * np.pi * f_hz * zeta * t) * np.sin(2 * np.pi * f_hz * np.sqrt(1 - zeta**2) * t)
    return h / np.abs(h).max()


def _machine_params(rng: np.random.Generator) -> dict:
    load = rng.uniform(0.3, 1.0)
    return {
        "load": load,
        "shaft_hz": 25.0 * (1 - 0.01 - 0.02 * load) * (1 + rng.normal(0, 0.002)),
        "jitter": rng.uniform(0.001, 0.004),  # relative speed wander inside a series
        "noise_g": float(np.exp(rng.uniform(np.log(0.008), np.log(0.03)))),
        "res_hz": rng.uniform(250, 350),
        "res_zeta": rng.uniform(0.05, 0.12),
        "res_level_g": rng.uniform(0.01, 0.03),
        "radial_1x": rng.uniform(0.02, 0.08),
        "radial_2x": rng.uniform(0.005, 0.02),
        "axial_1x": rng.uniform(0.005, 0.02),
        "axial_2x": rng.uniform(0.003, 0.01),
        "phase": rng.uniform(0, 2 * np.pi, size=6),
        "current_rms": 4.0 + 8.0 * load,
        "current_noise": rng.uniform(0.02, 0.06),
        "h3": rng.uniform(0.01, 0.03),  # third harmonic of the current, relative
    }


_SEVERITY = {  # what each class adds, drawn per series
    "imbalance": lambda rng: {"radial_1x": rng.uniform(0.04, 0.22), "current_mod": rng.uniform(0.004, 0.015)},
    "misalignment": lambda rng: {"radial_2x": rng.uniform(0.025, 0.14), "axial_1x": rng.uniform(0.03, 0.12),
                                 "axial_2x": rng.uniform(0.03, 0.10), "current_mod": rng.uniform(0.003, 0.01)},
    "bearing_outer": lambda rng: {"impact_g": rng.uniform(0.08, 0.45), "slip": rng.uniform(0.01, 0.02)},
}


def _machine(n: int, rng: np.random.Generator, envelopes: dict[str, np.ndarray]) -> np.ndarray:
    """(n, 3) float32: one machine's signals; `envelopes[cls]` (0..1 per sample) switches a fault on."""
    p = _machine_params(rng)
    severity = {cls: _SEVERITY[cls](rng) for cls in _SEVERITY}
    t = np.arange(n) / FS
    speed = p["shaft_hz"] * (1 + p["jitter"] * _smooth_noise(n, rng, 2.0))
    theta = 2 * np.pi * np.cumsum(speed) / FS + p["phase"][0]
    zero = np.zeros(n)
    imb = envelopes.get("imbalance", zero)
    mis = envelopes.get("misalignment", zero)
    brg = envelopes.get("bearing_outer", zero)

    r1 = p["radial_1x"] + imb * severity["imbalance"]["radial_1x"]
    r2 = p["radial_2x"] + mis * severity["misalignment"]["radial_2x"]
    a1 = p["axial_1x"] + mis * severity["misalignment"]["axial_1x"]
    a2 = p["axial_2x"] + mis * severity["misalignment"]["axial_2x"]
    radial = r1 * np.sin(theta + p["phase"][1]) + r2 * np.sin(2 * theta + p["phase"][2])
    axial = a1 * np.sin(theta + p["phase"][3]) + a2 * np.sin(2 * theta + p["phase"][4])

    h = _resonance(p["res_hz"], p["res_zeta"])
    housing_g = p["res_level_g"] / np.linalg.norm(h)  # broadband excitation of the housing, res_level_g rms
    radial += housing_g * np.convolve(rng.standard_normal(n), h)[:n]
    axial += 0.5 * housing_g * np.convolve(rng.standard_normal(n), h)[:n]

    if brg.any():
        sev = severity["bearing_outer"]
        revs = theta / (2 * np.pi)
        n_impacts = int(revs[-1] * BPFO) + 2
        # impact k happens when the shaft has turned k/BPFO revolutions, give or take the rolling slip
        at_rev = (np.arange(n_impacts) + rng.uniform(0, 1)) / BPFO + rng.normal(0, sev["slip"] / BPFO, n_impacts)
        at = np.searchsorted(revs, at_rev)
        at = at[(at > 0) & (at < n)]
        impulses = np.zeros(n)
        impulses[at] = sev["impact_g"] * (1 + 0.15 * rng.standard_normal(len(at))) * brg[at]
        ring = np.convolve(impulses, h)[:n]
        radial += ring
        axial += 0.3 * ring

    radial += p["noise_g"] * rng.standard_normal(n)
    axial += p["noise_g"] * rng.standard_normal(n)

    mod = 0.002 + imb * severity["imbalance"]["current_mod"] + mis * severity["misalignment"]["current_mod"]
    supply = 2 * np.pi * SUPPLY_HZ * t + p["phase"][5]
    peak = np.sqrt(2) * p["current_rms"] * (1 + 0.01 * _smooth_noise(n, rng, 1.0))
    current = peak * (1 + mod * np.cos(theta)) * (np.sin(supply) + p["h3"] * np.sin(3 * supply))
    current += p["current_noise"] * rng.standard_normal(n)
    return np.stack([radial, axial, current], axis=1).astype(np.float32)


def machine_signal(label: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) float32 at 1 kHz of one machine in class `label` (one of MACHINE_CLASSES)."""
    if label not in MACHINE_CLASSES:
        raise ValueError(f"unknown machine class {label!r}: expected one of {', '.join(MACHINE_CLASSES)}")
    return _machine(n, rng, {} if label == "normal" else {label: np.ones(n)})


def inject_sensor_fault(signal: np.ndarray, kind: str, rng: np.random.Generator, channel: int | None = None,
                        start: int | None = None, stop: int | None = None) -> np.ndarray:
    """A copy of `signal` (T, C) with a sensor fault on one channel between `start` and `stop`.

    drift: an offset growing linearly from 0 at `start` to 3-8 channel stds at `stop`;
    spike: 1-4 single samples of 6-15 stds; dropout: stuck at the last good value or at 0.
    Unset channel/start/stop are drawn (the fault covers 20-60 % of the signal).
    """
    if kind not in SENSOR_FAULTS:
        raise ValueError(f"unknown sensor fault {kind!r}: expected one of {', '.join(SENSOR_FAULTS)}")
    out = np.array(signal, dtype=np.float32, copy=True)
    n, channels = out.shape
    channel = int(rng.integers(channels)) if channel is None else channel
    if start is None:
        start = int(rng.integers(0, max(1, int(0.5 * n))))  # a window of 1 sample: that sample
    if stop is None:
        stop = min(n, start + int(rng.uniform(0.2, 0.6) * n))
    stop = max(stop, start + 1)
    x = out[:, channel]
    scale = float(x.std()) or 1.0
    if kind == "drift":
        x[start:stop] += np.linspace(0, rng.uniform(3, 8) * scale * rng.choice([-1, 1]), stop - start)
    elif kind == "spike":
        at = rng.choice(np.arange(start, stop), size=min(stop - start, int(rng.integers(1, 5))), replace=False)
        x[at] += rng.uniform(6, 15, len(at)) * scale * rng.choice([-1, 1], len(at))
    else:
        x[start:stop] = 0.0 if rng.random() < 0.5 or start == 0 else x[start - 1]
    return out


def machine_stream(schedule: list[tuple[str, float]], rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """One continuous recording: `schedule` = [(label, seconds), ...] in order.

    Machine faults fade in and out over 0.2 s on the same running machine; sensor faults
    are injected into the segment they label. Returns ((N, 3) float32, label per sample).
    """
    sizes = [int(round(seconds * FS)) for _, seconds in schedule]
    n = sum(sizes)
    envelopes = {cls: np.zeros(n) for cls in _SEVERITY}
    labels: list[str] = []
    bounds = np.cumsum([0, *sizes])
    ramp = int(0.2 * FS)
    for (label, _), a, b in zip(schedule, bounds[:-1], bounds[1:]):
        labels += [label] * int(b - a)
        if label in envelopes:
            env = np.ones(b - a)
            k = min(ramp, (b - a) // 2)
            env[:k] = np.linspace(0, 1, k)
            env[len(env) - k:] = np.linspace(1, 0, k)
            envelopes[label][a:b] = env
        elif label not in ("normal", *SENSOR_FAULTS):
            raise ValueError(f"unknown stream label {label!r}")
    signal = _machine(n, rng, envelopes)
    for (label, _), a, b in zip(schedule, bounds[:-1], bounds[1:]):
        if label in SENSOR_FAULTS:
            signal = inject_sensor_fault(signal, label, rng, start=int(a), stop=int(b))
    return signal, labels


# ----------------------------------------------------------------------------- process quality

# name: (unit, set point, spread (std), lower, upper) — the machine's allowed range clips the scatter
PROCESS_PARAMETERS = {
    "melt_temp_c": ("°C", 240.0, 8.0, 220.0, 260.0),
    "mold_temp_c": ("°C", 60.0, 6.0, 40.0, 80.0),
    "injection_pressure_bar": ("bar", 800.0, 60.0, 600.0, 1000.0),
    "injection_speed_mm_s": ("mm/s", 80.0, 12.0, 40.0, 120.0),
    "hold_pressure_bar": ("bar", 450.0, 45.0, 300.0, 600.0),
    "cooling_time_s": ("s", 14.0, 2.0, 8.0, 20.0),
    "ambient_humidity_pct": ("%", 50.0, 10.0, 20.0, 85.0),
}
NOMINAL_MM = 50.0
SPEC = {"name": "quality", "what": "part width after 24 h", "unit": "mm", "nominal": NOMINAL_MM,
        "lower": 49.92, "upper": 50.06}


_SHRINK_AT_SET_POINT = 1.60 + 0.16 * np.exp(-6.0 / 3.0)


def part_width(p: dict[str, np.ndarray]) -> np.ndarray:
    """Width (mm) of parts moulded with parameters `p` (arrays), before measurement noise."""
    melt = (p["melt_temp_c"] - 240.0) / 20.0
    mold = (p["mold_temp_c"] - 60.0) / 20.0
    pack = (p["injection_pressure_bar"] - 800.0) / 200.0
    speed = (p["injection_speed_mm_s"] - 80.0) / 40.0
    hold = (p["hold_pressure_bar"] - 450.0) / 150.0
    cool = p["cooling_time_s"]
    hum = p["ambient_humidity_pct"]
    shrink = (1.60  # % at the set point
              - 0.14 * hold + 0.04 * hold**2  # packing compensates shrinkage, with diminishing return
              + 0.07 * melt + 0.09 * mold
              + 0.16 * np.exp(-(cool - 8.0) / 3.0)  # ejected too warm: post-mould shrinkage
              - 0.06 * pack * (1 + speed)  # fast, high-pressure fills pack more
              + 0.25 / (1 + np.exp(-(hum - 60.0) / 4.0)) * np.clip(melt, 0, None) * 2)  # wet resin degrades when hot
    cavity = NOMINAL_MM / (1 - _SHRINK_AT_SET_POINT / 100)  # the mould is cut for the set point
    return cavity * (1 - shrink / 100)


def process_parts(n: int, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """`n` moulded parts: ({parameter: values}, measured width in mm)."""
    params = {}
    for name, (_, set_point, spread, lower, upper) in PROCESS_PARAMETERS.items():
        params[name] = np.clip(rng.normal(set_point, spread, n), lower, upper)
    width = part_width(params) + rng.normal(0, 0.012, n)  # gauge repeatability
    return params, width


def in_spec(width: np.ndarray) -> np.ndarray:
    return (width >= SPEC["lower"]) & (width <= SPEC["upper"])
