"""What every sensor source returns, and the reconnect backoff the live ones share.

Every source (`sensor_sources`, `sensor_udp`, `sensor_serial`, edge_line.modbus_source)
has the small interface of the frame sources — `open()`, `read(timeout)`,
`close()`, `live`, `name` — and `read` returns one of

* `Samples`: consecutive samples (index of the first one, or None when the source
  numbers nothing; wall-clock capture time per sample; float32 values n x C),
* `Problem`: something arrived that is not samples (a malformed datagram, a cut
  serial line, a jump in a file's time column); it never reaches the model,
* `WAIT` when nothing arrived within `timeout`, or None at the end of a file.

Outages (a serial port or a PLC that went away and came back) become records
from `pop_events()`, shaped like the camera outage records (`Backoff.restored`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

WAIT = object()  # read() found nothing within its timeout


@dataclass(frozen=True)
class Samples:
    """Consecutive samples from one source read."""

    index: int | None  # index of the first sample, when the source numbers its samples
    times: np.ndarray  # float64 (n,), wall clock at capture (seconds since the epoch)
    values: np.ndarray  # float32 (n, C)
    received: float  # time.perf_counter() when they arrived here


@dataclass(frozen=True)
class Problem:
    """Input that is not samples. `lost`: samples known to be lost with it (None: unknown);
    `breaks`: the run of consecutive samples is broken here (the window refills)."""

    kind: str
    detail: str
    lost: int | None = 0
    breaks: bool = False



class Backoff:
    """Reconnect attempts at 0.25 s, doubling to 8 s; an outage record when the source is back."""

    def __init__(self, name: str, first_s: float = 0.25, cap_s: float = 8.0):
        self.name, self.first_s, self.cap_s = name, first_s, cap_s
        self.lost_wall = self.lost = None
        self.delay, self.next_try, self.attempts = first_s, 0.0, 0

    @property
    def down(self) -> bool:
        return self.lost is not None

    def lost_now(self) -> None:
        self.lost_wall, self.lost = time.time(), time.perf_counter()
        self.delay, self.attempts = self.first_s, 0
        self.next_try = self.lost + self.delay

    def wait(self, timeout: float) -> bool:
        """Sleep until the next attempt is due (at most `timeout`); whether it is due."""
        delay = self.next_try - time.perf_counter()
        if delay > 0:
            time.sleep(min(delay, timeout))
        return time.perf_counter() >= self.next_try

    def failed(self) -> None:
        self.attempts += 1
        self.delay = min(self.delay * 2, self.cap_s)
        self.next_try = time.perf_counter() + self.delay

    def restored(self, **extra) -> dict:
        event = {"type": "outage", "source": self.name, "lost_at": round(self.lost_wall, 6),
                 "restored_at": round(time.time(), 6), "seconds": round(time.perf_counter() - self.lost, 3),
                 "attempts": self.attempts + 1, **extra}
        self.lost = self.lost_wall = None
        return event
