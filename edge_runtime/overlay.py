"""Drawing a verdict on a frame, for the operator's window and the recorded video."""

from __future__ import annotations

import cv2
import numpy as np

from edge_runtime.preprocess import Roi

COLOURS = {"good": (60, 180, 75), "defect": (40, 40, 230), "invalid": (0, 190, 255)}  # BGR


class RateMeter:
    """Decisions per second from the records' own timestamps (smoothed)."""

    def __init__(self):
        self.last, self.fps = None, 0.0

    def __call__(self, record: dict) -> float:
        now = record["decided_at"]
        if self.last is not None and now > self.last:
            self.fps = 0.9 * self.fps + 0.1 / (now - self.last) if self.fps else 1.0 / (now - self.last)
        self.last = now
        return self.fps


def overlay_heatmap(image: np.ndarray, heatmap: np.ndarray, box: Roi) -> None:
    """Blend an anomaly heat map (0..1) into `image`'s box in place: the hotter, the more opaque.

    Opacity follows the value, so the normal surface stays visible and only what
    looks wrong lights up — an operator sees the part and the reason together.
    """
    x, y, w, h = box
    heat = cv2.resize(np.clip(heatmap, 0.0, 1.0).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET).astype(np.float32)
    alpha = (0.15 + 0.6 * heat)[..., None]
    window = image[y : y + h, x : x + w].astype(np.float32)
    image[y : y + h, x : x + w] = (window * (1 - alpha) + colour * alpha).astype(np.uint8)


def annotate(image: np.ndarray, record: dict, roi: Roi | None, fps: float | None = None,
             heatmap: np.ndarray | None = None) -> np.ndarray:
    """A copy of `image` with the inspection box, the heat map if any, verdict, label, score and a latency line."""
    out = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    colour = COLOURS.get(record["verdict"], (200, 200, 200))
    h, w = out.shape[:2]
    x, y, bw, bh = roi if roi else (0, 0, w, h)
    if heatmap is not None:
        overlay_heatmap(out, heatmap, (x, y, bw, bh))
    cv2.rectangle(out, (x, y), (x + bw - 1, y + bh - 1), colour, max(2, w // 400))
    scale = max(0.6, w / 1280)
    text = record["verdict"].upper()
    if record.get("label") and record["label"] != record["verdict"]:
        text += f" {record['label']}"
    if record.get("score") is not None:
        text += f" {record['score']:.2f}"
    if record.get("flags"):
        text += " [" + ",".join(record["flags"]) + "]"
    cv2.putText(out, text, (12, int(40 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 1.1 * scale, colour, 2, cv2.LINE_AA)
    lat = record.get("latency_ms", {})
    status = (f"{fps:.1f} fps  " if fps else "") + (f"frame {record['frame_id']}  infer {lat.get('inference', 0):.1f} ms  age {record.get('age_ms', 0):.0f} ms"
              f"  dropped {record.get('dropped', 0)}")
    if status:
        cv2.putText(out, status, (12, h - 14), cv2.FONT_HERSHEY_SIMPLEX, 0.55 * scale, (235, 235, 235), 1,
                    cv2.LINE_AA)
    return out
