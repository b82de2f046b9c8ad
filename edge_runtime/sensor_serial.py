"""`serial:///dev/ttyX?baud=N`: sensor samples as text lines on a serial port — the line parser and the source.

Serial line format: one sample per line ending in LF (CR before it ignored),
C decimal numbers separated by commas, semicolons and/or whitespace, e.g.
`0.12,-3.5,17` — in the model's channel order. A line with another count, a
word that is not a number, a line over 4096 bytes, or the partial line a port
leaves when it drops, is a `Problem` that costs one sample: the window refills.
Serial samples carry their arrival time (the line has no clock of its own).
"""

from __future__ import annotations

import errno
import os
import re
import select
import time

import numpy as np

from edge_runtime.errors import SourceError
from edge_runtime.sensor_samples import WAIT, Backoff, Problem, Samples

MAX_LINE = 4096
_SEPARATORS = re.compile(rb"[,;\s]+")


def parse_line(line: bytes, channels: int) -> np.ndarray | Problem:
    """One serial line (without its LF) → C float32 values, or the Problem. Never raises."""
    fields = [f for f in _SEPARATORS.split(line.strip()) if f]
    if len(fields) != channels:
        return Problem("malformed_line", f"{len(fields)} values, expected {channels}: {line[:40]!r}", lost=1,
                       breaks=True)
    try:
        return np.array([float(f.decode("ascii")) for f in fields], dtype=np.float32)
    except (ValueError, UnicodeDecodeError, OverflowError):
        return Problem("malformed_line", f"not numbers: {line[:40]!r}", lost=1, breaks=True)


class LineSplitter:
    """Bytes in, complete lines out. Whatever comes before the first line end after a port opens is dropped
    (the port may have opened mid-line, and half a number must never reach the model); an over-long line is
    cut and reported."""

    def __init__(self):
        self.buffer, self.synced = b"", False

    def feed(self, data: bytes) -> list[bytes | Problem]:
        self.buffer += data
        if not self.synced:
            head, found, self.buffer = self.buffer.partition(b"\n")
            if not found:
                self.buffer = b""
                return []
            self.synced = True
        *lines, self.buffer = self.buffer.split(b"\n")
        out: list[bytes | Problem] = [line.rstrip(b"\r") for line in lines]
        if len(self.buffer) > MAX_LINE:
            out.append(Problem("long_line", f"no line end within {MAX_LINE} bytes", lost=1, breaks=True))
            self.buffer, self.synced = b"", False
        return out

    def cut(self) -> Problem | None:
        """The port dropped: a partial line is lost."""
        partial, self.buffer = self.buffer, b""
        return Problem("cut_line", f"partial line {partial[:40]!r}", lost=1, breaks=True) if partial.strip() else None


class SerialSource:
    """`serial:///dev/ttyX?baud=N`: lines in the format above; reopened with backoff when the port goes away."""

    live = True

    def __init__(self, path: str, baud: int, channels: int, name: str):
        self.path, self.channels, self.name = path, channels, name
        self.speed = getattr(__import__("termios"), f"B{baud}", None)
        if self.speed is None:
            raise SourceError(f"{name}: {baud} is not a baud rate this system knows (e.g. 9600, 115200, 921600)")
        self._fd: int | None = None
        self._lines = LineSplitter()
        self._pending: list = []
        self._backoff = Backoff(name)
        self._events: list[dict] = []

    def _open_port(self) -> None:
        import termios
        import tty

        fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            tty.setraw(fd)
            attrs = termios.tcgetattr(fd)
            attrs[4] = attrs[5] = self.speed
            attrs[2] |= termios.CLOCAL | termios.CREAD
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
        except termios.error as exc:
            os.close(fd)
            raise OSError(errno.ENOTTY, f"not a serial port ({exc})") from None
        self._fd = fd

    def open(self) -> None:
        try:
            self._open_port()  # the first open must work: a wrong path is a user error, not an outage
        except OSError as exc:
            raise SourceError(f"{self.name}: cannot open {self.path} ({exc.strerror or exc}): check the device "
                              "and that this user may read it (group dialout)") from None

    def _drop(self) -> None:
        os.close(self._fd)
        self._fd = None
        self._backoff.lost_now()
        cut = self._lines.cut()
        self._pending.append(cut or Problem("port_lost", f"{self.path} went away", lost=None, breaks=True))

    def read(self, timeout: float = 0.5):
        if self._pending:
            return self._next()
        if self._fd is None:
            if not self._backoff.wait(timeout):
                return WAIT
            try:
                self._open_port()
            except OSError:
                self._backoff.failed()
                return WAIT
            self._events.append(self._backoff.restored())
            self._lines = LineSplitter()
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return WAIT
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return WAIT
        except OSError:  # EIO: the device (or the other end of a pty) is gone
            data = b""
        if not data:
            self._drop()
            return self._next()
        received, wall = time.perf_counter(), time.time()
        for item in self._lines.feed(data):
            if isinstance(item, bytes):
                if not item.strip():
                    continue
                parsed = parse_line(item, self.channels)
                if isinstance(parsed, np.ndarray):
                    item = Samples(None, np.array([wall]), parsed[None], received)
                else:
                    item = parsed
            self._pending.append(item)
        return self._next() if self._pending else WAIT

    def _next(self):
        return self._pending.pop(0)

    def pop_events(self) -> list[dict]:
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
