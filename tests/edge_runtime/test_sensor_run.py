"""edge-run --sensor on real peers: a CSV replay, a UDP sender that loses, reorders, repeats and garbles
datagrams, a serial pty pair that cuts a line and disappears; verdicts checked against the model run directly."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clitools import BIN, ROOT, final_error, free_port, jsonl_rows, one_line_error, run_cli
from edge_runtime.model import EdgeModel
from edge_runtime.sensor_pipeline import run_sensor_pipeline
from edge_runtime.sensor_samples import Problem, Samples
from edge_runtime.sensor_serial import LineSplitter, SerialSource, parse_line
from edge_runtime.sensor_udp import HEADER, decode_datagram, encode_datagram
from edge_runtime.sensor_window import Windower
from image_models import image_model
from sensor_models import anomaly_model, classify_model

WINDOW, STRIDE, CHANNELS = 20, 10, ("x", "y", "z")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sensor_models")
    return {"anomaly": anomaly_model(folder / "anomaly.onnx", WINDOW, STRIDE, CHANNELS, threshold=1.0),
            "classify": classify_model(folder / "classify.onnx", WINDOW, STRIDE, CHANNELS, threshold=1.0)}


def signal_data(n: int, seed: int = 0) -> np.ndarray:
    """Samples whose loudness wanders around the threshold, so that some windows pass and some reject."""
    rng = np.random.default_rng(seed)
    loud = 1.25 + 0.6 * np.sin(np.arange(n) / 37.0)
    return (rng.normal(0, 1, (n, len(CHANNELS))) * loud[:, None]).astype(np.float32)


def expected_windows(runs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The rule stated plainly: in each run [start, end) of consecutive samples, windows start at start + k*stride."""
    return [(s, s + WINDOW - 1) for start, end in runs for s in range(start, end - WINDOW + 1, STRIDE)]


def check_verdicts(model_path: Path, verdicts: list[dict], data: np.ndarray, runs) -> None:
    """Every window once, in order, over exactly the expected samples, decided as the model decides directly."""
    assert [v["window_id"] for v in verdicts] == list(range(len(verdicts)))
    assert [v["frame_id"] for v in verdicts] == [v["window_id"] for v in verdicts]
    assert [(v["first_sample"], v["last_sample"]) for v in verdicts] == expected_windows(runs)
    judged = [v for v in verdicts if v["verdict"] != "invalid"]
    model = EdgeModel(model_path)
    direct = model.decide(model.infer(np.stack([data[v["first_sample"]:v["last_sample"] + 1] for v in judged])))
    assert [(v["verdict"], v["label"]) for v in judged] == [(d.verdict, d.label) for d in direct]
    assert np.allclose([v["score"] for v in judged], [d.score for d in direct], atol=1e-5)
    assert {"good", "defect"} <= {v["verdict"] for v in judged}  # the data exercises both


def split(rows: list[dict]) -> tuple[list[dict], list[dict], dict]:
    verdicts = [r for r in rows if r["type"] == "verdict"]
    gaps = [r for r in rows if r["type"] == "gap"]
    summary = [r for r in rows if r["type"] == "summary"]
    assert len(summary) == 1
    return verdicts, gaps, summary[0]


# --- CSV ---------------------------------------------------------------------------------------------------------

def write_csv(path: Path, data: np.ndarray, times: np.ndarray | None = None) -> Path:
    head = (["t"] if times is not None else []) + ["z", "x", "y", "label"]  # not the model's order
    lines = [",".join(head)]
    for i, (x, y, z) in enumerate(data):
        lines.append(",".join(([f"{times[i]:.6f}"] if times is not None else []) + [repr(float(z)), repr(float(x)), repr(float(y)), "ok"]))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("kind", ["anomaly", "classify"])
def test_csv_replay_at_max_rate_decides_every_window_like_the_model(models, tmp_path, kind):
    data = signal_data(400)
    csv, jsonl = write_csv(tmp_path / "run.csv", data), tmp_path / "v.jsonl"
    proc = run_cli("edge-run", "--sensor", f"csv:{csv}?rate=max", "--model", str(models[kind]), "--jsonl", str(jsonl),
                   "--quiet", timeout=60)
    assert proc.returncode == 0, proc.stderr
    verdicts, gaps, summary = split(jsonl_rows(jsonl))
    check_verdicts(models[kind], verdicts, data, [(0, 400)])
    assert not gaps
    assert summary["windows"] == len(verdicts) == 39 and summary["samples"]["taken"] == 400
    assert sum(summary["verdicts"].values()) == 39 and summary["samples"]["lost"] == 0
    first = verdicts[0]
    for key in ("source", "first_sample_at", "last_sample_at", "captured_at", "decided_at", "age_ms", "score",
                "label", "flags", "model_sha256"):
        assert key in first
    assert set(first["latency_ms"]) == {"capture_wait", "preprocess", "inference", "postprocess", "sink_prev"}
    assert json.loads(proc.stdout.strip().splitlines()[-1])["windows"] == 39


