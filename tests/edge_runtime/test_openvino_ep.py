"""--device openvino, proven on this CPU through ONNX Runtime's OpenVINO provider.

onnxruntime-openvino provides the same `onnxruntime` module as the cpu extra, so it
lives in its own environment (`make test` builds .venv-openvino): these tests run
lineside's commands from there, as an Intel industrial PC owner would.
"""

from __future__ import annotations

import json

import pytest

from clitools import BIN, ROOT, jsonl_rows, run_cli

OV = ROOT / ".venv-openvino" / "bin"
pytestmark = pytest.mark.skipif(not (OV / "edge-run").exists(),
                                reason="no .venv-openvino here: `make test` builds it (the openvino extra)")

PARITY = """
import json, sys
import numpy as np
from edge_runtime.model import EdgeModel
out = {}
for path in sys.argv[1:]:
    cpu, ov = EdgeModel(path, device="cpu"), EdgeModel(path, device="openvino")
    x = np.random.default_rng(0).integers(0, 256, (4, *cpu.blank_input().shape[1:])).astype(np.uint8)
    a, b = cpu.session.run(None, {cpu.input_name: x}), ov.session.run(None, {ov.input_name: x})
    out[path] = {"provider": ov.provider, "max_abs": [float(np.abs(u - v).max()) for u, v in zip(a, b)],
                 "mean_abs": [float(np.abs(u - v).mean()) for u, v in zip(a, b)],
                 "scale": [float(np.abs(u).max()) for u in a]}
print(json.dumps(out))
"""


def test_openvino_provider_runs_every_artifact_like_the_cpu(artifacts, anomaly_artifacts):
    paths = [str(artifacts / f"model.{p}.onnx") for p in ("fp32", "int8", "fp16")]
    paths += [str(anomaly_artifacts / f"model.{p}.onnx") for p in ("fp32", "int8")]
    proc = run_cli(str(OV / "python"), "-c", PARITY, *paths)  # an absolute path runs that environment's program
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    for path, row in result.items():
        assert row["provider"] == "OpenVINOExecutionProvider", path  # read back from the session
        if ".int8." not in path:  # float artifacts: the same arithmetic
            assert all(d <= 1e-4 * max(1.0, s) for d, s in zip(row["max_abs"], row["scale"])), (path, row)
            continue
        # INT8: OpenVINO's own integer kernels round differently. The decision output (probabilities, the anomaly
        # score) stays within ~2 quanta of 1/255; a heat map may move a few quanta at single pixels
        # (measured: 0.024 at one pixel, percentile calibration) but not on average.
        assert row["max_abs"][0] <= 1e-2, (path, row)
        assert all(m <= 2e-3 and d <= 0.05 for m, d in zip(row["mean_abs"][1:], row["max_abs"][1:])), (path, row)


def test_edge_run_on_openvino_decides_the_clip_as_the_cpu_does(artifacts, demo_data, tmp_path):
    runs = {}
    for device, bin_dir in (("openvino", OV), ("cpu", BIN)):
        jsonl = tmp_path / f"{device}.jsonl"
        proc = run_cli(str(bin_dir / "edge-run"), "--source", str(demo_data / "line_clip.mp4"), "--roi",
                       "512,232,256,256", "--model", str(artifacts / "model.fp32.onnx"), "--device", device,
                       "--jsonl", str(jsonl), "--quiet")
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs[device] = {r["frame_id"]: (r["verdict"], r.get("label")) for r in jsonl_rows(jsonl)
                        if r.get("type") == "verdict"}
        if device == "openvino":
            assert "fp32, OpenVINOExecutionProvider" in proc.stderr  # the start line names what runs
    assert runs["openvino"] and runs["openvino"] == runs["cpu"]
    proc = run_cli(str(OV / "edge-run"), "doctor", "--device", "openvino")
    assert proc.returncode == 0 and "openvino: ok" in proc.stdout, proc.stdout + proc.stderr


def test_openvino_demanded_where_its_provider_is_missing_is_one_line(artifacts, demo_data):
    proc = run_cli("edge-run", "--source", str(demo_data / "line_clip.mp4"), "--model",
                   str(artifacts / "model.fp32.onnx"), "--device", "openvino")
    assert proc.returncode != 0 and "OpenVINOExecutionProvider" in proc.stderr and "Traceback" not in proc.stderr


THREADS = """
import os, sys
from edge_runtime.model import EdgeModel
model = EdgeModel(sys.argv[1], device="openvino", threads=int(sys.argv[2]))
model.infer(model.blank_input())
print(len(os.listdir("/proc/self/task")))
"""


def test_openvino_runs_the_threads_it_is_given(anomaly_artifacts):
    # OpenVINO keeps its own thread pool and ignores ORT's intra-op count; --threads reaches it as num_of_threads
    counts = {}
    for threads in (1, 2):
        proc = run_cli(str(OV / "python"), "-c", THREADS, str(anomaly_artifacts / "model.fp32.onnx"), str(threads))
        assert proc.returncode == 0, proc.stderr[-2000:]
        counts[threads] = int(proc.stdout.split()[-1])
    # one more thread in ORT's pool (N - 1 workers) and one more in OpenVINO's; without num_of_threads OpenVINO
    # sizes its pool by the machine's cores whatever --threads says, and the two counts differ by one
    assert counts[2] - counts[1] == 2, counts
