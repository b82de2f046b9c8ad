"""Is the generator any good? Collapse check, distances to real defects, and a copy check.

Collapse (checked on every run, a collapsed run is refused downstream): each
sample is described by what a person would look at inside its mask — mean and
spread of colour, edge strength — in grey levels. Two numbers:
  spread_ratio  mean pairwise distance of generated descriptors / of the real ones.
                Near-identical samples (the classic collapse) drive it to 0.
  noise_ratio   distance between two paintings of the same mask and background
                with different noise / distance between different samples. A
                generator that ignores its noise (the conditional-GAN collapse)
                scores 0: every placement would get one fixed appearance.

Quality, in the features of a network trained here (a small DefectNet, good
vs every defect kind of the data, this kind only from the GAN's own k images),
so "alike" means alike to a defect classifier:
  kid       kernel distance (unbiased MMD², cubic kernel) to real defects of the
            kind the GAN never saw (test/<kind> and the images --k left out;
            the training ones when there are none). Unlike a Fréchet distance it
            is unbiased for small sets; FD is reported beside it. References in
            the same run: `paste` (the real defects moved, the baseline to beat),
            `real_train` (the k training images themselves) and `good` (no
            defect at all).
  nearest   each generated image's distance to its nearest training defect,
            against a new real defect's distance to its nearest training defect.
            A GAN that copies lands much closer (ratio << 1, copy_share high).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from edge_runtime.datasets import image_files
from edge_runtime.errors import LinesideError
from edge_runtime.preprocess import prepare_image
from train.distributed import resolve_device
from train.gan.compose import place, soft_alpha
from train.gan.data import SYNTH_PREFIX, Bank, Defects

SPREAD_MIN = 0.25  # generated samples less than a quarter as varied as the real ones: collapsed
NOISE_MIN = 0.05  # noise changes a sample by less than 5 % of what separates two samples: z is ignored


class GanCollapsed(LinesideError):
    """The generator failed the collapse check: its images would all look alike."""

    exit_code = 3


def descriptors(patches: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """N×7: mean and std of B, G, R inside the mask, and the mean edge strength there (grey levels)."""
    out = []
    for patch, mask in zip(patches, masks):
        inside = mask.astype(bool)
        pixels = patch[inside].astype(np.float32)
        grey = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY).astype(np.float32)
        edges = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)) / 8
        out.append(np.concatenate([pixels.mean(0), pixels.std(0), [edges[inside].mean()]]))
    return np.array(out)


def mean_pairwise(x: np.ndarray) -> float:
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    return float(d[np.triu_indices(len(x), 1)].mean())


def collapse_check(G: torch.nn.Module, bank: Bank, goods: np.ndarray, rng: np.random.Generator, n: int = 32) -> dict:
    """Paint n placements twice (two noise draws) and compare the spread with the real defects'.

    The generator's own colours: this judges G, and the real defects' tint that `edge-data synth` gives its
    paintings cannot vary more than the real defects do (it narrows colour spread, it does not collapse it).
    """
    from train.gan.synth import painted_patches  # synth imports this module

    placements = [place(bank, len(goods), goods.shape[1:3], rng) for _ in range(n)]
    z = rng.standard_normal((2, n, G.z_dim)).astype(np.float32)
    masks = np.stack([p.mask for p in placements])
    alphas = [soft_alpha(p.mask) for p in placements]
    a, b = (painted_patches(G, placements, goods, zz) for zz in z)
    real = descriptors(bank.patches, bank.masks)
    desc_a, desc_b = descriptors(np.stack(a), masks), descriptors(np.stack(b), masks)
    spread_real, spread_gen = mean_pairwise(real), mean_pairwise(desc_a)
    noise = float(np.linalg.norm(desc_a - desc_b, axis=1).mean())
    weights = np.stack(alphas)[..., None]
    noise_px = float((np.abs(np.stack(a).astype(np.float32) - np.stack(b)) * weights).sum() / (3 * weights.sum()))
    result = {
        "spread_real": round(spread_real, 3),
        "spread_generated": round(spread_gen, 3),
        "spread_ratio": round(spread_gen / max(spread_real, 1e-9), 4),
        "noise_effect": round(noise, 3),
        "noise_ratio": round(noise / max(spread_gen, 1e-9), 4),
        "noise_effect_grey_levels": round(noise_px, 3),
        "thresholds": {"spread_ratio": SPREAD_MIN, "noise_ratio": NOISE_MIN},
    }
    reasons = []
    if result["spread_ratio"] < SPREAD_MIN:
        reasons.append(f"samples are near-identical: their spread is {result['spread_ratio']:.0%} of the real "
                       f"defects' (minimum {SPREAD_MIN:.0%})")
    if result["noise_ratio"] < NOISE_MIN:
        reasons.append(f"the generator ignores its noise: a second draw changes a sample by "
                       f"{result['noise_ratio']:.1%} of the spread between samples (minimum {NOISE_MIN:.0%})")
    result["collapsed"] = bool(reasons)
    result["reason"] = "; ".join(reasons) if reasons else None
    return result


# ---- features of a network trained here -------------------------------------------------------------------


def train_feature_net(classes: list[np.ndarray], steps: int, seed: int, device: torch.device):
    """A small DefectNet that tells the classes apart (good first), balanced batches, the classifier's augmentation."""
    from train.augment import augment
    from train.models import create_model

    size = classes[0].shape[1:3]
    prepared = [np.stack([prepare_image(im, size) for im in images]) for images in classes]
    mean = (prepared[0].reshape(-1, 3).mean(0) / 255).tolist()
    std = (prepared[0].reshape(-1, 3).std(0) / 255).clip(1e-3).tolist()
    torch.manual_seed(seed)
    net = create_model("defectnet", num_classes=len(classes), mean=mean, std=std, width=16).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng([seed, 19])
    per = max(2, 32 // len(classes))
    net.train()
    for _ in range(steps):
        x = np.concatenate([images[rng.integers(len(images), size=per)] for images in prepared])
        y = torch.arange(len(classes)).repeat_interleave(per).to(device)
        # mild photometric defaults: a feature net for distances, not a line model (figures stay comparable)
        loss = F.cross_entropy(net.logits(augment(torch.from_numpy(x), gen, camera={}).to(device)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval()


def embed(net: torch.nn.Module, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """Pooled features of BGR images, prepared as the runtime prepares a frame."""
    device = next(net.parameters()).device
    size = tuple(images.shape[1:3])
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            x = np.stack([prepare_image(im, size) for im in images[i : i + batch]])
            out.append(net.embed(torch.from_numpy(x).to(device)).float().cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def kid(x: np.ndarray, y: np.ndarray) -> float:
    """Kernel distance (unbiased MMD², kernel (x·y/d + 1)³): 0 when both sets come from one distribution."""
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1) ** 3
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def frechet(x: np.ndarray, y: np.ndarray) -> float | None:
    """Fréchet distance of Gaussians fitted to both sets; tr√(Cx·Cy) through symmetric eigendecompositions, which
    stay exact and fast when a few real images make the covariances singular. None when LAPACK cannot
    decompose them (seen with a judge trained 2 steps on 3 images): a figure missing, not a run lost."""
    mx, my = x.mean(0), y.mean(0)
    cx, cy = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    try:
        w, v = np.linalg.eigh(cx)
        root_cx = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_cx @ cy @ root_cx), 0, None)).sum()
    except np.linalg.LinAlgError:
        return None
    return float(((mx - my) ** 2).sum() + np.trace(cx) + np.trace(cy) - 2 * cross)


def nearest(gen: np.ndarray, train: np.ndarray, heldout: np.ndarray | None = None) -> dict:
    """Distance of each generated sample to its nearest training defect, against what a new real defect shows:
    held-out real defects' distance to their nearest training defect (or, with none held out, each training
    defect's distance to its nearest other one)."""
    to_train = np.linalg.norm(gen[:, None] - train[None], axis=-1).min(1)
    if heldout is not None and len(heldout):
        ref = np.linalg.norm(heldout[:, None] - train[None], axis=-1).min(1)
    else:
        among = np.linalg.norm(train[:, None] - train[None], axis=-1)
        np.fill_diagonal(among, np.inf)
        ref = among.min(1)
    return {
        "generated_to_train_median": round(float(np.median(to_train)), 4),
        "real_to_train_median": round(float(np.median(ref)), 4),
        "ratio": round(float(np.median(to_train) / max(np.median(ref), 1e-12)), 4),
        # share of samples nearer to a training defect than any real defect comes: near-copies
        "copy_share": round(float((to_train < ref.min()).mean()), 4),
    }


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def distances(features: dict[str, np.ndarray], real: np.ndarray, train: np.ndarray,
              heldout: np.ndarray | None, reference: np.ndarray) -> dict:
    """KID and FD of each named feature set against `real`, and its nearest-neighbour check against `train`.

    Features are divided by one scale, the RMS of `reference` (real defects and
    good images), so the kernel works on values near 1; never by statistics of
    the sets measured, so one set's figures do not move when another changes.
    Per-dimension standardisation is avoided: with a handful of real images some
    dimensions have almost no spread and would dominate.
    """
    scale = float(np.sqrt((reference**2).mean())) + 1e-12
    z = lambda f: f / scale
    out = {}
    for name, f in features.items():
        out[name] = {"kid": round(kid(z(f), z(real)), 5), "frechet": _rounded(frechet(z(f), z(real)), 3),
                     "nearest": nearest(z(f), z(train), None if heldout is None else z(heldout)), "count": len(f)}
    return out


def heldout_defects(root: Path, defects: Defects) -> np.ndarray:
    """Real defects of the kind the GAN never saw: test/<kind> and the train/<kind> images --k left out."""
    used = {p.resolve() for p in defects.files}
    files = [p for split in ("test", "train") if (root / split / defects.kind).is_dir()
             for p in image_files(root / split / defects.kind) if p.resolve() not in used and not p.stem.startswith(SYNTH_PREFIX)]
    images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in files]
    images = [im for im in images if im is not None and im.shape == defects.images.shape[1:]]
    return np.stack(images) if images else np.zeros((0, *defects.images.shape[1:]), np.uint8)


