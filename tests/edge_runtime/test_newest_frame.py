"""A slow consumer gets the newest frame and the ones it never saw are counted, never queued."""

import time

import numpy as np

from edge_runtime.newest import NewestFrameReader
from edge_runtime.sources import Frame


class CountingSource:
    """A live source delivering `n` numbered frames every `period` seconds."""

    live = True
    name = "test"

    def __init__(self, n: int, period: float):
        self.n, self.period, self.i = n, period, 0

    def open(self):
        pass

    def read(self):
        if self.i >= self.n:
            return None
        time.sleep(self.period)
        frame = Frame(np.zeros((2, 2, 3), np.uint8), self.i, time.time(), time.perf_counter(), self.name)
        self.i += 1
        return frame

    def close(self):
        pass


def test_slow_consumer_sees_newest_and_counts_drops():
    reader = NewestFrameReader(CountingSource(60, 0.002)).start()
    seen = []
    while True:
        frame = reader.read(timeout=1.0)
        if frame is None:
            break
        if frame is reader.WAIT:
            continue
        seen.append(frame.frame_id)
        time.sleep(0.015)  # 7x slower than the source
    reader.stop()
    assert seen == sorted(seen)
    assert len(seen) < 30
    assert seen[-1] >= 55  # the end of the stream was reached, not a stale backlog
    assert reader.dropped + len(seen) == 60
