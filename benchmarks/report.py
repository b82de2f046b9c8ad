"""Writing a benchmark report: report.json (machine-readable) and report.md (for people)."""

from __future__ import annotations

import json
from pathlib import Path


def write_report(report: dict, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(markdown(report))
    return out


def environment_line(env: dict) -> str:
    cpu = env["cpu"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    return (f"{env['date']} · {cpu['model']} ({cpu['arch']}, {cpu['logical_cores']} logical cores; "
            f"flags: {' '.join(cpu['flags']) or 'none'}) · {env['threads']} threads · {versions}"
            + (f" · commit {env['git_commit']}" if env.get("git_commit") else ""))


def variants_table(variants: list[dict]) -> str:
    lines = ["| variant | provider | batch | p50 ms | p90 ms | p99 ms | items/s | vs torch | agreement | accuracy |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for v in variants:
        if "error" in v and "p50_ms" not in v:
            lines.append(f"| {v['name']} | {v.get('provider', '')} | {v.get('batch', '')} | **failed: {v['error']}** |"
                         " | | | | | |")
            continue
        speed = f"{v['speedup_vs_torch']:.2f}×" if "speedup_vs_torch" in v else ""
        lines.append(f"| {v['name']} | {v['provider']} | {v['batch']} | {v['p50_ms']:.3f} | {v['p90_ms']:.3f} | "
                     f"{v['p99_ms']:.3f} | {v['throughput_per_s']:.0f} | {speed} | {v['agreement']:.2%} | "
                     f"{v['accuracy']:.4f} |")
    return "\n".join(lines)


def markdown(report: dict) -> str:
    return "\n".join([
        f"# Model benchmark — {report['run']}",
        "",
        environment_line(report["environment"]),
        "",
        f"Inputs: {report['inputs']['count']} real validation images, {report['inputs']['shape']} uint8. "
        "Agreement = share of inputs whose verdict and label equal torch eager's.",
        "",
        variants_table(report["variants"]),
        "",
    ])