def test_csv_at_a_given_rate_is_paced_and_a_time_gap_refills_the_window(models, tmp_path):
    data = signal_data(240, seed=1)
    times = np.arange(240) * 0.002
    times[150:] += 0.006  # the logger lost 3 samples after row 149
    csv, jsonl = write_csv(tmp_path / "run.csv", data, times), tmp_path / "v.jsonl"
    started = time.monotonic()
    proc = run_cli("edge-run", "--sensor", f"csv:{csv}?rate=400", "--model", str(models["anomaly"]),
                   "--jsonl", str(jsonl), "--quiet", timeout=60)
    assert proc.returncode == 0, proc.stderr
    verdicts, gaps, summary = split(jsonl_rows(jsonl))
    assert summary["seconds"] >= 239 / 400 * 0.95 and time.monotonic() - started >= 0.57
    check_verdicts(models["anomaly"], verdicts, data, [(0, 150), (150, 240)])
    assert [(g["reason"], g["missed"]) for g in gaps] == [("time_jump", 3)]
    assert summary["samples"]["gaps"] == 1 and summary["samples"]["missed"] == 3
    spans = [v["last_sample_at"] - v["first_sample_at"] for v in verdicts]
    assert np.allclose(spans, (WINDOW - 1) / 400, atol=1e-4)  # sample times follow the replay rate


def test_wrong_sources_and_models_are_one_line(models, tmp_path):
    csv = write_csv(tmp_path / "run.csv", signal_data(50))
    (tmp_path / "two.csv").write_text("x,y\n1,2\n3,4\n")
    line = one_line_error(run_cli("edge-run", "--sensor", f"csv:{tmp_path / 'two.csv'}", "--model",
                                  str(models["anomaly"])))
    assert "no column 'z'" in line
    line = one_line_error(run_cli("edge-run", "--sensor", f"csv:{csv}", "--source", str(csv), "--model",
                                  str(models["anomaly"])))
    assert "--source and --sensor" in line
    line = one_line_error(run_cli("edge-run", "--source", str(tmp_path), "--model", str(models["anomaly"])))
    assert "--sensor" in line and "sensor_anomaly" in line
    line = one_line_error(run_cli("edge-run", "--sensor", f"udp://127.0.0.1:{free_port()}?channels=x,y",
                                  "--model", str(models["anomaly"])))
    assert "x,y,z" in line
    line = one_line_error(run_cli("edge-run", "--sensor", f"csv:{csv}", "--model", str(image_model(tmp_path))))
    assert "judges images" in line
    line = one_line_error(run_cli("edge-run", "--sensor", f"csv:{csv}", "--model", str(models["anomaly"]),
                                  "--roi", "0,0,10,10", "--save-defects", str(tmp_path / "rejects")))
    assert "--roi, --save-defects are for camera and video sources" in line and not (tmp_path / "rejects").exists()
    for spec, expected in ((f"csv:{csv}?rat=max", "unknown option rat (this source reads rate)"),
                           (f"csv:{csv}?rate=max&rate=1", "rate is given more than once"),  # the last one won
                           (f"csv:{csv}?rate=inf", "rate=inf is not HZ > 0"),  # had been an OverflowError
                           (f"udp://127.0.0.1:{free_port()}?foo=1", "unknown option foo"), ("csv:", "name the file")):
        line = one_line_error(run_cli("edge-run", "--sensor", spec, "--model", str(models["anomaly"])))
        assert expected in line, spec


def test_a_silent_sensor_is_waited_for_until_the_outage_limit(models):
    """Nobody sends to the port: the run waits (a sensor may start later), and stops at --max-outage-s."""
    started = time.monotonic()
    proc = run_cli("edge-run", "--sensor", f"udp://127.0.0.1:{free_port()}", "--model", str(models["anomaly"]),
                   "--quiet", "--max-outage-s", "1", timeout=60)
    assert final_error(proc).endswith("sent no samples for more than 1 s (--max-outage-s): check the sensor and "
                                      "its address, then restart")
    assert 1 <= time.monotonic() - started < 30


