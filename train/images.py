"""Labelled image sets in memory, made with the runtime's own preprocessing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_runtime.datasets import load_image, ordered_labels
from edge_runtime.disturb import jpeg_roundtrip
from edge_runtime.errors import InputFileError
from edge_runtime.preprocess import prepare_image
from train.augment import JPEG_QUALITIES


@dataclass
class ImageSet:
    images: np.ndarray  # N x H x W x 3 uint8, model input
    targets: np.ndarray  # N int64
    files: list[Path]
    labels: list[str]
    aspects: tuple[float, float] = (1.0, 1.0)  # narrowest and widest width/height as stored, before resizing

# Stored images whose shapes differ by more than this are each stretched differently to the model's square.
ASPECT_SPREAD = 1.1


def aspect_warning(*sets: ImageSet) -> str | None:
    """One line when the training images come in different shapes: each is stretched to the model's square, so
    the same part looks different from image to image (and from the line camera's frames)."""
    lo, hi = min(s.aspects[0] for s in sets), max(s.aspects[1] for s in sets)
    if hi / lo <= ASPECT_SPREAD:
        return None
    return (f"warning: the images' width/height runs from {lo:.2f} to {hi:.2f}, and each is stretched to the "
            f"model's square input, so parts look different from image to image: crop them to one shape, as the "
            f"line's camera (or its --roi) will show them")


def load_image_set(pairs: list[tuple[Path, str]], labels: list[str], size: tuple[int, int],
                   resize: str = "area", jpeg_seed: int | None = None) -> ImageSet:
    """Read and prepare every image; an unreadable file is an error naming it. With `jpeg_seed`, each image is
    first coded as JPEG at its stored resolution, at its own quality from JPEG_QUALITIES (drawn with the seed):
    a compressed camera stream codes the frames before anything scales them, so the codec's 8x8 blocks land
    at the camera's scale, not the model's."""
    index = {name: i for i, name in enumerate(labels)}
    images = np.empty((len(pairs), size[0], size[1], 3), dtype=np.uint8)
    if jpeg_seed is not None:
        qualities = np.random.default_rng(jpeg_seed).integers(JPEG_QUALITIES[0], JPEG_QUALITIES[1] + 1, len(pairs))
    aspects = []
    for i, (path, _) in enumerate(pairs):
        image = load_image(path)
        aspects.append(image.shape[1] / image.shape[0])
        if jpeg_seed is not None:
            image = jpeg_roundtrip(image, int(qualities[i]))
        images[i] = prepare_image(image, size, resize=resize)
    targets = np.array([index[label] for _, label in pairs], dtype=np.int64)
    return ImageSet(images, targets, [p for p, _ in pairs], labels, (min(aspects, default=1.0), max(aspects, default=1.0)))


def split_train_val(pairs: list[tuple[Path, str]], val_fraction: float, seed: int):
    """Stratified split: every class keeps `val_fraction` of its images (at least one) for validation."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in ordered_labels({lbl for _, lbl in pairs}):
        members = [p for p in pairs if p[1] == label]
        order = rng.permutation(len(members))
        n_val = max(1, int(round(len(members) * val_fraction))) if len(members) > 1 else 0
        val += [members[i] for i in order[:n_val]]
        train += [members[i] for i in order[n_val:]]
    return train, val


def files_sha256(root: Path, files: list[Path]) -> str:
    """Hash of the relative names and bytes of a file list — which data a model saw."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def validation_set(config: dict, data: str | None = None) -> tuple[Path, ImageSet]:
    """The run's own validation images (named in its config), from `data` or where training found them."""
    root = Path(data or config["data"]["root"])
    files = [root / rel for rel in config["validation_files"]]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise InputFileError(f"validation image {missing[0]} is missing: pass the training data folder with --data")
    # Anomaly runs are trained on good images only, wherever they sit (a plain folder has any name).
    pairs = [(f, config["good_label"] if config["task"] == "anomaly" else f.parent.name) for f in files]
    size = tuple(config["preprocess"]["input_size"])
    return root, load_image_set(pairs, config["labels"], size, config["preprocess"]["resize"])
