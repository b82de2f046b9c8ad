"""Image- and pixel-level metrics of a deployed anomaly model on an MVTec-layout test split.

Everything is computed from the ONNX artifact's own outputs (score and heat
map) through the runtime's preprocessing, so the figures describe what runs on
the line. Masks (`ground_truth/<kind>/<name>_mask.png`) are resized to the
heat map's size with nearest-neighbour; a mask of another aspect ratio than its
image is an error, and a defect image without a mask is left out of the pixel
metrics only (and counted).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge_runtime.anomaly_metrics import auroc, kind_escapes, line_rates, pro_score
from edge_runtime.datasets import load_image
from edge_runtime.disturb import DISTURBANCES
from edge_runtime.errors import DatasetLayoutError, InputFileError
from edge_runtime.metrics import figure, rate_cell
from edge_runtime.model import EdgeModel


def mask_for(root: Path, path: Path, kind: str, image_shape: tuple[int, ...]) -> np.ndarray | None:
    """The defect mask of a test image, as a bool array of the image's size, or None when there is none."""
    if kind == "good":
        return np.zeros(image_shape[:2], bool)
    mask_path = root / "ground_truth" / kind / f"{path.stem}_mask.png"
    if not mask_path.is_file():  # the suffix in any case, as the images' own (.PNG from some tools)
        mask_path = next((p for p in mask_path.parent.glob(f"{path.stem}_mask.*") if p.suffix.lower() == ".png"),
                         mask_path)
    if not mask_path.is_file():
        return None
    mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise InputFileError(f"cannot read mask {mask_path}: replace it with a valid PNG")
    (ih, iw), (mh, mw) = image_shape[:2], mask.shape
    if abs(ih / iw - mh / mw) > 0.02:
        raise DatasetLayoutError(f"mask {mask_path} is {mw}x{mh} but its image {path} is {iw}x{ih}: "
                                 "masks must cover the image they belong to")
    if (mh, mw) != (ih, iw):
        mask = cv2.resize(mask, (iw, ih), interpolation=cv2.INTER_NEAREST)
    # 0/255 (MVTec) or 0/1 (many labelling tools' class-index masks): > 127 would read the latter as empty
    mask = mask > (0 if mask.max() <= 1 else 127)
    return mask if mask.any() else None  # a defect image with an empty mask is counted with the missing ones


def _run(model: EdgeModel, root: Path, pairs, disturbance: str | None, batch: int, progress):
    """Scores (N), heat maps at input size, masks at input size (None where missing), kinds."""
    scores, maps, masks, kinds = [], [], [], []
    size = model.info.input_size
    for start in range(0, len(pairs), batch):
        inputs = []
        for index, (path, kind) in enumerate(pairs[start : start + batch], start):
            image = load_image(path)
            mask = mask_for(root, path, kind, image.shape)
            if disturbance:
                image, mask_u8 = DISTURBANCES[disturbance](image, None if mask is None else mask.astype(np.uint8) * 255,
                                                           index)
                mask = None if mask_u8 is None else mask_u8 > 127
            inputs.append(model.prepare(image))
            masks.append(None if mask is None else
                         cv2.resize(mask.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST) > 0)
            kinds.append(kind)
        outputs = model.run(np.stack(inputs))
        scores.append(np.asarray(outputs[0], np.float64).ravel())
        maps.append(outputs[1] if len(outputs) > 1 else None)
        if progress:
            progress(len(inputs))
    all_maps = None if any(m is None for m in maps) else np.concatenate(maps)
    return np.concatenate(scores), all_maps, masks, np.array(kinds)


def anomaly_metrics(model: EdgeModel, root: Path, pairs, disturbance: str | None = None, batch: int = 16,
                    progress=None) -> dict:
    """Image AUROC, pixel AUROC, PRO, F1 and the line's rates at the stored threshold, overall and per kind."""
    if not any(kind == "good" for _, kind in pairs):
        raise DatasetLayoutError(f"{root} has no good test images (test/good/): AUROC and the false-reject rate "
                                 "need good parts too")
    scores, maps, masks, kinds = _run(model, root, pairs, disturbance, batch, progress)
    is_bad = kinds != "good"
    threshold = model.info.threshold
    with_mask = np.array([m is not None for m in masks])
    result = {"count": len(kinds), "threshold": threshold, "image_auroc": auroc(is_bad, scores),
              **line_rates(is_bad, scores, threshold), "masks_missing": int((~with_mask).sum())}
    if maps is not None and with_mask.any():
        truth = np.stack([m for m in masks if m is not None])
        heat = maps[with_mask]
        result["pixel_auroc"] = auroc(truth.ravel(), heat.ravel())
        result["pro"] = pro_score(heat, truth)
    per_kind = {}
    for kind in sorted(set(kinds) - {"good"}):
        pick = (kinds == kind) | ~is_bad
        row = {"count": int((kinds == kind).sum()), "image_auroc": auroc(is_bad[pick], scores[pick]),
               **kind_escapes(scores[kinds == kind], threshold)}
        chosen = pick & with_mask
        if maps is not None and chosen.any():
            truth = np.stack([masks[i] for i in np.flatnonzero(chosen)])
            row["pixel_auroc"] = auroc(truth.ravel(), maps[chosen].ravel())
        per_kind[kind] = row
    result["per_kind"] = per_kind
    result["good_scores"] = {"median": float(np.median(scores[~is_bad])), "max": float(scores[~is_bad].max())}
    return result


def format_anomaly_table(metrics: dict) -> str:
    """The headline figures and one row per defect kind, for a terminal."""
    def f(value):
        return f"{figure(value):>6s}"

    def delta(row, key):
        return "" if row.get(f"delta_{key}") is None else f" ({row[f'delta_{key}']:+.4f})"

    lines = [f"image AUROC {f(metrics['image_auroc'])}  pixel AUROC {f(metrics.get('pixel_auroc'))}  "
             f"PRO {f(metrics.get('pro'))}  on {metrics['count']} images",
             f"at threshold {metrics['threshold']:.4f}: false reject {rate_cell(metrics, 'false_reject_rate')}  "
             f"escape {rate_cell(metrics, 'escape_rate')}  F1 {f(metrics['f1'])}  (95 % intervals in brackets)",
             "", f"{'kind':12s}{'images':>7s}  {'image AUROC':>11s}  {'pixel AUROC':>11s}  escape"]
    for kind, row in metrics["per_kind"].items():
        lines.append(f"{kind:12s}{row['count']:7d}  {f(row['image_auroc']):>11s}  {f(row.get('pixel_auroc')):>11s}  "
                     f"{rate_cell(row, 'escape_rate')}")
    if metrics.get("masks_missing"):
        lines.append(f"({metrics['masks_missing']} defect images have no mask, or an empty one: left out of the "
                     "pixel metrics)")
    for name, row in metrics.get("disturbed", {}).items():
        lines.append(f"under {name:10s}: image AUROC {f(row['image_auroc'])}{delta(row, 'image_auroc')}, "
                     f"pixel AUROC {f(row.get('pixel_auroc'))}, false reject {f(row['false_reject_rate'])}"
                     f"{delta(row, 'false_reject_rate')}")
    return "\n".join(lines)
