"""Training an anomaly model on good parts only: SurfaceNet + synthetic anomalies → checkpoint with a calibrated threshold.

The threshold rule (documented in the README): held-out good images (never
trained on) are scored, and the threshold is the (1 − target FRR) quantile of
their scores, i.e. the score above which the chosen share of good parts would
be rejected. With fewer than 1/FRR held-out images that is close to their
maximum, so more good images give a threshold closer to the promise.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edge_runtime import __version__
from edge_runtime.anomaly_metrics import auroc, line_rates
from edge_runtime.cli_support import progress
from edge_runtime.datasets import GOOD, image_files
from edge_runtime.errors import DatasetLayoutError
from train.anomaly_synth import add_anomalies
from train.augment import geometric, photometric
from train.checkpoint import save_checkpoint
from train.images import files_sha256, load_image_set
from train.models import create_model

MIN_GOOD = 10
# Wider than the classifier's: the score is a maximum over the whole image, so a model that has never seen a
# dimmer lamp or a noisier sensor would call every such frame anomalous (edge-eval --perturb measures this).
CAMERA_VARIATION = {"gain": 0.6, "bias": 40.0, "noise": 10.0, "blur": 1.8}
ANOMALY = "anomaly"


@dataclass
class AnomalyConfig:
    data: str
    out: str
    steps: int = 1500
    batch_size: int = 16
    crop: int = 128
    lr: float = 2e-3
    seed: int = 0
    device: str = "auto"
    image_size: int = 256
    width: int = 16
    val_fraction: float = 0.2
    target_frr: float = 0.01
    bad: str | None = None


def good_images(root: Path) -> list[Path]:
    """Good training images: DATA/train/good (MVTec) or the images directly in DATA (a plain folder)."""
    if not root.is_dir():
        raise DatasetLayoutError(f"data folder {root} does not exist: make one with `edge-data demo --out {root}`")
    folder = root / "train" / GOOD if (root / "train" / GOOD).is_dir() else root
    files = image_files(folder)
    if len(files) < MIN_GOOD:
        raise DatasetLayoutError(
            f"{folder} holds {len(files)} good images; an anomaly model needs at least {MIN_GOOD} "
            f"(a few hundred is better): put them in {root}/train/good/ or directly in {root}/"
        )
    return files


def _scores(model: torch.nn.Module, images: np.ndarray, device: torch.device, batch: int = 32) -> np.ndarray:
    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            out.append(model(torch.from_numpy(images[i : i + batch]).to(device))[0].float().cpu().numpy())
    return np.concatenate(out)


def synthetic_validation(images: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Held-out good images plus a copy of each with a synthetic anomaly: (images, is_anomalous)."""
    gen = torch.Generator().manual_seed(seed)
    bad, masks = add_anomalies(torch.from_numpy(images), gen, p=1.0)
    keep = masks.flatten(1).sum(1).numpy() > 0
    return np.concatenate([images, bad.numpy()[keep]]), np.r_[np.zeros(len(images)), np.ones(int(keep.sum()))]


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (as DRAEM): the many easy normal pixels do not drown the few anomalous ones."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_true = torch.exp(-bce)
    return ((1 - p_true) ** gamma * bce).mean()


def _random_crops(batch: torch.Tensor, crop: int, gen: torch.Generator) -> torch.Tensor:
    size = batch.shape[1]
    if crop >= size:
        return batch
    y, x = (int(v) for v in torch.randint(0, size - crop + 1, (2,), generator=gen))
    return batch[:, y : y + crop, x : x + crop]


