"""Training an anomaly model on good parts only: SurfaceNet + synthetic anomalies → checkpoint with a calibrated threshold.

The threshold rule (documented in the README): held-out good images (never
trained on) are scored; q is the (1 − target FRR) quantile of their scores and
the threshold is q + margin × (q − median). The quantile alone puts the edge of
the good parts exactly on the threshold, where INT8 rounding or a slightly
dimmer lamp flips them; the margin, in units of the good scores' own spread
(like a control limit), keeps a part rejected only when it is clearly unlike
the good ones. `edge-train calibrate` redoes this on good images from the real
camera without retraining.
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
from train.augment import JPEG_QUALITIES, geometric, photometric
from train.checkpoint import save_checkpoint
from train.distributed import resolve_device
from train.fit import check_finite
from train.images import aspect_warning, files_sha256, load_image_set
from train.init_weights import load_init
from train.models import create_model
from train.models.anomaly_net import fit_gaussian
from train.score_choice import choose_score, with_gaussian

MIN_GOOD = 10
# What a line camera varies between good parts. Wider than the classifier's, because the score is a maximum over
# the whole image: a model that never saw a dimmer lamp or a noisier sensor calls every such frame anomalous. Also
# wider than the disturbances edge-eval --perturb applies (noise sigma 8, exposure x0.75/x1.25, blur sigma 1.5).
CAMERA_VARIATION = {"gain": 0.6, "bias": 40.0, "noise": 12.0, "blur": 1.8, "exposure": 0.35, "noise_grain": 3}
# --compressed: half the training crops also go through JPEG (quality 30-95). Brick, 2026-11-28, edge-eval fp32:
# under --perturb jpeg FRR 1.0 -> 0 and image AUROC 0.933 -> 0.994; clean 0.9997 -> 0.9972, and escapes at the
# stored threshold 0.05 -> 0.28 (the good scores spread wider). Not the default for lossless cameras for that reason.
COMPRESSED_SHARE = 0.5
JPEG_FIT = f"JPEG copies of the good images at quality {JPEG_QUALITIES[0]}-{JPEG_QUALITIES[1]} (--compressed)"
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
    margin: float = 2.0
    bad: str | None = None
    score: str = "auto"  # auto (train/score_choice.py), line or gauss
    init: str | None = None  # weights to start from (train/init_weights.py)
    compressed: bool = False  # the line runs on a compressed stream: JPEG in training and in the Gaussian's fit


def good_images(root: Path) -> list[Path]:
    """Good training images: DATA/train/good (MVTec) or the images directly in DATA (a plain folder)."""
    if not root.is_dir():
        raise DatasetLayoutError(f"data folder {root} does not exist: make one with `edge-data demo --out {root}`")
    folder = root / "train" / GOOD if (root / "train" / GOOD).is_dir() else root
    files = image_files(folder)
    if len(files) < MIN_GOOD:
        # folder names are case-sensitive: train/Good or a class folder elsewhere is easy to miss
        found = sorted(str(d.relative_to(root)) for base in (root, root / "train") if base.is_dir()
                       for d in base.iterdir() if d.is_dir() and image_files(d))
        seen = f" (folders with images: {', '.join(found)})" if found else ""
        raise DatasetLayoutError(
            f"{folder} holds {len(files)} good images{seen}; an anomaly model needs at least {MIN_GOOD} "
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


def synthetic_validation(images: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Held-out good images plus a copy of each with a synthetic anomaly: (images, is_anomalous, N x H x W masks)."""
    gen = torch.Generator().manual_seed(seed)
    bad, masks = add_anomalies(torch.from_numpy(images), gen, p=1.0)
    keep = masks.flatten(1).sum(1).numpy() > 0
    masks = masks[:, 0].numpy().astype(np.uint8)
    return (np.concatenate([images, bad.numpy()[keep]]), np.r_[np.zeros(len(images)), np.ones(int(keep.sum()))],
            np.concatenate([np.zeros_like(masks[: len(images)]), masks[keep]]))


def gauss_fitted(model: torch.nn.Module, args: dict, files: list[Path], images: np.ndarray, compressed: bool):
    """`with_gaussian` on the good `images` (loaded from `files`), or for a compressed line on their
    `stream_copies`: (model, its args, fit summary)."""
    if compressed:
        return with_gaussian(model, args, stream_copies(files, tuple(images.shape[1:3]), seed=0), JPEG_FIT)
    return with_gaussian(model, args, images)


