"""edge-run end to end on real sources: the demo clip, an image folder, a live HTTP stream."""

import json
import shutil
import signal
import subprocess
import time

import cv2
import numpy as np
import pytest

from clitools import BIN, ROOT, cuda_provider_works, final_error, free_port, one_line_error, run_cli
from image_models import nan_model
from peers import wait_for_port


def records(path):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [r for r in rows if r["type"] == "verdict"], [r for r in rows if r["type"] == "summary"]


def test_clip_every_frame_gets_a_complete_record(demo_data, artifacts, tmp_path):
    jsonl = tmp_path / "v.jsonl"
    proc = run_cli("edge-run", "--source", str(demo_data / "line_clip.mp4"), "--model",
                   str(artifacts / "model.int8.onnx"), "--roi", "512,232,256,256", "--jsonl", str(jsonl))
    assert proc.returncode == 0, proc.stderr
    verdicts, summaries = records(jsonl)
    frames = json.loads((demo_data / "line_clip.json").read_text())["frames"]
    assert [r["frame_id"] for r in verdicts] == list(range(frames))  # a file is judged completely
    first = verdicts[0]
    for key in ("source", "frame_id", "captured_at", "decided_at", "verdict", "label", "score", "latency_ms",
                "model_sha256", "age_ms", "flags"):
        assert key in first
    assert set(first["latency_ms"]) >= {"capture_wait", "preprocess", "inference", "postprocess"}
    assert first["decided_at"] >= first["captured_at"]
    assert summaries[-1]["frames"] == frames and summaries[-1]["dropped"] == 0
    assert sum(summaries[-1]["verdicts"].values()) == frames


def test_in_position_parts_are_judged_like_the_test_set(demo_data, artifacts, tmp_path):
    """The runtime's ROI crop of the clip gives the same kind of input the model was trained on."""
    jsonl = tmp_path / "v.jsonl"
    run_cli("edge-run", "--source", str(demo_data / "line_clip.mp4"), "--model", str(artifacts / "model.fp32.onnx"),
            "--roi", "512,232,256,256", "--jsonl", str(jsonl), "--quiet")
    verdicts, _ = records(jsonl)
    truth = {}
    for line in (demo_data / "line_clip.csv").read_text().splitlines()[1:]:
        frame, _, in_position, label = line.split(",")
        if in_position == "1":
            truth[int(frame)] = "good" if label == "good" else "defect"
    judged = [r["verdict"] == truth[r["frame_id"]] for r in verdicts if r["frame_id"] in truth]
    assert len(judged) >= 20
    assert sum(judged) / len(judged) >= 0.6  # a tiny test model; the demo reports the real figure


