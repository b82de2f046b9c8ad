"""`edge-train anomaly --score auto` (the default): which score a run deploys, decided from its good images.

score="gauss" models every pixel's first features with one Gaussian for the whole image. That is right for a
stationary surface (sheet, fabric, a textured casting: it looks alike everywhere), where it finds finer defects
than the line score (grass image AUROC 0.930 -> 0.9985). It is wrong for a part whose look depends on where in
the frame you are (a bolt head always in the centre, an edge always at the left): there the one Gaussian mixes
every position's pixels, and a defect that looks like good pixels of another position passes. The line score
learns local context, so it judges those.

The measure is the share of the good features' variance that position explains. The good images are split in
two halves and each half's mean feature map is taken (C x H x W). The covariance of the two maps over positions
estimates the variance of the true position means without the halves' sampling noise, which is independent
between them: about 0 on a surface whatever the number of images, large on a part. It is divided by the
features' total variance.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from train.models import create_model
from train.models.anomaly_net import NOISE_LEVELS, SurfaceNet, fit_gaussian

# Above this share of position-explained variance an image set is a part, not a surface. Measured with the
# grass run's net (2026-11-28): random crops of surfaces (brick, grass, gravel, the moon, the Hubble deep
# field) 0.00-0.04; parts held in place within a few pixels (a coin, a coffee cup, the camera man, a
# checkerboard) 0.51-0.75. Grass under a fixed vignette with 35 % darker corners reads 0.24, so it gets the line
# score: a dark defect in the centre looks like the good corners to one Gaussian (flat light, or --score gauss).
POSITION_SHARE_MAX = 0.1
GRID = 16
MAX_IMAGES = 200  # every k-th good image when there are more (their features stay in memory)


@torch.no_grad()
def position_share(model: SurfaceNet, images: np.ndarray, batch: int = 32) -> float:
    """The share of the first features' variance explained by position in uint8 NHWC good images (see above)."""
    model.eval()
    images = images[:: -(-len(images) // MAX_IMAGES)]
    feats = torch.cat([model.features(torch.from_numpy(images[i : i + batch])).double()
                       for i in range(0, len(images), batch)])
    # on a grid of 16 x 16 cells: overlapping crops of one photograph (the demo's) share fine detail at the same
    # position by chance, which read as 0.10 share on brick at full resolution and 0.01 on the grid
    cell = max(1, min(feats.shape[-2:]) // GRID)
    pooled = F.avg_pool2d(feats, cell)
    halves = [pooled[0::2].mean(0), pooled[1::2].mean(0)]  # C x GRID x GRID each
    a, b = (h - h.mean(dim=(1, 2), keepdim=True) for h in halves)
    total = feats.transpose(0, 1).flatten(1).var(dim=1).sum()
    return float((a * b).mean(dim=(1, 2)).sum() / total.clamp(min=1e-12))


def choose_score(model: SurfaceNet, images: np.ndarray) -> dict:
    """{"score": "gauss" or "line", "position_share": ..., "why": ...} for good training images."""
    share = position_share(model, images)
    if share <= POSITION_SHARE_MAX:
        why = (f"position explains {share:.1%} of the good features' variance (≤ {POSITION_SHARE_MAX:.0%}): "
               f"a surface, judged by the Gaussian of its features")
        return {"score": "gauss", "position_share": round(share, 4), "why": why}
    why = (f"position explains {share:.1%} of the good features' variance (> {POSITION_SHARE_MAX:.0%}): a part "
           f"held in place, judged by the line score, which learns local context")
    return {"score": "line", "position_share": round(share, 4), "why": why}


def with_gaussian(model: SurfaceNet, args: dict, images: np.ndarray, fitted_on: str | None = None
                  ) -> tuple[SurfaceNet, dict, dict]:
    """The same weights with score="gauss" and its Gaussian fitted on good images: (model, its args, fit summary,
    with `fitted_on` when they are not the images as taken). The score does not enter training, so a line-score net
    becomes a gauss one after the fact."""
    args = {**args, "score": "gauss", "noise_levels": list(NOISE_LEVELS)}
    gauss = create_model("surfacenet", **args)
    gauss.load_state_dict(model.state_dict(), strict=False)  # the Gaussian's buffers are fitted next
    summary = fit_gaussian(gauss, images)
    return gauss, args, {**summary, **({"fitted_on": fitted_on} if fitted_on else {})}