def stream_copies(files: list[Path], size: tuple[int, int], seed: int) -> np.ndarray:
    """Good images as a compressed stream (--compressed) sends them: each through JPEG at its stored resolution,
    at its own quality from JPEG_QUALITIES. What a compressed line's gauss score is fitted on: fitted on the
    lossless images, JPEG 70 rejected every good grass part. The threshold stays calibrated on the held-out
    images as taken: under the Gaussian fitted on copies, compressed good parts score no higher than lossless ones
    (grass, gravel: FRR 0 under JPEG 50, 70 and 90 at it), and a rule over both spread the good scores and let
    up to 0.3 more defects escape (2026-11-28)."""
    return load_image_set([(f, GOOD) for f in files], [GOOD], size, jpeg_seed=seed).images


def calibrate(good_scores: np.ndarray, target_frr: float, margin: float) -> tuple[float, str]:
    """(threshold, the rule in words) from held-out good scores; see the module docstring."""
    q = float(np.quantile(good_scores, 1.0 - target_frr))
    threshold = min(q + margin * (q - float(np.median(good_scores))), 0.999)
    rule = (f"quantile {1 - target_frr:g} of {len(good_scores)} held-out good image scores "
            f"+ {margin:g} x (that quantile - their median)")
    return threshold, rule


def validate(model: torch.nn.Module, good: np.ndarray, threshold: float, seed: int, bad: np.ndarray | None) -> dict:
    """Held-out good scores, synthetic-anomaly AUROC and rates, and (with known-bad images) their AUROC."""
    cpu = torch.device("cpu")
    good_scores = _scores(model, good, cpu)
    synth_images, synth_truth, _ = synthetic_validation(good, seed)
    synth_scores = _scores(model, synth_images, cpu)
    validation = {
        "heldout_good": {"count": len(good_scores), "median": float(np.median(good_scores)),
                         "max": float(good_scores.max())},
        "synthetic_auroc": auroc(synth_truth, synth_scores),
        "synthetic": line_rates(synth_truth, synth_scores, threshold),
    }
    if bad is not None:
        bad_scores = _scores(model, bad, cpu)
        truth = np.r_[np.zeros(len(good_scores)), np.ones(len(bad_scores))]
        validation["bad_auroc"] = auroc(truth, np.r_[good_scores, bad_scores])
        validation["bad"] = line_rates(truth, np.r_[good_scores, bad_scores], threshold)
    return validation


