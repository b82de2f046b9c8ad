"""Training the defect GAN for one defect kind: real patches vs painted ones, hinge loss, EMA generator.

Per step: D learns real (patch, mask) from the bank against composites G painted
on good backgrounds; then G learns to fool D. An optional mode-seeking term
(Mao et al. 2019, MSGAN; `mode_seeking` > 0) repeats half the batch's masks and
backgrounds with fresh noise and pushes G to make those pairs differ. The
checkpoint holds an exponential moving average of G's weights, which gives
steadier samples than the last step's weights.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file

from edge_runtime import __version__
from edge_runtime.cli_support import progress
from train.checkpoint import save_checkpoint
from train.distributed import resolve_device
from train.gan.compose import Placement, place, soft_alpha, tint_reference, window
from train.gan.data import Bank, load_defects, load_good, make_bank
from train.gan.diffaug import diff_augment
from train.gan.networks import PatchDiscriminator, PatchGenerator
from train.images import files_sha256

BANK = "bank.safetensors"
SAMPLES = "samples"


@dataclass
class GanConfig:
    data: str
    defect: str
    out: str
    k: int | None = None  # use only k real defect images (drawn by seed)
    steps: int = 1500
    batch_size: int = 16
    patch: int = 48
    width: int = 24
    z_dim: int = 64
    lr: float = 2e-4
    # Mode-seeking weight. Off by default: measured on 5 cracks, 0.1 doubled the spread of the samples over the
    # real defects' (garish colours), while without it the noise still moved samples (noise_ratio 0.24 after
    # 600 steps). The collapse check guards against a generator that ignores z either way.
    mode_seeking: float = 0.0
    ema: float = 0.995
    seed: int = 0
    device: str = "auto"
    sample_every: int = 250
    quality_samples: int = 64  # 0: skip the quality measures (the augment experiment measures its own way)
    feature_steps: int = 150


def to_tensor(patches: np.ndarray, device: torch.device) -> torch.Tensor:
    """N×P×P×3 uint8 → N×3×P×P float in -1..1."""
    return torch.from_numpy(patches).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.detach().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


class Conditions:
    """A batch of placements as tensors: mask, soft alpha and background window."""

    def __init__(self, placements: list[Placement], goods: np.ndarray, patch: int, device: torch.device):
        self.placements = placements
        self.mask = torch.from_numpy(np.stack([p.mask for p in placements])[:, None].astype(np.float32)).to(device)
        self.alpha = torch.from_numpy(np.stack([soft_alpha(p.mask) for p in placements])[:, None]).to(device)
        self.background = to_tensor(np.stack([window(goods[p.image], p, patch) for p in placements]), device)

    def blend(self, layer: torch.Tensor) -> torch.Tensor:
        return self.background * (1 - self.alpha) + layer * self.alpha


def sample_grid(real: np.ndarray, rows: list[np.ndarray], path: Path) -> None:
    """First row real patches, then one row per noise draw over the same fixed masks and backgrounds."""
    def row(patches: np.ndarray) -> np.ndarray:
        return np.hstack([np.pad(p, ((1, 1), (1, 1), (0, 0))) for p in patches])

    cols = rows[0].shape[0]
    reals = np.concatenate([real, np.zeros((max(0, cols - len(real)), *real.shape[1:]), np.uint8)])[:cols]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack([row(reals), *[row(r) for r in rows]]))


def train_gan(cfg: GanConfig, echo=print) -> dict:
    """Train, check for collapse, measure quality, save; returns the run's config (also OUT/config.json)."""
    from train.gan import quality  # after training, with its feature net

    device = resolve_device(cfg.device)
    root = Path(cfg.data)
    defects = load_defects(root, cfg.defect, cfg.k, cfg.seed)
    goods, good_files = load_good(root, defects.images.shape[1:3])
    bank = make_bank(defects, cfg.patch)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng([cfg.seed, 11])
    gen = torch.Generator().manual_seed(cfg.seed)
    G = PatchGenerator(cfg.z_dim, cfg.width, cfg.patch, residual=True).to(device)
    D = PatchDiscriminator(cfg.width, cfg.patch).to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr * 2, betas=(0.0, 0.99))  # TTUR: D a step ahead
    real_patches, real_masks = to_tensor(bank.patches, device), torch.from_numpy(bank.masks[:, None].astype(np.float32)).to(device)
    shape = defects.images.shape[1:3]
    half = max(1, cfg.batch_size // 2)
    out = Path(cfg.out)

    # Fixed masks, backgrounds and noise for the sample grids, so grids of different steps compare.
    grid_rng = np.random.default_rng([cfg.seed, 13])
    grid_placements = [place(bank, len(goods), shape, grid_rng) for _ in range(8)]
    grid_z = torch.randn(3, 8, cfg.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 1)).numpy()
    grid_tint = tint_reference(bank)

    def save_grid(step: int) -> Path:  # what `edge-data synth` would write for these placements
        from train.gan.synth import painted_patches  # synth imports this module

        rows = [painted_patches(G_ema, grid_placements, goods, z, grid_tint) for z in grid_z]
        path = out / SAMPLES / f"step_{step:05d}.png"
        sample_grid(bank.patches[:8], rows, path)
        return path

    echo(f"training the {cfg.defect} GAN on {len(defects.files)} real defect images and {len(goods)} good images, "
         f"{cfg.patch} px patches, device {device}")
    history, d_losses, g_losses = [], [], []
    started = time.perf_counter()
    with progress(range(cfg.steps), "gan steps") as bar:
        for step in bar:
            G.train()
            placements = [place(bank, len(goods), shape, rng) for _ in range(half)]
            if cfg.mode_seeking:  # each placement twice, to compare two noise draws
                placements = placements + placements
            else:
                placements += [place(bank, len(goods), shape, rng) for _ in range(half)]
            cond = Conditions(placements, goods, cfg.patch, device)
            z = torch.randn(2 * half, cfg.z_dim, generator=gen).to(device)
            idx = torch.from_numpy(rng.integers(len(bank.masks), size=2 * half)).to(device)
            fake = cond.blend(G(z, cond.mask, cond.background))

            real_x, real_m = diff_augment(real_patches[idx], real_masks[idx], gen)
            fake_x, fake_m = diff_augment(fake.detach(), cond.mask, gen)
            d_loss = F.relu(1 - D(real_x, real_m)).mean() + F.relu(1 + D(fake_x, fake_m)).mean()
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()

            fake_x, fake_m = diff_augment(fake, cond.mask, gen)
            g_adv = -D(fake_x, fake_m).mean()
            g_loss = g_adv
            # Mode seeking: the two paintings of one placement should differ where the defect is — at a quarter of
            # the resolution, so the difference is in shade and form, not in pixel noise.
            if cfg.mode_seeking:
                coarse = lambda x: F.avg_pool2d(x, 4)
                weight = coarse(cond.alpha[:half])
                diff = ((coarse(fake[:half]) - coarse(fake[half:])).abs() * weight).sum() / weight.sum().clamp(min=1e-3)
                g_loss = g_loss + cfg.mode_seeking / (diff / (z[:half] - z[half:]).abs().mean() + 1e-5)
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            with torch.no_grad():
                for pe, p in zip(G_ema.parameters(), G.parameters()):
                    pe.lerp_(p, 1 - cfg.ema)
            d_losses.append(d_loss.item())
            g_losses.append(g_adv.item())
            bar.label = f"gan steps (D {np.mean(d_losses[-50:]):.3f}, G {np.mean(g_losses[-50:]):.3f})"
            if (step + 1) % cfg.sample_every == 0 or step + 1 == cfg.steps:
                entry = {"step": step + 1, "d_loss": round(float(np.mean(d_losses[-cfg.sample_every:])), 4),
                         "g_loss": round(float(np.mean(g_losses[-cfg.sample_every:])), 4),
                         "grid": str(save_grid(step + 1).relative_to(out))}
                history.append(entry)
                echo(f"step {entry['step']}: D {entry['d_loss']:.4f}, G {entry['g_loss']:.4f}, grid {entry['grid']}")
    seconds = time.perf_counter() - started

    G_ema = G_ema.cpu()
    model_args = {"z_dim": cfg.z_dim, "width": cfg.width, "patch": cfg.patch, "residual": True}
    config = {
        "task": "gan",
        "lineside_version": __version__,
        "model": {"name": "defect_patch_generator", "args": model_args},
        "defect": cfg.defect,
        "image_size": list(shape),
        "train": {**asdict(cfg), "seconds": round(seconds, 1), "device_used": str(device),
                  "steps_per_s": round(cfg.steps / max(seconds, 1e-9), 2)},
        "data": {
            "root": str(root.resolve()),
            "defect_files": [str(p.relative_to(root)) for p in defects.files],
            "good_count": len(good_files),
            "sha256": files_sha256(root, list(defects.files)),
        },
        "history": history,
    }
    echo("checking the generator for collapse and measuring its samples")
    config["collapse"] = quality.collapse_check(G_ema, bank, goods, np.random.default_rng([cfg.seed, 17]))
    config["quality"] = quality.measure(G_ema, bank, defects, goods, cfg, echo) if cfg.quality_samples else None
    save_checkpoint(out, G_ema, config)
    save_bank(out / BANK, bank)
    return config


def save_bank(path: Path, bank: Bank) -> None:
    """The real patches and masks the generator starts from: plain arrays in safetensors, nothing pickled."""
    save_file({"patches": np.ascontiguousarray(bank.patches), "masks": np.ascontiguousarray(bank.masks),
               "sides": bank.sides}, str(path))