def measure(G: torch.nn.Module, bank: Bank, defects: Defects, goods: np.ndarray, cfg, echo=print) -> dict:
    """KID / FD / nearest-neighbour of GAN, copy-paste and good images against real defects of the kind.

    The judge is a DefectNet trained on the run's data: good vs every defect kind
    of train/ (this kind: only the GAN's own k images). Real defects the GAN
    never saw are the reference when the data has them; else its training ones.
    """
    from train.gan.data import defect_kinds, load_defects
    from train.gan.synth import synthesize

    root = Path(cfg.data)
    device = resolve_device(cfg.device)
    others = []
    for kind in defect_kinds(root):
        if kind != defects.kind:
            try:
                others.append(load_defects(root, kind).images[:60])
            except LinesideError:
                pass  # a kind without masks or with too few images simply does not join the judge
    net = train_feature_net([goods, defects.images, *others], cfg.feature_steps, cfg.seed, device)
    n = cfg.quality_samples
    heldout = heldout_defects(root, defects)
    gan_images, _ = synthesize(G, bank, goods, n, seed=cfg.seed + 1000)
    paste_images, _ = synthesize(G, bank, goods, n, seed=cfg.seed + 1000, method="paste")
    good_pick = goods[np.random.default_rng([cfg.seed, 23]).permutation(len(goods))[:n]]
    train_f = embed(net, defects.images)
    feats = {name: embed(net, images) for name, images in
             (("gan", gan_images), ("paste", paste_images), ("good", good_pick))}
    heldout_f = embed(net, heldout) if len(heldout) else None
    if heldout_f is not None:
        feats["real_train"] = train_f
    real = heldout_f if heldout_f is not None else train_f
    result = distances(feats, real, train_f, heldout_f, np.concatenate([real, feats["good"]]))
    for name, row in result.items():
        echo(f"{name}: KID {row['kid']:.4f}, nearest-training-defect distance {row['nearest']['ratio']:.2f}x a real one's")
    return {"against": (f"{len(heldout)} real {defects.kind} images the GAN never saw" if len(heldout) else
                        f"the GAN's {len(defects.images)} training images (no held-out {defects.kind} images)"),
            "judge": f"defectnet width 16, good vs {1 + len(others)} defect kinds, {cfg.feature_steps} steps",
            "sets": result}