def _bad_images(folder: str | None, size: tuple[int, int]) -> np.ndarray | None:
    if not folder:
        return None
    files = image_files(Path(folder)) if Path(folder).is_dir() else []
    if not files:
        what = "holds no images" if Path(folder).is_dir() else "is not a folder"
        raise DatasetLayoutError(f"--bad {folder} {what}: give a folder of known-bad images")
    return load_image_set([(f, GOOD) for f in files], [GOOD], size).images


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
    device = resolve_device(cfg.device)
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
    if warning := aspect_warning(train_set, val_set):
        echo(warning)
    bad = _bad_images(cfg.bad, size)  # read before training, so a wrong --bad costs seconds, not the whole run
    torch.manual_seed(cfg.seed)
    mean = (train_set.images.reshape(-1, 3).mean(0) / 255.0).round(4).tolist()
    std = (train_set.images.reshape(-1, 3).std(0) / 255.0).clip(1e-3).round(4).tolist()
    # trained as a line-score net: the score does not enter the loss, and a gauss score is fitted on afterwards
    model_args = {"mean": mean, "std": std, "width": cfg.width, "score": "line"}
    model = create_model("surfacenet", **model_args)
    init = load_init(model, cfg.init) if cfg.init else None
    if init:
        echo(f"started from {init['file']}: {init['loaded']} of {init['of']} tensors")
    model = model.to(device)
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
            x = photometric(x, gen, **CAMERA_VARIATION, jpeg=COMPRESSED_SHARE if cfg.compressed else 0.0)
            target = F.avg_pool2d(masks, 2)  # the map is predicted at half resolution
            loss = focal_loss(model.logits(x.to(device)), target.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            if (step + 1) % 250 == 0 or step + 1 == cfg.steps:
                check_finite(model, f"by step {step + 1}", cfg.lr)
            if (step + 1) % 250 == 0:
                echo(f"step {step + 1}: loss {np.mean(losses[-250:]):.4f}")
    model = model.cpu().eval()
    choice = choose_score(model, train_set.images) if cfg.score == "auto" else None
    if choice:
        echo(f"score {choice['score']}: {choice['why']}")
    gaussian = None
    if (choice["score"] if choice else cfg.score) == "gauss":
        model, model_args, gaussian = gauss_fitted(model, model_args, train_files, train_set.images, cfg.compressed)
        echo(f"Gaussian of the good images' first features: {gaussian}")
    seconds = time.perf_counter() - started
    threshold, rule = calibrate(_scores(model, val_set.images, torch.device("cpu")), cfg.target_frr, cfg.margin)
    validation = validate(model, val_set.images, threshold, cfg.seed + 1, bad)
    config = {
        "task": "anomaly",
        "lineside_version": __version__,
        "model": {"name": "surfacenet", "args": model_args},
        "labels": [GOOD, ANOMALY],
        "good_label": GOOD,
        "threshold": threshold,
        "threshold_rule": rule,
        "preprocess": {"input_size": list(size), "resize": "area", "channel_order": "RGB", "mean": mean, "std": std},
        "train": {**asdict(cfg), "seconds": round(seconds, 1), "device_used": str(device),
                  "final_loss": round(float(np.mean(losses[-100:])), 5)},
        "data": {"root": str(root.resolve()), "sha256": files_sha256(root, files), "counts": {GOOD: len(files)}},
        "validation_files": [str(p.relative_to(root)) for p in val_files],
        **({"score_choice": choice} if choice else {}),
        **({"gaussian": gaussian} if gaussian else {}),
        **({"init": init} if init else {}),
        "validation_synthetic_seed": cfg.seed + 1,
        "metrics": {"validation": validation},
    }
    save_checkpoint(Path(cfg.out), model, config)
    return config


def recorded_files(files: list[Path]) -> dict:
    """Which station images a refit or threshold came from, so the export's INT8 can use the same ones."""
    return {"files": [str(f.resolve()) for f in files]}


RECALIBRATE = "restore them or calibrate the run again (edge-train calibrate RUN --good DIR)"


def recorded_paths(entry: dict, remedy: str = RECALIBRATE) -> list[Path] | None:
    """The files `recorded_files` named (None when none were recorded); a missing one is one clear error."""
    if "files" not in entry:
        return None
    files = [Path(f) for f in entry["files"]]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise DatasetLayoutError(f"{missing[0]} is gone ({len(missing)} of the {len(files)} station images the run "
                                 f"was calibrated on): {remedy}")
    return files


def recorded_images(entry: dict, size: tuple[int, int]) -> np.ndarray | None:
    files = recorded_paths(entry)
    return None if files is None else load_image_set([(f, GOOD) for f in files], [GOOD], size).images


def recalibrate(run: str, good: str | None = None, target_frr: float = 0.01, margin: float = 2.0,
                bad: str | None = None, refit: bool = False) -> dict:
    """A new threshold for a trained run from good images (the run's held-out ones, or a folder from the real
    camera: all of them are used); rewrites config.json, the weights stay. With `refit` (a score="gauss" run and
    --good), the first four fifths of the images (sorted by name) fit the Gaussian again and the last fifth sets
    the threshold. Returns the config."""
    from train.checkpoint import load_checkpoint, save_checkpoint, save_config

    model, config = load_checkpoint(run)
    if config.get("task") != "anomaly":
        raise DatasetLayoutError(f"{run} is a {config.get('task')!r} run; calibrate sets anomaly thresholds")
    size = tuple(config["preprocess"]["input_size"])
    if good:
        files = good_images(Path(good))
        source = f"{len(files)} good images in {good}"
    else:
        root = Path(config["data"]["root"])
        files = [root / f for f in config["validation_files"]]
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise DatasetLayoutError(f"the run's held-out image {missing[0]} is gone: give --good DIR")
        source = f"the run's {len(files)} held-out good images"
    images = load_image_set([(f, GOOD) for f in files], [GOOD], size).images
    if refit:
        score = config["model"]["args"].get("score", "box")
        if score != "gauss":
            raise DatasetLayoutError(f"--refit fits a --score gauss run's Gaussian again, from --good images: "
                                     f"{run} is a {score}-score run")
        if not good:
            raise DatasetLayoutError("--refit needs --good DIR (the station camera's good images)")
        # the last fifth, not every fifth: consecutive frames are near twins, and a held-out twin of a fitted image
        # would set the threshold too low
        held = np.arange(len(images)) >= len(images) - len(images) // 5
        if held.sum() < 5:
            raise DatasetLayoutError(f"--refit needs at least 25 good images in {good}, it holds {len(images)}")
        config["gaussian"] = {**fit_gaussian(model, images[~held]), "source": source,
                              **recorded_files([f for f, h in zip(files, held) if not h])}
        images, files = images[held], [f for f, h in zip(files, held) if h]
        source = f"{len(images)} of {source} (the other {int((~held).sum())} refit the Gaussian)"
    threshold, rule = calibrate(_scores(model, images, torch.device("cpu")), target_frr, margin)
    config["threshold"], config["threshold_rule"] = threshold, rule
    config["metrics"]["validation"] = validate(model, images, threshold, config["validation_synthetic_seed"],
                                               _bad_images(bad, size))
    config["calibration"] = {"source": source, "target_frr": target_frr, "margin": margin,
                             **(recorded_files(files) if good else {})}
    if refit:
        save_checkpoint(Path(run), model, config)  # the Gaussian lives with the weights
    else:
        save_config(Path(run), config)
    return config
