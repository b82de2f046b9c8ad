"""The export report (JSON + Markdown) and the manifest a line PC verifies its files against; whose export an
output folder holds, read from its report."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from edge_runtime.cpu import cpu_info
from edge_runtime.errors import InputFileError
from edge_runtime.metrics import figure


def speed_key(device: str) -> str:
    """The parity figure that holds an artifact's batch-1 p50 on `device`."""
    return "p50_ms_batch1" if device == "cpu" else f"p50_ms_batch1_{device}"


def check_out_folder(out: Path, run: Path) -> None:
    """An export replaces the models in `out` and removes the ones it does not write: refused when they are another
    run's export (a line may be running it) or models this tool did not write, as edge-train refuses an existing run."""
    report = out / "export_report.json"
    models = sorted(out.glob("model.*.onnx")) if out.is_dir() else []
    if report.is_file():
        try:
            previous = json.loads(report.read_text())
            earlier = Path(previous.get("run_path") or previous["run"]).resolve()
        except (ValueError, KeyError, TypeError, AttributeError, OSError):  # AttributeError: JSON, not an object
            previous, earlier = {}, None
        # a report older than run_path holds the run as it was given (runs/brick): from elsewhere, its name decides
        same_name = "run_path" not in previous and earlier is not None and earlier.name == run.resolve().name
        if earlier != run.resolve() and not same_name:
            raise InputFileError(f"{out} holds the export of another run ({earlier or 'unreadable report'}), which a "
                                 "line may be running: give another --out, or --overwrite to replace it")
    elif models:
        raise InputFileError(f"{out} holds {models[0].name} but no export_report.json (not edge-export's, or an "
                             "export cut short): give another --out, or --overwrite to replace it")


def write_export_report(report: dict, out_dir: Path) -> None:
    report = {"written_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "cpu": cpu_info(),
              **report}
    manifest = {"artifacts": [{"file": a["file"], "sha256": a["sha256"], "bytes": a["bytes"], "precision": p,
                               "gate": a["gate"]} for p, a in report["artifacts"].items()],
                "recommended": report["recommended"]}
    texts = {"export_report.json": json.dumps(report, indent=2), "export_report.md": report_markdown(report),
             "manifest.json": json.dumps(manifest, indent=2)}
    tmps = {name: out_dir / f"{name}.tmp" for name in texts}
    try:  # all three written before any replaces its old self
        for name, text in texts.items():
            tmps[name].write_text(text)
        for name, tmp in tmps.items():
            os.replace(tmp, out_dir / name)
    except OSError:
        # the artifacts are already this export's: an earlier manifest would vouch for files that are gone
        for path in (*tmps.values(), out_dir / "manifest.json"):
            if path.is_file():
                path.unlink()
        raise


