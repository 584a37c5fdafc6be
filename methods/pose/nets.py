"""The pose network: a small encoder-decoder with stride-2 center/offset heads.

The CPU stand-in (design notes §3(c), not shipped; ~0.1 M parameters) for the paper's HRNet
backbone with DEKR-style heads (Cheng et al., arXiv:2208.11975 §3): from a 64×64
image it predicts at 32×32 cells, for each of the two anatomical centers (body,
head), a center heatmap C, the 14 keypoints' offsets from the center divided by
the person's height h, and log h (human-scale normalisation of the regression).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from methods.common.nets import conv_block
from methods.pose.figures import NUM_KEYPOINTS

CENTER_KINDS = ("body", "head")
# Per center kind: 1 heatmap + 2K offsets + log h.
CHANNELS_PER_CENTER = 1 + 2 * NUM_KEYPOINTS + 1
STRIDE = 2


def _down(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1),
                         nn.GroupNorm(min(8, c_out), c_out), nn.ReLU(inplace=True))


class DualCenterNet(nn.Module):
    """64×64 image → per center kind (N×1×32×32 heat, N×28×32×32 offsets/h, N×1×32×32 log h)."""

    def __init__(self, in_channels: int = 3, widths: tuple[int, int, int] = (24, 40, 56),
                 head_width: int = 48) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.stem = nn.Sequential(conv_block(in_channels, 16, pool=False), _down(16, w1))
        self.enc2 = _down(w1, w2)  # 16×16
        self.enc3 = nn.Sequential(_down(w2, w3), conv_block(w3, w3, pool=False))  # 8×8
        self.dec2 = conv_block(w3 + w2, w2, pool=False)  # 16×16
        self.dec1 = conv_block(w2 + w1, w1, pool=False)  # 32×32
        # A hidden 3×3 layer before the outputs (DEKR regresses offsets in a branch of
        # its own): a 1×1 head had to read 60 outputs linearly off 24 features, and the
        # offsets and log h were its bottleneck. Non-federated pilot, body + multi-scale,
        # 1,500 steps, seed 0: small-person AP50 0.177 → 0.437, all sizes 0.419 → 0.558
        # (README "Before/after").
        self.head = nn.Sequential(nn.Conv2d(w1, head_width, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(head_width, len(CENTER_KINDS) * CHANNELS_PER_CENTER, 1))
        # Local steps taken by the clients, averaged by FedAvg like every tensor: the
        # position in the stage's cosine lr schedule (PoseMethod.local_lr).
        self.register_buffer("local_steps", torch.zeros(()))

    def forward(self, image: torch.Tensor) -> dict[str, tuple[torch.Tensor, ...]]:
        f1 = self.stem(image)  # N×w1×H/2×W/2
        f2 = self.enc2(f1)
        f3 = self.enc3(f2)
        d2 = self.dec2(torch.cat([F.interpolate(f3, size=f2.shape[-2:]), f2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, size=f1.shape[-2:]), f1], 1))
        out = self.head(d1).split(CHANNELS_PER_CENTER, dim=1)
        return {kind: (o[:, :1], o[:, 1:-1], o[:, -1:]) for kind, o in zip(CENTER_KINDS, out)}
