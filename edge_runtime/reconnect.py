"""Keep a live source alive: when a camera or stream drops, reopen it with backoff and report the outage.

No frame is invented for the time the source was away; the outage becomes one
record (`{"type": "outage", ...}`) so the line's log shows exactly when and for
how long the station was blind.
"""

from __future__ import annotations

import threading
import time

from edge_runtime.errors import SourceError


class ReconnectingSource:
    def __init__(self, inner, backoff_s: float = 0.25, backoff_cap_s: float = 8.0, max_outage_s: float | None = None):
        self.inner = inner
        self.live = True
        self.name = inner.name
        self.backoff_s, self.backoff_cap_s, self.max_outage_s = backoff_s, backoff_cap_s, max_outage_s
        self.reconnects = 0
        self._events: list[dict] = []
        self._lock = threading.Lock()
        self._interrupted = threading.Event()

    @property
    def frame_shape(self):
        return self.inner.frame_shape

    def open(self) -> None:
        self.inner.open()  # the first open must work: a wrong URL is a user error, not an outage

    def read(self):
        frame = self.inner.read()
        if frame is not None or self._interrupted.is_set():
            return frame
        return self._reconnect()

    def _reconnect(self):
        lost_wall, lost = time.time(), time.perf_counter()
        delay, attempts = self.backoff_s, 0
        while not self._interrupted.is_set():
            self.inner.close()
            if self.max_outage_s is not None and time.perf_counter() - lost > self.max_outage_s:
                raise SourceError(f"{self.name} has been gone for more than {self.max_outage_s:g} s "
                                  f"({attempts} reconnect attempts): check the camera/stream and restart")
            if self._interrupted.wait(delay):
                return None
            attempts += 1
            delay = min(delay * 2, self.backoff_cap_s)
            try:
                self.inner.open()
            except SourceError:
                continue
            frame = self.inner.read()
            if frame is None:
                continue
            self.reconnects += 1
            with self._lock:
                self._events.append({
                    "type": "outage", "source": self.name, "lost_at": round(lost_wall, 6),
                    "restored_at": round(time.time(), 6), "seconds": round(time.perf_counter() - lost, 3),
                    "attempts": attempts, "resumed_frame_id": frame.frame_id,
                })
            return frame
        return None

    def pop_events(self) -> list[dict]:
        with self._lock:
            events, self._events = self._events, []
        return events

    def interrupt(self) -> None:
        """Stop waiting for the source to come back (shutdown)."""
        self._interrupted.set()

    def close(self) -> None:
        self._interrupted.set()
        self.inner.close()
