"""The end of `make demo-sensor`: one table of what each sensor model scored and how fast it ran.

Reads what the demo's commands wrote (edge-eval JSON, export reports, edge-bench
model and sensor-stream reports, training configs) and writes
REPORT/summary.md; `--readme` also copies it into README.md between the
sensor markers, so the README's figures are never typed by hand.

    python -m benchmarks.sensor_summary --root . [--readme README.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.readme import replace_between
from benchmarks.report import environment_line
from edge_runtime.metrics import figure

START, END = "<!-- sensor:start -->", "<!-- sensor:end -->"
# name → (what it is, data it was tested on)
MODELS = {
    "plaid": ("rocket features + ridge, appliance type from current (11 classes)", "PLAID TEST (sktime, real)"),
    "machine-lstm": ("LSTM, machine fault (4 classes)", "generated vibration/current, test split"),
    "machine-anomaly": ("signal autoencoder + level/spread, trained on normal only", "machine stream: 3 fault "
                        "classes + drift/spike/dropout, none seen in training"),
    "flow": ("signal autoencoder + level/spread, trained on normal only", "river water-flow (real), 4 labelled "
             "segments"),
    "quality": ("MLP, part width from 7 process parameters, spec limits", "generated moulding parts, test split"),
}


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _metric(m: dict | None) -> str:
    if m is None:
        return "—"
    if "mae" in m:
        return f"R² {figure(m['r2'], '.3f')}, MAE {m['mae']:.4f}, spec calls {figure(m['spec_call']['accuracy'], '.3f')}"
    if "auroc" in m:
        return (f"AUROC {figure(m['auroc'])}, F1 {figure(m['f1'], '.3f')}, FRR {figure(m['false_reject_rate'], '.3f')}, "
                f"escape {figure(m['escape_rate'], '.3f')}")
    text = f"accuracy {m['accuracy']:.4f}"
    if "baseline_1nn_euclidean" in m:
        text += f" (1-NN Euclidean {m['baseline_1nn_euclidean']:.4f})"
    return text


def _speed(bench: dict | None) -> str:
    """ORT fp32 / INT8 against torch eager at batch 1, from edge-bench model."""
    if bench is None:
        return "—"
    rows = {v["name"]: v for v in bench["variants"] if v.get("batch") == 1 and "p50_ms" in v}
    torch = rows.get("torch eager fp32")
    parts = []
    for name in ("onnxruntime fp32", "onnxruntime int8", "openvino int8"):
        if name in rows and torch:
            parts.append(f"{name.replace('onnxruntime', 'ORT')} {rows[name]['p50_ms']:.3f} ms "
                         f"({torch['p50_ms'] / rows[name]['p50_ms']:.1f}×)")
    floor = bench.get("ort_call_floor_ms_batch1")
    if floor and torch:  # what one ORT call costs at the least here: the highest speedup any model could show
        parts.append(f"ORT call floor {floor:.3f} ms ({torch['p50_ms'] / floor:.1f}× at most)")
    return f"torch {torch['p50_ms']:.3f} ms; " + ", ".join(parts) if torch else "—"


def _robustness_row(name: str, metrics: dict | None) -> str | None:
    if not metrics or "disturbed" not in metrics:
        return None
    key = next(k for k in ("auroc", "r2", "accuracy") if k in metrics)
    cells = []
    for kind in ("noise", "gain", "offset"):
        row = metrics["disturbed"].get(kind)
        if row is None:
            cells.append("—")
            continue
        text = f"{key} {row[key]:.3f} ({row['delta_' + key]:+.3f})"
        if row.get("false_reject_rate") is not None and "delta_false_reject_rate" in row:
            text += f", FRR {row['false_reject_rate']:.3f}"
        cells.append(text)
    return f"| {name} | " + " | ".join(cells) + " |"


def summary(root: Path) -> str:
    reports, artifacts, runs = root / "reports" / "sensor", root / "artifacts" / "sensor", root / "runs" / "sensor"
    lines = ["| model | tested on | fp32 | INT8 | shipped | train s | batch-1 p50 (× torch eager) |",
             "|---|---|---|---|---|---:|---|"]
    env = None
    for name, (what, data) in MODELS.items():
        export = _load(artifacts / name / "export_report.json")
        config = _load(runs / name / "config.json")
        bench = _load(reports / name / "bench" / "report.json")
        env = env or (bench or {}).get("environment")
        if export is None:
            continue
        int8 = _load(reports / name / "eval.int8.json")
        failure = next((f.split(": ", 1)[1] for f in export["gate_failures"] if f.startswith("int8")), None)
        int8_text = _metric(int8) if int8 else f"gate: {failure}" if failure else "not made (fp32 only)"
        lines.append(f"| {name}: {what} | {data} | {_metric(_load(reports / name / 'eval.fp32.json'))} | {int8_text} "
                     f"| {export['recommended']} | {config['train']['seconds'] if config else '—'} | {_speed(bench)} |")
    robust = [_robustness_row(name, _load(reports / name / "eval.fp32.json")) for name in MODELS]
    robust = [row for row in robust if row]
    if robust:
        lines += ["", "Robustness (`edge-eval --perturb all` on the fp32 artifact; the headline metric and the "
                  "false-reject rate under each signal disturbance, change in brackets): noise = white noise at 10 % "
                  "of each channel's spread over the file, gain = ×0.9 / ×1.1, offset = ±0.25 of the spread.", "",
                  "| model | noise | gain | offset |", "|---|---|---|---|", *robust]
    stream = _load(reports / "stream" / "report.json")
    if stream:
        d, s = stream["decision_after_last_sample_ms"], stream["samples"]
        lines += ["", f"Live stream (`edge-bench sensor-stream`, {stream['model']['path']}): "
                  f"{stream['stream']['rate_hz']:.0f} Hz × {stream['stream']['channels']} channels over UDP for "
                  f"{stream['stream']['seconds']:.0f} s, {s['lost']} samples lost, "
                  f"{stream['windows']['decided']}/{stream['windows']['expected']} windows decided, decision after "
                  f"the window's last sample p50 {d['p50']:.2f} ms, p99 {d['p99']:.2f} ms (target: 0 lost, p99 ≤ 5 ms)."]
        env = env or stream["environment"]
    if env:
        lines = [environment_line(env), "", *lines]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", type=Path)
    parser.add_argument("--readme", default=None, type=Path)
    args = parser.parse_args()
    text = summary(args.root)
    out = args.root / "reports" / "sensor" / "summary.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    print(text)
    if args.readme:
        replace_between(args.readme, START, END, text)
    print(f"\nsummary: {out}")


if __name__ == "__main__":
    main()
