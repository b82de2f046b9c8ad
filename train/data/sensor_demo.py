"""The sensor demo data (`edge-data sensor`): two real recordings from installed packages, two generated sets.

- `plaid/`: PLAID appliance current (real; 11 classes, variable length), the .ts files
  sktime 1.2.0 ships, copied byte for byte.
- `water_flow/`: hourly flow (l/s) through a branch of an industrial water pipeline, March
  to May 2022 (real; river 0.26.1's `water-flow.csv`, donated by Tecnojest s.r.l.), labelled here.
- `machine/`: a rotating machine's vibration and current (generated, `sensor_gen`).
- `quality/`: injection-moulding parameters -> part width, with spec limits (generated).

Water-flow labels. river's docstring names four anomalous segments (three "low value
moments" from water losses or maintenance, one small peak from a pumping operation after
the first two) without dates. In the data every other hour lies between 99.0 and 106.1 l/s,
so the rule is: a row is `anomaly` when its flow is below WATER_LOW = 98 l/s or above
WATER_HIGH = 107 l/s, else `normal`. It finds exactly four runs of consecutive rows:

1. 2022-03-24T08:00+01:00 .. 2022-03-25T01:00+01:00 (18 rows): the flow falls from 102 to
   a flat 24.3 l/s (11 h, the floor the meter reads when the branch is shut) and recovers.
2. 2022-03-29T07:00+02:00 .. 2022-03-29T20:00+02:00 (14 rows): an overshoot to 107.3 l/s in
   the hour before the fall, 24.3 l/s for 7 h, a slow recovery (21:00 is back at 98.8 l/s).
3. 2022-04-03T06:00+02:00 (1 row): the pumping peak, 109.7 l/s between hours at 102-103.
4. 2022-04-27T15:00+02:00 .. 2022-04-28T06:00+02:00 (16 rows): the third low-value moment.

The first and last hours of each low segment are the fall and the recovery (e.g. 97.2 and
92.2 l/s), part of the event, not of the normal process; the few hours at 99-101 l/s right
after a recovery stay `normal`, as they lie in the normal band. `make_water_flow` checks
that the rule still finds four segments, so a changed river file cannot relabel silently.
`train.csv` is the normal stretch from a day after segment 3 to a day before segment 4;
`test.csv` is every other row, in time order (it jumps over the training stretch).

Every generated series draws from its own generator ([seed, part, split, class, index]),
so a seed gives the same bytes whatever is written first.
"""

from __future__ import annotations

import csv
import importlib.metadata
import importlib.util
import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from edge_runtime.errors import InputFileError
from train.data import sensor_gen as gen

GENERATOR_VERSION = "sensor-1"
PINS = {"sktime": "1.2.0", "river": "0.26.1"}
WATER_LOW, WATER_HIGH = 98.0, 107.0  # l/s; normal hours lie in 99.0-106.1
SERIES_SECONDS = 0.5  # machine series: 500 samples at 1 kHz
NORMAL_ONLY_SERIES = 60  # machine/train_normal.csv
QUALITY_PARTS = {"train": 2000, "test": 500}
STREAM_SCHEDULE = [  # machine/stream.csv: (label, seconds), 60 s in all
    ("normal", 12), ("imbalance", 6), ("normal", 4), ("bearing_outer", 6), ("normal", 4), ("spike", 1),
    ("normal", 4), ("misalignment", 6), ("normal", 4), ("dropout", 2), ("normal", 4), ("drift", 4), ("normal", 3),
]
_SPLITS = {"train": 0, "test": 1, "train_normal": 2, "stream": 3, "quality": 4}


