"""The two networks of the defect GAN, free of data loading and training glue.

The generator is an inpainting net: it sees the good background and the mask
where the defect goes and paints the defect layer, which is blended in with a
soft alpha outside the network. Seeing the background lets it make translucent
defects (a stain shows the texture through it) and matching edges; the noise z
enters at the two coarsest decoder scales, so it cannot be ignored as easily
as a single input (the usual failure of conditional GANs, pix2pix's "G
ignores z").

Colour is not the generator's to decide: with a handful of real defects the
discriminator does not punish it, and G paints green, magenta and blue speckle
into cracks. `edge-data synth` keeps G's shade and gives the painted defect the
real defects' tint (compose.match_tint). `chroma` (a training option until
2026-11-27) painted brightness and colour on separate axes with the colour axes
scaled down; it stays so that runs trained with it still load and paint as
trained. Without it the output channels are R, G, B.

GroupNorm instead of BatchNorm: a sample does not depend on the others in its
batch, so synthesis is deterministic whatever the batch size, and train and
eval modes behave the same.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm

from train.models.registry import register_model


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")  # nearest + conv: no checkerboard


def opponent_basis() -> torch.Tensor:
    """3 x 3, rows: brightness (R+G+B), red-green, yellow-blue; unit rows, so each output channel is one axis."""
    basis = torch.tensor([[1.0, 1.0, 1.0], [1.0, -1.0, 0.0], [1.0, 1.0, -2.0]])
    return basis / basis.norm(dim=1, keepdim=True)


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(min(8, cout // 4), cout), nn.LeakyReLU(0.2))


class PatchGenerator(nn.Module):
    """(z N×Z, mask N×1×P×P in 0..1, background N×3×P×P in -1..1) → defect layer N×3×P×P in -1..1.

    Channels double as the side halves (w/2 at P … 4w at P/8): the full-resolution
    layers are where a CPU spends its time, and they only need to place edges.
    """

    def __init__(self, z_dim: int = 64, width: int = 32, patch: int = 48, residual: bool = False,
                 chroma: float | None = None):
        super().__init__()
        if patch % 8:
            raise ValueError(f"patch {patch} must be a multiple of 8")
        self.z_dim, self.patch, self.residual = z_dim, patch, residual
        # None: older checkpoints, whose three output channels are R, G, B; fixed, not stored, rebuilt from the args
        self.register_buffer("paint_basis", None if chroma is None else
                             torch.diag(torch.tensor([1.0, chroma, chroma])) @ opponent_basis(), persistent=False)
        c1, c2, c3, c4 = width // 2, width, 2 * width, 4 * width  # at P, P/2, P/4, P/8
        self.enc1 = _block(4, c1)
        self.enc2 = _block(c1, c2, 2)
        self.enc3 = _block(c2, c3, 2)
        self.enc4 = _block(c3, c4, 2)
        # z at the coarse scales only: there it varies shade, tone and texture; at the finest scales it only
        # bought pixel speckle, the cheapest way to look "diverse".
        self.z_maps = nn.ModuleList([nn.Linear(z_dim, c) for c in (c4, c3)])
        self.mid = _block(2 * c4, c4)
        self.dec3 = _block(c4 + 2 * c3, c3)  # upsampled + skip + z
        self.dec2 = _block(c3 + c2, c2)  # upsampled + skip
        self.dec1 = _block(c2 + c1, c1)
        self.out = nn.Conv2d(c1, 3, 3, 1, 1)

    def _z(self, i: int, z: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self.z_maps[i](z)[:, :, None, None].expand(-1, -1, like.shape[2], like.shape[3])

    def forward(self, z: torch.Tensor, mask: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(torch.cat([mask * 2 - 1, background], 1))
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        m = self.mid(torch.cat([e4, self._z(0, z, e4)], 1))
        d3 = self.dec3(torch.cat([_up(m), e3, self._z(1, z, e3)], 1))
        d2 = self.dec2(torch.cat([_up(d3), e2], 1))
        d1 = self.dec1(torch.cat([_up(d2), e1], 1))
        out = self.out(d1)
        if self.paint_basis is not None:  # brightness and (scaled) colour axes → R, G, B
            out = torch.einsum("nkhw,kc->nchw", out, self.paint_basis)
        if self.residual:
            # a change of the background (in tanh's pre-activation space), not a new picture: an untrained
            # or half-trained G paints the part itself, not the green or white blobs it painted from scratch
            return torch.tanh(torch.atanh(background.clamp(-0.995, 0.995)) + out)
        return torch.tanh(out)


class PatchDiscriminator(nn.Module):
    """(patch N×3×P×P, mask N×1×P×P) → realism score N; spectral norm keeps the hinge game stable."""

    def __init__(self, width: int = 32, patch: int = 48):
        super().__init__()
        w, layers, cin, side = width, [], 4, patch
        for cout in (w, 2 * w, 4 * w, 8 * w):
            layers += [spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.2)]
            cin, side = cout, side // 2
        self.body = nn.Sequential(*layers)
        self.head = spectral_norm(nn.Linear(cin, 1))
        self.local = spectral_norm(nn.Conv2d(cin, 1, 1))  # per-location score: judges every part of the patch

    def forward(self, patch: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        f = self.body(torch.cat([patch, mask * 2 - 1], 1))
        return self.head(f.sum(dim=(2, 3)))[:, 0] + self.local(f).mean(dim=(1, 2, 3))


@register_model("defect_patch_generator")
def defect_patch_generator(z_dim: int = 64, width: int = 32, patch: int = 48, residual: bool = False,
                           chroma: float | None = None) -> PatchGenerator:
    return PatchGenerator(z_dim, width, patch, residual, chroma)
