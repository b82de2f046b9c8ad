"""`edge-export`: a training run → self-contained ONNX artifacts that passed the parity gate."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.core import ParameterSource

from edge_runtime.cli_support import Finite, OutPath, comma_list, run_cli
from edge_runtime.errors import InputFileError


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run", type=click.Path())
@click.option("--out", required=True, type=OutPath(file_okay=False), help="Folder for the artifacts and reports.")
@click.option("--precision", default=None,
              help="Comma list of fp32, int8, fp16 (fp16 is for GPU targets). Default: fp32,int8 (a rocket sensor classifier: fp32).")
@click.option("--data", default=None, type=click.Path(), help="Training data folder, if it moved since training.")
@click.option("--calib", default=None, type=click.Path(), help="Folder of calibration images (default: training sample).")
@click.option("--calib-method", type=click.Choice(["minmax", "entropy", "percentile"]), default=None,
              help="Default: percentile for anomaly models, minmax for the others.")
@click.option("--calib-count", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--target", type=click.Choice(["auto", "vnni", "avx2", "arm"]), default="auto", show_default=True,
              help="INT8 format for this CPU (auto) or for another device.")
@click.option("--opset", type=int, default=18, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Threads for parity and speed checks (default: all cores).")
@click.option("--max-int8-flip-rate", type=Finite(0, 1), default=0.01, show_default=True,
              help="Gate: share of validation decisions INT8 (and FP16) may change against torch.")
@click.option("--max-int8-metric-drop", type=Finite(0, 1), default=0.005, show_default=True,
              help="Gate: accuracy (classifier), AUROC (anomaly) or R² (quality) INT8 may lose against fp32 "
                   "(0.005 = half a point).")
@click.option("--max-excluded-layers", type=click.IntRange(min=0), default=3, show_default=True,
              help="When INT8 fails the gate, keep up to this many worst layers in float and retry.")
@click.option("--dominant-layer", type=click.Choice(["auto", "float"]), default="auto", show_default=True,
              help="A layer that alone adds >= 20 dB of INT8 error: float keeps it in float; auto too, unless "
                   "quantizing it makes INT8 >= 1.1x faster on this CPU and the gate passes (anomaly models: always float).")
@click.option("--force", is_flag=True, help="Write artifacts that fail the gate, stamped as failed.")
@click.option("--overwrite", is_flag=True, help="Replace another run's export in OUT (refused without it).")
def edge_export(run, out, precision, data, calib, calib_method, calib_count, target, opset, threads,
                max_int8_flip_rate, max_int8_metric_drop, max_excluded_layers, dominant_layer, force, overwrite):
    """Export RUN (from edge-train) to OUT/model.<precision>.onnx with a parity report.

    \b
    Example:
      edge-export runs/brick --out artifacts/brick --precision fp32,int8
      edge-export runs/brick-anomaly --out artifacts/brick-anomaly --precision fp32,int8,fp16
    """
    precisions = None if precision is None else tuple(comma_list(precision, "--precision", "fp32, int8 or fp16"))
    if precisions is not None and "int8" not in precisions:
        _refuse_int8_options(click.get_current_context())
    try:
        _export(run, out, precisions, data, calib, calib_method, calib_count, target, opset, threads,
                max_int8_flip_rate, max_int8_metric_drop, max_excluded_layers, dominant_layer, force, overwrite)
    except OSError as exc:  # the output folder under a file, read-only, a folder where a file goes; or an input
        where = Path(exc.filename or "")
        if where == Path(out) or Path(out) in where.parents:
            raise InputFileError(f"cannot write the export into {out} ({exc.strerror or exc}: {where}): "
                                 "choose another --out") from exc
        raise InputFileError(f"cannot read {where} ({exc.strerror or exc}): check RUN, --data and --calib") from exc


# Options that only shape the INT8 artifact: with an explicit --precision without int8 they would do nothing.
_INT8_ONLY = ("calib", "calib_method", "calib_count", "target", "max_excluded_layers", "dominant_layer",
              "max_int8_metric_drop")


def _refuse_int8_options(ctx: click.Context) -> None:
    given = [f"--{n.replace('_', '-')}" for n in _INT8_ONLY if ctx.get_parameter_source(n) == ParameterSource.COMMANDLINE]
    if given:
        raise click.UsageError(f"{', '.join(given)} shape{'s' if len(given) == 1 else ''} the INT8 artifact, and "
                               f"--precision has no int8: add int8 to it, or drop {'it' if len(given) == 1 else 'them'}")


def _export(run, out, precisions, data, calib, calib_method, calib_count, target, opset, threads,
            max_int8_flip_rate, max_int8_metric_drop, max_excluded_layers, dominant_layer, force, overwrite) -> None:
    from export.report import write_export_report
    from export.run_export import Gate, GateError, run_export

    report = run_export(run, out, precisions, data=data, calib=calib, calib_method=calib_method,
                        calib_count=calib_count, target=target, opset=opset, threads=threads, force=force, max_excluded_layers=max_excluded_layers,
                        dominant_layer=dominant_layer, overwrite=overwrite,
                        gate=Gate(int8_max_flip_rate=max_int8_flip_rate, int8_max_metric_drop=max_int8_metric_drop),
                        echo=lambda m: click.echo(m, err=True))
    write_export_report(report, Path(out))
    for name, art in report["artifacts"].items():
        click.echo(f"{Path(out) / art['file']}  {art['gate']}")
    gpu, ov = report["recommended_by_device"].get("cuda"), report["recommended_by_device"].get("openvino")
    others = [f"{gpu} (this GPU)"] * bool(gpu) + [f"{ov} (OpenVINO)"] * bool(ov)
    line = f"report: {Path(out) / 'export_report.md'}; recommended: {report['recommended']}"
    click.echo(line + (" (this CPU), " + ", ".join(others) if others else ""))
    if report["gate_failures"] and not force:
        raise GateError("export gate failed; failing artifacts were not written (--force writes them stamped): "
                        + " | ".join(report["gate_failures"]))


def main() -> None:
    run_cli(edge_export)


if __name__ == "__main__":
    sys.exit(main())
