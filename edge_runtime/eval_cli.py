"""`edge-eval`: how good is the deployed .onnx on labelled data? (JSON + a table)"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edge_runtime.cli_support import progress, run_cli
from edge_runtime.datasets import labeled_images
from edge_runtime.evaluate import check_classes, evaluate
from edge_runtime.metrics import format_table
from edge_runtime.model import EdgeModel
from edge_runtime.session import DEVICES


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", "model_path", required=True, type=click.Path(dir_okay=False), help="lineside .onnx artifact.")
@click.option("--data", required=True, type=click.Path(), help="MVTec-layout folder (uses test/) or class folders.")
@click.option("--split", default="test", show_default=True, help="Split folder inside DATA, when it has one.")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="Write the metrics here.")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True)
@click.option("--threads", type=int, default=None)
def edge_eval(model_path, data, split, json_path, device, threads):
    """Accuracy per class, confusion matrix, false-reject and escape rates of a deployed model.

    \b
    Example:
      edge-eval --model artifacts/brick/model.int8.onnx --data data/demo/brick --json eval.json
    """
    model = EdgeModel(model_path, device=device, threads=threads)
    pairs = labeled_images(data, split)
    check_classes(model, pairs, data)
    with progress(label=f"evaluating {Path(model_path).name}", length=len(pairs)) as bar:
        metrics = evaluate(model, pairs, progress=bar.update)
    metrics = {**metrics, "data": str(data), "split": split}
    click.echo(format_table(metrics))
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(metrics, indent=2))
        click.echo(f"metrics: {json_path}")


def main() -> None:
    run_cli(edge_eval)


if __name__ == "__main__":
    sys.exit(main())
