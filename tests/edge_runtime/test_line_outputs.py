"""edge-run's stdlib outputs and service hooks, each against a real peer: Prometheus scrapes, an HTTP receiver,
a reject command, systemd's notify socket, a model file replaced under a running station."""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import onnx
import pytest

from clitools import BIN, ROOT, busy_port, free_port, jsonl_rows, one_line_error, run_cli
from peers import HttpReceiver


def start(*args, env=None):
    return subprocess.Popen([str(BIN / "edge-run"), *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


def wait_for(predicate, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if predicate():
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def test_prometheus_endpoint_counts_verdicts_latency_and_the_model(demo_data, artifacts, tmp_path):
    port = free_port()
    model = artifacts / "model.int8.onnx"
    run = start("--source", str(demo_data / "brick" / "test" / "good"), "--loop", "--model", str(model),
                "--frozen-frames", "0", "--quiet", "--metrics-port", str(port))
    try:
        assert wait_for(lambda: scrape(port)["lineside_frames_total"] >= 50)
        first = scrape(port)
        assert wait_for(lambda: scrape(port)["lineside_frames_total"] > first["lineside_frames_total"])
        m = scrape(port)
        verdicts = {k: v for k, v in m.items() if k.startswith("lineside_verdicts_total")}
        assert sum(verdicts.values()) == m["lineside_frames_total"]  # same scrape, same lock
        buckets = [v for k, v in m.items() if k.startswith('lineside_stage_latency_seconds_bucket{stage="inference"')]
        assert buckets == sorted(buckets) and buckets[-1] == m['lineside_stage_latency_seconds_count{stage="inference"}']
        info = [k for k in m if k.startswith("lineside_model_info")][0]
        assert 'precision="int8"' in info and 'task="classify"' in info
        assert m["lineside_frame_age_seconds"] > 0
    finally:
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=30)
    assert run.returncode == 0, err
    assert json.loads(out.splitlines()[-1])["frames"] >= m["lineside_frames_total"]


def test_metrics_port_in_use_is_one_line(demo_data, artifacts):
    with busy_port() as port:
        proc = run_cli("edge-run", "--source", str(demo_data / "brick" / "test" / "good"), "--model",
                       str(artifacts / "model.int8.onnx"), "--metrics-port", str(port))
    assert "cannot be served" in one_line_error(proc)


@pytest.mark.parametrize("flag", [("--web-auth", "auth.txt"), ("--mqtt-qos", "2"), ("--mqtt-retain",),
                                  ("--modbus-pulse-ms", "50"), ("--jsonl-max-mb", "3"),
                                  ("--mqtt-qos", "1"), ("--modbus-pulse-ms", "100"),  # the defaults, given: said too
                                  ("--output-failure", "stop"), ("--output-queue", "10")],
                         ids=lambda f: " ".join(f))
def test_an_option_that_tunes_an_absent_output_is_refused(demo_data, artifacts, flag):
    """--mqtt-qos without --mqtt would otherwise be dropped without a word, and the user thinks it is set."""
    line = one_line_error(run_cli("edge-run", "--source", str(demo_data / "brick" / "test" / "good"), "--model",
                                  str(artifacts / "model.int8.onnx"), *flag))
    assert f"{flag[0]} has no effect without" in line


def mixed_folder(demo_data, tmp_path):
    """Good and defective test images in one folder, as a camera would show them."""
    folder = tmp_path / "parts"
    folder.mkdir()
    for kind in sorted((demo_data / "brick" / "test").iterdir()):
        for image in sorted(kind.iterdir()):
            shutil.copy(image, folder / f"{kind.name}_{image.name}")
    return folder


def test_webhook_and_command_get_every_reject(demo_data, artifacts, tmp_path):
    receiver = HttpReceiver()
    fired = tmp_path / "fired.txt"
    script = tmp_path / "fire-gate"
    script.write_text(f"#!/bin/sh\necho \"$@\" >> {fired}\n")
    script.chmod(0o755)
    log = tmp_path / "v.jsonl"
    try:
        proc = run_cli("edge-run", "--source", str(mixed_folder(demo_data, tmp_path)), "--model",
                       str(artifacts / "model.int8.onnx"), "--jsonl", str(log), "--quiet", "--frozen-frames", "0",
                       "--webhook", receiver.url, "--on-reject", f"{script} --line 3")
    finally:
        receiver.close()
    assert proc.returncode == 0, proc.stderr
    rejects = [r for r in jsonl_rows(log) if r["type"] == "verdict" and r["verdict"] == "defect"]
    assert len(rejects) >= 10
    assert sorted(b["frame_id"] for b in receiver.bodies) == [r["frame_id"] for r in rejects]
    lines = fired.read_text().splitlines()
    assert sorted(lines) == sorted(f"--line 3 defect {r['label']} {r['score']} {r['frame_id']}" for r in rejects)
    outputs = json.loads(proc.stdout.splitlines()[-1])["outputs"]
    assert outputs["webhook"]["delivered"] == outputs["command"]["delivered"] == len(rejects)


def test_a_slow_webhook_never_holds_the_line_and_its_losses_are_counted(demo_data, artifacts, tmp_path):
    receiver = HttpReceiver(delay_s=0.5)  # a receiver that takes half a second per reject
    log = tmp_path / "v.jsonl"
    try:
        proc = run_cli("edge-run", "--source", str(mixed_folder(demo_data, tmp_path)), "--model",
                       str(artifacts / "model.int8.onnx"), "--jsonl", str(log), "--quiet", "--frozen-frames", "0",
                       "--webhook", receiver.url, "--output-queue", "2")
    finally:
        receiver.close()
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    rejects = sum(1 for r in jsonl_rows(log) if r["type"] == "verdict" and r["verdict"] == "defect")
    assert summary["frames"] == 48  # every frame decided and recorded
    hook = summary["outputs"]["webhook"]
    assert hook["dropped"] > 0 and hook["delivered"] + hook["dropped"] + hook["failed"] == rejects
    assert summary["latency_ms"]["sink"]["p99"] < 100  # handing over to the queue, not waiting for the receiver


def test_dead_output_is_said_once_and_stops_the_line_only_when_told(demo_data, artifacts, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}/rejects"
    args = ("edge-run", "--source", str(demo_data / "brick" / "test" / "hole"), "--model",
            str(artifacts / "model.int8.onnx"), "--quiet", "--frozen-frames", "0", "--webhook", dead)
    going = run_cli(*args)
    assert going.returncode == 0 and going.stderr.count("output webhook failing") == 1
    log = tmp_path / "v.jsonl"
    stopped = run_cli(*args, "--output-failure", "stop", "--jsonl", str(log), "--loop")
    assert stopped.returncode != 0 and "Traceback" not in stopped.stderr
    line = stopped.stderr.splitlines()[-1]
    assert line.startswith("error: output webhook failed") and "line was stopped" in line
    records = jsonl_rows(log)
    assert records[-1]["type"] == "summary" and records[-1]["frames"] == sum(r["type"] == "verdict" for r in records)


def test_systemd_gets_ready_watchdog_and_stopping(demo_data, artifacts, tmp_path):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(10)
        env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"}
        run = start("--source", str(demo_data / "line_clip.mp4"), "--realtime", "--max-frames", "45", "--model",
                    str(artifacts / "model.int8.onnx"), "--roi", "512,232,256,256", "--quiet", env=env)
        messages = []
        while not messages or messages[-1] != "STOPPING=1":
            messages.append(sock.recv(64).decode())
        run.communicate(timeout=30)
    assert messages[0] == "READY=1" and run.returncode == 0
    assert messages.count("WATCHDOG=1") >= 8  # 1.5 s of line, a ping each 0.1 s (half of WATCHDOG_USEC)


def test_install_service_writes_a_hardened_notify_unit(demo_data, artifacts, tmp_path):
    config = tmp_path / "st3.yaml"
    config.write_text(f"model: {artifacts / 'model.int8.onnx'}\ncamera: 0\njsonl: verdicts.jsonl\n")
    proc = run_cli("edge-run", "install-service", "--config", str(config), "--unit-dir", str(tmp_path / "units"),
                   "--user", "station")
    assert proc.returncode == 0, proc.stderr
    unit = (tmp_path / "units" / "lineside-st3.service").read_text()
    for line in ("Type=notify", "WatchdogSec=30", "Restart=on-failure", "User=station", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "PrivateTmp=yes", f"ReadWritePaths={tmp_path}", "DeviceAllow=char-video4linux rw",
                 f"--config {config}"):
        assert line in unit, line
    if shutil.which("systemd-analyze"):
        assert "Type" not in subprocess.run(["systemd-analyze", "verify", str(tmp_path / "units" / "lineside-st3.service")],
                                            capture_output=True, text=True).stderr
    station = tmp_path / "st7" / "line.yaml"  # each station's folder holds a line.yaml: units named by the folder
    station.parent.mkdir()
    station.write_text(config.read_text())
    assert run_cli("edge-run", "install-service", "--config", str(station), "--unit-dir", str(tmp_path / "units"),
                   "--user", "station").returncode == 0
    assert sorted(p.name for p in (tmp_path / "units").iterdir()) == ["lineside-st3.service", "lineside-st7.service"]
    config.write_text("camera: 0\n")
    assert "names no model" in one_line_error(run_cli("edge-run", "install-service", "--config", str(config),
                                                      "--unit-dir", str(tmp_path / "units")))
    # what edge-run would refuse at start is refused here, before a unit that only crash-loops is written
    for text, expected in (("max_frames: [1, 2]\n", "one value, not a list"), ("source: a.mp4\n", "not --camera and --source"),
                           ("metrics_port: 9108.5\n", "--metrics-port ':9108.5'")):
        config.write_text(f"model: {artifacts / 'model.int8.onnx'}\ncamera: 0\n{text}")
        assert expected in one_line_error(run_cli("edge-run", "install-service", "--config", str(config),
                                                  "--unit-dir", str(tmp_path / "bad")))
    config.write_text(f"model: {artifacts / 'model.int8.onnx'}\ncamera: 0\n")
    line = one_line_error(run_cli("edge-run", "install-service", "--config", str(config), "--unit-dir",
                                  str(tmp_path / "bad"), "--name", "../../escape"))
    assert "not a systemd unit name" in line and not (tmp_path / "bad").exists() and not (tmp_path / "escape.service").exists()


def test_model_swaps_between_frames_and_a_bad_file_is_refused(demo_data, artifacts, tmp_path):
    live = tmp_path / "part.onnx"
    shutil.copy(artifacts / "model.fp32.onnx", live)
    log = tmp_path / "v.jsonl"
    run = start("--source", str(demo_data / "brick" / "test" / "good"), "--loop", "--model", str(live),
                "--jsonl", str(log), "--quiet", "--frozen-frames", "0", "--watch-model", "--model-check-s", "60")
    try:
        assert wait_for(lambda: log.exists() and len(log.read_text().splitlines()) > 20)
        staged = tmp_path / "part.onnx.new"
        shutil.copy(artifacts / "model.int8.onnx", staged)
        os.replace(staged, live)  # the way to deliver a model: write beside it, then rename
        assert wait_for(lambda: any(r["type"] == "model" for r in jsonl_rows(log)))
        broken = onnx.load(str(artifacts / "model.int8.onnx"))
        del broken.metadata_props[:]
        onnx.save(broken, str(staged))
        os.replace(staged, live)
        assert wait_for(lambda: any(r["type"] == "model_refused" for r in jsonl_rows(log)))
        count = len(jsonl_rows(log))
        assert wait_for(lambda: len(jsonl_rows(log)) > count + 20)  # still deciding, with the int8 model
        shutil.copy(artifacts / "model.fp32.onnx", live)  # rewritten in place, then SIGHUP
        run.send_signal(signal.SIGHUP)
        assert wait_for(lambda: sum(r["type"] == "model" for r in jsonl_rows(log)) == 2)
    finally:
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=30)
    assert run.returncode == 0, err
    records = jsonl_rows(log)
    events = [r for r in records if r["type"] in ("model", "model_refused")]
    assert [e["type"] for e in events] == ["model", "model_refused", "model"]
    assert "no lineside metadata" in events[1]["reason"]
    shas = [r["model_sha256"] for r in records if r["type"] == "verdict"]
    first, second = events[0]["previous_sha256"], events[0]["model"]["sha256"]
    assert shas[0] == first and second in shas and shas[-1] == first
    # never a mixture: the model changes only at the swap records
    changes = sum(1 for a, b in zip(shas, shas[1:]) if a != b)
    assert changes == 2
    summary = json.loads(out.splitlines()[-1])
    assert summary["model_swaps"] == 2 and summary["model_refusals"] == 1


def test_manifest_refuses_an_altered_model(artifacts, demo_data, tmp_path):
    altered = tmp_path / "model.int8.onnx"
    data = bytearray((artifacts / "model.int8.onnx").read_bytes())
    altered.write_bytes(bytes(data))
    ok = run_cli("edge-run", "--source", str(demo_data / "brick" / "test" / "good"), "--model", str(altered),
                 "--manifest", str(artifacts / "manifest.json"), "--quiet")
    assert ok.returncode == 0, ok.stderr
    graph = onnx.load(str(altered))
    graph.doc_string = "changed on the way"
    onnx.save(graph, str(altered))
    proc = run_cli("edge-run", "--source", str(demo_data / "brick" / "test" / "good"), "--model", str(altered),
                   "--manifest", str(artifacts / "manifest.json"))
    assert "does not match the sha256" in one_line_error(proc)


def test_the_example_station_config_names_only_real_flags():
    from edge_runtime.cli import edge_run
    from edge_runtime.line_config import load_line_config

    options = load_line_config(ROOT / "deploy" / "line.example.yaml", {p.name for p in edge_run.params})
    assert options["mqtt"].startswith("mqtt://") and options["modbus_reject"] and options["watch_model"] == 1


def test_a_full_disk_costs_counted_records_never_the_line(demo_data, artifacts, tmp_path):
    """/dev/full refuses every write with ENOSPC, as a full disk does: decisions go on, the loss is counted."""
    good = str(demo_data / "brick" / "test" / "good")
    args = ["--source", good, "--loop", "--max-frames", "60", "--model", str(artifacts / "model.int8.onnx"),
            "--frozen-frames", "0", "--quiet", "--jsonl", "/dev/full", "--output-queue", "10"]
    proc = run_cli("edge-run", *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("output jsonl failing") == 1 and "No space left on device" in proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert summary["frames"] == 60
    assert summary["outputs"]["jsonl"]["dropped"] == 61 and summary["outputs"]["jsonl"]["delivered"] == 0  # + summary
    stopped = run_cli("edge-run", *args, "--output-failure", "stop")  # fail-safe: a station that cannot log stops
    assert stopped.returncode != 0 and "Traceback" not in stopped.stderr
    last = stopped.stderr.splitlines()[-1]
    assert last.startswith("error: output jsonl failed") and "stopped" in last


def test_a_disk_that_fills_and_frees_again_loses_nothing_the_backlog_holds(demo_data, artifacts, tmp_path):
    """A real 4 MB tmpfs filled to the brim, freed while edge-run goes on: every record lands, once, in order."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True).returncode:
        import pytest

        pytest.skip("cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)")
    try:
        filler = disk / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)  # fill it: the first record already finds no space
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        log = disk / "v.jsonl"
        run = start("--source", str(demo_data / "brick" / "test" / "good"), "--loop", "--max-frames", "2000",
                    "--model", str(artifacts / "model.int8.onnx"), "--frozen-frames", "0", "--quiet",
                    "--jsonl", str(log), "--output-queue", "5000")
        said = ""
        while "output jsonl failing" not in said and run.poll() is None:
            said = run.stderr.readline()
        assert "No space left" in said, said
        filler.unlink()  # space again, while the line is running
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
        summary = json.loads(out.splitlines()[-1])
        assert summary["outputs"]["jsonl"]["dropped"] == 0 and summary["outputs"]["jsonl"]["failed"] >= 1
        verdicts = [r for r in jsonl_rows(log) if r["type"] == "verdict"]
        assert [v["frame_id"] for v in verdicts] == list(range(2000))  # all of them, once, in order
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)  # lazy: even with a file still open
