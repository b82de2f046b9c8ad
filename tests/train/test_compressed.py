"""--compressed: JPEG joins the camera variation, for a line that runs on a compressed stream."""

import json

import numpy as np
import torch

from clitools import run_cli
from train.augment import photometric


def test_jpeg_in_the_camera_variation_leaves_its_blocks_and_nothing_else_changes():
    rng = np.random.default_rng(0)
    batch = torch.from_numpy(rng.integers(0, 256, (6, 64, 64, 3), dtype=np.uint8))
    plain = photometric(batch, torch.Generator().manual_seed(1), noise=8.0)
    compressed = photometric(batch, torch.Generator().manual_seed(1), noise=8.0, jpeg=1.0)
    assert compressed.shape == plain.shape and compressed.dtype == torch.uint8
    diff = (compressed.float() - plain.float()).abs().mean(dim=(1, 2, 3))
    assert bool((diff > 2).all()) and bool((diff < 60).all())  # every image went through JPEG, none was replaced
    again = photometric(batch, torch.Generator().manual_seed(1), noise=8.0, jpeg=0.0)
    assert torch.equal(again, plain)  # without --compressed the training draws exactly what it drew before


def test_edge_train_anomaly_compressed_is_recorded_with_the_run(demo_data, tmp_path):
    run = tmp_path / "run"
    proc = run_cli("edge-train", "anomaly", "--data", str(demo_data / "brick"), "--out", str(run), "--steps", "2",
                   "--image-size", "64", "--crop", "64", "--compressed", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["compressed"] is True
    # brick is a surface, but only the line score learns compression: --score auto keeps it
    assert config["model"]["args"]["score"] == "line" and "--compressed" in config["score_choice"]["why"]
