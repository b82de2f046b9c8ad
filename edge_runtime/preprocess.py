"""The one implementation of frame → model input, shared by training and serving.

Training imports this module to turn its images into tensors, so the pixels a
model learns from and the pixels it judges on the line go through the same code.
Normalisation (mean/std) lives inside the ONNX graph; here a frame only becomes
a uint8 RGB image of the model's input size.
"""

from __future__ import annotations

import cv2
import numpy as np

RESIZE_METHODS = {
    "area": cv2.INTER_AREA,
    "linear": cv2.INTER_LINEAR,
    "nearest": cv2.INTER_NEAREST,
}

Roi = tuple[int, int, int, int]  # x, y, width, height in frame pixels


def prepare_image(
    image: np.ndarray,
    size: tuple[int, int],
    roi: Roi | None = None,
    resize: str = "area",
    channel_order: str = "RGB",
) -> np.ndarray:
    """Turn an OpenCV image (BGR, BGRA or grayscale, uint8) into a uint8 HxWx3 model input.

    `size` is (height, width). `roi` crops the inspection window first — on a
    line the camera is fixed and the part sits in a known box.
    """
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if roi is not None:
        x, y, w, h = roi
        image = image[y : y + h, x : x + w]
    height, width = size
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=RESIZE_METHODS[resize])
    if channel_order == "RGB":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(image, dtype=np.uint8)


def roi_fits(roi: Roi, frame_shape: tuple[int, ...]) -> bool:
    """True when the ROI lies inside a frame of this shape."""
    x, y, w, h = roi
    return x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= frame_shape[1] and y + h <= frame_shape[0]
