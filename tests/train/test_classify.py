"""Training: safe checkpoints with their own arguments, honest validation, DDP under torchrun."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch

from clitools import ROOT, free_port, one_line_error, run_cli
from edge_runtime.decision import decide
from edge_runtime.metadata import ModelInfo


def test_checkpoint_is_safetensors_plus_json(trained_run):
    assert sorted(p.name for p in trained_run.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((trained_run / "config.json").read_text())
    assert config["task"] == "classify" and config["labels"][0] == "good"
    assert config["model"]["args"]["num_classes"] == len(config["labels"])
    validation = config["metrics"]["validation"]
    assert set(validation["per_class"]) == set(config["labels"])
    assert np.array(validation["confusion_matrix"]).shape == (len(config["labels"]),) * 2
    assert len(config["validation_files"]) == validation["count"]
    assert config["data"]["sha256"] and len(config["data"]["sha256"]) == 64


def test_checkpoint_reloads_without_pickle_and_learned_something(trained_run):
    from train.checkpoint import load_checkpoint
    from train.images import validation_set

    model, config = load_checkpoint(trained_run)
    _, val = validation_set(config)
    with torch.inference_mode():
        probs = model(torch.from_numpy(val.images)).numpy()
    info = ModelInfo(task="classify", labels=config["labels"], threshold=config["threshold"], precision="fp32")
    pred = [d.label for d in decide(probs, info)]
    accuracy = float(np.mean([p == config["labels"][t] for p, t in zip(pred, val.targets)]))
    assert accuracy == config["metrics"]["validation"]["accuracy"]
    assert accuracy > 1.5 / len(config["labels"])  # clearly better than guessing after 8 short epochs


def test_good_only_data_is_refused_with_a_hint(demo_data, tmp_path):
    shutil.copytree(demo_data / "brick" / "train" / "good", tmp_path / "data" / "train" / "good")
    line = one_line_error(run_cli("edge-train", "classify", "--data", str(tmp_path / "data"), "--out",
                                  str(tmp_path / "run"), "--epochs", "1"))
    assert "edge-train anomaly" in line


def test_missing_data_folder_is_one_line(tmp_path):
    one_line_error(run_cli("edge-train", "classify", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r")))


def test_same_loop_runs_under_torchrun_ddp_with_two_cpu_processes(demo_data, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()), "-m",
         "train.cli", "classify", "--data", str(demo_data / "brick"), "--out", str(out), "--epochs", "1",
         "--device", "cpu"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["processes"] == 2
    assert proc.stdout.count("checkpoint:") == 1  # only rank 0 reports


def test_training_sees_what_a_line_camera_varies():
    """The classifier trains on a line camera's exposure, noise and focus changes (LINE_CAMERA); the mild set
    made good bricks read as scratched under sigma-8 noise (README, edge-train)."""
    from train.augment import augment

    flat = torch.full((64, 32, 32, 3), 128, dtype=torch.uint8)
    line = augment(flat, torch.Generator().manual_seed(0)).float()
    mild = augment(flat, torch.Generator().manual_seed(0), camera={}).float()
    noise = lambda x: (x - x.mean(dim=(1, 2, 3), keepdim=True)).std(dim=(1, 2, 3))  # noqa: E731
    assert noise(line).max() > 6 and noise(mild).max() < 3.5  # sensor noise up to sigma 10 against 3
    assert np.ptp(line.mean(dim=(1, 2, 3)).numpy()) > 50  # exposure ±30 % on top of brightness ±15
