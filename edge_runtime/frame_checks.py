"""Frames that must not be judged: black (lens cap, lamp out), saturated, frozen (a hung driver
repeating its last buffer) or too old by the time they are decided.

A flagged frame is recorded with its flags and verdict "invalid" — never "good":
a line treats it like a reject (fail-safe) or stops, but never ships a part on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


# Fewer pixels a side hold no part to judge: stretched to the model's input they are a few flat blocks, and a
# verdict on them would be a guess (5x5 frames were judged good or defect).
MIN_SIDE = 8


def frame_problem(image) -> str | None:
    """Why this cannot be judged as an image at all (a source delivering garbage), or None."""
    if not isinstance(image, np.ndarray):
        return "not_an_image"
    if image.dtype != np.uint8:
        return "bad_dtype"
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        return "bad_shape"
    if image.shape[0] < 2 or image.shape[1] < 2:
        return "empty"
    if min(image.shape[:2]) < MIN_SIDE:
        return "too_small"
    return None


@dataclass(frozen=True)
class FrameLimits:
    frozen_frames: int = 5  # identical to the previous N frames; 0 disables
    max_age_ms: float = 500.0  # capture → decision; 0 disables
    dark_level: float = 8.0  # mean level below this: black
    bright_level: float = 247.0  # mean level above this: saturated


class FrameChecker:
    def __init__(self, limits: FrameLimits = FrameLimits()):
        self.limits = limits
        self._previous: np.ndarray | None = None
        self._repeats = 0

    def before(self, image: np.ndarray) -> list[str]:
        """Flags known before inference, from a 160x90 nearest-neighbour sample (~0.03 ms at 720p).

        Nearest, not averaged: a live camera's sensor noise always changes some of the
        sampled pixels, even on a still scene; only a repeated buffer is equal to the byte.
        (A strided numpy view took 1.2 ms per 720p frame — more than the INT8 model.)
        """
        sample = cv2.resize(image, (160, 90), interpolation=cv2.INTER_NEAREST)
        flags = []
        mean = float(np.mean(cv2.mean(sample)[: 1 if sample.ndim == 2 else 3]))
        if mean < self.limits.dark_level:
            flags.append("black")
        elif mean > self.limits.bright_level:
            flags.append("saturated")
        if self._previous is not None and np.array_equal(sample, self._previous):
            self._repeats += 1
        else:
            self._repeats = 0
        self._previous = sample
        if self.limits.frozen_frames and self._repeats >= self.limits.frozen_frames:
            flags.append("frozen")
        return flags

    def after(self, age_ms: float) -> list[str]:
        """Flags known at decision time."""
        return ["stale"] if self.limits.max_age_ms and age_ms > self.limits.max_age_ms else []
