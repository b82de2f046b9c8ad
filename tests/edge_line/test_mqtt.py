"""--mqtt against a real mosquitto broker started by the test: every record arrives, across a restart too."""

import json
import subprocess
import threading
import time

import pytest

from clitools import BIN, ROOT, jsonl_rows, one_line_error, run_cli
from peers import Mosquitto, Subscriber, mosquitto_path

pytestmark = pytest.mark.skipif(mosquitto_path() is None, reason="mosquitto not installed (.ci/run installs it)")
BASE = "lineside/line1/st3"


def clip_run(demo_data, artifacts, tmp_path, port, frames, *extra):
    """edge-run playing the demo clip at camera pace (30 fps), publishing to the broker."""
    return subprocess.Popen([str(BIN / "edge-run"), "--source", str(demo_data / "line_clip.mp4"), "--realtime",
                             "--loop", "--max-frames", str(frames), "--model", str(artifacts / "model.int8.onnx"),
                             "--roi", "512,232,256,256", "--jsonl", str(tmp_path / "v.jsonl"), "--quiet",
                             "--mqtt", f"mqtt://127.0.0.1:{port}/{BASE}", *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and not predicate():
        time.sleep(0.1)
    return predicate()


def test_every_verdict_arrives_with_online_and_offline_status(demo_data, artifacts, tmp_path):
    broker = Mosquitto(tmp_path / "broker").start()
    sub = Subscriber(broker.port, f"{BASE}/#")
    try:
        time.sleep(0.3)
        run = clip_run(demo_data, artifacts, tmp_path, broker.port, 45)
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        decided = [r["frame_id"] for r in jsonl_rows(tmp_path / "v.jsonl") if r["type"] == "verdict"]
        assert wait_for(lambda: len({r["frame_id"] for r in sub.records("/verdict")}) == len(decided))
        assert sorted({r["frame_id"] for r in sub.records("/verdict")}) == sorted(decided)
        assert wait_for(lambda: sub.payloads(f"{BASE}/status")[-1:] == ["offline"])
        assert "online" in sub.payloads(f"{BASE}/status")
        assert sub.records("/summary")[0]["frames"] == 45
        assert json.loads(out.splitlines()[-1])["outputs"]["mqtt"]["dropped"] == 0
    finally:
        sub.close()
        broker.stop()


def test_a_broker_restart_loses_nothing_that_fits_the_queue(demo_data, artifacts, tmp_path):
    broker = Mosquitto(tmp_path / "broker").start()
    sub = Subscriber(broker.port, f"{BASE}/verdict")
    try:
        time.sleep(0.3)
        run = clip_run(demo_data, artifacts, tmp_path, broker.port, 150)  # five seconds of line
        time.sleep(1.5)
        broker.stop()
        time.sleep(1.5)  # the station keeps inspecting; records wait in the output's queue
        broker.start()
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        decided = {r["frame_id"] for r in jsonl_rows(tmp_path / "v.jsonl") if r["type"] == "verdict"}
        assert len(decided) == 150
        assert wait_for(lambda: {r["frame_id"] for r in sub.records("/verdict")} >= decided, timeout=30), (
            sorted(decided - {r["frame_id"] for r in sub.records("/verdict")})[:10])
        stats = json.loads(out.splitlines()[-1])["outputs"]["mqtt"]
        assert stats["dropped"] == 0 and stats["delivered"] >= 150
    finally:
        sub.close()
        broker.stop()


def test_broker_down_at_start_the_station_inspects_and_delivers_later(demo_data, artifacts, tmp_path):
    broker = Mosquitto(tmp_path / "broker")  # not started yet
    run = clip_run(demo_data, artifacts, tmp_path, broker.port, 90)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: [lines.append(line) for line in run.stderr], daemon=True)
    reader.start()
    try:
        # the broker comes up only once edge-run has found it missing (a fixed sleep raced edge-run's start-up)
        assert wait_for(lambda: any("does not answer yet" in line for line in lines), timeout=60), lines
        broker.start()
        sub = Subscriber(broker.port, f"{BASE}/verdict")
        assert run.wait(timeout=120) == 0, "".join(lines)
        out = run.stdout.read()  # a few lines: they fit the pipe while edge-run runs
        reader.join(timeout=10)
        assert json.loads(out.splitlines()[-1])["outputs"]["mqtt"]["delivered"] >= 90
        sub.close()
    finally:
        run.kill()
        broker.stop()


def test_a_small_queue_drops_oldest_first_and_counts_it(demo_data, artifacts, tmp_path):
    broker = Mosquitto(tmp_path / "broker")  # never started: nothing can be delivered
    run = clip_run(demo_data, artifacts, tmp_path, broker.port, 30, "--output-queue", "5")
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    stats = json.loads(out.splitlines()[-1])["outputs"]["mqtt"]
    # 30 verdicts + stats + summary records, none delivered: every one is counted as dropped or failed
    assert stats["delivered"] == 0 and stats["dropped"] + stats["failed"] >= 30


def test_wrong_credentials_are_one_clear_line(demo_data, artifacts, tmp_path):
    passwords = tmp_path / "passwd"
    passwords.write_text("station:right\n")
    subprocess.run(["mosquitto_passwd", "-U", str(passwords)], check=True)
    broker = Mosquitto(tmp_path / "broker", password_file=passwords).start()
    try:
        auth = tmp_path / "mqtt.auth"
        auth.write_text("station:wrong\n")
        proc = run_cli("edge-run", "--source", str(demo_data / "brick" / "test" / "good"), "--model",
                       str(artifacts / "model.int8.onnx"), "--mqtt", f"mqtt://127.0.0.1:{broker.port}/{BASE}",
                       "--mqtt-auth", str(auth))
        line = one_line_error(proc)
        assert "refused the login" in line and "wrong" not in line  # the password is never printed
        auth.write_text("station:right\n")
        ok = run_cli("edge-run", "--source", str(demo_data / "brick" / "test" / "good"), "--model",
                     str(artifacts / "model.int8.onnx"), "--mqtt", f"mqtt://127.0.0.1:{broker.port}/{BASE}",
                     "--mqtt-auth", str(auth), "--quiet")
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout.splitlines()[-1])["outputs"]["mqtt"]["delivered"] >= 16
    finally:
        broker.stop()


