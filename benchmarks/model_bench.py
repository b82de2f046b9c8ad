"""torch eager vs ONNX Runtime fp32 / INT8 on the same real inputs, threads, machine and run."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.environment import environment
from benchmarks.latency import measure
from edge_runtime.model import EdgeModel
from export.parity import compare, onnx_outputs, torch_outputs
from export.run_export import model_info
from train.checkpoint import load_checkpoint
from train.images import validation_set

SCHEMA = 1


def _torch_variant(model: torch.nn.Module):
    def run(x: np.ndarray):
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return {"name": "torch eager fp32", "framework": "torch", "precision": "fp32", "provider": "torch-cpu"}, run


def _onnx_variant(path: Path, threads: int):
    started = time.perf_counter()
    model = EdgeModel(path, threads=threads)
    model.infer(np.zeros((1, *model.info.input_size, 3), np.uint8))
    cold_ms = (time.perf_counter() - started) * 1e3
    meta = {"name": f"onnxruntime {model.info.precision}", "framework": "onnxruntime",
            "precision": model.info.precision, "provider": model.provider, "cold_start_ms": round(cold_ms, 2),
            "file": path.name}
    return meta, model.infer


def bench_model(run: str, artifacts: str, threads: int, batches=(1, 32), warmup: int = 30, iters: int = 300,
                data: str | None = None, echo=print) -> dict:
    """Every variant × batch size: latency percentiles, throughput, agreement with torch, accuracy."""
    torch.set_num_threads(threads)
    model, config = load_checkpoint(run)
    _, val = validation_set(config, data)
    truth = [config["labels"][t] for t in val.targets]
    info = model_info(config, "fp32", {})
    reference = torch_outputs(model, val.images)
    builders = []
    for precision in ("fp32", "int8"):
        path = Path(artifacts) / f"model.{precision}.onnx"
        if path.is_file():
            builders.append(lambda path=path: _onnx_variant(path, threads))
    # torch last: its OpenMP workers keep spinning after a call and would steal the
    # cores from whatever is timed next (measured: ORT fp32 1.8x slower right after torch).
    builders.append(lambda: _torch_variant(model))
    variants = []
    for build in builders:
        try:
            meta, fn = build()
        except Exception as exc:  # shown in the report as this variant's error, and fails the command
            variants.append({"name": "?", "error": f"{type(exc).__name__}: {exc}"})
            continue
        figures = compare(reference, np.concatenate([fn(val.images[i:i + 32]) for i in range(0, len(val.images), 32)]),
                          info, truth)
        for batch in batches:
            echo(f"{meta['name']}, batch {batch}")
            row = {**meta, "threads": threads, "batch": batch}
            try:
                row.update(measure(fn, val.images, batch, warmup if batch == 1 else 3,
                                   iters if batch == 1 else max(iters // batch, 10)))
            except Exception as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"
            row.update({"agreement": round(1.0 - figures["flip_rate"], 6), "flips": figures["flips"],
                        "accuracy": round(figures["accuracy"], 6)})
            variants.append(row)
    base = {v["batch"]: v["p50_ms"] for v in variants if v.get("framework") == "torch" and "p50_ms" in v}
    for v in variants:
        if "p50_ms" in v and v["batch"] in base:
            v["speedup_vs_torch"] = round(base[v["batch"]] / v["p50_ms"], 3)
    return {
        "schema": SCHEMA,
        "kind": "model",
        "run": str(run),
        "artifacts": str(artifacts),
        "task": config["task"],
        "inputs": {"source": "validation set of the run", "count": len(truth),
                   "shape": list(val.images.shape[1:]), "dtype": "uint8"},
        "settings": {"threads": threads, "warmup": warmup, "iterations_batch1": iters, "batches": list(batches)},
        "environment": environment(threads),
        "variants": variants,
    }
