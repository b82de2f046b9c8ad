"""--web tested as a person would: a real headless browser opens the page and watches it move."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from clitools import BIN, ROOT, busy_port, free_port, one_line_error, run_cli
from edge_runtime.web import parse_address

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _get(url: str, headers: dict | None = None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except urllib.error.URLError:
        return 0, b""  # not listening (yet)


def _start(demo_data, artifacts, tmp_path, port, env=None):
    jsonl = tmp_path / "v.jsonl"
    proc = subprocess.Popen([str(BIN / "edge-run"), "--source", str(demo_data / "line_clip.mp4"), "--realtime",
                             "--loop", "--roi", "512,232,256,256", "--model", str(artifacts / "model.int8.onnx"), "--jsonl",
                             str(jsonl), "--web", f":{port}", "--quiet"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while time.time() < deadline and _get(f"http://127.0.0.1:{port}/readyz")[0] != 200:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.1)
    return proc, jsonl


def _browser(url: str, *args: str, tries: int = 3) -> str:
    for attempt in range(tries):
        # a profile of its own each time: a browser killed on timeout may leave helpers holding the old one
        profile = ROOT / ".pytest_cache" / f"chromium-{os.getpid()}-{attempt}"
        command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                   "--window-size=1300,900", "--virtual-time-budget=3000", *args, url]
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=30).stdout
        except subprocess.TimeoutExpired:
            # headless Chromium now and then never finishes a page that streams, on a loaded machine
            # (seen with --screenshot); a fresh browser is the real thing again, not a lowered bar. A call
            # takes 5 s here: one stuck for 90 s had cost the suite 103 s (2026-11-28), so 30 s and a third try
            if attempt == tries - 1:
                raise
        finally:
            shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (.ci/run installs it)")
def test_the_page_shows_live_frames_and_rising_counters(demo_data, artifacts, tmp_path):
    port = free_port()
    proc, jsonl = _start(demo_data, artifacts, tmp_path, port)
    try:
        page = f"http://127.0.0.1:{port}/"
        dom = _browser(page, "--dump-dom")
        loaded = int(re.search(r'id="live"[^>]*data-loaded="(\d+)"', dom).group(1))
        shown = int(re.search(r'id="frames">(\d+)<', dom).group(1))
        assert loaded >= 3 and shown > 0  # frames arrived in the video element, counters filled in
        shot = tmp_path / "web.png"
        _browser(page, f"--screenshot={shot}", "--timeout=10000")  # stop loading the stream after 10 s, then shoot
        assert shot.stat().st_size > 20_000
        first = json.loads(_get(page + "api/status")[1])
        time.sleep(1.0)
        second = json.loads(_get(page + "api/status")[1])
        assert second["frames"] > first["frames"] >= shown  # the counters rise
        assert sum(second["verdicts"].values()) == second["frames"]
        served = json.loads(_get(page + f"api/verdicts?since={second['frames'] - 20}")[1])
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    written = {r["frame_id"]: r for r in map(json.loads, jsonl.read_text().splitlines()) if r["type"] == "verdict"}
    assert served and all(written[r["frame_id"]] == r for r in served)  # the page serves exactly what was logged
    assert second["frames"] <= len(written)


def test_basic_auth_guards_everything_but_health(demo_data, artifacts, tmp_path):
    import base64

    port = free_port()
    env = {**os.environ, "LINESIDE_WEB_USER": "line3", "LINESIDE_WEB_PASSWORD": "s3cret"}
    proc, _ = _start(demo_data, artifacts, tmp_path, port, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        assert _get(base + "/api/status")[0] == 401 and _get(base + "/")[0] == 401
        good = {"Authorization": "Basic " + base64.b64encode(b"line3:s3cret").decode()}
        bad = {"Authorization": "Basic " + base64.b64encode(b"line3:guess").decode()}
        assert _get(base + "/api/status", good)[0] == 200 and _get(base + "/api/status", bad)[0] == 401
        assert _get(base + "/healthz")[0] == 200 and _get(base + "/readyz")[0] == 200
        with urllib.request.urlopen(urllib.request.Request(base + "/healthz", method="HEAD"), timeout=10) as head:
            assert head.status == 200 and head.read() == b""  # what uptime checks send; it was 501
        code, body = _get(base + "/frame.jpg", good)
        assert code == 200 and body[:2] == b"\xff\xd8"  # a JPEG
        # non-ASCII bytes in the header: hmac refused to compare them as str (a traceback, no reply)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(b"GET /api/status HTTP/1.0\r\nAuthorization: Basic \xff\xfe\xfd\r\n\r\n")
            assert raw.recv(64).startswith(b"HTTP/1.0 401")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err


def test_port_in_use_is_one_line_and_localhost_is_the_default(artifacts, demo_data):
    with busy_port() as port:
        line = one_line_error(run_cli("edge-run", "--source", str(demo_data / "line_clip.mp4"), "--model",
                                      str(artifacts / "model.int8.onnx"), "--web", f":{port}"))
    assert "cannot listen" in line
    assert parse_address(":8080") == ("127.0.0.1", 8080)
    assert parse_address("0.0.0.0:8080") == ("0.0.0.0", 8080)


def test_credentials_file_and_its_errors(tmp_path, monkeypatch):
    from edge_runtime.errors import InputFileError
    from edge_runtime.web import load_credentials

    monkeypatch.delenv("LINESIDE_WEB_USER", raising=False)
    good = tmp_path / "auth"
    good.write_text("operator:pa:ss\n")
    assert load_credentials(str(good)) == ("operator", "pa:ss")
    bad = tmp_path / "bad"
    bad.write_text("no-colon")
    with pytest.raises(InputFileError, match="user:password"):
        load_credentials(str(bad))
    assert load_credentials(None) is None


def test_a_hundred_slow_or_vanishing_clients_do_not_stop_the_line(demo_data, artifacts, tmp_path):
    import socket

    port = free_port()
    proc, _ = _start(demo_data, artifacts, tmp_path, port)
    clients = []
    try:
        base = f"http://127.0.0.1:{port}"
        before = json.loads(_get(base + "/api/status")[1])["frames"]
        for i in range(100):  # ask for frames and never read them
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"GET /frame.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
            clients.append(sock)
        for i in range(20):  # leave in the middle of a response
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"GET /frame.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(2.0)
        code, body = _get(base + "/api/status")
        after = json.loads(body)
        assert code == 200 and after["frames"] - before >= 40  # still ~30 fps while they hang on
        assert proc.poll() is None
    finally:
        for sock in clients:
            sock.close()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