def train_anomaly(cfg: AnomalyConfig, echo=print) -> dict:
    """Train on good images only, calibrate the threshold on held-out good images, save; returns the config."""
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device)
    root = Path(cfg.data)
    files = good_images(root)
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(files))
    n_val = max(5, int(round(len(files) * cfg.val_fraction)))
    val_files = sorted(files[i] for i in order[:n_val])
    train_files = sorted(files[i] for i in order[n_val:])
    size = (cfg.image_size, cfg.image_size)
    # Mixed sizes, grayscale and RGBA are all made into size x size RGB by the runtime's own preprocessing.
    train_set = load_image_set([(f, GOOD) for f in train_files], [GOOD], size)
    val_set = load_image_set([(f, GOOD) for f in val_files], [GOOD], size)
    torch.manual_seed(cfg.seed)
    mean = (train_set.images.reshape(-1, 3).mean(0) / 255.0).round(4).tolist()
    std = (train_set.images.reshape(-1, 3).std(0) / 255.0).clip(1e-3).round(4).tolist()
    model_args = {"mean": mean, "std": std, "width": cfg.width}
    model = create_model("surfacenet", **model_args).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=cfg.steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    images = torch.from_numpy(train_set.images)
    echo(f"training surfacenet on {len(train_files)} good images ({len(val_files)} held out for the threshold), "
         f"{size[0]}x{size[1]} input, {cfg.crop}px crops, {cfg.steps} steps, device {device}")
    started = time.perf_counter()
    losses: list[float] = []
    model.train()
    with progress(range(cfg.steps), "steps") as bar:
        for step in bar:
            idx = torch.randint(0, len(images), (cfg.batch_size,), generator=gen)
            x, masks = add_anomalies(geometric(_random_crops(images[idx], cfg.crop, gen), gen), gen)
            # Camera disturbances after the anomaly is pasted, as the camera sees both: a global change of light,
            # noise or focus must read as normal, only a local difference as anomalous.
            x = photometric(x, gen, **CAMERA_VARIATION)
            target = F.avg_pool2d(masks, 2)  # the map is predicted at half resolution
            loss = focal_loss(model.logits(x.to(device)), target.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            if (step + 1) % 250 == 0:
                echo(f"step {step + 1}: loss {np.mean(losses[-250:]):.4f}")
    seconds = time.perf_counter() - started
    model = model.cpu()

    good_scores = _scores(model, val_set.images, torch.device("cpu"))
    threshold = float(np.quantile(good_scores, 1.0 - cfg.target_frr))
    synth_images, synth_truth = synthetic_validation(val_set.images, cfg.seed + 1)
    synth_scores = _scores(model, synth_images, torch.device("cpu"))
    validation = {
        "heldout_good": {"count": len(good_scores), "median": float(np.median(good_scores)),
                         "max": float(good_scores.max())},
        "synthetic_auroc": auroc(synth_truth, synth_scores),
        "synthetic": line_rates(synth_truth, synth_scores, threshold),
    }
    if cfg.bad:
        bad_files = image_files(Path(cfg.bad))
        if not bad_files:
            raise DatasetLayoutError(f"--bad {cfg.bad} holds no images: give a folder of known-bad images")
        bad_scores = _scores(model, load_image_set([(f, GOOD) for f in bad_files], [GOOD], size).images,
                             torch.device("cpu"))
        truth = np.r_[np.zeros(len(good_scores)), np.ones(len(bad_scores))]
        validation["bad_auroc"] = auroc(truth, np.r_[good_scores, bad_scores])
        validation["bad"] = line_rates(truth, np.r_[good_scores, bad_scores], threshold)
    config = {
        "task": "anomaly",
        "lineside_version": __version__,
        "model": {"name": "surfacenet", "args": model_args},
        "labels": [GOOD, ANOMALY],
        "good_label": GOOD,
        "threshold": threshold,
        "threshold_rule": f"quantile {1 - cfg.target_frr:g} of {len(good_scores)} held-out good image scores",
        "preprocess": {"input_size": list(size), "resize": "area", "channel_order": "RGB", "mean": mean, "std": std},
        "train": {**asdict(cfg), "seconds": round(seconds, 1), "device_used": str(device),
                  "final_loss": round(float(np.mean(losses[-100:])), 5)},
        "data": {"root": str(root.resolve()), "sha256": files_sha256(root, files), "counts": {GOOD: len(files)}},
        "validation_files": [str(p.relative_to(root)) for p in val_files],
        "validation_synthetic_seed": cfg.seed + 1,
        "metrics": {"validation": validation},
    }
    save_checkpoint(Path(cfg.out), model, config)
    return config
