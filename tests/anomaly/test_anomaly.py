"""Anomaly detection end to end: trained on good parts only, exported, judged by edge-eval and edge-run."""

import json
from pathlib import Path

import cv2
import numpy as np
import onnx

from clitools import one_line_error, run_cli
from edge_runtime.model import EdgeModel


def test_trained_on_good_only_with_a_threshold_calibrated_on_held_out_good_images(anomaly_run, demo_data):
    config = json.loads((anomaly_run / "config.json").read_text())
    assert config["task"] == "anomaly" and config["labels"] == ["good", "anomaly"]
    assert config["data"]["counts"] == {"good": 60}  # the defect folders next to train/good were never read
    held_out = config["validation_files"]
    assert len(held_out) == 12 and all(f.startswith("train/good/") for f in held_out)
    val = config["metrics"]["validation"]
    good = val["heldout_good"]
    # the 99th percentile of 12 scores is nearly their max; the margin of 2 spreads (max - median) sits above it
    assert good["max"] < config["threshold"] <= good["max"] + 2 * (good["max"] - good["median"]) + 1e-9
    assert "quantile 0.99 of 12 held-out" in config["threshold_rule"] and "+ 2 x" in config["threshold_rule"]


def test_calibrate_sets_a_new_threshold_from_good_images_of_the_real_camera(anomaly_run, demo_data, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(anomaly_run, run)
    weights = (run / "model.safetensors").read_bytes()
    before = json.loads((run / "config.json").read_text())
    proc = run_cli("edge-train", "calibrate", str(run), "--good", str(demo_data / "brick" / "test" / "good"),
                   "--margin", "0", "--target-frr", "0.5")
    assert proc.returncode == 0, proc.stderr
    after = json.loads((run / "config.json").read_text())
    files = after["calibration"].pop("files")  # which ones: the export judges the run on them (export.gate_set)
    assert after["calibration"] == {"source": f"16 good images in {demo_data / 'brick' / 'test' / 'good'}",
                                    "target_frr": 0.5, "margin": 0.0}
    assert len(files) == 16 and all(Path(f).parent == (demo_data / "brick" / "test" / "good").resolve() for f in files)
    assert after["threshold"] != before["threshold"] and "quantile 0.5 of 16" in after["threshold_rule"]
    assert after["threshold"] == after["metrics"]["validation"]["synthetic"]["threshold"]
    assert (run / "model.safetensors").read_bytes() == weights  # the weights stay
    line = one_line_error(run_cli("edge-train", "calibrate", str(run), "--good", str(tmp_path / "nowhere")))
    assert "does not exist" in line
    line = one_line_error(run_cli("edge-train", "calibrate", str(run), "--bad", str(tmp_path / "nowhere")))
    assert "--bad" in line and "not a folder" in line


def test_artifact_carries_score_heat_map_and_threshold(anomaly_artifacts):
    for precision in ("fp32", "int8"):
        path = anomaly_artifacts / f"model.{precision}.onnx"
        graph = onnx.load(str(path))
        meta = {p.key: p.value for p in graph.metadata_props}
        assert meta["task"] == "anomaly" and float(meta["threshold"]) > 0 and "held-out good" in meta["threshold_rule"]
        model = EdgeModel(path)
        score, heat = model.run(np.zeros((3, 128, 128, 3), np.uint8))
        assert score.shape == (3,) and heat.shape == (3, 128, 128)
        assert 0 <= heat.min() and heat.max() <= 1
    report = json.loads((anomaly_artifacts / "export_report.json").read_text())
    parity = report["artifacts"]["int8"]["parity"]
    assert parity["metric_name"] == "auroc" and parity["count"] >= 20
    assert "other_outputs_max_abs_error" in parity  # the heat map's error is reported too
    fp32 = report["artifacts"]["fp32"]["parity"]
    # the heat map is gated on the synthetic anomalies' masks: INT8 more than half a point below fp32 fails
    # (this tiny model is exported with force, so a failure is stamped rather than refused)
    assert 0.5 < fp32["pixel_auroc"] <= 1
    drop = fp32["pixel_auroc"] - parity["pixel_auroc"]
    assert ("pixel_auroc" in report["artifacts"]["int8"]["gate"]) == (drop > 0.005), (drop, report["artifacts"]["int8"]["gate"])
    assert "pixel_auroc" in (anomaly_artifacts / "export_report.md").read_text()
    # a layer that alone adds >= 20 dB of INT8 error is not left quantized with nothing kept in float: in an
    # anomaly model not even when quantizing it is faster (--dominant-layer auto chooses by speed elsewhere)
    from export.run_export import DOMINANT_LOSS_DB

    quant = report["int8"]
    assert quant["excluded_nodes"] or all(r["added_loss_db"] < DOMINANT_LOSS_DB for r in quant["layers"])


def test_edge_eval_reports_image_and_pixel_metrics_per_kind_and_under_disturbances(anomaly_artifacts, demo_data,
                                                                                   tmp_path):
    out = tmp_path / "eval.json"
    proc = run_cli("edge-eval", "--model", str(anomaly_artifacts / "model.int8.onnx"), "--data",
                   str(demo_data / "brick"), "--perturb", "noise,shift,jpeg", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(out.read_text())
    assert set(metrics["per_kind"]) == {"crack", "hole", "scratch", "stain"}
    for key in ("image_auroc", "pixel_auroc", "pro", "f1", "false_reject_rate", "escape_rate"):
        assert 0.0 <= metrics[key] <= 1.0, key
    # A model that learnt nothing scores 0.5; even this few-second model must see the holes.
    assert metrics["per_kind"]["hole"]["image_auroc"] > 0.9 and metrics["pixel_auroc"] > 0.65
    assert set(metrics["disturbed"]) == {"noise", "shift", "jpeg"}
    assert "delta_image_auroc" in metrics["disturbed"]["noise"]
    assert "pixel AUROC" in proc.stdout and "under noise" in proc.stdout


def test_edge_run_saves_frame_and_heat_map_for_each_reject(anomaly_artifacts, demo_data, tmp_path):
    rejects, log = tmp_path / "rejects", tmp_path / "verdicts.jsonl"
    proc = run_cli("edge-run", "--source", str(demo_data / "brick" / "test" / "hole"), "--model",
                   str(anomaly_artifacts / "model.fp32.onnx"), "--save-defects", str(rejects), "--jsonl", str(log),
                   "--quiet", "--frozen-frames", "0", "--max-age-ms", "0")  # a loaded machine must not flag stale
    assert proc.returncode == 0, proc.stderr
    verdicts = [r for r in map(json.loads, log.read_text().splitlines()) if r["type"] == "verdict"]
    rejected = [r for r in verdicts if r["verdict"] == "defect"]
    assert len(verdicts) == 8 and len(rejected) >= 6, [(r["verdict"], r["score"], r["flags"]) for r in verdicts]
    assert all(r["label"] == "anomaly" and 0 <= r["score"] <= 1 for r in rejected)
    heat = sorted(rejects.glob("*_heatmap.png"))
    assert len(heat) == len(rejected)
    first = cv2.imread(str(heat[0]), cv2.IMREAD_GRAYSCALE)
    assert first.shape == (128, 128) and first.max() > 1.5 * np.median(first)  # the hole is hotter than the surface
    # the overlay --show, the web viewer and the saved reject draw: this heat map blended over the frame, more
    # opaque where it is hotter (below the verdict text, within JPEG's error)
    from edge_runtime.overlay import overlay_heatmap

    raw = cv2.imread(str(heat[0]).replace("_heatmap.png", ".png"))
    drawn = cv2.imread(str(heat[0]).replace("_heatmap.png", "_annotated.jpg")).astype(int)
    expected = raw.copy()
    overlay_heatmap(expected, first / 255.0, (0, 0, raw.shape[1], raw.shape[0]))
    below = slice(raw.shape[0] // 2, raw.shape[0] - 4), slice(4, raw.shape[1] - 4)  # clear of text and box
    assert np.abs(drawn[below] - expected[below]).mean() < 6
    change = np.abs(drawn - raw.astype(int)).sum(axis=2)
    level = cv2.resize(first, (raw.shape[1], raw.shape[0]))
    hot, cold = level >= np.percentile(level, 99), level <= np.percentile(level, 25)
    assert change[hot].mean() > 1.5 * change[cold].mean()


def test_model_without_threshold_is_refused_in_one_line(anomaly_artifacts, demo_data, tmp_path):
    graph = onnx.load(str(anomaly_artifacts / "model.fp32.onnx"))
    kept = [p for p in graph.metadata_props if p.key != "threshold"]
    del graph.metadata_props[:]
    graph.metadata_props.extend(kept)
    broken = tmp_path / "no_threshold.onnx"
    onnx.save(graph, str(broken))
    proc = run_cli("edge-run", "--source", str(demo_data / "brick" / "test" / "good"), "--model", str(broken))
    assert "lacks metadata threshold" in one_line_error(proc)


def test_bad_anomaly_data_gets_one_clear_line(demo_data, tmp_path):
    few = tmp_path / "few"
    few.mkdir()
    for src in sorted((demo_data / "brick" / "train" / "good").iterdir())[:4]:
        (few / src.name).write_bytes(src.read_bytes())
    line = one_line_error(run_cli("edge-train", "anomaly", "--data", str(few), "--out", str(tmp_path / "r")))
    assert "4 good images" in line and "at least 10" in line
    capital = tmp_path / "capital" / "train" / "Good"  # folder names are case-sensitive
    capital.mkdir(parents=True)
    for src in sorted((demo_data / "brick" / "train" / "good").iterdir())[:10]:
        (capital / src.name).write_bytes(src.read_bytes())
    line = one_line_error(run_cli("edge-train", "anomaly", "--data", str(tmp_path / "capital"), "--out",
                                  str(tmp_path / "r")))
    assert "0 good images (folders with images: train/Good)" in line
    mixed = tmp_path / "mixed"  # every other image twice as wide: a training set of crops in different shapes
    mixed.mkdir()
    for i, src in enumerate(sorted((demo_data / "brick" / "train" / "good").iterdir())[:12]):
        image = cv2.imread(str(src))
        cv2.imwrite(str(mixed / src.name), cv2.resize(image, (image.shape[1] * 2, image.shape[0])) if i % 2 else image)
    proc = run_cli("edge-train", "anomaly", "--data", str(mixed), "--steps", "2", "--score", "line",
                   "--out", str(tmp_path / "m"))
    assert proc.returncode == 0, proc.stderr
    assert "warning: the images' width/height runs from 1.00 to 2.00" in proc.stderr
    brick = str(demo_data / "brick")
    line = one_line_error(run_cli("edge-train", "anomaly", "--data", brick, "--crop", "300", "--out", str(tmp_path / "r")))
    assert "300px crop does not fit in a 256px image" in line
    # a wrong --bad stops before the training it would otherwise have waited for: --steps 100000 would take hours
    line = one_line_error(run_cli("edge-train", "anomaly", "--data", brick, "--bad", str(tmp_path / "nowhere"),
                                  "--steps", "100000", "--out", str(tmp_path / "r"), timeout=120))
    assert "--bad" in line and "not a folder" in line and not (tmp_path / "r").exists()


def test_edge_eval_refuses_a_test_set_without_good_images_or_with_foreign_masks(anomaly_artifacts, demo_data,
                                                                                tmp_path):
    model = str(anomaly_artifacts / "model.fp32.onnx")
    no_good = tmp_path / "no_good"
    (no_good / "test" / "hole").mkdir(parents=True)
    src = sorted((demo_data / "brick" / "test" / "hole").iterdir())[0]
    (no_good / "test" / "hole" / src.name).write_bytes(src.read_bytes())
    assert "no good test images" in one_line_error(run_cli("edge-eval", "--model", model, "--data", str(no_good)))

    wrong = tmp_path / "wrong_mask"
    for part in ("test/good", "test/hole", "ground_truth/hole"):
        (wrong / part).mkdir(parents=True)
    good = sorted((demo_data / "brick" / "test" / "good").iterdir())[0]
    (wrong / "test" / "good" / good.name).write_bytes(good.read_bytes())
    (wrong / "test" / "hole" / src.name).write_bytes(src.read_bytes())
    cv2.imwrite(str(wrong / "ground_truth" / "hole" / f"{src.stem}_mask.png"), np.zeros((40, 128), np.uint8))
    line = one_line_error(run_cli("edge-eval", "--model", model, "--data", str(wrong)))
    assert "masks must cover the image" in line


def test_masks_as_class_indices_or_empty_and_a_cut_jpeg_are_read_for_what_they_are(anomaly_artifacts, demo_data,
                                                                                  tmp_path):
    """0/1 masks (labelling tools) were read as empty by `> 127`; a cut JPEG was scored with its missing part grey."""
    def subset(name: str, mask_scale: int) -> Path:
        root = tmp_path / name
        for part in ("test/good", "test/hole", "ground_truth/hole"):
            (root / part).mkdir(parents=True)
        for kind in ("good", "hole"):
            for src in sorted((demo_data / "brick" / "test" / kind).iterdir())[:6]:
                (root / "test" / kind / src.name).write_bytes(src.read_bytes())
                mask = demo_data / "brick" / "ground_truth" / kind / f"{src.stem}_mask.png"
                if kind == "hole":
                    gray = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)
                    cv2.imwrite(str(root / "ground_truth" / kind / mask.name), (gray > 127).astype(np.uint8) * mask_scale)
        return root

    def evaluate(root: Path) -> dict:
        out = root / "eval.json"
        proc = run_cli("edge-eval", "--model", str(anomaly_artifacts / "model.fp32.onnx"), "--data", str(root),
                       "--json", str(out))
        assert proc.returncode == 0, proc.stderr
        return json.loads(out.read_text())

    as_1 = subset("m1", 1)
    upper = sorted((as_1 / "ground_truth" / "hole").iterdir())[0]
    upper.rename(upper.with_suffix(".PNG"))  # as some labelling tools write them
    as_255, as_1 = evaluate(subset("m255", 255)), evaluate(as_1)
    assert as_255["masks_missing"] == as_1["masks_missing"] == 0
    assert as_1["pixel_auroc"] == as_255["pixel_auroc"] and as_1["pro"] == as_255["pro"]
    empty = subset("empty", 255)
    first = sorted((empty / "ground_truth" / "hole").iterdir())[0]
    cv2.imwrite(str(first), np.zeros((256, 256), np.uint8))
    assert evaluate(empty)["masks_missing"] == 1  # not a defect image whose every pixel is good
    cut = sorted((empty / "test" / "good").iterdir())[0]
    whole = cv2.imencode(".jpg", cv2.imread(str(cut)))[1].tobytes()
    cut.unlink()
    (cut.parent / f"{cut.stem}.jpg").write_bytes(whole[: len(whole) // 3])
    line = one_line_error(run_cli("edge-eval", "--model", str(anomaly_artifacts / "model.fp32.onnx"), "--data",
                                  str(empty)))
    assert f"cannot read image {cut.parent / cut.stem}.jpg" in line


def test_plain_folder_of_good_images_trains_and_mixed_sizes_and_grayscale_are_handled(demo_data, tmp_path):
    folder = tmp_path / "good_photos"
    folder.mkdir()
    for i, src in enumerate(sorted((demo_data / "brick" / "train" / "good").iterdir())[:12]):
        image = cv2.imread(str(src))
        if i % 3 == 1:
            image = cv2.resize(image, (160, 100))  # another size and aspect
        if i % 3 == 2:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)  # a grayscale camera
        cv2.imwrite(str(folder / f"{i:02d}.png"), image)
    out = tmp_path / "run"
    proc = run_cli("edge-train", "anomaly", "--data", str(folder), "--out", str(out), "--steps", "3",
                   "--image-size", "64", "--crop", "32", "--bad", str(demo_data / "brick" / "test" / "hole"))
    assert proc.returncode == 0, proc.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["counts"] == {"good": 12} and "bad_auroc" in config["metrics"]["validation"]
    assert "--bad AUROC" in proc.stdout
