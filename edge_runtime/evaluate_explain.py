"""How well a classifier's heat maps (`explain.evidence_map`) point at the defects, and the maps themselves.

For each test image of a defect kind, and each good image the model rejected (the false rejects an engineer
wants to understand), the map is computed from the deployed artifact and written beside the image. Where a
defect image has a mask (`ground_truth/<kind>/<name>_mask.png`, as for anomaly models), two figures say whether
the map is right: the pointing game (Zhang et al. 2016: the map's peak lies on the defect, within 15 px at
224 px, scaled to the input) and the map's pixel AUROC against the mask. Without masks, maps are written and
nothing is claimed.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge_runtime.anomaly_metrics import auroc
from edge_runtime.datasets import load_image
from edge_runtime.decision import NO_VERDICT
from edge_runtime.evaluate_anomaly import mask_for
from edge_runtime.metrics import figure
from edge_runtime.explain import evidence_map, patch_step
from edge_runtime.model import EdgeModel
from edge_runtime.overlay import overlay_heatmap

POINTING_PX_AT_224 = 15  # the pointing game's tolerance, at its 224 px inputs


def explain_classifier(model: EdgeModel, root: Path, pairs: list[tuple[Path, str]], out: Path,
                       progress=None) -> dict:
    """Maps of the defect images and false rejects of `pairs`, written under `out/<class>/`; figures per kind."""
    good = model.info.good_label
    size = model.info.input_size
    tolerance = max(1, round(min(size) * POINTING_PX_AT_224 / 224))
    rows: dict[str, dict[str, list]] = {}
    written = false_rejects = no_verdict = 0
    for path, label in pairs:
        image = load_image(path)
        prepared = model.prepare(image)
        verdict = model.decide(model.infer(prepared[None]))[0].label
        if (label == good and verdict == good) or verdict == NO_VERDICT:  # NO_VERDICT: the model output NaN here,
            no_verdict += verdict == NO_VERDICT                         # so its map would be NaN too
            if progress:
                progress(1)
            continue
        heat = evidence_map(model, prepared)
        mask = mask_for(root, path, label, image.shape) if label != good else None
        row = rows.setdefault(label, {"hits": [], "auroc": [], "without_mask": []})
        false_rejects += label == good
        if mask is not None:
            # INTER_AREA, any coverage: nearest-neighbour dropped a 13 px defect of a 1280 px image altogether
            small = cv2.resize(mask.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_AREA) > 0
            near = cv2.dilate(small.astype(np.uint8), cv2.getStructuringElement(
                cv2.MORPH_ELLIPSE, (2 * tolerance + 1,) * 2)) > 0
            row["hits"].append(bool(near[peak(heat)]))
            if (value := auroc(small, heat)) is not None:
                row["auroc"].append(value)
        elif label != good:
            row["without_mask"].append(path.name)
        _write_map(out / label / f"{path.stem}.png", image, heat, mask, f"{label} -> {verdict}")
        written += 1
        if progress:
            progress(1)
    patch, step = patch_step(min(size))
    per_kind = {label: _figures(row) for label, row in sorted(rows.items()) if label != good}
    hits = [h for row in rows.values() for h in row["hits"]]
    aurocs = [a for row in rows.values() for a in row["auroc"]]
    return {
        "method": "reveal: one patch shown sharp on the part with its defect taken away (blurred, flat or grey: "
                  "the canvas the model reads as most good); the defect probability it brings back",
        "patch_px": patch, "step_px": step, "pointing_tolerance_px": tolerance,
        "maps": str(out), "maps_written": written,
        "false_rejects_explained": false_rejects,
        "no_verdict_skipped": no_verdict,
        "pointing_hit_rate": float(np.mean(hits)) if hits else None,
        "pixel_auroc": float(np.mean(aurocs)) if aurocs else None,
        "images_with_masks": len(hits),
        "per_kind": per_kind,
    }


def peak(heat: np.ndarray) -> tuple[int, int]:
    """Where the map points: the top plateau's pixel nearest its centroid. A max-pooled model gives every patch
    over the defect about the same gain, so the top is flat, and argmax would take its top-left corner."""
    ys, xs = np.nonzero(heat >= heat.max() - 0.01)
    i = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
    return int(ys[i]), int(xs[i])


def _figures(row: dict) -> dict:
    return {"images_with_masks": len(row["hits"]), "without_mask": len(row["without_mask"]),
            "pointing_hit_rate": float(np.mean(row["hits"])) if row["hits"] else None,
            "pixel_auroc": float(np.mean(row["auroc"])) if row["auroc"] else None}


def _write_map(path: Path, image: np.ndarray, heat: np.ndarray, mask: np.ndarray | None, caption: str) -> None:
    """The image and, beside it, the map over it (the mask's outline in white where there is one)."""
    shown = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    h, w = shown.shape[:2]
    over = shown.copy()
    overlay_heatmap(over, heat, (0, 0, w, h))
    if mask is not None:
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(over, contours, -1, (255, 255, 255), 1)
    sheet = np.hstack([shown, np.full((h, 4, 3), 255, np.uint8), over])
    cv2.putText(sheet, caption, (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), sheet):
        raise OSError(f"cannot write {path}")


def format_explanation(found: dict) -> str:
    """The maps' figures as a table, per defect kind."""
    def cell(value):
        return figure(value, ".3f")

    lines = [f"heat maps ({found['maps_written']} written to {found['maps']}, {found['false_rejects_explained']} of "
             f"them false rejects): peak on the defect (within {found['pointing_tolerance_px']} px) and pixel AUROC "
             "against the masks", "| kind | images with masks | peak on the defect | pixel AUROC |",
             "|---|---:|---:|---:|"]
    for kind, row in found["per_kind"].items():
        lines.append(f"| {kind} | {row['images_with_masks']} | {cell(row['pointing_hit_rate'])} | "
                     f"{cell(row['pixel_auroc'])} |")
    lines.append(f"| all | {found['images_with_masks']} | {cell(found['pointing_hit_rate'])} | "
                 f"{cell(found['pixel_auroc'])} |")
    return "\n".join(lines)
