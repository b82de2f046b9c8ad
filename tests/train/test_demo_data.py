"""The demo data: real surfaces, masks that match, honest splits, deterministic, a readable clip."""

import json

import cv2
import numpy as np
import torch

from clitools import one_line_error, run_cli
from train.data.defects import DEFECTS
from train.data.surfaces import TEST_REGION, TRAIN_REGION, crop_part, load_surface

SMALL = ["--surfaces", "gravel", "--train-good", "3", "--train-defect", "2", "--test-good", "2", "--test-defect", "2",
         "--no-clip"]


def test_layout_and_masks(demo_data):
    root = demo_data / "brick"
    assert sorted(p.name for p in (root / "test").iterdir()) == sorted(["good", *DEFECTS])
    assert sorted(p.name for p in (root / "train").iterdir()) == sorted(["good", *DEFECTS])
    assert not (root / "ground_truth" / "good").exists()
    for kind in DEFECTS:
        for image_path in (root / "test" / kind).iterdir():
            mask = cv2.imread(str(root / "ground_truth" / kind / f"{image_path.stem}_mask.png"), cv2.IMREAD_GRAYSCALE)
            image = cv2.imread(str(image_path))
            assert mask is not None and mask.shape == image.shape[:2]
            assert 0 < (mask > 0).mean() < 0.5
            assert set(np.unique(mask)) <= {0, 255}


def test_defect_changes_only_where_its_mask_says():
    rng = np.random.default_rng(3)
    part = crop_part(load_surface("grass"), rng, TRAIN_REGION)
    for kind, make in DEFECTS.items():
        before = part.copy()
        defective, mask = make(part, rng)
        assert np.array_equal(part, before)  # input untouched
        changed = np.abs(defective.astype(int) - part.astype(int)).max(axis=2) > 12
        assert changed.any(), kind
        grown = cv2.dilate(mask, np.ones((5, 5), np.uint8)) > 0
        assert changed[~grown].mean() < 0.01, kind  # visible change lies inside the mask


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert run_cli("edge-data", "demo", "--out", str(tmp_path / name), "--seed", seed, *SMALL).returncode == 0
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert files
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    assert any((tmp_path / "a" / f).read_bytes() != (tmp_path / "c" / f).read_bytes() for f in files)


def test_a_smaller_run_into_the_same_folder_leaves_no_earlier_image(tmp_path):
    out = tmp_path / "demo"
    assert run_cli("edge-data", "demo", "--out", str(out), *SMALL).returncode == 0
    smaller = ["--surfaces", "gravel", "--train-good", "1", "--train-defect", "0", "--test-good", "2",
               "--test-defect", "1", "--no-clip", "--seed", "1"]
    assert run_cli("edge-data", "demo", "--out", str(out), *smaller).returncode == 0
    on_disk = {(p.parent.relative_to(out).as_posix(), p.name) for p in out.rglob("*.png")}
    assert ("gravel/train/good", "000.png") in on_disk and ("gravel/train/good", "001.png") not in on_disk
    assert not (out / "gravel" / "train" / "crack").exists()  # an empty class folder reads as a class
    assert ("gravel/test/crack", "001.png") not in on_disk
    assert ("gravel/ground_truth/crack", "001_mask.png") not in on_disk
    assert len([f for f in on_disk if f[0].startswith("gravel/test/")]) == 2 + len(DEFECTS)  # as demo.json says


def test_train_and_test_crops_come_from_disjoint_columns():
    assert TRAIN_REGION[1] <= TEST_REGION[0]
    rng = np.random.default_rng(0)
    surface = load_surface("brick")
    assert crop_part(surface, rng, TEST_REGION).shape == (128, 128, 3)


