"""A trained defect GAN → labelled defect images and masks in the MVTec layout.

Every image draws from its own generator ([seed, i]): the placement, the good
image and the noise. With GroupNorm in G a sample does not depend on its batch,
so a seed gives byte-identical files.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors.numpy import load_file

from edge_runtime.errors import InputFileError
from train.checkpoint import load_checkpoint, load_config
from train.gan.compose import (Tint, blend, composite, match_tint, pasted_layer, place, soft_alpha, tint_reference,
                               window)
from train.gan.data import MASKS, SYNTH_PREFIX, Bank
from train.gan.quality import GanCollapsed
from train.gan.train import BANK, to_tensor, to_uint8

METHODS = ("gan", "paste")


def load_gan(run: str | Path, allow_collapsed: bool = False) -> tuple[torch.nn.Module, dict, Bank]:
    import train.gan.networks  # noqa: F401  (registers the generator for load_checkpoint)

    run = Path(run)
    config = load_config(run)
    if config.get("task") != "gan":
        raise InputFileError(f"{run} is a {config.get('task')!r} run, not a GAN: train one with `edge-train gan`")
    collapse = config.get("collapse", {})
    if collapse.get("collapsed") and not allow_collapsed:
        raise GanCollapsed(f"{run}: the generator collapsed ({collapse['reason']}); retrain it (more --steps or "
                           "real images) or pass --allow-collapsed to use it anyway")
    if not (run / BANK).is_file():
        raise InputFileError(f"{run / BANK} is missing: re-run edge-train gan")
    G, config = load_checkpoint(run)
    try:
        arrays = load_file(str(run / BANK))
        bank = Bank(arrays["patches"], arrays["masks"], arrays["sides"])
    except Exception as exc:  # truncated or foreign file
        raise InputFileError(f"{run / BANK} is not a valid bank file ({type(exc).__name__}): re-run edge-train gan") from exc
    return G, config, bank


def paint(G: torch.nn.Module, placements, goods: np.ndarray, z: np.ndarray, tint: Tint | None = None,
          batch: int = 32) -> np.ndarray:
    """The generator's defect layers (N×P×P×3 uint8) for placements and noise vectors.

    `tint` (compose.tint_reference of the bank): the generator paints shape and shade, the real defects give the
    tint. With a handful of real defects the discriminator does not punish colour: G paints green, magenta and
    blue speckle and red tips into cracks (compose.match_tint). None: the generator's own colours.
    """
    device = next(G.parameters()).device
    patch = G.patch
    out = []
    with torch.inference_mode():
        for i in range(0, len(placements), batch):
            chunk = placements[i : i + batch]
            mask = torch.from_numpy(np.stack([p.mask for p in chunk])[:, None].astype(np.float32)).to(device)
            windows = np.stack([window(goods[p.image], p, patch) for p in chunk])
            layers = to_uint8(G(torch.from_numpy(z[i : i + batch]).to(device), mask, to_tensor(windows, device)))
            if tint is not None:
                layers = np.stack([match_tint(layer, bg, soft_alpha(p.mask), tint)
                                   for layer, bg, p in zip(layers, windows, chunk)])
            out.append(layers)
    return np.concatenate(out) if out else np.zeros((0, patch, patch, 3), np.uint8)


def painted_patches(G: torch.nn.Module, placements, goods: np.ndarray, z: np.ndarray,
                    tint: Tint | None = None) -> np.ndarray:
    """The placements' good windows with the generator's defects blended in (N×P×P×3 uint8): what the sample
    grids show and the collapse check measures."""
    layers = paint(G, placements, goods, z, tint)
    return np.stack([blend(window(goods[p.image], p, G.patch), layer, soft_alpha(p.mask))
                     for p, layer in zip(placements, layers)])


def synthesize(G: torch.nn.Module, bank: Bank, goods: np.ndarray, count: int, seed: int = 0,
               method: str = "gan", real_tint: bool = True, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """`count` composited defect images and their 0/255 masks; `method="paste"` moves real patches instead."""
    shape = goods.shape[1:3]
    tint = tint_reference(bank) if real_tint else None
    images = np.empty((count, *goods.shape[1:]), np.uint8)
    masks = np.empty((count, *shape), np.uint8)
    for start in range(0, count, 64):
        rngs = [np.random.default_rng([seed, i]) for i in range(start, min(count, start + 64))]
        placements = [place(bank, len(goods), shape, r) for r in rngs]
        if method == "gan":
            z = np.stack([r.standard_normal(G.z_dim) for r in rngs]).astype(np.float32)
            layers = paint(G, placements, goods, z, tint)
        else:
            layers = np.stack([pasted_layer(bank, p) for p in placements])
        for i, (p, layer) in enumerate(zip(placements, layers), start):
            images[i], masks[i] = composite(goods[p.image], layer, p)
        if progress:
            progress(len(placements))
    return images, masks


def write_mvtec(out: Path, kind: str, images: np.ndarray, masks: np.ndarray) -> list[Path]:
    """DIR/train/<kind>/synth_NNNN.png and DIR/train_ground_truth/<kind>/synth_NNNN_mask.png.

    Earlier synth_* files of the kind are removed first, so the folder never mixes two runs; real files are
    never touched.
    """
    for folder, pattern in ((out / "train" / kind, f"{SYNTH_PREFIX}*.png"), (out / MASKS / kind, f"{SYNTH_PREFIX}*_mask.png")):
        for old in folder.glob(pattern) if folder.is_dir() else []:
            old.unlink()
    written = []
    for i, (image, mask) in enumerate(zip(images, masks)):
        name = f"{SYNTH_PREFIX}{i:04d}"
        for path, data in ((out / "train" / kind / f"{name}.png", image),
                           (out / MASKS / kind / f"{name}_mask.png", mask)):
            path.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(path), data):
                raise InputFileError(f"cannot write {path}: check the disk and permissions")
        written.append(out / "train" / kind / f"{name}.png")
    return written


def write_manifest(out: Path, kind: str, run: str | Path, config: dict, count: int, seed: int, method: str,
                   colour: str = "real") -> dict:
    manifest = {"gan_run": str(Path(run).resolve()), "defect": kind, "count": count, "seed": seed, "method": method,
                "colour": ("the real defects'" if method == "paste" else
                           "the generator's shade, the real defects' tint" if colour == "real" else "the generator's"),
                "images": f"train/{kind}/{SYNTH_PREFIX}*.png", "masks": f"{MASKS}/{kind}/{SYNTH_PREFIX}*_mask.png",
                "gan_quality": config.get("quality"), "gan_collapse": config.get("collapse")}
    (out / f"synth_{kind}.json").write_text(json.dumps(manifest, indent=2))
    return manifest
