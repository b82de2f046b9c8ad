"""The GPU paths, proven where a GPU is: training on CUDA, ONNX Runtime's CUDA provider, edge-run on it.

Skipped on CPU machines (CI). `benchmarks/device_check.sh` runs them on a lent GPU
machine; the README's GPU section records what they gave there.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from clitools import ROOT, cuda_provider_works, free_port, jsonl_rows, run_cli
from edge_runtime.model import EdgeModel

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU")
needs_cuda_ep = pytest.mark.skipif(not cuda_provider_works(),
                                   reason="ONNX Runtime's CUDA provider does not work here (the gpu extra on a GPU)")


def _trained_on(run) -> str:
    return json.loads((run / "config.json").read_text())["train"]["device_used"]


@needs_cuda
def test_classifier_trains_on_cuda_and_exports_on_the_cpu(demo_data, tmp_path):
    run, art = tmp_path / "run", tmp_path / "art"
    proc = run_cli("edge-train", "classify", "--data", str(demo_data / "brick"), "--out", str(run), "--epochs", "3",
                   "--device", "cuda")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _trained_on(run).startswith("cuda")
    # a GPU-trained checkpoint is an ordinary one: fp32 export passes the gate (0 flips) on a CPU session
    proc = run_cli("edge-export", str(run), "--out", str(art), "--precision", "fp32")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


@needs_cuda
def test_anomaly_and_gan_train_on_cuda(demo_data, tmp_path):
    proc = run_cli("edge-train", "anomaly", "--data", str(demo_data / "brick"), "--out", str(tmp_path / "anomaly"),
                   "--steps", "60", "--image-size", "128", "--crop", "64", "--device", "cuda")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _trained_on(tmp_path / "anomaly").startswith("cuda")
    proc = run_cli("edge-train", "gan", "--data", str(demo_data / "brick"), "--defect", "crack", "--k", "5",
                   "--out", str(tmp_path / "gan"), "--steps", "40", "--batch-size", "8", "--patch", "32",
                   "--sample-every", "20", "--judge-steps", "20", "--quality-samples", "16", "--device", "cuda")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _trained_on(tmp_path / "gan").startswith("cuda")
    # the CPU loads what CUDA trained (safetensors, no device baked in) and synthesises from it
    proc = run_cli("edge-data", "synth", "--gan", str(tmp_path / "gan"), "--count", "4", "--out",
                   str(tmp_path / "synth"), "--seed", "0")
    assert proc.returncode == 0, proc.stderr[-2000:]


@needs_cuda_ep
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_cuda_provider_runs_each_artifact_and_agrees_with_the_cpu(artifacts, precision):
    path = artifacts / f"model.{precision}.onnx"
    cpu, gpu = EdgeModel(path, device="cpu"), EdgeModel(path, device="cuda")
    assert gpu.provider == "CUDAExecutionProvider"  # read back from the session, not what we asked for
    rng = np.random.default_rng(0)
    x = rng.random((8, *cpu.blank_input().shape[1:]), dtype=np.float32) * 255
    x = x.astype(cpu.blank_input().dtype)
    a, b = cpu.session.run(None, {cpu.input_name: x})[0], gpu.session.run(None, {gpu.input_name: x})[0]
    tolerance = {"fp32": 1e-4, "fp16": 2e-2, "int8": 2e-2}[precision]  # fp32 on CUDA: TF32 is switched off
    assert np.abs(a - b).max() <= tolerance * max(1.0, float(np.abs(a).max())), np.abs(a - b).max()
    assert (a.argmax(1) == b.argmax(1)).all()


@needs_cuda_ep
def test_edge_run_on_cuda_records_the_provider_it_ran_on(artifacts, demo_data, tmp_path):
    jsonl = tmp_path / "v.jsonl"
    proc = run_cli("edge-run", "--source", str(demo_data / "line_clip.mp4"), "--roi", "512,232,256,256",
                   "--model", str(artifacts / "model.fp16.onnx"), "--device", "cuda", "--jsonl", str(jsonl), "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = jsonl_rows(jsonl)
    verdicts = [r for r in rows if r.get("type") == "verdict"]
    assert {r["verdict"] for r in verdicts} <= {"good", "defect", "invalid"}  # invalid: a frozen frame, flagged
    assert sum(r["verdict"] != "invalid" for r in verdicts) >= len(verdicts) // 2
    assert "fp16, CUDAExecutionProvider" in proc.stderr  # the start line names the provider that is running
    proc = run_cli("edge-run", "doctor", "--device", "cuda", "--model", str(artifacts / "model.fp16.onnx"))
    assert proc.returncode == 0 and "cuda: ok" in proc.stdout, proc.stdout


@needs_cuda_ep
def test_auto_picks_the_gpu(artifacts):
    assert EdgeModel(artifacts / "model.fp32.onnx", device="auto").provider in (
        "TensorrtExecutionProvider", "CUDAExecutionProvider")


def train_sensor_models(root, device: str) -> dict:
    """The sensor LSTM, the good-only signal autoencoder and the quality MLP trained on `device`, each exported
    and gated on the CPU and scored on its test split; returns {name: the eval's metrics}."""
    from train.data.sensor_demo import make_machine, make_quality

    make_machine(root / "machine", seed=0, train_per_class=12, test_per_class=6)
    make_quality(root / "quality", seed=0)
    machine, quality = root / "machine", root / "quality"
    jobs = {
        "lstm": (["sensor", "--task", "classify", "--arch", "lstm", "--data", str(machine / "train.csv"),
                  "--epochs", "25", "--sample-rate", "1000", "--stride", "250"], "fp32,int8", machine / "test.csv"),
        "anomaly": (["sensor", "--task", "anomaly", "--data", str(machine / "train_normal.csv"), "--stride", "250",
                     "--sample-rate", "1000", "--epochs", "30"], "fp32", machine / "stream.csv"),
        "quality": (["quality", "--data", str(quality / "train.csv"), "--target", "quality", "--spec",
                     str(quality / "spec.json"), "--epochs", "60"], "fp32,int8", quality / "test.csv"),
    }
    metrics = {}
    for name, (train_args, precisions, test) in jobs.items():
        run, art = root / f"run-{name}", root / f"art-{name}"
        proc = run_cli("edge-train", *train_args, "--device", device, "--out", str(run))
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert _trained_on(run).startswith(device)
        proc = run_cli("edge-export", str(run), "--out", str(art), "--precision", precisions)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        report = json.loads((art / "export_report.json").read_text())
        assert report["artifacts"]["fp32"]["parity"]["flips"] == 0, report["artifacts"]["fp32"]
        out = root / f"{name}.eval.json"
        proc = run_cli("edge-eval", "--model", str(art / "model.fp32.onnx"), "--data", str(test), "--json", str(out))
        assert proc.returncode == 0, proc.stderr[-2000:]
        metrics[name] = json.loads(out.read_text())
    return metrics


@needs_cuda
def test_sensor_and_quality_models_train_on_cuda_and_export_on_the_cpu(tmp_path):
    # cuDNN runs the LSTM on the GPU; the checkpoint exports on the CPU with 0 fp32 flips and still decides well
    metrics = train_sensor_models(tmp_path, "cuda")
    assert metrics["lstm"]["accuracy"] >= 0.75, metrics["lstm"]
    assert metrics["anomaly"]["auroc"] >= 0.9, metrics["anomaly"]
    assert metrics["quality"]["r2"] >= 0.8 and metrics["quality"]["spec_call"]["accuracy"] >= 0.9, metrics["quality"]


@needs_cuda
def test_more_torchrun_processes_than_gpus_stop_with_a_line_naming_the_fix(demo_data, tmp_path):
    gpus = torch.cuda.device_count()
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(gpus + 1), "--master_port",
         str(free_port()), "-m", "train.cli", "classify", "--data", str(demo_data / "brick"), "--out",
         str(tmp_path / "ddp"), "--epochs", "1", "--device", "cuda"],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode != 0
    assert f"started {gpus + 1} processes on this machine but torch sees {gpus} GPU(s)" in proc.stderr, proc.stderr[-3000:]
    assert "invalid device ordinal" not in proc.stderr  # every process stops before it picks its GPU
    assert not (tmp_path / "ddp" / "model.safetensors").exists()


@needs_cuda
@pytest.mark.parametrize("job", ["sensor cnn", "sensor gru", "anomaly line", "anomaly gauss --compressed"])
def test_every_training_variant_runs_on_cuda(job, demo_data, tmp_path):
    from train.data.sensor_demo import make_machine

    if job.startswith("sensor"):
        make_machine(tmp_path / "machine", seed=0, train_per_class=4, test_per_class=1)
        args = ["sensor", "--task", "classify", "--arch", job.split()[1], "--data",
                str(tmp_path / "machine" / "train.csv"), "--epochs", "3", "--sample-rate", "1000", "--stride", "250"]
    else:  # the score is fitted on the CPU after training; --compressed adds JPEG to the CUDA training's batches
        args = ["anomaly", "--data", str(demo_data / "brick"), "--steps", "30", "--image-size", "128", "--crop", "64",
                "--score", *job.split()[1:]]
    proc = run_cli("edge-train", *args, "--device", "cuda", "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _trained_on(tmp_path / "run").startswith("cuda")
