"""`edge-eval`: how good is the deployed .onnx on labelled data? (JSON + a table)"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edge_runtime.cli_support import OutPath, progress, run_cli
from edge_runtime.datasets import labeled_images
from edge_runtime.decision import decides_by_class
from edge_runtime.disturb import SIGNAL_DISTURBANCES, parse_disturbances
from edge_runtime.evaluate import check_classes, evaluate
from edge_runtime.evaluate_anomaly import anomaly_metrics, format_anomaly_table
from edge_runtime.evaluate_explain import explain_classifier, format_explanation
from edge_runtime.evaluate_sensor import HEADLINE, format_sensor_table, sensor_metrics
from edge_runtime.metrics import format_table
from edge_runtime.model import EdgeModel
from edge_runtime.session import DEVICES

# The figures compared under each disturbance, per task (the headline metric first).
_ROBUSTNESS_KEYS = {"anomaly": ("image_auroc", "pixel_auroc", "false_reject_rate", "escape_rate"),
                    "classify": ("accuracy", "false_reject_rate", "escape_rate")}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", "model_path", required=True, type=click.Path(dir_okay=False), help="lineside .onnx artifact.")
@click.option("--data", required=True, type=click.Path(), help="MVTec-layout folder (uses test/) or class folders; for a sensor model a .ts or CSV file.")
@click.option("--split", default="test", show_default=True, help="Split folder inside DATA, when it has one.")
@click.option("--json", "json_path", default=None, type=OutPath(dir_okay=False), help="Write the metrics here.")
@click.option("--perturb", default=None,
              help="Also evaluate under disturbances: camera (noise, shift, brightness, blur, jpeg) or, for a sensor model, "
                   "signal (noise, gain, offset); a comma list or all.")
@click.option("--baseline-train", default=None, type=click.Path(dir_okay=False),
              help="Sensor classifier: also score a 1-nearest-neighbour Euclidean baseline trained on this file.")
@click.option("--explain", "explain_dir", default=None, type=OutPath(file_okay=False),
              help="Image classifier: write a heat map of where it saw the defect for every defect image and false "
                   "reject into this folder, and score the maps against the defect masks.")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None)
def edge_eval(model_path, data, split, json_path, perturb, baseline_train, explain_dir, device, threads):
    """Metrics of a deployed model on a labelled test split, at the threshold stored in the model.

    \b
    Classifier: accuracy per class, confusion matrix, false-reject and escape rates.
    Anomaly model: image AUROC, pixel AUROC, PRO, F1, false-reject and escape rates, per defect kind.
    Sensor models (DATA is a .ts or CSV file): accuracy per class (+ a 1-NN baseline), fault AUROC per
    kind, or a quality model's MAE / R² and spec-call accuracy.
    \b
    Examples:
      edge-eval --model artifacts/brick/model.int8.onnx --data data/demo/brick --json eval.json
      edge-eval --model artifacts/brick/model.int8.onnx --data data/demo/brick --explain reports/brick-maps
      edge-eval --model artifacts/brick-anomaly/model.int8.onnx --data data/demo/brick --perturb all
      edge-eval --model artifacts/sensor/plaid/model.fp32.onnx --data data/sensor/plaid/PLAID_TEST.ts \\
          --baseline-train data/sensor/plaid/PLAID_TRAIN.ts
    """
    model = EdgeModel(model_path, device=device, threads=threads)
    if baseline_train and not (model.is_sensor and decides_by_class(model.info)):
        raise click.BadParameter(f"the 1-NN baseline is for sensor and process classifiers, and "
                                 f"{Path(model_path).name} is not one (task: {model.info.task}): drop --baseline-train", param_hint="--baseline-train")
    if explain_dir and (model.is_sensor or model.info.task != "classify"):
        raise click.BadParameter(f"heat maps are explained for image classifiers, and {Path(model_path).name} is a "
                                 f"{model.info.task} model" + (" (its own heat maps are scored as pixel AUROC and PRO)"
                                                               if model.info.task == "anomaly" else "")
                                 + ": drop --explain", param_hint="--explain")
    if model.is_sensor:
        return _eval_sensor(model, data, baseline_train, json_path, parse_disturbances(perturb, SIGNAL_DISTURBANCES))
    disturbances = parse_disturbances(perturb)
    pairs = labeled_images(data, split)
    task = model.info.task
    if task == "anomaly":
        run = lambda disturbance, bar: anomaly_metrics(model, Path(data), pairs, disturbance, progress=bar)  # noqa: E731
        show = format_anomaly_table
    else:
        check_classes(model, pairs, data)
        run = lambda disturbance, bar: evaluate(model, pairs, progress=bar, disturbance=disturbance)  # noqa: E731
        show = format_table
    passes = [None, *disturbances]
    length = len(pairs) * (len(passes) + bool(explain_dir))
    with progress(label=f"evaluating {Path(model_path).name}", length=length) as bar:
        metrics = run(None, bar.update)
        disturbed = {}
        for name in disturbances:
            row = run(name, bar.update)
            disturbed[name] = {k: row.get(k) for k in _ROBUSTNESS_KEYS[task]}
            for key in _ROBUSTNESS_KEYS[task]:
                if row.get(key) is not None and metrics.get(key) is not None:
                    disturbed[name][f"delta_{key}"] = row[key] - metrics[key]
        if explain_dir:
            metrics["explanation"] = explain_classifier(model, Path(data), pairs, Path(explain_dir), bar.update)
    metrics = {"model": model.describe(), **metrics, "data": str(data), "split": split}
    if disturbed:
        metrics["disturbed"] = disturbed
    click.echo(show(metrics))
    if disturbed and task != "anomaly":
        for name, row in disturbed.items():
            click.echo(f"under {name:10s}: accuracy {row['accuracy']:.4f} ({row['delta_accuracy']:+.4f})")
    if explain_dir:
        click.echo(format_explanation(metrics["explanation"]))
    _write_json(metrics, json_path)


def _eval_sensor(model: EdgeModel, data: str, baseline_train: str | None, json_path: str | None,
                 disturbances: list[str]) -> None:
    metrics = {"model": model.describe(), **sensor_metrics(model, data, baseline_train, disturbances),
               "data": str(data)}
    click.echo(format_table(metrics) if "confusion_matrix" in metrics and "mae" not in metrics
               else format_sensor_table(metrics))
    if "baseline_1nn_euclidean" in metrics:
        click.echo(f"1-NN Euclidean baseline on the same inputs: accuracy {metrics['baseline_1nn_euclidean']:.4f}")
    for name, row in metrics.get("disturbed", {}).items():
        click.echo(f"under {name:7s}: " + ", ".join(f"{k.replace('_', ' ')} {row[k]:.4f} ({row['delta_' + k]:+.4f})"
                                                    for k in HEADLINE if f"delta_{k}" in row))
    _write_json(metrics, json_path)


def _write_json(metrics: dict, json_path: str | None) -> None:
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(metrics, indent=2))
        click.echo(f"metrics: {json_path}")


def main() -> None:
    run_cli(edge_eval)


if __name__ == "__main__":
    sys.exit(main())