def test_clip_frames_match_truth_and_parts_sit_in_the_roi(demo_data):
    info = json.loads((demo_data / "line_clip.json").read_text())
    rows = [line.split(",") for line in (demo_data / "line_clip.csv").read_text().splitlines()[1:]]
    capture = cv2.VideoCapture(str(demo_data / "line_clip.mp4"))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == len(rows) == info["frames"]
    assert frames[0].shape == (info["height"], info["width"], 3)
    x, y, w, h = info["roi"]
    in_position = [int(r[0]) for r in rows if r[2] == "1"]
    belt = frames[in_position[0]][y : y + h, 20:20 + w].astype(float)
    part = frames[in_position[0]][y : y + h, x : x + w].astype(float)
    assert np.abs(part.mean(axis=(0, 1)) - belt.mean(axis=(0, 1))).max() > 15  # a brick part, not belt
    assert not np.array_equal(frames[1], frames[2])  # a live-looking camera, not a frozen one


def test_unknown_surface_is_one_line(tmp_path):
    line = one_line_error(run_cli("edge-data", "demo", "--out", str(tmp_path / "x"), "--surfaces", "marble", "--no-clip"))
    assert "marble" in line and "brick" in line
    for flags, expect in ((["--surfaces", "", "--no-clip"], "empty item: give one or more of brick"),
                          (["--surfaces", "brick,", "--no-clip"], "empty item"),
                          (["--surfaces", "brick,brick", "--no-clip"], "repeats brick: give each once"),
                          (["--surfaces", "brick", "--no-clip", "--clip-parts", "5"], "--clip-parts")):
        line = one_line_error(run_cli("edge-data", "demo", "--out", str(tmp_path / "x"), *flags))
        assert expect in line and not (tmp_path / "x").exists(), line


def test_outputs_under_a_file_are_refused_before_any_work(tmp_path, demo_data, trained_run, artifacts):
    """--out / --json under a regular file: one line when the flag is read, for every command that writes."""
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    under = str(blocker / "sub")
    commands = [
        ("edge-data", "demo", "--out", under, "--surfaces", "brick", "--no-clip"),
        ("edge-train", "classify", "--data", str(demo_data / "brick"), "--out", under, "--epochs", "1"),
        ("edge-eval", "--model", str(artifacts / "model.fp32.onnx"), "--data", str(demo_data / "brick"),
         "--json", under),
        ("edge-bench", "model", "--checkpoint", str(trained_run), "--artifacts", str(artifacts), "--out", under),
        *(("edge-run", "--source", str(demo_data / "line_clip.mp4"), "--model", str(artifacts / "model.fp32.onnx"),
           flag, under) for flag in ("--jsonl", "--record", "--save-defects")),
    ]
    for command in commands:
        line = one_line_error(run_cli(*command))
        assert "a_file is a file" in line, (command, line)
    assert blocker.read_text() == ""


def test_numbers_and_devices_that_cannot_be_are_one_line(tmp_path, demo_data, trained_run, artifacts):
    train = ("edge-train", "classify", "--data", str(demo_data / "brick"), "--out", str(tmp_path / "r"), "--epochs", "1")
    assert "nonsense" in one_line_error(run_cli(*train, "--device", "nonsense"))
    assert "--lr" in one_line_error(run_cli(*train, "--lr", "-1"))
    anomaly = ("edge-train", "anomaly", "--data", str(demo_data / "brick"), "--out", str(tmp_path / "a"), "--steps", "3")
    if not torch.cuda.is_available():
        assert "no GPU" in one_line_error(run_cli(*anomaly, "--device", "cuda"))
    assert "--threads" in one_line_error(run_cli("edge-eval", "--model", str(artifacts / "model.fp32.onnx"), "--data",
                                                 str(demo_data / "brick"), "--threads", "0"))
    bench = ("edge-bench", "model", "--checkpoint", str(trained_run), "--out", str(tmp_path / "b"), "--no-compile")
    assert "--batch" in one_line_error(run_cli(*bench, "--artifacts", str(artifacts), "--batch", "0"))
    (tmp_path / "empty").mkdir()
    assert "model.<precision>.onnx" in one_line_error(run_cli(*bench, "--artifacts", str(tmp_path / "empty")))
    assert not any((tmp_path / name).exists() for name in "rab")
