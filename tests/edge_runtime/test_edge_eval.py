"""edge-eval measures the deployed artifact on the untouched test split."""

import json

from clitools import one_line_error, run_cli
from image_models import nan_classifier


def test_eval_writes_metrics_named_for_scripts(demo_data, artifacts, tmp_path):
    out = tmp_path / "eval.json"
    proc = run_cli("edge-eval", "--model", str(artifacts / "model.int8.onnx"), "--data", str(demo_data / "brick"),
                   "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(out.read_text())
    classes = sorted(p.name for p in (demo_data / "brick" / "test").iterdir())
    assert sorted(metrics["per_class"]) == classes
    total = sum(len(list((demo_data / "brick" / "test" / c).iterdir())) for c in classes)
    assert metrics["count"] == total == sum(map(sum, metrics["confusion_matrix"]))
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert metrics["model"]["precision"] == "int8"
    assert "confusion" in proc.stdout


def test_eval_refuses_classes_the_model_does_not_know(artifacts, demo_data, tmp_path):
    import shutil

    shutil.copytree(demo_data / "brick" / "test" / "good", tmp_path / "test" / "rust")
    line = one_line_error(run_cli("edge-eval", "--model", str(artifacts / "model.int8.onnx"), "--data", str(tmp_path)))
    assert "rust" in line


def test_eval_wrong_layout_is_one_line(artifacts, tmp_path):
    (tmp_path / "loose.png").write_bytes(b"")
    line = one_line_error(run_cli("edge-eval", "--model", str(artifacts / "model.int8.onnx"), "--data", str(tmp_path)))
    assert "class folders" in line


def test_eval_of_an_image_model_on_a_file_or_with_a_sensor_baseline_is_one_line(artifacts, demo_data, tmp_path):
    series = tmp_path / "series.csv"
    series.write_text("a,label\n1,ok\n")
    model = str(artifacts / "model.int8.onnx")
    line = one_line_error(run_cli("edge-eval", "--model", model, "--data", str(series)))
    assert "is a file" in line and "sensor model" in line
    line = one_line_error(run_cli("edge-eval", "--model", model, "--data", str(demo_data / "brick"),
                                  "--baseline-train", str(series)))
    assert "--baseline-train" in line and "task: classify" in line


def test_eval_perturb_names_empty_repeated_or_all_in_a_list_are_one_line(artifacts, demo_data):
    evaluate = lambda names: run_cli("edge-eval", "--model", str(artifacts / "model.int8.onnx"),  # noqa: E731
                                     "--data", str(demo_data / "brick"), "--perturb", names)
    for names, said in (("noise,noise", "repeats noise: give each once"), ("", "has an empty item"),
                        ("noise,", "has an empty item: give noise, shift")):  # noise twice ran it twice
        assert said in one_line_error(evaluate(names))
    assert "all stands alone" in one_line_error(evaluate("all,noise"))


def test_eval_refuses_an_image_too_small_to_hold_a_part(artifacts, tmp_path):
    import cv2
    import numpy as np

    (tmp_path / "test" / "good").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "test" / "good" / "tiny.png"), np.zeros((5, 5, 3), np.uint8))
    line = one_line_error(run_cli("edge-eval", "--model", str(artifacts / "model.int8.onnx"), "--data", str(tmp_path)))
    assert "tiny.png is 5x5, under 8 px a side" in line


def test_a_nan_output_counts_as_a_rejected_miss_never_as_good(tmp_path):
    # NaN >= threshold is False: the rule alone had passed every such part as good, and counted it correct
    import cv2
    import numpy as np

    data = tmp_path / "data"
    for label, levels in (("good", (20, 20, 180)), ("bad", (180, 180))):  # 180: the model outputs NaN
        (data / "test" / label).mkdir(parents=True)
        for i, level in enumerate(levels):
            cv2.imwrite(str(data / "test" / label / f"{i}.png"), np.full((128, 128, 3), level, np.uint8))
    out = tmp_path / "eval.json"
    proc = run_cli("edge-eval", "--model", str(nan_classifier(tmp_path)), "--data", str(data), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(out.read_text())
    assert metrics["no_verdict"] == 3 and metrics["count"] == 5
    assert metrics["confusion_matrix"] == [[2, 0], [0, 0]]  # the two dark good parts, judged good
    assert metrics["accuracy"] == 0.4 and metrics["per_class"]["bad"]["accuracy"] == 0.0
    assert metrics["false_reject_rate"] == 1 / 3 and metrics["escape_rate"] == 0.0
    assert "no verdict 3" in proc.stdout
