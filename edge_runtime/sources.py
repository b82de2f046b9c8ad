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

from edge_runtime.datasets import image_files, read_image
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
    # An anomaly model's heat map over the inspected window (0..1 per model-input pixel), attached after
    # inference so that every sink can draw it; None for other models and for frames not judged.
    heatmap: np.ndarray | None = None


def _now() -> tuple[float, float]:
    return time.time(), time.perf_counter()


@dataclass(frozen=True)
class CaptureSettings:
    """What a camera may be asked for; OpenCV applies what the driver allows."""

    width: int | None = None
    height: int | None = None
    fps: float | None = None
    fourcc: str | None = None  # e.g. MJPG: USB cameras need it for 720p at 30 fps
    exposure: float | None = None  # driver units (V4L2: 1..5000, in 100 µs)


# A stream that stops answering must not block the line for FFmpeg's default 30 s.
_STREAM_TIMEOUTS = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 5000]


class CaptureSource:
    """An OpenCV VideoCapture: camera index, video file, stream URL or GStreamer pipeline."""

    def __init__(self, target: int | str, live: bool, realtime: bool = False, api: int = cv2.CAP_ANY,
                 settings: CaptureSettings = CaptureSettings(), name: str | None = None, rate: float | None = None,
                 loop: bool = False):
        self.target = target
        self.live = live or realtime
        self.realtime = realtime and not live  # pace a file at its native rate, like a camera
        self.name = name or (f"camera:{target}" if isinstance(target, int) else str(target))
        self.api = api
        self.settings = settings
        self.rate = rate  # with realtime: play at this rate instead of the file's own
        self.loop = loop and not live  # a video file played again from the start (demos, soak runs)
        self._capture: cv2.VideoCapture | None = None
        self._next_id = 0
        self._period = 0.0
        self._next_due = 0.0
        self._pass_frames = 0  # frames read since the file (re)started
        self.warning: str | None = None  # said once the run is over: a file that ended before its header's count

    def open(self) -> None:
        is_url = isinstance(self.target, str) and "://" in self.target
        if is_url:
            capture = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG, _STREAM_TIMEOUTS)
        else:
            capture = cv2.VideoCapture(self.target, self.api)
        if not capture.isOpened():
            capture.release()
            raise SourceError(self._open_error())
        s = self.settings
        if s.fourcc:
            capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*s.fourcc[:4].ljust(4)))
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, s.width), (cv2.CAP_PROP_FRAME_HEIGHT, s.height),
                            (cv2.CAP_PROP_FPS, s.fps), (cv2.CAP_PROP_EXPOSURE, s.exposure)):
            if value:
                capture.set(prop, value)
        native_fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        self._period = 1.0 / (self.rate or native_fps) if self.realtime else 0.0
        self._next_due = time.perf_counter()
        self._capture = capture

    def _open_error(self) -> str:
        if isinstance(self.target, int):
            return (f"camera {self.target} could not be opened (no such device, or busy): "
                    "list cameras with `edge-run doctor` and pass its index with --camera N")
        if "://" in str(self.target):
            return f"stream {self.target} could not be opened: check the URL and that the server is up"
        if self.api == cv2.CAP_GSTREAMER:
            return f"GStreamer pipeline could not be started: {self.target!r}; test it with gst-launch-1.0"
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
            self._check_complete()
        if not ok and self.loop and self._next_id:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._pass_frames = 0
            ok, image = self._capture.read()
        if not ok:
            return None
        wall, mono = _now()
        frame = Frame(image, self._next_id, wall, mono, self.name)
        self._next_id += 1
        self._pass_frames += 1
        return frame

    def _check_complete(self) -> None:
        """A video file cut short (a copy that stopped, a recorder that died) ends early without an error from
        OpenCV: compared with the frame count its header declares, so a partial judgement is said."""
        if self.live or not isinstance(self.target, str) or "://" in self.target or self.api == cv2.CAP_GSTREAMER:
            return
        declared = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if declared and self._pass_frames < declared - 1:  # one frame of slack: headers round the count
            self.warning = (f"warning: {self.name} ended at frame {self._pass_frames} of the {declared} its header "
                            "declares: the file is cut short, the rest was not judged")

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
        self._seen, self._unreadable = 0, []  # of the first pass

    @property
    def failure(self) -> str | None:
        """Said (and the exit is non-zero) when every image read was unreadable: a one-off check judged nothing."""
        if not self._seen or len(self._unreadable) < self._seen:
            return None
        return (f"every one of the {self._seen} images read from {self.folder} was unreadable (first: "
                f"{self._unreadable[0].name}), so nothing was judged: check that they are whole image files")

    def open(self) -> None:
        self._files = image_files(self.folder)
        if not self._files:
            raise SourceError(f"folder {self.folder} holds no images (.png/.jpg/.bmp/.tif): point --source at one that does")

    def read(self) -> Frame | None:
        if self._index >= len(self._files):
            if not self.loop:
                return None
        path = self._files[self._index % len(self._files)]
        image = read_image(path)
        wall, mono = _now()
        flags = () if image is not None else ("unreadable",)
        if self._index < len(self._files):
            self._seen += 1
            self._unreadable += [] if image is not None else [path]
        frame = Frame(image, self._index, wall, mono, str(path), flags)
        self._index += 1
        return frame

    def close(self) -> None:
        self._files = []


