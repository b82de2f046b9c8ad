"""The end of `make demo`: where everything went, and one short table of what it measured.

Also `--recommended ART` prints the precision export recommends for this CPU, so
the demo runs the model it would ship.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.report import environment_line
from edge_runtime.metrics import figure


def recommended(artifacts: Path) -> str:
    return json.loads((artifacts / "manifest.json").read_text())["recommended"] or "fp32"


def clip_accuracy(verdicts: Path, truth_csv: Path) -> tuple[float, int]:
    """Share of in-position frames whose verdict matches the clip's ground truth."""
    truth = {}
    for line in truth_csv.read_text().splitlines()[1:]:
        frame, _, in_position, label = line.split(",")
        if in_position == "1":
            truth[int(frame)] = "good" if label == "good" else "defect"
    rows = [json.loads(line) for line in verdicts.read_text().splitlines()]
    hits = [r["verdict"] == truth[r["frame_id"]] for r in rows if r["type"] == "verdict" and r["frame_id"] in truth]
    return (sum(hits) / len(hits) if hits else float("nan")), len(hits)


def summary(data: Path, artifacts: Path, report_dir: Path) -> str:
    bench = json.loads((report_dir / "report.json").read_text())
    export = json.loads((artifacts / "export_report.json").read_text())
    run_rows = [json.loads(line) for line in (report_dir / "verdicts.jsonl").read_text().splitlines()]
    run = [r for r in run_rows if r["type"] == "summary"][-1]
    clip_acc, clip_n = clip_accuracy(report_dir / "verdicts.jsonl", data / "line_clip.csv")
    lines = [
        "",
        "lineside demo — done",
        f"  data       {data}",
        f"  artifacts  {artifacts}  (recommended here: {export['recommended']})",
        f"  reports    {report_dir}/report.md, {artifacts}/export_report.md, {report_dir}/eval.*.json",
        f"  verdicts   {report_dir}/verdicts.jsonl",
        "",
        environment_line(bench["environment"]),
        "",
        f"{'variant':<20}{'batch':>6}{'p50 ms':>9}{'p99 ms':>9}{'vs torch':>10}{'agree':>8}{'test acc':>10}",
    ]
    test_acc = {}
    for precision in ("fp32", "int8"):
        path = report_dir / f"eval.{precision}.json"
        if path.is_file():
            test_acc[precision] = json.loads(path.read_text())["accuracy"]
    for v in bench["variants"]:
        if "p50_ms" not in v:
            lines.append(f"{v['name']:<20} " + (f"skipped: {v['skipped']}" if "skipped" in v else f"failed: {v.get('error')}"))
            continue
        acc = test_acc.get(v["precision"]) if v["framework"] == "onnxruntime" else None
        lines.append(f"{v['name']:<20}{v['batch']:>6}{v['p50_ms']:>9.3f}{v['p99_ms']:>9.3f}"
                     f"{v.get('speedup_vs_torch', 0):>9.2f}×{v['agreement']:>8.1%}"
                     f"{'' if acc is None else f'{acc:.4f}':>10}")
    int8 = next((v for v in bench["variants"] if v.get("precision") == "int8" and v.get("batch") == 1), None)
    fp32 = next((v for v in bench["variants"] if v.get("name") == "onnxruntime fp32" and v.get("batch") == 1), None)
    if int8 and fp32 and "p50_ms" in int8 and "p50_ms" in fp32 and int8["p50_ms"] > fp32["p50_ms"]:
        lines.append(f"NOTE: INT8 is slower than fp32 on this CPU ({int8['p50_ms']:.3f} vs {fp32['p50_ms']:.3f} ms); "
                     "the demo ran fp32.")
    lines += [
        "",
        f"edge-run on the line clip: {run['frames']} frames, {run['fps']} fps, inference p50 "
        f"{run['latency_ms']['inference']['p50']} ms, verdicts {run['verdicts']}; "
        f"in-position frames judged right: {clip_acc:.1%} of {clip_n}",
    ]
    int8_eval = report_dir / "eval.int8.json"
    found = json.loads(int8_eval.read_text()).get("explanation") if int8_eval.is_file() else None
    if found and found["pointing_hit_rate"] is not None:
        lines.append(f"heat maps of the INT8 classifier ({found['maps']}): peak on the defect in "
                     f"{found['pointing_hit_rate']:.1%} of {found['images_with_masks']} masked test defects, "
                     f"pixel AUROC {figure(found['pixel_auroc'], '.3f')}")
    pipe_path = report_dir / "pipeline" / "report.json"
    if pipe_path.is_file():
        pipe = json.loads(pipe_path.read_text())
        ls = pipe["lineside"]
        lines.append(f"edge-bench pipeline at {pipe['settings']['fps']:g} fps: capture → decision p50 "
                     f"{ls['capture_to_decision_ms']['p50']} ms / p99 {ls['capture_to_decision_ms']['p99']} ms, "
                     f"overhead beyond inference p50 {ls['overhead_beyond_inference_ms']['p50']} ms, "
                     f"{ls['dropped']} dropped; work vs plain OpenCV+ORT loop {pipe['work_p50_ratio_vs_reference']}×")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recommended", type=Path, help="print the recommended precision of this export folder")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--artifacts", type=Path)
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()
    if args.recommended:
        print(recommended(args.recommended))
        return
    text = summary(args.data, args.artifacts, args.report)
    (args.report / "demo_summary.txt").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
