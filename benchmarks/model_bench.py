"""torch eager vs ONNX Runtime fp32 / INT8 on the same real inputs, threads, machine and run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmarks import variants as variants_lib
from benchmarks.environment import environment
from benchmarks.latency import measure
from export.parity import compare, torch_outputs
from export.run_export import model_info
from train.checkpoint import load_checkpoint
from train.images import validation_set

SCHEMA = 1


def bench_model(run: str, artifacts: str, threads: int, batches=(1, 32), warmup: int = 30, iters: int = 300,
                data: str | None = None, compile_torch: bool = True, echo=print) -> dict:
    """Every variant × batch size: latency percentiles, throughput, agreement with torch, accuracy."""
    torch.set_num_threads(threads)
    model, config = load_checkpoint(run)
    _, val = validation_set(config, data)
    truth = [config["labels"][t] for t in val.targets]
    info = model_info(config, "fp32", {})
    reference = torch_outputs(model, val.images)
    files = [(p, Path(artifacts) / f"model.{p}.onnx") for p in ("fp32", "int8")]
    files = [(p, f) for p, f in files if f.is_file()]
    builders = [(f"onnxruntime {p}", lambda f=f: variants_lib.onnxruntime(f, threads)) for p, f in files]
    builders += [(f"openvino {p}", lambda f=f, p=p: variants_lib.openvino(f, threads, p)) for p, f in files]
    # torch last: its OpenMP workers keep spinning after a call and would steal the
    # cores from whatever is timed next (measured: ORT fp32 1.8x slower right after torch).
    builders.append(("torch eager fp32", lambda: variants_lib.torch_eager(model, threads)))
    if compile_torch:
        builders.append(("torch compile fp32",
                         lambda: variants_lib.torch_compiled(model, threads, val.images[:max(batches)])))
    variants = []
    for name, build in builders:
        try:
            meta, fn = build()
        except variants_lib.Skipped as exc:
            variants.append({"name": name, "skipped": str(exc)})
            continue
        except Exception as exc:  # shown in the report as this variant's error, and fails the command
            variants.append({"name": name, "error": f"{type(exc).__name__}: {exc}"})
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
    base = {v["batch"]: v["p50_ms"] for v in variants if v.get("name") == "torch eager fp32" and "p50_ms" in v}
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
