"""Where sensor samples come from: `open_sensor_source` turns an `edge-run --sensor` argument into a source.

`csv:PATH` replays a recording (`CsvSensorSource`, here); `udp://HOST:PORT` is
`sensor_udp`'s, `serial:///dev/ttyX` `sensor_serial`'s and `modbus://HOST:PORT`
edge_line.modbus_source's (loaded only when asked for, as it needs pymodbus).
What a source's `read` returns (`Samples`, `Problem`, `WAIT`) is `sensor_samples`'.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from edge_runtime.errors import SourceError
from edge_runtime.sensor_samples import WAIT, Problem, Samples
from edge_runtime.sensor_serial import SerialSource
from edge_runtime.sensor_udp import UdpSource


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
            if not 0 < hz < math.inf:
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

def query_options(spec: str, query: str, allowed: set[str]) -> dict[str, str]:
    """`?a=1&b=2` → {a: 1, b: 2}; a name the source does not read, or one given twice, is an error (a typo
    would otherwise run with the default, and `rate=max&rate=1` with whichever came last)."""
    pairs = parse_qsl(query, keep_blank_values=True)
    names = [k for k, _ in pairs]
    unknown = sorted(set(names) - allowed)
    if unknown:
        raise SourceError(f"--sensor {spec}: unknown option {', '.join(unknown)} (this source reads "
                          f"{', '.join(sorted(allowed)) or 'none'})")
    repeated = sorted({k for k in names if names.count(k) > 1})
    if repeated:
        raise SourceError(f"--sensor {spec}: {', '.join(repeated)} is given more than once: keep one")
    return dict(pairs)


def _query(spec: str, allowed: set[str]) -> tuple[object, dict[str, str]]:
    parts = urlsplit(spec)
    return parts, query_options(spec, parts.query, allowed)


def check_channel_names(name: str, given: str | None, channels: list[str]) -> None:
    if given is not None and given.split(",") != channels:
        raise SourceError(f"{name}: channels={given} but the model takes {','.join(channels)} (in that order)")


def open_sensor_source(spec: str, channels: list[str], sample_rate_hz: float | None = None):
    """The source an `edge-run --sensor SPEC` names, checked against the model's channels before anything runs."""
    if spec.startswith("csv:"):
        path, _, query = spec[len("csv:"):].partition("?")
        if not path:
            raise SourceError(f"--sensor {spec}: name the file, e.g. csv:recording.csv?rate=max")
        options = query_options(spec, query, {"rate"})
        return CsvSensorSource(path, options.get("rate"), channels, spec, sample_rate_hz)
    scheme = urlsplit(spec).scheme
    if scheme == "modbus":
        import importlib

        try:
            module = importlib.import_module("edge_line.modbus_source")
        except ImportError as exc:
            raise SourceError(f"--sensor modbus:// needs {exc.name}: pip install 'lineside[line]'") from None
        return module.ModbusSource.from_spec(spec, channels)
    parts, options = _query(spec, {"channels", "baud"} if scheme == "serial" else {"channels"})
    check_channel_names(spec, options.get("channels"), channels)
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
    raise SourceError(f"--sensor {spec}: give csv:PATH, udp://HOST:PORT, serial:///dev/ttyX?baud=N or "
                      "modbus://HOST:PORT?start=N&count=C")
