"""score="gauss": the good images' first features as one Gaussian; a colour or fine texture no good cell has
scores high where it is, on any trained or untrained net, and the ONNX graph keeps only what the score reads."""

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from clitools import one_line_error, run_cli
from edge_runtime.model import EdgeModel
from train.anomaly import calibrate
from train.models.anomaly_net import NOISE_LEVELS, SurfaceNet, fit_gaussian, white_noise


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
    net = SurfaceNet([0.2, 0.5, 0.15], [0.1, 0.2, 0.1], width=8, score="gauss", noise_levels=NOISE_LEVELS).eval()
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


def _scores(net, images):
    with torch.inference_mode():
        return net(torch.from_numpy(images))[0].numpy()


def test_sensor_noise_and_a_dimmer_lamp_leave_good_parts_good_while_the_stroke_still_rejects():
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    train, held, test = _grass(rng, 60), _grass(rng, 20), _grass(rng, 10)
    adaptive = SurfaceNet([0.2, 0.5, 0.15], [0.1, 0.2, 0.1], width=8, score="gauss", noise_levels=NOISE_LEVELS).eval()
    fixed = SurfaceNet([0.2, 0.5, 0.15], [0.1, 0.2, 0.1], width=8, score="gauss", noise_levels=[0.0]).eval()
    fixed.load_state_dict({k: v for k, v in adaptive.state_dict().items() if k.startswith(("stem", "enc1"))},
                          strict=False)  # the same features: only the noise levels differ
    for net in (adaptive, fixed):
        fit_gaussian(net, train)
    noisy = white_noise(test, 16.0, seed=5)
    bad = test.copy()
    bad[:, 30:34, 10:50] = (200, 40, 160)
    threshold, _ = calibrate(_scores(adaptive, held), 0.01, 2.0)
    assert _scores(adaptive, white_noise(test, 8.0, seed=4)).max() < threshold  # σ 8 noise: every good part passes
    assert _scores(adaptive, noisy).max() < threshold  # and σ 16
    assert _scores(adaptive, (test * 0.75).astype(np.uint8)).max() < threshold  # 25 % less light
    assert _scores(adaptive, white_noise(bad, 16.0, seed=6)).min() > threshold  # the stroke, under the same noise
    fixed_threshold, _ = calibrate(_scores(fixed, held), 0.01, 2.0)
    assert _scores(fixed, noisy).min() > fixed_threshold  # one clean Gaussian: the noise alone rejects them all
    # each image in a batch reads its own noise: a mixed batch scores as each image alone
    mixed = np.concatenate([test[:3], white_noise(test[3:6], 8.0, seed=7), noisy[6:], bad[:2]])
    alone = np.concatenate([_scores(adaptive, image[None]) for image in mixed])
    assert np.allclose(_scores(adaptive, mixed), alone, rtol=1e-4, atol=1e-6)


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
    station = tmp_path / "station" / "good"
    shutil.copytree(demo_data / "brick" / "train" / "good", station)
    proc = run_cli("edge-train", "calibrate", str(run), "--good", str(station), "--refit")
    assert proc.returncode == 0, proc.stderr[-2000:]
    refit = json.loads((run / "config.json").read_text())
    assert "station/good" in refit["gaussian"]["source"] and "refit the Gaussian" in refit["calibration"]["source"]
    fitted, held = refit["gaussian"]["files"], refit["calibration"]["files"]
    assert len(fitted) == 4 * len(held) and not set(fitted) & set(held)
    assert (run / "model.safetensors").read_bytes() != before
    proc = run_cli("edge-export", str(run), "--out", str(art), "--force")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    convs = [n for n in onnx.load(str(art / "model.fp32.onnx")).graph.node if n.op_type == "Conv"]
    assert len(convs) == 5  # stem, enc1, the noise estimate's whitening and high-pass, the line kernels: no decoder
    report = json.loads((art / "export_report.json").read_text())
    assert report["artifacts"]["fp32"]["parity"]["flips"] == 0
    # judged on the station's held-out fifth: each good, with a synthetic anomaly, and both under lamp and noise
    assert report["validation_count"] == 2 * 3 * len(held)
    # INT8: enc1 quantized, the Gaussian fitted again on its INT8 features and kept in float (export/gauss_int8.py)
    int8 = report["artifacts"]["int8"]
    # ...on the same station images as the run's (edge-train calibrate --refit), not the training images
    assert int8["quantization"]["gaussian_refit"]["images"] == len(fitted)
    assert int8["quantization"]["gaussian_refit"]["pixels"] > 1000
    graph = onnx.load(str(art / "model.int8.onnx")).graph
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    # enc1 reads INT8 weights; the stem's, the noise estimate's and the line kernels' convolutions stay in float
    int8_convs = [n for n in convs if n.input[1] in dequantized]
    assert len(convs) == 5 and len(int8_convs) == 1 and int8_convs[0].input[0] in dequantized
    # a refitted score gets its own threshold: the run's, moved as the rule moves on the INT8's held-out scores
    t = int8["quantization"]["threshold"]
    assert t["fp32"] == refit["threshold"] and 0 < abs(t["int8"] - t["fp32"]) < 0.1 * t["fp32"]
    assert f"{len(held)} images" in t["why"] and "refit the Gaussian" in t["why"]
    assert EdgeModel(art / "model.int8.onnx").info.threshold == pytest.approx(t["int8"])
    assert EdgeModel(art / "model.fp32.onnx").info.threshold == pytest.approx(refit["threshold"])
    model = EdgeModel(art / "model.fp32.onnx")
    score, heat = model.run(model.blank_input(2) + 128)
    assert score.shape == (2,) and heat.shape == (2, 128, 128)
    Path(fitted[0]).unlink()  # the station's images moved on: one line naming the gap and what to do
    line = one_line_error(run_cli("edge-export", str(run), "--out", str(tmp_path / "again"), "--precision", "int8"))
    assert Path(fitted[0]).name in line and "--calib" in line
    Path(held[0]).unlink()  # the gate's station images: --calib cannot stand in for them
    line = one_line_error(run_cli("edge-export", str(run), "--out", str(tmp_path / "again"), "--calib", str(station)))
    assert Path(held[0]).name in line and "edge-train calibrate" in line


def test_refit_of_a_line_score_run_is_one_line(anomaly_run, demo_data):
    config_before = (anomaly_run / "config.json").read_text()
    proc = run_cli("edge-train", "calibrate", str(anomaly_run), "--good", str(demo_data / "brick" / "test" / "good"),
                   "--refit")
    assert proc.returncode != 0 and "--refit fits a --score gauss run" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert (anomaly_run / "config.json").read_text() == config_before


def test_a_gauss_run_from_before_the_noise_levels_is_refused_in_one_line(tmp_path, demo_data):
    run = tmp_path / "run"
    proc = run_cli("edge-train", "anomaly", "--data", str(demo_data / "brick"), "--out", str(run), "--steps", "2",
                   "--image-size", "64", "--crop", "64", "--score", "gauss", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = json.loads((run / "config.json").read_text())
    del config["model"]["args"]["noise_levels"]  # how a run written before 2026-11-28 reads
    (run / "config.json").write_text(json.dumps(config))
    proc = run_cli("edge-export", str(run), "--out", str(tmp_path / "art"))
    assert proc.returncode != 0 and "predates the noise-adaptive Gaussian" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "art").exists()
