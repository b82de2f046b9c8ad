"""Where sensor samples come from: a CSV replay, UDP datagrams, a serial line (Modbus: edge_line.modbus_source).

Every source has the small interface of the frame sources — `open()`, `read(timeout)`,
`close()`, `live`, `name` — and `read` returns one of

* `Samples`: consecutive samples (index of the first one, or None when the source
  numbers nothing; wall-clock capture time per sample; float32 values n x C),
* `Problem`: something arrived that is not samples (a malformed datagram, a cut
  serial line, a jump in a file's time column); it never reaches the model,
* `WAIT` when nothing arrived within `timeout`, or None at the end of a file.

Outages (a serial port or a PLC that went away and came back) become records
from `pop_events()`, shaped like the camera outage records.

UDP datagram format (version 1; every number little-endian)::

    offset size  field
    0      4     magic b"LSNS"
    4      1     version = 1
    5      1     reserved, 0
    6      2     channels C (uint16)
    8      2     samples S in this datagram (uint16, >= 1)
    10     2     reserved, 0
    12     8     index of the first sample (uint64; counts every sample the sender took, from 0)
    20     8     capture time of the first sample (float64, seconds since the Unix epoch)
    28     8     sample period (float64, seconds; sample i was taken at time + i * period)
    36     4*S*C values, float32, sample after sample (S rows of C channels)

A datagram is exactly 36 + 4*S*C bytes. With the sample index the receiver sees
lost samples (the index jumps), late or reordered ones (an index it already
passed, which had been counted missing) and duplicates (an index it already
had). A datagram with the wrong magic, version, size or channel count is
counted and flagged (`Problem`), never decoded into samples.

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
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from edge_runtime.errors import SourceError

WAIT = object()  # read() found nothing within its timeout

MAGIC, VERSION = b"LSNS", 1
HEADER = struct.Struct("<4sBBHHHQdd")  # magic, version, reserved, channels, samples, reserved, index, time, period
MAX_LINE = 4096


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


# --- UDP ---------------------------------------------------------------------------------------------------------

def encode_datagram(first_index: int, first_time: float, period: float, values: np.ndarray) -> bytes:
    """The sender's side of the format above (tests and edge-bench use it; a sensor gateway does the same)."""
    values = np.ascontiguousarray(values, dtype="<f4")
    samples, channels = values.shape
    return HEADER.pack(MAGIC, VERSION, 0, channels, samples, 0, first_index, first_time, period) + values.tobytes()


