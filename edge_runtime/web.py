"""`--web`: the operator's view for headless line PCs, served by the standard library.

A sink that only keeps references: the newest frame and record, counters, the
last rejects. JPEG encoding happens in the HTTP threads when a browser asks,
for the newest frame only (shared between viewers), so nobody watching costs
nothing and the inference thread never encodes.
"""

from __future__ import annotations

import base64
import collections
import hmac
import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import cv2

from edge_runtime.errors import InputFileError, ServiceError
from edge_runtime.overlay import RateMeter, annotate
from edge_runtime.preprocess import Roi

PAGE = (Path(__file__).parent / "data" / "web.html").read_text


def parse_address(text: str, flag: str = "--web") -> tuple[str, int]:
    """`:8080` (or `8080`) → localhost only; `0.0.0.0:8080` (or a host) must be given explicitly."""
    text = text if ":" in text else f":{text}"
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ServiceError(f"{flag} {text!r}: expected [HOST]:PORT, e.g. :8080") from None
    if not 0 < number < 65536:
        raise ServiceError(f"{flag} {text!r}: port {number} is not between 1 and 65535")
    return host or "127.0.0.1", number


def load_credentials(path: str | None, flag: str = "--web-auth", env: str = "LINESIDE_WEB") -> tuple[str, str] | None:
    """From a file holding `user:password`, else ENV_USER / ENV_PASSWORD, else none. Never logged."""
    if path:
        try:
            user, _, password = Path(path).read_text().strip().partition(":")
        except OSError as exc:
            raise InputFileError(f"{flag} {path}: {exc.strerror}") from exc
        if not user or not password:
            raise InputFileError(f"{flag} {path} must hold one line user:password")
        return user, password
    user, password = os.environ.get(f"{env}_USER"), os.environ.get(f"{env}_PASSWORD")
    return (user, password) if user and password else None


