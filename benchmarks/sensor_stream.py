"""edge-bench sensor-stream: a 1 kHz multi-channel UDP stream into a real `edge-run --sensor udp://…` process.

The target (issue #8): a 1 kHz, 3-channel stream with no dropped samples and
window decisions within 5 ms of the window's last sample at p99. The sender
stamps each sample with the wall-clock time it sends it (what a sensor gateway
does); edge-run's records say when each window was decided; latency is
decided_at − last_sample_at, both on this machine's clock. Samples lost come
from edge-run's own count (sample index jumps never filled).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.environment import environment
from edge_runtime.errors import ModelFileError, SourceError
from edge_runtime.model import EdgeModel
from edge_runtime.sensor_udp import encode_datagram
from edge_runtime.stats import percentile


def _send(port: int, rate: float, channels: int, seconds: float, per_datagram: int, lateness: list) -> int:
    """Send `seconds` of samples at `rate`, `per_datagram` a datagram, each stamped with its send time; samples sent."""
    rng = np.random.default_rng(0)
    period = 1.0 / rate
    total = int(seconds * rate) // per_datagram * per_datagram
    values = (rng.normal(0, 1, (total, channels)) * (1.0 + 0.5 * np.sin(np.arange(total) / 500.0))[:, None])
    values = values.astype(np.float32)
    start = time.perf_counter() + 0.05
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for first in range(0, total, per_datagram):
            last = first + per_datagram - 1
            due = start + last * period
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            now = time.perf_counter()
            lateness.append((now - due) * 1e3)
            stamp = time.time() - (per_datagram - 1) * period
            sock.sendto(encode_datagram(first, stamp, period, values[first:last + 1]), ("127.0.0.1", port))
    return total


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_sensor_stream(model_path: str, out: str | Path, seconds: float = 20.0, rate: float = 1000.0,
                        per_datagram: int = 1, threads: int = 1, echo=print) -> dict:
    out = Path(out)
    model = EdgeModel(model_path)
    if not model.is_sensor:  # refused before `out` is made: a wrong model leaves no empty report folder
        raise ModelFileError(f"{model.path.name} judges images ({model.info.task} model): edge-bench sensor-stream "
                             "needs a sensor model; benchmark an image model with `edge-bench pipeline`")
    out.mkdir(parents=True, exist_ok=True)
    channels, window = len(model.channels), model.window
    stride = int(model.info.extra.get("stride", window))
    port = _free_udp_port()
    jsonl = out / "windows.jsonl"
    jsonl.unlink(missing_ok=True)
    cmd = [str(Path(sys.executable).parent / "edge-run"), "--sensor", f"udp://127.0.0.1:{port}", "--model",
           str(model_path), "--jsonl", str(jsonl), "--quiet", "--threads", str(threads)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:  # whatever happens here (Ctrl-C, an error), edge-run is not left running on its own
        said = []
        for line in proc.stderr:
            said.append(line)
            if "→" in line:
                break
        else:
            raise SourceError(f"edge-run did not start: {' '.join(''.join(said).split()) or 'no output'}")
        threading.Thread(target=lambda: said.extend(proc.stderr), daemon=True).start()
        echo(f"sending {seconds:g} s of {rate:g} Hz x {channels} channels ({per_datagram} sample(s) a datagram) "
             f"to edge-run on udp port {port}")
        lateness: list[float] = []
        sent = _send(port, rate, channels, seconds, per_datagram, lateness)
        time.sleep(0.5)  # let the last windows be decided
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    summary = json.loads(stdout.strip().splitlines()[-1])
    verdicts = [json.loads(line) for line in jsonl.read_text().splitlines() if '"type":"verdict"' in line]
    ages = [v["age_ms"] for v in verdicts]
    expected = (sent - window) // stride + 1
    report = {
        "kind": "sensor_stream",
        "environment": environment(threads),
        "command": cmd,
        "model": {**model.describe(), "window": window, "stride": stride, "channels": model.channels},
        "stream": {"rate_hz": rate, "channels": channels, "seconds": seconds, "samples_per_datagram": per_datagram,
                   "samples_sent": sent},
        "sender_lateness_ms": {"p50": round(percentile(lateness, 50), 3), "p99": round(percentile(lateness, 99), 3)},
        "samples": summary["samples"],
        "windows": {"decided": len(verdicts), "expected": expected,
                    "invalid": sum(v["verdict"] == "invalid" for v in verdicts)},
        "decision_after_last_sample_ms": {
            "p50": round(percentile(ages, 50), 3), "p99": round(percentile(ages, 99), 3),
            "max": round(max(ages), 3) if ages else None},
        "edge_run_latency_ms": summary["latency_ms"],
        "target": {"lost_samples": 0, "p99_ms": 5.0},
    }
    report["target"]["met"] = (summary["samples"]["lost"] == 0 and len(verdicts) == expected
                               and report["decision_after_last_sample_ms"]["p99"] <= 5.0)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(markdown(report))
    jsonl.unlink(missing_ok=True)  # large; the report keeps what matters
    return report


def markdown(report: dict) -> str:
    env, stream, lat = report["environment"], report["stream"], report["decision_after_last_sample_ms"]
    s, w = report["samples"], report["windows"]
    return "\n".join([
        f"# Sensor stream: {stream['rate_hz']:g} Hz x {stream['channels']} channels over UDP into edge-run",
        "",
        f"{env['date']}, {env['cpu'].get('model', env['cpu']) if isinstance(env['cpu'], dict) else env['cpu']}, "
        f"{env['os']}, commit {env['git_commit']}, ORT threads {env['threads']}",
        f"model {Path(report['model']['path']).name} ({report['model']['task']}, window {report['model']['window']}, "
        f"stride {report['model']['stride']}), {stream['seconds']:g} s, {stream['samples_per_datagram']} sample(s) "
        "per datagram",
        "",
        "| samples sent | lost | gaps | late | duplicates | windows decided / expected | "
        "decision − last sample p50 | p99 | max | target met |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {stream['samples_sent']} | {s['lost']} | {s['gaps']} | {s['late']} | {s['duplicates']} | "
        f"{w['decided']} / {w['expected']} | {lat['p50']} ms | {lat['p99']} ms | {lat['max']} ms | "
        f"{'yes' if report['target']['met'] else 'no'} |",
        "",
        f"Sender lateness (how far behind its 1/rate schedule the sender ran): p50 "
        f"{report['sender_lateness_ms']['p50']} ms, p99 {report['sender_lateness_ms']['p99']} ms.",
        "",
    ])


if __name__ == "__main__":
    print(json.dumps(bench_sensor_stream(sys.argv[1], sys.argv[2], float(os.environ.get("SECONDS_", 20))), indent=2))
