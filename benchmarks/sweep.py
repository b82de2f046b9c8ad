"""threads × batch for one ONNX model on this machine: which settings to run it with."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.environment import environment
from benchmarks.latency import measure
from edge_runtime.datasets import image_files, read_image
from edge_runtime.errors import InputFileError
from edge_runtime.model import EdgeModel

SCHEMA = 1


def _inputs(model: EdgeModel, data: str | None, count: int = 64) -> tuple[np.ndarray, str]:
    rng = np.random.default_rng(0)
    if model.is_sensor:  # latency does not depend on the values: windows of the model's own shape and type
        if data:
            raise InputFileError(f"--data feeds images, but {model.path.name} is a {model.info.task} model: leave "
                                 "out --data (a sensor model is swept on random float32 windows)")
        shape = model.blank_input(count).shape
        return rng.standard_normal(shape).astype(np.float32), "random float32 windows (sensor model)"
    if not data:
        return rng.integers(0, 256, (count, *model.info.input_size, 3), dtype=np.uint8), "random uint8 (no --data)"
    folder = Path(data)
    files = (image_files(folder) if folder.is_dir() else []) or sorted(
        p for d in sorted({p.parent for p in folder.rglob("*")}) for p in image_files(d))[:count]
    if not files:
        raise InputFileError(f"--data {data} holds no images")
    images = [i for i in (read_image(p) for p in files[:count]) if i is not None]  # a cut JPEG is not a part
    if not images:  # files named like images that OpenCV cannot decode: nothing to time on
        raise InputFileError(f"--data {data}: none of its {len(files[:count])} image files could be read; "
                             "give a folder of PNG/JPEG images")
    return np.stack([model.prepare(i) for i in images]), f"{len(images)} images from {data}"


def sweep(model_path: str, threads_list: list[int], batches: list[int], data: str | None, iters: int = 100,
          echo=print) -> dict:
    rows = []
    inputs, described = None, ""
    for threads in threads_list:
        model = EdgeModel(model_path, threads=threads)
        if inputs is None:
            inputs, described = _inputs(model, data)
        for batch in batches:
            echo(f"threads {threads}, batch {batch}")
            stats = measure(model.infer, inputs, batch, warmup=10 if batch == 1 else 2,
                            iters=iters if batch == 1 else max(iters // batch, 10))
            stats.pop("samples_ms")
            rows.append({"threads": threads, "batch": batch, **stats})
    single = min((r for r in rows if r["batch"] == 1), key=lambda r: r["p50_ms"], default=None)
    offline = max(rows, key=lambda r: r["throughput_per_s"])
    return {"schema": SCHEMA, "kind": "sweep", "model": model_path, "inputs": described,
            "environment": environment(max(threads_list)), "rows": rows,
            "recommended": {"single_stream": {"threads": single["threads"], "batch": 1} if single else None,
                            "offline": {"threads": offline["threads"], "batch": offline["batch"]}}}


def sweep_markdown(report: dict) -> str:
    from benchmarks.report import environment_line

    lines = [f"# Sweep — {report['model']}", "", environment_line(report["environment"]), "",
             f"Inputs: {report['inputs']}.", "", "| threads | batch | p50 ms | p99 ms | items/s |",
             "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['threads']} | {r['batch']} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['throughput_per_s']:.0f} |"
              for r in report["rows"]]
    rec = report["recommended"]
    lines += ["", f"Single stream (lowest p50 at batch 1): {rec['single_stream']}. "
              f"Offline (most items/s): {rec['offline']}.", ""]
    return "\n".join(lines)
