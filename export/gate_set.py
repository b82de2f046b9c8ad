"""The inputs an export is judged and calibrated on, per task.

Classifier: the run's own validation images with their labels. Anomaly model:
the held-out good images (or, for a run calibrated on a station's own with
`edge-train calibrate --good`, those) plus a copy of each with a synthetic
anomaly (seeded, so every export of a run sees the same set) — real defects
are never part of training or export; they are for edge-eval.

Each image set is then judged three times: as taken, under a 25 % dimmer or
brighter lamp, and with sigma-8 sensor noise (edge_runtime.disturb, the
disturbances edge-eval --perturb applies). INT8 must agree with torch on the
frames a line camera really gives, not only on clean ones, and the count
triples: with 80 validation images one flip was 1.25 %, over the 1 % gate by
itself; with 240 it is 0.42 %, under the issue's 0.5 % target.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edge_runtime.datasets import GOOD, class_folders, image_files, labeled_images
from edge_runtime.decision import SENSOR_TASKS
from edge_runtime.disturb import brightness, sensor_noise
from edge_runtime.errors import InputFileError
from train.anomaly import ANOMALY, good_images, recorded_images, recorded_paths, synthetic_validation
from train.anomaly_synth import add_anomalies
from train.images import load_image_set, validation_set

OUTPUT_NAMES = {"classify": ["output"], "anomaly": ["score", "anomaly_map"], "sensor_classify": ["output"],
                "sensor_anomaly": ["score"], "quality": ["output"]}
INPUT_NAMES = {"classify": "image", "anomaly": "image"}  # sensor tasks: "signal"
CAMERA_COPIES = (brightness, sensor_noise)  # neither moves the part, so labels and masks hold for the copies


def input_name(task: str) -> str:
    return INPUT_NAMES.get(task, "signal")


def gate_set(config: dict, data: str | None = None) -> tuple[Path, np.ndarray, list[str], np.ndarray | None]:
    """(data root, model inputs, true label per input, true anomaly masks) for the gate and the model benchmark.

    Images: uint8 NHWC; sensor tasks: float32 N x T x C (see export.sensor_gate).
    Masks (N x H x W, 1 = anomalous pixel) only for an anomaly model, whose heat map is gated too.
    """
    if config["task"] in SENSOR_TASKS:
        from export.sensor_gate import sensor_gate_set

        return Path(data or config["data"]["path"]), *sensor_gate_set(config, data), None
    if config["task"] == "anomaly":
        root, good, _ = threshold_images(config, data)
        images, is_bad, masks = synthetic_validation(good, config["validation_synthetic_seed"])
        truth = [ANOMALY if bad else GOOD for bad in is_bad]
    else:
        root, val = validation_set(config, data)
        images, truth, masks = val.images, [config["labels"][t] for t in val.targets], None
    copies = [np.stack([copy(image, None, i)[0] for i, image in enumerate(images)]) for copy in CAMERA_COPIES]
    count = len(CAMERA_COPIES) + 1
    return (root, np.concatenate([images, *copies]), truth * count,
            None if masks is None else np.concatenate([masks] * count))


def threshold_images(config: dict, data: str | None = None) -> tuple[Path, np.ndarray, str]:
    """(data root, the good images an anomaly run's threshold was set on, where they came from): the run's held-out
    ones, or a station's own where edge-train calibrate --good recorded them — the gate judges the run on these,
    and a gauss INT8's threshold is moved on them."""
    root, val = validation_set(config, data)
    station = recorded_images(config.get("calibration", {}), tuple(config["preprocess"]["input_size"]))
    if station is None:
        return root, val.images, "the run's held-out good images"
    return root, station, config["calibration"]["source"]


MIN_CALIB_IMAGES = 16


def calibration_images(config: dict, root: Path, calib: str | None, count: int, seed: int,
                       synthetic: bool = True, jpeg_seed: int | None = None) -> np.ndarray:
    """INT8 calibration inputs: a sample of the training split (never validation), of the station images a
    `calibrate --refit` fitted its Gaussian on, or of the images under --calib.

    `jpeg_seed`: as a compressed stream sends them (train.images.load_image_set). An anomaly model is also
    calibrated on synthetic anomalies (half the sample, unless not `synthetic`):
    ranges learnt from good parts alone would clip the activations a defect
    causes, and INT8 would then under-score exactly the parts it must reject.
    """
    if config["task"] in SENSOR_TASKS:
        from export.sensor_gate import sensor_calibration

        return sensor_calibration(config, calib or str(root), count, seed)
    size = tuple(config["preprocess"]["input_size"])
    station = recorded_paths(config.get("gaussian", {})) if config["task"] == "anomaly" and not calib else None
    if calib:
        folder = Path(calib)
        if not folder.is_dir():
            raise InputFileError(f"--calib {folder} is not a folder of images")
        base = folder / "train" if (folder / "train").is_dir() else folder  # flat, class folders or MVTec
        files = image_files(base) or [p for group in class_folders(base).values() for p in group]
        if len(files) < MIN_CALIB_IMAGES:  # a handful sets every activation range from a few pixels' worth
            raise InputFileError(
                f"--calib {folder} holds {len(files)} image(s) (.png/.jpg/.bmp/.tif, in it, in class folders or "
                f"under train/<class>/); "
                f"INT8 calibration needs at least {MIN_CALIB_IMAGES} of the station's good images ({count} are used)")
    elif station:  # edge-train calibrate --refit: the station's images the Gaussian was fitted on
        files = station
    else:
        held_out = set(config["validation_files"])
        candidates = good_images(root) if config["task"] == "anomaly" else [p for p, _ in labeled_images(root, "train")]
        files = [p for p in candidates if str(p.relative_to(root)) not in held_out]
    if not files:
        raise InputFileError(f"no calibration images found in {calib or root}: give --calib with real images")
    pick = np.random.default_rng(seed).permutation(len(files))[:count]
    chosen = [(files[i], GOOD) for i in sorted(pick)]
    # --calib and station images come from the station's camera, compressed already if its stream is
    images = load_image_set(chosen, [GOOD], size, config["preprocess"]["resize"],
                            None if calib or station else jpeg_seed).images
    if config["task"] == "anomaly" and synthetic:
        images = add_anomalies(torch.from_numpy(images), torch.Generator().manual_seed(seed), p=0.5)[0].numpy()
    return images