def report_markdown(report: dict) -> str:
    cpu = report["cpu"]
    lines = [
        f"# Export report — {report['run']}",
        "",
        f"{report['written_at']} · {cpu['model']} ({cpu['arch']}, {cpu['logical_cores']} cores, "
        f"flags {' '.join(cpu['flags'])}) · {report['threads']} threads · "
        + " · ".join(f"{k} {v}" for k, v in report["versions"].items()),
        "",
        f"Parity against torch on {report['validation_count']} validation inputs"
        + (" (each validation image as taken, under a 25 % dimmer or brighter lamp, and with sigma-8 sensor "
           "noise)." if report.get("camera_copies") else "."),
        "",
    ]
    if "gate" in report:
        g = report["gate"]
        lines += [f"Gate: fp32 ≤ {g['fp32_max_flips']} flips and max relative error ≤ {g['fp32_max_rel_error']:.0e}; "
                  f"INT8 and FP16 ≤ {g['int8_max_flip_rate']:.0%} flips and ≤ {g['int8_max_metric_drop'] * 100:g} "
                  "points of the task metric below fp32.", ""]
    cpu_ms, gpu_ms, ov_ms = speed_key("cpu"), speed_key("cuda"), speed_key("openvino")
    timed_gpu = any(a["parity"].get(gpu_ms) for a in report["artifacts"].values())
    timed_ov = any(ov_ms in a["parity"] for a in report["artifacts"].values())
    lines += ["| precision | file | MB | gate | flips | max abs error | max rel error | metric | p50 ms (batch 1) |"
              + (" p50 ms CUDA |" if timed_gpu else "") + (" p50 ms OpenVINO |" if timed_ov else ""),
              "|---|---|---:|---|---:|---:|---:|---:|---:|" + ("---:|" if timed_gpu else "")
              + ("---:|" if timed_ov else "")]
    for precision, art in report["artifacts"].items():
        p = art["parity"]
        lines.append(f"| {precision} | {art['file']} | {art['bytes'] / 1e6:.2f} | {art['gate']} | {p['flips']} | "
                     f"{p['max_abs_error']:.2e} | {p['max_rel_error']:.2e} | {p['metric_name']} {figure(p['metric'])}"
                     + (f", pixel_auroc {p['pixel_auroc']:.4f}" if "pixel_auroc" in p else "") + " | "
                     f"{p[cpu_ms]} |" + (f" {p.get(gpu_ms)} |" if timed_gpu else "")
                     + (f" {p.get(ov_ms) or 'did not run'} |" if timed_ov else ""))
    nodes = report.get("graph_nodes")
    if nodes and nodes.get("fp32", nodes["tidied"]) < nodes["exported"]:
        steps = [f"{nodes['exported']} nodes as exported"]
        if nodes["tidied"] < nodes["exported"]:
            steps.append(f"{nodes['tidied']} without run-time shape chains and zero RNN states")
        if nodes.get("fp32", nodes["tidied"]) < nodes["tidied"]:
            steps.append(f"{nodes['fp32']} in the fp32 artifact, with constant normalisation folded into Gemm "
                         "weights (INT8 and FP16 are made from the unfolded graph)")
        lines += ["", "Graph tidied: " + "; ".join(steps) + "."]
    lines += ["", f"Recommended for this CPU: **{report['recommended'] or 'none passed the gate'}**."]
    gpu = (report.get("recommended_by_device") or {}).get("cuda")
    lines += [f"Recommended for this GPU (CUDA provider): **{gpu}**." if gpu else
              "GPU: " + ("nothing passed the gate." if timed_gpu else
                         "not timed (no CUDA provider runs here). For GPUs deploy fp16 or fp32: INT8 QDQ ran "
                         "slower than both on the CUDA provider (README, GPU section); export on the GPU "
                         "machine to time it.")]
    ov = (report.get("recommended_by_device") or {}).get("openvino")
    lines += [f"Recommended for OpenVINO's runtime on this CPU (Intel PCs, `edge-run --device openvino`): **{ov}**."
              if ov else "OpenVINO: " + ("no artifact that passed the gate ran in it." if timed_ov else
                                         "not timed (pip install openvino to time it here).")]
    if report["gate_failures"]:
        lines += ["", "Gate failures:", *[f"- {f}" for f in report["gate_failures"]]]
    quant = report.get("int8")
    if quant:
        lines += ["", "INT8: " + ", ".join(f"{k} {v}" for k, v in quant.items()
                                           if k not in ("layers", "excluded_nodes", "dominant_layer", "gaussian_refit",
                                                        "threshold", "float_ends")),
                  "", f"Kept in float: {', '.join(quant['excluded_nodes']) or 'nothing'}." if "quantized_region"
                  not in quant else f"Kept in float: the {len(quant['excluded_nodes'])} nodes after the features.",
                  ""]
        if quant.get("float_ends"):  # a sensor graph's raw-value ends (export/float_ends.py)
            lines += [f"Float ends (raw values in and out): {', '.join(quant['float_ends'])}.", ""]
        if "threshold" in quant:  # a gauss score's INT8 has its own (export/gauss_int8.py)
            t = quant["threshold"]
            lines += [f"INT8 threshold {t['int8']:.4f} (fp32 {t['fp32']:.4f}): {t['why']}.", ""]
        dominant = quant.get("dominant_layer")
        if dominant:
            lines += [f"Dominant layer {dominant['tensor']} (+{dominant['added_loss_db']} dB): "
                      f"{'kept in float' if dominant['in_float'] else 'quantized'}, {dominant['why']} "
                      f"(batch-1 p50: quantized {dominant['p50_ms_batch1'].get('quantized')} ms, in float "
                      f"{dominant['p50_ms_batch1'].get('float')} ms).", ""]
        lines += ["Per-layer INT8 error against fp32 (SQNR; a layer is charged with the loss it adds):", "",
                  "| tensor | op | SQNR vs fp32 dB | added loss dB |", "|---|---|---:|---:|"]
        lines += [f"| {r['tensor']} | {r['op']} | {r['vs_fp32_db']} | {r['added_loss_db']} |" for r in quant.get("layers", [])]
    return "\n".join(lines) + "\n"
