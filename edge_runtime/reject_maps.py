"""`edge-run --explain-rejects`: beside each reject `--save-defects` keeps, a map of where the classifier saw it.

A map costs about 175 inferences (`explain.evidence_map`: ~0.1-0.2 s on two cores), too much for the frame loop.
So rejects go into a small queue and a worker makes their maps on its own single-thread session of the same
model file: a live line is not held up; when rejects come faster than maps can be made, the extra ones get none
and are counted. A file or folder replayed as fast as it decodes (not live) waits for the worker instead, so
every reject gets its map. Each map is made by the model that judged the frame (the record's `model_sha256`): after a
hot swap the worker loads the new file, and a reject judged by a model no longer on disk gets no map.

Files, named like `--save-defects`' own: `<stem>_heatmap.png` (the map, 0..255 at the model's input size) and
`<stem>_explained.jpg` (the frame with the map over the inspection box).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from pathlib import Path

import cv2
import numpy as np

from edge_runtime.explain import evidence_map
from edge_runtime.model import EdgeModel
from edge_runtime.overlay import annotate
from edge_runtime.preprocess import Roi
from edge_runtime.sinks import Sink, reject_stem

BACKLOG = 4  # rejects waiting for a map; more at once are counted as skipped, never queued without bound
DRAIN_S = 30.0  # at shutdown, how long the maps still waiting may take


class RejectMaps(Sink):
    """A sink with a queue like the line outputs': counted in the summary's `outputs` and in /metrics."""

    name = "reject_maps"

    def __init__(self, folder: str | Path, model_path: str | Path, roi: Roi | None, live: bool = True):
        self.folder, self.model_path, self.roi, self.live = Path(folder), Path(model_path), roi, live
        self.written = self.skipped = self.failed = 0
        self.last_error: str | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=BACKLOG)
        self._model: EdgeModel | None = None
        self._thread = threading.Thread(target=self._work, name="reject-maps", daemon=True)

    def __enter__(self) -> "RejectMaps":
        self._model = EdgeModel(self.model_path, threads=1)  # one core: the line's session keeps the others
        self._thread.start()
        return self

    def __call__(self, record: dict, frame=None) -> None:
        if frame is None or frame.image is None or record.get("verdict") != "defect":
            return
        if not self.live:  # nothing is waiting for this loop: every reject gets its map
            self._queue.put((record, frame.image))
            return
        try:
            self._queue.put_nowait((record, frame.image))
        except queue.Full:
            self.skipped += 1

    def _work(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # Linux: a thread's own nice level, so the line goes first
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        while (item := self._queue.get()) is not None:
            record, image = item
            try:
                self._write(record, image)
            except Exception as exc:  # noqa: BLE001 — a map is a help for review; it must never stop the line
                self.failed += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:200]
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _write(self, record: dict, image: np.ndarray) -> None:
        if record.get("model_sha256") not in (None, self._model.sha256):  # hot-swapped since: load the new file
            self._model = EdgeModel(self.model_path, threads=1)
            if self._model.sha256 != record["model_sha256"]:
                self.skipped += 1  # the model that judged it is no longer on disk
                return
        heat = evidence_map(self._model, self._model.prepare(image, self.roi))
        stem = reject_stem(self.folder, record)
        ok = cv2.imwrite(f"{stem}_heatmap.png", (heat * 255).round().astype(np.uint8))
        ok &= cv2.imwrite(f"{stem}_explained.jpg", annotate(image, record, self.roi, heatmap=heat))
        if not ok:
            raise OSError(f"cannot write {stem}_*")
        self.written += 1

    def wait(self, timeout: float) -> bool:
        """Whether every queued map was made within `timeout` seconds."""
        done = threading.Event()
        threading.Thread(target=lambda: (self._queue.join(), done.set()), daemon=True).start()
        return done.wait(timeout)

    def __exit__(self, *exc) -> None:
        self.wait(DRAIN_S)
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass  # still busy after DRAIN_S: the daemon thread ends with the process
        self._thread.join(timeout=1.0)

    def stats(self) -> dict:
        return {"delivered": self.written, "dropped": self.skipped, "failed": self.failed,
                "pending": self._queue.qsize(), "last_error": self.last_error}
