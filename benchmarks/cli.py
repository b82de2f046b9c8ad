"""`edge-bench`: measure torch against ONNX Runtime on this machine and write a report."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from edge_runtime.cli_support import Finite, OutPath, comma_list, run_cli
from edge_runtime.errors import LinesideError


class BenchmarkFailed(LinesideError):
    exit_code = 4


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def edge_bench():
    """Latency benchmarks against the torch baseline (same inputs, machine and run)."""


@edge_bench.command()
@click.option("--checkpoint", "run", required=True, type=click.Path(), help="Training run folder (edge-train --out).")
@click.option("--artifacts", required=True, type=click.Path(), help="Export folder (edge-export --out).")
@click.option("--out", required=True, type=OutPath(file_okay=False), help="Report folder.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Threads for torch and ORT (default: all cores).")
@click.option("--batch", "batches", default="1,32", show_default=True, help="Comma list of batch sizes.")
@click.option("--iters", type=click.IntRange(min=10), default=300, show_default=True, help="Timed iterations at batch 1.")
@click.option("--data", default=None, type=click.Path(), help="Training data folder, if it moved since training.")
@click.option("--compile/--no-compile", "compile_torch", default=True, show_default=True,
              help="Also time torch.compile (inductor; its compile time is its cold start).")
def model(run, artifacts, out, threads, batches, iters, data, compile_torch):
    """torch eager vs ONNX Runtime fp32 vs INT8: p50/p90/p99, throughput, agreement.

    \b
    Example:
      edge-bench model --checkpoint runs/brick --artifacts artifacts/brick --out reports/brick
    """
    from benchmarks.model_bench import bench_model
    from benchmarks.report import variants_table, write_report

    batch_sizes = tuple(_int_list(batches, "--batch"))
    if not sorted(Path(artifacts).glob("model.*.onnx")):  # torch alone is no comparison: say so, not exit 0
        raise click.BadParameter(f"{artifacts} holds no model.<precision>.onnx: give the folder edge-export wrote",
                                 param_hint="--artifacts")
    report = bench_model(run, artifacts, threads or os.cpu_count(), batch_sizes, iters=iters, data=data,
                         compile_torch=compile_torch, echo=lambda m: click.echo(m, err=True))
    folder = write_report(report, out)
    click.echo(variants_table(report["variants"]))
    click.echo(f"report: {Path(folder) / 'report.md'}, report.html and report.json")
    if report.get("interrupted"):
        raise BenchmarkFailed(f"interrupted; what was measured is in {Path(folder) / 'report.json'}")
    failed = [v["name"] for v in report["variants"] if "error" in v]
    if failed:
        raise BenchmarkFailed(f"variants failed: {', '.join(failed)} (errors are in the report)")


@edge_bench.command()
@click.option("--source", required=True, type=click.Path(dir_okay=False), help="Video clip, played at --fps.")
@click.option("--model", "model_path", required=True, type=click.Path(dir_okay=False), help="lineside .onnx artifact.")
@click.option("--out", required=True, type=OutPath(file_okay=False), help="Report folder.")
@click.option("--fps", type=Finite(min=1), default=30, show_default=True, help="Camera rate to simulate.")
@click.option("--roi", default=None, help="Inspection window x,y,w,h.")
@click.option("--frames", type=click.IntRange(min=10), default=300, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="ORT threads (default: all cores).")
@click.option("--viewers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also run with this many simulated --web viewers and report the overhead.")
def pipeline(source, model_path, out, fps, roi, frames, threads, viewers):
    """The full edge-run path at a fixed camera rate vs a plain OpenCV + ORT loop, per stage.

    \b
    Example:
      edge-bench pipeline --source data/demo/line_clip.mp4 --model artifacts/brick/model.int8.onnx \\
                          --roi 512,232,256,256 --fps 30 --out reports/pipeline
    """
    from benchmarks.pipeline_bench import bench_pipeline
    from benchmarks.report import pipeline_markdown, write_report
    from edge_runtime.cli_support import parse_roi

    report = bench_pipeline(source, model_path, fps, parse_roi(roi), frames, threads or os.cpu_count(),
                            viewers=viewers, echo=lambda m: click.echo(m, err=True))
    folder = write_report(report, out)
    click.echo(pipeline_markdown(report))
    click.echo(f"report: {Path(folder) / 'report.md'}, report.html and report.json")


@edge_bench.command("sensor-stream")
@click.option("--model", "model_path", required=True, type=click.Path(dir_okay=False),
              help="A lineside sensor model (.onnx; sensor_anomaly, sensor_classify or quality).")
@click.option("--out", required=True, type=OutPath(file_okay=False), help="Report folder.")
@click.option("--seconds", type=Finite(min=1), default=20, show_default=True)
@click.option("--rate", type=Finite(min=1), default=1000, show_default=True, help="Samples per second.")
@click.option("--per-datagram", type=click.IntRange(min=1, max=1000), default=1, show_default=True,
              help="Samples the sender puts in one datagram.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="edge-run's ORT threads.")
def sensor_stream(model_path, out, seconds, rate, per_datagram, threads):
    """A UDP sensor stream into a real `edge-run --sensor`: samples lost, decision − last sample p50/p99.

    \b
    Example:
      edge-bench sensor-stream --model vibration.onnx --seconds 20 --out reports/sensor_stream
    """
    from benchmarks.sensor_stream import bench_sensor_stream, markdown

    report = bench_sensor_stream(model_path, out, seconds, rate, per_datagram, threads,
                                 echo=lambda m: click.echo(m, err=True))
    click.echo(markdown(report))
    click.echo(f"report: {Path(out) / 'report.md'} and report.json")


def _int_list(text: str, flag: str) -> list[int]:
    try:
        values = [int(v) for v in comma_list(text, flag, "integers")]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma list of integers", param_hint=flag) from None
    if min(values) < 1:
        raise click.BadParameter(f"{text!r}: give positive integers", param_hint=flag)
    if len(set(values)) < len(values):  # 1,01: each setting would be measured and reported twice
        raise click.BadParameter(f"{text!r} gives a value twice: give each once", param_hint=flag)
    return values


@edge_bench.command()
@click.option("--model", "model_path", required=True, type=click.Path(dir_okay=False), help="lineside .onnx artifact.")
@click.option("--out", required=True, type=OutPath(file_okay=False), help="Report folder.")
@click.option("--threads", "threads_list", default=None, help="Comma list (default: 1 .. all cores).")
@click.option("--batch", "batches", default="1,4,16,32", show_default=True, help="Comma list of batch sizes.")
@click.option("--data", default=None, type=click.Path(), help="Folder of real images (default: random uint8).")
@click.option("--iters", type=click.IntRange(min=10), default=100, show_default=True)
def sweep(model_path, out, threads_list, batches, data, iters):
    """Threads × batch sizes for one model: the settings to run it with on this machine.

    \b
    Example:
      edge-bench sweep --model artifacts/brick/model.int8.onnx --data data/demo/brick/test/good --out reports/sweep
    """
    from benchmarks.report import write_report
    from benchmarks.sweep import sweep as run_sweep
    from benchmarks.sweep import sweep_markdown

    threads = _int_list(threads_list, "--threads") if threads_list else list(range(1, (os.cpu_count() or 1) + 1))
    report = run_sweep(model_path, threads, _int_list(batches, "--batch"), data, iters,
                       echo=lambda m: click.echo(m, err=True))
    folder = write_report(report, out)
    click.echo(sweep_markdown(report))
    click.echo(f"report: {Path(folder) / 'report.md'}, report.html and report.json")


@edge_bench.command()
@click.argument("old", type=click.Path())
@click.argument("new", type=click.Path())
@click.option("--tolerance", type=Finite(min=0), default=0.10, show_default=True,
              help="Allowed p50 slow-down (0.10 = 10 %).")
def compare(old, new, tolerance):
    """Compare two report.json files; exit non-zero when a variant got slower or changed answers.

    \b
    Example:
      edge-bench compare reports/last/report.json reports/brick/report.json --tolerance 0.15
    """
    from benchmarks.compare import check_comparable, compare_reports, format_rows, load_report

    old_report, new_report = load_report(old), load_report(new)
    warnings = check_comparable(old_report, new_report, old, new)
    rows = compare_reports(old_report, new_report, tolerance)
    click.echo(format_rows(rows))
    for warning in warnings:
        click.echo(warning, err=True)
    cpus = [(r.get("environment") or {}).get("cpu") for r in (old_report, new_report)]
    if cpus[0] != cpus[1]:
        click.echo("warning: the reports come from different CPUs; compare timings from one machine only", err=True)
    regressed = [f"{r['name']} (batch {r['batch']})" for r in rows if r["regressed"] and not r.get("missing")]
    missing = [f"{r['name']} (batch {r['batch']})" for r in rows if r.get("missing")]
    if not rows:
        raise BenchmarkFailed("the old report has no timed variant to compare")
    if regressed or missing:
        raise BenchmarkFailed("; ".join([f"regressed beyond {tolerance:.0%}: {', '.join(regressed)}"] * bool(regressed)
                                        + [f"not timed in {new}: {', '.join(missing)}"] * bool(missing)))


@edge_bench.command()
@click.option("--data", required=True, type=click.Path(), help="MVTec-layout folder with train/, train_ground_truth/, test/.")
@click.option("--out", required=True, type=OutPath(file_okay=False), help="Report folder.")
@click.option("--k", "ks", default="5,10,20", show_default=True, help="Comma list: real defect images per kind.")
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--arms", default="plain,classic,gan,paste", show_default=True,
              help="plain (k real), classic (k real repeated to the same count as gan), gan (+ GAN images), "
                   "paste (+ copy-paste images); also gan_raw (+ GAN images in the generator's own colours, "
                   "not the real defects' tint).")
@click.option("--kinds", default=None, help="Comma list of defect kinds (default: every train/<defect>).")
@click.option("--steps", type=click.IntRange(min=1), default=200, show_default=True,
              help="Classifier optimizer steps, the same for every arm (epochs follow from its image count).")
@click.option("--image-size", type=click.IntRange(min=32), default=128, show_default=True)
@click.option("--synth-count", type=int, default=40, show_default=True,
              help="Synthetic images per kind (gan and paste; at least 2, for the image-quality check).")
@click.option("--gan-steps", type=click.IntRange(min=1), default=300, show_default=True)
@click.option("--gan-patch", type=click.IntRange(min=16), default=32, show_default=True)
@click.option("--gan-width", type=click.IntRange(min=8), default=16, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda, cuda:N.")
def augment(data, out, ks, seeds, arms, kinds, steps, image_size, synth_count, gan_steps, gan_patch, gan_width,
            device):
    """Do GAN defect images help when real defects are scarce? Classifier with k real defects per kind, with GAN
    images vs classic augmentation of the real ones (and copy-paste as a control), same untouched test set,
    several seeds.

    \b
    Example:
      edge-bench augment --data data/demo/brick --out reports/augment --k 5,10,20 --seeds 3
    """
    from benchmarks.augment import ARMS, PAINTED, AugmentSettings, run_augment
    from benchmarks.augment_report import markdown

    arm_list = tuple(a.strip() for a in arms.split(",") if a.strip())
    unknown = sorted(set(arm_list) - set(ARMS) - set(PAINTED))
    if unknown or "classic" not in arm_list:
        raise click.BadParameter(f"{arms!r}: give classic plus any of plain, gan, paste, gan_raw", param_hint="--arms")
    if gan_patch % 8:
        raise click.BadParameter(f"{gan_patch} is not a multiple of 8", param_hint="--gan-patch")
    if synth_count < 2:  # the image-quality check (KID, augment._quality) compares sets of two or more images,
        # and its good-image set is --synth-count long: 1 failed there, after the GANs were trained
        raise click.BadParameter(f"{synth_count}: give 2 or more (the image-quality check compares sets of at "
                                 "least 2 synthetic and 2 good images)", param_hint="--synth-count")
    settings = AugmentSettings(ks=tuple(_int_list(ks, "--k")), seeds=seeds, arms=arm_list, steps=steps,
                               image_size=image_size, synth_count=synth_count, gan_steps=gan_steps,
                               gan_patch=gan_patch, gan_width=gan_width, device=device,
                               kinds=tuple(x.strip() for x in kinds.split(",") if x.strip()) if kinds else ())
    report = run_augment(data, out, settings, echo=lambda m: click.echo(m, err=True))
    click.echo(markdown(report).split("## The GANs")[0].rstrip())
    click.echo(f"report: {Path(out) / 'report.md'}, report.json and plot.png")


def main() -> None:
    run_cli(edge_bench)


if __name__ == "__main__":
    sys.exit(main())