def test_bad_mqtt_url_is_one_line(demo_data, artifacts):
    proc = run_cli("edge-run", "--source", str(demo_data / "brick" / "test" / "good"), "--model",
                   str(artifacts / "model.int8.onnx"), "--mqtt", "http://broker/topic")
    assert "expected mqtt://HOST[:PORT]/BASE" in one_line_error(proc)
    proc = run_cli("edge-run", "--source", str(demo_data / "brick" / "test" / "good"), "--model",
                   str(artifacts / "model.int8.onnx"), "--mqtt", "mqtt://broker:99999/lineside")
    assert "port must be a number from 1 to 65535" in one_line_error(proc)


def test_a_ca_file_that_cannot_serve_is_one_line_before_the_line_starts(demo_data, artifacts, tmp_path):
    args = ("edge-run", "--source", str(demo_data / "brick" / "test" / "good"), "--model",
            str(artifacts / "model.int8.onnx"), "--mqtt")
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("not a certificate\n")
    line = one_line_error(run_cli(*args, f"mqtts://127.0.0.1:1/{BASE}", "--mqtt-ca", str(tmp_path / "missing.pem")))
    assert "missing.pem" in line and "No such file" in line
    line = one_line_error(run_cli(*args, f"mqtts://127.0.0.1:1/{BASE}", "--mqtt-ca", str(not_pem)))
    assert "ca.txt" in line and "PEM" in line
    line = one_line_error(run_cli(*args, f"mqtt://127.0.0.1:1/{BASE}", "--mqtt-ca", str(not_pem)))
    assert "plain MQTT" in line and "mqtts://127.0.0.1:8883" in line


def test_tls_with_the_plant_ca_delivers_and_a_wrong_ca_is_never_trusted(demo_data, artifacts, tmp_path):
    from peers import self_signed_tls

    ca, cert, key = self_signed_tls(tmp_path / "tls")
    broker = Mosquitto(tmp_path / "broker", tls=(ca, cert, key)).start()
    try:
        args = ("edge-run", "--source", str(demo_data / "brick" / "test" / "good"), "--model",
                str(artifacts / "model.int8.onnx"), "--quiet", "--mqtt", f"mqtts://127.0.0.1:{broker.port}/{BASE}")
        ok = run_cli(*args, "--mqtt-ca", str(ca))
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout.splitlines()[-1])["outputs"]["mqtt"]["delivered"] >= 16
        other, _, _ = self_signed_tls(tmp_path / "other")  # a CA that did not sign the broker's certificate
        refused = run_cli(*args, "--mqtt-ca", str(other))
        stats = json.loads(refused.stdout.splitlines()[-1])["outputs"]["mqtt"]
        assert stats["delivered"] == 0 and "check that --mqtt-ca signed" in refused.stderr
    finally:
        broker.stop()