class WebView:
    def __init__(self, address: str, roi: Roi | None, model: dict, credentials: tuple[str, str] | None = None,
                 keep: int = 500, rejects: int = 8):
        self.host, self.port = parse_address(address)
        self.roi, self.model, self.credentials = roi, model, credentials
        self.lock = threading.Lock()
        self.records: collections.deque = collections.deque(maxlen=keep)
        self.rejects: collections.deque = collections.deque(maxlen=rejects)
        self.recent: collections.deque = collections.deque()  # (time, verdict) of the last minute
        self.counts: dict[str, int] = {}
        self.latest = None  # (record, frame)
        self.stats: dict = {}
        self.outages = 0
        self.started = time.time()
        self._jpeg = (None, b"")  # (frame_id, bytes): shared by every viewer
        self._rate = RateMeter()
        self.dropped_viewers = 0  # clients that left mid-response or were too slow (timed out)
        self.server: ThreadingHTTPServer | None = None

    # --- sink side (inference thread): references and counters only ---
    def __call__(self, record: dict, frame=None) -> None:
        with self.lock:
            kind = record["type"]
            if kind == "stats":
                self.stats = record
            elif kind == "outage":
                self.outages += 1
            elif kind == "verdict":
                self.records.append(record)
                self.counts[record["verdict"]] = self.counts.get(record["verdict"], 0) + 1
                now = time.time()
                self.recent.append((now, record["verdict"]))
                while self.recent and self.recent[0][0] < now - 60:
                    self.recent.popleft()
                if frame is not None and frame.image is not None:
                    self.latest = (record, frame)
                    if record["verdict"] == "defect":
                        self.rejects.append((record, frame))

    # --- HTTP side ---
    def status(self) -> dict:
        with self.lock:
            last = self.records[-1] if self.records else None
            minute: dict[str, int] = {}
            for _, verdict in self.recent:
                minute[verdict] = minute.get(verdict, 0) + 1
            return {"model": self.model, "frames": sum(self.counts.values()), "verdicts": dict(self.counts),
                    "last_minute": minute, "current": last, "latency_ms": self.stats.get("latency_ms", {}),
                    "fps": self.stats.get("fps"), "dropped": last["dropped"] if last else 0,
                    "outages": self.outages, "ready": self.ready(), "uptime_s": round(time.time() - self.started, 1),
                    "dropped_viewers": self.dropped_viewers,
                    "rejects": [r["frame_id"] for r, _ in self.rejects]}

    def ready(self) -> bool:
        return bool(self.records) and time.time() - self.records[-1]["decided_at"] < 5.0

    def verdicts_since(self, since: int) -> list[dict]:
        with self.lock:
            return [r for r in self.records if r["frame_id"] > since]

    def jpeg(self) -> bytes | None:
        with self.lock:
            latest = self.latest
        if latest is None:
            return None
        record, frame = latest
        if self._jpeg[0] != record["frame_id"]:
            image = annotate(frame.image, record, self.roi, self._rate(record), frame.heatmap)
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
            self._jpeg = (record["frame_id"], data.tobytes() if ok else b"")
        return self._jpeg[1]

    def reject_jpeg(self, index: int) -> bytes | None:
        with self.lock:
            items = list(self.rejects)
        if not 0 <= index < len(items):
            return None
        record, frame = items[index]
        thumb = annotate(frame.image, record, self.roi, heatmap=frame.heatmap)
        height = 120
        thumb = cv2.resize(thumb, (int(thumb.shape[1] * height / thumb.shape[0]), height), interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".jpg", thumb)
        return data.tobytes() if ok else None

    def authorised(self, header: str | None) -> bool:
        if self.credentials is None:
            return True
        expected = "Basic " + base64.b64encode(":".join(self.credentials).encode()).decode()
        # as bytes: compare_digest refuses str with non-ASCII characters, which any client can send
        return header is not None and hmac.compare_digest(header.encode(), expected.encode())

    def __enter__(self) -> "WebView":
        view = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # a client that stalls this long is dropped (and counted), freeing its thread

            def log_message(self, *args):  # the line's console is for verdicts, not for page hits
                pass

            def _send(self, code: int, body: bytes, kind: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self):  # load balancers and uptime checks probe /healthz with HEAD
                self.do_GET()

            def do_GET(self):
                url = urlparse(self.path)
                try:
                    if url.path == "/healthz":
                        return self._send(200, b"ok\n", "text/plain")
                    if url.path == "/readyz":
                        ready = view.ready()
                        return self._send(200 if ready else 503, b"ready\n" if ready else b"not ready\n", "text/plain")
                    if not view.authorised(self.headers.get("Authorization")):
                        self.send_response(401)
                        self.send_header("WWW-Authenticate", 'Basic realm="lineside"')
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return None
                    if url.path == "/":
                        return self._send(200, PAGE().encode(), "text/html; charset=utf-8")
                    if url.path == "/api/status":
                        return self._send(200, json.dumps(view.status()).encode(), "application/json")
                    if url.path == "/api/verdicts":
                        since = int(parse_qs(url.query).get("since", ["-1"])[0])
                        return self._send(200, json.dumps(view.verdicts_since(since)).encode(), "application/json")
                    if url.path == "/frame.jpg":
                        data = view.jpeg()
                        return self._send(200, data, "image/jpeg") if data else self._send(503, b"", "text/plain")
                    if url.path.startswith("/reject/") and url.path.endswith(".jpg"):
                        data = view.reject_jpeg(int(url.path[len("/reject/"):-4]))
                        return self._send(200, data, "image/jpeg") if data else self._send(404, b"", "text/plain")
                    return self._send(404, b"not found\n", "text/plain")
                except (BrokenPipeError, ConnectionResetError, TimeoutError):
                    with view.lock:
                        view.dropped_viewers += 1  # a viewer that left or stalled costs nothing but a count
                    return None
                except ValueError:
                    return self._send(400, b"bad request\n", "text/plain")

        try:
            self.server = ThreadingHTTPServer((self.host, self.port), Handler)
        except OSError as exc:
            # a host that does not resolve (socket.gaierror) is the host's fault; anything else, the port's
            hint = "check the host name" if isinstance(exc, socket.gaierror) else "pick another port or stop what uses it"
            raise ServiceError(f"--web cannot listen on {self.host}:{self.port} ({exc.strerror}): {hint}") from None
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="web", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