def test_pymodbus_is_loaded_only_for_a_modbus_source(models, tmp_path):
    code = ("import sys\nfrom edge_runtime.sensor_sources import open_sensor_source\n"
            f"open_sensor_source('udp://127.0.0.1:9', {list(CHANNELS)!r})\n"
            f"open_sensor_source('csv:x.csv', {list(CHANNELS)!r})\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pymodbus', 'edge_line', 'torch')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


# --- UDP ---------------------------------------------------------------------------------------------------------

def start_edge_run(args: list[str]) -> subprocess.Popen:
    proc = subprocess.Popen([str(BIN / "edge-run"), *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    lines = []
    for line in proc.stderr:  # the source is open once edge-run says what runs on what
        lines.append(line)
        if "→" in line:
            threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
            proc.said = lines
            return proc
    raise AssertionError(f"edge-run never started: {''.join(lines)}")


def test_udp_lost_reordered_duplicated_and_garbled_datagrams(models, tmp_path):
    """60 datagrams of 10 samples: #10 lost, #21 before #20, #30 twice, NaN in #40, three garbled ones."""
    data = signal_data(600, seed=2)
    data[405] = [np.nan, 0, 0]
    t0 = time.time()
    good = {k: encode_datagram(10 * k, t0 + 10 * k * 1e-3, 1e-3, data[10 * k:10 * k + 10]) for k in range(60)}
    order = [k for k in range(60) if k not in (10, 20, 21)]
    order[order.index(22):order.index(22)] = [21, 20]
    order.insert(order.index(30), 30)
    valid = good[5]
    garbled = [b"XXXX" + valid[4:], valid[:-3], encode_datagram(999, t0, 1e-3, np.zeros((10, 2)))]
    sends = order[:15] + garbled + order[15:]
    runs = [(0, 100), (110, 200), (210, 600)]
    expected = expected_windows(runs)
    port = free_port()
    jsonl = tmp_path / "v.jsonl"
    proc = start_edge_run(["--sensor", f"udp://127.0.0.1:{port}", "--model", str(models["anomaly"]),
                           "--jsonl", str(jsonl), "--max-windows", str(len(expected)), "--quiet"])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for item in sends:
                sender.sendto(good[item] if isinstance(item, int) else item, ("127.0.0.1", port))
                time.sleep(0.001)
        out, _ = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, "".join(proc.said)
    verdicts, gaps, summary = split(jsonl_rows(jsonl))
    nan_windows = [v for v in verdicts if v["first_sample"] <= 405 <= v["last_sample"]]
    assert len(nan_windows) == 2 and all(v["verdict"] == "invalid" and v["flags"] == ["non_finite"]
                                         for v in nan_windows)
    check_verdicts(models["anomaly"], verdicts, data, runs)
    assert [(g["after_sample"], g["resumed_sample"], g["missed"]) for g in gaps] == [(99, 110, 10), (199, 210, 10)]
    samples = summary["samples"]
    assert (samples["gaps"], samples["missed"], samples["late"], samples["lost"], samples["duplicates"]) == \
        (2, 20, 10, 10, 10)
    assert samples["problems"] == {"bad_magic": 1, "bad_size": 1, "wrong_channels": 1}
    assert samples["non_finite_windows"] == 2 and summary["invalid"] == 2
    said = "".join(proc.said)
    assert said.count("bad_magic") == 1 and "not used as input" in said


# --- serial ------------------------------------------------------------------------------------------------------

class PtyPair:
    """socat's two linked ptys: edge-run opens `device`, the test writes to `peer`; stop() makes the port vanish."""

    def __init__(self, folder: Path):
        self.device, self.peer, self.proc = folder / "ttyLINE", folder / "ttyPEER", None

    def start(self) -> "PtyPair":
        self.proc = subprocess.Popen(["socat", f"pty,raw,echo=0,link={self.device}",
                                      f"pty,raw,echo=0,link={self.peer}"], stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while not (self.device.exists() and self.peer.exists()):
            assert time.monotonic() < deadline, "socat made no ptys"
            time.sleep(0.02)
        self.fd = os.open(self.peer, os.O_WRONLY | os.O_NOCTTY)
        return self

    def write(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def stop(self) -> None:
        os.close(self.fd)
        self.proc.terminate()
        self.proc.wait(timeout=5)


def lines_of(rows: np.ndarray) -> str:
    return "".join(f"{x:.6f}, {y:.6f}\t{z:.6f}\r\n" for x, y, z in rows)


@pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")
def test_serial_cut_line_and_a_port_that_disappears(models, tmp_path):
    data = np.round(signal_data(132, seed=3), 6)  # what the lines carry
    pty = PtyPair(tmp_path).start()
    source = SerialSource(str(pty.device), 115200, len(CHANNELS), "serial")
    records, stop = [], threading.Event()
    model = EdgeModel(models["anomaly"])
    summary = {}

    def run():
        summary["s"] = run_sensor_pipeline(source, model, [lambda record, frame=None: records.append(record)],
                                           stop=stop, max_windows=10)

    runner = threading.Thread(target=run)
    runner.start()
    time.sleep(0.2)
    pty.write("garbage from before the port opened\n")  # dropped: the port may have opened mid-line
    pty.write(lines_of(data[:50]) + "1.0,2.0\n" + lines_of(data[51:101]) + "3.25,4.5")  # row 50 short, 101 cut
    time.sleep(0.3)
    pty.stop()  # the port disappears with row 101 half sent
    time.sleep(0.4)
    pty.start()
    deadline = time.monotonic() + 10
    while not any(r["type"] == "outage" for r in records):  # edge-run has the port again
        assert time.monotonic() < deadline, records[-3:]
        time.sleep(0.02)
    pty.write("\n" + lines_of(data[102:132]))
    runner.join(timeout=20)
    stop.set()
    pty.stop()
    assert not runner.is_alive()
    verdicts = [r for r in records if r["type"] == "verdict"]
    gaps = [r for r in records if r["type"] == "gap"]
    outages = [r for r in records if r["type"] == "outage"]
    check_verdicts(models["anomaly"], verdicts, data, [(0, 50), (51, 101), (102, 132)])
    assert [(g["reason"], g["missed"]) for g in gaps] == [("malformed_line", 1), ("cut_line", 1)]
    assert len(outages) == 1 and outages[0]["seconds"] >= 0.3
    assert summary["s"].samples["problems"] == {"malformed_line": 1, "cut_line": 1}


# --- units: the window rule and the decoders ---------------------------------------------------------------------

def test_windows_match_the_rule_for_any_blocks_strides_and_nan():
    rng = np.random.default_rng(1)
    for _ in range(100):
        window, stride = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        windower = Windower(window, stride, 2)
        data = rng.normal(size=(120, 2)).astype(np.float32)
        data[rng.integers(0, 120, 3), 1] = np.inf
        got, i = [], 0
        while i < 120:
            n = min(int(rng.integers(1, 30)), 120 - i)
            got += windower.push(Samples(i, np.arange(i, i + n) * 1.0, data[i:i + n], 0.0))
            i += n
        assert [(w.first_index, w.last_index) for w in got] == \
            [(s, s + window - 1) for s in range(0, 120 - window + 1, stride)]
        for w in got:
            part = data[w.first_index:w.last_index + 1]
            assert np.array_equal(w.values, part) and (w.flags == ("non_finite",)) == bool(np.isinf(part).any())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=200),
                 st.builds(lambda n, c, cut, flip: _mutated(n, c, cut, flip), st.integers(0, 5), st.integers(1, 4),
                           st.integers(0, 40), st.integers(0, 60))),
       st.integers(1, 4))
def test_datagram_decoder_never_raises(data, channels):
    out = decode_datagram(data, channels)
    assert isinstance(out, (Samples, Problem))
    if isinstance(out, Samples):
        assert out.values.dtype == np.float32 and out.values.shape[1] == channels
        assert len(data) == HEADER.size + out.values.size * 4 and len(out.times) == len(out.values)
    else:
        assert out.kind in ("bad_size", "bad_magic", "bad_version", "wrong_channels", "bad_time") and not out.breaks


def _mutated(samples: int, channels: int, cut: int, flip: int) -> bytes:
    data = bytearray(encode_datagram(7, 1.0, 1e-3, np.ones((samples, channels))))
    if flip < len(data):
        data[flip] ^= 0xFF
    return bytes(data[:len(data) - cut] if cut < len(data) else data)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=12), st.integers(1, 4))
def test_serial_parser_never_raises(chunks, channels):
    splitter = LineSplitter()
    for chunk in chunks:
        for item in splitter.feed(chunk):
            if isinstance(item, Problem):
                assert item.kind == "long_line"
                continue
            out = parse_line(item, channels)
            assert isinstance(out, Problem) and out.kind == "malformed_line" and out.lost == 1 or \
                (isinstance(out, np.ndarray) and out.shape == (channels,) and out.dtype == np.float32)
        assert len(splitter.buffer) <= 4096
    cut = splitter.cut()
    assert cut is None or cut.kind == "cut_line"
