"""Writing a benchmark report: report.json (machine-readable) and report.md (for people)."""

from __future__ import annotations

import json
from pathlib import Path


def write_report(report: dict, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    writers = {"model": (markdown, model_html), "pipeline": (pipeline_markdown, pipeline_html),
               "sweep": (_sweep_markdown, _sweep_html)}
    to_markdown, to_html = writers[report["kind"]]
    (out / "report.md").write_text(to_markdown(report))
    (out / "report.html").write_text(to_html(report))
    return out


def _sweep_markdown(report: dict) -> str:
    from benchmarks.sweep import sweep_markdown

    return sweep_markdown(report)


def _sweep_html(report: dict) -> str:
    from benchmarks import html

    columns = [("threads", "threads"), ("batch", "batch"), ("p50_ms", "p50 ms"), ("p90_ms", "p90 ms"),
               ("p99_ms", "p99 ms"), ("throughput_per_s", "items/s")]
    return html.page(f"Sweep — {report['model']}", environment_line(report["environment"]),
                     [("threads × batch", html.table(report["rows"], columns)),
                      ("Recommended", f"<pre>{html.html.escape(str(report['recommended']))}</pre>")])


_COLUMNS = [("name", "variant"), ("provider", "provider"), ("batch", "batch"), ("p50_ms", "p50 ms"),
            ("p90_ms", "p90 ms"), ("p99_ms", "p99 ms"), ("max_ms", "max ms"), ("throughput_per_s", "items/s"),
            ("speedup_vs_torch", "vs torch eager"), ("agreement", "agreement"), ("accuracy", "accuracy"),
            ("cold_start_ms", "cold start ms"), ("process_rss_mb", "process RSS MB"), ("skipped", "skipped"),
            ("error", "error")]


def model_html(report: dict) -> str:
    from benchmarks import html

    batches = report["settings"]["batches"]
    sections = [("Variants", html.table(report["variants"], _COLUMNS))]
    for batch in batches:
        sections.append((f"Batch {batch}: p50 and p99", html.p50_p99_bars(report["variants"], batch)))
        sections.append((f"Batch {batch}: latency distribution", html.latency_cdf(report["variants"], batch)))
    return html.page(f"Model benchmark — {report['run']}", environment_line(report["environment"]), sections)


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
        if "skipped" in v:
            lines.append(f"| {v['name']} | | | skipped: {v['skipped']} | | | | | | |")
            continue
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
        f"Inputs: {report['inputs']['count']} real validation inputs, {report['inputs']['shape']} "
        f"{report['inputs'].get('dtype', 'uint8')}. "
        "Agreement = share of inputs whose verdict and label equal torch eager's.",
        "",
        variants_table(report["variants"]),
        "",
        *([f"ONNX Runtime's call floor here (a one-node Identity graph on the same input, batch 1): "
           f"p50 {report['ort_call_floor_ms_batch1']:.4f} ms. No ORT variant can be faster than that.", ""]
          if report.get("ort_call_floor_ms_batch1") is not None else []),
        *(["**Interrupted (Ctrl-C): only the variants above were measured.**", ""] if report.get("interrupted") else []),
        "Cold start and process RSS (one process, with every variant built, after the timing) are in "
        "report.json/html.",
        "",
    ])


def pipeline_markdown(report: dict) -> str:
    ls, ref = report["lineside"], report["reference"]
    st = ls["stages_ms"]
    s = report["settings"]
    lines = [
        f"# Pipeline benchmark — {report['source']} → {report['model']}",
        "",
        environment_line(report["environment"]),
        "",
        f"{s['frames']} frames paced at {s['fps']:g} fps, ROI {s['roi']}, {s['threads']} ORT threads.",
        "",
        "| | p50 ms | p90 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("capture_wait", "preprocess", "inference", "postprocess", "sink"):
        if st.get(name):
            lines.append(f"| lineside {name} | {st[name]['p50']} | {st[name]['p90']} | {st[name]['p99']} | {st[name]['max']} |")
    for label, row in (("lineside work per frame (preprocess→sink)", ls["work_ms"]),
                       ("lineside overhead beyond inference", ls["overhead_beyond_inference_ms"]),
                       ("lineside capture → decision", ls["capture_to_decision_ms"]),
                       ("reference work per frame (resize→ORT)", ref["work_ms"]),
                       ("reference decode", ref["decode_ms"])):
        lines.append(f"| {label} | {row['p50']} | {row['p90']} | {row['p99']} | {row['max']} |")
    lines += ["", f"lineside: {ls['frames']} frames, {ls['dropped']} dropped, {ls['fps']} fps, CPU load "
              f"{ls['cpu_load']:.2f} cores · reference: {ref['frames']} frames, {ref['fps']} fps, CPU load "
              f"{ref['cpu_load']:.2f} cores",
              f"lineside work p50 / reference work p50 = {report['work_p50_ratio_vs_reference']}", ""]
    watched = report.get("lineside_with_viewers")
    if watched:
        lines += [f"With {watched['viewers']} web viewers: work p50 {watched['work_ms']['p50']} ms, p99 "
                  f"{watched['work_ms']['p99']} ms, {watched['dropped']} dropped — "
                  f"{report['viewer_overhead_p50_ms']:+} ms p50 per frame against no viewers.", ""]
    return "\n".join(lines)


def pipeline_html(report: dict) -> str:
    from benchmarks import html

    text = pipeline_markdown(report)
    return html.page(f"Pipeline benchmark — {report['source']}", environment_line(report["environment"]), [
        ("Stages", html.stage_breakdown(report["lineside"]["stages_ms"], "lineside")),
        ("Figures", "<pre>" + html.html.escape(text) + "</pre>"),
    ])
