"""A bounded queue in front of a slow output, so that no output can stall the line.

The pipeline hands the record over and goes on; one thread per output delivers.
When the queue is full the oldest record waiting is dropped and counted: on a
line the newest verdict matters most, and a loss is reported, never silent.
"""

from __future__ import annotations

import collections
import threading


class QueuedSink:
    """Wraps `deliver(record)` (which may block or raise) behind a bounded queue and a thread.

    `only`: a predicate choosing which records this output wants (e.g. rejects only);
    the others cost nothing. Failures are counted and the last one kept for the summary.
    """

    def __init__(self, name: str, deliver, maxsize: int = 1000, only=None, drain_s: float = 5.0, on_failure=None):
        self.name, self.deliver, self.maxsize, self.only, self.drain_s = name, deliver, maxsize, only, drain_s
        self.on_failure = on_failure  # called with (name, message) after each failed delivery
        self._queue: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._work, name=f"sink-{name}", daemon=True)
        self.delivered = self.dropped = self.failed = 0
        self.last_error: str | None = None

    def __enter__(self) -> "QueuedSink":
        self._thread.start()
        return self

    def __call__(self, record: dict, frame=None) -> None:
        if self.only is not None and not self.only(record):
            return
        with self._cond:
            if len(self._queue) >= self.maxsize:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(record)
            self._cond.notify()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                record = self._queue.popleft()
            try:
                self.deliver(record)
                self.delivered += 1
            except Exception as exc:  # an output's failure is reported in the summary, never kills the line
                self.failed += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:200]
                if self.on_failure:
                    self.on_failure(self.name, self.last_error)

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def stats(self) -> dict:
        return {"delivered": self.delivered, "dropped": self.dropped, "failed": self.failed,
                "pending": self.pending(), "last_error": self.last_error}

    def __exit__(self, *exc) -> None:
        """Give the thread `drain_s` to deliver what is queued; what is left is counted as dropped."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(self.drain_s)
        with self._cond:
            left = len(self._queue)
            self._queue.clear()
        self.dropped += left