def has_gstreamer() -> bool:
    """Whether this OpenCV build can run GStreamer pipelines (pip wheels cannot; Jetson builds can)."""
    return any("GStreamer" in line and "YES" in line for line in cv2.getBuildInformation().splitlines())


def csi_pipeline(sensor: int, settings: CaptureSettings) -> str:
    """The Jetson CSI camera pipeline (nvarguscamerasrc), ending in BGR frames for OpenCV, newest only."""
    width, height, fps = settings.width or 1280, settings.height or 720, int(settings.fps or 30)
    return (f"nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM),width={width},height={height},"
            f"framerate={fps}/1 ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! "
            "appsink drop=true max-buffers=1 sync=false")


def _gstreamer_source(pipeline: str, name: str) -> CaptureSource:
    if not has_gstreamer():
        raise SourceError(f"{name} needs OpenCV built with GStreamer, and this one is not (pip's opencv wheels "
                          "never are): on a Jetson use the JetPack OpenCV, elsewhere build OpenCV with GStreamer")
    return CaptureSource(pipeline, live=True, api=cv2.CAP_GSTREAMER, name=name)


def open_source(camera: int | None, source: str | None, realtime: bool = False, loop: bool = False,
                settings: CaptureSettings = CaptureSettings(), reconnect: bool = True,
                max_outage_s: float | None = None):
    """Build the source the flags describe (exactly one of camera / source)."""
    from edge_runtime.reconnect import ReconnectingSource

    if (camera is None) == (source is None):
        raise SourceError("give exactly one of --camera N or --source PATH|URL|PIPELINE")
    if camera is not None:
        built = CaptureSource(camera, live=True, settings=settings)
    elif source.startswith("csi://"):
        try:
            sensor = int(source[len("csi://"):] or 0)
        except ValueError:
            raise SourceError(f"{source}: expected csi://N with N the sensor id, e.g. csi://0") from None
        built = _gstreamer_source(csi_pipeline(sensor, settings), source)
    elif "://" in source:
        built = CaptureSource(source, live=True)
    elif " ! " in source:  # a raw GStreamer pipeline, as gst-launch-1.0 takes it
        built = _gstreamer_source(source, "gstreamer")
    elif Path(source).is_dir():
        return FolderSource(Path(source), loop=loop)
    elif Path(source).exists():
        return CaptureSource(source, live=False, realtime=realtime, loop=loop)
    else:
        raise SourceError(f"source {source} does not exist: give a video file, an image folder, a stream URL "
                          "or a GStreamer pipeline")
    return ReconnectingSource(built, max_outage_s=max_outage_s) if reconnect else built
