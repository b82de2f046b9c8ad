"""Real surfaces from scikit-image's bundled photographs, cut into part-sized crops.

brick, grass and gravel are real textures (512x512 grayscale) shipped inside
the scikit-image wheel, so nothing is downloaded. Each gets a colour tint so
the models see colour images, as a line camera delivers.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from edge_runtime.errors import DatasetLayoutError

SURFACES = ("brick", "grass", "gravel")
_TINT_BGR = {"brick": (0.62, 0.78, 1.0), "grass": (0.62, 1.0, 0.78), "gravel": (0.82, 0.9, 1.0)}

# Train crops come from the left of each photograph, test crops from the right:
# the test split never shares source pixels with training.
TRAIN_REGION = (0, 340)
TEST_REGION = (340, 512)


@lru_cache(maxsize=None)
def load_surface(name: str) -> np.ndarray:
    """The named photograph as a tinted uint8 BGR image."""
    if name not in SURFACES:
        raise DatasetLayoutError(f"unknown surface {name!r}; choose from {', '.join(SURFACES)}")
    from skimage import data  # bundled files, read locally

    gray = getattr(data, name)().astype(np.float32)
    tinted = np.stack([gray * t for t in _TINT_BGR[name]], axis=-1)
    image = np.clip(tinted, 0, 255).astype(np.uint8)
    image.setflags(write=False)
    return image


def crop_part(surface: np.ndarray, rng: np.random.Generator, region: tuple[int, int], size: int = 128) -> np.ndarray:
    """A random square window (side 100..160 px) of `region`'s columns, resized, turned and flipped."""
    x0, x1 = region
    side = int(rng.integers(100, min(161, x1 - x0 + 1)))
    x = int(rng.integers(x0, x1 - side + 1))
    y = int(rng.integers(0, surface.shape[0] - side + 1))
    part = cv2.resize(surface[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA)
    part = np.rot90(part, int(rng.integers(0, 4)))
    if rng.random() < 0.5:
        part = part[:, ::-1]
    return np.ascontiguousarray(part)
