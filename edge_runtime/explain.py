"""Where a classifier saw the defect: a heat map made by the deployed model itself (any precision, no torch).

An anomaly model computes its own heat map; a classifier gives only class probabilities. Its map here is
made by *revealing*: the defect is taken away (`blank_canvases`: the part blurred to its local colour, one flat
colour, or either in grey, whichever the model reads as most good), and one patch at a time is shown sharp
again. A patch's value is the defect probability it brings back alone, P(not good | only this patch sharp) -
P(not good | the canvas); a pixel's value is the mean over the patches that cover it, each weighted by a
Gaussian around its centre. On the demo classifiers (edge-eval --explain, 120 test defects each, 2026-11-29)
the map's peak (the centre of its top plateau) fell on the labelled defect in 100 % (brick), 92.5 % (grass)
and 82-87 % (gravel) of the images, pixel AUROC 0.99 / 0.97 / 0.90. Hiding patches instead (occlusion, Zeiler
& Fergus 2014) did worse on 30 brick images, 22/30 and 0.70: DefectNet max-pools its features, so a crack with
one patch hidden is still a crack. The values are probabilities, comparable between parts: a good part's map
stays dark rather than being stretched to full colour.

It costs 4 + 169 inferences per 128 px image (the canvases, then 13 x 13 patches a fifth of the input wide, at
steps of a third of that), so it is for evaluation and for saved rejects, not every frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge_runtime.model import EdgeModel

PATCH_FRACTION = 5  # a patch is the input's side / 5 (26 px of a 128 px input): about a defect's size
STEP_FRACTION = 3  # patches step by a third of their side, so each pixel is seen by several
BATCH = 64


def patch_step(size: int) -> tuple[int, int]:
    """(patch side, step between patches) along one side of the input."""
    patch = max(2, round(size / PATCH_FRACTION))
    return patch, max(1, round(patch / STEP_FRACTION))


def patch_grid(size: int) -> tuple[int, list[int]]:
    """(patch side, start offsets) along one side of the input; the last patch ends at the edge."""
    patch, step = patch_step(size)
    starts = list(range(0, size - patch + 1, step))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return patch, starts


def defect_probability(model: EdgeModel, outputs: np.ndarray) -> np.ndarray:
    """P(not good) per row of class probabilities (a model without a good label: its top class's probability)."""
    if model.info.good_label in model.info.labels:
        return 1.0 - outputs[:, model.info.labels.index(model.info.good_label)]
    return outputs.max(axis=1)


def blank_canvases(prepared: np.ndarray, blur: int) -> np.ndarray:
    """The part without its defect, four ways (4 x H x W x 3): blurred to its local colour (the light kept), one
    flat colour (its median), and both in grey. Revealing needs a canvas the model reads as good, and which one
    does depends on the model: the demo gravel classifier read blurred gravel as a stain (P 0.73), so its stains
    could not be revealed at all (pointing 0.17); grey gravel it reads as good."""
    local = cv2.blur(prepared, (blur, blur))
    flat = np.broadcast_to(np.median(prepared.reshape(-1, 3), axis=0).astype(np.uint8), prepared.shape)
    greys = [np.repeat(cv2.cvtColor(np.ascontiguousarray(c), cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
             for c in (local, flat)]
    return np.stack([local, flat, *greys])


def evidence_map(model: EdgeModel, prepared: np.ndarray) -> np.ndarray:
    """The reveal map (H x W float32, 0..1) of one prepared model input (H x W x 3 uint8)."""
    h, w = prepared.shape[:2]
    (ph, ys), (pw, xs) = patch_grid(h), patch_grid(w)
    canvases = blank_canvases(prepared, 2 * max(ph, pw) + 1)
    chances = np.nan_to_num(defect_probability(model, model.infer(canvases)), nan=np.inf)  # a NaN canvas: never
    blank, base = canvases[int(np.argmin(chances))], float(chances.min())
    boxes = [(y, x) for y in ys for x in xs]
    batch = np.repeat(blank[None], len(boxes), axis=0)
    for k, (y, x) in enumerate(boxes):
        batch[k, y:y + ph, x:x + pw] = prepared[y:y + ph, x:x + pw]
    gain = np.concatenate([defect_probability(model, model.infer(batch[i:i + BATCH]))
                           for i in range(0, len(batch), BATCH)]) - base
    # each patch's gain is spread with a Gaussian weight around its centre: no seams at the patches' edges
    weight = np.outer(cv2.getGaussianKernel(ph, ph / 3), cv2.getGaussianKernel(pw, pw / 3))
    total = np.zeros((h, w), np.float64)
    count = np.zeros((h, w), np.float64)
    for (y, x), g in zip(boxes, gain):
        total[y:y + ph, x:x + pw] += g * weight
        count[y:y + ph, x:x + pw] += weight
    return np.clip(total / count, 0.0, 1.0).astype(np.float32)
