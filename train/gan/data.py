"""The real defects of one kind, checked the way a user's folder can be wrong, and their patches.

Layout (lineside's MVTec extension, as `edge-data demo` writes it):
  DATA/train/good/*.png                         good parts (backgrounds)
  DATA/train/<kind>/NNN.png                     the few real defects
  DATA/train_ground_truth/<kind>/NNN_mask.png   their masks (0/255, same size)
Train masks live apart from MVTec's `ground_truth/`, which holds the test masks
under the same file names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_runtime.datasets import GOOD, image_files
from edge_runtime.errors import DatasetLayoutError, InputFileError

MIN_DEFECTS = 3  # fewer cannot show a spread: the collapse check compares generated spread with the real one
MIN_SIDE = 32  # smaller images leave no room to place a defect patch
MASKS = "train_ground_truth"
SYNTH_PREFIX = "synth_"  # `edge-data synth` names its files so; they are never taken for real defects


@dataclass
class Defects:
    kind: str
    images: np.ndarray  # N×H×W×3 uint8 BGR
    masks: np.ndarray  # N×H×W uint8 0/255
    files: list[Path]


def _read(path: Path, flags: int) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    if image is None:
        raise InputFileError(f"cannot read image {path}: remove it or replace it with a valid PNG/JPEG")
    return image


def defect_kinds(root: Path) -> list[str]:
    train = root / "train"
    return sorted(d.name for d in train.iterdir() if d.is_dir() and d.name != GOOD) if train.is_dir() else []


def choose(files: list[Path], k: int | None, seed: int) -> list[Path]:
    """k of the files, drawn by seed; the draws for one seed are nested (k=5 ⊂ k=10), so k is the only change."""
    if k is None or k >= len(files):
        return files
    order = np.random.default_rng([seed, 7]).permutation(len(files))
    return sorted(files[i] for i in order[:k])


def load_defects(root: str | Path, kind: str, k: int | None = None, seed: int = 0) -> Defects:
    root = Path(root)
    if not root.is_dir():
        raise InputFileError(f"data folder {root} does not exist: make one with `edge-data demo --out {root}`")
    # good's images have no masks, and a path would reach outside train/: name the problem, not a missing mask
    if kind == GOOD or kind in ("", ".", "..") or any(sep in kind for sep in "/\\"):
        kinds = ", ".join(defect_kinds(root)) or "none found"
        why = "the good parts, not a defect kind" if kind == GOOD else "a path, not a folder name" if kind else "empty"
        raise DatasetLayoutError(f"--defect {kind!r} is {why}: name the defect kind, a train/<defect> folder "
                                 f"({kinds})")
    folder = root / "train" / kind
    if not folder.is_dir():
        kinds = defect_kinds(root)
        raise DatasetLayoutError(f"{folder} does not exist: --defect must name a train/<defect> folder "
                                 f"({', '.join(kinds) if kinds else 'none found'})")
    if k is not None and k < MIN_DEFECTS:
        raise DatasetLayoutError(f"--k {k}: the GAN needs at least {MIN_DEFECTS} real defect images")
    files = [p for p in image_files(folder) if not p.stem.startswith(SYNTH_PREFIX)]
    need = max(MIN_DEFECTS, k or 0)
    if len(files) < need:
        raise DatasetLayoutError(f"{folder} has {len(files)} defect image(s); the GAN needs at least {need} "
                                 f"(minimum {MIN_DEFECTS}), each with a mask in {root / MASKS / kind}")
    files = choose(files, k, seed)
    images, masks = [], []
    for path in files:
        mask_path = root / MASKS / kind / f"{path.stem}_mask.png"
        if not mask_path.is_file():
            raise DatasetLayoutError(f"{path} has no mask: expected {mask_path} (0/255 PNG of the image's size "
                                     "marking the defect)")
        image, mask = _read(path, cv2.IMREAD_COLOR), _read(mask_path, cv2.IMREAD_GRAYSCALE)
        if mask.shape != image.shape[:2]:
            raise InputFileError(f"{mask_path} is {mask.shape[1]}x{mask.shape[0]} but {path} is "
                                 f"{image.shape[1]}x{image.shape[0]}: a mask must have its image's size")
        if not (mask > 127).any():
            raise InputFileError(f"{mask_path} marks no pixel: a defect image needs the defect's mask")
        if images and image.shape != images[0].shape:
            raise InputFileError(f"{path} is {image.shape[1]}x{image.shape[0]} but {files[0]} is "
                                 f"{images[0].shape[1]}x{images[0].shape[0]}: all images must have one size")
        images.append(image)
        masks.append(np.where(mask > 127, 255, 0).astype(np.uint8))
    if min(images[0].shape[:2]) < MIN_SIDE:
        raise InputFileError(f"{files[0]} is {images[0].shape[1]}x{images[0].shape[0]}: the GAN needs images of at "
                             f"least {MIN_SIDE}x{MIN_SIDE} px")
    return Defects(kind, np.stack(images), np.stack(masks), files)


def load_good(root: str | Path, shape: tuple[int, int] | None = None) -> tuple[np.ndarray, list[Path]]:
    """The good images (backgrounds to paint defects on): DATA/train/good, or images directly in DATA."""
    root = Path(root)
    folder = root / "train" / GOOD if (root / "train" / GOOD).is_dir() else root
    files = image_files(folder) if folder.is_dir() else []
    if not files:
        raise DatasetLayoutError(f"{root} has no good images: expected {root}/train/{GOOD}/*.png to paint defects on")
    images = [_read(p, cv2.IMREAD_COLOR) for p in files]
    shape = shape or images[0].shape[:2]
    for path, image in zip(files, images):
        if image.shape[:2] != tuple(shape):
            raise InputFileError(f"{path} is {image.shape[1]}x{image.shape[0]} but the defect images are "
                                 f"{shape[1]}x{shape[0]}: good and defect images must have one size")
    return np.stack(images), files


def crop_box(mask: np.ndarray) -> tuple[int, int, int]:
    """(x, y, side) of a square around the defect with a margin, moved inside the image."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    extent = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    side = int(np.clip(round(extent * 1.25) + 8, min(24, h, w), min(h, w)))
    cx, cy = (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2
    x = int(np.clip(round(cx - side / 2), 0, w - side))
    y = int(np.clip(round(cy - side / 2), 0, h - side))
    return x, y, side


def resize_square(image: np.ndarray, side: int) -> np.ndarray:
    """Area when shrinking (no aliasing of thin cracks), linear when enlarging."""
    if image.shape[0] == side:
        return image.copy()
    method = cv2.INTER_AREA if image.shape[0] > side else cv2.INTER_LINEAR
    return cv2.resize(image, (side, side), interpolation=method)


@dataclass
class Bank:
    """The real defects as patches: what D learns from, and the shapes new defects start from."""

    patches: np.ndarray  # N×P×P×3 uint8 BGR
    masks: np.ndarray  # N×P×P uint8 0/1
    sides: np.ndarray  # N int: the crop side in image pixels each patch was taken at


def make_bank(defects: Defects, patch: int) -> Bank:
    patches, masks, sides = [], [], []
    for image, mask in zip(defects.images, defects.masks):
        x, y, side = crop_box(mask)
        patches.append(resize_square(image[y : y + side, x : x + side], patch))
        small = resize_square(mask[y : y + side, x : x + side].astype(np.float32) / 255.0, patch)
        masks.append((small >= 0.5).astype(np.uint8) if (small >= 0.5).any() else (small > 0).astype(np.uint8))
        sides.append(side)
    return Bank(np.stack(patches), np.stack(masks), np.array(sides, dtype=np.int64))
