"""The benchmark report: its structure, its arithmetic, and that settings are really applied."""

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from clitools import BIN, one_line_error, run_cli
from sensor_models import anomaly_model

REQUIRED = ("name", "framework", "precision", "provider", "threads", "batch", "p50_ms", "p90_ms", "p99_ms",
            "throughput_per_s", "agreement")


def test_model_report_has_every_variant_and_the_machine(trained_run, artifacts, tmp_path):
    out = tmp_path / "report"
    proc = run_cli("edge-bench", "model", "--checkpoint", str(trained_run), "--artifacts", str(artifacts), "--out",
                   str(out), "--threads", "1", "--batch", "1,4", "--iters", "20")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    names = {(v["name"], v.get("batch")) for v in report["variants"]}
    assert names >= {(n, b) for n in ("torch eager fp32", "onnxruntime fp32", "onnxruntime int8") for b in (1, 4)}
    named = {v["name"] for v in report["variants"]}
    assert {"openvino fp32", "openvino int8", "torch compile fp32"} <= named  # measured, or skipped with a reason
    for variant in report["variants"]:
        if "skipped" in variant:
            assert variant["skipped"]
            continue
        for key in REQUIRED:
            assert key in variant, key
        assert variant["threads"] == 1
        assert variant["p50_ms"] <= variant["p90_ms"] <= variant["p99_ms"]
    torch_rows = [v for v in report["variants"] if v["name"] == "torch eager fp32"]
    assert all(v["agreement"] == 1.0 and v["speedup_vs_torch"] == 1.0 for v in torch_rows)
    env = report["environment"]
    assert env["threads"] == 1 and env["cpu"]["model"] and "flags" in env["cpu"] and env["versions"]["onnxruntime"]
    assert "| onnxruntime int8 |" in (out / "report.md").read_text()
    # ORT's per-call floor bounds every ORT variant from below (a model does more than Identity)
    floor = report["ort_call_floor_ms_batch1"]
    ort_rows = [v for v in report["variants"] if v["name"].startswith("onnxruntime") and v.get("batch") == 1]
    assert 0 < floor and all(floor < v["p50_ms"] for v in ort_rows if "p50_ms" in v)
    assert "call floor" in (out / "report.md").read_text()


def test_latency_stats_on_known_samples():
    from benchmarks.latency import latency_stats

    stats = latency_stats(list(range(1, 101)), batch=4)  # 1..100 ms
    assert stats["p50_ms"] == pytest.approx(50.5)
    assert stats["p90_ms"] == pytest.approx(90.1)
    assert stats["p99_ms"] == pytest.approx(99.01)
    assert stats["max_ms"] == 100
    assert stats["throughput_per_s"] == pytest.approx(4 * 1000 / 50.5, rel=1e-3)


def test_thread_setting_reaches_both_frameworks(trained_run, artifacts, monkeypatch):
    import torch

    from benchmarks import model_bench
    from edge_runtime.model import EdgeModel

    sessions = []
    real_init = EdgeModel.__init__

    def spy(self, *args, **kwargs):  # records the real sessions the benchmark built
        real_init(self, *args, **kwargs)
        sessions.append(self.session)

    monkeypatch.setattr(EdgeModel, "__init__", spy)
    torch.set_num_threads(2)
    model_bench.bench_model(str(trained_run), str(artifacts), threads=1, batches=(1,), warmup=2, iters=10,
                            compile_torch=False)
    assert torch.get_num_threads() == 1
    assert sessions and all(s.get_session_options().intra_op_num_threads == 1 for s in sessions)


def _report(p50_int8: float, agreement: float = 1.0) -> dict:
    env = {"cpu": {"model": "x"}}
    rows = [{"name": "onnxruntime fp32", "batch": 1, "p50_ms": 1.0, "agreement": 1.0},
            {"name": "onnxruntime int8", "batch": 1, "p50_ms": p50_int8, "agreement": agreement}]
    return {"environment": env, "variants": rows}


