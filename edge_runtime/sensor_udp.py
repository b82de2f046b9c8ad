"""`udp://HOST:PORT`: sensor samples in UDP datagrams — the datagram codec and the source that listens.

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
"""

from __future__ import annotations

import select
import socket
import struct
import time

import numpy as np

from edge_runtime.errors import SourceError
from edge_runtime.sensor_samples import WAIT, Problem, Samples

MAGIC, VERSION = b"LSNS", 1
HEADER = struct.Struct("<4sBBHHHQdd")  # magic, version, reserved, channels, samples, reserved, index, time, period


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
