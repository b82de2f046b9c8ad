"""Where frames come from: cameras, video files and streams, image folders.

Every source implements the same small interface — `open()`, `read()` (the next
frame, or None at the end), `close()` — and says whether it is `live`. Live
sources run behind a `NewestFrameReader` so the line never waits on a backlog.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge_runtime.datasets import image_files
from edge_runtime.errors import SourceError

# OpenCV and its FFmpeg print their own warnings for a missing camera or a refused
# stream; we say it once, ourselves, in one line. (FFmpeg reads this when a capture opens.)
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


@dataclass(frozen=True)
class Frame:
    """What moves between stages; nothing mutates it."""

    image: np.ndarray | None  # None when the frame could not be decoded
    frame_id: int
    captured_at: float  # wall clock, seconds since the epoch
    captured_mono: float  # time.perf_counter() at capture, for ages and latencies
    source: str
    flags: tuple[str, ...] = field(default=())


def _now() -> tuple[float, float]:
    return time.time(), time.perf_counter()


class CaptureSource:
    """An OpenCV VideoCapture: camera index, video file, or stream URL."""

    def __init__(self, target: int | str, live: bool, realtime: bool = False, width: int | None = None,
                 height: int | None = None, fps: float | None = None):
        self.target = target
        self.live = live or realtime
        self.realtime = realtime and not live  # pace a file at its native rate, like a camera
        self.name = f"camera:{target}" if isinstance(target, int) else str(target)
        self._settings = (width, height, fps)
        self._capture: cv2.VideoCapture | None = None
        self._next_id = 0
        self._period = 0.0
        self._next_due = 0.0

    def open(self) -> None:
        capture = cv2.VideoCapture(self.target)
        if not capture.isOpened():
            capture.release()
            raise SourceError(self._open_error())
        width, height, fps = self._settings
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, width), (cv2.CAP_PROP_FRAME_HEIGHT, height),
                            (cv2.CAP_PROP_FPS, fps)):
            if value:
                capture.set(prop, value)
        native_fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        self._period = 1.0 / native_fps if self.realtime else 0.0
        self._next_due = time.perf_counter()
        self._capture = capture

    def _open_error(self) -> str:
        if isinstance(self.target, int):
            return (f"camera {self.target} could not be opened (no such device, or busy): "
                    "list cameras with `ls /dev/video*` and pass its index with --camera N")
        if "://" in str(self.target):
            return f"stream {self.target} could not be opened: check the URL and that the server is up"
        return f"video file {self.target} could not be opened: check the path and that it is a video OpenCV reads"

    @property
    def frame_shape(self) -> tuple[int, int] | None:
        """(height, width) the capture reports, if it knows."""
        if self._capture is None:
            return None
        w, h = int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        return (h, w) if w > 0 and h > 0 else None

    @property
    def fps(self) -> float:
        return float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0) if self._capture else 0.0

    def read(self) -> Frame | None:
        if self._period:
            delay = self._next_due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self._next_due = max(self._next_due + self._period, time.perf_counter() - self._period)
        ok, image = self._capture.read()
        if not ok:
            return None
        wall, mono = _now()
        frame = Frame(image, self._next_id, wall, mono, self.name)
        self._next_id += 1
        return frame

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class FolderSource:
    """Images of a folder in name order; unreadable files become flagged frames."""

    live = False
    frame_shape = None  # images may differ in size; checked per frame

    def __init__(self, folder: Path, loop: bool = False):
        self.folder = Path(folder)
        self.loop = loop
        self.name = str(folder)
        self._files: list[Path] = []
        self._index = 0

    def open(self) -> None:
        self._files = image_files(self.folder)
        if not self._files:
            raise SourceError(f"folder {self.folder} holds no images (.png/.jpg/.bmp/.tif): point --source at one that does")

    def read(self) -> Frame | None:
        if self._index >= len(self._files):
            if not self.loop:
                return None
        path = self._files[self._index % len(self._files)]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        wall, mono = _now()
        flags = () if image is not None else ("unreadable",)
        frame = Frame(image, self._index, wall, mono, str(path), flags)
        self._index += 1
        return frame

    def close(self) -> None:
        self._files = []


def open_source(camera: int | None, source: str | None, realtime: bool = False, loop: bool = False,
                width: int | None = None, height: int | None = None, fps: float | None = None):
    """Build the source the flags describe (exactly one of camera / source)."""
    if (camera is None) == (source is None):
        raise SourceError("give exactly one of --camera N or --source PATH|URL")
    if camera is not None:
        return CaptureSource(camera, live=True, width=width, height=height, fps=fps)
    if "://" in source:
        if source.startswith("csi://"):
            raise SourceError("csi:// cameras need OpenCV built with GStreamer (Jetson); not supported by this build yet")
        return CaptureSource(source, live=True)
    path = Path(source)
    if path.is_dir():
        return FolderSource(path, loop=loop)
    if not path.exists():
        raise SourceError(f"source {source} does not exist: give a video file, an image folder or a stream URL")
    return CaptureSource(str(path), live=False, realtime=realtime)