def test_compare_flags_a_regression_and_passes_noise(tmp_path):
    old, slow, same = tmp_path / "old.json", tmp_path / "slow.json", tmp_path / "same.json"
    old.write_text(json.dumps(_report(0.5)))
    slow.write_text(json.dumps(_report(0.7)))
    same.write_text(json.dumps(_report(0.52)))
    proc = run_cli("edge-bench", "compare", str(old), str(same))
    assert proc.returncode == 0 and "records no task or input shape" in proc.stderr  # old reports: said, not refused
    proc = run_cli("edge-bench", "compare", str(old), str(slow))
    assert proc.returncode == 4 and "onnxruntime int8" in proc.stderr
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(_report(0.5, agreement=0.97)))
    assert run_cli("edge-bench", "compare", str(old), str(changed)).returncode == 4
    gone = tmp_path / "gone.json"  # the INT8 no longer built: it had compared only fp32 and passed
    gone.write_text(json.dumps({**_report(0.5), "variants": [_report(0.5)["variants"][0],
                                                             {"name": "onnxruntime int8", "skipped": "no artifact"}]}))
    proc = run_cli("edge-bench", "compare", str(old), str(gone))
    assert proc.returncode == 4 and "| onnxruntime int8 | 1 | 0.500 | - | - | MISSING |" in proc.stdout
    assert f"not timed in {gone}: onnxruntime int8 (batch 1)" in proc.stderr
    image = tmp_path / "report.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0 not text")  # had been a UnicodeDecodeError traceback
    assert "cannot read benchmark report" in one_line_error(run_cli("edge-bench", "compare", str(image), str(old)))


