"""edge-run as a line-side service: reconnects, frame checks, outputs, line.yaml, doctor."""

import json
import shutil
import subprocess
import time

import cv2
import numpy as np
import pytest

from clitools import BIN, ROOT, cuda_provider_works, free_port, jsonl_rows, one_line_error, run_cli
from peers import wait_for_port
from edge_runtime.frame_checks import FrameChecker, FrameLimits
from edge_runtime.sources import CaptureSettings, csi_pipeline

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed (.ci/run installs it)")


def verdicts(path):
    return [r for r in jsonl_rows(path) if r["type"] == "verdict"]


def serve(clip, url, seconds):
    """A real streamer: ffmpeg serves `seconds` of the clip live over HTTP to one client, then exits."""
    return subprocess.Popen(["ffmpeg", "-loglevel", "error", "-re", "-t", str(seconds), "-i", str(clip), "-c:v",
                             "mpeg2video", "-q:v", "4", "-f", "mpegts", "-listen", "1", url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@needs_ffmpeg
def test_stream_outage_is_reported_and_the_run_resumes(demo_data, artifacts, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/line.ts"
    clip = demo_data / "line_clip.mp4"
    first = serve(clip, url, 1.5)
    wait_for_port(port, timeout=20)
    jsonl = tmp_path / "v.jsonl"
    run = subprocess.Popen([str(BIN / "edge-run"), "--source", url, "--model", str(artifacts / "model.int8.onnx"),
                            "--jsonl", str(jsonl), "--max-frames", "60", "--quiet"], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = None
    try:
        first.wait(timeout=30)
        time.sleep(1.0)  # the station is blind for a while; edge-run keeps retrying
        second = serve(clip, url, 5)
        out, err = run.communicate(timeout=60)
    finally:
        for proc in (first, second, run):
            if proc and proc.poll() is None:
                proc.kill()
    assert run.returncode == 0, err
    records = jsonl_rows(jsonl)
    outages = [r for r in records if r["type"] == "outage"]
    assert len(outages) == 1 and outages[0]["seconds"] >= 0.5 and outages[0]["attempts"] >= 1
    ids = [r["frame_id"] for r in records if r["type"] == "verdict"]
    assert len(ids) == 60 and ids == sorted(ids)
    assert any(i >= outages[0]["resumed_frame_id"] for i in ids)  # frames after the outage were judged
    assert json.loads(out.splitlines()[-1])["outages"] == 1


@needs_ffmpeg
def test_stream_gone_for_good_is_one_line_after_the_outage_limit(demo_data, artifacts, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/line.ts"
    server = serve(demo_data / "line_clip.mp4", url, 1)
    wait_for_port(port, timeout=20)
    try:
        proc = run_cli("edge-run", "--source", url, "--model", str(artifacts / "model.int8.onnx"), "--quiet",
                       "--max-outage-s", "1", "--jsonl", str(tmp_path / "v.jsonl"), timeout=60)
    finally:
        server.kill()
    assert proc.returncode != 0 and "has been gone" in proc.stderr.splitlines()[-1]
    assert verdicts(tmp_path / "v.jsonl")  # what was decided before the loss is kept


def test_black_saturated_and_frozen_frames_are_never_good(demo_data, artifacts, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    part = cv2.imread(str(next((demo_data / "brick" / "test" / "good").iterdir())))
    for i in range(8):
        cv2.imwrite(str(folder / f"a{i}.png"), part)  # a hung camera repeating one buffer
    cv2.imwrite(str(folder / "b_black.png"), np.zeros_like(part))
    cv2.imwrite(str(folder / "c_white.png"), np.full_like(part, 255))
    jsonl = tmp_path / "v.jsonl"
    assert run_cli("edge-run", "--source", str(folder), "--model", str(artifacts / "model.int8.onnx"), "--jsonl",
                   str(jsonl), "--frozen-frames", "5").returncode == 0
    got = {r["frame_id"]: r for r in verdicts(jsonl)}
    assert all("frozen" not in got[i]["flags"] for i in range(5))
    assert all("frozen" in got[i]["flags"] and got[i]["verdict"] == "invalid" for i in (5, 6, 7))
    assert got[8]["flags"] == ["black"] and got[8]["verdict"] == "invalid"
    assert got[9]["flags"] == ["saturated"] and got[9]["verdict"] == "invalid"
    summary = [r for r in jsonl_rows(jsonl) if r["type"] == "summary"][-1]
    assert summary["flags"] == {"frozen": 3, "black": 1, "saturated": 1} and summary["invalid"] == 5


def test_frames_older_than_the_limit_are_flagged(demo_data, artifacts, tmp_path):
    jsonl = tmp_path / "v.jsonl"
    run_cli("edge-run", "--source", str(demo_data / "brick" / "test" / "good"), "--model",
            str(artifacts / "model.int8.onnx"), "--jsonl", str(jsonl), "--max-age-ms", "0.001")
    assert all(r["verdict"] == "invalid" and "stale" in r["flags"] and r["label"] for r in verdicts(jsonl))
    checker = FrameChecker(FrameLimits(max_age_ms=100))
    assert checker.after(99) == [] and checker.after(101) == ["stale"]


def test_save_defects_record_and_rotation(demo_data, artifacts, tmp_path):
    source = demo_data / "brick" / "test" / "crack"
    jsonl, saved, video = tmp_path / "v.jsonl", tmp_path / "rejects", tmp_path / "run.mp4"
    proc = run_cli("edge-run", "--source", str(source), "--model", str(artifacts / "model.fp32.onnx"),
                   "--jsonl", str(jsonl), "--jsonl-max-mb", "0.002", "--save-defects", str(saved),
                   "--record", str(video), "--threshold", "0")
    assert proc.returncode == 0, proc.stderr
    parts = sorted(tmp_path.glob("v.jsonl*"))
    assert len(parts) >= 2  # rotated
    judged = [r for p in parts for r in verdicts(p)]
    frames = len(list(source.iterdir()))
    assert len(judged) == frames and all(r["verdict"] == "defect" for r in judged)  # threshold 0 rejects all
    assert len(list(saved.glob("*_annotated.jpg"))) == len(list(saved.glob("*.json"))) == frames
    capture = cv2.VideoCapture(str(video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == frames


def test_line_yaml_with_flags_winning_and_unknown_keys_refused(demo_data, artifacts, tmp_path):
    jsonl = tmp_path / "v.jsonl"
    config = tmp_path / "line.yaml"
    config.write_text(f"source: {demo_data / 'line_clip.mp4'}\nmodel: {artifacts / 'model.int8.onnx'}\n"
                      f"roi: [512, 232, 256, 256]\njsonl: {jsonl}\nmax_frames: 50\nquiet: true\nthreads: 1\n")
    proc = run_cli("edge-run", "--config", str(config), "--max-frames", "7")
    assert proc.returncode == 0, proc.stderr
    assert len(verdicts(jsonl)) == 7  # the flag beat the file
    effective = json.loads(next(line for line in proc.stderr.splitlines() if line.startswith("config: "))[8:])
    assert effective["roi"] == [512, 232, 256, 256] and effective["threads"] == 1 and effective["max_frames"] == 7
    config.write_text(config.read_text() + "exposur: 3\n")
    line = one_line_error(run_cli("edge-run", "--config", str(config)))
    assert "exposur" in line and "exposure" in line


@pytest.mark.parametrize("text, expected", [
    ("threads: 2.7\n", "threads: Invalid value: 2.7 is not a whole number"),  # int() would have run 2 threads
    ("fps: [30]\n", "fps: Invalid value: one value, not a list"),
    ("quiet: 2\n", "'2' is not a valid boolean"),
    ("max_frames: 2\nmax-frames: 3\n", "'max-frames' on line 4 repeats the key of line 3"),
    ("metrics_port: 70000\n", "port 70000 is not between 1 and 65535"),
    ("roi: [1, 2, 3]\n", "line.yaml: roi: Invalid value: '1,2,3' is not x,y,w,h"),
    ("mqtt: mqtt://broker:1883/x\n", "(line 3: Incorrect indentation: quote a value that holds \":\""),
    ("roi: 512,232,256,256\n", "quote a comma list or write it in brackets, e.g. roi: [512,232,256,256]"),
    ("threshold:\n", "'threshold' on line 3 has no value"),  # OpenCV had read '...', refused as no float
    ("threshold: .nan\n", "threshold: Invalid value for '--threshold': nan is not a finite number"),
], ids=["float-int", "list", "bool", "repeated", "port", "roi", "unquoted-url", "unquoted-list", "empty", "nan"])
def test_a_line_yaml_value_that_cannot_be_meant_is_refused(demo_data, artifacts, tmp_path, text, expected):
    config = tmp_path / "line.yaml"
    config.write_text(f"source: {demo_data / 'line_clip.mp4'}\nmodel: {artifacts / 'model.int8.onnx'}\n{text}")
    assert expected in one_line_error(run_cli("edge-run", "--config", str(config)))


def test_a_yes_or_no_word_in_line_yaml_means_what_it_says(demo_data, artifacts, tmp_path):
    config = tmp_path / "line.yaml"
    config.write_text(f"source: {demo_data / 'line_clip.mp4'}\nmodel: {artifacts / 'model.int8.onnx'}\n"
                      "max_frames: 3\nquiet: \"no\"\nloop: \"false\"\nreconnect: \"off\"\nmqtt_retain: false\n")
    proc = run_cli("edge-run", "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    effective = json.loads(next(line for line in proc.stderr.splitlines() if line.startswith("config: "))[8:])
    assert not {"quiet", "loop", "reconnect"} & set(effective)  # all off: bool("no") had turned them on
    # and a flag set false asks for nothing, so mqtt_retain: false needs no --mqtt


def test_show_without_gui_and_csi_without_gstreamer_are_one_line(artifacts, demo_data):
    line = one_line_error(run_cli("edge-run", "--source", str(demo_data / "line_clip.mp4"), "--model",
                                  str(artifacts / "model.int8.onnx"), "--show"))
    assert "--show" in line
    line = one_line_error(run_cli("edge-run", "--source", "csi://0", "--model", str(artifacts / "model.int8.onnx")))
    assert "GStreamer" in line
    line = one_line_error(run_cli("edge-run", "--source", "videotestsrc ! videoconvert ! appsink", "--model",
                                  str(artifacts / "model.int8.onnx")))
    assert "GStreamer" in line


def test_csi_pipeline_is_the_jetson_argus_pipeline():
    pipeline = csi_pipeline(1, CaptureSettings(width=1920, height=1080, fps=60))
    assert pipeline.startswith("nvarguscamerasrc sensor-id=1 !")
    assert "width=1920,height=1080,framerate=60/1" in pipeline and pipeline.endswith("max-buffers=1 sync=false")


@pytest.mark.skipif(cuda_provider_works(), reason="CUDA works on this machine")
def test_doctor_proves_providers_and_the_model(artifacts):
    proc = run_cli("edge-run", "doctor", "--model", str(artifacts / "model.int8.onnx"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cpu: ok" in proc.stdout and "flags:" in proc.stdout and "model " in proc.stdout
    proc = run_cli("edge-run", "doctor", "--device", "cuda")
    assert proc.returncode == 1 and "PROBLEM: --device cuda" in proc.stdout


def test_record_to_a_file_that_is_not_a_video_is_one_line_before_the_run(demo_data, artifacts, tmp_path):
    proc = run_cli("edge-run", "--source", str(demo_data / "line_clip.mp4"), "--model", str(artifacts / "model.int8.onnx"),
                   "--record", str(tmp_path / "rec.txt"))
    assert "name a video file" in one_line_error(proc) and not (tmp_path / "rec.txt").exists()