def decode_datagram(data: bytes, channels: int, received: float | None = None) -> Samples | Problem:
    """One datagram → its samples, or the Problem that says why not. Never raises."""
    if len(data) < HEADER.size:
        return Problem("bad_size", f"{len(data)} bytes, shorter than the {HEADER.size}-byte header")
    magic, version, _, count_c, count_s, _, index, first, period = HEADER.unpack_from(data)
    if magic != MAGIC:
        return Problem("bad_magic", f"magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        return Problem("bad_version", f"version {version}, this receiver reads {VERSION}")
    if count_c != channels:
        return Problem("wrong_channels", f"{count_c} channels, the model takes {channels}")
    if count_s == 0 or len(data) != HEADER.size + 4 * count_s * count_c:
        return Problem("bad_size", f"{len(data)} bytes for {count_s} samples x {count_c} channels")
    if not (np.isfinite(first) and np.isfinite(period) and period >= 0):
        return Problem("bad_time", f"time {first!r}, period {period!r}")
    values = np.frombuffer(data, dtype="<f4", offset=HEADER.size).reshape(count_s, count_c).astype(np.float32)
    times = first + period * np.arange(count_s, dtype=np.float64)
    return Samples(index, times, values, time.perf_counter() if received is None else received)


class UdpSource:
    """`udp://HOST:PORT`: listen for datagrams in the format above (HOST 0.0.0.0 for every interface)."""

    live = True

    def __init__(self, host: str, port: int, channels: int, name: str):
        self.host, self.port, self.channels, self.name = host, port, channels, name
        self._sock: socket.socket | None = None

    def open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # seconds of backlog while a sink is slow
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise SourceError(f"{self.name}: cannot listen there ({exc.strerror}): is another edge-run on it?") from None
        self._sock = sock

    def read(self, timeout: float = 0.5):
        ready, _, _ = select.select([self._sock], [], [], timeout)
        if not ready:
            return WAIT
        data = self._sock.recv(65536)
        return decode_datagram(data, self.channels)

    def pop_events(self) -> list[dict]:
        return []

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


# --- serial ------------------------------------------------------------------------------------------------------

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


# --- CSV replay --------------------------------------------------------------------------------------------------

class CsvSensorSource:
    """`csv:PATH[?rate=HZ|recorded|max]`: replay a wide CSV (one row per sample, one column per channel).

    Columns are matched to the model's channels by name; a time column (t, time,
    timestamp) and a label column are not input. `rate=max` (default without a
    time column) replays as fast as the model decides; `rate=HZ` at that rate;
    `rate=recorded` (default with a time column) at the pace of the time column.
    Samples are numbered by row. Where the file has a time column, a step over
    1.5 sample periods (the model's sample_rate_hz, else the median step) is a
    gap the logger left: reported, and no window spans it.
    """

    def __init__(self, path: str, rate: str | None, channels: list[str], name: str,
                 sample_rate_hz: float | None = None):
        self.path, self.rate, self.wanted, self.name = Path(path), rate, channels, name
        self.sample_rate_hz = sample_rate_hz
        self.live = False
        self._row = 0
        self._values = self._times = None
        self._problem_at: dict[int, Problem] = {}

    def open(self) -> None:
        from edge_runtime.sensor_files import read_wide_csv

        if not self.path.is_file():
            raise SourceError(f"{self.name}: {self.path} does not exist")
        table = read_wide_csv(self.path, channels=list(self.wanted))  # other columns (labels, ids) are not read
        self._values = np.ascontiguousarray(table.values, dtype=np.float32)
        times = table.times
        rate = self.rate or ("recorded" if times is not None else "max")
        if rate == "recorded" and times is None:
            raise SourceError(f"{self.name}: rate=recorded needs a time column (t, time or timestamp) in {self.path}")
        if rate not in ("recorded", "max"):
            try:
                hz = float(rate)
            except ValueError:
                hz = 0.0
            if not hz > 0:
                raise SourceError(f"{self.name}: rate={rate} is not HZ > 0, 'recorded' or 'max'")
            rate = hz
        self._pace = rate
        self.live = rate != "max"
        self._recorded = times
        if times is not None and len(times) > 1:
            steps = np.diff(times)
            period = 1.0 / self.sample_rate_hz if self.sample_rate_hz else float(np.median(steps))
            for row in np.flatnonzero(steps > 1.5 * period) + 1:
                missed = int(round(steps[row - 1] / period)) - 1
                self._problem_at[int(row)] = Problem("time_jump", f"{steps[row - 1]:.6g} s between rows {row - 1} "
                                                     f"and {row} of {self.path.name}", lost=missed, breaks=True)
        self._start = time.perf_counter()
        self._start_wall = time.time()

    def _due(self, row: int) -> float:
        """perf_counter time at which `row` is replayed."""
        if self._pace == "recorded":
            return self._start + float(self._recorded[row] - self._recorded[0])
        return self._start + row / self._pace

    def read(self, timeout: float = 0.5):
        n = len(self._values)
        row = self._row
        if row >= n:
            return None
        if row in self._problem_at:
            problem = self._problem_at.pop(row)
            return problem
        end = min(n, row + 256)
        stops = [r for r in self._problem_at if row < r < end]
        end = min(stops, default=end)
        if self._pace == "max":
            times = np.full(end - row, time.time())
        else:
            delay = self._due(row) - time.perf_counter()
            if delay > timeout:
                time.sleep(timeout)
                return WAIT
            if delay > 0:
                time.sleep(delay)
            elapsed = time.perf_counter() - self._start
            if self._pace == "recorded":
                due = int(np.searchsorted(self._recorded - self._recorded[0], elapsed, side="right"))
            else:
                due = int(elapsed * self._pace) + 1
            end = max(row + 1, min(end, due))  # only the rows that are due
            times = np.array([self._start_wall + self._due(r) - self._start for r in range(row, end)])
        self._row = end
        return Samples(row, times, self._values[row:end], time.perf_counter())

    def pop_events(self) -> list[dict]:
        return []

    def close(self) -> None:
        self._values = None


# --- the --sensor argument -------------------------------------------------------------------------------------------

def _query(spec: str) -> tuple[object, dict[str, str]]:
    parts = urlsplit(spec)
    return parts, {k: v[-1] for k, v in parse_qs(parts.query).items()}


def _check_names(name: str, given: str | None, channels: list[str]) -> None:
    if given is not None and given.split(",") != channels:
        raise SourceError(f"{name}: channels={given} but the model takes {','.join(channels)} (in that order)")


def open_sensor_source(spec: str, channels: list[str], sample_rate_hz: float | None = None):
    """The source an `edge-run --sensor SPEC` names, checked against the model's channels before anything runs."""
    if spec.startswith("csv:"):
        path, _, query = spec[len("csv:"):].partition("?")
        options = {k: v[-1] for k, v in parse_qs(query).items()}
        return CsvSensorSource(path, options.get("rate"), channels, spec, sample_rate_hz)
    parts, options = _query(spec)
    _check_names(spec, options.get("channels"), channels)
    if parts.scheme == "udp":
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or not port:
            raise SourceError(f"--sensor {spec}: expected udp://HOST:PORT, e.g. udp://0.0.0.0:9000")
        return UdpSource(parts.hostname, port, len(channels), spec)
    if parts.scheme == "serial":
        try:
            baud = int(options.get("baud", 115200))
        except ValueError:
            raise SourceError(f"--sensor {spec}: baud must be a number, e.g. ?baud=115200") from None
        if not parts.path:
            raise SourceError(f"--sensor {spec}: expected serial:///dev/ttyX?baud=N")
        return SerialSource(parts.path, baud, len(channels), spec)
    if parts.scheme == "modbus":
        import importlib

        try:
            module = importlib.import_module("edge_line.modbus_source")
        except ImportError as exc:
            raise SourceError(f"--sensor modbus:// needs {exc.name}: pip install 'lineside[line]'") from None
        return module.ModbusSource.from_spec(spec, channels)
    raise SourceError(f"--sensor {spec}: give csv:PATH, udp://HOST:PORT, serial:///dev/ttyX?baud=N or "
                      "modbus://HOST:PORT?start=N&count=C")
