"""The demo data set: per surface an MVTec-layout folder, plus a line clip of parts on a conveyor.

Every image draws from its own seeded generator ([seed, surface, split, class, i]),
so the output is byte-identical for a seed whatever order it is written in.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from edge_runtime.errors import InputFileError
from train.data.clip import CLIP_ROI, write_clip
from train.data.defects import DEFECTS
from train.data.surfaces import SURFACES, TEST_REGION, TRAIN_REGION, crop_part, load_surface

GENERATOR_VERSION = "demo-1"
_SPLITS = {"train": 0, "test": 1}


def make_part(surface: str, split: str, label: str, index: int, seed: int, size: int = 128):
    """One part image (and its defect mask, None for good), reproducible from its coordinates."""
    rng = np.random.default_rng([seed, SURFACES.index(surface), _SPLITS[split], ([*DEFECTS, "good"]).index(label), index])
    part = crop_part(load_surface(surface), rng, TRAIN_REGION if split == "train" else TEST_REGION, size)
    if label == "good":
        return part, None
    return DEFECTS[label](part, rng)


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise InputFileError(f"cannot write {path}: check the disk and permissions")


def _remove_beyond(folder: Path, n: int, suffix: str) -> None:
    """An earlier, larger run's images in this folder (<number><suffix>, number >= n): left, they would mix into this
    data set, which demo.json says holds n."""
    if not folder.is_dir():
        return
    for path in folder.glob(f"*{suffix}"):
        number = path.name[:-len(suffix)]
        if number.isdigit() and int(number) >= n:  # 000.png ... 1499.png: the names _write gives
            path.unlink()
    if not any(folder.iterdir()):
        folder.rmdir()  # an empty class folder would read as a class without images


def make_demo(out: Path, seed: int = 0, surfaces=SURFACES, train_good: int = 200, train_defect: int = 60,
              test_good: int = 60, test_defect: int = 30, size: int = 128, clip_parts: int = 16,
              clip_surface: str = "brick", progress: Callable[[int], None] | None = None) -> dict:
    """Write the demo data under `out` and return its summary (also `out/demo.json`).

    `progress(n)` is called with the number of files written since the last call.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputFileError(f"--out {out} is a file: give a folder")
    for name in surfaces:
        load_surface(name)  # unknown names fail before anything is written
    counts: dict = {}
    plan = {"train": (train_good, train_defect), "test": (test_good, test_defect)}
    for surface in surfaces:
        for split, (n_good, n_defect) in plan.items():
            for label in ("good", *DEFECTS):
                n = n_good if label == "good" else n_defect
                masks = out / surface / ("ground_truth" if split == "test" else "train_ground_truth") / label
                for i in range(n):
                    image, mask = make_part(surface, split, label, i, seed, size)
                    _write(out / surface / split / label / f"{i:03d}.png", image)
                    if mask is not None:
                        _write(masks / f"{i:03d}_mask.png", mask)
                _remove_beyond(out / surface / split / label, n, ".png")
                _remove_beyond(masks, n, "_mask.png")
                if progress:
                    progress(n)
                counts.setdefault(surface, {}).setdefault(split, {})[label] = n
    summary = {"generator": GENERATOR_VERSION, "seed": seed, "size": size, "surfaces": list(surfaces), "counts": counts}
    if clip_parts:
        summary["clip"] = _make_clip(out, seed, clip_parts, clip_surface, size)
        if progress:
            progress(clip_parts)
    (out / "demo.json").write_text(json.dumps(summary, indent=2))
    return summary


def _make_clip(out: Path, seed: int, n_parts: int, surface: str, size: int) -> dict:
    """Parts from the test region, about 40 % defective, kinds cycling."""
    rng = np.random.default_rng([seed, 99])
    kinds = list(DEFECTS)
    parts = []
    for i in range(n_parts):
        label = kinds[i % len(kinds)] if rng.random() < 0.4 else "good"
        image, _ = make_part(surface, "test", label, 1000 + i, seed, size)
        parts.append((image, label))
    info, rows = write_clip(out / "line_clip.mp4", parts, seed)
    with open(out / "line_clip.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["frame", "part_id", "in_position", "label"])
        writer.writerows(rows)
    info = {**info, "surface": surface, "seed": seed, "roi": list(CLIP_ROI)}
    (out / "line_clip.json").write_text(json.dumps(info, indent=2))
    return info
