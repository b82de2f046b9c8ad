"""Where a new defect goes and how it is blended in.

Shapes come from the real masks under random affine moves (a turn of the
dihedral group, ±20°, ×0.9–1.1, a small shift) rather than from a learned
mask generator: with five examples a mask GAN has nothing to learn from, and
the shape is the least of what a classifier has to learn about a defect. The
appearance inside the shape is what the generator paints.

The painted layer is blended with a soft alpha (the mask, dilated by a pixel
and blurred), as the demo's own defects are, so edges are neither hard nor
haloed. Only pixels under the alpha change: the rest of the good image stays
byte-identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from train.gan.data import Bank, resize_square


@dataclass
class Placement:
    """One new defect: its mask (P×P, 0/1), the bank entry it came from, and where it goes."""

    mask: np.ndarray
    source: int
    image: int  # index of the good image
    x: int
    y: int
    side: int
    turn: np.ndarray  # 2×3 affine matrix applied to the source (to move a real patch the same way)


def _affine(patch: int, rng: np.random.Generator) -> np.ndarray:
    quarter = int(rng.integers(4)) * 90.0
    angle = quarter + rng.uniform(-20, 20)
    scale = rng.uniform(0.9, 1.1)
    matrix = cv2.getRotationMatrix2D((patch / 2 - 0.5, patch / 2 - 0.5), angle, scale)
    if rng.random() < 0.5:  # mirror: x → P-1-x before turning
        matrix = matrix @ np.array([[-1, 0, patch - 1], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    matrix[:, 2] += rng.uniform(-patch / 16, patch / 16, 2)
    return matrix


def warp(image: np.ndarray, matrix: np.ndarray, border: int = cv2.BORDER_CONSTANT) -> np.ndarray:
    side = image.shape[0]
    return cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=border)


def place(bank: Bank, n_images: int, image_shape: tuple[int, int], rng: np.random.Generator) -> Placement:
    """A random shape from the bank, moved, on a random good image at a random spot."""
    source = int(rng.integers(len(bank.masks)))
    patch = bank.masks.shape[1]
    matrix = _affine(patch, rng)
    mask = (warp(bank.masks[source].astype(np.float32), matrix) >= 0.5).astype(np.uint8)
    if not mask.any():  # moved out of the patch: keep the shape unmoved
        matrix = np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float64)
        mask = bank.masks[source].copy()
    side = int(min(bank.sides[source], *image_shape))
    h, w = image_shape
    return Placement(mask, source, int(rng.integers(n_images)), int(rng.integers(0, w - side + 1)),
                     int(rng.integers(0, h - side + 1)), side, matrix)


def window(image: np.ndarray, p: Placement, patch: int) -> np.ndarray:
    """The good image under a placement, at patch resolution."""
    return resize_square(image[p.y : p.y + p.side, p.x : p.x + p.side], patch)


def soft_alpha(mask: np.ndarray) -> np.ndarray:
    """0/1 mask → 0..1 float alpha: one pixel wider, edges blurred, the blur's faint tail cut (no stray ±1 changes)."""
    wide = cv2.dilate(mask.astype(np.float32), np.ones((3, 3), np.uint8))
    alpha = np.clip(cv2.GaussianBlur(wide, (0, 0), 0.8), 0.0, 1.0)
    return np.where(alpha < 0.02, 0.0, alpha).astype(np.float32)


def blend(background: np.ndarray, layer: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    return np.clip(background.astype(np.float32) * (1 - a) + layer.astype(np.float32) * a + 0.5, 0, 255).astype(np.uint8)


def composite(good: np.ndarray, layer: np.ndarray, p: Placement) -> tuple[np.ndarray, np.ndarray]:
    """Blend a P×P defect layer into a full good image at its placement → (image, 0/255 mask)."""
    alpha = np.clip(cv2.resize(soft_alpha(p.mask), (p.side, p.side), interpolation=cv2.INTER_LINEAR), 0, 1)
    big = cv2.resize(layer, (p.side, p.side), interpolation=cv2.INTER_LINEAR)
    image = good.copy()
    region = image[p.y : p.y + p.side, p.x : p.x + p.side]
    image[p.y : p.y + p.side, p.x : p.x + p.side] = blend(region, big, alpha)
    mask = np.zeros(good.shape[:2], np.uint8)
    small = cv2.resize(p.mask.astype(np.float32), (p.side, p.side), interpolation=cv2.INTER_LINEAR)
    mask[p.y : p.y + p.side, p.x : p.x + p.side] = np.where(small >= 0.5, 255, 0).astype(np.uint8)
    return image, mask


def pasted_layer(bank: Bank, p: Placement) -> np.ndarray:
    """The copy-paste baseline's layer: the real defect patch, moved like its mask."""
    return warp(bank.patches[p.source], p.turn, cv2.BORDER_REFLECT)