def package_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, found without importing the package (sktime takes seconds)."""
    hint = f"pip install {package}=={PINS[package]} (or pip install -e '.[sensor-data]')"
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputFileError(f"{package} is not installed and its bundled data is needed: {hint}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / relative
        if path.is_file():
            return path
    raise InputFileError(f"{package} {_version(package)} has no {relative}: {hint}")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"


# ----------------------------------------------------------------------------- real recordings


def copy_plaid(out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    for split in ("TRAIN", "TEST"):
        shutil.copyfile(package_file("sktime", f"datasets/data/PLAID/PLAID_{split}.ts"), out / f"PLAID_{split}.ts")
    return {"source": f"sktime {_version('sktime')}", "files": ["PLAID_TRAIN.ts", "PLAID_TEST.ts"]}


def water_flow_segments(labels: list[str]) -> list[tuple[int, int]]:
    """(first, last) row of each run of `anomaly` rows."""
    runs, start = [], None
    for i, label in enumerate([*labels, "normal"]):
        if label == "anomaly" and start is None:
            start = i
        elif label != "anomaly" and start is not None:
            runs.append((start, i - 1))
            start = None
    return runs


def make_water_flow(out: Path) -> dict:
    source = package_file("river", "datasets/water-flow.csv")
    with source.open(newline="") as f:
        rows = list(csv.reader(f))[1:]
    times = [row[0] for row in rows]
    labels = ["anomaly" if not WATER_LOW <= float(row[1]) <= WATER_HIGH else "normal" for row in rows]
    segments = water_flow_segments(labels)
    if len(segments) != 4:
        raise InputFileError(f"{source}: the labelling rule found {len(segments)} anomalous segments, not river's 4: "
                             f"install river=={PINS['river']}, whose file the rule was written for")
    stamps = [datetime.fromisoformat(t) for t in times]
    first = stamps[segments[2][1]] + timedelta(hours=24)
    last = stamps[segments[3][0]] - timedelta(hours=24)
    in_train = [first <= s <= last for s in stamps]
    out.mkdir(parents=True, exist_ok=True)
    for name, keep in (("stream", lambda i: True), ("train", lambda i: in_train[i]),
                       ("test", lambda i: not in_train[i])):
        with (out / f"{name}.csv").open("w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["time", "flow", "label"])
            writer.writerows([times[i], rows[i][1], labels[i]] for i in range(len(rows)) if keep(i))
    return {"source": f"river {_version('river')}", "rows": len(rows), "train_rows": sum(in_train),
            "segments": [(times[a], times[b], b - a + 1) for a, b in segments]}


# ----------------------------------------------------------------------------- generated machine signals


def _long_rows(series_id: int, signal: np.ndarray, label: str) -> list[str]:
    return [f"{series_id},{i / gen.FS:.3f},{r:.4f},{a:.4f},{c:.3f},{label}"
            for i, (r, a, c) in enumerate(signal.tolist())]


def _write_lines(path: Path, header: str, lines: list[str]) -> None:
    with path.open("w", newline="") as f:
        f.write(header + "\n")
        f.write("\n".join(lines))
        f.write("\n")


def machine_series(split: str, label: str, index: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 0, _SPLITS[split], gen.MACHINE_CLASSES.index(label), index])
    return gen.machine_signal(label, int(SERIES_SECONDS * gen.FS), rng)


def make_machine(out: Path, seed: int, train_per_class: int, test_per_class: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    header = "series_id,t," + ",".join(gen.CHANNELS) + ",label"
    counts = {}
    for split, per_class, classes in (("train", train_per_class, gen.MACHINE_CLASSES),
                                      ("test", test_per_class, gen.MACHINE_CLASSES),
                                      ("train_normal", NORMAL_ONLY_SERIES, ("normal",))):
        lines: list[str] = []
        for k, label in enumerate(classes):
            for i in range(per_class):
                lines += _long_rows(k * per_class + i, machine_series(split, label, i, seed), label)
        _write_lines(out / f"{split}.csv", header, lines)
        counts[split] = per_class * len(classes)
    signal, labels = gen.machine_stream(STREAM_SCHEDULE, np.random.default_rng([seed, 0, _SPLITS["stream"]]))
    lines = [f"{i / gen.FS:.3f},{r:.4f},{a:.4f},{c:.3f},{label}" for i, ((r, a, c), label) in
             enumerate(zip(signal.tolist(), labels))]
    _write_lines(out / "stream.csv", "time," + ",".join(gen.CHANNELS) + ",label", lines)
    counts["stream_seconds"] = len(labels) / gen.FS
    return counts


# ----------------------------------------------------------------------------- generated process quality


def make_quality(out: Path, seed: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    names = list(gen.PROCESS_PARAMETERS)
    summary = {}
    for split, n in QUALITY_PARTS.items():
        params, width = gen.process_parts(n, np.random.default_rng([seed, 1, _SPLITS[split]]))
        width = np.round(width, 3)  # the gauge reads microns
        ok = gen.in_spec(width)
        lines = [",".join(f"{params[name][i]:.2f}" for name in names) + f",{width[i]:.3f},"
                 + ("in_spec" if ok[i] else "out_of_spec") for i in range(n)]
        _write_lines(out / f"{split}.csv", ",".join(names) + ",quality,pass", lines)
        summary[split] = {"parts": n, "out_of_spec": int((~ok).sum())}
    spec = {**gen.SPEC, "parameters": {name: {"unit": unit, "set_point": set_point, "range": [lower, upper]}
                                       for name, (unit, set_point, _, lower, upper) in gen.PROCESS_PARAMETERS.items()}}
    (out / "spec.json").write_text(json.dumps(spec, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary


# ----------------------------------------------------------------------------- all of it


def _readme(seed: int, summary: dict) -> str:
    water, machine, quality = summary["water_flow"], summary["machine"], summary["quality"]
    segments = "\n".join(f"  - {a} .. {b} ({n} h)" for a, b, n in water["segments"])
    schedule = ", ".join(f"{label} {seconds} s" for label, seconds in STREAM_SCHEDULE)
    return f"""# lineside sensor demo data

