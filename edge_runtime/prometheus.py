"""`--metrics-port`: Prometheus metrics of the running line, in the text exposition format.

Written with the standard library (the runtime floor stays numpy/OpenCV/ORT/click):
a sink that updates counters under a lock (microseconds per frame) and an HTTP
thread that renders them when Prometheus scrapes /metrics. Binds to localhost
unless an address is given (see README, Security).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from edge_runtime.errors import ServiceError
from edge_runtime.web import parse_address

# Latency buckets in seconds: 0.5 ms to 1 s covers a line camera's frame time with room on both sides.
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
STAGES = ("capture_wait", "preprocess", "inference", "postprocess", "sink_prev")


class _Histogram:
    def __init__(self):
        self.counts = [0] * len(BUCKETS)
        self.total = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.total += 1
        self.sum += seconds
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.counts[i] += 1  # cumulative by construction: every bucket above holds it too


def _labels(**pairs) -> str:
    inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in pairs.items())
    return "{" + inner + "}" if inner else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class MetricsSink:
    """Counters, histograms and gauges fed by the record stream; `queues` are the outputs' QueuedSinks."""

    def __init__(self, address: str, model: dict, queues=()):
        self.host, self.port = parse_address(address, "--metrics-port")
        self.model, self.queues = model, list(queues)
        self.lock = threading.Lock()
        self.frames = self.outages = self.dropped = 0
        self.verdicts: dict[tuple[str, str], int] = {}
        self.flags: dict[str, int] = {}
        self.latency = {stage: _Histogram() for stage in STAGES}
        self.age_s = self.last_decided = 0.0
        self.fps = 0.0
        self._server = None

    def __enter__(self) -> "MetricsSink":
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                if self.path.split("?")[0] not in ("/metrics", "/"):
                    self.send_error(404)
                    return
                body = sink.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # scrapes every few seconds would flood the journal
                pass

        try:
            self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        except OSError as exc:
            raise ServiceError(f"--metrics-port {self.host}:{self.port} cannot be served ({exc.strerror}): "
                               "is another edge-run using it? choose another port") from None
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True).start()
        return self

    def __call__(self, record: dict, frame=None) -> None:
        kind = record.get("type")
        with self.lock:
            if kind == "verdict":
                self.frames += 1
                key = (record["verdict"], record.get("label") or "")
                self.verdicts[key] = self.verdicts.get(key, 0) + 1
                for flag in record.get("flags", ()):
                    self.flags[flag] = self.flags.get(flag, 0) + 1
                for stage, ms in record["latency_ms"].items():
                    if stage in self.latency:
                        self.latency[stage].observe(ms / 1e3)
                self.dropped = record.get("dropped", self.dropped)
                self.age_s = record["age_ms"] / 1e3
                self.last_decided = record["decided_at"]
            elif kind == "outage":
                self.outages += 1
            elif kind == "stats":
                self.fps = record.get("fps", 0.0)
            elif kind == "model":  # a new model was swapped in
                self.model = record["model"]

    def render(self) -> str:
        out = []

        def metric(name, kind, help_text, samples):
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(f"{name}{labels} {value}" for labels, value in samples)

        with self.lock:
            metric("lineside_frames_total", "counter", "Frames decided (including invalid ones).",
                   [("", self.frames)])
            metric("lineside_verdicts_total", "counter", "Decisions by verdict and label.",
                   [(_labels(verdict=v, label=lab), n) for (v, lab), n in sorted(self.verdicts.items())])
            metric("lineside_flags_total", "counter", "Frames flagged invalid, by reason.",
                   [(_labels(flag=f), n) for f, n in sorted(self.flags.items())])
            metric("lineside_dropped_frames_total", "counter", "Camera frames skipped because a newer one was there.",
                   [("", self.dropped)])
            metric("lineside_outages_total", "counter", "Source outages (reconnects).", [("", self.outages)])
            out.append("# HELP lineside_stage_latency_seconds Per-stage latency of each decided frame.")
            out.append("# TYPE lineside_stage_latency_seconds histogram")
            for stage, hist in self.latency.items():
                for bound, count in zip(BUCKETS, hist.counts):
                    out.append(f"lineside_stage_latency_seconds_bucket{_labels(stage=stage, le=bound)} {count}")
                out.append(f"lineside_stage_latency_seconds_bucket{_labels(stage=stage, le='+Inf')} {hist.total}")
                out.append(f"lineside_stage_latency_seconds_sum{_labels(stage=stage)} {hist.sum:.6f}")
                out.append(f"lineside_stage_latency_seconds_count{_labels(stage=stage)} {hist.total}")
            metric("lineside_frame_age_seconds", "gauge", "Age of the last decided frame at its decision.",
                   [("", f"{self.age_s:.6f}")])
            metric("lineside_last_decision_timestamp_seconds", "gauge", "Unix time of the last decision.",
                   [("", f"{self.last_decided:.3f}")])
            metric("lineside_fps", "gauge", "Decisions per second over the last second.", [("", self.fps)])
            model = _labels(**{k: self.model[k] for k in ("sha256", "task", "precision", "provider")})
        metric("lineside_model_info", "gauge", "The model in use (value is always 1).", [(model, 1)])
        stats = [(q.name, q.stats()) for q in self.queues]
        metric("lineside_output_delivered_total", "counter", "Records an output delivered.",
               [(_labels(output=n), s["delivered"]) for n, s in stats])
        metric("lineside_output_dropped_total", "counter", "Records an output's bounded queue had to drop.",
               [(_labels(output=n), s["dropped"]) for n, s in stats])
        metric("lineside_output_failed_total", "counter", "Deliveries that failed.",
               [(_labels(output=n), s["failed"]) for n, s in stats])
        metric("lineside_output_pending", "gauge", "Records waiting in an output's queue.",
               [(_labels(output=n), s["pending"]) for n, s in stats])
        return "\n".join(out) + "\n"

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
