"""Quality from process parameters: an MLP from one row of settings to the part's quality.

A numeric target (a dimension, a weight) is regressed, and the line rejects a part
whose predicted value leaves the spec limits; a word target (pass/fail) is
classified. Either way the model is a `quality` artifact with a window of one
sample, so `edge-run --sensor` feeds it a row at a time.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edge_runtime import __version__
from edge_runtime.csv_rows import is_number
from edge_runtime.decision import decide, spec_call
from edge_runtime.errors import InputFileError
from edge_runtime.metadata import ModelInfo
from edge_runtime.metrics import classification_metrics, regression_metrics
from edge_runtime.model import file_sha256
from edge_runtime.process_table import read_process_table
from train.checkpoint import is_finite_number, save_checkpoint
from train.distributed import resolve_device
from train.fit import fit, predict
from train.models import create_model
from train.sensor import channel_stats, flat_channels, pick_good_label, require_classes, stratified_split

PASS_LABELS = ("pass", "in_spec", "ok", "good")
# Fewer parts leave too little for both a training set and a held-out one to validate on (one row crashed the split).
MIN_PARTS = 10


@dataclass
class QualityConfig:
    data: str
    out: str
    target: str
    spec_lower: float | None = None
    spec_upper: float | None = None
    good_label: str | None = None
    epochs: int = 200
    batch_size: int = 64
    lr: float = 3e-3
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"


def spec_from_file(path: str) -> tuple[float | None, float | None]:
    """`{"lower": .., "upper": ..}` (either may be null) from a spec.json."""
    try:
        spec = json.loads(Path(path).read_text())
        limits = spec.get("lower"), spec.get("upper")
    except (OSError, ValueError, AttributeError) as exc:
        raise InputFileError(f"{path} is not a spec file ({exc}): write {{\"lower\": 9.9, \"upper\": 10.1}}") from exc
    for name, value in zip(("lower", "upper"), limits):  # NaN, Infinity (Python's JSON reads both) or a string
        if value is not None and not is_finite_number(value):
            raise InputFileError(f"{path}: {name} is {json.dumps(value)}, not a finite number (or null for none)")
    return limits


def train_quality(cfg: QualityConfig, echo=print) -> dict:
    device = resolve_device(cfg.device)
    table = read_process_table(cfg.data, cfg.target)
    if len(table.target) < MIN_PARTS:
        raise InputFileError(f"{cfg.data} has {len(table.target)} part(s); a quality model needs at least {MIN_PARTS} "
                             "rows, some to train on and some held out to validate it: record more parts")
    regression = all(is_number(v) for v in table.target)
    # A target with one value leaves nothing to learn (and a regression's std would be a made-up floor).
    if regression and np.ptp(table.target_values()) == 0:
        raise InputFileError(f"{cfg.data}: {cfg.target} is {table.target_values()[0]:g} on every row, so there is "
                             f"nothing to learn: record parts whose {cfg.target} varies")
    if not regression:
        require_classes(cfg.data, table.target, "part", f" (column {cfg.target} must hold failing parts "
                            "too, or use a measured --target with --spec)")
    if regression and cfg.spec_lower is None and cfg.spec_upper is None:
        raise InputFileError(f"{cfg.target} is a measured value: give the spec limits (--spec-lower/--spec-upper "
                             "or --spec spec.json) so the line knows when to reject")
    if None not in (cfg.spec_lower, cfg.spec_upper) and cfg.spec_lower >= cfg.spec_upper:
        raise InputFileError(f"spec limits {cfg.spec_lower} .. {cfg.spec_upper}: the lower limit must be below the "
                             "upper (--spec-lower/--spec-upper or spec.json)")
    flat = [f"{table.names[i]} ({table.features[0, i]:g})" for i in flat_channels(table.features)]
    if flat:
        raise InputFileError(f"{cfg.data}: {', '.join(flat)} {'has' if len(flat) == 1 else 'each have'} one value on "
                             "every row, so the model cannot learn what it does and would overreact to any live "
                             "change: delete that column from the CSV "
                             "(the model then never reads it), or record parts where it varies")
    if table.ignored:
        echo(f"not using the non-numeric columns {', '.join(table.ignored)}")
    x = table.features[:, None, :]  # a window of one sample: the sensor-model input N x 1 x C
    mean, std = channel_stats(x)
    if regression:
        y_raw = table.target_values()
        lower = -np.inf if cfg.spec_lower is None else cfg.spec_lower
        upper = np.inf if cfg.spec_upper is None else cfg.spec_upper
        strata = ["in" if lower <= v <= upper else "out" for v in y_raw]
        labels, good = ["in_spec", "out_of_spec"], "in_spec"
        target_mean, target_std = float(y_raw.mean()), float(max(y_raw.std(), 1e-9))
        y = ((y_raw - target_mean) / target_std).astype(np.float32)[:, None]
        args = {"channels": x.shape[2], "mean": mean, "std": std, "outputs": 1, "target_mean": target_mean,
                "target_std": target_std}
        loss = lambda net, xb, yb: F.smooth_l1_loss(net.logits(xb), yb, beta=0.5)  # noqa: E731
    else:
        labels = sorted(set(table.target))
        good = pick_good_label(labels, cfg.good_label) or next((p for p in PASS_LABELS if p in labels), None)
        if good is None:
            raise InputFileError(f"{cfg.target} holds {', '.join(labels)}: name the passing one with --good-label")
        strata = table.target
        y = np.array([labels.index(v) for v in table.target])
        args = {"channels": x.shape[2], "mean": mean, "std": std, "outputs": len(labels), "classes": True}
        counts = np.bincount(y, minlength=len(labels))  # failing parts are rare: they count as much as passing ones
        weight = torch.tensor(counts.sum() / (len(labels) * np.maximum(counts, 1)), dtype=torch.float32)
        loss = lambda net, xb, yb: F.cross_entropy(net.logits(xb), yb, weight=weight.to(xb.device))  # noqa: E731
    train_idx, val_idx = stratified_split(strata, cfg.val_fraction, cfg.seed)
    torch.manual_seed(cfg.seed)
    model = create_model("quality_mlp", **args)
    echo(f"training quality_mlp on {len(train_idx)} parts x {x.shape[2]} parameters ({len(val_idx)} for validation), "
         f"{'regression of ' + cfg.target if regression else 'classes ' + ', '.join(labels)}, device {device}")
    seconds = fit(model, loss, x[train_idx], y[train_idx], cfg.epochs, cfg.batch_size, cfg.lr, cfg.seed, device, echo)
    sensor = {"channels": table.names, "window": 1, "stride": 1, "sample_rate_hz": None, "length_fit": "none",
              "target": cfg.target, "quality_output": "value" if regression else "class"}
    if regression:
        sensor["spec"] = [cfg.spec_lower, cfg.spec_upper]
    info = ModelInfo(task="quality", labels=labels, threshold=0.5, precision="fp32", good_label=good, extra=sensor)
    out = predict(model, x[val_idx])
    metrics = quality_metrics(info, [table.target[i] for i in val_idx], out)
    config = {
        "task": "quality",
        "lineside_version": __version__,
        "model": {"name": "quality_mlp", "args": args},
        "labels": labels,
        "good_label": good,
        "threshold": 0.5,
        "sensor": sensor,
        "preprocess": {"mean": mean, "std": std},
        "train": {**asdict(cfg), "seconds": round(seconds, 1), "device_used": str(device)},
        "data": {"path": str(Path(cfg.data).resolve()), "sha256": file_sha256(cfg.data), "ignored": table.ignored},
        "validation_index": val_idx.tolist(),
        "metrics": {"validation": metrics},
    }
    save_checkpoint(Path(cfg.out), model.cpu(), config)
    return config


def quality_metrics(info: ModelInfo, truth: list[str], outputs: np.ndarray) -> dict:
    """Regression: MAE/RMSE/R² plus the accuracy of the in/out-of-spec call; classes: accuracy per class."""
    decisions = decide(outputs, info)
    if info.extra.get("quality_output") == "class":
        return classification_metrics(truth, [d.label for d in decisions], info.labels, info.good_label)
    values = np.array([float(t) for t in truth])
    true_calls = [spec_call(v, info) for v in values]
    return {**regression_metrics(values, np.asarray(outputs, dtype=np.float64).reshape(len(values), -1)[:, 0]),
            "spec_call": classification_metrics(true_calls, [d.label for d in decisions], info.labels,
                                                info.good_label)}