def test_folder_source_and_unreadable_image_is_flagged(demo_data, artifacts, tmp_path):
    folder = tmp_path / "frames"
    shutil.copytree(demo_data / "brick" / "test" / "good", folder)
    first = next(folder.iterdir())
    (folder / "zzz_broken.png").write_bytes(first.read_bytes()[:-40])  # cut before IEND: libpng said so on stderr
    whole = cv2.imencode(".jpg", cv2.imread(str(first)))[1].tobytes()
    (folder / "zzz_cut.jpg").write_bytes(whole[: len(whole) // 3])  # OpenCV decodes it, the rest grey
    (folder / "._zzz.png").write_bytes(b"macOS resource fork")  # not an image, not a frame
    cv2.imwrite(str(folder / "zzz_tiny.png"), np.zeros((5, 5, 3), np.uint8) + 128)  # stretched, it was judged
    jsonl = tmp_path / "v.jsonl"
    proc = run_cli("edge-run", "--source", str(folder), "--model", str(artifacts / "model.int8.onnx"),
                   "--jsonl", str(jsonl))
    assert proc.returncode == 0, proc.stderr
    verdicts, summaries = records(jsonl)
    assert len(verdicts) == len(list(folder.iterdir())) - 1
    for cut in verdicts[-3:-1]:
        assert cut["verdict"] == "invalid" and "unreadable" in cut["flags"], cut
    assert verdicts[-1]["verdict"] == "invalid" and verdicts[-1]["flags"] == ["too_small"]
    assert summaries[-1]["invalid"] == 3 and "libpng" not in proc.stderr
    # a run that cannot start leaves no empty --jsonl behind
    failed = tmp_path / "failed.jsonl"
    line = final_error(run_cli("edge-run", "--source", str(folder), "--model", str(artifacts / "model.int8.onnx"),
                               "--roi", "0,0,4000,4000", "--jsonl", str(failed)))
    assert "does not fit in the 128x128 frames" in line and not failed.exists()
    # a folder where every image is unreadable judged nothing: said, non-zero, the flagged frames still written
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("zzz_broken.png", "zzz_cut.jpg"):
        shutil.copy(folder / name, broken / name.replace("zzz_", "a_"))
    (broken / "b.png").write_bytes(b"not a png")
    proc = run_cli("edge-run", "--source", str(broken), "--model", str(artifacts / "model.int8.onnx"),
                   "--jsonl", str(jsonl))
    line = final_error(proc)
    assert "every one of the 3 images read from" in line and "(first: a_broken.png)" in line, line
    assert records(jsonl)[1][-1]["invalid"] == 3


def test_missing_camera_is_one_line(artifacts):
    line = one_line_error(run_cli("edge-run", "--camera", "57", "--model", str(artifacts / "model.int8.onnx")))
    assert "camera 57" in line
    line = one_line_error(run_cli("edge-run", "--camera", "-1", "--model", str(artifacts / "model.int8.onnx")))
    assert "--camera" in line  # OpenCV crashed the process (SIGSEGV) on a negative index


def test_options_the_source_would_ignore_are_refused(artifacts, demo_data, tmp_path):
    # each had been accepted and done nothing: --width on a file, --realtime on a folder, --loop on a camera
    model, folder = str(artifacts / "model.int8.onnx"), str(demo_data / "brick" / "test" / "good")
    for source, extra, said in (
            (("--source", str(demo_data / "line_clip.mp4")), ("--width", "640", "--exposure", "-4"),
             "--width, --exposure do nothing for --source"),
            (("--source", folder), ("--realtime", "--max-outage-s", "5"),
             "--realtime, --max-outage-s do nothing for --source"),
            (("--camera", "7"), ("--loop",), "--loop does nothing for --camera 7 (a camera)"),
            (("--source", "rtsp://127.0.0.1:1/x"), ("--realtime",), "--realtime does nothing for --source rtsp"),
            (("--source", "rtsp://127.0.0.1:1/x"), ("--no-reconnect", "--max-outage-s", "5"), "--max-outage-s does"),
            (("--source", folder), ("--exposure", "0"), "--exposure does nothing")):  # 0 had read as not given
        assert said in one_line_error(run_cli("edge-run", *source, "--model", model, *extra))
    config = tmp_path / "line.yaml"  # from line.yaml too
    config.write_text(f"source: {folder}\nmodel: {model}\nfps: 30\n")
    assert "--fps does nothing" in one_line_error(run_cli("edge-run", "--config", str(config)))


def test_not_an_onnx_file_is_one_line(tmp_path, demo_data):
    fake = tmp_path / "model.onnx"
    fake.write_text("hello")
    line = one_line_error(run_cli("edge-run", "--source", str(demo_data / "line_clip.mp4"), "--model", str(fake)))
    assert "not a loadable ONNX model" in line


def test_plain_onnx_without_metadata_is_refused(tmp_path, artifacts, demo_data):
    import onnx

    model = onnx.load(str(artifacts / "model.fp32.onnx"))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "plain.onnx"))
    line = one_line_error(run_cli("edge-run", "--source", str(demo_data / "line_clip.mp4"),
                                  "--model", str(tmp_path / "plain.onnx")))
    assert "no lineside metadata" in line


