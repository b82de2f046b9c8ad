"""Defect generators: each returns a defective copy of an image and the mask of what changed.

Four kinds a surface inspection sees — crack, hole (missing material), scratch,
stain — varied in size, position, orientation and colour so that no single
global statistic gives them away. Masks are 0/255 uint8, same size as the image.
"""

from __future__ import annotations

import cv2
import numpy as np


def _blend(image: np.ndarray, colour_layer: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None].astype(np.float32)
    return np.clip(image.astype(np.float32) * (1 - a) + colour_layer.astype(np.float32) * a, 0, 255).astype(np.uint8)


def _mask_from(alpha: np.ndarray, level: float = 0.15) -> np.ndarray:
    return np.where(alpha >= level, 255, 0).astype(np.uint8)


def scratch(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A thin bright or dark line, nearly straight, with a faint halo."""
    h, w = image.shape[:2]
    length = rng.uniform(0.3, 0.7) * w
    angle = rng.uniform(0, np.pi)
    cx, cy = rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h
    bend = rng.uniform(-0.08, 0.08) * length
    t = np.linspace(-0.5, 0.5, 24)
    xs = cx + t * length * np.cos(angle) - bend * (1 - 4 * t**2) * np.sin(angle)
    ys = cy + t * length * np.sin(angle) + bend * (1 - 4 * t**2) * np.cos(angle)
    pts = np.stack([xs, ys], 1).round().astype(np.int32).reshape(-1, 1, 2)
    alpha = np.zeros((h, w), np.float32)
    cv2.polylines(alpha, [pts], False, 1.0, int(rng.integers(1, 4)), cv2.LINE_AA)
    halo = cv2.GaussianBlur(alpha, (0, 0), 1.5) * 0.5
    alpha = np.maximum(alpha, halo)
    bright = rng.random() < 0.5
    colour = np.full_like(image, 235 if bright else 25)
    return _blend(image, colour, alpha * rng.uniform(0.7, 0.95)), _mask_from(alpha)


def crack(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A dark jagged random walk, sometimes branching."""
    h, w = image.shape[:2]
    alpha = np.zeros((h, w), np.float32)

    def walk(x: float, y: float, heading: float, steps: int, width: int) -> list[tuple[float, float, float]]:
        path = [(x, y, heading)]
        for _ in range(steps):
            heading += rng.normal(0, 0.45)
            x, y = x + 4 * np.cos(heading), y + 4 * np.sin(heading)
            path.append((x, y, heading))
        pts = np.array([(p[0], p[1]) for p in path]).round().astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(alpha, [pts], False, 1.0, width, cv2.LINE_AA)
        return path

    main = walk(rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h, rng.uniform(0, 2 * np.pi),
                int(rng.integers(8, 18)), int(rng.integers(1, 4)))
    for _ in range(int(rng.integers(0, 3))):
        x, y, heading = main[int(rng.integers(1, len(main)))]
        walk(x, y, heading + rng.choice([-1, 1]) * rng.uniform(0.5, 1.2), int(rng.integers(3, 7)), 1)
    dark = np.full_like(image, int(rng.integers(5, 40)))
    return _blend(image, dark, alpha * rng.uniform(0.75, 0.95)), _mask_from(alpha)


def _blob(h: int, w: int, rng: np.random.Generator, rmin: float, rmax: float) -> np.ndarray:
    """An irregular filled shape (noisy ellipse), soft-edged, as a 0..1 float map."""
    cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
    rx, ry = rng.uniform(rmin, rmax) * w, rng.uniform(rmin, rmax) * h
    angles = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    radius = 1 + rng.normal(0, 0.18, angles.size)
    rot = rng.uniform(0, np.pi)
    xs = cx + rx * radius * np.cos(angles) * np.cos(rot) - ry * radius * np.sin(angles) * np.sin(rot)
    ys = cy + rx * radius * np.cos(angles) * np.sin(rot) + ry * radius * np.sin(angles) * np.cos(rot)
    shape = np.zeros((h, w), np.float32)
    cv2.fillPoly(shape, [np.stack([xs, ys], 1).round().astype(np.int32)], 1.0, cv2.LINE_AA)
    return shape


def stain(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A translucent blob of oil, rust or dirt: the texture still shows through."""
    h, w = image.shape[:2]
    shape = _blob(h, w, rng, 0.06, 0.2)
    alpha = cv2.GaussianBlur(shape, (0, 0), rng.uniform(1.5, 4.0)) * rng.uniform(0.35, 0.7)
    palette = [(20, 40, 60), (30, 70, 120), (40, 40, 40), (60, 90, 90)]  # BGR: dark, rust, soot, oil
    colour = np.empty_like(image)
    colour[:] = palette[int(rng.integers(len(palette)))]
    return _blend(image, colour, alpha), _mask_from(alpha, 0.1)


def hole(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Missing material: a dark cavity with a soft shaded rim."""
    h, w = image.shape[:2]
    shape = _blob(h, w, rng, 0.05, 0.14)
    rim = cv2.GaussianBlur(shape, (0, 0), 2.0)
    depth = cv2.GaussianBlur(shape, (0, 0), 4.0)
    cavity = np.full_like(image, int(rng.integers(10, 45))).astype(np.float32)
    cavity = cavity * (1.4 - 0.6 * depth[..., None])  # darker towards the middle
    out = _blend(image, np.clip(cavity, 0, 255).astype(np.uint8), np.maximum(shape, rim * 0.8))
    return out, _mask_from(np.maximum(shape, rim * 0.8), 0.2)


DEFECTS = {"crack": crack, "hole": hole, "scratch": scratch, "stain": stain}
