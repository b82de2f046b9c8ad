"""A long run of edge-run, watched from outside: memory, threads, file descriptors, latency.

    python -m benchmarks.soak --source URL_OR_CLIP --model m.onnx --minutes 10 --out docs/soak

Samples /proc of the edge-run process every few seconds and reads its stats
records; a runtime that runs for months must show flat RSS (within ±5 % after
warm-up), no thread or descriptor growth, and stable percentiles.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.environment import environment


def _proc(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
    return {"rss_mb": round(rss_kb / 1024, 2), "threads": len(os.listdir(f"/proc/{pid}/task")),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def soak(source: str, model: str, minutes: float, out: Path, every_s: float = 5.0, extra: list[str] = ()) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / "soak.jsonl"
    jsonl.unlink(missing_ok=True)
    bin_dir = Path(sys.executable).parent
    cmd = [str(bin_dir / "edge-run"), "--source", source, "--model", model, "--jsonl", str(jsonl), "--quiet", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples, started = [], time.time()
    try:
        while time.time() - started < minutes * 60 and proc.poll() is None:
            time.sleep(every_s)
            if proc.poll() is None:
                samples.append({"t_s": round(time.time() - started, 1), **_proc(proc.pid)})
    finally:
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    if not samples:  # edge-run ended, or the run was shorter than one sampling interval
        tail = " / ".join(stderr.splitlines()[-2:])
        raise SystemExit(f"error: no memory sample taken: edge-run exited {proc.returncode} within {every_s:g} s "
                         f"({tail or 'no output'}); check the command, or give a longer --minutes")
    stats = [json.loads(line) for line in jsonl.read_text().splitlines() if '"type":"stats"' in line] \
        if jsonl.exists() else []
    warm = [s for s in samples if s["t_s"] >= 60] or samples
    rss = [s["rss_mb"] for s in warm]
    report = {
        "kind": "soak", "command": cmd, "minutes": minutes, "exit_code": proc.returncode,
        "environment": environment(os.cpu_count()), "samples": samples,
        "rss_after_warmup_mb": {"first": rss[0], "last": rss[-1], "min": min(rss), "max": max(rss),
                                "change_pct": round(100 * (rss[-1] - rss[0]) / rss[0], 2)},
        "threads": sorted({s["threads"] for s in warm}), "fds": sorted({s["fds"] for s in warm}),
        "p50_p99_inference_ms_over_time": [(s["frames"], s["latency_ms"]["inference"]["p50"],
                                            s["latency_ms"]["inference"]["p99"]) for s in stats[:: max(1, len(stats) // 20)]],
        "summary": json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else None,
        "stderr_tail": stderr.splitlines()[-3:],
    }
    (out / "soak_report.json").write_text(json.dumps(report, indent=2))
    jsonl.unlink(missing_ok=True)  # large; the report keeps what matters
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--out", type=Path, default=Path("docs/soak"))
    args, extra = parser.parse_known_args()
    if args.minutes * 60 < 10:
        parser.error("--minutes must cover two samples (one every 5 s): give 0.2 or more")
    report = soak(args.source, args.model, args.minutes, args.out, extra=extra)
    print(json.dumps({k: report[k] for k in ("minutes", "exit_code", "rss_after_warmup_mb", "threads", "fds")}))


if __name__ == "__main__":
    main()