def test_empty_folder_and_bad_roi(tmp_path, artifacts, demo_data):
    (tmp_path / "empty").mkdir()
    one_line_error(run_cli("edge-run", "--source", str(tmp_path / "empty"), "--model", str(artifacts / "model.int8.onnx")))
    line = one_line_error(run_cli("edge-run", "--source", str(demo_data / "line_clip.mp4"), "--model",
                                  str(artifacts / "model.int8.onnx"), "--roi", "1200,600,256,256"))
    assert "does not fit" in line
    mixed = tmp_path / "mixed"  # a large image, then one smaller than the ROI: that one is not judged, the run goes on
    mixed.mkdir()
    image = cv2.imread(str(sorted((demo_data / "brick" / "test" / "good").iterdir())[0]))
    cv2.imwrite(str(mixed / "a.png"), cv2.resize(image, (512, 512)))
    cv2.imwrite(str(mixed / "b.png"), image[:100, :100])
    jsonl = tmp_path / "mixed.jsonl"
    proc = run_cli("edge-run", "--source", str(mixed), "--model", str(artifacts / "model.int8.onnx"), "--roi",
                   "0,0,200,200", "--jsonl", str(jsonl), "--quiet")
    assert proc.returncode == 0, proc.stderr
    verdicts, summaries = records(jsonl)
    assert verdicts[0]["verdict"] != "invalid" and verdicts[1]["flags"] == ["roi_outside"]
    assert summaries[-1]["invalid"] == 1


@pytest.mark.skipif(cuda_provider_works(), reason="CUDA works on this machine")
def test_cuda_demanded_on_a_cpu_machine_fails_loudly(artifacts, demo_data):
    line = one_line_error(run_cli("edge-run", "--source", str(demo_data / "line_clip.mp4"), "--model",
                                  str(artifacts / "model.int8.onnx"), "--device", "cuda"))
    assert "CUDAExecutionProvider" in line


