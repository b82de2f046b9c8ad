"""torch eager vs ONNX Runtime fp32 / INT8 on the same real inputs, threads, machine and run."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from benchmarks import variants as variants_lib
from benchmarks.environment import environment
from benchmarks.latency import cycling, latency_stats
from edge_runtime.cli_support import progress
from edge_runtime.errors import InputFileError
from edge_runtime.metadata import ModelInfo, from_props
from edge_runtime.model import file_sha256
from edge_runtime.stats import ROUNDS, time_interleaved
from export.gate_set import gate_set
from export.parity import compare, torch_outputs
from export.run_export import model_info
from train.checkpoint import load_checkpoint

SCHEMA = 1
FLOOR = "ORT call floor"


def bench_model(run: str, artifacts: str, threads: int, batches=(1, 32), warmup: int = 30, iters: int = 300,
                data: str | None = None, compile_torch: bool = True, echo=print) -> dict:
    """Every variant × batch size: latency percentiles, throughput, agreement with torch, accuracy."""
    torch.set_num_threads(threads)
    model, config = load_checkpoint(run)
    files = [(p, Path(artifacts) / f"model.{p}.onnx") for p in ("fp32", "int8", "fp16")]
    files = [(p, f) for p, f in files if f.is_file()]
    _check_exported_from(run, [f for _, f in files])
    _, images, truth, _ = gate_set(config, data)
    info = model_info(config, "fp32", {})
    reference = torch_outputs(model, images)
    builders = [(f"onnxruntime {p}", lambda f=f: variants_lib.onnxruntime(f, threads)) for p, f in files]
    for device, provider in (("cuda", "CUDAExecutionProvider"), ("tensorrt", "TensorrtExecutionProvider")):
        if provider in ort.get_available_providers():
            builders += [(f"onnxruntime {p} {device}", lambda f=f, d=device: variants_lib.onnxruntime(f, threads, d))
                         for p, f in files]
        else:
            builders.append((f"onnxruntime {device}", lambda provider=provider: variants_lib.skip(
                f"{provider} is not in this onnxruntime build (GPU machines: the gpu extra)")))
    builders += [(f"openvino {p}", lambda f=f, p=p: variants_lib.openvino(f, threads, p))
                 for p, f in files if p != "fp16"]
    # torch last in each timing round: its OpenMP workers keep spinning after a call and would steal
    # the cores from whatever is timed next (measured: ORT fp32 1.8x slower right after torch).
    builders.append(("torch eager fp32", lambda: variants_lib.torch_eager(model, threads)))
    if torch.cuda.is_available():  # the GPU baseline the CUDA provider must beat; a copy: the CPU one stays
        gpu_model = copy.deepcopy(model)
        builders += [(f"torch eager {p} cuda", lambda h=h: variants_lib.torch_cuda(gpu_model, h))
                     for p, h in (("fp32", False), ("fp16", True))]
    if compile_torch:
        builders.append(("torch compile fp32",
                         lambda: variants_lib.torch_compiled(model, threads, images[:max(batches)])))
    floor = None
    prepared: list[tuple] = []  # (name, meta, fn, agreement figures) of the variants that run
    variants: list[dict] = []
    interrupted = False
    try:
        with progress(builders, "variants built") as bar:
            for name, build in bar:
                echo(f"{name}: building, checking agreement")
                ready = _prepare_variant(name, build, images, reference, info, truth, Path(artifacts))
                if isinstance(ready, dict):
                    variants.append(ready)
                else:
                    prepared.append(ready)
        floor_fn = variants_lib.call_floor(images[:1], threads)
        for batch in batches:
            echo(f"timing batch {batch}: {len(prepared)} variants in {ROUNDS} interleaved rounds")
            # the floor first in each round: right after the pause, never right after torch
            timed = ([(FLOOR, floor_fn)] if batch == 1 else []) + [(name, fn) for name, _, fn, _ in prepared]
            samples, errors, interrupted = time_interleaved(
                [(name, cycling(fn, images, batch)) for name, fn in timed], warmup if batch == 1 else 3,
                iters if batch == 1 else max(iters // batch, 10), threads)
            for name, meta, _, figures in prepared:
                if name not in errors and not samples[name]:
                    continue  # interrupted before its first block
                row = {**meta, "threads": threads, "batch": batch}
                if name in errors:
                    row["error"] = errors[name]
                else:
                    row.update(latency_stats(samples[name], batch))
                row.update({"agreement": round(1.0 - figures["flip_rate"], 6), "flips": figures["flips"],
                            "accuracy": round(figures["accuracy"], 6),
                            figures["metric_name"]: round(figures["metric"], 6), "process_rss_mb": _rss_mb()})
                variants.append(row)
            if batch == 1 and samples.get(FLOOR):
                floor = latency_stats(samples[FLOOR], 1)
            if interrupted:
                break
    except KeyboardInterrupt:  # Ctrl-C: the report still holds everything measured so far
        interrupted = True
    # GPU variants are compared with torch on the same GPU, CPU ones with torch on the CPU
    bases = {where: {v["batch"]: v["p50_ms"] for v in variants if v.get("name") == name and "p50_ms" in v}
             for where, name in (("cpu", "torch eager fp32"), ("gpu", "torch eager fp32 cuda"))}
    for v in variants:
        base = bases["gpu" if v.get("name", "").endswith((" cuda", " tensorrt")) else "cpu"]
        if "p50_ms" in v and v["batch"] in base:
            v["speedup_vs_torch"] = round(base[v["batch"]] / v["p50_ms"], 3)
    return {
        "schema": SCHEMA,
        "kind": "model",
        "run": str(run),
        "artifacts": str(artifacts),
        "task": config["task"],
        "inputs": {"source": "validation set of the run", "count": len(truth),
                   "shape": list(images.shape[1:]), "dtype": str(images.dtype)},
        "settings": {"threads": threads, "warmup": warmup, "iterations_batch1": iters, "batches": list(batches),
                     "interleaved_rounds": ROUNDS},
        "environment": environment(threads),
        "variants": variants,
        # ORT's own per-call cost here: a speedup over torch above base / floor cannot be reached by any model
        "ort_call_floor_ms_batch1": floor["p50_ms"] if floor else None,
        "interrupted": interrupted,
    }


def _rss_mb() -> float | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def _check_exported_from(run: str, files: list[Path]) -> None:
    """Each artifact must be an export of this run's weights (edge-export writes their sha256 into the file's
    metadata): torch and ONNX of different runs compared would be a report of nothing, or a crash."""
    weights = file_sha256(Path(run) / "model.safetensors")
    for path in files:
        try:
            props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        except Exception:  # an unloadable file is that variant's error in the report (its own row)
            continue
        recorded = props.get("checkpoint.sha256")
        if recorded != weights:
            what = ("records no checkpoint" if recorded is None else
                    f"({props.get('task', '?')} model) was exported from another checkpoint")
            raise InputFileError(f"{path} {what}, not from {Path(run) / 'model.safetensors'}: give the --artifacts "
                                 f"folder `edge-export {run} --out DIR` wrote for this run")


def _artifact_info(path: Path) -> ModelInfo:
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return from_props(props, origin=str(path))


def _prepare_variant(name, build, images, reference, info, truth, artifacts: Path):
    """(name, meta, fn, agreement figures), or the row saying why the variant was skipped or failed. The torch
    reference decides by the run's `info`, a variant of an artifact file by that file's own (a gauss score's INT8
    has its own threshold)."""
    try:
        meta, fn = build()
        outputs = np.concatenate([fn(images[i:i + 32]) for i in range(0, len(images), 32)])  # the first output
        variant_info = _artifact_info(artifacts / meta["file"]) if "file" in meta else info
    except variants_lib.Skipped as exc:
        return {"name": name, "skipped": str(exc)}
    except Exception as exc:  # shown in the report as this variant's error, and fails the command
        return {"name": name, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    return name, meta, fn, compare(reference, outputs, variant_info, truth, None, info)
