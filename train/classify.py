"""Training a defect classifier: data → DefectNet → checkpoint with validation metrics."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from edge_runtime import __version__
from edge_runtime.cli_support import progress
from edge_runtime.decision import decide
from edge_runtime.datasets import GOOD, labeled_images, ordered_labels
from edge_runtime.errors import DatasetLayoutError
from edge_runtime.metadata import ModelInfo
from edge_runtime.metrics import classification_metrics
from train import distributed
from train.augment import augment
from train.checkpoint import save_checkpoint
from train.fit import check_finite
from train.images import ImageSet, aspect_warning, files_sha256, load_image_set, split_train_val
from train.models import create_model


@dataclass
class ClassifyConfig:
    data: str
    out: str
    epochs: int = 60  # the line camera's variation (train.augment.LINE_CAMERA) needs 60: at 20 it cost accuracy
    batch_size: int = 32
    lr: float = 3e-3
    seed: int = 0
    device: str = "auto"
    image_size: int = 128
    width: int = 32
    val_fraction: float = 0.2
    threshold: float = 0.5


def _predict(model: torch.nn.Module, images: np.ndarray, device: torch.device, batch: int = 128) -> np.ndarray:
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            out.append(model(torch.from_numpy(images[i : i + batch]).to(device)).float().cpu().numpy())
    return np.concatenate(out)


def fit_classifier(train_set: ImageSet, cfg: ClassifyConfig, ctx: distributed.DistContext | None = None,
                   echo=print) -> tuple[torch.nn.Module, dict, float]:
    """The training loop on images in memory → (model, its constructor arguments, seconds).

    `edge-train classify` calls it after its split; `edge-bench augment` calls it
    with its own training sets, so both measure exactly this training.
    """
    ctx = ctx or distributed.DistContext(device=distributed.resolve_device(cfg.device))
    labels = train_set.labels
    torch.manual_seed(cfg.seed)
    # Normalisation statistics of the training images, baked into the graph.
    mean = (train_set.images.reshape(-1, 3).mean(0) / 255.0).round(4).tolist()
    std = (train_set.images.reshape(-1, 3).std(0) / 255.0).clip(1e-3).round(4).tolist()
    model_args = {"num_classes": len(labels), "mean": mean, "std": std, "width": cfg.width}
    model = create_model("defectnet", **model_args).to(ctx.device)
    net = DistributedDataParallel(model) if ctx.world > 1 else model

    counts = np.bincount(train_set.targets, minlength=len(labels))
    class_weight = torch.tensor(counts.sum() / (len(labels) * np.maximum(counts, 1)), dtype=torch.float32,
                                device=ctx.device)  # rare defect kinds count as much as common good parts
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    steps_per_epoch = int(np.ceil(len(train_set.targets) / (cfg.batch_size * ctx.world)))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
    use_amp = ctx.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    gen = torch.Generator().manual_seed(cfg.seed + ctx.rank)
    images = torch.from_numpy(train_set.images)
    targets = torch.from_numpy(train_set.targets)
    started = time.perf_counter()
    for epoch in range(cfg.epochs):
        net.train()
        # One permutation for all ranks (same seed), each rank takes its own slice.
        order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(cfg.seed * 1000 + epoch))
        mine = order[ctx.rank :: ctx.world]
        batches = [mine[i : i + cfg.batch_size] for i in range(0, len(mine), cfg.batch_size)]
        batches = batches[:steps_per_epoch] + [batches[-1]] * (steps_per_epoch - len(batches))  # equal steps per rank
        losses = []
        with progress(batches, f"epoch {epoch + 1}/{cfg.epochs} batches", enabled=ctx.main) as bar:
            for idx in bar:
                x = augment(images[idx], gen).to(ctx.device)
                y = targets[idx].to(ctx.device)
                with torch.autocast(ctx.device.type, enabled=use_amp):
                    logits = net.module.logits(x) if ctx.world > 1 else net.logits(x)
                    loss = F.cross_entropy(logits.float(), y, weight=class_weight, label_smoothing=0.05)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                losses.append(loss.item())
        check_finite(net, f"in epoch {epoch + 1}", cfg.lr)
        echo(f"epoch {epoch + 1}: loss {np.mean(losses):.4f}")
    seconds = time.perf_counter() - started
    return model, model_args, seconds


def train_classifier(cfg: ClassifyConfig, echo=print) -> dict | None:
    """Train, validate and save; returns the run's config (also OUT/config.json), None on non-main ranks."""
    ctx = distributed.setup(cfg.device)
    try:
        return _train(cfg, ctx, echo if ctx.main else (lambda *a, **k: None))
    finally:
        distributed.teardown(ctx)


def _train(cfg: ClassifyConfig, ctx: distributed.DistContext, echo) -> dict:
    root = Path(cfg.data)
    pairs = labeled_images(root, "train")
    labels = ordered_labels({label for _, label in pairs})
    if GOOD not in labels or len(labels) < 2:
        raise DatasetLayoutError(
            f"{root}: a classifier needs train/good and at least one train/<defect> folder (found: "
            f"{', '.join(labels)}); for good images only use `edge-train anomaly`"
        )
    size = (cfg.image_size, cfg.image_size)
    train_pairs, val_pairs = split_train_val(pairs, cfg.val_fraction, cfg.seed)
    train_set = load_image_set(train_pairs, labels, size)
    val_set = load_image_set(val_pairs, labels, size)
    if warning := aspect_warning(train_set, val_set):
        echo(warning)
    echo(f"training defectnet on {len(train_set.targets)} images ({len(val_set.targets)} for validation), "
         f"classes {', '.join(labels)}, device {ctx.device}, processes {ctx.world}")
    model, model_args, seconds = fit_classifier(train_set, cfg, ctx, echo)
    mean, std = model_args["mean"], model_args["std"]

    # Validation goes through the runtime's decision rule (threshold on P(not good)), the one the line uses.
    info = ModelInfo(task="classify", labels=labels, threshold=cfg.threshold, precision="fp32", good_label=GOOD)
    decisions = decide(_predict(model, val_set.images, ctx.device), info)
    metrics = classification_metrics([labels[t] for t in val_set.targets], [d.label for d in decisions], labels)
    config = {
        "task": "classify",
        "lineside_version": __version__,
        "model": {"name": "defectnet", "args": model_args},
        "labels": labels,
        "good_label": GOOD,
        "threshold": cfg.threshold,
        "preprocess": {"input_size": list(size), "resize": "area", "channel_order": "RGB", "mean": mean, "std": std},
        "train": {**asdict(cfg), "processes": ctx.world, "seconds": round(seconds, 1), "device_used": str(ctx.device)},
        "data": {
            "root": str(root.resolve()),
            "sha256": files_sha256(root, [p for p, _ in pairs]),
            "counts": {name: int(c) for name, c in zip(labels, np.bincount([labels.index(l) for _, l in pairs], minlength=len(labels)))},
        },
        "validation_files": [str(p.relative_to(root)) for p in val_set.files],
        "metrics": {"validation": metrics},
    }
    if not ctx.main:
        return None
    save_checkpoint(Path(cfg.out), model.cpu(), config)
    return config
