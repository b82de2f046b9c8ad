"""A line clip: parts on an indexing conveyor passing under a fixed 720p camera.

Each part slides in from the left, stops centred in the inspection ROI, and
slides out to the right. The belt has moving seams and the sensor has noise, so
consecutive frames differ as they do on a real camera.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge_runtime.errors import InputFileError

WIDTH, HEIGHT, FPS = 1280, 720, 30
MAGNIFICATION = 2
CLIP_ROI = (512, 232, 256, 256)  # x, y, w, h: where a part stops under the camera
SLIDE, DWELL = 10, 20  # frames moving in (and out), frames at rest


def _belt(offset: int, vignette: np.ndarray) -> np.ndarray:
    frame = np.full((HEIGHT, WIDTH, 3), 58, np.float32)
    frame[150:570] = 72  # the belt
    for x in range((offset % 80) - 80, WIDTH, 80):  # seams move with the belt
        frame[150:570, max(x, 0) : max(x + 4, 0)] = 48
    return frame * vignette


def write_clip(path: Path, parts: list[tuple[np.ndarray, str]], seed: int) -> tuple[dict, list[list]]:
    """Write the clip; returns its info and one CSV row per frame (frame, part_id, in_position, label)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise InputFileError(f"OpenCV cannot write an mp4v video to {path}: check the folder and OpenCV's FFmpeg")
    rng = np.random.default_rng([seed, 7])
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    vignette = (1.0 - 0.25 * (((xx - WIDTH / 2) / WIDTH) ** 2 + ((yy - HEIGHT / 2) / HEIGHT) ** 2) * 2)[..., None]
    x_roi, y_roi, side, _ = CLIP_ROI
    stop_x, travel = x_roi, x_roi + side  # a part travels from off-screen left to the stop, then on
    rows, frame_id, belt = [], 0, 0
    for part_id, (image, label) in enumerate(parts):
        big = cv2.resize(image, (side, side), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        positions = ([stop_x - travel + travel * (k + 1) / SLIDE for k in range(SLIDE)] + [stop_x] * DWELL
                     + [stop_x + travel * (k + 1) / SLIDE for k in range(SLIDE)])
        for k, x in enumerate(positions):
            moving = not SLIDE <= k < SLIDE + DWELL
            belt += 8 if moving else 0
            frame = _belt(belt, vignette)
            x = int(round(x))
            a, b = max(x, 0), min(x + side, WIDTH)
            if b > a:
                frame[y_roi : y_roi + side, a:b] = big[:, a - x : b - x]
            frame += rng.normal(0, 2.0, frame.shape).astype(np.float32)
            writer.write(np.clip(frame, 0, 255).astype(np.uint8))
            rows.append([frame_id, part_id, int(not moving), label])
            frame_id += 1
    writer.release()
    return {"fps": FPS, "width": WIDTH, "height": HEIGHT, "frames": frame_id, "magnification": MAGNIFICATION}, rows
