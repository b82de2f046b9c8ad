"""Anomaly-detection metrics with numpy and OpenCV only: AUROC, PRO, and the line's rates at a threshold.

Definitions follow the MVTec AD benchmark (Bergmann et al.) so figures compare
with anomalib's: image AUROC on the image scores, pixel AUROC on every pixel of
every test image, PRO = mean per-region overlap integrated up to a 30 % pixel
false-positive rate, normalised to 0..1.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge_runtime.decision import passes
from edge_runtime.metrics import wilson


def auroc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (ties count half, NaN ranks as +inf); None when one class is absent."""
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    scores = np.where(np.isfinite(scores), scores, np.inf)  # rejected on the line (flagged invalid): the top rank, tied
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranked = scores[order]
    # Average ranks over ties, so equal scores are neither right nor wrong (vectorised: a float32 heat map of a
    # whole test set has millions of tied groups, which a Python loop took a minute over).
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    ranks = np.repeat((starts + 1 + ends) / 2.0, ends - starts)  # in sorted order
    return float((ranks[labels[order]].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def pro_score(maps: np.ndarray, masks: np.ndarray, max_fpr: float = 0.3) -> float | None:
    """Per-region overlap AUC up to `max_fpr`, normalised; maps and masks are N x H x W (NaN and ±inf rank as +inf).

    Exact: the curve has a point at every distinct map value (one sort of all pixels), where sampling 64
    thresholds had read about 0.002 low."""
    masks = masks.astype(bool)
    if not masks.any() or masks.all():
        return None
    # Each defect pixel weighs 1 / (its region's size x the number of regions): summed over the pixels at or
    # above a threshold, that is the mean per-region overlap there.
    weights = np.zeros(masks.shape, dtype=np.float64)
    regions = []
    for i, mask in enumerate(masks):
        count, labelled = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        sizes = np.bincount(labelled.ravel(), minlength=count)
        regions += [(i, labelled, sizes)] if count > 1 else []
    total = sum(len(sizes) - 1 for _, _, sizes in regions)
    for i, labelled, sizes in regions:
        share = np.r_[0.0, 1.0 / (sizes[1:] * total)]
        weights[i] = share[labelled]
    # Every pixel of the test set at once: kept in the map's own float type, summed per distinct value before the
    # running sums, so memory stays near that of pixel AUROC's sort.
    values = np.asarray(maps).ravel()
    values = np.where(np.isfinite(values), values, np.inf)  # float32 stays float32; integers become float64
    order = np.argsort(values, kind="stable")[::-1]  # highest first
    ranked = values[order]
    del values
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # each distinct value: one point of the curve
    del ranked
    normal = np.add.reduceat((~masks.ravel())[order], starts, dtype=np.int64)
    fprs = np.r_[0.0, np.cumsum(normal) / normal.sum()]
    pros = np.r_[0.0, np.cumsum(np.add.reduceat(weights.ravel()[order], starts))]
    # Ties (a quantized heat map has many) make FPR jump past max_fpr: cut the curve there, interpolating.
    end = max_fpr
    keep = fprs < end
    fprs, pros = np.r_[fprs[keep], end], np.r_[pros[keep], np.interp(end, fprs, pros)]
    area = float(np.sum((pros[1:] + pros[:-1]) / 2 * np.diff(fprs)))  # trapezoids (np.trapz moved in numpy 2)
    return area / end


def kind_escapes(scores, threshold: float) -> dict:
    """The escape rate of one defect kind's scores, with its 95 % interval (a kind has the fewest parts)."""
    escapes, count = int(passes(scores, threshold).sum()), len(scores)
    return {"escape_rate": escapes / count if count else None, "interval_95": {"escape_rate": wilson(escapes, count)}}


def line_rates(is_bad: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """What the stored threshold does on the line: false rejects, escapes, precision/recall/F1."""
    is_bad = np.asarray(is_bad, dtype=bool)
    rejected = ~passes(scores, threshold)
    tp, fp = int((rejected & is_bad).sum()), int((rejected & ~is_bad).sum())
    fn = int((~rejected & is_bad).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = None if recall is None else 2 * precision * recall / (precision + recall) if precision and recall else 0.0
    goods, bads = int((~is_bad).sum()), int(is_bad.sum())
    return {
        "threshold": float(threshold),
        "false_reject_rate": fp / goods if goods else None,
        "escape_rate": fn / bads if bads else None,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": float((rejected == is_bad).mean()) if len(is_bad) else None,
        "interval_95": {"false_reject_rate": wilson(fp, goods), "escape_rate": wilson(fn, bads)},
    }
