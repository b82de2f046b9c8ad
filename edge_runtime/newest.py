"""Keep only the newest frame of a live source, counting the ones never judged.

A capture thread reads as fast as the source delivers and overwrites a single
slot; the consumer takes whatever is newest. A slow consumer therefore judges
fresh frames and the drops are counted — there is never a queue of stale ones.
"""

from __future__ import annotations

import threading

from edge_runtime.sources import Frame

_END = object()


class NewestFrameReader:
    def __init__(self, source):
        self.source = source
        self.dropped = 0
        self._slot: Frame | None = None
        self._ended = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def start(self) -> "NewestFrameReader":
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                frame = self.source.read()
                with self._cond:
                    if frame is None:
                        self._ended = True
                        self._cond.notify_all()
                        return
                    if self._slot is not None:
                        self.dropped += 1
                    self._slot = frame
                    self._cond.notify_all()
        except BaseException as exc:  # reported to the consumer, never swallowed
            with self._cond:
                self._error = exc
                self._ended = True
                self._cond.notify_all()

    def read(self, timeout: float = 0.5):
        """The newest frame; None at the end of the source; `NewestFrameReader.WAIT` on timeout."""
        with self._cond:
            self._cond.wait_for(lambda: self._slot is not None or self._ended, timeout=timeout)
            if self._slot is not None:
                frame, self._slot = self._slot, None
                return frame
            if self._error is not None:
                raise self._error
            return None if self._ended else self.WAIT

    WAIT = _END

    def stop(self) -> bool:
        """Stop capturing; True when the capture thread has ended (so the source may be closed)."""
        self._stop.set()
        interrupt = getattr(self.source, "interrupt", None)
        if interrupt:
            interrupt()  # a source waiting to reconnect must not hold up shutdown
        self._thread.join(timeout=2.0)
        return not self._thread.is_alive()
