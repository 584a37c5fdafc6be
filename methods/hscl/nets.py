"""HSCL's network, views and rotations (Wang et al., ECCV 2022, §3; CSI, Tack et al. 2020).

f: three conv blocks + global average pool (a CPU-sized stand-in for ResNet-18);
g: the SimCLR projection head (→ z), a 4-way rotation head (the "shifted instance"
classifier of CSI), the learnable prototype p of the normal class (Eq. 4), and a
binary head used only by the supervised baseline. Buffers hold the per-rotation
training statistics that normalise the anomaly score (CSI's score weights); each
client keeps them as running means while it trains, so FedAvg turns them into the
sample-weighted mean of the client means.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from methods.common.nets import conv_block

NUM_ROTATIONS = 4


def rotations(x: torch.Tensor) -> torch.Tensor:
    """(B,C,H,W) → (4B,C,H,W): the batch rotated by 0, 90, 180, 270 degrees, in that order."""
    return torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(NUM_ROTATIONS)])


def augment(x: torch.Tensor, *, noise: float = 0.2, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random resized crop (area 0.7–1), translation (±2 px) and Gaussian pixel noise.

    One affine grid per image does crop and shift together; `border` padding repeats the
    (background) edge instead of inserting zeros, which are not background after z-scoring.
    """
    n, size = len(x), x.shape[-1]
    scale = torch.sqrt(0.7 + 0.3 * torch.rand(n, generator=generator))
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (2 * 2 / size)  # ±2 px in [-1,1] units
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    return out + noise * torch.randn(out.shape, generator=generator)


def contrastive_views(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """B images → 8B views [view 1 × 4 rotations, view 2 × 4 rotations] and rotation labels.

    As in CSI's training loop: rotate first, then augment each of the two copies
    independently; embedding i and i ± 4B are the positive pair (same image, same rotation).
    """
    rotated = rotations(x)
    views = augment(torch.cat([rotated, rotated]))
    labels = torch.arange(NUM_ROTATIONS).repeat_interleave(len(x)).repeat(2)
    return views, labels


class HSCLNet(nn.Module):
    """Encoder f, projection g → z, rotation head, prototype p, binary head, score statistics."""

    def __init__(self, widths: tuple[int, int, int] = (16, 32, 64), projection_dim: int = 64,
                 variant: str = "hscl", prototype_scale: float = 1.0) -> None:
        super().__init__()
        self.variant = variant  # which score `evaluate` uses; not state: stages differ in it
        self.encoder = nn.Sequential(
            conv_block(1, widths[0], pool=True),
            conv_block(widths[0], widths[1], pool=True),
            conv_block(widths[1], widths[2], pool=False),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.projection = nn.Sequential(nn.Linear(widths[2], widths[2]), nn.ReLU(inplace=True),
                                        nn.Linear(widths[2], projection_dim))
        self.shift_head = nn.Linear(widths[2], NUM_ROTATIONS)
        self.binary_head = nn.Linear(widths[2], 1)
        # p ∈ R^d, used normalised. The code Xavier-initialises it (‖p‖ ≈ 1.4); Adam moves
        # each coordinate ≤ lr per step, so in our ~100 local steps (vs ~5000 in the paper)
        # p kept its random direction (cos to normals ≈ 0.03, AUROC below chance on digit 0,
        # seed 1). Only p's direction matters, so we start at `prototype_scale` × Xavier.
        bound = prototype_scale * math.sqrt(6.0 / (projection_dim + 1))
        self.prototype = nn.Parameter(torch.empty(projection_dim).uniform_(-bound, bound))
        # Per rotation k: mean ‖g(f(x_k))‖, mean correct-rotation logit, mean direction of z_k.
        self.register_buffer("z_norm", torch.ones(NUM_ROTATIONS))
        self.register_buffer("shift_logit", torch.ones(NUM_ROTATIONS))
        self.register_buffer("centre", torch.zeros(NUM_ROTATIONS, projection_dim))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # x: N×1×H×W
        h = self.encoder(x)  # N×w3
        return {"z": self.projection(h), "shift": self.shift_head(h),
                "binary": self.binary_head(h).squeeze(1)}

    @torch.no_grad()
    def track_statistics(self, z: torch.Tensor, shift: torch.Tensor, momentum: float) -> None:
        """EMA of the score statistics from one batch of 8B contrastive views (layout above)."""
        per_rot = len(z) // (2 * NUM_ROTATIONS)
        z = z.view(2, NUM_ROTATIONS, per_rot, -1).transpose(0, 1).reshape(NUM_ROTATIONS, -1, z.shape[1])
        shift = shift.view(2, NUM_ROTATIONS, per_rot, -1).transpose(0, 1).reshape(
            NUM_ROTATIONS, -1, NUM_ROTATIONS)
        k = torch.arange(NUM_ROTATIONS)
        new = (z.norm(dim=2).mean(1), shift[k, :, k].mean(1), F.normalize(z, dim=2).mean(1))
        for buffer, value in zip((self.z_norm, self.shift_logit, self.centre), new):
            buffer.mul_(momentum).add_((1 - momentum) * value)
