"""Where verdict records go. A sink is a context manager called as `sink(record, frame)`.

`frame` is the Frame the record is about, or None for records that are not about
one frame (outage, summary). Adding an output (MQTT, a PLC coil, ...) means
adding one small class here or beside it.
"""

from __future__ import annotations

import collections
import json
import os
import threading
from pathlib import Path

import cv2
import numpy as np

from edge_runtime.errors import InputFileError, SourceError
from edge_runtime.overlay import RateMeter, annotate
from edge_runtime.preprocess import Roi


class Sink:
    def __enter__(self):
        return self

    def __call__(self, record: dict, frame=None) -> None:
        raise NotImplementedError

    def __exit__(self, *exc) -> None:
        pass


class JsonlSink(Sink):
    """One JSON object per line, written per record, fsynced on close and rotation — nothing decided is lost
    while the disk takes it.

    With `max_bytes`, a full file is renamed PATH.1 (PATH.1 → PATH.2 …, `keep` files kept).
    When the disk refuses a write (full, or gone), the line goes on: records wait in a
    bounded backlog (`backlog`, oldest dropped and counted) and are written, in order,
    as soon as a write succeeds again; `on_failure("jsonl", message)` says so, and
    `stats()` counts what was written, dropped and refused, like a queued output.
    """

    name = "jsonl"

    def __init__(self, path: str | Path, max_bytes: int | None = None, keep: int = 5, backlog: int = 1000,
                 on_failure=None):
        self.path = Path(path)
        self.max_bytes, self.keep, self.backlog, self.on_failure = max_bytes, keep, backlog, on_failure
        self._fd: int | None = None
        self._pending: collections.deque[bytes] = collections.deque()
        self.delivered = self.dropped = self.failed = 0
        self.last_error: str | None = None

    def __enter__(self) -> "JsonlSink":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._created = not self.path.exists()
            self._open()
        except OSError as exc:
            raise InputFileError(f"cannot write --jsonl {self.path}: {exc.strerror}") from exc
        return self

    def _open(self) -> None:
        # Unbuffered appends: after a refused write nothing half-written waits in a buffer to be doubled.
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def __call__(self, record: dict, frame=None) -> None:
        if len(self._pending) >= self.backlog:
            self._pending.popleft()
            self.dropped += 1
        self._pending.append((json.dumps(record, separators=(",", ":")) + "\n").encode())
        self._write_pending()

    def _write_pending(self) -> bool:
        """Write what waits, in order; False (and the failure said) when the disk refuses."""
        try:
            while self._pending:
                line = self._pending[0]
                written = os.write(self._fd, line)
                if written < len(line):  # a partial append: the rest goes next
                    self._pending[0] = line[written:]
                    continue
                self._pending.popleft()
                self.delivered += 1
            if self.max_bytes and os.fstat(self._fd).st_size >= self.max_bytes:
                self._rotate()
            return True
        except OSError as exc:
            self.failed += 1
            self.last_error = f"{self.path}: {exc.strerror}"
            if self.on_failure:
                self.on_failure(self.name, self.last_error)
            return False

    def _rotate(self) -> None:
        self._close()
        for i in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._open()

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.fsync(fd)
            except OSError:
                pass  # a device that cannot sync (e.g. a pipe) still had every write
            os.close(fd)

    def stats(self) -> dict:
        return {"delivered": self.delivered, "dropped": self.dropped, "failed": self.failed,
                "pending": len(self._pending), "last_error": self.last_error}

    def __exit__(self, *exc) -> None:
        """One last try for what waits; what the disk still refuses is counted as dropped."""
        if self._pending and self._fd is not None:
            self._write_pending()
        self.dropped += len(self._pending)
        self._pending.clear()
        self._close()
        if exc[0] is not None and self._created and not self.delivered:  # a run that failed to start: no trace
            self.path.unlink(missing_ok=True)


def reject_stem(folder: Path, record: dict) -> Path:
    """A saved reject's files are <frame id>_<label>.*: the frame, its record, and what other sinks add."""
    return folder / f"{record['frame_id']:08d}_{record['label']}"


class DefectSaver(Sink):
    """For each rejected frame: the frame, an annotated copy (with the heat map) and its record, named by frame id;
    for an anomaly model also the heat map itself."""

    def __init__(self, folder: str | Path, roi: Roi | None):
        self.folder, self.roi = Path(folder), roi

    def __enter__(self) -> "DefectSaver":
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputFileError(f"cannot write --save-defects {self.folder}: {exc.strerror}") from exc
        return self

    def __call__(self, record: dict, frame=None) -> None:
        if frame is None or frame.image is None or record.get("verdict") != "defect":
            return
        stem = reject_stem(self.folder, record)
        cv2.imwrite(f"{stem}.png", frame.image)
        cv2.imwrite(f"{stem}_annotated.jpg", annotate(frame.image, record, self.roi, heatmap=frame.heatmap))
        if frame.heatmap is not None:  # the raw map too, 0..255, for whoever reviews the reject later
            cv2.imwrite(f"{stem}_heatmap.png", (np.clip(frame.heatmap, 0, 1) * 255).astype(np.uint8))
        Path(f"{stem}.json").write_text(json.dumps(record))


# Containers OpenCV's FFmpeg writer holds an mp4v stream in; another suffix failed only at the first frame.
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv")


class VideoRecorder(Sink):
    """Every judged frame, annotated, into an mp4 at the source's rate."""

    def __init__(self, path: str | Path, fps: float, roi: Roi | None):
        if Path(path).suffix.lower() not in VIDEO_SUFFIXES:
            raise InputFileError(f"--record {path}: name a video file ({', '.join(VIDEO_SUFFIXES)})")
        self.path, self.fps, self.roi = Path(path), fps or 30.0, roi
        self._writer = None
        self._rate = RateMeter()

    def __call__(self, record: dict, frame=None) -> None:
        if frame is None or frame.image is None:
            return
        if self._writer is None:
            h, w = frame.image.shape[:2]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise InputFileError(f"cannot record to {self.path}: OpenCV could not open an mp4v writer there")
        self._writer.write(annotate(frame.image, record, self.roi, self._rate(record), frame.heatmap))

    def __exit__(self, *exc) -> None:
        if self._writer is not None:
            self._writer.release()


def has_gui() -> bool:
    """Whether this OpenCV can open windows (opencv-python-headless cannot)."""
    return not any(line.strip().startswith("GUI:") and "NONE" in line for line in cv2.getBuildInformation().splitlines())


class Display(Sink):
    """The operator's window; q or Esc stops the run."""

    def __init__(self, roi: Roi | None, stop: threading.Event, title: str = "lineside"):
        self.roi, self.stop, self.title = roi, stop, title
        self._rate = RateMeter()

    def __enter__(self) -> "Display":
        if not has_gui():
            raise SourceError("--show needs OpenCV with a GUI: `pip install opencv-python` in place of "
                              "opencv-python-headless (and a display); on a headless PC use --record or --save-defects")
        if os.name == "posix" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise SourceError("--show needs a display (DISPLAY is not set): use --record or --save-defects instead")
        return self

    def __call__(self, record: dict, frame=None) -> None:
        if frame is None or frame.image is None:
            return
        cv2.imshow(self.title, annotate(frame.image, record, self.roi, self._rate(record), frame.heatmap))
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.stop.set()

    def __exit__(self, *exc) -> None:
        cv2.destroyAllWindows()
