"""Samples in, model windows out: one preallocated ring per source, windows of `window` samples every `stride`.

The rule, in full:

* Samples are numbered: by the source (UDP's sample index, a CSV row, a Modbus
  poll tick) or, where the source numbers nothing (serial), by arrival.
* A **gap** is a jump forward in that number, or a `Problem` that breaks the run
  (a cut serial line, a port that went away, a jump in a CSV's time column). A
  gap gives one `{"type": "gap", …, "missed": n}` record (n None when nobody can
  know, e.g. while a serial port was away) and **no window ever spans it**: after
  a gap the ring refills, and the next window ends `window` samples after it.
* A sample whose number was already passed is **late** (it had been counted
  missing: it arrives out of order, after its gap was reported) or a
  **duplicate** (it had been seen). Both are counted and dropped — the window
  they belonged to was already decided without them (or never will be).
* Within a run, windows end at samples `window`, `window + stride`, … of the
  run, and are numbered 0, 1, 2 … over the whole run of edge-run.
* A window holding a NaN or an infinite value is still emitted (it gets its id
  and a record) but flagged `non_finite`: it is recorded as `invalid`, never run.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field

import numpy as np

from edge_runtime.sensor_samples import Problem, Samples


@dataclass(frozen=True)
class Window:
    window_id: int
    values: np.ndarray  # float32 (window, C), a copy the ring will not overwrite
    first_index: int
    last_index: int
    first_at: float  # capture time of the first and last sample (wall clock)
    last_at: float
    received: float  # time.perf_counter() when the last sample arrived
    flags: tuple[str, ...] = ()


@dataclass
class WindowCounts:
    samples: int = 0  # accepted into a run
    gaps: int = 0
    missed: int = 0  # samples known to be missing (gaps with a known size)
    late: int = 0
    duplicates: int = 0
    non_finite: int = 0  # windows not run for NaN/inf
    windows: int = 0
    problems: dict[str, int] = field(default_factory=dict)


class Windower:
    def __init__(self, window: int, stride: int, channels: int, source: str = "", remember_missing: int = 256):
        if window < 1 or stride < 1:
            raise ValueError(f"window {window} and stride {stride} must be >= 1")
        self.window, self.stride, self.source = window, stride, source
        self._values = np.zeros((window, channels), np.float32)
        self._times = np.zeros(window, np.float64)
        self._indices = np.zeros(window, np.int64)
        self._head = 0  # where the next sample goes
        self._run = 0  # consecutive samples since the last gap
        self._last_bad = -1  # run position of the last non-finite sample
        self._expected: int | None = None  # the number the next sample should have
        self._counter = 0  # numbers for sources that number nothing
        self._missing: collections.deque = collections.deque(maxlen=remember_missing)  # [start, end) ranges
        self._next_id = 0
        self._numbering = "source"  # or "arrival", once the source sends unnumbered samples
        self.counts = WindowCounts()

    # --- gaps ---

    def _gap(self, missed: int | None, reason: str, resumed: int | None) -> dict:
        self._run, self._last_bad = 0, -1
        self.counts.gaps += 1
        self.counts.missed += missed or 0
        return {"type": "gap", "source": self.source, "at": round(time.time(), 6), "reason": reason,
                "after_sample": None if self._expected is None else self._expected - 1,
                "resumed_sample": resumed, "missed": missed}

    def problem(self, problem: Problem) -> list[dict]:
        """Input that was not samples: counted; a gap record when it breaks the run."""
        self.counts.problems[problem.kind] = self.counts.problems.get(problem.kind, 0) + 1
        if not problem.breaks:
            return []
        event = self._gap(problem.lost, problem.kind, None)
        if self._expected is not None and problem.lost and self._numbering == "arrival":
            self._counter += problem.lost  # arrival numbers skip the lost samples, as a sender's index would
            self._expected = self._counter
        return [event]

    def _old(self, index: int) -> None:
        for i, (start, end) in enumerate(self._missing):
            if start <= index < end:
                self.counts.late += 1
                pieces = [(s, e) for s, e in ((start, index), (index + 1, end)) if e > s]
                del self._missing[i]
                self._missing.extend(pieces)
                return
        self.counts.duplicates += 1

    # --- samples ---

    def push(self, block: Samples) -> list:
        """Take a block of samples; the windows it completes and the gap records it reveals, in order."""
        n = len(block.values)
        if block.index is None:
            self._numbering = "arrival"
            first = self._counter
        else:
            first = block.index
        self._counter = first + n
        out: list = []
        skip = 0
        if self._expected is not None:
            if first > self._expected:
                self._missing.append((self._expected, first))
                out.append(self._gap(first - self._expected, "index_jump", first))
            elif first < self._expected:
                skip = min(n, self._expected - first)
                for index in range(first, first + skip):
                    self._old(index)
                if skip == n:
                    self._counter = self._expected
                    return out
        self._expected = first + n
        finite = np.isfinite(block.values).all(axis=1)
        i = skip
        while i < n:  # copy up to the next window end at a time: numpy work per window, not per sample
            due = self.window - self._run if self._run < self.window else \
                self.stride - (self._run - self.window) % self.stride
            take = min(due, n - i)
            self._store(block, i, take, first)
            bad = np.flatnonzero(~finite[i:i + take])
            if bad.size:
                self._last_bad = self._run + int(bad[-1]) + 1
            self._run += take
            self.counts.samples += take
            i += take
            if take == due:
                out.append(self._emit(block.received))
        return out

    def _store(self, block: Samples, start: int, count: int, first: int) -> None:
        """Samples start .. start+count of the block into the ring (count <= window), wrapping once at most."""
        done = 0
        while done < count:
            head = self._head
            part = min(count - done, self.window - head)
            src = slice(start + done, start + done + part)
            self._values[head:head + part] = block.values[src]
            self._times[head:head + part] = block.times[src]
            self._indices[head:head + part] = np.arange(first + src.start, first + src.stop)
            self._head = (head + part) % self.window
            done += part

    def _emit(self, received: float) -> Window:
        h = self._head  # the oldest sample
        values = np.concatenate((self._values[h:], self._values[:h])) if h else self._values.copy()
        last = h - 1  # the newest
        bad = self._last_bad > self._run - self.window
        window = Window(self._next_id, values, int(self._indices[h]), int(self._indices[last]),
                        float(self._times[h]), float(self._times[last]), received, ("non_finite",) if bad else ())
        self._next_id += 1
        self.counts.windows += 1
        self.counts.non_finite += bad
        return window
