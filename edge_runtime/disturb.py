"""Disturbances for robustness checks: what a line camera does to a good image, and a sensor to its signal,
on a bad day.

Each disturbance maps (image, mask) → (image, mask) and is deterministic for a
given image index, so two models (fp32 and INT8) see identical inputs. A mask
moves with the image where the geometry changes (shift); otherwise it is kept.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from edge_runtime.cli_support import comma_list
from edge_runtime.errors import InputFileError

Disturbance = Callable[[np.ndarray, np.ndarray | None, int], tuple[np.ndarray, np.ndarray | None]]


def sensor_noise(image, mask, index, sigma: float = 8.0):
    """Gaussian read noise, sigma 8 grey levels (a cheap sensor at high gain)."""
    rng = np.random.default_rng(index)
    noisy = image.astype(np.float32) + rng.normal(0, sigma, image.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8), mask


def shift(image, mask, index, fraction: float = 0.04):
    """The part sits 4 % of its size off its usual place (in a direction set by the index)."""
    h, w = image.shape[:2]
    angle = (index * 2.399963) % (2 * np.pi)  # golden-angle steps: every direction, reproducibly
    dx, dy = fraction * w * np.cos(angle), fraction * h * np.sin(angle)
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    moved = cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)
    if mask is not None:
        mask = cv2.warpAffine(mask, matrix, (mask.shape[1], mask.shape[0]), flags=cv2.INTER_NEAREST,
                              borderMode=cv2.BORDER_CONSTANT)
    return moved, mask


def brightness(image, mask, index, gains=(0.75, 1.25)):
    """The light is 25 % dimmer or brighter (alternating by index): an ageing lamp, a door left open."""
    gain = gains[index % len(gains)]
    return np.clip(image.astype(np.float32) * gain, 0, 255).astype(np.uint8), mask


def blur(image, mask, index, sigma: float = 1.5):
    """Slightly out of focus (Gaussian, sigma 1.5 px): vibration or a part at another height."""
    return cv2.GaussianBlur(image, (0, 0), sigma), mask


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """`image` (grey or 3-channel uint8) encoded as JPEG at `quality` and decoded again, in its own shape."""
    _, data = cv2.imencode(".jpg", np.ascontiguousarray(image), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED).reshape(image.shape)


def jpeg(image, mask, index, quality: int = 70):
    """The frame went through JPEG at quality 70, as an IP camera's or a recorded clip's frames do: 8x8 blocks,
    fine detail gone. A model trained on lossless stills and run on a compressed stream meets exactly this."""
    return jpeg_roundtrip(image, quality), mask


DISTURBANCES: dict[str, Disturbance] = {"noise": sensor_noise, "shift": shift, "brightness": brightness, "blur": blur,
                                        "jpeg": jpeg}


# Sensor windows (N x T x C float32) on a bad day, in units of each channel's spread over the data set
# (`scale`, C), deterministic for a seed so that fp32 and INT8 see identical inputs.
def signal_noise(x: np.ndarray, scale: np.ndarray, rng: np.random.Generator, level: float = 0.1):
    """White noise at 10 % of the channel's spread: a longer cable, a noisier amplifier."""
    return (x + rng.normal(0, 1, x.shape).astype(np.float32) * (level * scale)).astype(np.float32)


def signal_gain(x: np.ndarray, scale: np.ndarray, rng: np.random.Generator, gains=(0.9, 1.1)):
    """The sensor reads 10 % low or high (alternating by window): a sensor swapped, a drifting calibration."""
    factor = np.where(np.arange(len(x)) % 2 == 0, gains[0], gains[1]).astype(np.float32)
    return (x * factor[:, None, None]).astype(np.float32)


def signal_offset(x: np.ndarray, scale: np.ndarray, rng: np.random.Generator, level: float = 0.25):
    """A constant offset of a quarter of the channel's spread (up or down by window): zero-point drift."""
    sign = np.where(np.arange(len(x)) % 2 == 0, -1.0, 1.0).astype(np.float32)
    return (x + sign[:, None, None] * (level * scale)).astype(np.float32)


SIGNAL_DISTURBANCES = {"noise": signal_noise, "gain": signal_gain, "offset": signal_offset}


def parse_disturbances(text: str | None, known: dict = DISTURBANCES) -> list[str]:
    """'noise,blur' or 'all' → names of `known` (camera disturbances by default); an unknown name is one line."""
    if text is None:
        return []
    names = list(known) if text.strip() == "all" else comma_list(text, "--perturb", f"{', '.join(known)}, or all")
    unknown = [n for n in names if n not in known]
    if unknown:
        alone = " (all stands alone, not in a list)" if "all" in unknown else ""
        raise InputFileError(f"--perturb {', '.join(unknown)} is not known for this model{alone}; choose from "
                             f"{', '.join(known)} or all")
    return names