Written by `edge-data sensor --seed {seed}` (generator {GENERATOR_VERSION}); nothing was downloaded.
Read any of it with `edge_runtime.sensor_files` (`read_series`, `read_long_csv`, `read_wide_csv`) and
`edge_runtime.ucr_ts` (`read_ts`).

## plaid/ — real, from sktime ({summary['plaid']['source']}, pinned {PINS['sktime']})

`PLAID_TRAIN.ts`, `PLAID_TEST.ts`: the Plug Load Appliance Identification Dataset (PLAID1, Gao et al.),
current of 11 appliance types, 537 + 537 univariate series of 100-1344 samples, UCR/UEA .ts format,
copied unchanged from sktime's bundled data.

## water_flow/ — real, from river ({water['source']}, pinned {PINS['river']})

Hourly water flow (l/s) through a branch of an industrial pipeline, March-May 2022, {water['rows']} rows,
donated to river by Tecnojest s.r.l. Wide CSV: `time` (ISO 8601 with offset), `flow`, `label`.
A row is `anomaly` when the flow is below {WATER_LOW:g} or above {WATER_HIGH:g} l/s (every other hour
lies in 99-106 l/s); that finds river's four anomalous segments:
{segments}

- `stream.csv`: all rows, labelled.
- `train.csv`: {water['train_rows']} normal rows (a day after the third segment to a day before the fourth),
  for good-only training.
- `test.csv`: all other rows, labelled.

## machine/ — generated (`train/data/sensor_gen.py`)

A motor-driven pump at about 24.5 Hz shaft speed, sampled at 1 kHz: `vib_radial` and `vib_axial`
(g, drive-end bearing housing) and `current` (A, one phase). Classes `normal`, `imbalance` (raised 1x),
`bearing_outer` (impacts at 3.585x shaft ringing a 250-350 Hz housing resonance), `misalignment`
(2x radial, high axial). Speed, load, noise and severity vary per series.

- `train.csv` ({machine['train']} series), `test.csv` ({machine['test']} series): long CSV
  `series_id, t, vib_radial, vib_axial, current, label`, {SERIES_SECONDS:g} s per series.
- `train_normal.csv` ({machine['train_normal']} normal series): for good-only anomaly detection.
- `stream.csv`: wide CSV `time, vib_radial, vib_axial, current, label`, one continuous
  {machine['stream_seconds']:g} s recording of one machine: {schedule}. Machine faults fade
  in and out over 0.2 s; sensor faults (`spike`, `dropout`, `drift`) hit one channel. For
  `edge-run --sensor csv:...` replay.

## quality/ — generated (`train/data/sensor_gen.py`)

Injection moulding: one row per part, the parameters
{', '.join(f'`{name}` ({unit})' for name, (unit, *_) in gen.PROCESS_PARAMETERS.items())},
then `quality` (part width, mm, nominal {gen.NOMINAL_MM:g}) and `pass` (`in_spec` / `out_of_spec`).
`spec.json`: lower {gen.SPEC['lower']} mm, upper {gen.SPEC['upper']} mm, and each parameter's unit,
set point and range. `train.csv` {quality['train']['parts']} parts ({quality['train']['out_of_spec']} out of spec),
`test.csv` {quality['test']['parts']} parts ({quality['test']['out_of_spec']} out of spec).
"""


def make_sensor(out, seed: int = 0, train_per_class: int = 40, test_per_class: int = 20) -> dict:
    """Write the sensor demo data under `out`; returns its summary (also in `out/README.md`)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputFileError(f"--out {out} is a file: give a folder")
    # both packages are found before anything is written
    package_file("sktime", "datasets/data/PLAID/PLAID_TRAIN.ts")
    package_file("river", "datasets/water-flow.csv")
    summary = {
        "plaid": copy_plaid(out / "plaid"),
        "water_flow": make_water_flow(out / "water_flow"),
        "machine": make_machine(out / "machine", seed, train_per_class, test_per_class),
        "quality": make_quality(out / "quality", seed),
    }
    (out / "README.md").write_text(_readme(seed, summary), encoding="utf-8")
    return summary
