"""Where verdict records go. A sink is a callable context manager: `with S(...) as s: s(record)`.

Adding an output (MQTT, a PLC coil, ...) means adding one small class here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from edge_runtime.errors import InputFileError


class JsonlSink:
    """One JSON object per line, flushed per record, fsynced on close — nothing decided is lost."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._handle = None

    def __enter__(self) -> "JsonlSink":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            raise InputFileError(f"cannot write --jsonl {self.path}: {exc.strerror}") from exc
        return self

    def __call__(self, record: dict) -> None:
        self._handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._handle.flush()

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None
