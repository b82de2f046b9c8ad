"""Outputs for what MQTT and Modbus do not cover: an HTTP POST (webhook) and a command (digital output).

Each is a plain `deliver(record)` function that may block or fail; the runtime
wraps it in a QueuedSink so that it can do neither to the line.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import urllib.error
import urllib.request
from urllib.parse import urlparse

from edge_runtime.errors import ServiceError


def is_reject(record: dict) -> bool:
    return record.get("type") == "verdict" and record.get("verdict") == "defect"


def webhook(url: str, timeout_s: float = 2.0):
    """POST each record as JSON to `url`; a non-2xx answer counts as a failed delivery."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ServiceError(f"--webhook {url!r} is not an http(s):// URL, e.g. http://mes.local:8000/rejects")

    def deliver(record: dict) -> None:
        request = urllib.request.Request(url, data=json.dumps(record).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:  # raises on 4xx/5xx
            answer.read()

    return deliver


def command(template: str, timeout_s: float = 2.0):
    """Run `template` with the record's fields appended: VERDICT LABEL SCORE FRAME_ID.

    No shell: the command line is split like a shell would and run directly, so a
    label can never inject anything. A non-zero exit or a timeout counts as failed.
    """
    try:
        argv = shlex.split(template)
    except ValueError as exc:
        raise ServiceError(f"--on-reject {template!r} cannot be split into a command line ({exc})") from None
    if not argv:
        raise ServiceError("--on-reject needs a command, e.g. --on-reject '/usr/local/bin/fire-gate --pulse 50'")
    if shutil.which(argv[0]) is None:
        raise ServiceError(f"--on-reject: {argv[0]!r} is not an executable here (give its full path)")

    def deliver(record: dict) -> None:
        args = [str(record.get(k)) for k in ("verdict", "label", "score", "frame_id")]
        done = subprocess.run([*argv, *args], capture_output=True, timeout=timeout_s)
        if done.returncode:
            raise RuntimeError(f"{argv[0]} exited {done.returncode}: {done.stderr.decode(errors='replace')[:120]}")

    return deliver
