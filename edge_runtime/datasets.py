"""Finding labelled images in the folder layouts people already have.

- MVTec AD: `train/good`, `test/good`, `test/<defect>` (+ `ground_truth/`). lineside's
  demo extends it with `train/<defect>` so a supervised classifier can learn.
- Class folders: `<root>/<class>/*.png`, one folder per class.

Labels are the folder names; "good" is the good class.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge_runtime.errors import DatasetLayoutError, InputFileError
from edge_runtime.frame_checks import MIN_SIDE

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
GOOD = "good"


def image_files(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name (macOS's `._name` resource files are not images)."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("._"))


def load_image(path: str | Path) -> np.ndarray:
    """A labelled image to train or evaluate on: readable, and big enough to hold a part."""
    image = read_image(path)
    if image is None:
        raise InputFileError(f"cannot read image {path}: remove it or replace it with a valid PNG/JPEG")
    if min(image.shape[:2]) < MIN_SIDE:
        raise InputFileError(f"image {path} is {image.shape[1]}x{image.shape[0]}, under {MIN_SIDE} px a side: "
                             "too small to hold a part; remove it")
    return image


def read_image(path: str | Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
    """The image, or None when it cannot be read — a truncated JPEG too: OpenCV decodes one with the missing
    part grey and only libjpeg's warning on stderr, so it would be trained on, judged and scored as a part."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    suffix = Path(path).suffix.lower()
    if suffix in (".jpg", ".jpeg") and data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
        return None  # no end-of-image marker after the last scan: the file was cut short
    if suffix == ".png" and data.startswith(b"\x89PNG") and b"IEND" not in data[-12:]:
        return None  # cut short: said here rather than by libpng on stderr beside our one line
    return cv2.imdecode(np.frombuffer(data, np.uint8), flags) if data else None


def class_folders(root: Path) -> dict[str, list[Path]]:
    """{class name: images} for every sub-folder of `root` that holds images."""
    return {d.name: files for d in sorted(root.iterdir()) if d.is_dir() and (files := image_files(d))}


def labeled_images(root: str | Path, split: str) -> list[tuple[Path, str]]:
    """(image, label) pairs of `split` ("train" or "test") under `root`.

    `root/<split>/<class>/` is used when it exists; otherwise `root/<class>/`
    (class-folder layout, the whole folder is the split).
    """
    root = Path(root)
    if root.is_file():
        raise InputFileError(f"{root} is a file; image models train and evaluate on a folder of images "
                             f"(MVTec layout or class folders) — a .ts or .csv file is for a sensor model")
    if not root.is_dir():
        raise InputFileError(f"data folder {root} does not exist: make one with `edge-data demo --out {root}`")
    base = root / split if (root / split).is_dir() else root
    classes = class_folders(base)
    if not classes:
        raise DatasetLayoutError(
            f"{base} holds no class folders with images: expected {root}/{split}/<class>/*.png "
            f"(MVTec: {split}/good, {split}/<defect>) or {root}/<class>/*.png"
        )
    return [(path, label) for label, files in classes.items() for path in files]


def ordered_labels(labels: set[str] | list[str]) -> list[str]:
    """Class names with "good" first, then the rest alphabetically — a stable label order."""
    names = set(labels)
    return ([GOOD] if GOOD in names else []) + sorted(names - {GOOD})
