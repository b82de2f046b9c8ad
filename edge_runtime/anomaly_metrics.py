"""Anomaly-detection metrics with numpy and OpenCV only: AUROC, PRO, and the line's rates at a threshold.

Definitions follow the MVTec AD benchmark (Bergmann et al.) so figures compare
with anomalib's: image AUROC on the image scores, pixel AUROC on every pixel of
every test image, PRO = mean per-region overlap integrated up to a 30 % pixel
false-positive rate, normalised to 0..1.
"""

from __future__ import annotations

import cv2
import numpy as np


def auroc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (ties count half, NaN ranks as +inf); None when one class is absent."""
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    scores = np.where(np.isnan(scores), np.inf, scores)  # rejected on the line (flagged invalid): the top rank, tied
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    sorted_scores = scores[order]
    # Average ranks over ties, so equal scores are neither right nor wrong.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    for s, e in zip(starts[ends - starts > 1], ends[ends - starts > 1]):
        ranks[order[s:e]] = (s + 1 + e) / 2.0
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def pro_score(maps: np.ndarray, masks: np.ndarray, max_fpr: float = 0.3, steps: int = 64) -> float | None:
    """Per-region overlap AUC up to `max_fpr`, normalised; maps and masks are N x H x W."""
    masks = masks.astype(bool)
    if not masks.any() or masks.all():
        return None
    regions = []  # (image index, boolean region) for every connected defect region
    for i, mask in enumerate(masks):
        count, labelled = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        regions += [(i, labelled == r) for r in range(1, count)]
    normal = maps[~masks]
    thresholds = np.unique(np.quantile(normal, np.linspace(1.0, 1.0 - max_fpr, steps)))[::-1]
    above = np.nextafter(normal.max(), np.inf)  # the defect pixels above every normal one: the curve's FPR-0 point
    fprs, pros = [0.0], [float(np.mean([(maps[i][region] >= above).mean() for i, region in regions]))]
    for t in thresholds:
        fprs.append(float((normal >= t).mean()))
        pros.append(float(np.mean([(maps[i][region] >= t).mean() for i, region in regions])))
    fprs, pros = np.array(fprs), np.array(pros)
    if fprs[-1] <= 0:
        return None
    # Ties (a quantized heat map has many) make FPR jump past max_fpr: cut the curve there, interpolating.
    end = min(max_fpr, fprs[-1])
    keep = fprs < end
    fprs, pros = np.r_[fprs[keep], end], np.r_[pros[keep], np.interp(end, fprs, pros)]
    area = float(np.sum((pros[1:] + pros[:-1]) / 2 * np.diff(fprs)))  # trapezoids (np.trapz moved in numpy 2)
    return area / end


def line_rates(is_bad: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """What the stored threshold does on the line: false rejects, escapes, precision/recall/F1."""
    is_bad = np.asarray(is_bad, dtype=bool)
    rejected = ~(np.asarray(scores) < threshold)  # a NaN score is rejected, as the line flags it invalid
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
    }
