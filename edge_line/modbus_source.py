"""`--sensor modbus://HOST:PORT?start=N&count=C&kind=holding|input&rate=HZ&unit=1&scale=F`: poll PLC registers.

Every 1/rate seconds (on a fixed schedule from the start, so polls do not drift)
C registers from `start` are read; register i × scale is channel i (uint16; add
`signed=1` for int16). Each poll is one sample, numbered by its tick on that
schedule: a poll that could not be made — the PLC went away, or a poll took
longer than a period — leaves its number unused, so the window logic sees the
gap and its size. Nothing is invented for the time the PLC was away; its
return is an outage record. Reconnects back off from 0.25 s to 8 s.
"""

from __future__ import annotations

import logging
import math
import time
from urllib.parse import urlsplit

import numpy as np
from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from edge_runtime.errors import SourceError
from edge_runtime.sensor_samples import WAIT, Backoff, Problem, Samples
from edge_runtime.sensor_sources import check_channel_names, query_options

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # our own lines say what failed, once


class ModbusSource:
    live = True

    def __init__(self, host: str, port: int, start: int, count: int, kind: str, rate: float, unit: int,
                 scale: float, signed: bool, name: str, timeout_s: float = 0.5):
        self.host, self.port, self.start, self.count, self.kind = host, port, start, count, kind
        self.rate, self.unit, self.scale, self.signed, self.name = rate, unit, scale, signed, name
        self.client = ModbusTcpClient(host, port=port, timeout=timeout_s, retries=0)
        self._backoff = Backoff(name)
        self._events: list[dict] = []
        self._pending: list = []
        self._t0 = 0.0
        self._next_tick = 0

    @classmethod
    def from_spec(cls, spec: str, channels: list[str]) -> "ModbusSource":
        parts = urlsplit(spec)
        options = query_options(spec, parts.query, {"start", "count", "kind", "rate", "unit", "scale", "signed",
                                                    "channels"})
        check_channel_names(spec, options.get("channels"), channels)
        try:
            port = parts.port or 502
            start, count = int(options.get("start", 0)), int(options.get("count", len(channels)))
            rate, unit = float(options.get("rate", 10)), int(options.get("unit", 1))
            scale, signed = float(options.get("scale", 1)), options.get("signed", "0") in ("1", "true", "yes")
        except ValueError as exc:
            raise SourceError(f"--sensor {spec}: {exc} (expected modbus://HOST:PORT?start=N&count=C&rate=HZ)") from None
        kind = options.get("kind", "holding")
        if kind not in ("holding", "input"):
            raise SourceError(f"--sensor {spec}: kind={kind}, expected holding or input")
        if (not parts.hostname or not 0 < rate < math.inf or not math.isfinite(scale) or start < 0
                or not 1 <= count <= 125):
            raise SourceError(f"--sensor {spec}: expected modbus://HOST:PORT?start=N&count=C (1-125)&rate=HZ (> 0)"
                              "&scale=X (a finite number)")
        if count != len(channels):
            raise SourceError(f"--sensor {spec}: count={count} registers, but the model takes {len(channels)} "
                              f"channels ({','.join(channels)})")
        return cls(parts.hostname, port, start, count, kind, rate, unit, scale, signed, spec)

    def open(self) -> None:
        if not self.client.connect():
            raise SourceError(f"{self.name}: {self.host}:{self.port} refuses connections: check the PLC's address "
                              "and that its Modbus TCP server is on")
        self._t0, self._next_tick = time.perf_counter(), 0

    def _poll(self) -> np.ndarray:
        read = self.client.read_holding_registers if self.kind == "holding" else self.client.read_input_registers
        answer = read(self.start, count=self.count, device_id=self.unit)
        if answer.isError():
            raise ModbusException(f"{answer}")
        registers = np.array(answer.registers, dtype=np.uint16)
        values = registers.view(np.int16) if self.signed else registers
        return values.astype(np.float32) * np.float32(self.scale)

    def read(self, timeout: float = 0.5):
        if self._pending:
            return self._pending.pop(0)
        if self._backoff.down:
            if not self._backoff.wait(timeout):
                return WAIT
            if not self.client.connect():
                self._backoff.failed()
                return WAIT
            self._events.append(self._backoff.restored())
        due = self._t0 + self._next_tick / self.rate
        delay = due - time.perf_counter()
        if delay > timeout:
            time.sleep(timeout)
            return WAIT
        if delay > 0:
            time.sleep(delay)
        now = time.perf_counter()
        tick = max(self._next_tick, int((now - self._t0) * self.rate))  # late: the ticks passed are not polled
        wall = time.time()
        try:
            values = self._poll()
        except (ModbusException, OSError) as exc:
            self.client.close()
            self._backoff.lost_now()
            self._next_tick = tick + 1
            return Problem("plc_lost", f"{self.host}:{self.port}: {exc}", lost=None, breaks=False)
        self._next_tick = tick + 1
        return Samples(tick, np.array([wall]), values[None], time.perf_counter())

    def pop_events(self) -> list[dict]:
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        self.client.close()
