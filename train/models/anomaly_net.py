"""SurfaceNet: a small U-Net that maps an image to a per-pixel anomaly probability, fast on a CPU.

It is DRAEM's discriminative half without the reconstruction network: trained
from scratch on good images with synthetic anomalies (train/anomaly_synth.py),
it learns what the normal surface looks like well enough to point at anything
else. Dropping the reconstruction network halves the cost and keeps the graph
a plain stack of convolutions, which INT8 handles well.

Outputs (both in the graph, so the runtime only reads them):
  score       N      — how strongly the map says "anomaly" somewhere, pooled so a
                       single noisy pixel does not reject a part: score="line"
                       (trained since 2026-11-27) takes the highest mean along a
                       short line in any of 8 directions at quarter resolution, so
                       a thin crack counts with its whole length instead of being
                       diluted by the good pixels around it in a box; score="box"
                       (older runs) the highest 2k+1 box mean at half resolution;
                       score="gauss" (see below) the same line pooling over
                       the Gaussian distance map
  anomaly_map N×H×W  — probability per input pixel, 0..1

score="gauss" (`edge-train anomaly --score gauss`): the net's first features (stem
+ enc1, 16 channels at half resolution) of the good training images are fitted
with one Gaussian (`fit_gaussian`). A pixel's anomaly is its Mahalanobis distance
to it, in units of the good pixels' own (0 at their median, 1 at their 99.9th
percentile); the map shows d / (1 + d), the score is L / (L + 10) of the highest
line mean L at quarter resolution. This is PaDiM's idea (Defard et al. 2021) with
one Gaussian for the whole image, since a surface is stationary, on features
learnt here; only stem and enc1 run at inference. Crack pixels on grass are dark
like its shadows, and the segmentation map scores them weakly, but their colour
and fine texture together are unlike any good cell's: grass image AUROC 0.930
(line score) -> 0.998.

That sensitivity lives in the feature directions where good surfaces hardly vary,
and sensor noise lands there too: one Gaussian fitted on clean images rejected
every good part under σ 8 noise. So the Gaussian is fitted at several levels of
white noise (NOISE_LEVELS), and each image reads its own noise level from the fine
detail of its features (`noise_sigma`) and is measured against the Gaussian of
that level. A clean image reads 0 and keeps the full sensitivity; a noisy one is
judged as noisy good parts look. Before the features, the image is brought to
the good images' mean level (`lit`), so a dimmer or brighter lamp reads as good.
Tried before and not kept (2026-11-27): one Gaussian fitted on noisy copies as
well, a covariance ridge or an input blur (each cured the noise only by giving the
sensitivity back: grass 0.92-0.97); each image's distances divided by their own
median (the noise's rejects became escapes: 57-99 % of defects passed); deeper
features (as noise-sensitive, less sensitive to defects).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from train.models.image_input import NormalizedStem
from train.models.registry import register_model


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def line_kernels(length: int = 11, directions: int = 8) -> torch.Tensor:
    """directions x 1 x L x L kernels, each the mean along one line through the centre."""
    kernels = torch.zeros(directions, 1, length, length)
    c = (length - 1) / 2
    for i in range(directions):
        angle = torch.tensor(i * torch.pi / directions)
        for r in torch.linspace(-c, c, 4 * length):
            kernels[i, 0, int(round(float(c + r * torch.sin(angle)))), int(round(float(c + r * torch.cos(angle))))] = 1
    return kernels / kernels.sum(dim=(2, 3), keepdim=True)


LAPLACIAN = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])[None, None]
# score="gauss": white sensor noise (grey levels) the Gaussian is fitted at; an image uses the two around its own
NOISE_LEVELS = (0.0, 4.0, 8.0, 12.0, 16.0, 20.0)
# An underestimated noise level rejects good parts (6 % low at σ 8 rejected 22 % of good grass), an overestimate
# only costs sensitivity on that noisy image: read the level 15 % high. Chosen on grass, then checked on brick/gravel.
NOISE_MARGIN = 1.15
# score="gauss": the buffers fit_gaussian sets from the good images (never taken over from other weights: --init)
GAUSSIAN_BUFFERS = ("noise_levels", "light_ref", "level_mean", "level_precision", "level_ref", "clean_whiten",
                    "energy_knots")
GAUSS_SCORE_SCALE = 10.0  # score="gauss": L / (L + 10), the signal anomaly model's scale (sequence.SignalAE)


class SurfaceNet(nn.Module):
    def __init__(self, mean: list[float], std: list[float], width: int = 16, pool: int = 4, score: str = "box",
                 line: int = 11, noise_levels: list[float] | None = None):
        super().__init__()
        if score not in ("box", "line", "gauss"):
            raise ValueError(f"score must be box, line or gauss, not {score!r}")
        w = width
        self.pool = pool
        self.score_kind = score
        # fixed, not learnt, not stored: rebuilt from the arguments, so older checkpoints load unchanged
        self.register_buffer("lines", line_kernels(line), persistent=False)
        self.stem = NormalizedStem(w, mean, std, kernel=2, stride=2)  # a 2x2 stride-2 stem: exact halving, no pad
        self.enc1 = nn.Sequential(nn.BatchNorm2d(w), nn.ReLU(inplace=True), _conv(w, w))  # H/2
        self.enc2 = nn.Sequential(_conv(w, 2 * w, 2), _conv(2 * w, 2 * w))  # H/4
        self.enc3 = nn.Sequential(_conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w))  # H/8
        self.enc4 = nn.Sequential(_conv(4 * w, 4 * w, 2), _conv(4 * w, 4 * w))  # H/16: context for larger defects
        self.dec3 = _conv(8 * w, 4 * w)
        self.dec2 = _conv(6 * w, 2 * w)
        self.dec1 = _conv(3 * w, w)
        self.head = nn.Conv2d(w, 1, 1)
        if score == "gauss":  # set by fit_gaussian after training; stored with the weights
            if noise_levels is None:
                raise ValueError("this --score gauss run predates the noise-adaptive Gaussian (2026-11-28): train it "
                                 "again with edge-train anomaly --score gauss")
            k, steps = len(noise_levels), np.diff(noise_levels)
            if k == 0 or noise_levels[0] != 0 or (k > 1 and (steps[0] <= 0 or not np.allclose(steps, steps[0]))):
                raise ValueError(f"noise_levels must start at 0 and rise in equal steps, not {noise_levels}")
            self.register_buffer("noise_levels", torch.tensor(noise_levels, dtype=torch.float32))
            self.register_buffer("light_ref", torch.full((3,), 128.0))  # the good images' mean level per channel
            self.register_buffer("level_mean", torch.zeros(k, w))  # per noise level: the good features' Gaussian
            self.register_buffer("level_precision", torch.eye(w).repeat(k, 1, 1))
            self.register_buffer("level_ref", torch.tensor([[0.0, 1.0]]).repeat(k, 1))  # median, q99.9 - median
            self.register_buffer("clean_whiten", torch.eye(w))  # W with |W (f - mean_0)|² the clean distance²
            self.register_buffer("energy_knots", torch.arange(k, dtype=torch.float32))  # log fine-detail energy
            self.register_buffer("highpass", (LAPLACIAN / 6).repeat(w, 1, 1, 1), persistent=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """N x C x H/2 x W/2: the first features."""
        return self.enc1(self.stem(x))

    def lit(self, x: torch.Tensor) -> torch.Tensor:
        """The image at the good images' mean level: a dimmer or brighter lamp is not an anomaly. One gain for all
        channels, as a lamp's: a gain per channel also recoloured the good surface around a coloured stain (grass
        pixel AUROC 0.980 -> 0.964). Within 0.5-2x: a lamp at a tenth of its light is a fault to reject, not to
        amplify (with its noise) tenfold."""
        x = x.float()
        level = x.mean(dim=(1, 2, 3), keepdim=True).clamp(min=1.0)
        return torch.clamp(x * (self.light_ref.mean() / level).clamp(0.5, 2.0), 0.0, 255.0)

    def detail_energy(self, f: torch.Tensor) -> torch.Tensor:
        """N: log of the fine detail in the features (clean-whitened, high-passed, energy summed over channels),
        the median over 16x16 blocks: a defect fills a few blocks, sensor noise all of them."""
        z = F.conv2d(f, self.clean_whiten[:, :, None, None], bias=-(self.clean_whiten @ self.level_mean[0]))
        r = F.conv2d(z, self.highpass, groups=z.shape[1])
        energy = (r * r).sum(dim=1, keepdim=True)
        block = min(16, energy.shape[-2], energy.shape[-1])
        blocks = F.avg_pool2d(energy, block).flatten(1)
        # the (lower) median as a TopK: ONNX has no median
        median = blocks.topk((blocks.shape[1] + 1) // 2, dim=1, largest=False).values[:, -1]
        return torch.log(median + 1e-6)

    def noise_sigma(self, f: torch.Tensor) -> torch.Tensor:
        """N: the sensor noise the image carries, in grey levels of the white noise that adds as much fine detail:
        its detail energy read off the fitted levels' (piecewise linear), times NOISE_MARGIN. Clean images read 0
        (all but the 5 % of the clean training images with the most fine detail)."""
        log_e, knots, levels = self.detail_energy(f), self.energy_knots, self.noise_levels
        sigma = torch.zeros_like(log_e)
        for i in range(len(knots) - 1):
            span = (knots[i + 1] - knots[i]).clamp(min=1e-6)
            sigma = sigma + (levels[i + 1] - levels[i]) / span * torch.minimum(torch.relu(log_e - knots[i]), span)
        return torch.minimum(NOISE_MARGIN * sigma, levels[-1])

    def level_weights(self, sigma: torch.Tensor) -> torch.Tensor:
        """N x K: how much of each fitted noise level's Gaussian an image with this noise uses (linear between two)."""
        if len(self.noise_levels) == 1:
            return torch.ones_like(sigma)[:, None]  # from sigma, so the export keeps the batch axis dynamic
        step = self.noise_levels[1] - self.noise_levels[0]
        return torch.relu(1.0 - (sigma[:, None] - self.noise_levels[None, :]).abs() / step)

    def distance(self, x: torch.Tensor) -> torch.Tensor:
        """N x 1 x H/2 x W/2 Mahalanobis distance of each pixel's features to the good pixels' Gaussian at the
        image's own noise level, in units of those good pixels' own distances (0 at their median, 1 at their
        99.9th percentile), clipped at 0."""
        f = self.features(self.lit(x))
        weights = self.level_weights(self.noise_sigma(f))  # N x K
        n, c, h, w = f.shape
        mean = weights @ self.level_mean  # N x C
        precision = (weights @ self.level_precision.flatten(1)).view(n, c, c)
        ref = weights @ self.level_ref  # N x 2
        centred = (f - mean[:, :, None, None]).flatten(2)  # N x C x HW
        dist = torch.sqrt((centred * (precision @ centred)).sum(dim=1).clamp(min=0.0) + 1e-12).view(n, 1, h, w)
        return torch.clamp((dist - ref[:, 0, None, None, None]) / ref[:, 1, None, None, None], min=0.0)

    @staticmethod
    def _up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="nearest")

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """N x 1 x H/2 x W/2 anomaly logits for a uint8 NHWC batch."""
        e1 = self.features(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        d3 = self.dec3(torch.cat([self._up(e4), e3], 1))
        d2 = self.dec2(torch.cat([self._up(d3), e2], 1))
        d1 = self.dec1(torch.cat([self._up(d2), e1], 1))
        return self.head(d1)

    def _line_max(self, quarter: torch.Tensor) -> torch.Tensor:
        """The highest mean along a short line, at quarter resolution: the 8 fixed 11x11 convolutions cost ~4 M
        multiply-adds there (21x21 at half: 58 M). Reflected padding: a crack running off the edge is not diluted
        by zeros."""
        pad = self.lines.shape[-1] // 2
        local = F.conv2d(F.pad(quarter, (pad, pad, pad, pad), mode="reflect"), self.lines)
        return local.amax(dim=(1, 2, 3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.score_kind == "gauss":
            dist = self.distance(x)
            line = self._line_max(F.avg_pool2d(dist, 2))
            # the score nearly linear where good parts lie (L ~ 0.3-1.5), as the threshold rule's margin assumes
            # (L / (1 + L) squashed it there: brick's threshold came out at 0.977 and let every defect through)
            score, half = line / (line + GAUSS_SCORE_SCALE), dist / (1.0 + dist)
        else:
            half = torch.sigmoid(self.logits(x))
            if self.score_kind == "line":
                score = self._line_max(F.avg_pool2d(half, 2))
            else:
                k = 2 * self.pool + 1
                score = F.avg_pool2d(half, k, stride=1, padding=self.pool, count_include_pad=False).amax(dim=(1, 2, 3))
        return score, F.interpolate(half, scale_factor=2.0, mode="bilinear", align_corners=False)[:, 0]


@register_model("surfacenet")
def surfacenet(mean: list[float], std: list[float], width: int = 16, pool: int = 4, score: str = "box",
               line: int = 11, noise_levels: list[float] | None = None) -> SurfaceNet:
    return SurfaceNet(mean, std, width, pool, score, line, noise_levels)


def white_noise(images: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """uint8 images with Gaussian read noise of `sigma` grey levels per pixel and channel."""
    if sigma == 0:
        return images
    rng = np.random.default_rng(seed)
    return np.clip(images + rng.normal(0.0, sigma, images.shape).astype(np.float32), 0, 255).astype(np.uint8)


@torch.no_grad()
def fit_gaussian(model: SurfaceNet, images: np.ndarray, max_pixels: int = 400_000, seed: int = 0,
                 features_of=None) -> dict:
    """Fit score="gauss" on good images (uint8 NHWC) as taken: the light reference, then at each noise level
    (white noise added to up to 150 of them) the features' Gaussian, its good pixels' distance units and the
    level's fine-detail energy (the clean level's knot: the 95th percentile of the clean images', so a clean
    image reads no noise). Not on copies under the training's camera variation (that blurs the one Gaussian: grass
    image AUROC 0.997 -> 0.919); the noise the camera adds is what the levels are for. `features_of` (a uint8
    batch -> its features) replaces the model's own lit + features: the INT8 graph's (export/gauss_int8.py).
    Returns a summary."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    model.light_ref.copy_(torch.from_numpy(images.reshape(-1, 3).astype(np.float64).mean(0)).float())
    sample = images[:: -(-len(images) // 150)]  # at most 150

    features_of = features_of or (lambda batch: model.features(model.lit(batch)))

    def features(batch_images: np.ndarray) -> torch.Tensor:
        return torch.cat([features_of(torch.from_numpy(batch_images[i : i + 32]))
                          for i in range(0, len(batch_images), 32)])

    summary, knots = {"pixels": 0, "levels": []}, []
    for k, sigma in enumerate(model.noise_levels.tolist()):
        maps = features(images if k == 0 else white_noise(sample, sigma, seed + k))
        feats = maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1])
        feats = feats[torch.randperm(len(feats), generator=gen)[:max_pixels]].double()
        mean, cov = feats.mean(0), torch.cov(feats.T)
        # A flat channel must not blow up. Not more: the sensitivity lives in the low-variance directions (a ridge
        # of 0.1 cost grass 0.997 -> 0.962 image AUROC).
        cov += 1e-3 * cov.diagonal().mean() * torch.eye(len(mean), dtype=cov.dtype)
        precision = torch.linalg.inv(cov)
        dist = torch.sqrt(((feats - mean) @ precision * (feats - mean)).sum(1))
        median, q999 = float(dist.median()), float(torch.quantile(dist[:200_000], 0.999))
        model.level_mean[k], model.level_precision[k] = mean.float(), precision.float()
        model.level_ref[k] = torch.tensor([median, max(q999 - median, 1e-6)])
        if k == 0:
            model.clean_whiten.copy_(torch.linalg.cholesky(precision).T.float())  # P = L Lᵀ: |Lᵀ d|² = dᵀ P d
            summary.update(pixels=len(dist), distance_median=round(median, 4), distance_q999=round(q999, 4))
        summary["levels"].append({"sigma": sigma, "distance_median": round(median, 4)})
        # this level's fine-detail energy, from the same features (whitened by the clean level, fitted first)
        log_e = torch.cat([model.detail_energy(maps[i : i + 32]) for i in range(0, len(maps), 32)]).numpy()
        knots.append(float(np.percentile(log_e, 95)) if k == 0 else max(float(np.median(log_e)), knots[-1] + 1e-3))
    model.energy_knots.copy_(torch.tensor(knots))
    summary["light_ref"] = [round(v, 2) for v in model.light_ref.tolist()]
    return summary
