"""score="gauss": the good images' first features as one Gaussian; a colour or fine texture no good cell has
scores high where it is, on any trained or untrained net, and the ONNX graph keeps only what the score reads."""

import json

import numpy as np
import onnx
import torch

from clitools import run_cli
from edge_runtime.model import EdgeModel
from train.models.anomaly_net import SurfaceNet, fit_gaussian


def _grass(rng, n: int) -> np.ndarray:
    """Green texture: random blades of a few greens on a darker green ground, 64 x 64."""
    images = np.zeros((n, 64, 64, 3), np.uint8)
    images[:] = (40, 90, 30)
    for image in images:
        for _ in range(60):
            y, x = rng.integers(0, 60, 2)
            image[y : y + rng.integers(2, 5), x : x + rng.integers(1, 3)] = (60 + rng.integers(0, 40), 140 + rng.integers(0, 60), 50)
    return images


def test_a_stroke_of_a_foreign_colour_scores_above_every_good_image_and_the_map_points_at_it():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = SurfaceNet([0.2, 0.5, 0.15], [0.1, 0.2, 0.1], width=8, score="gauss").eval()
    summary = fit_gaussian(net, _grass(rng, 40))
    assert summary["distance_q999"] > summary["distance_median"]
    good = _grass(rng, 10)
    bad = good.copy()
    bad[:, 30:34, 10:50] = (200, 40, 160)  # a magenta stroke: no good pixel has this colour
    with torch.inference_mode():
        good_scores, _ = net(torch.from_numpy(good))
        bad_scores, bad_maps = net(torch.from_numpy(bad))
    assert float(bad_scores.min()) > float(good_scores.max())
    assert bad_maps.shape == (10, 64, 64) and 0 <= float(bad_maps.min()) and float(bad_maps.max()) < 1
    inside, outside = bad_maps[:, 28:36, 12:48].mean(), bad_maps[:, 44:, :].mean()
    assert float(inside) > 3 * float(outside)


def test_edge_train_score_gauss_exports_only_the_features_it_reads(demo_data, tmp_path):
    run, art = tmp_path / "run", tmp_path / "art"
    proc = run_cli("edge-train", "anomaly", "--data", str(demo_data / "brick"), "--out", str(run), "--steps", "20",
                   "--image-size", "128", "--crop", "64", "--score", "gauss", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["args"]["score"] == "gauss" and config["gaussian"]["pixels"] > 1000
    assert 0 < config["threshold"] < 1
    # the station's own good images: fit the Gaussian again on 4 of every 5, the threshold from the fifth
    before = (run / "model.safetensors").read_bytes()
    proc = run_cli("edge-train", "calibrate", str(run), "--good", str(demo_data / "brick" / "train" / "good"), "--refit")
    assert proc.returncode == 0, proc.stderr[-2000:]
    refit = json.loads((run / "config.json").read_text())
    assert "train/good" in refit["gaussian"]["source"] and "refit the Gaussian" in refit["calibration"]["source"]
    assert (run / "model.safetensors").read_bytes() != before
    proc = run_cli("edge-export", str(run), "--out", str(art), "--precision", "fp32", "--force")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    convs = [n for n in onnx.load(str(art / "model.fp32.onnx")).graph.node if n.op_type == "Conv"]
    assert len(convs) == 4  # stem, enc1, the whitening 1x1, the 8 line kernels (one Conv): no decoder
    report = json.loads((art / "export_report.json").read_text())
    assert report["artifacts"]["fp32"]["parity"]["flips"] == 0
    model = EdgeModel(art / "model.fp32.onnx")
    score, heat = model.run(model.blank_input(2) + 128)
    assert score.shape == (2,) and heat.shape == (2, 128, 128)


def test_refit_of_a_line_score_run_is_one_line(anomaly_run, demo_data):
    config_before = (anomaly_run / "config.json").read_text()
    proc = run_cli("edge-train", "calibrate", str(anomaly_run), "--good", str(demo_data / "brick" / "test" / "good"),
                   "--refit")
    assert proc.returncode != 0 and "--refit fits a --score gauss run" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert (anomaly_run / "config.json").read_text() == config_before
