"""A classifier's heat map points at what made it say defect: proven on a hand-built red-spot detector (a real ONNX
graph whose answer is known), then on the trained test classifier through edge-eval --explain."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from clitools import one_line_error, run_cli
from edge_runtime.evaluate_explain import peak
from edge_runtime.explain import blank_canvases, evidence_map, patch_grid
from edge_runtime.model import EdgeModel
from image_models import image_model, red_spot_model


def test_the_map_lights_the_spot_that_made_the_call_and_stays_dark_elsewhere(tmp_path):
    model = EdgeModel(red_spot_model(tmp_path / "red.onnx"))
    grey = np.full((128, 128, 3), 120, np.uint8)  # BGR, as frames come
    spotted = grey.copy()
    cv2.circle(spotted, (30, 90), 3, (40, 40, 230), -1)  # red in BGR, centre x=30, y=90
    heat = evidence_map(model, model.prepare(spotted))
    assert heat.shape == (128, 128) and heat.dtype == np.float32
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    assert abs(x - 30) <= 13 and abs(y - 90) <= 13, (x, y)  # within half a patch of the spot
    assert heat.max() > 0.9 and heat[:40, 70:].max() < 0.01  # the spot alone brings the call back; far away, nothing
    assert evidence_map(model, model.prepare(grey)).max() < 0.01  # a good part's map stays dark, not stretched
    flat = np.zeros((96, 160), np.float32)
    flat[:40, 50:90] = 0.8  # a max-pooled model's flat top, reaching the border: argmax took its corner (0, 50)
    assert np.abs(np.subtract(peak(flat), (19.5, 69.5))).max() <= 0.5
    canvases = blank_canvases(model.prepare(spotted), 53)  # blurred, flat, and both in grey: the spot gone in all
    assert canvases.shape == (4, 128, 128, 3) and (canvases[1] == canvases[1, 0, 0]).all()
    assert all((c[..., 0] == c[..., 1]).all() and (c[..., 1] == c[..., 2]).all() for c in canvases[2:])
    assert model.infer(canvases)[:, 1].max() < 0.01
    patch, starts = patch_grid(128)
    assert patch == 26 and starts[0] == 0 and starts[-1] == 128 - patch  # the last patch ends at the edge


def test_edge_eval_explain_writes_and_scores_the_classifiers_maps(artifacts, demo_data, tmp_path):
    maps, out = tmp_path / "maps", tmp_path / "m.json"
    proc = run_cli("edge-eval", "--model", str(artifacts / "model.int8.onnx"), "--data", str(demo_data / "brick"),
                   "--explain", str(maps), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(out.read_text())
    found = metrics["explanation"]
    defects = sum(n for kind, n in _tested(demo_data).items() if kind != "good")
    assert found["maps_written"] == defects + found["false_rejects_explained"]
    good_row = metrics["confusion_matrix"][metrics["labels"].index("good")]  # rows: truth
    assert found["false_rejects_explained"] == sum(good_row) - good_row[metrics["labels"].index("good")]
    assert len(list(maps.rglob("*.png"))) == found["maps_written"]
    assert set(found["per_kind"]) == {"crack", "hole", "scratch", "stain"}
    for row in found["per_kind"].values():  # the demo writes a mask for every defect
        assert row["images_with_masks"] == 8 and row["without_mask"] == 0
        assert 0 <= row["pointing_hit_rate"] <= 1 and 0 <= row["pixel_auroc"] <= 1
    assert found["pixel_auroc"] > 0.6, found  # better than chance even for the test suite's seconds-trained model
    assert "| all | 32 |" in proc.stdout
    sheet = cv2.imread(str(next((maps / "crack").glob("*.png"))))
    assert sheet.shape[1] > 2 * 128  # the image and, beside it, the map over it


def test_explain_is_for_image_classifiers(tmp_path, demo_data):
    line = one_line_error(run_cli("edge-eval", "--model", str(image_model(tmp_path)), "--data",
                                  str(demo_data / "brick"), "--explain", str(tmp_path / "maps")))
    assert "heat maps are explained for image classifiers" in line and "pixel AUROC and PRO" in line
    assert not (tmp_path / "maps").exists()


def _tested(demo_data: Path) -> dict[str, int]:
    return {d.name: len(list(d.glob("*.png"))) for d in (demo_data / "brick" / "test").iterdir()}


def test_edge_run_explain_rejects_maps_saved_rejects_off_the_frame_loop(artifacts, demo_data, tmp_path):
    rejects, jsonl = tmp_path / "rejects", tmp_path / "v.jsonl"
    proc = run_cli("edge-run", "--source", str(demo_data / "brick" / "test" / "crack"), "--model",
                   str(artifacts / "model.int8.onnx"), "--save-defects", str(rejects), "--explain-rejects",
                   "--jsonl", str(jsonl), "--quiet")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    maps = summary["outputs"]["reject_maps"]
    saved = sorted(p.name[:-len(".json")] for p in rejects.glob("*.json"))
    assert saved and maps["delivered"] == len(saved) and maps["dropped"] == maps["failed"] == maps["pending"] == 0
    # a folder is not live: the loop waits for the maps, so every reject has one
    explained = sorted(p.name[:-len("_heatmap.png")] for p in rejects.glob("*_heatmap.png"))
    assert len(explained) == maps["delivered"] and set(explained) <= set(saved)
    heat = cv2.imread(str(rejects / f"{explained[0]}_heatmap.png"), cv2.IMREAD_GRAYSCALE)
    assert heat.shape == (128, 128) and (rejects / f"{explained[0]}_explained.jpg").is_file()
    # only with --save-defects, and only for an image classifier
    line = one_line_error(run_cli("edge-run", "--source", str(demo_data / "brick" / "test" / "crack"), "--model",
                                  str(artifacts / "model.int8.onnx"), "--explain-rejects"))
    assert "--explain-rejects has no effect without --save-defects" in line
    line = one_line_error(run_cli("edge-run", "--source", str(demo_data / "brick" / "test" / "crack"), "--model",
                                  str(image_model(tmp_path)), "--save-defects", str(tmp_path / "r2"),
                                  "--explain-rejects"))
    assert "saves its own heat map with each reject" in line


def test_reject_maps_follow_a_hot_swap_and_skip_a_reject_of_a_model_no_longer_on_disk(tmp_path):
    import os

    from edge_runtime.reject_maps import RejectMaps
    from edge_runtime.sources import Frame

    live, folder = tmp_path / "part.onnx", tmp_path / "rejects"
    folder.mkdir()
    red_spot_model(live)
    first = EdgeModel(live).sha256
    staged = red_spot_model(tmp_path / "part.onnx.new", threshold=0.4)  # another file: the next delivery
    spotted = np.full((128, 128, 3), 120, np.uint8)
    cv2.circle(spotted, (30, 90), 3, (40, 40, 230), -1)
    frame = Frame(spotted, 0, 0.0, 0.0, "test")
    record = lambda frame_id, sha: {"frame_id": frame_id, "label": "red", "verdict": "defect",  # noqa: E731
                                    "score": 0.9, "model_sha256": sha, "flags": [], "latency_ms": {}}
    with RejectMaps(folder, live, roi=None, live=False) as maps:
        maps(record(1, first), frame)
        assert maps.wait(30)
        os.replace(staged, live)  # delivered as edge-run's --watch-model expects: written beside, then renamed
        second = EdgeModel(live).sha256
        maps(record(2, second), frame)  # judged by the new model: the worker loads it
        maps(record(3, first), frame)  # judged by the old one, now gone: no map rather than another model's
        assert maps.wait(30)
    assert maps.stats() == {"delivered": 2, "dropped": 1, "failed": 0, "pending": 0, "last_error": None}
    assert sorted(p.name for p in folder.glob("*_heatmap.png")) == ["00000001_red_heatmap.png",
                                                                     "00000002_red_heatmap.png"]
    heat = cv2.imread(str(folder / "00000002_red_heatmap.png"), cv2.IMREAD_GRAYSCALE)
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    assert abs(x - 30) <= 13 and abs(y - 90) <= 13  # the new model's map, of the spot