def test_sigint_flushes_every_decided_frame(demo_data, artifacts, tmp_path):
    jsonl = tmp_path / "v.jsonl"
    proc = subprocess.Popen([str(BIN / "edge-run"), "--source", str(demo_data / "line_clip.mp4"), "--realtime",
                             "--model", str(artifacts / "model.int8.onnx"), "--jsonl", str(jsonl), "--quiet"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while time.time() < deadline and (not jsonl.exists() or '"type":"stats"' not in jsonl.read_text()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    verdicts, summaries = records(jsonl)
    frames = json.loads((demo_data / "line_clip.json").read_text())["frames"]
    assert 0 < len(verdicts) < frames  # stopped mid-run
    assert summaries[-1]["frames"] == len(verdicts)
    stats = [json.loads(line) for line in jsonl.read_text().splitlines() if '"type":"stats"' in line]
    assert stats and stats[-1]["frames"] <= len(verdicts) and "inference" in stats[-1]["latency_ms"]
    assert json.loads(out.strip().splitlines()[-1])["frames"] == len(verdicts)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed (.ci/run installs it)")
def test_a_video_file_cut_short_is_judged_as_far_as_it_goes_and_said(artifacts, tmp_path):
    whole = tmp_path / "whole.mp4"  # index at the front, as a recorder writing for streaming does: a cut copy opens
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", "-t", "5",
                    "-movflags", "+faststart", str(whole)], check=True, timeout=60)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    run = lambda clip: run_cli("edge-run", "--source", str(clip), "--model", str(artifacts / "model.int8.onnx"),  # noqa: E731
                               "--quiet", "--frozen-frames", "0")
    full, partial = run(whole), run(cut)
    assert full.returncode == 0 == partial.returncode, partial.stderr
    assert json.loads(full.stdout.splitlines()[-1])["frames"] == 50 and "cut short" not in full.stderr
    frames = json.loads(partial.stdout.splitlines()[-1])["frames"]
    assert 0 < frames < 50 and f"ended at frame {frames} of the 50 its header declares" in partial.stderr


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed (.ci/run installs it)")
def test_live_http_stream_served_by_ffmpeg(demo_data, artifacts, tmp_path):
    """A real streamer on loopback: edge-run reads it live, newest frame first, drops counted."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/line.ts"
    server = subprocess.Popen(["ffmpeg", "-loglevel", "error", "-re", "-i", str(demo_data / "line_clip.mp4"),
                               "-c:v", "mpeg2video", "-q:v", "4", "-f", "mpegts", "-listen", "1", url],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, timeout=20)  # a fresh machine's first ffmpeg took longer than a fixed 0.5 s to listen
        jsonl = tmp_path / "v.jsonl"
        proc = run_cli("edge-run", "--source", url, "--model", str(artifacts / "model.int8.onnx"), "--roi",
                       "512,232,256,256", "--jsonl", str(jsonl), "--max-frames", "40", timeout=60)
        assert proc.returncode == 0, proc.stderr
        verdicts, summaries = records(jsonl)
        assert len(verdicts) == 40
        assert all(r["source"] == url for r in verdicts)
        assert summaries[-1]["frames"] == 40
    finally:
        server.kill()
        server.wait()


def test_refused_stream_is_one_line(artifacts):
    line = one_line_error(run_cli("edge-run", "--source", f"http://127.0.0.1:{free_port()}/none.ts", "--model",
                                  str(artifacts / "model.int8.onnx"), timeout=60))
    assert "could not be opened" in line



def test_sigterm_at_random_moments_loses_no_decision(demo_data, artifacts, tmp_path):
    import random

    rng = random.Random(7)
    for attempt in range(3):
        jsonl = tmp_path / f"v{attempt}.jsonl"
        proc = subprocess.Popen([str(BIN / "edge-run"), "--source", str(demo_data / "brick" / "test" / "good"),
                                 "--loop", "--frozen-frames", "0", "--model", str(artifacts / "model.int8.onnx"),
                                 "--jsonl", str(jsonl), "--quiet"],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        while time.time() < deadline and not (jsonl.exists() and jsonl.stat().st_size):
            time.sleep(0.02)
        time.sleep(rng.uniform(0.05, 1.5))
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        verdicts, summaries = records(jsonl)
        assert len(summaries) == 1 and summaries[0]["frames"] == len(verdicts) > 0
        assert [r["frame_id"] for r in verdicts] == list(range(len(verdicts)))  # no gap, no duplicate


def test_a_looped_video_keeps_counting_frames(demo_data, artifacts, tmp_path):
    frames = json.loads((demo_data / "line_clip.json").read_text())["frames"]
    jsonl = tmp_path / "v.jsonl"
    proc = run_cli("edge-run", "--source", str(demo_data / "line_clip.mp4"), "--loop", "--model",
                   str(artifacts / "model.int8.onnx"), "--jsonl", str(jsonl), "--max-frames", str(frames + 10),
                   "--quiet")
    assert proc.returncode == 0, proc.stderr
    verdicts, _ = records(jsonl)
    assert [r["frame_id"] for r in verdicts] == list(range(frames + 10))


def test_a_nan_output_is_never_judged_good(tmp_path):
    # NaN >= threshold is False: the rule alone would have passed every such part as good
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(frames / f"{i}.png"), rng.integers(150, 210, (128, 128, 3), dtype=np.uint8))
    jsonl = tmp_path / "v.jsonl"
    proc = run_cli("edge-run", "--source", str(frames), "--model", str(nan_model(tmp_path)), "--jsonl", str(jsonl))
    assert proc.returncode == 0, proc.stderr
    verdicts, summaries = records(jsonl)
    assert [(v["verdict"], v["flags"], v["score"]) for v in verdicts] == [("invalid", ["non_finite_output"], None)] * 3
    assert summaries[-1]["flags"] == {"non_finite_output": 3} and "NaN" not in jsonl.read_text()  # valid JSON
