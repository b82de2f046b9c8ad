"""Synthetic anomalies for training on good parts only (after DRAEM, Zavrtanik et al., ICCV 2021).

The network never sees a real defect. It learns "this pixel does not belong to
the normal surface" from good images with foreign material pasted in under
random masks. Nothing here imitates a particular defect kind — masks are
smooth random blobs (thresholded multi-scale noise, as DRAEM's Perlin masks)
or random thin strokes, and the pasted content is one of:
  - a crop of an unrelated photograph (scikit-image's bundled pictures, never
    the demo's surfaces), standing in for DRAEM's texture database;
  - the part's own surface moved, turned and re-coloured (misplaced structure);
  - a flat or gradient colour (paint, dirt, a hole's shadow);
  - the part's own pixels made darker, brighter, blurred or tinted (local
    change of reflectance or focus).
The blend keeps 0–50 % of the original so faint anomalies are learnt too.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn.functional as F

# Bundled with scikit-image (no download). brick, grass and gravel are left out:
# they are the demo's surfaces, and the evaluation must not be learnt from.
_FOREIGN = ("astronaut", "camera", "cell", "chelsea", "coffee", "coins", "horse", "hubble_deep_field", "moon",
            "page", "retina", "rocket", "text", "motorcycle_left", "clock_motion", "microaneurysms")


@lru_cache(maxsize=1)
def foreign_images() -> tuple[np.ndarray, ...]:
    """The unrelated photographs as uint8 RGB arrays (loaded once)."""
    from skimage import data

    out = []
    for name in _FOREIGN:
        fn = getattr(data, name, None)
        if fn is None:
            continue
        image = np.asarray(fn())
        if image.ndim == 2:
            image = np.stack([image] * 3, -1)
        out.append(np.ascontiguousarray(image[..., :3].astype(np.uint8)))
    return tuple(out)


def _noise_masks(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """Blob masks: two octaves of smooth noise, thresholded to cover 1–20 % of the image (N x 1 x S x S)."""
    masks = []
    for _ in range(n):
        res = int(2 ** torch.randint(1, 5, (1,), generator=gen))
        field = F.interpolate(torch.randn(1, 1, res, res, generator=gen), size=(size, size), mode="bicubic",
                              align_corners=False)
        field = field + 0.5 * F.interpolate(torch.randn(1, 1, res * 2, res * 2, generator=gen), size=(size, size),
                                            mode="bicubic", align_corners=False)
        cover = 0.01 + 0.19 * torch.rand(1, generator=gen).item()
        cut = torch.quantile(field.flatten(), 1.0 - cover)
        masks.append((field > cut).float())
    return torch.cat(masks)


def _stroke_masks(n: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    """Thin random curves of random width: the shape family blobs do not cover."""
    masks = np.zeros((n, 1, size, size), np.float32)
    for i in range(n):
        points = [rng.uniform(0.1, 0.9, 2) * size]
        heading = rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.integers(3, 12))):
            heading += rng.normal(0, 0.6)
            points.append(points[-1] + rng.uniform(4, 0.15 * size) * np.array([np.cos(heading), np.sin(heading)]))
        pts = np.array(points).round().astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(masks[i, 0], [pts], False, 1.0, int(rng.integers(1, max(2, size // 32))), cv2.LINE_AA)
    return torch.from_numpy((masks > 0.5).astype(np.float32))


def _foreign_patches(n: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    """Random crops of the unrelated photographs, scaled and turned (N x S x S x 3 float)."""
    bank = foreign_images()
    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        image = bank[int(rng.integers(len(bank)))]
        smallest = min(image.shape[:2])
        side = int(rng.integers(min(size // 2, smallest), smallest + 1))
        y = int(rng.integers(0, image.shape[0] - side + 1))
        x = int(rng.integers(0, image.shape[1] - side + 1))
        patch = cv2.resize(image[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA)
        out[i] = np.rot90(patch, int(rng.integers(4)))
    return torch.from_numpy(out)


def _sources(images: torch.Tensor, gen: torch.Generator, rng: np.random.Generator) -> torch.Tensor:
    """What is pasted into each image (N x S x S x 3 float, 0..255)."""
    n, size = images.shape[0], images.shape[1]
    x = images.float()
    kind = torch.randint(0, 4, (n,), generator=gen)
    out = torch.empty_like(x)
    foreign = _foreign_patches(n, size, rng)
    shifted = torch.rot90(torch.roll(x, shifts=(size // 3, size // 2), dims=(1, 2)), 1, dims=(1, 2))
    colour = torch.rand(n, 1, 1, 3, generator=gen) * 255
    ramp = torch.linspace(0, 1, size).view(1, size, 1, 1)
    flat = colour * (0.7 + 0.6 * ramp) if torch.rand(1, generator=gen).item() < 0.5 else colour.expand_as(x)
    gain = torch.where(torch.rand(n, 1, 1, 1, generator=gen) < 0.5, 0.35, 1.7) * (
        0.8 + 0.4 * torch.rand(n, 1, 1, 3, generator=gen))
    blurred = torch.from_numpy(np.stack([cv2.GaussianBlur(img, (0, 0), 3.0) for img in x.numpy()]))
    reflect = torch.where(torch.rand(n, 1, 1, 1, generator=gen) < 0.5, x, blurred) * gain
    for k, source in enumerate((foreign, shifted, flat.expand_as(x), reflect)):
        pick = kind == k
        out[pick] = source[pick]
    jitter = 0.7 + 0.6 * torch.rand(n, 1, 1, 3, generator=gen)  # recoloured so colour alone never gives it away
    return (out * jitter).clamp(0, 255)


def add_anomalies(images: torch.Tensor, gen: torch.Generator, p: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste synthetic anomalies into about `p` of a uint8 NHWC batch; returns (images, N x 1 x H x W masks)."""
    n, size = images.shape[0], images.shape[1]
    rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    masks = _noise_masks(n, size, gen)
    strokes = torch.rand(n, generator=gen) < 0.3
    if strokes.any():
        masks[strokes] = _stroke_masks(int(strokes.sum()), size, rng)
    masks *= (torch.rand(n, 1, 1, 1, generator=gen) < p).float()
    keep = 0.5 * torch.rand(n, 1, 1, 1, generator=gen)  # share of the original left under the anomaly
    alpha = (masks * (1 - keep)).permute(0, 2, 3, 1)
    blended = images.float() * (1 - alpha) + _sources(images, gen, rng) * alpha
    return blended.round().clamp(0, 255).to(torch.uint8), masks