def test_pipeline_report_measures_lineside_against_the_reference_loop(demo_data, artifacts, tmp_path):
    out = tmp_path / "pipe"
    proc = run_cli("edge-bench", "pipeline", "--source", str(demo_data / "line_clip.mp4"), "--model",
                   str(artifacts / "model.int8.onnx"), "--roi", "512,232,256,256", "--fps", "60", "--frames", "30",
                   "--viewers", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "pipeline" and report["environment"]["cpu"]["flags"] is not None
    lineside, reference = report["lineside"], report["reference"]
    assert lineside["frames"] == reference["frames"] == 30
    for stage in ("capture_wait", "preprocess", "inference", "postprocess", "sink"):
        assert lineside["stages_ms"][stage]["p50"] <= lineside["stages_ms"][stage]["p99"]
    assert lineside["overhead_beyond_inference_ms"]["p50"] < lineside["work_ms"]["p50"]
    assert lineside["stages_ms"]["capture_wait"]["p50"] > 5  # paced at 60 fps: it waits for the camera
    assert report["work_p50_ratio_vs_reference"] > 0
    watched = report["lineside_with_viewers"]
    assert watched["viewers"] == 2 and watched["frames"] == 30 and "viewer_overhead_p50_ms" in report
    page = (out / "report.html").read_text()
    assert page.startswith("<!doctype html>") and "data:image/png;base64," in page


def test_model_report_html_has_plots_and_skips_are_explained(trained_run, artifacts, tmp_path):
    out = tmp_path / "r"
    proc = run_cli("edge-bench", "model", "--checkpoint", str(trained_run), "--artifacts", str(artifacts), "--out",
                   str(out), "--batch", "1", "--iters", "10", "--no-compile")
    assert proc.returncode == 0, proc.stderr
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "onnxruntime int8" in page
    report = json.loads((out / "report.json").read_text())
    assert not any(v["name"].startswith("torch compile") for v in report["variants"])
    for v in report["variants"]:
        assert ("p50_ms" in v) != ("skipped" in v)  # measured, or skipped with its reason — never blank
        if "p50_ms" in v:
            assert len(v["samples_ms"]) == v["iterations"]


def test_a_broken_variant_shows_its_error_and_fails_the_command(trained_run, artifacts, tmp_path):
    broken = tmp_path / "artifacts"
    broken.mkdir()
    shutil.copy(artifacts / "model.fp32.onnx", broken)
    (broken / "model.int8.onnx").write_bytes((artifacts / "model.int8.onnx").read_bytes()[:5000])  # truncated copy
    out = tmp_path / "r"
    proc = run_cli("edge-bench", "model", "--checkpoint", str(trained_run), "--artifacts", str(broken), "--out",
                   str(out), "--batch", "1", "--iters", "10", "--no-compile")
    assert proc.returncode == 4 and "onnxruntime int8" in proc.stderr.splitlines()[-1]
    report = json.loads((out / "report.json").read_text())
    row = next(v for v in report["variants"] if v["name"] == "onnxruntime int8")
    assert "not a loadable ONNX model" in row["error"]
    assert "failed:" in (out / "report.md").read_text()
    assert any("p50_ms" in v for v in report["variants"] if v["name"] == "onnxruntime fp32")


def test_sweep_covers_threads_by_batch_and_recommends(artifacts, demo_data, tmp_path):
    out = tmp_path / "sweep"
    proc = run_cli("edge-bench", "sweep", "--model", str(artifacts / "model.int8.onnx"), "--threads", "1,2",
                   "--batch", "1,4", "--iters", "10", "--data", str(demo_data / "brick" / "test" / "good"),
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert {(r["threads"], r["batch"]) for r in report["rows"]} == {(1, 1), (1, 4), (2, 1), (2, 4)}
    assert report["recommended"]["single_stream"]["batch"] == 1 and "images from" in report["inputs"]
    bad = run_cli("edge-bench", "sweep", "--model", str(artifacts / "model.int8.onnx"), "--batch", "0",
                  "--out", str(out))
    assert bad.returncode == 2 and bad.stderr.startswith("error:")


# --- bad input: one `error:` line, nothing written (probe of 2026-11-28) -------------------------------------------


def test_sweep_refuses_repeated_and_empty_list_items(artifacts, tmp_path):
    out = tmp_path / "sweep"
    for flag, value, said in (("--threads", "1,1", "repeats 1"), ("--batch", "1,,2", "empty item"),
                              ("--batch", "1,", "empty item"),
                              ("--batch", "1,01", "gives a value twice")):
        proc = run_cli("edge-bench", "sweep", "--model", str(artifacts / "model.int8.onnx"), flag, value,
                       "--iters", "10", "--out", str(out))
        assert said in one_line_error(proc) and flag in proc.stderr
    assert not out.exists()


def test_sweep_times_a_sensor_model_on_float_windows(tmp_path):
    model = anomaly_model(tmp_path / "sensor.onnx", window=20, channels=("x", "y", "z"))
    out = tmp_path / "sweep"
    proc = run_cli("edge-bench", "sweep", "--model", str(model), "--threads", "1", "--batch", "1,4", "--iters", "10",
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert {(r["threads"], r["batch"]) for r in report["rows"]} == {(1, 1), (1, 4)}
    assert "float32 windows" in report["inputs"]
    images = run_cli("edge-bench", "sweep", "--model", str(model), "--data", str(tmp_path), "--iters", "10",
                     "--out", str(tmp_path / "other"))
    assert "leave out --data" in one_line_error(images) and not (tmp_path / "other").exists()


def test_sweep_refuses_a_folder_without_a_readable_image(artifacts, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "part.png").write_text("not a picture")
    whole = (Path(__file__).parents[2] / "docs" / "edge-run-show.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(whole[: len(whole) // 2])  # OpenCV decodes it, half grey: not a part to time
    proc = run_cli("edge-bench", "sweep", "--model", str(artifacts / "model.int8.onnx"), "--data", str(folder),
                   "--threads", "1", "--batch", "1", "--iters", "10", "--out", str(tmp_path / "sweep"))
    assert str(folder) in one_line_error(proc) and "could be read" in proc.stderr
    assert not (tmp_path / "sweep").exists()


def test_pipeline_refuses_a_sensor_model_and_an_roi_outside_the_frames(demo_data, artifacts, tmp_path):
    clip, out = str(demo_data / "line_clip.mp4"), tmp_path / "pipe"
    sensor = anomaly_model(tmp_path / "sensor.onnx")
    proc = run_cli("edge-bench", "pipeline", "--source", clip, "--model", str(sensor), "--frames", "10",
                   "--out", str(out))
    assert "edge-bench sensor-stream" in one_line_error(proc)
    proc = run_cli("edge-bench", "pipeline", "--source", clip, "--model", str(artifacts / "model.int8.onnx"),
                   "--roi", "2000,2000,10,10", "--frames", "10", "--out", str(out))
    assert "does not fit in the 1280x720 frames" in one_line_error(proc)
    still = tmp_path / "part.png"
    cv2.imwrite(str(still), np.zeros((64, 64, 3), np.uint8))  # a still image opens as a one-frame video
    proc = run_cli("edge-bench", "pipeline", "--source", str(still), "--model", str(artifacts / "model.int8.onnx"),
                   "--frames", "10", "--out", str(out))
    assert "frame(s): the pipeline benchmark plays a video clip" in one_line_error(proc)  # FFmpeg says 0 or 1
    assert not out.exists()


def test_sensor_stream_refuses_an_image_model(artifacts, tmp_path):
    out = tmp_path / "stream"
    proc = run_cli("edge-bench", "sensor-stream", "--model", str(artifacts / "model.int8.onnx"), "--seconds", "1",
                   "--out", str(out))
    assert "edge-bench pipeline" in one_line_error(proc)
    assert not out.exists()  # refused before the report folder is made


def test_model_refuses_artifacts_of_another_checkpoint(trained_run, artifacts, tmp_path):
    from safetensors.torch import load_file, save_file

    other = tmp_path / "other-run"  # the same config, retrained: other weights
    shutil.copytree(trained_run, other)
    state = load_file(str(other / "model.safetensors"))
    name = next(iter(state))
    state[name] = state[name] + 1
    save_file(state, str(other / "model.safetensors"))
    out = tmp_path / "r"
    proc = run_cli("edge-bench", "model", "--checkpoint", str(other), "--artifacts", str(artifacts), "--out",
                   str(out), "--batch", "1", "--iters", "10", "--no-compile")
    assert "exported from another checkpoint" in one_line_error(proc)
    assert not out.exists()


def test_compare_refuses_bad_tolerances_other_models_and_other_report_kinds(tmp_path):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(_report(0.5)))
    new.write_text(json.dumps(_report(0.5)))
    for tolerance in ("nan", "-1"):
        assert "--tolerance" in one_line_error(run_cli("edge-bench", "compare", str(old), str(new), "--tolerance",
                                                       tolerance))
    image = {**_report(0.5), "task": "anomaly", "inputs": {"shape": [256, 256, 3], "dtype": "uint8"}}
    sensor = {**_report(0.001), "task": "quality", "inputs": {"shape": [1, 7], "dtype": "float32"}}
    old.write_text(json.dumps(image))
    new.write_text(json.dumps(sensor))
    assert "different models" in one_line_error(run_cli("edge-bench", "compare", str(old), str(new)))
    new.write_text(json.dumps({**image, "variants": [{"name": "onnxruntime fp32", "batch": 1, "p50_ms": "1.0"}]}))
    assert "'variants' is not a list of rows" in one_line_error(run_cli("edge-bench", "compare", str(old), str(new)))
    new.write_text(json.dumps({**image, "variants": [{"name": "onnxruntime fp32", "batch": 1, "p50_ms": 0,
                                                      "agreement": 1.0}]}))
    assert "'variants' is not a list of rows" in one_line_error(run_cli("edge-bench", "compare", str(new), str(old)))
    new.write_text(json.dumps({**image, "environment": {"cpu": {"model": "y"}}}))
    proc = run_cli("edge-bench", "compare", str(old), str(new))
    assert proc.returncode == 0 and "records no" not in proc.stderr and "different CPUs" in proc.stderr


def test_compare_says_a_sweep_report_is_not_what_it_reads(artifacts, tmp_path):
    out = tmp_path / "sweep"
    proc = run_cli("edge-bench", "sweep", "--model", str(artifacts / "model.int8.onnx"), "--threads", "1",
                   "--batch", "1", "--iters", "10", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    line = one_line_error(run_cli("edge-bench", "compare", str(out / "report.json"), str(out / "report.json")))
    assert "edge-bench sweep` report" in line and "edge-bench model" in line


def test_augment_refuses_one_synthetic_image(demo_data, tmp_path):
    out = tmp_path / "augment"
    proc = run_cli("edge-bench", "augment", "--data", str(demo_data / "brick"), "--out", str(out), "--steps", "1",
                   "--gan-steps", "1", "--seeds", "1", "--synth-count", "1", "--k", "5", "--kinds", "crack",
                   "--device", "cpu")
    assert "--synth-count" in one_line_error(proc) and "at least 2" in proc.stderr
    assert not out.exists()


def test_augment_without_gan_arms_removes_an_earlier_experiments_gans(demo_data, tmp_path):
    out = tmp_path / "augment"
    (out / "gans" / "seed0-k3-crack").mkdir(parents=True)  # the report about to be replaced named this run
    (out / "report.json").write_text("{}")
    proc = run_cli("edge-bench", "augment", "--data", str(demo_data / "brick"), "--out", str(out), "--steps", "2",
                   "--seeds", "1", "--k", "3", "--kinds", "crack", "--arms", "classic", "--image-size", "64",
                   "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "report.json").read_text())["gans"] == []
    assert sorted(p.name for p in out.iterdir()) == ["plot.png", "report.json", "report.md"]


def _interrupt_augment_after_its_gan(out: Path, demo_data: Path) -> None:
    proc = subprocess.Popen([str(BIN / "edge-bench"), "augment", "--data", str(demo_data / "brick"), "--out",
                             str(out), "--steps", "2000", "--gan-steps", "1", "--seeds", "1", "--synth-count", "2",
                             "--k", "3", "--kinds", "crack", "--arms", "classic,gan", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not any(out.glob(".gans.partial-*/*/*")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, proc.stderr.read()  # still training the classifiers (2000 steps)
        time.sleep(0.5)  # the GAN run is written in full, the classifiers have begun
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "Traceback" not in err, err


def test_augment_interrupted_after_its_gans_leaves_nothing(demo_data, tmp_path):
    out = tmp_path / "augment"
    _interrupt_augment_after_its_gan(out, demo_data)
    assert not out.exists(), sorted(out.rglob("*"))
    # a rerun into a finished experiment's folder leaves its GAN run of the same name whole (it was overwritten)
    before = out / "gans" / "seed0-k3-crack"
    before.mkdir(parents=True)
    (before / "config.json").write_text("{}")
    (out / "report.json").write_text("{}")
    _interrupt_augment_after_its_gan(out, demo_data)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "gans", "gans/seed0-k3-crack", "gans/seed0-k3-crack/config.json", "report.json"]
    assert (before / "config.json").read_text() == "{}"
