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


# --- Tint: what colour a defect gives the surface, learned from the real defects --------------------------------
# Brightness and tint are separated per pixel in log space: log((x + _DARK) / (bg + _DARK)) per channel, its mean
# over the three channels is the shade (darker, lighter), what is left the tint (redder, bluer). _DARK keeps nearly
# black pixels, whose channel ratios are noise, from reading as strong tints.
_DARK = 16.0


@dataclass
class Tint:
    """Per channel (B, G, R), the real defects' tint: the mean over defects, how far one defect's mean tint lies
    from it (between), and how much the tint varies inside one defect (within)."""

    mean: np.ndarray
    between: np.ndarray
    within: np.ndarray


def _log_change(x: np.ndarray, bg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(shade ...×1, tint ...×3) of pixels x against background bg (both float BGR)."""
    change = np.log((x + _DARK) / (bg + _DARK))
    shade = change.mean(axis=-1, keepdims=True)
    return shade, change - shade


def tint_reference(bank: Bank) -> Tint:
    """The real defects' tint, each against the median colour of the ring of good surface around it."""
    means, variances = [], []
    for patch, mask in zip(bank.patches.astype(np.float32), bank.masks):
        ring = cv2.dilate(mask, np.ones((7, 7), np.uint8)) == 0
        bg = np.median(patch[ring], axis=0) if ring.sum() >= 16 else np.median(patch.reshape(-1, 3), axis=0)
        tint = _log_change(patch[mask > 0], bg)[1]
        means.append(tint.mean(axis=0))
        variances.append(tint.var(axis=0))
    means = np.array(means)
    return Tint(means.mean(axis=0), means.std(axis=0), np.sqrt(np.mean(variances, axis=0)))


def match_tint(layer: np.ndarray, background: np.ndarray, alpha: np.ndarray, ref: Tint) -> np.ndarray:
    """The painted layer with the real defects' tint and the generator's shade.

    Inside the defect the painted tint's mean is kept within the real defects' spread of means, and its variation
    is narrowed to theirs at most. The whole layer is moved (the alpha hides what lies outside), so the soft edge
    fades to the background as a real defect's does.
    """
    x, bg = layer.astype(np.float32), background.astype(np.float32)
    shade, tint = _log_change(x, bg)
    inside = alpha >= 0.5
    if not inside.any():
        return layer
    mean, spread = tint[inside].mean(axis=0), tint[inside].std(axis=0)
    target = ref.mean + np.clip(mean - ref.mean, -ref.between, ref.between)
    tint = target + (tint - mean) * np.minimum(1.0, ref.within / np.maximum(spread, 1e-6))
    tint -= tint.mean(axis=-1, keepdims=True)  # a tint never changes the shade
    out = (bg + _DARK) * np.exp(shade + tint) - _DARK
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
